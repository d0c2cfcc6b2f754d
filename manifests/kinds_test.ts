/**
 * log-probe added, as the README says, to the foreign workloads of
 * `workloads.ts`: a Deployment with each kind of liveness probe, one that uses
 * the names earlier releases took, a StatefulSet, a DaemonSet, a Job, a CronJob
 * and a Deployment under a name prefix and suffix. Each is rendered with
 * `kubectl kustomize` and checked for what the API server would reject or what
 * would change the app; `admission_e2e_test.ts` has the real API server admit
 * the same renders.
 */
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { commandOutput } from "../testing/cluster.ts";
import { hasKubectl, type Manifest, NO_KUBECTL, only, render } from "../testing/kubelet.ts";
import { restrictedViolations } from "./pod_security.ts";
import {
  COMPONENTS,
  podSpec,
  PROBE_HANDLERS,
  type Workload,
  WORKLOADS,
  writeKustomization,
} from "./workloads.ts";

/** The workload's kustomization rendered: every object, the workload, its pod spec. */
async function rendered(workload: Workload) {
  const dir = await Deno.makeTempDir({ prefix: "log-probe-kinds-" });
  try {
    const folder = await writeKustomization(dir, workload);
    const text = await commandOutput("kubectl", ["kustomize", folder]);
    const manifests: Manifest[] = text.split(/^---$/m).map((doc) => parseYaml(doc));
    const object = only(manifests, workload.kind);
    const spec = workload.kind === "CronJob"
      ? object.spec.jobTemplate.spec.template.spec
      : object.spec.template.spec;
    return { manifests, object, spec };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function byName(list: Manifest[] = []): Record<string, Manifest> {
  return Object.fromEntries(list.map((item) => [item.name, item]));
}

/** What the kind's container.yaml puts on the probed container. */
async function ourProbe(kind: Workload["kind"]): Promise<Manifest> {
  const text = await Deno.readTextFile(
    new URL(`../${COMPONENTS[kind]}/container.yaml`, import.meta.url),
  );
  const patch = parseYaml(text);
  const spec = kind === "CronJob"
    ? patch.spec.jobTemplate.spec.template.spec
    : patch.spec.template.spec;
  const { $patch, ...probe } = spec.containers[0].livenessProbe;
  assert.equal($patch, "replace", `${kind}: the app's probe is replaced, never merged`);
  return probe;
}

Deno.test({
  name:
    `an app's own liveness probe (httpGet, tcpSocket, grpc, exec) is replaced by log-probe's, timings included, never merged${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const probe = await ourProbe("Deployment");
    for (const handler of Object.keys(PROBE_HANDLERS)) {
      const workload = WORKLOADS.find((w) => w.name === `probe-${handler.toLowerCase()}`)!;
      const { spec } = await rendered(workload);
      const app = byName(spec.containers).app;
      assert.deepEqual(
        { ...app.livenessProbe, exec: { command: app.livenessProbe.exec.command } },
        {
          ...probe,
          exec: { command: probe.exec.command.map((a: string) => a.replace("=worker", "=app")) },
        },
        handler,
      );
      assert.deepEqual(Object.keys(app.livenessProbe).sort(), Object.keys(probe).sort(), handler);
    }
  },
});

Deno.test({
  name:
    `every workload kind gets the probe on the named container only, and the app's own settings stay as written${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    for (const workload of WORKLOADS) {
      const { spec } = await rendered(workload);
      const before = podSpec(workload) as Manifest;
      const what = `${workload.kind}/${workload.name}`;
      assert.deepEqual(
        spec.containers.map((c: Manifest) => c.name),
        before.containers.map((c: Manifest) => c.name),
        `${what}: the containers keep their order`,
      );
      const probed = spec.containers.filter((c: Manifest) => c.livenessProbe);
      assert.deepEqual(probed.map((c: Manifest) => c.name), [workload.container], what);
      const command: string[] = probed[0].livenessProbe.exec.command;
      assert.ok(command.includes(`--container=${workload.container}`), what);
      const app = byName(spec.containers)[workload.container];
      const was = byName(before.containers)[workload.container];
      for (const key of Object.keys(was)) {
        if (["env", "volumeMounts", "livenessProbe"].includes(key)) continue;
        assert.deepEqual(app[key], was[key], `${what}: ${key}`);
      }
      for (const variable of was.env ?? []) {
        assert.deepEqual(byName(app.env)[variable.name], variable, `${what}: ${variable.name}`);
      }
      for (const mount of was.volumeMounts ?? []) {
        assert.deepEqual(byName(app.volumeMounts)[mount.name], mount, `${what}: ${mount.name}`);
      }
      for (const volume of before.volumes ?? []) {
        assert.deepEqual(byName(spec.volumes)[volume.name], volume, `${what}: ${volume.name}`);
      }
      for (const key of ["securityContext", "restartPolicy"]) {
        assert.deepEqual(spec[key], before[key], `${what}: ${key}`);
      }
      const [prefix, suffix] = [workload.namePrefix ?? "", workload.nameSuffix ?? ""];
      assert.equal(spec.serviceAccountName, `${prefix}${before.serviceAccountName}${suffix}`);
      assert.deepEqual(restrictedViolations(spec), [], what);
    }
  },
});

/** The names and paths log-probe adds to a pod (README, "What it adds"). */
const OURS = {
  volumes: ["log-probe-deno", "log-probe-release", "log-probe-state"],
  initContainers: ["log-probe-install-deno"],
  mounts: ["/opt/log-probe/deno", "/opt/log-probe/release", "/var/lib/log-probe"],
  env: ["LOG_PROBE_POD_NAME"],
  terminationMessagePath: "/opt/log-probe/termination-log",
};

Deno.test({
  name:
    `what log-probe adds to a pod is prefixed and its own: it adds to a workload that uses the old names (deno, log-probe, /opt/deno, DENO_DIR, POD_NAME) and leaves them alone${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    for (const workload of WORKLOADS) {
      const { spec } = await rendered(workload);
      const before = podSpec(workload) as Manifest;
      const what = `${workload.kind}/${workload.name}`;
      const added = (now: Manifest[] = [], was: Manifest[] = []) =>
        now.map((item) => item.name).filter((name) => !was.some((w) => w.name === name));
      assert.deepEqual(added(spec.volumes, before.volumes), OURS.volumes, what);
      assert.deepEqual(added(spec.initContainers, before.initContainers), OURS.initContainers);
      const app = byName(spec.containers)[workload.container];
      const was = byName(before.containers)[workload.container];
      assert.deepEqual(
        added(app.volumeMounts, was.volumeMounts).map((name) =>
          byName(app.volumeMounts)[name].mountPath
        ),
        OURS.mounts,
        what,
      );
      assert.deepEqual(added(app.env, was.env), OURS.env, what);
      assert.equal(app.terminationMessagePath, OURS.terminationMessagePath, what);
      // Deno's cache is the probe's own: set for the probe's process, never the container's.
      assert.ok(
        !app.env.some((e: Manifest) => e.name === "DENO_DIR" && e.value?.includes("log-probe")),
      );
      assert.ok(app.livenessProbe.exec.command.includes("DENO_DIR=/var/lib/log-probe/deno"));
    }
    const oldNames = WORKLOADS.find((w) => w.name === "old-names")!;
    const old = await rendered(oldNames);
    const app = byName(old.spec.containers).app;
    const was = byName((podSpec(oldNames) as Manifest).containers).app;
    assert.equal(
      byName(app.env).DENO_DIR.value,
      "/opt/deno/cache",
      "the app's DENO_DIR is its own",
    );
    assert.deepEqual(byName(app.env).POD_NAME, byName(was.env).POD_NAME, "the app's POD_NAME");
    assert.deepEqual(byName(old.spec.volumes).deno, {
      name: "deno",
      persistentVolumeClaim: { claimName: "deno-cache" },
    });
  },
});

Deno.test({
  name:
    `each kind's component binds its workload's own account in a RoleBinding named after it, under any namePrefix and nameSuffix${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    for (const workload of WORKLOADS) {
      const { manifests, object, spec } = await rendered(workload);
      const what = `${workload.kind}/${workload.name}`;
      const binding = only(manifests, "RoleBinding");
      const [prefix, suffix] = [workload.namePrefix ?? "", workload.nameSuffix ?? ""];
      assert.equal(binding.metadata.name, `${prefix}log-probe-${workload.name}${suffix}`, what);
      assert.equal(object.metadata.name, `${prefix}${workload.name}${suffix}`, what);
      assert.deepEqual(binding.subjects, [
        { kind: "ServiceAccount", name: spec.serviceAccountName },
      ], what);
      assert.equal(spec.serviceAccountName, only(manifests, "ServiceAccount").metadata.name);
      assert.equal(binding.roleRef.name, "log-probe", `${what}: the release's Role, not prefixed`);
      assert.equal(binding.metadata.labels["app.kubernetes.io/name"], "log-probe", what);
    }
  },
});

Deno.test({
  name:
    `the kinds' components are the Deployment's with the kind changed (the CronJob's nested under jobTemplate)${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const deployment = `${COMPONENTS.Deployment}/`;
    const read = (path: string) =>
      Deno.readTextFile(new URL(`../${path}`, import.meta.url)).then((t) => parseYaml(t));
    for (const [kind, dir] of Object.entries(COMPONENTS)) {
      if (kind === "Deployment") continue;
      for (const file of ["pod.yaml", "container.yaml", "rolebinding.yaml"]) {
        const mine = await read(`${dir}/${file}`);
        const base = await read(`${deployment}${file}`);
        if (file === "rolebinding.yaml") {
          assert.deepEqual(mine, base, `${dir}/${file}`);
          continue;
        }
        assert.equal(mine.kind, kind);
        const template = kind === "CronJob"
          ? mine.spec.jobTemplate.spec.template
          : mine.spec.template;
        assert.deepEqual(template, base.spec.template, `${dir}/${file}`);
        assert.deepEqual(mine.metadata, base.metadata, `${dir}/${file}`);
      }
      const kustomization = await read(`${dir}/kustomization.yaml`);
      const base = await read(`${deployment}kustomization.yaml`);
      assert.deepEqual(kustomization.resources, base.resources, dir);
      assert.equal(kustomization.patches[0].target.kind, kind, dir);
      for (const replacement of kustomization.replacements) {
        assert.equal(replacement.source.kind, kind);
      }
    }
  },
});

Deno.test({
  name:
    `log-probe-install-deno fits a LimitRange's ratio of 4 and a default ephemeral-storage limit of 100Mi${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const { spec } = await rendered(WORKLOADS[0]);
    const [init] = spec.initContainers;
    const units = (q: string) => {
      const m = /^(\d+)(m|Mi|Gi)?$/.exec(q)!;
      return Number(m[1]) * ({ m: 1, Mi: 1, Gi: 1024 }[m[2] ?? ""] ?? 1000);
    };
    for (const resource of ["cpu", "memory"]) {
      const ratio = units(init.resources.limits[resource]) /
        units(init.resources.requests[resource]);
      assert.ok(ratio <= 4, `${resource}: ${ratio}`);
    }
    assert.ok(units(init.resources.requests["ephemeral-storage"]) <= 100);
    assert.equal(
      init.resources.limits["ephemeral-storage"],
      undefined,
      "the pod's cap stays the app's",
    );
  },
});

Deno.test({
  name:
    `examples/statefulset: the component on a StatefulSet, its binding pointed at a Role narrowed to its own pods${NO_KUBECTL}`,
  ignore: !hasKubectl,
  async fn() {
    const manifests = await render("examples/statefulset");
    const statefulSet = only(manifests, "StatefulSet");
    const role = only(manifests, "Role");
    const pods = Array.from(
      { length: statefulSet.spec.replicas },
      (_, i) => `${statefulSet.metadata.name}-${i}`,
    );
    assert.deepEqual(role.rules, [
      { apiGroups: [""], resources: ["pods/log"], resourceNames: pods, verbs: ["get"] },
    ]);
    const binding = only(manifests, "RoleBinding");
    assert.equal(binding.metadata.name, `log-probe-${statefulSet.metadata.name}`);
    assert.equal(binding.roleRef.name, role.metadata.name);
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: statefulSet.spec.template.spec.serviceAccountName },
    ]);
    assert.deepEqual(restrictedViolations(statefulSet.spec.template.spec), []);
    const [worker] = statefulSet.spec.template.spec.containers;
    assert.ok(worker.livenessProbe.exec.command.includes(`--container=${worker.name}`));
    assert.equal(
      await Deno.readTextFile(new URL("../examples/statefulset/log-probe.yaml", import.meta.url)),
      await Deno.readTextFile(
        new URL(`../${COMPONENTS.StatefulSet}/container.yaml`, import.meta.url),
      ),
      "the example copies the component's container.yaml as is",
    );
  },
});
