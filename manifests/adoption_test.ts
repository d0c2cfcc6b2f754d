/**
 * log-probe added to workloads written by someone else
 * (`manifests/testdata/adoption/`): a Deployment with other names, a sidecar
 * listed before the app, container-level security contexts, a 512Mi app limit
 * and its own account, in a namespace with a ResourceQuota and the
 * "restricted" Pod Security level; then a second workload beside it. The
 * render is checked for what the cluster would reject or change, and the
 * rendered probe runs in the kubelet-like sandbox.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { ERROR_CADENCE, formatDuration, limitOf } from "../probe.ts";
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
  SA_DIR,
} from "../testing/kubelet.ts";
import { quotaViolations, restrictedViolations } from "./pod_security.ts";

const FIXTURES = "manifests/testdata/adoption";
const WORKLOAD = `${FIXTURES}/billing-sync`;

/** The Deployment as its owners wrote it, before log-probe. */
async function original(): Promise<Manifest> {
  const text = await Deno.readTextFile(`${ROOT}${WORKLOAD}/deployment.yaml`);
  return only(parseAllDocuments(text).map((doc) => doc.toJS()), "Deployment");
}

/** JSON with sorted keys: the same text for the same values, written in any key order. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : 1))
        : v,
  );
}

function byName(list: Manifest[] = []): Record<string, Manifest> {
  return Object.fromEntries(list.map((item) => [item.name, item]));
}

Deno.test({
  name:
    `a foreign Deployment: the probe goes on the named container, whose resources and settings stay as written${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const before = (await original()).spec.template.spec;
    const after = only(await render(WORKLOAD), "Deployment").spec.template.spec;
    assert.deepEqual(after.containers.map((c: Manifest) => c.name), ["istio-proxy", "syncer"]);
    assert.deepEqual(after.containers[0], before.containers[0], "the sidecar is untouched");
    const [app, was] = [after.containers[1], before.containers[1]];
    // Byte for byte (kustomize sorts keys): the quota and the scheduler see the app's own numbers.
    assert.equal(canonical(app.resources), canonical(was.resources));
    assert.equal(app.resources.limits.memory, "512Mi");
    const added = ["env", "volumeMounts", "livenessProbe", "terminationMessagePath"];
    for (const key of new Set([...Object.keys(app), ...Object.keys(was)])) {
      if (!added.includes(key)) assert.deepEqual(app[key], was[key], key);
    }
    // What it adds, beside what was there.
    assert.deepEqual(app.env.map((e: Manifest) => e.name), ["LOG_PROBE_POD_NAME", "LOG_FORMAT"]);
    assert.deepEqual(byName(app.env).LOG_FORMAT, byName(was.env).LOG_FORMAT);
    assert.deepEqual(
      app.volumeMounts.map((m: Manifest) => m.name).sort(),
      ["log-probe-deno", "log-probe-release", "log-probe-state", "scratch"],
    );
    assert.equal(app.terminationMessagePath, "/opt/log-probe/termination-log");
    // The pod: one init container and three volumes more, the rest as written.
    assert.deepEqual(after.initContainers.map((c: Manifest) => c.name), ["log-probe-install-deno"]);
    assert.deepEqual(byName(after.volumes).scratch, byName(before.volumes).scratch);
    assert.equal(after.volumes.length, before.volumes.length + 3);
    for (const key of ["securityContext", "serviceAccountName"]) {
      assert.deepEqual(after[key], before[key], key);
    }
  },
});

Deno.test({
  name:
    `a foreign Deployment: every container passes the namespace's ResourceQuota and Pod Security "restricted"${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const namespace = await render(`${FIXTURES}/namespace`);
    assert.equal(
      only(namespace, "Namespace").metadata.labels["pod-security.kubernetes.io/enforce"],
      "restricted",
    );
    const quota = only(namespace, "ResourceQuota");
    const spec = only(await render(WORKLOAD), "Deployment").spec.template.spec;
    assert.deepEqual(quotaViolations(spec, quota), []);
    for (const container of [...spec.initContainers, ...spec.containers]) {
      for (const kind of ["requests", "limits"]) {
        for (const resource of ["cpu", "memory"]) {
          assert.ok(
            container.resources?.[kind]?.[resource],
            `${container.name} ${kind}.${resource}`,
          );
        }
      }
    }
    // install-deno keeps a read-only root; the app's own choice is its owners'.
    const readOnlyRoot = (c: Manifest) => c.name === "log-probe-install-deno";
    assert.deepEqual(restrictedViolations(spec, { readOnlyRoot }), []);
    // The pod sets no runAsUser or runAsNonRoot: install-deno brings its own.
    assert.equal(spec.securityContext.runAsNonRoot, undefined);
    const init = spec.initContainers[0].securityContext;
    assert.deepEqual([init.runAsNonRoot, init.runAsUser, init.runAsGroup], [true, 65532, 65532]);
    // The checks can fail: the same pod without install-deno's own user would be rejected.
    const without = structuredClone(spec);
    delete without.initContainers[0].securityContext.runAsNonRoot;
    delete without.initContainers[0].resources.limits.cpu;
    assert.deepEqual(restrictedViolations(without), [
      "container log-probe-install-deno: may run as root",
    ]);
    assert.deepEqual(quotaViolations(without, quota), [
      "container log-probe-install-deno: must specify limits.cpu",
    ]);
  },
});

Deno.test({
  name:
    `a foreign Deployment: the probe names its container, and the RoleBinding is named after the workload, for its account${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const manifests = await render(WORKLOAD);
    const deployment = only(manifests, "Deployment");
    const app = deployment.spec.template.spec.containers[1];
    const command: string[] = app.livenessProbe.exec.command;
    assert.equal(command.filter((arg) => arg.startsWith("--container")).length, 1);
    assert.ok(command.includes("--container=syncer"));
    assert.ok(command.includes(`--period=${app.livenessProbe.periodSeconds}s`));
    assert.ok(command.includes(`--failure-threshold=${app.livenessProbe.failureThreshold}`));
    const binding = only(manifests, "RoleBinding");
    assert.equal(binding.metadata.name, "log-probe-billing-sync");
    assert.equal(binding.metadata.namespace, "billing");
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "billing-sync-runner", namespace: "billing" },
    ]);
    assert.equal(binding.roleRef.name, only(await render("."), "Role").metadata.name);
  },
});

Deno.test({
  name:
    `two workloads in one namespace: each keeps its own RoleBinding, and both share one release${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    // One render of the namespace's workloads: kustomize stops on any shared name.
    const manifests = await render(`${FIXTURES}/all`);
    const bindings = manifests.filter((m) => m.kind === "RoleBinding");
    assert.deepEqual(
      bindings.map((b) => [b.metadata.name, b.subjects[0].name]).sort(),
      [
        ["log-probe-billing-sync", "billing-sync-runner"],
        ["log-probe-report-export", "report-export"],
      ],
    );
    const release = only(await render("."), "ConfigMap").metadata.name;
    for (const deployment of manifests.filter((m) => m.kind === "Deployment")) {
      const volumes = deployment.spec.template.spec.volumes;
      assert.equal(byName(volumes)["log-probe-release"].configMap.name, release);
    }
    // Applied one after the other (kubectl apply keys objects by kind, namespace and name):
    // the second workload's objects replace none of the first's.
    const keys = (list: Manifest[]) =>
      list.map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`);
    const first = keys(await render(WORKLOAD));
    const second = keys(await render(`${FIXTURES}/report-export`));
    assert.deepEqual(first.filter((key) => second.includes(key)), []);
  },
});

Deno.test({
  name:
    `a foreign Deployment's probe, run as the kubelet would: alive on the app's output, silent on its silence, deaf to the sidecar's${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    const pod = await KubeletPod.create(WORKLOAD, { container: "syncer" });
    try {
      assert.equal(pod.namespace, "billing");
      const plan = pod.plan;
      const limit = limitOf(plan);
      // The app's one line a second after its start; past the limit, only the sidecar speaks.
      pod.log("synced 12 invoices", pod.server.now + 1000);
      pod.server.now += (1 + limit + 1) * 1000;
      pod.log("upstream connect error", pod.server.now - 1000, "istio-proxy");
      const silent = await pod.exec(pod.probeCommand, { virtualClock: true });
      assert.equal(silent.stderr, "", "no permission prompt, denial or warning");
      assert.equal(silent.code, 1);
      assertSaidAfter(
        silent.stdout,
        limit + 1,
        plan.timeout,
        (s) =>
          `silent: no output for ${formatDuration(s)}, over the ${
            formatDuration(limit)
          } limit (1 failure in a row; the kubelet restarts at ${plan.failureThreshold})\n`,
      );
      const asked = pod.server.seen.filter((s) => s.path.endsWith("/log")).at(-1)!;
      assert.equal(asked.path, `/api/v1/namespaces/billing/pods/${pod.podName}/log`);
      assert.equal(asked.query.get("container"), "syncer");
      // The app speaks again; the kubelet's next check comes a period later.
      pod.log("synced 3 invoices");
      pod.server.now += plan.period * 1000;
      const alive = await pod.exec(pod.probeCommand, { virtualClock: true });
      assertSaidAfter(
        alive.stdout,
        plan.period,
        plan.timeout,
        (s) => `alive: output ${formatDuration(s)} ago\n`,
      );
      assert.equal(alive.code, 0);
      // The probe ran as the app's own user, on the copy install-deno made as its own.
      const owner = await commandOutput("ls", ["-ln", pod.emptyDir("log-probe-deno")]);
      assert.match(owner, / 65532 65532 .* deno\n/);
      for (const output of pod.outputs) assert.ok(!output.includes(pod.token), "token printed");
    } finally {
      await pod.close();
    }
  },
});

Deno.test({
  name:
    `a foreign Deployment's misconfigured probe fails one check in three and never restarts the container: no RoleBinding, no --container, no token${NO_SANDBOX}`,
  ignore: !canSandbox || !hasKubectl,
  async fn() {
    const pod = await KubeletPod.create(WORKLOAD, { container: "syncer" });
    try {
      const { failureThreshold, periodSeconds } = pod.container.livenessProbe;
      const noToken = await Deno.makeTempDir({ dir: pod.dir, prefix: "no-token-" });
      await Deno.chmod(noToken, 0o755);
      const grant = `billing/system:serviceaccount:billing:billing-sync-runner`;
      const cases = [
        { what: "no RoleBinding", argv: pod.probeCommand, mounts: [], cause: /forbidden/ },
        {
          what: "no --container",
          argv: pod.probeCommand.filter((arg) => !arg.startsWith("--container=")),
          mounts: [],
          cause: /container name must be specified/,
        },
        {
          what: "no token",
          argv: pod.probeCommand,
          mounts: [`${noToken} ${SA_DIR} ro`],
          cause: /token/,
        },
      ];
      for (const { what, argv, mounts, cause } of cases) {
        await pod.resetVolumes();
        if (what === "no RoleBinding") pod.server.grants.delete(grant);
        else pod.server.grants.add(grant);
        const checks = 3 * failureThreshold;
        const codes: number[] = [];
        let inARow = 0;
        for (let check = 0; check < checks; check++) {
          pod.log("synced 12 invoices"); // output every period: only the misconfiguration can fail
          const run = await pod.exec(argv, { virtualClock: true, mounts });
          assert.match(run.stdout, /^error: /, `${what}: ${run.stdout}`);
          assert.match(run.stdout, cause, what);
          codes.push(run.code);
          inARow = run.code === 0 ? 0 : inARow + 1;
          assert.ok(
            inARow < failureThreshold,
            `${what}: check ${check + 1} restarts the container`,
          );
          pod.server.now += periodSeconds * 1000;
        }
        // Loud: exit 2, an event, once in every ERROR_CADENCE checks in a row; never two failures.
        for (let i = 0; i + ERROR_CADENCE <= checks; i++) {
          const failed = codes.slice(i, i + ERROR_CADENCE).filter((code) => code !== 0);
          assert.deepEqual(failed, [2], `${what}: checks ${i + 1} to ${i + ERROR_CADENCE}`);
        }
      }
    } finally {
      await pod.close();
    }
  },
});

Deno.test("each workload's log-probe.yaml is container.yaml with the two names of the values table set", async () => {
  const original = await Deno.readTextFile(`${ROOT}components/log-probe/container.yaml`);
  const copies: Array<[string, string, string, string[]]> = [
    ["billing-sync", "billing-sync", "syncer", ["istio-proxy"]],
    ["report-export", "report-export", "exporter", []],
  ];
  for (const [dir, deployment, container, before] of copies) {
    const copy = await Deno.readTextFile(`${ROOT}${FIXTURES}/${dir}/log-probe.yaml`);
    const expected = original
      .replace("  name: worker # ① your workload", `  name: ${deployment} # ① your workload`)
      .replace(
        "        - name: worker # ② your container",
        [
          ...before.map((name) => `        - name: ${name}`),
          `        - name: ${container} # ② your container`,
        ]
          .join("\n"),
      )
      .replace(
        "--container=worker # ② your container, again",
        `--container=${container} # ② your container, again`,
      );
    assert.equal(copy, expected, dir);
  }
});
