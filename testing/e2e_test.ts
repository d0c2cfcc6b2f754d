/**
 * The probe's requests and verdicts on a real node (testing/controlplane/node.sh):
 * kube-apiserver with etcd, RBAC, Node authorization, Pod Security and
 * ResourceQuota admission, the controller-manager and scheduler, and a kubelet
 * with containerd and runc that serves `pods/log` from the CRI log files the
 * runtime writes. The release and the example are applied with `kubectl` as a
 * user would; the probe runs in the example's own container through containerd
 * (as the kubelet's exec does), with the token the kubelet projected, and the
 * container prints through its own stdout. Every scenario prints its outcome:
 * the API server's exact answer next to the stand-in's (testing/apiserver.ts),
 * and the probe's line; they are written to `$E2E_RECORD/controlplane.md` when
 * E2E_RECORD names a folder (testing/e2e-recorded.md keeps them).
 *
 * The kubelet's own liveness checks keep their counter; the scenarios here run
 * the probe with a counter of their own (`--state-file`), and under the
 * component's 2h limit the kubelet's checks restart nothing meanwhile.
 *
 * Run with `deno task e2e` (root, unshare, kubectl, go on first run).
 *
 * @module
 */
import assert from "node:assert/strict";
import { FakeApiServer, makePki, type Pki } from "./apiserver.ts";
import { hasKubectl, type Manifest, render, ROOT } from "./kubelet.ts";
import {
  canI,
  eventually,
  listDir,
  NODE_SH,
  platformNamespace,
  RealNode,
  run,
  runningPod,
  sleep,
} from "./node.ts";

const NS = "shop";
const NODE = "e2e-node";
/** The node's address (node.sh): the API server's, inside the node's network. */
const NODE_IP = "10.254.0.1";
const ACCOUNT = `system:serviceaccount:${NS}:worker`;
/** `kubectl auth can-i`'s question for what the probe needs. */
const GET_LOG = ["get", "pods", "--subresource=log"];

const underE2e = Deno.env.get("LOG_PROBE_E2E") === "1";
/** Why this machine cannot run a node (node.sh check), or "". */
const cannotRun = underE2e ? (await run("bash", [NODE_SH, "check"])).stdout.trim() : "";
if (underE2e && cannotRun) console.log(`e2e: SKIPPED: ${cannotRun}`);

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

/** An answer's status and, for a `v1.Status`, its message (else the body). */
function answerOf(status: number | string, body: string): Answer {
  try {
    const parsed = JSON.parse(body);
    if (parsed.kind === "Status") return { status, message: parsed.message };
  } catch { /* a log, not JSON */ }
  return { status, message: body };
}

/** The probe's request with `token`, as it sends it, from inside the node's network; the real answer. */
async function realLogs(node: RealNode, token: string, pod: string, query: string) {
  const url = `https://${NODE_IP}:443/api/v1/namespaces/${NS}/pods/${pod}/log?${query}`;
  // The header from stdin (`-H @-`): the token never appears in a command line.
  const result = await node.exec(
    ["curl", "-sS", "--cacert", `${node.dir}/pki/ca.crt`, "-H", "@-", "-w", "\n%{http_code}", url],
    { stdin: `Authorization: Bearer ${token}\n` },
  );
  const at = result.stdout.lastIndexOf("\n");
  const code = result.stdout.slice(at + 1);
  if (code === "000") return { status: "no answer", message: result.stderr.trim().split("\n")[0] };
  return answerOf(Number(code), result.stdout.slice(0, at));
}

/** The stand-in answering the same request in the same state. */
async function standInLogs(stand: FakeApiServer, pki: Pki, token: string, pod: string, q: string) {
  const client = Deno.createHttpClient({ caCerts: [pki.caCert] });
  try {
    const response = await fetch(`${stand.url}/api/v1/namespaces/${NS}/pods/${pod}/log?${q}`, {
      client,
      headers: { authorization: `Bearer ${token}` },
    });
    return answerOf(response.status, await response.text());
  } finally {
    client.close();
  }
}

/** The probe's request for `--window W` with no patterns, as probe.ts builds it. */
const query = (since: number) =>
  `sinceSeconds=${since}&tailLines=1&timestamps=true&limitBytes=64&container=worker`;
/** A tail of 300 lines, 256 KiB (what 0.2.0 asked with `--ignore`), to record the answer. */
const patternQuery = (since: number) =>
  `sinceSeconds=${since}&tailLines=300&timestamps=true&limitBytes=262144&container=worker`;

/** A long log answer, summed up: its size, line count and last line. */
function summed(answer: Answer): Answer {
  const lines = answer.message.split("\n").filter((line) => line !== "");
  return {
    status: answer.status,
    message: `${answer.message.length} bytes, ${lines.length} lines, the last: ${lines.at(-1)}`,
  };
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

/**
 * A Pod from the example Deployment's template, named `name` (and labelled `app: name`,
 * so that no ReplicaSet adopts it): the worker prints nothing by itself (the test
 * makes it print), and a sidecar, `shipper`, runs beside it.
 */
function quietPod(deployment: Manifest, name: string): Manifest {
  const spec = structuredClone(deployment.spec.template.spec);
  const worker = spec.containers.find((c: Manifest) => c.name === "worker");
  worker.args = ["trap 'exit 0' TERM; sleep 100000 & wait $!"];
  spec.containers.push({
    name: "shipper",
    image: worker.image,
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait $!"],
    securityContext: worker.securityContext,
    resources: { requests: { cpu: "5m", memory: "16Mi" }, limits: { cpu: "50m", memory: "16Mi" } },
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels: { app: name } },
    spec,
  };
}

/** `kubectl apply` of `args` with its output in the record; it must succeed. */
async function applied(node: RealNode, args: string[], scenario = `kubectl ${args.join(" ")}`) {
  const result = await node.kubectl(args);
  recordText(`exit ${result.code}\n${result.stdout}${result.stderr}`, scenario);
  assert.equal(result.code, 0, result.stderr);
}

Deno.test({
  name: "e2e: the release, the example, the probe's requests and verdicts on a real node",
  // Only under `deno task e2e`: `deno task test` finds this file too.
  ignore: !underE2e || !hasKubectl || cannotRun !== "",
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  // containerLogMaxSize 1Mi: the bursts below stay in one file; the rotation step writes more.
  const node = await RealNode.up({ logMaxSize: "1Mi" });
  const kubectl = (args: string[]) => node.kubectl(args);
  console.log(`node up in ${node.upSeconds}s`);
  const pki = await makePki();
  const stand = new FakeApiServer(pki);
  const standToken = "stand-in-token";
  stand.addServiceAccount(standToken, NS, "worker");
  const started = performance.now();
  let failed = true;
  try {
    const deployment = (await render("examples/deployment")).find((m) => m.kind === "Deployment");

    await t.step(
      "the release applies into a namespace with Pod Security restricted, a quota and a LimitRange",
      async () => {
        await node.apply(NS, platformNamespace(NS));
        await applied(node, ["apply", "-k", ROOT, "-n", NS], "kubectl apply -k . -n shop");
      },
    );

    await t.step("the example applies the same way, and its pod runs and is alive", async () => {
      await applied(
        node,
        ["apply", "-k", `${ROOT}examples/deployment`, "-n", NS],
        "kubectl apply -k examples/deployment -n shop",
      );
      const pod = await runningPod(node, NS, "worker");
      const command: string[] = pod.spec.containers[0].livenessProbe.exec.command;
      const check = await node.execIn(pod, "worker", command);
      recordText(
        `exit ${check.code}: ${check.stdout}${check.stderr}`,
        "the example's pod: its liveness command, run in its container",
      );
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, /^alive: output \d+s ago/);
    });

    await t.step(
      "the adoption test's foreign workloads, applied as their owners would: admitted, scheduled",
      async () => {
        // manifests/testdata/adoption: namespace "billing" (restricted, a quota on limits), the
        // release, then two Deployments of other names, users and resources with the component.
        // Their images are not on this node: admission and scheduling are what is asked here.
        const adoption = `${ROOT}manifests/testdata/adoption`;
        await applied(node, ["apply", "-k", `${adoption}/namespace`]);
        await applied(node, ["apply", "-n", "billing", "-k", ROOT]);
        for (const workload of ["billing-sync", "report-export"]) {
          await applied(node, ["apply", "-k", `${adoption}/${workload}`]);
          const rendered = await render(`manifests/testdata/adoption/${workload}`);
          const foreign = rendered.find((m) => m.kind === "Deployment");
          const selector = Object.entries(foreign.spec.selector.matchLabels)
            .map(([k, v]) => `${k}=${v}`).join(",");
          let pod: Manifest | undefined;
          await eventually(`${workload}'s pod scheduled`, async () => {
            pod = (await node.get(["pods", "-n", "billing", "-l", selector])).items[0];
            return pod?.spec.nodeName === NODE;
          }, 60_000);
          const account = foreign.spec.template.spec.serviceAccountName;
          const can = await canI(
            kubectl,
            `system:serviceaccount:billing:${account}`,
            "billing",
            ...GET_LOG,
          );
          recordText(
            `pod ${pod!.metadata.name} created by its ReplicaSet, on ${pod!.spec.nodeName}\n` +
              `${account} may get pods/log: ${can}`,
            `${workload}'s pod in billing`,
          );
          assert.equal(can, "yes");
        }
      },
    );

    await t.step("kubectl auth can-i: the binding is as narrow as the README says", async () => {
      const can = (ns: string, ...question: string[]) => canI(kubectl, ACCOUNT, ns, ...question);
      const answers = {
        "get pods/log": await can(NS, ...GET_LOG),
        "get pods": await can(NS, "get", "pods"),
        "list pods/log": await can(NS, "list", "pods", "--subresource=log"),
        "create pods/exec": await can(NS, "create", "pods", "--subresource=exec"),
        "get configmaps": await can(NS, "get", "configmaps"),
        "get pods/log -n default": await can("default", ...GET_LOG),
      };
      recordText(
        Object.entries(answers).map(([k, v]) => `${k}: ${v}`).join("\n"),
        `kubectl auth can-i --as=${ACCOUNT}`,
      );
      assert.deepEqual(answers, {
        "get pods/log": "yes",
        "get pods": "no",
        "list pods/log": "no",
        "create pods/exec": "no",
        "get configmaps": "no",
        "get pods/log -n default": "no",
      });
    });

    await t.step("a second workload's binding leaves the first one's in place", async () => {
      const canGetLog = (account: string) =>
        canI(kubectl, `system:serviceaccount:${NS}:${account}`, NS, ...GET_LOG);
      // Today's examples/dedicated-account as the second workload, as its comment says.
      const second = await node.kubectl(["apply", "-k", `${ROOT}examples/dedicated-account`]);
      const after = await canGetLog("worker");
      recordText(
        `exit ${second.code}\n${second.stdout}${second.stderr}worker may still get pods/log: ${after}`,
        "second workload: kubectl apply -k examples/dedicated-account",
      );
      // Put the first workload back as it was (a no-op when it was left in place).
      assert.equal(
        (await node.kubectl(["apply", "-k", `${ROOT}examples/deployment`, "-n", NS])).code,
        0,
      );
      const other = await node.kubectl(["apply", "-n", NS, "-f", "-"], {
        stdin: JSON.stringify({
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: { name: "log-probe-log-probe" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "log-probe" },
          subjects: [{ kind: "ServiceAccount", name: "log-probe" }],
        }),
      });
      assert.equal(other.code, 0, other.stderr);
      assert.equal(await canGetLog("worker"), "yes");
      assert.equal(await canGetLog("log-probe"), "yes");
      recordText("worker: yes; log-probe: yes", "second binding under its own name");
    });

    // The pod the scenarios below run in: the example's template, the worker quiet until the
    // test makes it print, a sidecar beside it.
    let quiet: Manifest = undefined;
    await t.step(
      "a Pod from the example's template with a sidecar: admitted, running",
      async () => {
        const created = await node.kubectl(["create", "-f", "-", "-o", "name"], {
          stdin: JSON.stringify(quietPod(deployment, "quiet")),
        });
        recordText(
          `exit ${created.code}: ${(created.stdout + created.stderr).trim()}`,
          "Pod from examples/deployment's template, a sidecar added",
        );
        assert.equal(created.code, 0, created.stderr);
        quiet = await runningPod(node, NS, "quiet");
        assert.equal(quiet.spec.nodeName, NODE);
      },
    );

    assert(quiet, "the pod runs");
    /** A TokenRequest token of the worker's account, bound to `pod`, as the kubelet asks one. */
    const boundToken = async (pod: Manifest) =>
      (await node.kubectl([
        "create",
        "token",
        "worker",
        "-n",
        NS,
        "--bound-object-kind=Pod",
        `--bound-object-name=${pod.metadata.name}`,
        `--bound-object-uid=${pod.metadata.uid}`,
        "--duration=1h",
      ])).stdout.trim();
    const token = await boundToken(quiet);
    assert.match(token, /^ey/);
    const standPod = stand.addPod(NS, "quiet", ["worker", "shipper"], ["log-probe-install-deno"]);
    standPod.uid = quiet.metadata.uid;
    let counter = 0;
    /**
     * The pod's liveness command with `args` added (and the arguments `drop` matches taken
     * out), run in its worker container, on a counter of its own (see `fresh`).
     */
    const probe = async (
      args: string[],
      options: { env?: Record<string, string>; drop?: RegExp; pod?: Manifest } = {},
    ) => {
      const pod = options.pod ?? quiet;
      const command: string[] = pod.spec.containers.find((c: Manifest) => c.name === "worker")
        .livenessProbe.exec.command;
      const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
      const argv = [
        ...env.length ? ["/bin/env", ...env] : [],
        ...command.filter((arg) => !options.drop?.test(arg) && !arg.startsWith("--state-file=")),
        `--state-file=/var/lib/log-probe/e2e-${counter}`,
        ...args,
      ];
      const result = await node.execIn(pod, "worker", argv);
      return { code: result.code, line: (result.stdout + result.stderr).split("\n")[0] };
    };
    /** A new counter for the next checks. */
    const fresh = () => counter++;
    /** The worker prints `lines` on its own stdout, now. */
    const print = async (...lines: string[]) => {
      const printed = await node.execIn(quiet, "worker", [
        "/bin/sh",
        "-c",
        'for line; do echo "$line"; done >/proc/1/fd/1',
        "sh",
        ...lines,
      ]);
      assert.equal(printed.code, 0, printed.stderr);
      for (const line of lines) stand.log(standPod, line, "worker");
    };
    /** The worker prints `count` lines of `text` at once. */
    const burst = async (text: string, count: number) => {
      const printed = await node.execIn(quiet, "worker", [
        "/bin/sh",
        "-c",
        'yes "$1" | head -n "$2" >/proc/1/fd/1',
        "sh",
        text,
        String(count),
      ]);
      assert.equal(printed.code, 0, printed.stderr);
    };
    const real = (q: string, pod = "quiet", bearer = token) => realLogs(node, bearer, pod, q);
    const standIn = (q: string, pod = "quiet", bearer = standToken) =>
      standInLogs(stand, pki, bearer, pod, q);

    await t.step("alive: a line in the window", async () => {
      fresh();
      await print("processed job 1");
      const result = await probe(["--window=5s"]);
      record({
        scenario: "alive (--window=5s)",
        real: await real(query(5)),
        standIn: await standIn(query(5)),
        probe: result,
      });
      assert.equal(result.code, 0, result.line);
      assert.match(result.line, /^alive:/);
    });

    await t.step(
      "silent past the limit, then alive under the component's longer limit",
      async () => {
        fresh();
        await print("processed job 2");
        // The limit is the window at --failure-threshold (0.4.0): the first one, 2s, here. A first
        // check sees the line; 3.5s later the next is silent.
        const limited = ["--window=2s", "--failure-threshold=1"];
        const first = await probe(limited, { drop: /^--failure-threshold=/ });
        assert.equal(first.code, 0, first.line);
        await sleep(3_500);
        const answer = await real(query(2));
        const silent = await probe(limited, { drop: /^--failure-threshold=/ });
        stand.now += 3_500;
        record({
          scenario: "silent (--window=2s --failure-threshold=1, last line 3.5s old)",
          real: answer,
          standIn: await standIn(query(2)),
          probe: silent,
        });
        assert.equal(silent.code, 1, silent.line);
        assert.match(silent.line, /^silent:/);
        const grown = await probe(["--window=2s"]);
        record({
          scenario: "next check, --failure-threshold=15 (limit: the 15th window) over the old line",
          real: await real(query(6)),
          standIn: await standIn(query(6)),
          probe: grown,
        });
        assert.equal(grown.code, 0, grown.line);
      },
    );

    await t.step("the newest line behind a burst of ignored lines", async () => {
      fresh();
      await print("processed job 3");
      await burst("heartbeat", 200);
      const within = await probe(["--window=60s", "--ignore=^heartbeat"]);
      record({
        scenario: "1 line, then 200 ignored (--ignore=^heartbeat, tail 300)",
        real: summed(await real(patternQuery(60))),
        standIn: "n/a",
        probe: within,
      });
      assert.equal(within.code, 0, within.line);
      assert.match(within.line, /^alive:/);
      fresh();
      await print("processed job 4");
      await burst("heartbeat", 1000);
      const behind = await probe(["--window=60s", "--ignore=^heartbeat"]);
      record({
        scenario: "1 line, then 1000 ignored (beyond the tail of 300)",
        real: summed(await real(patternQuery(60))),
        standIn: "n/a",
        probe: behind,
      });
      assert.equal(behind.code, 0, behind.line);
      assert.match(behind.line, /^alive: matching output \d+s ago/);
    });

    await t.step(
      "the log file renamed and not reopened (the kubelet's ReadLogs error), until the kubelet heals it",
      async () => {
        // What a rotation leaves between its rename and the runtime's reopen, or when the reopen
        // failed: the runtime writes on into the renamed file. The kubelet's log manager reopens a
        // missing log at its next look (pkg/kubelet/logs/container_log_manager.go rotateLog:
        // "try to recover it by reopening"), every containerLogMonitorInterval (3s here, 10s by
        // default); a try in which it did so before the checks ended is tried again.
        const dir = node.logDir(quiet, "worker");
        const missing = async () => !(await Deno.stat(`${dir}/0.log`).catch(() => undefined));
        for (let attempt = 1;; attempt++) {
          fresh();
          await print("processed job 5");
          await Deno.rename(`${dir}/0.log`, `${dir}/0.log.renamed-${attempt}`);
          const renamed = performance.now();
          const answer = await real(query(60));
          const first = await probe(["--window=60s"]);
          const second = await probe(["--window=60s"]);
          fresh();
          const filtered = await probe(["--window=60s", "--ignore=^heartbeat"]);
          if (!(await missing())) {
            assert.ok(attempt < 10, "the kubelet reopened the log within every try");
            continue;
          }
          stand.rotate(standPod, "worker", false);
          record({
            scenario: "renamed, not reopened (1st check)",
            real: answer,
            standIn: await standIn(query(60)),
            probe: first,
          });
          record({
            scenario: "renamed, not reopened (2nd check)",
            real: await real(query(60)),
            standIn: "same",
            probe: second,
          });
          record({
            scenario: "renamed, not reopened, with --ignore=^heartbeat (1st check)",
            real: await real(patternQuery(60)),
            standIn: await standIn(patternQuery(60)),
            probe: filtered,
          });
          assert.match(first.line, /^unknown: the kubelet cannot read the log/);
          assert.match(second.line, /^alive: .*twice in a row/);
          assert.match(filtered.line, /^unknown: the kubelet cannot read the log/);
          const kubectlLogs = await node.kubectl(["logs", "quiet", "-c", "worker", "-n", NS]);
          recordText(
            `exit ${kubectlLogs.code}\nstdout: ${kubectlLogs.stdout}\nstderr: ${kubectlLogs.stderr}`,
            "renamed, not reopened: kubectl logs (as the admin)",
          );
          await eventually("the kubelet reopening the log", async () => !(await missing()));
          stand.reopen(standPod, "worker");
          recordText(
            `0.log again ${Math.round((performance.now() - renamed) / 100) / 10}s after the ` +
              `rename (try ${attempt}); the folder: ${(await listDir(dir)).join(", ")}`,
            "the kubelet reopened the missing log",
          );
          break;
        }
        await print("processed job 6");
        const healed = await probe(["--window=60s"]);
        record({
          scenario: "reopened by the kubelet, then a new line",
          real: await real(query(60)),
          standIn: await standIn(query(60)),
          probe: healed,
        });
        assert.match(healed.line, /^alive: output \d+s ago/);
      },
    );

    await t.step("the kubelet rotates the log: reopened empty, then a new line", async () => {
      fresh();
      await print("processed job 7");
      assert.match((await probe(["--window=60s"])).line, /^alive:/);
      // Past containerLogMaxSize (1Mi): the kubelet renames 0.log at its next look (every 3s)
      // and has the runtime reopen it.
      const dir = node.logDir(quiet, "worker");
      await burst("processed job 8 ".padEnd(1000, "."), 1100);
      await eventually(
        "the kubelet's rotation",
        async () => (await listDir(dir)).some((f) => /^0\.log\.\d{8}-\d{6}/.test(f)),
      );
      stand.rotate(standPod, "worker", true);
      const files = await listDir(dir);
      const empty = await probe(["--window=60s"]);
      record({
        scenario: `rotated by the kubelet, reopened empty (--window=60s; ${files.join(", ")})`,
        real: await real(query(60)),
        standIn: await standIn(query(60)),
        probe: empty,
      });
      assert.equal(empty.code, 0, empty.line);
      await print("processed job 9");
      const after = await probe(["--window=60s"]);
      record({
        scenario: "rotated, then a new line",
        real: await real(query(60)),
        standIn: await standIn(query(60)),
        probe: after,
      });
      assert.equal(after.code, 0, after.line);
      assert.match(after.line, /^alive: output \d+s ago/);
    });

    await t.step("the kubelet stopped", async () => {
      fresh();
      await print("processed job 10");
      assert.match((await probe(["--window=60s"])).line, /^alive:/);
      await node.stop("kubelet");
      try {
        const down = await probe(["--window=60s"]);
        record({
          scenario: "kubelet down (the API server cannot reach it)",
          real: await real(query(60)),
          standIn: "no equivalent (faults_test.ts overrides a status)",
          probe: down,
        });
        assert.equal(down.code, 0, down.line);
        assert.match(down.line, /^unknown:/);
      } finally {
        await node.start("kubelet");
      }
      // Serving again before it has learnt its pods: its own 404 for a moment. Checks until the
      // log answers again; each is alive, or says so (one such error alone fails nothing).
      const restarted = performance.now();
      const first = await real(query(60));
      const checks: Array<{ code: number; line: string }> = [];
      for (let answer = first;; answer = await real(query(60))) {
        if (answer.status === 200 && checks.length > 0) break;
        assert.ok(performance.now() - restarted < 30_000, `still ${answer.status}`);
        checks.push(await probe(["--window=60s"]));
      }
      record({
        scenario: `kubelet started again (its log answers 200 after ${
          Math.round((performance.now() - restarted) / 100) / 10
        }s; ${checks.length} checks, the first shown)`,
        real: first,
        standIn: "no equivalent (probe_test.ts answers the kubelet's 404)",
        probe: checks.find((c) => c.line.startsWith("error:")) ?? checks[0],
      });
      for (const check of checks) {
        assert.ok([0, 2].includes(check.code), check.line);
        assert.match(
          check.line,
          /^(alive:|unknown:|error: the kubelet does not know the pod shop\/quiet \()/,
        );
      }
    });

    await t.step("the API server stopped and restarted", async () => {
      fresh();
      await print("processed job 11");
      assert.match((await probe(["--window=60s"])).line, /^alive:/);
      await node.stop("apiserver");
      let down;
      try {
        down = await probe(["--window=60s"]);
        record({
          scenario: "API server down",
          real: await real(query(60)),
          standIn: "no equivalent (closed server)",
          probe: down,
        });
      } finally {
        await node.start("apiserver");
      }
      assert.equal(down.code, 0, down.line);
      assert.match(down.line, /^unknown:/);
      await print("processed job 12");
      const back = await probe(["--window=60s"]);
      record({
        scenario: "API server back (same token)",
        real: await real(query(60)),
        standIn: "n/a",
        probe: back,
      });
      assert.equal(back.code, 0, back.line);
      assert.match(back.line, /^alive:/);
    });

    await t.step("the RoleBinding deleted: 403", async () => {
      await print("processed job 13");
      assert.equal(
        (await node.kubectl(["delete", "rolebinding", "log-probe-worker", "-n", NS])).code,
        0,
      );
      try {
        await eventually("the 403", async () => (await real(query(60))).status === 403);
        stand.grants.delete(`${NS}/${ACCOUNT}`);
        fresh();
        const result = await probe(["--window=60s"]);
        record({
          scenario: "RoleBinding deleted",
          real: await real(query(60)),
          standIn: await standIn(query(60)),
          probe: result,
        });
        // Loud whatever the exit: a misconfiguration fails one check in three (0.4.0).
        assert.match(result.line, /^error:.*forbidden/);
      } finally {
        await node.kubectl(["apply", "-k", `${ROOT}examples/deployment`, "-n", NS]);
        stand.addServiceAccount(standToken, NS, "worker");
        await eventually("the binding back", async () => (await real(query(60))).status === 200);
      }
    });

    await t.step("a wrong pod name: 404", async () => {
      fresh();
      const result = await probe(["--window=60s"], {
        env: { LOG_PROBE_POD_NAME: "worker-no-such-pod" },
      });
      record({
        scenario: "wrong pod name",
        real: await real(query(60), "worker-no-such-pod"),
        standIn: await standIn(query(60), "worker-no-such-pod"),
        probe: result,
      });
      assert.match(result.line, /^error:.*not found/);
    });

    await t.step("two containers and no --container: 400", async () => {
      fresh();
      // The component always names the container: without it, as a hand-written probe might.
      const result = await probe(["--window=60s"], { drop: /^--container=/ });
      const noContainer = query(60).replace("&container=worker", "");
      record({
        scenario: "pod with two containers, no --container",
        real: await real(noContainer),
        standIn: await standIn(noContainer),
        probe: result,
      });
      assert.match(result.line, /^error:.*a container name must be specified/);
    });

    await t.step(
      "an invalid token: bound to a deleted pod, and one past its expiry",
      async () => {
        const gone = await node.kubectl(["create", "-f", "-", "-o", "json"], {
          stdin: JSON.stringify(quietPod(deployment, "gone")),
        });
        assert.equal(gone.code, 0, gone.stderr);
        const goneToken = await boundToken(JSON.parse(gone.stdout));
        assert.equal(
          (await node.kubectl(["delete", "pod", "gone", "-n", NS, "--grace-period=0", "--force"]))
            .code,
          0,
        );
        const expired = await expiredToken(node, quiet);
        // Each token where the kubelet would put the pod's own: a pod with a Secret mounted
        // over the service-account folder (token, ca.crt, namespace) and no token of its own.
        const ca = await Deno.readTextFile(`${node.dir}/pki/ca.crt`);
        const pods: Record<string, Manifest> = {};
        for (const [name, bad] of [["token-gone", goneToken], ["token-expired", expired]]) {
          await node.apply(NS, [{
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name },
            stringData: { token: bad, "ca.crt": ca, namespace: NS },
          }]);
          const pod = quietPod(deployment, name);
          pod.spec.automountServiceAccountToken = false;
          pod.spec.volumes.push({ name: "token", secret: { secretName: name } });
          pod.spec.containers[0].volumeMounts.push({
            name: "token",
            mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
            readOnly: true,
          });
          const created = await node.kubectl(["create", "-f", "-"], {
            stdin: JSON.stringify(pod),
          });
          assert.equal(created.code, 0, created.stderr);
        }
        for (const name of ["token-gone", "token-expired"]) {
          pods[name] = await runningPod(node, NS, name);
        }
        for (
          const [what, name, bad] of [
            ["bound to a deleted pod", "token-gone", goneToken],
            ["expired", "token-expired", expired],
          ]
        ) {
          fresh();
          const result = await probe(["--window=60s"], { pod: pods[name] });
          record({
            scenario: `token ${what}`,
            real: await real(query(60), name, bad),
            standIn: await standIn(query(60), "quiet", "unknown-token"),
            probe: result,
          });
          // Loud whatever the exit: a misconfiguration fails one check in three (0.4.0).
          assert.match(result.line, /^error: unauthorized/);
        }
      },
    );

    await t.step(
      "uninstall as the README says: the workload's binding, then the release",
      async () => {
        // README "Uninstall", with this repository's root standing for the release's folder.
        const binding = await node.kubectl(["delete", "-n", NS, "rolebinding", "log-probe-worker"]);
        const release = await node.kubectl(["delete", "-n", NS, "-k", ROOT]);
        const older = await node.kubectl([
          "delete",
          "-n",
          NS,
          "configmap",
          "-l",
          "app.kubernetes.io/name=log-probe",
        ]);
        const left = await node.kubectl([
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
    failed = false;
  } finally {
    const seconds = Math.round((performance.now() - started) / 1000);
    const text = `# log-probe e2e: recorded ${
      new Date().toISOString()
    } in ${seconds}s\n\n${markdown()}\n`;
    const folder = Deno.env.get("E2E_RECORD");
    if (folder) await Deno.writeTextFile(`${folder}/controlplane.md`, text);
    console.log(text);
    await stand.close();
    const down = await node.down();
    await Deno.remove(pki.dir, { recursive: true });
    if (!Deno.env.get("E2E_KEEP") && !failed) await Deno.remove(node.dir, { recursive: true });
    assert.equal(down.left, "", "the node left nothing on the host");
  }
});

/**
 * A service-account token whose time is over: TokenRequest will not issue one
 * shorter than 10 minutes, so this signs the claims a TokenRequest token
 * carries, with the API server's own signing key (--service-account-signing-key-file),
 * with `exp` a minute ago.
 */
async function expiredToken(node: RealNode, worker: Manifest): Promise<string> {
  const pem = await Deno.readTextFile(`${node.dir}/pki/sa.key`);
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
  const account = await node.get(["serviceaccount", "worker", "-n", NS]);
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
