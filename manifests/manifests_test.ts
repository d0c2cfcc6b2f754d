/**
 * The shipped manifests, rendered with `kubectl kustomize`, checked for least
 * privilege and the "restricted" Pod Security Standard, and the rendered probe
 * command run the way the kubelet runs it: inside a sandbox with the pod's
 * files at their real paths.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  formatDuration,
  limitOf,
  LINEAR_REGEXP_FLAG,
  type PlanOptions,
  restartAfter,
} from "../probe.ts";
import { compileArgs, compileProbe } from "../testing/compile.ts";
import { commandOutput } from "../testing/cluster.ts";
import {
  assertSaidAfter,
  canSandbox,
  hasKubectl,
  KubeletPod,
  type Manifest,
  NO_KUBECTL,
  NO_SANDBOX,
  only,
  render,
  ROOT,
} from "../testing/kubelet.ts";
import { restrictedViolations } from "./pod_security.ts";

const EXAMPLES = [
  "examples/deployment",
  "examples/dedicated-account",
  "examples/quick",
  "examples/compiled",
  "examples/automount-off",
  "examples/image-volume",
];
const COMPONENT = "components/log-probe";

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
    assert.equal(configMap.immutable, true, "a release never changes under a running pod");
    assert.ok(!manifests.some((m) => m.metadata.namespace), "no namespace: -n decides");
    const component = await Deno.readTextFile(`${ROOT}components/log-probe/pod.yaml`);
    assert.ok(component.includes(`name: log-probe-v${version}\n`), "the component mounts it");
    for (const entry of Deno.readDirSync(`${ROOT}${COMPONENT}`)) {
      const text = await Deno.readTextFile(`${ROOT}${COMPONENT}/${entry.name}`);
      const named = text.replaceAll("2.9.6", "").match(/\d+\.\d+\.\d+/g) ?? [];
      assert.deepEqual(named.filter((v) => v !== version), [], `${entry.name} names the release`);
    }
    const changelog = await Deno.readTextFile(`${ROOT}CHANGELOG.md`);
    assert.ok(changelog.includes(`\n## ${version} `), "CHANGELOG.md has the release");
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
    const bindingName = "log-probe-worker"; // after the Deployment
    for (const [dir, account] of Object.entries(accounts)) {
      const manifests = await render(dir);
      assert.ok(!manifests.some((m) => m.kind.startsWith("Cluster")), "no cluster-wide RBAC");
      assert.ok(!manifests.some((m) => m.metadata.namespace), `${dir}: no namespace: -n decides`);
      const deployment = only(manifests, "Deployment");
      assert.equal(deployment.spec.template.spec.serviceAccountName, account, dir);
      assert.equal(only(manifests, "ServiceAccount").metadata.name, account, dir);
      const binding = only(manifests, "RoleBinding");
      assert.equal(binding.metadata.name, bindingName, dir);
      assert.deepEqual(binding.roleRef, {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "Role",
        name: role.metadata.name,
      });
      // No namespace: in a RoleBinding, that is the binding's own.
      assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: account }], dir);
    }
    for (const file of ["pod.yaml", "container.yaml", "plain-patch.yaml"]) {
      const patch = await Deno.readTextFile(`${ROOT}${COMPONENT}/${file}`);
      assert.ok(!patch.includes("serviceAccountName:"), `${file} leaves the account alone`);
    }
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
      "--allow-read=/var/run/secrets/kubernetes.io/serviceaccount,/opt/log-probe/termination-log,/var/lib/log-probe",
      "--allow-write=/var/lib/log-probe",
      "--allow-env=LOG_PROBE_POD_NAME,NO_PROXY",
      "--allow-net=kubernetes.default.svc",
    ]);
    const mount = worker.volumeMounts.find((m: Manifest) =>
      deployment.spec.template.spec.volumes.find((v: Manifest) => v.name === m.name).configMap
    );
    assert.equal(script, `${mount.mountPath}/probe.ts`);
    assert.ok(mount.readOnly);
    const { initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold } =
      worker.livenessProbe;
    assert.deepEqual(args, [
      `--container=${worker.name}`,
      `--period=${periodSeconds}s`,
      `--failure-threshold=${failureThreshold}`,
      "--state-file=/var/lib/log-probe/state",
      `--termination-message-path=${worker.terminationMessagePath}`,
    ]);
    assert.deepEqual([initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold], [
      120,
      60,
      10,
      15,
    ]);
    // What the app's environment gains, for a reason given in container.yaml: no DENO_DIR.
    assert.deepEqual(worker.env.map((e: Manifest) => e.name), ["LOG_PROBE_POD_NAME"]);
    assert.deepEqual(worker.env.find((e: Manifest) => e.name === "LOG_PROBE_POD_NAME").valueFrom, {
      fieldRef: { fieldPath: "metadata.name" },
    });
    // Deno through the loader the init container copied: nothing from the app's image.
    const init = deployment.spec.template.spec.initContainers[0];
    const deno = init.volumeMounts.find((m: Manifest) => m.name === "log-probe-deno").mountPath;
    const loader = [`${deno}/ld.so`, "--library-path", deno];
    // env(1), also copied, gives Deno a writable cache for the probe alone.
    assert.deepEqual(command.slice(0, 10), [
      ...loader,
      `${deno}/env`,
      "DENO_DIR=/var/lib/log-probe/deno",
      ...loader,
      `${deno}/deno`,
      "run",
    ]);
  },
});

Deno.test({
  name:
    `every example's probe names its container and repeats the kubelet's period and threshold${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    for (const dir of EXAMPLES) {
      const spec = only(await render(dir), "Deployment").spec.template.spec;
      const probed = spec.containers.filter((c: Manifest) => c.livenessProbe);
      assert.equal(probed.length, 1, dir);
      const [{ name, livenessProbe }] = probed;
      const command: string[] = livenessProbe.exec.command;
      for (
        const flag of [
          `--container=${name}`,
          `--period=${livenessProbe.periodSeconds}s`,
          `--failure-threshold=${livenessProbe.failureThreshold}`,
        ]
      ) {
        assert.equal(command.filter((arg) => arg === flag).length, 1, `${dir}: ${flag}`);
      }
    }
  },
});

Deno.test({
  name: `every example meets the "restricted" Pod Security Standard${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    for (const dir of EXAMPLES) {
      const deployment = only(await render(dir), "Deployment");
      const readOnlyRoot = () => true;
      assert.deepEqual(
        restrictedViolations(deployment.spec.template.spec, { readOnlyRoot }),
        [],
        dir,
      );
    }
    const broken = structuredClone(
      only(await render("examples/deployment"), "Deployment").spec.template.spec,
    );
    broken.containers[0].securityContext.allowPrivilegeEscalation = true;
    broken.volumes.push({ name: "host", hostPath: { path: "/" } });
    assert.equal(restrictedViolations(broken).length, 2, "the check itself can fail");
    delete broken.initContainers[0].securityContext.runAsNonRoot;
    assert.equal(restrictedViolations(broken).length, 2, "the pod's runAsNonRoot stands in");
    broken.securityContext = {};
    assert.ok(
      restrictedViolations(broken).includes("container log-probe-install-deno: may run as root"),
      "log-probe-install-deno needs its own runAsNonRoot where the pod sets none",
    );
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
    const shorter = baseProbe.args.map((arg) =>
      arg.replace(/^--period=.*/, "--period=10s").replace(
        /^--failure-threshold=.*/,
        "--failure-threshold=3",
      )
    );
    assert.deepEqual(quickProbe.args, [...shorter, "--window=10s", "--timeout=4s"]);
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

async function readYaml(path: string): Promise<Manifest> {
  return parseYaml(await Deno.readTextFile(`${ROOT}${path}`));
}

Deno.test(
  "the example copies container.yaml as is; plain-patch.yaml is pod.yaml and container.yaml in one",
  async () => {
    assert.equal(
      await Deno.readTextFile(`${ROOT}examples/deployment/log-probe.yaml`),
      await Deno.readTextFile(`${ROOT}${COMPONENT}/container.yaml`),
    );
    const pod = (await readYaml(`${COMPONENT}/pod.yaml`)).spec.template.spec;
    const container = (await readYaml(`${COMPONENT}/container.yaml`)).spec.template.spec;
    const plain = (await readYaml(`${COMPONENT}/plain-patch.yaml`)).spec.template.spec;
    // kubectl patch cannot replace a probe that may be missing: the header drops it first.
    assert.equal(container.containers[0].livenessProbe.$patch, "replace");
    delete container.containers[0].livenessProbe.$patch;
    assert.deepEqual(plain, { ...container, ...pod });
  },
);

/**
 * `kubectl kustomize` of a kustomization written to a temporary folder (`$ROOT/`
 * in a file stands for the repository's root): its output, or its error.
 */
async function renderFiles(
  files: Record<string, string>,
): Promise<{ manifests: Manifest[]; error: string }> {
  const dir = await Deno.makeTempDir({ prefix: "log-probe-kustomize-" });
  try {
    // kustomize takes no absolute paths: the repository's root, from the folder.
    const root = "../".repeat(dir.split("/").length - 1) + ROOT.slice(1);
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text.replaceAll("$ROOT/", root));
    }
    const output = await new Deno.Command("kubectl", {
      args: ["kustomize", dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    return {
      manifests: output.success ? text.split(/^---$/m).map((doc) => parseYaml(doc)) : [],
      error: new TextDecoder().decode(output.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function deploymentYaml(name: string, account?: string): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
spec:
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      ${account ? `serviceAccountName: ${account}` : ""}
      containers:
        - name: worker
          image: busybox
`;
}

Deno.test({
  name:
    `the component stops on two Deployments in one kustomization, or one without an account${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const kustomization = (resources: string[]) =>
      `resources: [${resources.join(", ")}]\ncomponents: [$ROOT/${COMPONENT}]\n`;
    const one = await renderFiles({
      "kustomization.yaml": kustomization(["a.yaml"]),
      "a.yaml": deploymentYaml("report-export", "exporter"),
    });
    assert.equal(one.error, "");
    const binding = only(one.manifests, "RoleBinding");
    assert.equal(binding.metadata.name, "log-probe-report-export");
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "exporter" }]);
    const two = await renderFiles({
      "kustomization.yaml": kustomization(["a.yaml", "b.yaml"]),
      "a.yaml": deploymentYaml("report-export", "exporter"),
      "b.yaml": deploymentYaml("billing-sync", "billing"),
    });
    assert.match(two.error, /multiple matches/);
    const none = await renderFiles({
      "kustomization.yaml": kustomization(["a.yaml"]),
      "a.yaml": deploymentYaml("report-export"),
    });
    assert.match(none.error, /serviceAccountName/);
  },
});

Deno.test({
  name:
    `kubectl patch as plain-patch.yaml says replaces the container's own liveness probe, adds what the component adds, and keeps the containers in place${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const rendered = only(await render("examples/deployment"), "Deployment").spec.template.spec;
    const plain = await Deno.readTextFile(`${ROOT}${COMPONENT}/plain-patch.yaml`);
    // The header's two patch commands, run locally on the container named worker.
    const [, nullProbe] = /--type strategic -p '([^']*)'/.exec(plain)!;
    assert.match(plain, /--type strategic --patch-file plain-patch.yaml\n/);
    const dir = await Deno.makeTempDir({ prefix: "log-probe-patch-" });
    try {
      const worker = (await Deno.readTextFile(`${ROOT}examples/deployment/worker.yaml`))
        .split(/^---$/m).find((doc) => doc.includes("kind: Deployment"))!
        .replace(
          "      containers:\n",
          "      containers:\n        - { name: istio-proxy, image: proxy }\n",
        );
      const own = "          livenessProbe: { httpGet: { path: /healthz, port: 8080 } }\n";
      const withProbe = worker.replace("          resources:\n", `${own}          resources:\n`);
      assert.notEqual(withProbe, worker);
      for (const [what, manifest] of [["no probe", worker], ["an httpGet probe", withProbe]]) {
        await Deno.writeTextFile(`${dir}/worker.yaml`, manifest);
        const dropped = await commandOutput("kubectl", [
          "patch",
          "--local",
          "-f",
          `${dir}/worker.yaml`,
          "--type",
          "strategic",
          "-p",
          nullProbe.replace("<container>", "worker"),
          "-o",
          "yaml",
        ]);
        await Deno.writeTextFile(`${dir}/dropped.yaml`, dropped);
        const output = await commandOutput("kubectl", [
          "patch",
          "--local",
          "-f",
          `${dir}/dropped.yaml`,
          "--type",
          "strategic",
          "--patch-file",
          `${ROOT}${COMPONENT}/plain-patch.yaml`,
          "-o",
          "yaml",
        ]);
        const patched = parseYaml(output).spec.template.spec;
        assert.deepEqual(
          patched.containers.map((c: Manifest) => c.name),
          ["istio-proxy", "worker"],
          what,
        );
        assert.deepEqual(patched.containers[0], { name: "istio-proxy", image: "proxy" }, what);
        assert.deepEqual(patched.containers[1], rendered.containers[0], what);
        assert.deepEqual(patched.initContainers, rendered.initContainers, what);
        const byName = (volumes: Manifest[]) =>
          Object.fromEntries(volumes.map((v: Manifest) => [v.name, v]));
        assert.deepEqual(byName(patched.volumes), byName(rendered.volumes), what);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------
// The rendered probe command, run as the kubelet runs it

/** The line of the first failing check, `silence` seconds after the last output. */
function firstFailure(plan: PlanOptions): (silence: number) => string {
  return (silence) =>
    `silent: no output for ${formatDuration(silence)}, over the ${
      formatDuration(limitOf(plan))
    } limit (1 failure in a row; the kubelet restarts at ${plan.failureThreshold})\n`;
}

/** The line of a passing check, `silence` seconds after the last output, with its notes. */
function alive(silence: number, notes = ""): string {
  return `alive: output ${formatDuration(silence)} ago${notes}\n`;
}

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
      const plan = pod.plan;
      const { limit, earliest, latest } = restartAfter(plan);
      const start = pod.server.now;
      // The worker prints ten jobs, three seconds apart, then hangs; the kubelet's checks come
      // at a phase of their own, half a second off the lines (so that none falls on the limit).
      for (let i = 1; i <= 10; i++) pod.log(`processed job ${i}`, start + i * 3000 - 500);
      const lastLine = 29.5;
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
      const silence = restartAt - lastLine;
      assert.ok(
        silence > earliest && silence <= latest,
        `${silence}s, plan: (${earliest}, ${latest}]`,
      );
      // The counter: the last line, where the last read ended and when it counted, the failures.
      const stamp = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z";
      const state = await Deno.readTextFile(
        `${pod.emptyDir("log-probe-state")}/state.${pod.container.name}`,
      );
      assert.match(
        state,
        new RegExp(
          `^log-probe/4 \\d+:\\d+:[-0-9a-z]+ ${
            new Date(start + lastLine * 1000).toISOString()
          } ${stamp} ${stamp} ${probe.failureThreshold} 0 0\n$`,
        ),
      );
      // The restarted container starts with a fresh counter, though the emptyDir kept it: its
      // first silence past the limit is the first failure in a row, not the old counter's fourth.
      await pod.restart();
      const firstLine = pod.server.now + 1000;
      pod.log("processed job 1", firstLine);
      for (let k = 0;; k++) {
        const silence = 1 + k * probe.periodSeconds;
        pod.server.now = firstLine + silence * 1000;
        const run = await pod.exec(pod.probeCommand, { virtualClock: true });
        if (silence <= limit) {
          const discarded = k === 0 ? "; counter of a previous container instance discarded" : "";
          assert.equal(run.code, 0, run.stdout);
          assertSaidAfter(run.stdout, silence, plan.timeout, (s) => alive(s, discarded));
          continue;
        }
        assert.equal(run.code, 1);
        assertSaidAfter(run.stdout, silence, plan.timeout, firstFailure(plan));
        break;
      }
    });
  },
});

Deno.test({
  name:
    `a check the kubelet kills at timeoutSeconds is a failure with the kubelet's text, ends at once and writes nothing; the next check passes${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/quick", async (pod) => {
      const probe = pod.container.livenessProbe;
      const state = `${pod.emptyDir("log-probe-state")}/state.${pod.container.name}`;
      pod.log("processed job 1", pod.server.now - 1000);
      const first = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const counter = await Deno.readTextFile(state);
      // The API server stalls past the kubelet's timeoutSeconds, set below the probe's --timeout
      // (as on the real node, testing/node_e2e_test.ts's "stalled" pod).
      pod.server.delay = 5000;
      pod.server.now += probe.periodSeconds * 1000;
      const started = performance.now();
      const killed = await pod.exec(pod.probeCommand, { virtualClock: true, timeoutSeconds: 1 });
      const took = performance.now() - started;
      assert.equal(killed.timedOut, true);
      assert.notEqual(killed.code, 0, "a failure the kubelet counts");
      assert.equal(
        killed.stdout,
        `command timed out: "${pod.probeCommand.join(" ")}" timed out after 1s`,
      );
      assert.ok(took < 3000, `the run ended at the kill, not with the stalled answer: ${took} ms`);
      assert.equal(await Deno.readTextFile(state), counter, "the killed check wrote nothing");
      pod.server.delay = 0;
      pod.log("processed job 2");
      pod.server.now += probe.periodSeconds * 1000;
      const next = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(next.code, 0, next.stdout + next.stderr);
      assert.match(next.stdout, /^alive: output \d+s ago/);
    });
  },
});

Deno.test({
  name: `the example's Deno permissions are enough, and each one is needed${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/deployment", async (pod) => {
      const command = pod.probeCommand;
      const plan = pod.plan;
      const limit = limitOf(plan);
      // A silent check (it reads the log, and writes a counter): one line, a second after the start.
      pod.log("processed job 1", pod.server.now + 1000);
      pod.server.now += (1 + limit + 1) * 1000;
      const full = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(full.stderr, "");
      assertSaidAfter(full.stdout, limit + 1, plan.timeout, firstFailure(plan));
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
      assert.equal(run.stdout, "/ dev etc opt proc var\n/etc hosts\n");
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

/** Mebibytes in a Kubernetes quantity such as `128Mi` or `1Gi`. */
function mebibytes(quantity: string): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`Unexpected quantity ${quantity}`);
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1);
}

Deno.test({
  name:
    `the copy log-probe-install-deno makes fits its emptyDir's sizeLimit with 20 % to spare, and its ephemeral-storage request${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/deployment", async (pod) => {
      const spec = pod.deployment.spec.template.spec;
      const limit = mebibytes(
        spec.volumes.find((v: Manifest) => v.name === "log-probe-deno").emptyDir.sizeLimit,
      );
      const [kib] = (await commandOutput("du", ["-sk", pod.emptyDir("log-probe-deno")])).split(
        "\t",
      );
      const copy = Number(kib) / 1024;
      console.log(
        `the copy: ${copy.toFixed(1)} MiB of ${limit} MiB (${(100 * copy / limit).toFixed(0)} %)`,
      );
      assert.ok(copy > 50, `${copy} MiB: Deno and its libraries were copied`);
      assert.ok(
        copy <= 0.8 * limit,
        `${copy.toFixed(1)} MiB: raise sizeLimit in ${COMPONENT}/pod.yaml`,
      );
      const init = spec.initContainers.find((c: Manifest) => c.name === "log-probe-install-deno");
      // The request covers the copy and stays under a LimitRange's default limit of 100Mi.
      const request = mebibytes(init.resources.requests["ephemeral-storage"]);
      assert.ok(copy <= request && request <= 100, `${copy.toFixed(1)} MiB, request ${request}Mi`);
    });
  },
});

Deno.test({
  name:
    `with automountServiceAccountToken: false the probe reads its projected token through --service-account-dir${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    await withSandbox("examples/automount-off", async (pod) => {
      assert.equal(pod.deployment.spec.template.spec.automountServiceAccountToken, false);
      const noDefault = await pod.exec([
        "/opt/log-probe/deno/ld.so",
        "--library-path",
        "/opt/log-probe/deno",
        "/opt/log-probe/deno/deno",
        "eval",
        `console.log(Deno.statSync("/var/run/secrets/kubernetes.io/serviceaccount").isDirectory)`,
      ]);
      assert.match(noDefault.stderr, /NotFound/, "no token at the usual path");
      const plan = pod.plan;
      const limit = limitOf(plan);
      // One line a second after the start, then silence past the limit: the first failure.
      pod.log("processed job 1", pod.server.now + 1000);
      pod.server.now += (1 + limit + 1) * 1000;
      const silent = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(silent.stderr, "");
      assert.equal(silent.code, 1);
      assertSaidAfter(silent.stdout, limit + 1, plan.timeout, firstFailure(plan));
      // A line, and the kubelet's next check a period later: alive.
      pod.log("processed job 2");
      pod.server.now += plan.period * 1000;
      const passed = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(passed.code, 0);
      assertSaidAfter(passed.stdout, plan.period, plan.timeout, alive);
    });
  },
});

Deno.test({
  name:
    `the image-volume example: no init container, the same probe command, Deno from the image's files${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    const base = only(await render("examples/deployment"), "Deployment").spec.template.spec;
    await withSandbox("examples/image-volume", async (pod) => {
      const spec = pod.deployment.spec.template.spec;
      assert.equal(spec.initContainers, undefined);
      assert.deepEqual(spec.containers, base.containers);
      const deno = spec.volumes.find((v: Manifest) => v.name === "log-probe-deno");
      assert.deepEqual(Object.keys(deno).sort(), ["image", "name"]);
      // What the Dockerfile puts at the image's root: install-deno.sh's copy.
      const dockerfile = await Deno.readTextFile(`${ROOT}examples/image-volume/Dockerfile`);
      assert.match(dockerfile, /RUN mkdir \/opt\/deno && sh \/install-deno.sh \/opt\/deno\n/);
      assert.match(dockerfile, /COPY --from=deno \/opt\/deno\/ \/\n/);
      const denoDir = Deno.execPath().replace(/\/[^/]*$/, "");
      await commandOutput("env", [
        `PATH=${denoDir}:/usr/bin:/bin`,
        "sh",
        `${ROOT}manifests/install-deno.sh`,
        pod.emptyDir("log-probe-deno"),
      ]);
      const plan = pod.plan;
      pod.log("processed job 1", pod.server.now + 1000);
      pod.server.now += (1 + plan.period) * 1000;
      const passed = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(passed.stderr, "");
      assert.equal(passed.code, 0);
      assertSaidAfter(passed.stdout, plan.period, plan.timeout, alive);
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
      const run = {
        mounts: [`${COMPILED_DIR} /usr/local/bin ro`],
        image: "host" as const,
        virtualClock: true,
      };
      const plan = pod.plan;
      const limit = limitOf(plan);
      pod.log("processed job 1", pod.server.now + 1000);
      pod.server.now += (1 + limit + 1) * 1000;
      const silent = await pod.exec(command, run);
      assert.equal(silent.stderr, "");
      assert.equal(silent.code, 1);
      assertSaidAfter(silent.stdout, limit + 1, plan.timeout, firstFailure(plan));
      pod.log("processed job 2");
      pod.server.now += plan.period * 1000;
      const passed = await pod.exec(command, run);
      assert.equal(passed.code, 0);
      assertSaidAfter(passed.stdout, plan.period, plan.timeout, alive);
    });
  },
});

Deno.test("remove the compiled binary's folder", async () => {
  await Deno.remove(COMPILED_DIR, { recursive: true });
});
