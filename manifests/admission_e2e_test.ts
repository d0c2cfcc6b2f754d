/**
 * log-probe adopted onto foreign workloads, admitted by a real kube-apiserver
 * (testing/controlplane): a namespace enforcing Pod Security "restricted", with
 * a LimitRange (defaults, min/max, `maxLimitRequestRatio` 4) and a
 * ResourceQuota on requests and limits of CPU, memory and ephemeral storage.
 * Each workload of `workloads.ts`, the StatefulSet example, and a Helm chart of
 * several workloads through the post-renderer are applied after a server-side
 * dry run, and a Pod is created from each pod template as its controller would
 * (admission decides: Pod Security, LimitRanger, ResourceQuota). The quota
 * footprint log-probe adds per pod is the difference in the quota's `used`
 * between a Pod of the workload as written and one with log-probe. Then the
 * README's uninstall under namePrefix/nameSuffix.
 *
 * Run with `deno task e2e` (root, kubectl, openssl, go on first run); the
 * figures are printed, and written to `$E2E_RECORD/admission.md` when
 * E2E_RECORD names a folder (testing/e2e-recorded.md keeps them).
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { hasKubectl, type Manifest, render, ROOT } from "../testing/kubelet.ts";
import { canI, run } from "../testing/node.ts";
import { podSpec, type Workload, WORKLOADS, writeKustomization } from "./workloads.ts";

const SCRIPT = `${ROOT}testing/controlplane/controlplane.sh`;
const NS = "adopt";

/** The control plane of controlplane.sh on a loopback address of its own. */
class ControlPlane {
  private constructor(readonly dir: string) {}

  static async up(): Promise<ControlPlane> {
    const dir = await Deno.makeTempDir({ prefix: "log-probe-admission-" });
    const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
    const up = await run("bash", [SCRIPT, "up", dir, `127.${a}.${b}.${(c % 253) + 2}`]);
    if (up.code !== 0) {
      await run("bash", [SCRIPT, "down", dir]);
      throw new Error(`controlplane.sh up failed (${up.code}): ${up.stderr}`);
    }
    return new ControlPlane(dir);
  }

  kubectl(args: string[], stdin?: string) {
    return run("kubectl", ["--kubeconfig", `${this.dir}/kubeconfig`, ...args], { stdin });
  }

  /** `kubectl` that must succeed; its stdout. */
  async ok(args: string[], stdin?: string): Promise<string> {
    const result = await this.kubectl(args, stdin);
    assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }

  async down(): Promise<void> {
    await run("bash", [SCRIPT, "down", this.dir]);
    await Deno.remove(this.dir, { recursive: true });
  }
}

const HARD = {
  "requests.cpu": "20",
  "requests.memory": "40Gi",
  "requests.ephemeral-storage": "40Gi",
  "limits.cpu": "40",
  "limits.memory": "80Gi",
  "limits.ephemeral-storage": "80Gi",
};

/** A namespace as a platform team sets one up: restricted, a LimitRange, a quota. */
const NAMESPACE = [
  {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: NS,
      labels: {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
      },
    },
  },
  {
    apiVersion: "v1",
    kind: "LimitRange",
    metadata: { name: "containers", namespace: NS },
    spec: {
      limits: [{
        type: "Container",
        default: { cpu: "200m", memory: "256Mi", "ephemeral-storage": "100Mi" },
        defaultRequest: { cpu: "100m", memory: "128Mi", "ephemeral-storage": "50Mi" },
        min: { cpu: "10m", memory: "16Mi" },
        max: { cpu: "2", memory: "2Gi", "ephemeral-storage": "1Gi" },
        maxLimitRequestRatio: { cpu: "4", memory: "4" },
      }],
    },
  },
  {
    apiVersion: "v1",
    kind: "ResourceQuota",
    metadata: { name: "compute", namespace: NS },
    spec: { hard: HARD },
  },
];

/** A Kubernetes quantity in base units (cores, bytes). */
function quantity(text: string): number {
  const match = /^([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?$/.exec(text);
  if (!match) throw new Error(`Unexpected quantity ${text}`);
  const scale: Record<string, number> = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
  };
  return Number(match[1]) * (match[2] ? scale[match[2]] : 1);
}

/** A quota figure as the README writes it: CPU in m, the rest in Mi. */
function shown(resource: string, value: number): string {
  return resource.endsWith("cpu")
    ? `${Math.round(value * 1000)}m`
    : `${Math.round(value / 1024 ** 2)}Mi`;
}

/** The quota's `used`, in base units. */
async function used(cp: ControlPlane): Promise<Record<string, number>> {
  const quota = JSON.parse(
    await cp.ok(["get", "-n", NS, "resourcequota", "compute", "-o", "json"]),
  );
  return Object.fromEntries(
    Object.keys(HARD).map((key) => [key, quantity(quota.status.used?.[key] ?? "0")]),
  );
}

/** The pod template's spec and labels of a rendered workload of any kind. */
function template(object: Manifest): Manifest {
  return object.kind === "CronJob" ? object.spec.jobTemplate.spec.template : object.spec.template;
}

/** A Pod named `name` from a pod template, as the workload's controller would make it. */
function podFrom(object: Manifest, name: string, spec = template(object).spec): Manifest {
  const stateful = object.kind === "StatefulSet"
    ? { hostname: name, subdomain: object.spec.serviceName }
    : {};
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels: template(object).metadata?.labels ?? {} },
    spec: { ...spec, ...stateful },
  };
}

/** Creates `pod`; the quota footprint it added (the change in `used`). */
async function footprint(
  cp: ControlPlane,
  pod: Manifest,
): Promise<{ created: Manifest; error: string; added: Record<string, number> }> {
  const before = await used(cp);
  const created = await cp.kubectl(["create", "-f", "-", "-o", "json"], JSON.stringify(pod));
  if (created.code !== 0) return { created: undefined, error: created.stderr.trim(), added: {} };
  const after = await used(cp);
  const added = Object.fromEntries(Object.keys(HARD).map((k) => [k, after[k] - before[k]]));
  return { created: JSON.parse(created.stdout), error: "", added };
}

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]);

/** Applies a rendered folder after a server-side dry run; creates a Pod of each workload. */
async function adopt(
  cp: ControlPlane,
  record: string[],
  what: string,
  manifests: Manifest[],
  originals: Manifest = {},
): Promise<void> {
  const text = manifests.map((m) => JSON.stringify(m)).join("\n");
  const dry = await cp.kubectl(["apply", "-n", NS, "--dry-run=server", "-f", "-"], text);
  assert.equal(dry.code, 0, `${what}: server-side dry run: ${dry.stderr}`);
  await cp.ok(["apply", "-n", NS, "-f", "-"], text);
  for (const object of manifests.filter((m) => WORKLOAD_KINDS.has(m.kind))) {
    const name = object.metadata.name;
    const pod = object.kind === "StatefulSet" ? `${name}-0` : `${name}-x7k2p`;
    const original = originals[name];
    const plain = original
      ? await footprint(cp, podFrom(object, `${pod}-plain`, original))
      : undefined;
    if (plain) assert.equal(plain.error, "", `${what}: the workload as written`);
    const probed = await footprint(cp, podFrom(object, pod));
    assert.equal(probed.error, "", `${what}: the Pod with log-probe: ${probed.error}`);
    const init = probed.created.spec.initContainers
      .find((c: Manifest) => c.name === "log-probe-install-deno");
    // LimitRanger gave it the namespace's default ephemeral-storage limit.
    assert.equal(init.resources.limits["ephemeral-storage"], "100Mi", what);
    const account = template(object).spec.serviceAccountName;
    const can = await canI(
      (args) => cp.kubectl(args),
      `system:serviceaccount:${NS}:${account}`,
      NS,
      "get",
      `pods/${pod}`,
      "--subresource=log",
    );
    assert.equal(can, "yes", `${what}: ${account} may read ${pod}'s log`);
    let added = "";
    if (plain) {
      // What the quota counts for a pod: per resource, the larger of its app containers' sum
      // and its largest init container (LimitRange defaults included). log-probe adds the rest.
      const spec = probed.created.spec;
      const delta: string[] = [];
      for (const key of Object.keys(HARD)) {
        const [kind, resource] = key.split(/\.(.*)/);
        const of = (c: Manifest) => quantity(c.resources?.[kind]?.[resource] ?? "0");
        const apps = spec.containers.reduce((sum: number, c: Manifest) => sum + of(c), 0);
        const expected = Math.max(0, of(init) - apps);
        const measured: number = probed.added[key] - plain.added[key];
        // In thousandths (millicores), free of floating-point dust; + 0 turns -0 into 0.
        assert.equal(
          Math.round(measured * 1000) + 0,
          Math.round(expected * 1000) + 0,
          `${what}: ${key}`,
        );
        delta.push(`${key} +${shown(key, measured)}`);
      }
      added = delta.join(", ");
    }
    record.push(
      `- ${object.kind}/${name}: admitted; Pod ${pod} created${added ? `; ${added}` : ""}`,
    );
    console.log(record.at(-1));
  }
}

Deno.test({
  name:
    "admission e2e: log-probe on foreign workloads of every kind, admitted under Pod Security restricted, a LimitRange and a quota",
  // Only under `deno task e2e`: `deno task test` finds this file too.
  ignore: Deno.env.get("LOG_PROBE_E2E") !== "1" || !hasKubectl,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const cp = await ControlPlane.up();
  const dir = await Deno.makeTempDir({ prefix: "log-probe-admission-workloads-" });
  const record: string[] = [];
  try {
    await t.step("the namespace (restricted, LimitRange, quota) and the release", async () => {
      await cp.ok(["create", "-f", "-"], NAMESPACE.map((o) => JSON.stringify(o)).join("\n"));
      // No kube-controller-manager: set the status its quota controller would.
      await cp.ok([
        "patch",
        "-n",
        NS,
        "resourcequota",
        "compute",
        "--subresource=status",
        "--type=merge",
        "-p",
        JSON.stringify({
          status: { hard: HARD, used: Object.fromEntries(Object.keys(HARD).map((k) => [k, "0"])) },
        }),
      ]);
      await cp.ok(["apply", "-n", NS, "-k", ROOT]);
    });

    for (const workload of WORKLOADS) {
      await t.step(`${workload.kind}/${workload.name}`, async () => {
        await writeKustomization(dir, workload);
        const manifests = await kustomized(dir, workload);
        const name = `${workload.namePrefix ?? ""}${workload.name}${workload.nameSuffix ?? ""}`;
        const written = podSpec(workload) as Manifest;
        written.serviceAccountName = template(
          manifests.find((m) => m.kind === workload.kind),
        ).spec.serviceAccountName;
        await adopt(cp, record, `${workload.kind}/${workload.name}`, manifests, {
          [name]: written,
        });
      });
    }

    await t.step("the earlier install-deno resources: the LimitRange refuses each", async () => {
      const object = (await kustomized(dir, WORKLOADS[0])).find((m) => m.kind === "Deployment");
      const earlier = {
        requests: { cpu: "50m", memory: "64Mi", "ephemeral-storage": "128Mi" },
        limits: { cpu: "500m", memory: "128Mi" },
      };
      const cases: Array<[string, Manifest, RegExp]> = [
        [
          "a 128Mi ephemeral-storage request",
          earlier,
          /requests: Invalid value: "128Mi": must be less than or equal to ephemeral-storage limit of 100Mi/,
        ],
        [
          "500m of CPU for 50m",
          { ...earlier, requests: { ...earlier.requests, "ephemeral-storage": "96Mi" } },
          /cpu max limit to request ratio per Container is 4, but provided ratio is 10/,
        ],
      ];
      for (const [what, resources, refusal] of cases) {
        const spec = structuredClone(template(object).spec);
        spec.initContainers[0].resources = resources;
        const pod = podFrom(object, `earlier-${cases.findIndex((c) => c[0] === what)}`, spec);
        const old = await cp.kubectl(["create", "-f", "-"], JSON.stringify(pod));
        assert.notEqual(old.code, 0, what);
        assert.match(old.stderr, refusal, what);
        record.push(`- earlier install-deno, ${what}: refused: ${old.stderr.trim()}`);
      }
    });

    await t.step("a POD_NAME of its own stays the app's", async () => {
      const own: Workload = {
        name: "own-pod-name",
        kind: "Deployment",
        container: "app",
        extra: { env: [{ name: "POD_NAME", value: "billing" }] },
      };
      await writeKustomization(dir, own);
      await adopt(cp, record, "a POD_NAME of its own", await kustomized(dir, own));
      const pod = JSON.parse(
        await cp.ok(["get", "-n", NS, "pod", "own-pod-name-x7k2p", "-o", "json"]),
      );
      const env = pod.spec.containers.find((c: Manifest) => c.name === "app").env;
      const named = (name: string) => env.find((e: Manifest) => e.name === name);
      assert.deepEqual(named("POD_NAME"), { name: "POD_NAME", value: "billing" });
      assert.equal(named("LOG_PROBE_POD_NAME").valueFrom.fieldRef.fieldPath, "metadata.name");
      record.push("- POD_NAME with a value of its own: admitted, the app's value kept");
    });

    await t.step("examples/statefulset: its pods may read their own logs only", async () => {
      await adopt(cp, record, "examples/statefulset", await render("examples/statefulset"));
      const can = (pod: string) =>
        canI(
          (args) => cp.kubectl(args),
          `system:serviceaccount:${NS}:worker`,
          NS,
          "get",
          `pods/${pod}`,
          "--subresource=log",
        );
      assert.deepEqual(
        [await can("worker-0"), await can("worker-1"), await can("probe-httpget-x7k2p")],
        ["yes", "yes", "no"],
      );
    });

    await t.step("a Helm chart of several workloads through the post-renderer", async () => {
      const chart = await Deno.readTextFile(`${ROOT}manifests/testdata/helm/workers.rendered.yaml`);
      const result = await run("bash", [
        `${ROOT}helm/log-probe/post-render.sh`,
        "Deployment/shop-dispatcher=proxy,dispatcher",
        "StatefulSet/shop-consumer=consumer",
        "DaemonSet/shop-shipper=shipper",
        "CronJob/shop-nightly=report",
      ], { stdin: chart });
      assert.equal(result.code, 0, result.stderr);
      const manifests = parseAllDocuments(result.stdout).map((d) => d.toJS()).filter((m) => m);
      await adopt(cp, record, "the workers chart", manifests);
    });

    await t.step(
      "uninstall under namePrefix and nameSuffix: by label, only that workload's binding",
      async () => {
        const prefixed = WORKLOADS.find((w) => w.namePrefix)!;
        const folder = `${dir}/${prefixed.name}`;
        const bindings = async () =>
          (await cp.ok([
            "get",
            "-n",
            NS,
            "rolebinding",
            "-l",
            "app.kubernetes.io/name=log-probe",
            "-o",
            "name",
          ]))
            .trim().split("\n").sort();
        const before = await bindings();
        // README, "Uninstall", first command, with the workload's own folder.
        const deleted = await cp.ok([
          "delete",
          "-n",
          NS,
          "-k",
          folder,
          "-l",
          "app.kubernetes.io/name=log-probe",
        ]);
        assert.match(
          deleted,
          /rolebinding.rbac.authorization.k8s.io "prod-log-probe-prefixed-eu" deleted/,
        );
        assert.deepEqual(
          await bindings(),
          before.filter((b) =>
            b !== "rolebinding.rbac.authorization.k8s.io/prod-log-probe-prefixed-eu"
          ),
        );
        await cp.ok(["get", "-n", NS, "deployment", "prod-prefixed-eu"]);
        record.push(
          `- uninstall of ${prefixed.name} (namePrefix prod-, nameSuffix -eu): ${deleted.trim()}`,
        );
      },
    );
  } finally {
    const text = `# log-probe admission e2e: recorded ${new Date().toISOString()}\n\n${
      record.join("\n")
    }\n`;
    const folder = Deno.env.get("E2E_RECORD");
    if (folder) await Deno.writeTextFile(`${folder}/admission.md`, text);
    console.log(text);
    await cp.down();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The rendered kustomization of `workload` (written into `dir` before). */
async function kustomized(dir: string, workload: Workload): Promise<Manifest[]> {
  const out = await run("kubectl", ["kustomize", `${dir}/${workload.name}`]);
  assert.equal(out.code, 0, out.stderr);
  return parseAllDocuments(out.stdout).map((d) => d.toJS());
}
