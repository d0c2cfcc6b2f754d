/**
 * log-probe against a real control plane (testing/controlplane): kube-apiserver
 * built from k8s.io/kubernetes with etcd, RBAC, Node authorization, Pod
 * Security and ResourceQuota admission, and a node whose kubelet endpoint reads
 * CRI log files with the kubelet's own `ReadLogs`. The release and the example
 * are applied with `kubectl` as a user would; the real probe runs in the pod
 * sandbox (testing/sandbox.sh via {@linkcode KubeletPod}) with a token from the
 * TokenRequest API. Every scenario prints its outcome; the API server's exact
 * answers, next to the stand-in's (testing/apiserver.ts), are printed, and
 * written to `$E2E_RECORD/controlplane.md` when E2E_RECORD names a folder
 * (testing/e2e-recorded.md keeps them).
 *
 * Run with `deno task e2e` (root, unshare, kubectl, openssl, go on first run).
 *
 * @module
 */
import assert from "node:assert/strict";
import { FakeApiServer, makePki, type Pki } from "./apiserver.ts";
import { canSandbox, hasKubectl, KubeletPod, type Manifest, render, ROOT } from "./kubelet.ts";
import { run } from "./node.ts";

const SCRIPT = `${ROOT}testing/controlplane/controlplane.sh`;
const NS = "shop";
const NODE = "e2e-node";
const ACCOUNT = `system:serviceaccount:${NS}:worker`;

/** One answer of an API server: its status and its `v1.Status` message or body. */
interface Answer {
  status: number | string;
  message: string;
}

/** One line of the record: a request, the real answer, the stand-in's, and the probe's verdict. */
interface Row {
  scenario: string;
  real: Answer;
  standIn: Answer | string;
  probe?: { code: number; line: string };
}

const rows: Row[] = [];

/** An address in 127.0.0.0/8 that no other run on this machine is likely to use. */
function randomLoopback(): string {
  const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
  return `127.${a}.${b}.${(c % 253) + 2}`;
}

/** An answer's status and, for a `v1.Status`, its message (else the body). */
async function answerOf(response: Response): Promise<Answer> {
  const body = await response.text();
  try {
    const status = JSON.parse(body);
    if (status.kind === "Status") return { status: response.status, message: status.message };
  } catch { /* a log, not JSON */ }
  return { status: response.status, message: body };
}

/** The real control plane: one loopback address, a folder of certificates, logs and pods. */
class ControlPlane {
  readonly ca: string;
  readonly #admin: Deno.HttpClient;
  readonly #user: Deno.HttpClient;

  private constructor(readonly dir: string, readonly ip: string) {
    this.ca = Deno.readTextFileSync(`${dir}/pki/ca.crt`);
    this.#admin = Deno.createHttpClient({
      caCerts: [this.ca],
      cert: Deno.readTextFileSync(`${dir}/pki/admin.crt`),
      key: Deno.readTextFileSync(`${dir}/pki/admin.key`),
    });
    this.#user = Deno.createHttpClient({ caCerts: [this.ca] });
  }

  static async up(): Promise<ControlPlane> {
    const dir = await Deno.makeTempDir({ prefix: "log-probe-e2e-" });
    const ip = randomLoopback();
    const started = performance.now();
    const up = await run("bash", [SCRIPT, "up", dir, ip]);
    if (up.code !== 0) {
      await run("bash", [SCRIPT, "down", dir]);
      throw new Error(`controlplane.sh up failed (${up.code}): ${up.stderr}`);
    }
    console.log(`control plane up on ${ip} in ${Math.round(performance.now() - started)} ms`);
    return new ControlPlane(dir, ip);
  }

  get url(): string {
    return `https://${this.ip}:443`;
  }

  async script(...args: string[]): Promise<void> {
    const result = await run("bash", [SCRIPT, ...args]);
    if (result.code !== 0) throw new Error(`controlplane.sh ${args[0]}: ${result.stderr}`);
  }

  start(what: "apiserver" | "node"): Promise<void> {
    return this.script("start", this.dir, this.ip, what);
  }

  stop(what: "apiserver" | "node"): Promise<void> {
    return this.script("stop", this.dir, what);
  }

  /** `kubectl` as the cluster's admin. */
  kubectl(args: string[], stdin?: string) {
    return run("kubectl", ["--kubeconfig", `${this.dir}/kubeconfig`, ...args], { stdin });
  }

  /** A JSON request as the cluster's admin (client certificate in system:masters). */
  async api(method: string, path: string, body?: unknown, contentType = "application/json") {
    const response = await fetch(`${this.url}${path}`, {
      method,
      client: this.#admin,
      headers: { "content-type": contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text);
  }

  /** The probe's request with `token`, as it sends it; the real answer. */
  async logs(token: string, pod: string, query: string): Promise<Answer> {
    try {
      const response = await fetch(
        `${this.url}/api/v1/namespaces/${NS}/pods/${pod}/log?${query}`,
        { client: this.#user, headers: { authorization: `Bearer ${token}` } },
      );
      return await answerOf(response);
    } catch (error) {
      return { status: "no answer", message: String((error as Error).message).split("\n")[0] };
    }
  }

  async down(): Promise<void> {
    await run("bash", [SCRIPT, "down", this.dir]);
    this.#admin.close();
    this.#user.close();
  }
}

/** A pod's containers' CRI log files on the node, as the runtime writes them. */
class NodeLogs {
  constructor(readonly dir: string) {}

  static async create(cp: ControlPlane, pod: Manifest): Promise<NodeLogs> {
    const dir = `${cp.dir}/pods/${NS}_${pod.metadata.name}_${pod.metadata.uid}`;
    for (const c of [...pod.spec.initContainers ?? [], ...pod.spec.containers]) {
      await Deno.mkdir(`${dir}/${c.name}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${c.name}/0.log`, "");
    }
    return new NodeLogs(dir);
  }

  file(container: string): string {
    return `${this.dir}/${container}/0.log`;
  }

  /** The container prints `lines` now (CRI: RFC3339Nano, stream, F for a full line). */
  async print(container: string, ...lines: string[]): Promise<void> {
    const now = new Date().toISOString();
    const text = lines.map((line) => `${now} stdout F ${line}\n`).join("");
    await Deno.writeTextFile(this.file(container), text, { append: true });
  }

  /** container_log_manager's rotation: rename to `<log>.<YYYYMMDD-hhmmss>`; the runtime reopens. */
  async rotate(container: string, reopen: boolean): Promise<void> {
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    await Deno.rename(this.file(container), `${this.file(container)}.${stamp}`);
    if (reopen) await this.reopen(container);
  }

  async reopen(container: string): Promise<void> {
    await Deno.writeTextFile(this.file(container), "");
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds (RBAC changes reach the authorizer's cache within a second). */
async function eventually(what: string, check: () => Promise<boolean>, ms = 15_000) {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The limits a ResourceQuota on limits.cpu and limits.memory demands, added where missing. */
function withLimits(spec: Manifest): Manifest {
  const copy = structuredClone(spec);
  for (const c of [...copy.initContainers ?? [], ...copy.containers]) {
    c.resources ??= {};
    c.resources.limits ??= {};
    c.resources.limits.cpu ??= "500m";
    c.resources.limits.memory ??= c.resources.requests?.memory ?? "128Mi";
  }
  return copy;
}

/** A Pod from the Deployment's template, named `name`, with `spec` (the template's by default). */
function podFrom(deployment: Manifest, name: string, spec?: Manifest): Manifest {
  const template = deployment.spec.template;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels: template.metadata.labels },
    spec: spec ?? template.spec,
  };
}

/** The probe's request for `--window W` with no patterns, as probe.ts builds it. */
const query = (since: number) => `sinceSeconds=${since}&tailLines=1&timestamps=true&limitBytes=64`;
/** A tail of 300 lines, 256 KiB (what 0.2.0 asked with `--ignore`), to record the answer. */
const patternQuery = (since: number) =>
  `sinceSeconds=${since}&tailLines=300&timestamps=true&limitBytes=262144`;

/** A long log answer, summed up: its size, line count and last line. */
function summed(answer: Answer): Answer {
  const lines = answer.message.split("\n").filter((line) => line !== "");
  return {
    status: answer.status,
    message: `${answer.message.length} bytes, ${lines.length} lines, the last: ${lines.at(-1)}`,
  };
}

/** The stand-in answering the same request in the same state. */
async function standInLogs(stand: FakeApiServer, pki: Pki, token: string, pod: string, q: string) {
  const client = Deno.createHttpClient({ caCerts: [pki.caCert] });
  try {
    const response = await fetch(`${stand.url}/api/v1/namespaces/${NS}/pods/${pod}/log?${q}`, {
      client,
      headers: { authorization: `Bearer ${token}` },
    });
    return await answerOf(response);
  } finally {
    client.close();
  }
}

function record(row: Row): void {
  rows.push(row);
  const show = (a: Answer | string) =>
    typeof a === "string" ? a : `${a.status} ${JSON.stringify(a.message.slice(0, 300))}`;
  console.log(`  [${row.scenario}]`);
  console.log(`    real API server: ${show(row.real)}`);
  console.log(`    stand-in:        ${show(row.standIn)}`);
  if (row.probe) console.log(`    probe: exit ${row.probe.code}: ${row.probe.line}`);
}

function recordText(text: string, scenario: string): void {
  console.log(`  [${scenario}]\n${text.replace(/^/gm, "    ")}`);
  rows.push({ scenario, real: { status: "kubectl", message: text }, standIn: "n/a" });
}

function markdown(): string {
  const show = (a: Answer | string) =>
    typeof a === "string" ? a : `${a.status} \`${JSON.stringify(a.message)}\``;
  return rows.map((r) =>
    [
      `- **${r.scenario}**`,
      `  - real: ${show(r.real)}`,
      `  - stand-in: ${show(r.standIn)}`,
      ...r.probe ? [`  - probe: exit ${r.probe.code}: \`${r.probe.line}\``] : [],
    ].join("\n")
  ).join("\n");
}

Deno.test({
  name: "e2e: the release, the example and the probe's promises against a real control plane",
  // Only under `deno task e2e`: `deno task test` finds this file too.
  ignore: Deno.env.get("LOG_PROBE_E2E") !== "1" || !hasKubectl || !canSandbox,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const cp = await ControlPlane.up();
  const pki = await makePki();
  const stand = new FakeApiServer(pki);
  const standToken = "stand-in-token";
  stand.addServiceAccount(standToken, NS, "worker");
  let pod: KubeletPod | undefined;
  const started = performance.now();
  try {
    const deployment = (await render("examples/deployment")).find((m) => m.kind === "Deployment");

    await t.step(
      "the release applies into a Pod Security restricted namespace with a quota",
      async () => {
        assert.equal((await cp.kubectl(["create", "namespace", NS])).code, 0);
        await cp.kubectl([
          "label",
          "namespace",
          NS,
          "pod-security.kubernetes.io/enforce=restricted",
          "pod-security.kubernetes.io/warn=restricted",
        ]);
        const hard = {
          "requests.cpu": "2",
          "requests.memory": "2Gi",
          "limits.cpu": "4",
          "limits.memory": "4Gi",
        };
        await cp.api("POST", `/api/v1/namespaces/${NS}/resourcequotas`, {
          apiVersion: "v1",
          kind: "ResourceQuota",
          metadata: { name: "compute" },
          spec: { hard },
        });
        // There is no kube-controller-manager: set the status its quota controller
        // would, or admission refuses every pod ("status unknown for quota").
        await cp.api(
          "PATCH",
          `/api/v1/namespaces/${NS}/resourcequotas/compute/status`,
          {
            status: { hard, used: Object.fromEntries(Object.keys(hard).map((k) => [k, "0"])) },
          },
          "application/merge-patch+json",
        );
        const apply = await cp.kubectl(["apply", "-k", ROOT, "-n", NS]);
        recordText(
          `exit ${apply.code}\n${apply.stdout}${apply.stderr}`,
          "kubectl apply -k . -n shop",
        );
        assert.equal(apply.code, 0, apply.stderr);
      },
    );

    await t.step("the example workload applies the same way", async () => {
      const apply = await cp.kubectl(["apply", "-k", `${ROOT}examples/deployment`, "-n", NS]);
      recordText(
        `exit ${apply.code}\n${apply.stdout}${apply.stderr}`,
        "kubectl apply -k examples/deployment -n shop",
      );
      assert.equal(apply.code, 0, apply.stderr);
    });

    let worker: Manifest = undefined;
    await t.step(
      "a Pod from the example's template: admission decides, then it is bound",
      async () => {
        pod = await KubeletPod.create("examples/deployment");
        const today = await cp.kubectl(
          ["create", "-f", "-", "-o", "json"],
          JSON.stringify(podFrom(deployment, pod.podName)),
        );
        recordText(
          `exit ${today.code}\n${today.code === 0 ? "created" : today.stderr}`,
          "Pod from today's examples/deployment template",
        );
        if (today.code === 0) {
          worker = JSON.parse(today.stdout);
        } else {
          // What a correct manifest gets: the same template with the limits the quota demands.
          worker = await cp.api(
            "POST",
            `/api/v1/namespaces/${NS}/pods`,
            podFrom(deployment, pod.podName, withLimits(deployment.spec.template.spec)),
          );
          recordText(
            "created",
            "Pod from the template with limits.cpu/limits.memory on every container",
          );
        }
        await cp.api("POST", `/api/v1/namespaces/${NS}/pods/${pod.podName}/binding`, {
          apiVersion: "v1",
          kind: "Binding",
          metadata: { name: pod.podName },
          target: { apiVersion: "v1", kind: "Node", name: NODE },
        });
        worker = await cp.api("GET", `/api/v1/namespaces/${NS}/pods/${pod.podName}`);
        assert.equal(worker.spec.nodeName, NODE);
      },
    );

    await t.step(
      "the adoption test's foreign workloads, applied as their owners would: admitted, both bound",
      async () => {
        // manifests/testdata/adoption: namespace "billing" (restricted, a quota on limits), the
        // release, then two Deployments of other names, users and resources with the component.
        const adoption = `${ROOT}manifests/testdata/adoption`;
        const steps = [
          ["apply", "-k", `${adoption}/namespace`],
          ["apply", "-n", "billing", "-k", ROOT],
          ["apply", "-k", `${adoption}/billing-sync`],
          ["apply", "-k", `${adoption}/report-export`],
        ];
        for (const args of steps) {
          const applied = await cp.kubectl(args);
          recordText(
            `exit ${applied.code}\n${applied.stdout}${applied.stderr}`,
            `kubectl ${args.join(" ")}`,
          );
          assert.equal(applied.code, 0, applied.stderr);
          if (args.includes(`${adoption}/namespace`)) {
            const quota = await cp.api("GET", "/api/v1/namespaces/billing/resourcequotas/compute");
            const hard = quota.spec.hard;
            await cp.api(
              "PATCH",
              "/api/v1/namespaces/billing/resourcequotas/compute/status",
              {
                status: {
                  hard,
                  used: Object.fromEntries(Object.keys(hard).map((k) => [k, "0"])),
                },
              },
              "application/merge-patch+json",
            );
          }
        }
        for (const workload of ["billing-sync", "report-export"]) {
          const rendered = await render(`manifests/testdata/adoption/${workload}`);
          const foreign = rendered.find((m) => m.kind === "Deployment");
          const created = await cp.kubectl(
            ["create", "-f", "-", "-o", "name"],
            JSON.stringify({
              ...podFrom(foreign, `${workload}-0`),
              metadata: {
                name: `${workload}-0`,
                namespace: "billing",
                labels: foreign.spec.template.metadata.labels,
              },
            }),
          );
          const account = foreign.spec.template.spec.serviceAccountName;
          const can = await cp.kubectl([
            "auth",
            "can-i",
            "get",
            "pods",
            "--subresource=log",
            "-n",
            "billing",
            `--as=system:serviceaccount:billing:${account}`,
          ]);
          recordText(
            `exit ${created.code}: ${(created.stdout + created.stderr).trim()}\n` +
              `${account} may get pods/log: ${can.stdout.trim()}`,
            `Pod from ${workload}'s template in billing`,
          );
          assert.equal(created.code, 0, created.stderr);
          assert.equal(can.stdout.trim(), "yes");
        }
      },
    );

    await t.step("kubectl auth can-i: the binding is as narrow as the README says", async () => {
      const can = async (...args: string[]) =>
        (await cp.kubectl(["auth", "can-i", `--as=${ACCOUNT}`, "-n", NS, ...args])).stdout.trim();
      // `can-i get pods/log` would ask about a pod named "log": the subresource is a flag.
      const answers = {
        "get pods/log": await can("get", "pods", "--subresource=log"),
        "get pods": await can("get", "pods"),
        "list pods/log": await can("list", "pods", "--subresource=log"),
        "create pods/exec": await can("create", "pods", "--subresource=exec"),
        "get configmaps": await can("get", "configmaps"),
      };
      const other = await run("kubectl", [
        "--kubeconfig",
        `${cp.dir}/kubeconfig`,
        "auth",
        "can-i",
        `--as=${ACCOUNT}`,
        "-n",
        "default",
        "get",
        "pods",
        "--subresource=log",
      ]);
      recordText(
        Object.entries(answers).map(([k, v]) => `${k}: ${v}`).join("\n") +
          `\nget pods/log -n default: ${other.stdout.trim()}`,
        `kubectl auth can-i --as=${ACCOUNT}`,
      );
      assert.deepEqual(answers, {
        "get pods/log": "yes",
        "get pods": "no",
        "list pods/log": "no",
        "create pods/exec": "no",
        "get configmaps": "no",
      });
      assert.equal(other.stdout.trim(), "no");
    });

    await t.step("a second workload's binding leaves the first one's in place", async () => {
      const canWorker = async () =>
        (await cp.kubectl([
          "auth",
          "can-i",
          `--as=${ACCOUNT}`,
          "-n",
          NS,
          "get",
          "pods",
          "--subresource=log",
        ]))
          .stdout.trim();
      // Today's examples/dedicated-account as the second workload, as its comment says.
      const second = await cp.kubectl([
        "apply",
        "-k",
        `${ROOT}examples/dedicated-account`,
        "-n",
        NS,
      ]);
      const after = await canWorker();
      recordText(
        `exit ${second.code}\n${second.stdout}${second.stderr}worker may still get pods/log: ${after}`,
        "second workload: kubectl apply -k examples/dedicated-account -n shop",
      );
      // Put the first workload back as it was, then add a correctly named second binding.
      assert.equal(
        (await cp.kubectl(["apply", "-k", `${ROOT}examples/deployment`, "-n", NS])).code,
        0,
      );
      const other = await cp.kubectl(
        ["apply", "-n", NS, "-f", "-"],
        JSON.stringify({
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "log-probe-log-probe" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "log-probe" },
          subjects: [{ kind: "ServiceAccount", name: "log-probe" }],
        }),
      );
      assert.equal(other.code, 0, other.stderr);
      assert.equal(await canWorker(), "yes");
      const second2 = await cp.kubectl([
        "auth",
        "can-i",
        `--as=system:serviceaccount:${NS}:log-probe`,
        "-n",
        NS,
        "get",
        "pods",
        "--subresource=log",
      ]);
      assert.equal(second2.stdout.trim(), "yes");
      recordText("worker: yes; log-probe: yes", "second binding under its own name");
    });

    assert(pod && worker, "the pod exists");
    const logs = await NodeLogs.create(cp, worker);
    const token = (await cp.kubectl([
      "create",
      "token",
      "worker",
      "-n",
      NS,
      "--bound-object-kind=Pod",
      `--bound-object-name=${worker.metadata.name}`,
      `--bound-object-uid=${worker.metadata.uid}`,
      "--duration=1h",
    ])).stdout.trim();
    assert.match(token, /^ey/);
    // The pod's projected token, CA and namespace; kubernetes.default.svc is the control plane.
    await Deno.writeTextFile(`${pod.dir}/serviceaccount/..data/token`, token);
    await Deno.writeTextFile(`${pod.dir}/serviceaccount/..data/ca.crt`, cp.ca);
    await Deno.writeTextFile(`${pod.dir}/serviceaccount/..data/namespace`, NS);
    await Deno.writeTextFile(
      `${pod.dir}/hosts`,
      `127.0.0.1 localhost\n${cp.ip} kubernetes.default.svc\n`,
    );
    const standPod = stand.addPod(NS, pod.podName, ["worker"]);
    /** The pod's probe command with `args` added (and the arguments `drop` matches taken out). */
    const probe = async (args: string[], env: Record<string, string> = {}, drop?: RegExp) => {
      const argv = pod!.probeCommand.filter((arg: string) => !drop?.test(arg));
      const result = await pod!.exec([...argv, ...args], {
        env: { KUBERNETES_SERVICE_HOST: cp.ip, ...env },
      });
      return { code: result.code, line: (result.stdout + result.stderr).split("\n")[0] };
    };
    const fresh = () => pod!.resetVolumes();

    await t.step("alive: a line in the window", async () => {
      await fresh();
      await logs.print("worker", "processed job 1");
      stand.log(standPod, "processed job 1", "worker");
      const result = await probe(["--window=5s"]);
      record({
        scenario: "alive (--window=5s)",
        real: await cp.logs(token, worker.metadata.name, query(5)),
        standIn: await standInLogs(stand, pki, standToken, pod!.podName, query(5)),
        probe: result,
      });
      assert.equal(result.code, 0, result.line);
      assert.match(result.line, /^alive:/);
    });

    await t.step(
      "silent past the limit, then alive under the component's longer limit",
      async () => {
        await fresh();
        await logs.print("worker", "processed job 2");
        // The limit is the window at --failure-threshold (0.4.0): the first one, 2s, here. A first
        // check sees the line (the probe learns the instance's start); 3.5s later the next is silent.
        const limited = ["--window=2s", "--failure-threshold=1"];
        const first = await probe(limited, {}, /^--failure-threshold=/);
        assert.equal(first.code, 0, first.line);
        await sleep(3_500);
        const real = await cp.logs(token, worker.metadata.name, query(2));
        const silent = await probe(limited, {}, /^--failure-threshold=/);
        stand.now += 3_500;
        record({
          scenario: "silent (--window=2s --failure-threshold=1, last line 3.5s old)",
          real,
          standIn: await standInLogs(stand, pki, standToken, pod!.podName, query(2)),
          probe: silent,
        });
        assert.equal(silent.code, 1, silent.line);
        assert.match(silent.line, /^silent:/);
        const grown = await probe(["--window=2s"]);
        record({
          scenario:
            "next check, --failure-threshold=15 (limit: the 15th window, 240s) over the 4s-old line",
          real: await cp.logs(token, worker.metadata.name, query(6)),
          standIn: await standInLogs(stand, pki, standToken, pod!.podName, query(6)),
          probe: grown,
        });
      },
    );

    await t.step("rotation: renamed and reopened empty, then a new line", async () => {
      await fresh();
      await logs.print("worker", "processed job 3");
      assert.match((await probe(["--window=60s"])).line, /^alive:/);
      await logs.rotate("worker", true);
      stand.rotate(standPod, "worker", true);
      record({
        scenario: "rotated, reopened empty (--window=60s)",
        real: await cp.logs(token, worker.metadata.name, query(60)),
        standIn: await standInLogs(stand, pki, standToken, pod!.podName, query(60)),
        probe: await probe(["--window=60s"]),
      });
      await logs.print("worker", "processed job 4");
      const after = await probe(["--window=60s"]);
      record({
        scenario: "rotated, then a new line",
        real: await cp.logs(token, worker.metadata.name, query(60)),
        standIn: "n/a",
        probe: after,
      });
      assert.equal(after.code, 0, after.line);
      assert.match(after.line, /^alive:/);
    });

    await t.step(
      "rotation: renamed and never reopened (the kubelet's ReadLogs error)",
      async () => {
        await fresh();
        await logs.print("worker", "processed job 5");
        await logs.rotate("worker", false);
        stand.rotate(standPod, "worker", false);
        const first = await probe(["--window=60s"]);
        const second = await probe(["--window=60s"]);
        record({
          scenario: "rotated, not reopened (1st check)",
          real: await cp.logs(token, worker.metadata.name, query(60)),
          standIn: await standInLogs(stand, pki, standToken, pod!.podName, query(60)),
          probe: first,
        });
        record({
          scenario: "rotated, not reopened (2nd check)",
          real: await cp.logs(token, worker.metadata.name, query(60)),
          standIn: "same",
          probe: second,
        });
        const kubectlLogs = await cp.kubectl(["logs", worker.metadata.name, "-n", NS]);
        recordText(
          `exit ${kubectlLogs.code}\nstdout: ${kubectlLogs.stdout}\nstderr: ${kubectlLogs.stderr}`,
          "rotated, not reopened: kubectl logs (as the admin)",
        );
        await fresh();
        record({
          scenario: "rotated, not reopened, with --ignore=^heartbeat",
          real: await cp.logs(token, worker.metadata.name, patternQuery(60)),
          standIn: "the same 200",
          probe: await probe(["--window=60s", "--ignore=^heartbeat"]),
        });
        await logs.reopen("worker");
        stand.reopen(standPod, "worker");
      },
    );

    await t.step("the newest line behind a burst of ignored lines", async () => {
      await fresh();
      await logs.print("worker", "processed job 6");
      await logs.print("worker", ...Array.from({ length: 200 }, (_, i) => `heartbeat ${i}`));
      const within = await probe(["--window=60s", "--ignore=^heartbeat"]);
      record({
        scenario: "1 line, then 200 ignored (--ignore=^heartbeat, tail 300)",
        real: summed(await cp.logs(token, worker.metadata.name, patternQuery(60))),
        standIn: "n/a",
        probe: within,
      });
      assert.equal(within.code, 0, within.line);
      assert.match(within.line, /^alive:/);
      await fresh();
      await logs.print("worker", "processed job 7");
      await logs.print("worker", ...Array.from({ length: 1000 }, (_, i) => `heartbeat ${i}`));
      record({
        scenario: "1 line, then 1000 ignored (beyond the tail of 300)",
        real: summed(await cp.logs(token, worker.metadata.name, patternQuery(60))),
        standIn: "n/a",
        probe: await probe(["--window=60s", "--ignore=^heartbeat"]),
      });
    });

    await t.step("the node server (kubelet) stopped", async () => {
      await fresh();
      await logs.print("worker", "processed job 8");
      assert.match((await probe(["--window=60s"])).line, /^alive:/);
      await cp.stop("node");
      try {
        const down = await probe(["--window=60s"]);
        record({
          scenario: "kubelet down (connection refused)",
          real: await cp.logs(token, worker.metadata.name, query(60)),
          standIn: "no equivalent (faults_test.ts overrides a status)",
          probe: down,
        });
        assert.equal(down.code, 0, down.line);
        assert.match(down.line, /^unknown:/);
      } finally {
        await cp.start("node");
      }
    });

    await t.step("the API server stopped and restarted", async () => {
      await fresh();
      await logs.print("worker", "processed job 9");
      assert.match((await probe(["--window=60s"])).line, /^alive:/);
      await cp.stop("apiserver");
      let down;
      try {
        down = await probe(["--window=60s"]);
        record({
          scenario: "API server down",
          real: await cp.logs(token, worker.metadata.name, query(60)),
          standIn: "no equivalent (closed server)",
          probe: down,
        });
      } finally {
        await cp.start("apiserver");
      }
      assert.equal(down.code, 0, down.line);
      assert.match(down.line, /^unknown:/);
      await logs.print("worker", "processed job 10");
      const back = await probe(["--window=60s"]);
      record({
        scenario: "API server back (same token)",
        real: await cp.logs(token, worker.metadata.name, query(60)),
        standIn: "n/a",
        probe: back,
      });
      assert.equal(back.code, 0, back.line);
    });

    await t.step("the RoleBinding deleted: 403", async () => {
      await logs.print("worker", "processed job 11");
      assert.equal(
        (await cp.kubectl(["delete", "rolebinding", "log-probe-worker", "-n", NS])).code,
        0,
      );
      try {
        await eventually(
          "the 403",
          async () => (await cp.logs(token, worker.metadata.name, query(60))).status === 403,
        );
        stand.grants.delete(`${NS}/${ACCOUNT}`);
        await fresh();
        const result = await probe(["--window=60s"]);
        record({
          scenario: "RoleBinding deleted",
          real: await cp.logs(token, worker.metadata.name, query(60)),
          standIn: await standInLogs(stand, pki, standToken, pod!.podName, query(60)),
          probe: result,
        });
        // Loud whatever the exit: a misconfiguration fails one check in three (0.4.0).
        assert.match(result.line, /^error: /);
        assert.match(result.line, /^error:.*forbidden/);
      } finally {
        await cp.kubectl(["apply", "-k", `${ROOT}examples/deployment`, "-n", NS]);
        stand.addServiceAccount(standToken, NS, "worker");
        await eventually(
          "the binding back",
          async () => (await cp.logs(token, worker.metadata.name, query(60))).status === 200,
        );
      }
    });

    await t.step("a wrong pod name: 404", async () => {
      await fresh();
      const result = await probe(["--window=60s"], { LOG_PROBE_POD_NAME: "worker-no-such-pod" });
      record({
        scenario: "wrong pod name",
        real: await cp.logs(token, "worker-no-such-pod", query(60)),
        standIn: await standInLogs(stand, pki, standToken, "worker-no-such-pod", query(60)),
        probe: result,
      });
      // Loud whatever the exit: a misconfiguration fails one check in three (0.4.0).
      assert.match(result.line, /^error: /);
      assert.match(result.line, /^error:.*not found/);
    });

    await t.step("two containers and no --container: 400", async () => {
      const spec = withLimits(deployment.spec.template.spec);
      spec.containers.push({
        ...structuredClone(spec.containers[0]),
        name: "shipper",
        livenessProbe: undefined,
      });
      const two = await cp.api("POST", `/api/v1/namespaces/${NS}/pods`, {
        ...podFrom(deployment, "worker-two", spec),
      });
      await cp.api("POST", `/api/v1/namespaces/${NS}/pods/worker-two/binding`, {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name: "worker-two" },
        target: { apiVersion: "v1", kind: "Node", name: NODE },
      });
      await NodeLogs.create(cp, two);
      stand.addPod(NS, "worker-two", ["worker", "shipper"], ["install-deno"]);
      await fresh();
      // The component always names the container: without it, as a hand-written probe might.
      const result = await probe(
        ["--window=60s"],
        { LOG_PROBE_POD_NAME: "worker-two" },
        /^--container=/,
      );
      record({
        scenario: "pod with two containers, no --container",
        real: await cp.logs(token, "worker-two", query(60)),
        standIn: await standInLogs(stand, pki, standToken, "worker-two", query(60)),
        probe: result,
      });
      // Loud whatever the exit: a misconfiguration fails one check in three (0.4.0).
      assert.match(result.line, /^error: /);
      assert.match(result.line, /^error:.*a container name must be specified/);
    });

    await t.step("an invalid token: bound to a deleted pod, and one past its expiry", async () => {
      const gone = await cp.api(
        "POST",
        `/api/v1/namespaces/${NS}/pods`,
        podFrom(deployment, "worker-gone", withLimits(deployment.spec.template.spec)),
      );
      const goneToken = (await cp.kubectl([
        "create",
        "token",
        "worker",
        "-n",
        NS,
        "--bound-object-kind=Pod",
        "--bound-object-name=worker-gone",
        `--bound-object-uid=${gone.metadata.uid}`,
      ])).stdout.trim();
      await cp.api("DELETE", `/api/v1/namespaces/${NS}/pods/worker-gone?gracePeriodSeconds=0`);
      const expired = await expiredToken(cp, worker);
      for (const [what, bad] of [["bound to a deleted pod", goneToken], ["expired", expired]]) {
        await Deno.writeTextFile(`${pod!.dir}/serviceaccount/..data/token`, bad);
        try {
          await fresh();
          const result = await probe(["--window=60s"]);
          record({
            scenario: `token ${what}`,
            real: await cp.logs(bad, worker.metadata.name, query(60)),
            standIn: await standInLogs(stand, pki, "unknown-token", pod!.podName, query(60)),
            probe: result,
          });
          // Loud whatever the exit: a misconfiguration fails one check in three (0.4.0).
          assert.match(result.line, /^error: /);
          assert.match(result.line, /^error:/);
        } finally {
          await Deno.writeTextFile(`${pod!.dir}/serviceaccount/..data/token`, token);
        }
      }
    });

    await t.step(
      "uninstall as the README says: the workload's binding, then the release",
      async () => {
        // README "Uninstall", with this repository's root standing for the release's folder.
        const binding = await cp.kubectl(["delete", "-n", NS, "rolebinding", "log-probe-worker"]);
        const release = await cp.kubectl(["delete", "-n", NS, "-k", ROOT]);
        const older = await cp.kubectl([
          "delete",
          "-n",
          NS,
          "configmap",
          "-l",
          "app.kubernetes.io/name=log-probe",
        ]);
        const left = await cp.kubectl([
          "get",
          "-n",
          NS,
          "role,rolebinding,configmap",
          "-l",
          "app.kubernetes.io/name=log-probe",
          "-o",
          "name",
        ]);
        recordText(
          [binding, release, older, left].map((r) => `exit ${r.code}: ${r.stdout.trim()}`).join(
            "\n",
          ),
          "uninstall: kubectl delete rolebinding, then -k the release, then older releases",
        );
        assert.equal(binding.code, 0, binding.stderr);
        assert.equal(release.code, 0, release.stderr);
        assert.match(release.stdout, /role.rbac.authorization.k8s.io "log-probe" deleted/);
        assert.equal(older.code, 0, older.stderr);
        assert.equal(left.stdout.trim(), "", "nothing of log-probe is left");
      },
    );
  } finally {
    const seconds = Math.round((performance.now() - started) / 1000);
    const text = `# log-probe e2e: recorded ${
      new Date().toISOString()
    } in ${seconds}s\n\n${markdown()}\n`;
    const folder = Deno.env.get("E2E_RECORD");
    if (folder) await Deno.writeTextFile(`${folder}/controlplane.md`, text);
    console.log(text);
    await stand.close();
    await pod?.close();
    await cp.down();
    await Deno.remove(pki.dir, { recursive: true });
    if (!Deno.env.get("E2E_KEEP")) await Deno.remove(cp.dir, { recursive: true });
  }
});

/**
 * A service-account token whose time is over: TokenRequest will not issue one
 * shorter than 10 minutes, so this signs the claims a TokenRequest token
 * carries, with the API server's own signing key (--service-account-signing-key-file),
 * with `exp` a minute ago.
 */
async function expiredToken(cp: ControlPlane, worker: Manifest): Promise<string> {
  const pem = await Deno.readTextFile(`${cp.dir}/pki/sa.key`);
  const der = Uint8Array.from(
    atob(pem.replace(/-----[^-]+-----/g, "").replace(/\s/g, "")),
    (c) => c.charCodeAt(0),
  );
  const key = await crypto.subtle.importKey(
    "pkcs8",
    der,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const account = await cp.api("GET", `/api/v1/namespaces/${NS}/serviceaccounts/worker`);
  const now = Math.floor(Date.now() / 1000);
  const b64 = (data: Uint8Array | string) =>
    btoa(
      typeof data === "string" ? data : String.fromCharCode(...data),
    ).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const header = b64(JSON.stringify({ alg: "ES256", typ: "JWT" }));
  const claims = b64(JSON.stringify({
    aud: ["https://kubernetes.default.svc"],
    iss: "https://kubernetes.default.svc",
    sub: ACCOUNT,
    iat: now - 3600,
    nbf: now - 3600,
    exp: now - 60,
    "kubernetes.io": {
      namespace: NS,
      node: { name: NODE },
      pod: { name: worker.metadata.name, uid: worker.metadata.uid },
      serviceaccount: { name: "worker", uid: account.metadata.uid },
    },
  }));
  const signature = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    key,
    new TextEncoder().encode(`${header}.${claims}`),
  );
  return `${header}.${claims}.${b64(new Uint8Array(signature))}`;
}
