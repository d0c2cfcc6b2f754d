/**
 * The shipped manifests, rendered with `kubectl kustomize`, checked for least
 * privilege and the "restricted" Pod Security Standard, and the rendered probe
 * command run the way the kubelet runs it: inside a sandbox with the pod's
 * files at their real paths.
 */
import assert from "node:assert/strict";
import { LINEAR_REGEXP_FLAG, type PlanOptions, simulate } from "../probe.ts";
import { compileArgs, compileProbe } from "../testing/compile.ts";
import { commandOutput } from "../testing/cluster.ts";
import {
  canSandbox,
  hasKubectl,
  KubeletPod,
  type Manifest,
  only,
  render,
  ROOT,
} from "../testing/kubelet.ts";

const EXAMPLES = [
  "examples/deployment",
  "examples/dedicated-account",
  "examples/quick",
  "examples/compiled",
];
const NO_KUBECTL = hasKubectl ? "" : " (skipped: kubectl is not installed)";
const NO_SANDBOX = !hasKubectl
  ? NO_KUBECTL
  : canSandbox
  ? ""
  : " (skipped: needs root and unshare for a private mount namespace)";

function workerOf(deployment: Manifest): Manifest {
  return deployment.spec.template.spec.containers[0];
}

/** Splits the probe argv into Deno's flags, the script and the probe's own flags. */
function probeArgv(container: Manifest): { flags: string[]; script: string; args: string[] } {
  const command: string[] = container.livenessProbe.exec.command;
  const run = command.indexOf("run");
  const script = command.findIndex((arg, i) => i > run && !arg.startsWith("-"));
  return {
    flags: command.slice(run + 1, script),
    script: command[script],
    args: command.slice(script + 1),
  };
}

Deno.test({
  name:
    `the root renders one release: a Role and log-probe-v<VERSION> holding probe.ts and install-deno.sh${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const manifests = await render(".");
    assert.deepEqual(manifests.map((m) => m.kind).sort(), ["ConfigMap", "Role"]);
    const version = (await Deno.readTextFile(`${ROOT}VERSION`)).trim();
    assert.match(version, /^\d+\.\d+\.\d+$/);
    const probe = await Deno.readTextFile(`${ROOT}probe.ts`);
    assert.ok(probe.includes(`export const VERSION = "${version}";`), "probe.ts's VERSION");
    const configMap = only(manifests, "ConfigMap");
    assert.equal(configMap.metadata.name, `log-probe-v${version}`);
    assert.ok(!manifests.some((m) => m.metadata.namespace), "no namespace: -n decides");
    assert.deepEqual(configMap.data, {
      "probe.ts": probe,
      "install-deno.sh": await Deno.readTextFile(`${ROOT}manifests/install-deno.sh`),
    });
    for (const dir of EXAMPLES) {
      const deployment = only(await render(dir), "Deployment");
      const names = deployment.spec.template.spec.volumes.map((v: Manifest) => v.configMap?.name);
      assert.ok(
        !names.some((n: string) => n?.startsWith("log-probe") && n !== configMap.metadata.name),
        dir,
      );
    }
  },
});

Deno.test({
  name:
    `the Role grants get on pods/log and nothing else, bound to the account the workload runs as${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const role = only(await render("."), "Role");
    assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["pods/log"], verbs: ["get"] }]);
    const accounts: Record<string, string> = {
      "examples/deployment": "worker", // the workload's own, kept
      "examples/dedicated-account": "log-probe", // for a workload that had none
    };
    for (const [dir, account] of Object.entries(accounts)) {
      const manifests = await render(dir);
      assert.ok(!manifests.some((m) => m.kind.startsWith("Cluster")), "no cluster-wide RBAC");
      assert.ok(!manifests.some((m) => m.metadata.namespace), `${dir}: no namespace: -n decides`);
      const deployment = only(manifests, "Deployment");
      assert.equal(deployment.spec.template.spec.serviceAccountName, account, dir);
      assert.equal(only(manifests, "ServiceAccount").metadata.name, account, dir);
      const binding = only(manifests, "RoleBinding");
      assert.deepEqual(binding.roleRef, {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "Role",
        name: role.metadata.name,
      });
      // No namespace: in a RoleBinding, that is the binding's own.
      assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: account }], dir);
    }
    const patch = await Deno.readTextFile(`${ROOT}examples/deployment/log-probe-patch.yaml`);
    assert.ok(!patch.includes("serviceAccountName:"), "the patch leaves the account alone");
  },
});

Deno.test({
  name:
    `the example's probe: plain argv, fewest Deno permissions, offline, article timings${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const deployment = only(await render("examples/deployment"), "Deployment");
    const worker = workerOf(deployment);
    const { flags, script, args } = probeArgv(worker);
    const command: string[] = worker.livenessProbe.exec.command;
    assert.ok(!command.some((arg) => /^(-A|--allow-all)$/.test(arg)));
    for (
      const flag of [
        "--no-prompt",
        "--no-config",
        "--no-lock",
        "--no-remote",
        "--no-npm",
        LINEAR_REGEXP_FLAG, // so that --match/--ignore, once added, run in linear time
      ]
    ) {
      assert.ok(flags.includes(flag), flag);
    }
    const permissions = flags.filter((flag) => flag.startsWith("--allow-"));
    assert.deepEqual(permissions, [
      "--allow-read=/var/run/secrets/kubernetes.io/serviceaccount,/termination-log,/var/lib/log-probe",
      "--allow-write=/var/lib/log-probe",
      "--allow-env=POD_NAME,NO_PROXY",
      "--allow-net=kubernetes.default.svc",
    ]);
    const mount = worker.volumeMounts.find((m: Manifest) =>
      deployment.spec.template.spec.volumes.find((v: Manifest) => v.name === m.name).configMap
    );
    assert.equal(script, `${mount.mountPath}/probe.ts`);
    assert.ok(mount.readOnly);
    assert.deepEqual(args, [
      "--state-file=/var/lib/log-probe/state",
      `--termination-message-path=${worker.terminationMessagePath}`,
    ]);
    const { initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold } =
      worker.livenessProbe;
    assert.deepEqual([initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold], [
      120,
      60,
      10,
      15,
    ]);
    assert.deepEqual(worker.env.find((e: Manifest) => e.name === "POD_NAME").valueFrom, {
      fieldRef: { fieldPath: "metadata.name" },
    });
    // Deno through the loader the init container copied: nothing from the app's image.
    const init = deployment.spec.template.spec.initContainers[0];
    const deno = init.volumeMounts.find((m: Manifest) => m.name === "deno").mountPath;
    assert.deepEqual(command.slice(0, 5), [
      `${deno}/ld.so`,
      "--library-path",
      deno,
      `${deno}/deno`,
      "run",
    ]);
  },
});

/** The rules of the Pod Security Standards "restricted" profile that a Deployment can break. */
function restrictedViolations(podSpec: Manifest): string[] {
  const problems: string[] = [];
  const pod = podSpec.securityContext ?? {};
  for (const field of ["hostNetwork", "hostPID", "hostIPC"]) {
    if (podSpec[field]) problems.push(field);
  }
  const allowed = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
  ];
  for (const volume of podSpec.volumes ?? []) {
    const type = Object.keys(volume).find((key) => key !== "name");
    if (!allowed.includes(type!)) problems.push(`volume ${volume.name} is ${type}`);
  }
  const containers = [...(podSpec.initContainers ?? []), ...podSpec.containers];
  for (const container of containers) {
    const sc = container.securityContext ?? {};
    const where = `container ${container.name}`;
    if (sc.privileged) problems.push(`${where}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: privilege escalation`);
    if (!(sc.runAsNonRoot ?? pod.runAsNonRoot)) problems.push(`${where}: may run as root`);
    if ((sc.runAsUser ?? pod.runAsUser) === 0) problems.push(`${where}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? pod.seccompProfile)?.type;
    if (!["RuntimeDefault", "Localhost"].includes(seccomp)) problems.push(`${where}: seccomp`);
    if (!sc.capabilities?.drop?.includes("ALL")) {
      problems.push(`${where}: capabilities not dropped`);
    }
    for (const cap of sc.capabilities?.add ?? []) {
      if (cap !== "NET_BIND_SERVICE") problems.push(`${where}: adds ${cap}`);
    }
    if (container.ports?.some((p: Manifest) => p.hostPort)) problems.push(`${where}: hostPort`);
    if (!sc.readOnlyRootFilesystem) problems.push(`${where}: writable root file system`);
  }
  return problems;
}

Deno.test({
  name: `every example meets the "restricted" Pod Security Standard${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    for (const dir of EXAMPLES) {
      const deployment = only(await render(dir), "Deployment");
      assert.deepEqual(restrictedViolations(deployment.spec.template.spec), [], dir);
    }
    const broken = structuredClone(
      only(await render("examples/deployment"), "Deployment").spec.template.spec,
    );
    broken.containers[0].securityContext.allowPrivilegeEscalation = true;
    broken.volumes.push({ name: "host", hostPath: { path: "/" } });
    assert.equal(restrictedViolations(broken).length, 2, "the check itself can fail");
  },
});

Deno.test({
  name:
    `the quick overlay only shortens timings; the compiled one bakes in the same permissions${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const base = workerOf(only(await render("examples/deployment"), "Deployment"));
    const quick = workerOf(only(await render("examples/quick"), "Deployment"));
    const baseProbe = probeArgv(base);
    const quickProbe = probeArgv(quick);
    assert.deepEqual(quickProbe.flags, baseProbe.flags);
    assert.deepEqual(quickProbe.args, [...baseProbe.args, "--window=10s", "--timeout=4s"]);
    assert.equal(quick.livenessProbe.periodSeconds, 10);
    assert.equal(quick.livenessProbe.failureThreshold, 3);
    assert.ok(quick.livenessProbe.timeoutSeconds > 4);
    const compiled = only(await render("examples/compiled"), "Deployment");
    const container = workerOf(compiled);
    assert.deepEqual(container.livenessProbe.exec.command, [
      "/usr/local/bin/log-probe",
      ...baseProbe.args,
    ]);
    assert.equal(compiled.spec.template.spec.initContainers, undefined);
    const baked = (await compileArgs("")).filter((arg) => arg.startsWith("--allow-"));
    assert.deepEqual(baked, baseProbe.flags.filter((flag) => flag.startsWith("--allow-")));
  },
});

// ---------------------------------------------------------------------------
// The rendered probe command, run as the kubelet runs it

async function withSandbox(
  overlay: string,
  test: (pod: KubeletPod) => Promise<void>,
): Promise<void> {
  const mountsBefore = await commandOutput("cat", ["/proc/self/mountinfo"]);
  const hostDirs = ["/", "/run", "/var", "/var/lib", "/opt", "/etc", "/dev", "/usr/local/bin"];
  const filesBefore = await commandOutput("ls", ["-a", ...hostDirs]);
  const pod = await KubeletPod.create(overlay);
  const dir = pod.dir;
  try {
    await test(pod);
    for (const output of pod.outputs) assert.ok(!output.includes(pod.token), "token printed");
  } finally {
    await pod.close();
  }
  assert.equal(await commandOutput("cat", ["/proc/self/mountinfo"]), mountsBefore, "mounts left");
  assert.equal(await commandOutput("ls", ["-a", ...hostDirs]), filesBefore, "host files changed");
  const processes = await commandOutput("ps", ["-eo", "args"]);
  assert.ok(!processes.includes(dir), "processes left"); // this pod's: other runs may be going
}

Deno.test({
  name:
    `the quick example's probe command, run as the kubelet would: alive, silent, restart${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/quick", async (pod) => {
      const probe = pod.container.livenessProbe;
      const start = pod.server.now;
      // The worker prints ten jobs, three seconds apart, then hangs.
      for (let i = 1; i <= 10; i++) pod.log(`processed job ${i}`, start + i * 3000);
      const lastLine = 30;
      const verdicts: string[] = [];
      let failures = 0;
      let restartAt = 0;
      for (let t = probe.initialDelaySeconds; !restartAt; t += probe.periodSeconds) {
        assert.ok(t < 600, "no restart within ten minutes");
        pod.server.now = start + t * 1000;
        const run = await pod.exec(pod.probeCommand, { virtualClock: true });
        assert.equal(run.stderr, "", "no permission prompt, denial or warning");
        verdicts.push(run.stdout.split(":")[0]);
        failures = run.code === 0 ? 0 : failures + 1;
        if (failures === probe.failureThreshold) restartAt = t;
      }
      assert.equal(verdicts[0], "alive");
      assert.equal(verdicts.at(-1), "silent");
      assert.ok(!verdicts.some((v) => v === "error" || v === "unknown"), verdicts.join(" "));
      const plan: PlanOptions = {
        window: 10,
        growth: "triangular",
        period: probe.periodSeconds,
        failureThreshold: probe.failureThreshold,
      };
      const phase = Math.ceil(lastLine / probe.periodSeconds) * probe.periodSeconds - lastLine ||
        probe.periodSeconds;
      assert.equal(restartAt - lastLine, simulate(plan, phase).restartAfter);
      // The restarted container starts with a fresh counter, though the emptyDir kept it.
      const state = await Deno.readTextFile(`${pod.emptyDir("log-probe-state")}/state`);
      assert.match(
        state,
        new RegExp(`^3 \\d+:\\d+ ${new Date(start + lastLine * 1000).toISOString()} fail\n$`),
      );
      await pod.restart();
      pod.log("processed job 1", pod.server.now);
      const fresh = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(fresh.code, 0);
      assert.equal(
        fresh.stdout,
        "alive: output in the last 10s; counter of a previous container instance discarded\n",
      );
      pod.server.now += 11_000;
      const silent = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(
        silent.stdout,
        "silent: no output in the last 10s (1 silent check in a row; next window 30s); last output 11s ago\n",
      );
    });
  },
});

Deno.test({
  name: `the example's Deno permissions are enough, and each one is needed${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/deployment", async (pod) => {
      const command = pod.probeCommand;
      pod.log("processed job 1", pod.server.now - 61_000); // a silent check: reads and writes
      const full = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(full.stderr, "");
      assert.equal(
        full.stdout,
        "silent: no output in the last 60s (1 silent check in a row; next window 180s); last output 1m1s ago\n",
      );
      assert.equal(full.code, 1);
      const reduced: Array<[string, string[]]> = [];
      for (const [i, flag] of command.entries()) {
        if (!flag.startsWith("--allow-")) continue;
        reduced.push([`without ${flag}`, command.filter((_, j) => j !== i)]);
        const [name, list] = flag.split("=");
        const entries = list.split(",");
        if (entries.length < 2) continue;
        for (const entry of entries) {
          const fewer = `${name}=${entries.filter((e) => e !== entry).join(",")}`;
          reduced.push([`without ${entry} in ${name}`, command.map((a, j) => j === i ? fewer : a)]);
        }
      }
      assert.equal(reduced.length, 9);
      for (const [what, fewer] of reduced) {
        await pod.resetVolumes();
        const run = await pod.exec(fewer, { virtualClock: true });
        assert.ok(
          run.code !== full.code || /error|warning/.test(run.stdout),
          `${what}: ${run.code} ${run.stdout}`,
        );
        assert.equal(run.stdout.split("\n").length, 2, `${what}: one line`);
      }
    });
  },
});

Deno.test({
  name:
    `the probe's root holds only the pod's mounts: no libc, no shell, no /etc/nsswitch.conf${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/deployment", async (pod) => {
      const deno = pod.probeCommand.slice(0, pod.probeCommand.indexOf("run"));
      const list = "for (const d of ['/', '/etc']) console.log(d, [...Deno.readDirSync(d)]" +
        ".map((e) => e.name).sort().join(' '))";
      const run = await pod.exec([...deno, "eval", list]);
      assert.equal(run.stderr, "");
      assert.equal(run.stdout, "/ dev etc opt proc termination-log var\n/etc hosts\n");
    });
  },
});

/** Median wall time in milliseconds of `runs` sandboxed runs of each command, interleaved. */
async function medians(
  pod: KubeletPod,
  variants: Array<{ argv: string[]; env?: Record<string, string>; mounts?: string[] }>,
  runs: number,
): Promise<number[]> {
  const times: number[][] = variants.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [v, variant] of variants.entries()) {
      const start = performance.now();
      const run = await pod.exec(variant.argv, variant);
      times[v].push(performance.now() - start);
      assert.equal(run.code, 0, run.stdout + run.stderr);
    }
  }
  return times.map((t) => t.sort((a, b) => a - b)[Math.floor(runs / 2)]);
}

Deno.test({
  name:
    `the example's probe pays no cache penalty: as fast as with a known-writable DENO_DIR${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/deployment", async (pod) => {
      pod.log("processed job 1");
      const cache = await Deno.makeTempDir({ dir: pod.dir, prefix: "cache-" });
      await Deno.chmod(cache, 0o777);
      // The sandbox's own set-up, measured with `deno --version`, is taken off both.
      const deno = pod.probeCommand.slice(0, pod.probeCommand.indexOf("run"));
      const [sandbox, ...probe] = await medians(pod, [
        { argv: [...deno, "--version"] },
        { argv: pod.probeCommand },
        { argv: pod.probeCommand, env: { DENO_DIR: "/cache" }, mounts: [`${cache} /cache rw`] },
      ], 5);
      const [shipped, writable] = probe.map((ms) => Math.max(1, ms - sandbox));
      const used = await commandOutput("du", ["-sk", `${pod.emptyDir("log-probe-state")}`]);
      console.log(
        `median of 5, sandbox set-up (${sandbox.toFixed(0)} ms) taken off: shipped ${
          shipped.toFixed(0)
        } ms, writable cache ${writable.toFixed(0)} ms (${
          (shipped / writable).toFixed(2)
        }x); state and cache ${used.split("\t")[0]} KiB`,
      );
      // A cache Deno cannot write costs about 150 ms more per run of a ~50 ms check.
      assert.ok(shipped / writable < 1.5, `${shipped} ms vs ${writable} ms`);
    });
  },
});

const COMPILED_DIR = await Deno.makeTempDir({ prefix: "log-probe-compiled-" });
const NO_COMPILE = await compileProbe(COMPILED_DIR).then((why) => why && ` (skipped: ${why})`);

Deno.test({
  name: `the binary from deno task compile runs as the compiled example's probe${
    NO_COMPILE || NO_SANDBOX
  }`,
  ignore: NO_COMPILE !== "" || !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/compiled", async (pod) => {
      const command: string[] = pod.container.livenessProbe.exec.command;
      assert.equal(command[0], "/usr/local/bin/log-probe");
      const bin = [`${COMPILED_DIR} /usr/local/bin ro`];
      pod.log("processed job 1", pod.server.now);
      const alive = await pod.exec(command, { mounts: bin, image: "host" });
      assert.equal(alive.stderr, "");
      assert.equal(alive.stdout, "alive: output in the last 60s\n");
      pod.server.now += 61_000;
      const silent = await pod.exec(command, { mounts: bin, image: "host" });
      assert.equal(silent.code, 1);
      assert.match(silent.stdout, /^silent: no output in the last 60s \(1 silent check/);
    });
  },
});

Deno.test("remove the compiled binary's folder", async () => {
  await Deno.remove(COMPILED_DIR, { recursive: true });
});
