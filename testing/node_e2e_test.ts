/**
 * log-probe on a real node (testing/controlplane/node.sh): the kubelet execs
 * the probe, counts its failures, kills and restarts containers, rotates their
 * logs; containerd and runc run the pods under Pod Security "restricted"; the
 * init container really copies Deno. The README's install is applied verbatim
 * to a foreign Deployment, then each promise is one pod with scaled-down
 * timings, its expectation derived from `probe.ts plan` with the probe's own
 * flags, never from what was observed. The figures are printed, and written to
 * `$E2E_RECORD/node.md` when E2E_RECORD names a folder (testing/e2e-recorded.md
 * keeps them).
 *
 * Run with `deno task e2e` (root, unshare, kubectl, go on first run). Where the
 * node cannot run, the test is skipped and the reason printed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Manifest, ROOT } from "./kubelet.ts";
import {
  du,
  foreignWorker,
  listDir,
  mib,
  NODE_SH,
  platformNamespace,
  probePatchFor,
  RealNode,
  renderKustomization,
  run,
  runningPod,
  seconds,
  sleep,
} from "./node.ts";

const DENO = Deno.execPath();
/** The scaled-down timings every promise pod runs with (the component's are 60s, 15, 10s, 5s, 60s). */
const TIMINGS = { period: 3, threshold: 3, timeoutSeconds: 5, probeTimeout: "4s", window: "5s" };

const underE2e = Deno.env.get("LOG_PROBE_E2E") === "1";
/** Why this machine cannot run a node (node.sh check), or "". */
const cannotRun = underE2e ? (await run("bash", [NODE_SH, "check"])).stdout.trim() : "";
if (underE2e && cannotRun) console.log(`node e2e: SKIPPED: ${cannotRun}`);

/** Shell bodies for the workers (sleeps in the background so SIGTERM ends them at once). */
const SCRIPTS = {
  every2s: 'i=0; while true; do i=$((i+1)); echo "processed job $i"; sleep 2 & wait $!; done',
  hangAfter5: 'for i in 1 2 3 4 5; do echo "processed job $i"; sleep 1 & wait $!; done; ' +
    'echo "waiting for upstream"; sleep 100000 & wait $!',
  slowStart: (delay: number) =>
    `sleep ${delay} & wait $!; i=0; while true; do i=$((i+1)); echo "processed job $i"; ` +
    "sleep 2 & wait $!; done",
  // About 2 KiB/s: the kubelet (containerLogMaxSize 4Ki, checked every 3s) rotates it.
  chatty: (seconds: number) =>
    `i=0; end=$(( $(date +%s) + ${seconds} )); while [ $(date +%s) -lt $end ]; do i=$((i+1)); ` +
    'echo "processed job $i ........................................................................"; ' +
    'sleep 0.05 & wait $!; done; echo "waiting for upstream"; sleep 100000 & wait $!',
};

/** The probed container's livenessProbe with scaled-down timings, in the kubelet's and the probe's flags. */
function scaled(deployment: Manifest, change: Partial<typeof TIMINGS> = {}): Manifest {
  const copy = structuredClone(deployment);
  const t = { ...TIMINGS, ...change };
  for (const c of copy.spec.template.spec.containers) {
    const probe = c.livenessProbe;
    if (!probe) continue;
    Object.assign(probe, {
      initialDelaySeconds: t.period,
      periodSeconds: t.period,
      failureThreshold: t.threshold,
      timeoutSeconds: t.timeoutSeconds,
    });
    const command: string[] = probe.exec.command.map((arg: string) =>
      arg.startsWith("--period=")
        ? `--period=${t.period}s`
        : arg.startsWith("--failure-threshold=")
        ? `--failure-threshold=${t.threshold}`
        : arg
    );
    probe.exec.command = [...command, `--window=${t.window}`, `--timeout=${t.probeTimeout}`];
  }
  return copy;
}

/** A copy of `deployment` under another name (and its pods' label), running `script`. */
function variant(deployment: Manifest, name: string, script: string): Manifest {
  const copy = structuredClone(deployment);
  copy.metadata.name = name;
  copy.spec.selector.matchLabels.app = name;
  copy.spec.template.metadata.labels.app = name;
  const app = copy.spec.template.spec.containers.find((c: Manifest) => c.livenessProbe);
  app.command = ["/bin/sh", "-c", `trap 'exit 0' TERM\n${script}`];
  return copy;
}

/** What `probe.ts plan` predicts for the probe command's own flags. */
interface Plan {
  text: string;
  /** Seconds of silence after the last output at which the kubelet restarts, at least and at most. */
  min: number;
  max: number;
  /** Whether the container's start counts as output (issue 20's rule). */
  startCounts: boolean;
}

function durationSeconds(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(h|m|s)/g)) {
    total += Number(n) * (unit === "h" ? 3600 : unit === "m" ? 60 : 1);
  }
  return total;
}

async function planFor(command: string[]): Promise<Plan> {
  const flags = command.filter((arg) =>
    /^--(window|period|failure-threshold|growth|max-window)=/.test(arg)
  );
  const plan = await run(DENO, [
    "run",
    "--no-prompt",
    "--no-config",
    `${ROOT}probe.ts`,
    "plan",
    ...flags,
  ]);
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  // "Restart after 33s to 38s of silence" (0.3.0), "restarts it after 36s to 39s of silence" (0.4.0).
  const range = plan.stdout.match(/[Rr]estarts? (?:it )?after (\S+?)(?: to (\S+?))? of silence/);
  assert.ok(range, `plan names the restart time: ${plan.stdout}`);
  return {
    text: `plan ${flags.join(" ")}\n${plan.stdout.trim()}`,
    min: durationSeconds(range[1]),
    max: durationSeconds(range[2] ?? range[1]),
    startCounts: !/hangs from its start is restarted after \d+ checks/.test(plan.stdout),
  };
}

/** One container instance's end, as the kubelet reported it and its log showed it. */
interface Restart {
  restartCount: number;
  lastLine: string;
  lastLineAt: number;
  finishedAt: number;
  startedAt: number;
  reason: string;
  exitCode: number;
  silence: number;
  logFiles: string[];
  terminationFiles: string[];
}

/** What the test saw of one promise pod while it ran. */
interface Watched {
  pod: Manifest;
  restarts: Restart[];
  /** The probe's counter file as sampled in the container, each distinct value once. */
  counters: string[];
  /** Each instance's newest CRI log line as last sampled (by restart count). */
  newest: Map<number, string>;
}

const record: string[] = [];
function note(line: string): void {
  console.log(line);
  record.push(line);
}

Deno.test({
  name:
    "e2e node: the README's install and the probe's promises on a real kubelet, containerd and runc",
  ignore: !underE2e || cannotRun !== "",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const testStarted = performance.now();
  const node = await RealNode.up();
  note(
    `- node up (etcd, kube-apiserver, controller-manager, scheduler, DNS, containerd, kubelet) in ${node.upSeconds}s`,
  );
  const work = await Deno.makeTempDir({ prefix: "log-probe-node-work-" });
  let failed = true;
  try {
    // README: "`log-probe` is a checkout of this repository" beside your workload's folder.
    assert.equal((await run("ln", ["-s", ROOT.replace(/\/$/, ""), `${work}/log-probe`])).code, 0);
    await Deno.mkdir(`${work}/my-worker`);

    await t.step("the README's install, verbatim, on a foreign Deployment", async () => {
      await node.apply("ledger", platformNamespace("ledger"));
      const worker = foreignWorker("ledger-sync", "sync", SCRIPTS.every2s);
      await Deno.writeTextFile(
        `${work}/my-worker/deployment.yaml`,
        worker.map((o) => JSON.stringify(o)).join("\n---\n"),
      );
      // README, Install, step 2: the copy of container.yaml, then the kustomization.
      await Deno.writeTextFile(
        `${work}/my-worker/log-probe.yaml`,
        probePatchFor("ledger-sync", "sync"),
      );
      await Deno.writeTextFile(
        `${work}/my-worker/kustomization.yaml`,
        [
          "resources:",
          "  - deployment.yaml # yours, with its own serviceAccountName",
          "components:",
          "  - ../log-probe/components/log-probe",
          "patches:",
          "  - path: log-probe.yaml",
          "",
        ].join("\n"),
      );
      // Without the component first, to measure what the init container adds.
      const bare = structuredClone(worker[1]);
      bare.metadata.name = "ledger-bare";
      bare.spec.selector.matchLabels.app = "ledger-bare";
      bare.spec.template.metadata.labels.app = "ledger-bare";
      const bareStarted = performance.now();
      await node.apply("ledger", [worker[0], bare]);
      const barePod = await runningPod(node, "ledger", "ledger-bare");
      const bareSeconds = seconds(performance.now() - bareStarted);

      const release = await node.kubectl(["apply", "-n", "ledger", "-k", "log-probe"], {
        cwd: work,
      });
      note(
        `- \`kubectl apply -n ledger -k log-probe\`: exit ${release.code}\n${
          indent(release.stdout + release.stderr)
        }`,
      );
      assert.equal(release.code, 0, release.stderr);
      const appliedAt = performance.now();
      const apply = await node.kubectl(["apply", "-n", "ledger", "-k", "my-worker"], { cwd: work });
      note(
        `- \`kubectl apply -n ledger -k my-worker\`: exit ${apply.code}\n${
          indent(apply.stdout + apply.stderr)
        }`,
      );
      assert.equal(apply.code, 0, apply.stderr);
      const pod = await runningPod(node, "ledger", "ledger-sync");
      const withSeconds = seconds(performance.now() - appliedAt);
      const init = pod.status.initContainerStatuses[0];
      assert.match(init.name, /install-deno/);
      assert.equal(init.state.terminated?.exitCode, 0, JSON.stringify(init.state));
      const initSeconds = (Date.parse(init.state.terminated.finishedAt) -
        Date.parse(init.state.terminated.startedAt)) / 1000;
      note(
        `- start-up: apply to app container running ${withSeconds}s with the component, ` +
          `${bareSeconds}s without (same worker, same node; polled every 0.25s): ` +
          `the init container adds about ${seconds((withSeconds - bareSeconds) * 1000)}s ` +
          `(its own run: ${initSeconds}s by the kubelet's second-granular timestamps)`,
      );
      const uid = pod.metadata.uid;
      // The emptyDir on disk the init container copies Deno into (the other one is in memory).
      const denoVolume = pod.spec.volumes.find((v: Manifest) =>
        v.emptyDir && v.emptyDir.medium !== "Memory" && /deno/.test(v.name)
      ).name;
      const copy = await du(
        `${node.dir}/var-lib/kubelet/pods/${uid}/volumes/kubernetes.io~empty-dir/${denoVolume}`,
      );
      const podDir = await du(`${node.dir}/var-lib/kubelet/pods/${uid}`);
      const bareDir = await du(`${node.dir}/var-lib/kubelet/pods/${barePod.metadata.uid}`);
      note(
        `- node disk per pod: the deno copy ${mib(copy)} (${copy} bytes); the pod's folder ` +
          `${mib(podDir)} against ${mib(bareDir)} without the component ` +
          `(in-memory volumes not counted)`,
      );
      assert.ok(
        copy > 50 * 1048576 && copy < 128 * 1048576,
        `the copy fits its sizeLimit: ${copy}`,
      );

      // README, Verify: doctor from inside the container, with the probe's own flags.
      const command: string[] = pod.spec.containers.find((c: Manifest) =>
        c.name === "sync"
      )
        .livenessProbe.exec.command;
      const doctorArgs = [...command];
      doctorArgs.splice(command.findIndex((arg) => arg.endsWith("/probe.ts")) + 1, 0, "doctor");
      const doctor = await node.kubectl([
        "exec",
        "-n",
        "ledger",
        "deploy/ledger-sync",
        "-c",
        "sync",
        "--",
        ...doctorArgs,
      ]);
      note(
        `- README's Verify (\`kubectl exec … probe.ts doctor\`): exit ${doctor.code}\n${
          indent(doctor.stdout + doctor.stderr)
        }`,
      );
      assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    });

    await t.step("the promises, each one pod on the real kubelet", async () => {
      const ns = "promises";
      await node.apply(ns, platformNamespace(ns));
      const release = await node.kubectl(["apply", "-n", ns, "-k", "log-probe"], { cwd: work });
      assert.equal(release.code, 0, release.stderr);
      const rendered = await renderKustomization(`${work}/my-worker`);
      const base = scaled(rendered.find((m) => m.kind === "Deployment"));
      const command: string[] = base.spec.template.spec.containers[0].livenessProbe.exec.command;
      const plan = await planFor(command);
      note(`- ${plan.text.split("\n")[0]}: restart after ${plan.min}s to ${plan.max}s of silence`);
      const P = TIMINGS.period;
      const slowDelay = Math.floor(plan.min * 0.6);

      const pods: Record<string, Manifest> = {
        hung: variant(base, "hung", SCRIPTS.hangAfter5),
        healthy: variant(base, "healthy", SCRIPTS.every2s),
        slow: variant(base, "slow", SCRIPTS.slowStart(slowDelay)),
        chatty: variant(base, "chatty", SCRIPTS.chatty(100000)),
        "chatty-hung": variant(base, "chatty-hung", SCRIPTS.chatty(15)),
        norbac: variant(base, "norbac", SCRIPTS.every2s),
        sidecar: variant(base, "sidecar", SCRIPTS.every2s),
        notoken: variant(base, "notoken", SCRIPTS.every2s),
        stalled: variant(base, "stalled", SCRIPTS.every2s),
      };
      // No RoleBinding: its own account, which nothing binds.
      pods.norbac.spec.template.spec.serviceAccountName = "unbound";
      // A sidecar listed first, and the probe without --container.
      const sidecarSpec = pods.sidecar.spec.template.spec;
      sidecarSpec.containers.unshift({
        ...structuredClone(sidecarSpec.containers[0]),
        name: "shipper",
        command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait $!"],
        livenessProbe: undefined,
        volumeMounts: undefined,
        env: undefined,
        terminationMessagePath: undefined,
      });
      const sidecarApp = sidecarSpec.containers[1];
      sidecarApp.livenessProbe.exec.command = sidecarApp.livenessProbe.exec.command.filter(
        (arg: string) => !arg.startsWith("--container="),
      );
      // No token: the pod opts out of the service account's token.
      pods.notoken.spec.template.spec.automountServiceAccountToken = false;
      // The kubelet's timeout below the probe's own deadline (--timeout=4s): the kubelet kills the check.
      pods.stalled.spec.template.spec.containers[0].livenessProbe.timeoutSeconds = 2;

      const account = rendered.filter((m) => m.kind !== "Deployment");
      await node.apply(ns, [
        ...account,
        { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "unbound" } },
        ...Object.values(pods),
      ]);
      const started = Date.now();
      const watched: Record<string, Watched> = {};
      const misconfigured = ["norbac", "sidecar", "notoken"];
      // The workers whose restarts are timed against plan: their lines and counters are sampled.
      const timed = ["hung", "chatty-hung"];
      // Until the hung workers' restarts are in, and every other pod ran past three
      // thresholds and past the slow starter's first line plus plan's latest restart.
      const enough = started +
        1000 * Math.max(3 * P * TIMINGS.threshold + 20, slowDelay + plan.max + 2 * P);
      const deadline = started + 1000 * (60 + 2 * (plan.max + 3 * P + 20) + 60);
      for (let poll = 0;; poll++) {
        await sleep(1000);
        const list = await node.get(["pods", "-n", ns]);
        for (const pod of list.items) {
          const name = pod.metadata.labels.app;
          const w = watched[name] ??= { pod, restarts: [], counters: [], newest: new Map() };
          w.pod = pod;
          const app = pod.status.containerStatuses?.find((c: Manifest) => c.name === "sync");
          if (!app) continue;
          if (app.restartCount > w.restarts.length) {
            w.restarts.push(await restartOf(node, ns, pod, app, w.newest));
          } else if (timed.includes(name) && app.state.running) {
            // The instance's newest line so far, kept in case its files are gone at its end.
            const newest = await newestLine(node, pod, app.restartCount);
            if (newest) w.newest.set(app.restartCount, newest);
            // Each second (a counter lasts a period, 3s): a blind check shows in its blind count.
            const counter = await stateFile(node, ns, pod);
            if (counter !== undefined && counter !== w.counters.at(-1)) w.counters.push(counter);
          }
        }
        const hung = watched.hung?.restarts.length ?? 0;
        const chattyHung = watched["chatty-hung"]?.restarts.length ?? 0;
        if (hung >= 2 && chattyHung >= 1 && Date.now() > enough) break;
        if (Date.now() > deadline) break;
      }
      const ranFor = seconds(Date.now() - started);
      note(`- observed for ${ranFor}s (${Math.floor(ranFor / P)} periods of ${P}s)`);
      const events = await node.get(["events", "-n", ns]);
      const eventsOf = (pod: string) =>
        events.items.filter((e: Manifest) =>
          e.involvedObject.name === watched[pod]?.pod.metadata.name
        )
          .map(eventLine);
      for (const [name, w] of Object.entries(watched)) {
        note(`- **${name}**: restartCount ${w.restarts.length}`);
        for (const r of w.restarts) {
          note(
            `  - restart ${r.restartCount}: ` + (isNaN(r.lastLineAt)
              ? `no output; killed ${r.finishedAt - r.startedAt}s after its start; `
              : `last line ${JSON.stringify(r.lastLine)}, killed ${r.silence}s after it ` +
                `(plan: ${plan.min}s to ${plan.max}s); `) +
              `${r.reason}, exit ${r.exitCode}; log files ${r.logFiles.join(", ")}; ` +
              `termination-message files ${r.terminationFiles.length} (${
                r.terminationFiles.join(", ")
              })`,
          );
        }
        // The counter file, first and last as sampled in each container instance.
        const byInstance = Map.groupBy(w.counters, (c) => c.split(" ")[1]);
        for (const [instance, samples] of byInstance) {
          note(
            `  - counter file of instance ${instance}: first \`${samples[0]}\`, last \`${
              samples.at(-1)
            }\` (${samples.length} distinct samples${
              samples.some((c) => Number(c.split(" ")[6]) > 0) ? ", a blind check among them" : ""
            })`,
          );
        }
        for (const e of eventsOf(name)) note(`  - event ${e}`);
      }

      // 1. A hung worker is restarted at plan's time; 6. a restarted
      // one starts a new log file, a new termination-message file and a new count.
      const hung = watched.hung.restarts;
      assert.ok(hung.length >= 2, `the hung worker was restarted twice: ${hung.length}`);
      // plan tries where the last output falls at whole seconds (renderPlan), so its figures
      // are exact to one second: the bound allows that step. After plan's last check the kill
      // comes within one period (the kubelet's tick), the check's own run (timeoutSeconds) and
      // the worker's exit on SIGTERM (1s): on a loaded machine each may take all of it.
      // A check that could not see the log (lost, unreadable) never is the kubelet's last
      // failure: where one fell there, the restart comes a threshold and a period later (README).
      const lostCost = TIMINGS.threshold * P + P;
      const latest = plan.max + P + TIMINGS.timeoutSeconds + 1;
      hung.forEach((r, k) => {
        const most = latest + (blindSeen(watched.hung, k) ? lostCost : 0);
        assert.ok(
          r.silence >= plan.min - 1 && r.silence <= most,
          `restart ${r.restartCount} after ${r.silence}s of silence, plan: ${plan.min}s to ${plan.max}s (at most ${most}s)`,
        );
      });
      assert.notDeepEqual(hung[1].logFiles, hung[0].logFiles, "a new log file per instance");
      assert.ok(watched.hung.counters.length >= 2, "the counter file was read in the container");
      assert.ok(
        hung[1].terminationFiles.length > hung[0].terminationFiles.length ||
          hung[1].terminationFiles.join() !== hung[0].terminationFiles.join(),
        "a new termination-message file per instance",
      );
      // 2. Healthy workers are never restarted; a slow starter only where plan says so.
      assert.equal(watched.healthy.restarts.length, 0, "the healthy worker was never restarted");
      if (plan.startCounts) {
        assert.equal(
          watched.slow.restarts.length,
          0,
          `the slow starter (first line at ${slowDelay}s) was never restarted`,
        );
      } else {
        note(
          `  - slow starter: this probe.ts counts silence from its first check (plan: "hangs from its start is restarted after"); issue 20's rule (the start counts as output) expects 0 restarts`,
        );
      }
      // 3. A misconfigured probe never restarts, and says why in the events.
      for (const name of misconfigured) {
        assert.equal(watched[name].restarts.length, 0, `${name} was never restarted`);
        assert.ok(
          eventsOf(name).some((e: string) => e.includes("Liveness probe failed: error:")),
          `${name}'s events show the probe's line: ${eventsOf(name).join("; ")}`,
        );
      }
      assert.ok(ranFor >= 3 * TIMINGS.threshold * P, "observed over three thresholds");
      // 4. Rotation: a chatty healthy worker is never restarted; a chatty one that hangs is, on time
      // (the last lines may have been rotated away before a check saw them: one period earlier).
      assert.equal(watched.chatty.restarts.length, 0, "the chatty worker was never restarted");
      const rotated = await listDir(node.logDir(watched.chatty.pod, "sync"));
      note(`- chatty worker's log folder after ${ranFor}s: ${rotated.join(", ")}`);
      assert.ok(rotated.some((f) => /^0\.log\.\d{8}-\d{6}/.test(f)), "the kubelet rotated the log");
      const chattyHung = watched["chatty-hung"].restarts[0];
      assert.ok(chattyHung, "the chatty worker that hung was restarted");
      const chattyMost = plan.max + P + 1 +
        (blindSeen(watched["chatty-hung"], 0) ? lostCost : 0);
      assert.ok(
        chattyHung.silence >= plan.min - P - 1 && chattyHung.silence <= chattyMost,
        `chatty-hung restarted after ${chattyHung.silence}s, plan: ${plan.min}s to ${plan.max}s (-${P}s, at most ${chattyMost}s)`,
      );

      // 5. A check the kubelet kills at timeoutSeconds, then the next check.
      await stallApiServer(node, 2 * P + 1);
      await sleep(3 * P * 1000);
      const stalled = await node.get(["pods", "-n", ns, "-l", "app=stalled"]);
      const after = await node.get(["events", "-n", ns]);
      const stalledEvents = after.items.filter((e: Manifest) =>
        e.involvedObject.name === stalled.items[0].metadata.name
      ).map(eventLine);
      note(
        `- **stalled** (API server stopped ${
          2 * P + 1
        }s; timeoutSeconds 2 under --timeout=4s): restartCount ${
          stalled.items[0].status.containerStatuses[0].restartCount
        }`,
      );
      for (const e of stalledEvents) note(`  - event ${e}`);
      assert.ok(
        stalledEvents.some((e: string) => /timed out/i.test(e)),
        "the kubelet killed a check",
      );
      assert.equal(
        stalled.items[0].status.containerStatuses[0].restartCount,
        0,
        "the next check passed",
      );
    });

    await t.step(
      "a StatefulSet and a DaemonSet through their components: the probe runs, alive, never restarted",
      async () => {
        const ns = "kinds";
        await node.apply(ns, platformNamespace(ns));
        const release = await node.kubectl(["apply", "-n", ns, "-k", "log-probe"], { cwd: work });
        assert.equal(release.code, 0, release.stderr);
        for (const kind of ["StatefulSet", "DaemonSet"]) {
          const name = `${kind.toLowerCase()}-worker`;
          const component = `log-probe-${kind.toLowerCase()}`;
          const [account, deployment] = foreignWorker(name, "work", SCRIPTS.every2s);
          const workload = { ...deployment, kind };
          if (kind === "StatefulSet") workload.spec.serviceName = name;
          else delete workload.spec.replicas;
          const dir = `${work}/${name}`;
          await Deno.mkdir(dir);
          await Deno.writeTextFile(
            `${dir}/workload.yaml`,
            [account, workload].map((o) => JSON.stringify(o)).join("\n---\n"),
          );
          // README, Install, step 2 for this kind: its component's container.yaml, two names set.
          await Deno.writeTextFile(
            `${dir}/log-probe.yaml`,
            Deno.readTextFileSync(`${ROOT}components/${component}/container.yaml`)
              .replace(/name: \S+ # ①/, `name: ${name} # ①`)
              .replace(/- name: \S+ # ②/, "- name: work # ②")
              .replace(/- --container=[^\s#]+/, "- --container=work"),
          );
          await Deno.writeTextFile(
            `${dir}/kustomization.yaml`,
            `resources:\n  - workload.yaml\ncomponents:\n  - ../log-probe/components/${component}\npatches:\n  - path: log-probe.yaml\n`,
          );
          const rendered = await renderKustomization(dir);
          await node.apply(ns, rendered.map((m) => m.kind === kind ? scaled(m) : m));
          const pod = await runningPod(node, ns, name);
          // Five periods of the scaled probe, then its verdict and the kubelet's count.
          await sleep(5 * TIMINGS.period * 1000);
          const now = (await node.get(["pods", "-n", ns, "-l", `app=${name}`])).items[0];
          const restarts = now.status.containerStatuses[0].restartCount;
          const command: string[] = now.spec.containers.find((c: Manifest) => c.name === "work")
            .livenessProbe.exec.command;
          const check = await node.kubectl([
            "exec",
            "-n",
            ns,
            pod.metadata.name,
            "-c",
            "work",
            "--",
            ...command,
          ]);
          const events = await node.get(["events", "-n", ns]);
          const unhealthy = events.items.filter((e: Manifest) =>
            e.reason === "Unhealthy" && e.involvedObject.name === pod.metadata.name
          ).length;
          note(
            `- ${kind} through \`components/${component}\`: restartCount ${restarts}, ` +
              `Unhealthy events ${unhealthy}; the probe's command run by hand: exit ${check.code} ` +
              `\`${check.stdout.trim()}\``,
          );
          assert.equal(restarts, 0, kind);
          assert.equal(unhealthy, 0, kind);
          assert.equal(check.code, 0, check.stdout + check.stderr);
          assert.match(check.stdout, /^alive: output \d+s ago/);
        }
      },
    );

    await t.step(
      "examples/image-volume: Deno from an image volume, no init container",
      async () => {
        const ns = "images";
        await node.apply(ns, platformNamespace(ns));
        for (const dir of [ROOT, `${ROOT}examples/image-volume`]) {
          const applied = await node.kubectl(["apply", "-n", ns, "-k", dir]);
          note(
            `- \`kubectl apply -n ${ns} -k ${
              dir.replace(ROOT, "") || "."
            }\`: exit ${applied.code}\n${indent(applied.stdout + applied.stderr)}`,
          );
          assert.equal(applied.code, 0, applied.stderr);
        }
        const pod = await runningPod(node, ns, "worker");
        assert.equal(pod.spec.initContainers, undefined, "no init container");
        const command: string[] = pod.spec.containers[0].livenessProbe.exec.command;
        const at = command.findIndex((arg) => arg.endsWith("/probe.ts"));
        const doctor = await node.kubectl([
          "exec",
          "-n",
          ns,
          pod.metadata.name,
          "-c",
          "worker",
          "--",
          ...command.slice(0, at + 1),
          "doctor",
          ...command.slice(at + 1),
        ]);
        note(
          `- image volume, doctor: exit ${doctor.code}\n${indent(doctor.stdout + doctor.stderr)}`,
        );
        assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
        const podDir = await du(`${node.dir}/var-lib/kubelet/pods/${pod.metadata.uid}`);
        note(
          `- image volume: the pod's folder ${mib(podDir)} (no copy); the image, once per node: ${
            mib(await du(`${node.bin}/image-volume.tar`))
          }`,
        );
      },
    );
    failed = false;
  } finally {
    const down = await node.down();
    note(
      `- node down: exit ${down.code}${
        down.left
          ? `, left: ${down.left}`
          : ", nothing left on the host (processes, mounts, cgroups, sysctls, addresses, paths)"
      }`,
    );
    note(`- the whole run: ${seconds(performance.now() - testStarted)}s`);
    const folder = Deno.env.get("E2E_RECORD");
    if (folder) await Deno.writeTextFile(`${folder}/node.md`, record.join("\n") + "\n");
    if (!Deno.env.get("E2E_KEEP") && !failed) await Deno.remove(node.dir, { recursive: true });
    await Deno.remove(work, { recursive: true });
    assert.equal(down.left, "", "the node left nothing on the host");
    assert.equal(down.code, 0);
  }
});

/**
 * Whether the `k`-th instance's counter, as sampled, ever counted a blind check (lost or
 * unreadable; the counter's seventh field, `log-probe/4`).
 */
function blindSeen(w: Watched, k: number): boolean {
  const instances = [...Map.groupBy(w.counters, (c) => c.split(" ")[1]).values()];
  return (instances[k] ?? []).some((c) => Number(c.split(" ")[6]) > 0);
}

/** An event as `kubectl describe` counts it, its message exactly (the kubelet keeps the probe's newline). */
function eventLine(event: Manifest): string {
  return `${event.reason} ×${event.count ?? 1}: ${JSON.stringify(event.message)}`;
}

function indent(text: string): string {
  return text.trim().split("\n").map((line) => `    ${line}`).join("\n");
}

/** The newest CRI log line of instance `instance` in its (uncompressed) log files, or "". */
async function newestLine(node: RealNode, pod: Manifest, instance: number) {
  const logDir = node.logDir(pod, "sync");
  let last = "";
  for (const file of await listDir(logDir)) {
    if (file !== `${instance}.log` && !file.startsWith(`${instance}.log.`)) continue;
    if (file.endsWith(".gz")) continue; // older than the uncompressed ones
    const text = await Deno.readTextFile(`${logDir}/${file}`).catch(() => "");
    for (const line of text.split("\n")) {
      const at = Date.parse(line.split(" ")[0]);
      if (at >= (Date.parse(last.split(" ")[0]) || 0)) last = line;
    }
  }
  return last;
}

/**
 * The instance the kubelet just ended: its last line, when, and the files the next one got. The
 * ended instance's status (lastState) can lag its restart count for a moment, and its log files
 * can be gone already (once in several runs): then the status is read again, and the line last
 * sampled while it ran stands in.
 */
async function restartOf(
  node: RealNode,
  ns: string,
  pod: Manifest,
  app: Manifest,
  sampled: Map<number, string>,
): Promise<Restart> {
  const podDir = `${node.dir}/var-lib/kubelet/pods/${pod.metadata.uid}/containers/sync`;
  const logDir = node.logDir(pod, "sync");
  const instance = app.restartCount - 1;
  // `kubectl logs --previous` reads only its current file, empty when the kubelet rotated it
  // after the last line: the files on the node are read instead.
  let last = await newestLine(node, pod, instance);
  if (!last) last = sampled.get(instance) ?? "";
  for (let i = 0; i < 10 && !app.lastState.terminated; i++) {
    await sleep(500);
    const again = await node.get(["pod", "-n", ns, pod.metadata.name]);
    app = again.status.containerStatuses.find((c: Manifest) => c.name === "sync");
  }
  // CRI: RFC3339Nano stamp, stream, P/F tag, text.
  const [stamp, , , ...text] = last.split(" ");
  const ended = app.lastState.terminated ?? {};
  const lastLineAt = Date.parse(stamp) / 1000;
  let finishedAt = Date.parse(ended.finishedAt) / 1000;
  if (isNaN(finishedAt)) {
    // No status of the ended instance: the time of the kubelet's last Killing event for the pod.
    const events = await node.get(["events", "-n", ns]);
    const killing = events.items.filter((e: Manifest) =>
      e.reason === "Killing" && e.involvedObject.name === pod.metadata.name
    ).map((e: Manifest) => Date.parse(e.lastTimestamp ?? e.eventTime) / 1000);
    // The kubelet decides, then stops the container: its finishedAt would be a moment later.
    if (killing.length === 0) throw new Error(`${pod.metadata.name}: no status, no Killing event`);
    finishedAt = Math.max(...killing);
  }
  return {
    restartCount: app.restartCount,
    lastLine: text.join(" "),
    lastLineAt,
    finishedAt,
    startedAt: Date.parse(ended.startedAt) / 1000,
    reason: ended.reason ?? "no lastState (the Killing event's time)",
    exitCode: ended.exitCode ?? -1,
    // finishedAt is whole seconds (truncated): the kill came within the second after it.
    silence: Math.round((finishedAt + 0.5 - lastLineAt) * 10) / 10,
    logFiles: await listDir(logDir),
    terminationFiles: await Promise.all(
      (await listDir(podDir)).map(async (f) =>
        `${f} (mode ${((await Deno.stat(`${podDir}/${f}`)).mode! & 0o777).toString(8)})`
      ),
    ),
  };
}

/** The probe's counter file in the container (the state emptyDir outlives restarts). */
async function stateFile(
  node: RealNode,
  ns: string,
  pod: Manifest,
): Promise<string | undefined> {
  const cat = await node.kubectl([
    "exec",
    "-n",
    ns,
    pod.metadata.name,
    "-c",
    "sync",
    "--",
    "cat",
    `${stateFlag(pod)}.sync`,
  ]);
  return cat.code === 0 ? cat.stdout.trim() : undefined;
}

/** The probed container's --state-file (the probe adds `.<container>`). */
function stateFlag(pod: Manifest): string {
  const command: string[] = pod.spec.containers.find((c: Manifest) => c.livenessProbe)
    .livenessProbe.exec.command;
  return command.find((arg) => arg.startsWith("--state-file="))?.split("=")[1] ??
    "/var/lib/log-probe/state";
}

/** Stops the API server (SIGSTOP) for `seconds`, then lets it go on. */
async function stallApiServer(node: RealNode, seconds: number): Promise<void> {
  const pid = (await Deno.readTextFile(`${node.dir}/apiserver.pid`)).trim();
  const stop = await node.exec(["kill", "-STOP", pid]);
  assert.equal(stop.code, 0, stop.stderr);
  await sleep(seconds * 1000);
  const go = await node.exec(["kill", "-CONT", pid]);
  assert.equal(go.code, 0, go.stderr);
}
