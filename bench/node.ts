/**
 * What checks cost on a real node (testing/controlplane/node.sh): the README's
 * install on a worker Deployment of `PODS` replicas (50 by default) whose probe
 * runs every `PERIOD` seconds (5), then, over `SECONDS` (60):
 *
 * - the CPU of kube-apiserver, etcd, the kubelet and containerd (with its shims)
 *   per check, against the same node idle beforehand (`/proc/<pid>/stat`);
 * - a check's CPU and peak memory in the probed container's own cgroup (cgroup
 *   v1 `cpuacct.usage`, `memory.max_usage_in_bytes`), against a worker without
 *   the probe;
 * - checks counted by the kubelet (`prober_probe_total`, /metrics/probes).
 *
 * Writes bench/node-results.json and prints the figures; never fails on a slow
 * machine. `deno task bench-node` (root; the node is built on first use).
 *
 * @module
 */
import {
  foreignWorker,
  platformNamespace,
  probePatchFor,
  RealNode,
  renderKustomization,
  run,
  sleep,
} from "../testing/node.ts";
import { type Manifest, ROOT } from "../testing/kubelet.ts";

const PODS = Number(Deno.env.get("PODS") ?? 50);
const PERIOD = Number(Deno.env.get("PERIOD") ?? 5);
const MEASURE = Number(Deno.env.get("SECONDS") ?? 60);
const TICK_MS = 10; // USER_HZ = 100 on Linux
const PRINT_EVERY_2S =
  'i=0; while true; do i=$((i+1)); echo "processed job $i"; sleep 2 & wait $!; done';

/** CPU ticks (user + system) of the node's processes, by command name (read by sh: Deno grants /proc only to --allow-all). */
async function processTicks(): Promise<Record<string, number>> {
  const listing = await sh(
    'for p in /proc/[0-9]*; do e=$(readlink "$p/exe" 2>/dev/null) || continue; ' +
      'case $e in */log-probe-node/*|*/log-probe-e2e/*) echo "$e $(cat "$p/stat" 2>/dev/null)";; esac; done',
  );
  const ticks: Record<string, number> = {};
  for (const line of listing.split("\n").filter(Boolean)) {
    const exe = line.slice(0, line.indexOf(" "));
    const fields = line.slice(line.lastIndexOf(")") + 2).split(" ");
    const name = exe.split("/").at(-1)!;
    // utime + stime; and cutime + cstime: waited-for children (runc, and for a shim,
    // the exec'd probe it reaps as the container's subreaper).
    ticks[name] = (ticks[name] ?? 0) + Number(fields[11]) + Number(fields[12]);
    ticks[`${name} children`] = (ticks[`${name} children`] ?? 0) + Number(fields[13]) +
      Number(fields[14]);
  }
  return ticks;
}

/** Liveness checks the kubelet has run, by result. */
async function probesRun(node: RealNode): Promise<number> {
  const metrics = await node.kubectl([
    "get",
    "--raw",
    "/api/v1/nodes/e2e-node/proxy/metrics/probes",
  ]);
  let total = 0;
  for (const line of metrics.stdout.split("\n")) {
    if (line.startsWith("prober_probe_total{") && line.includes('probe_type="Liveness"')) {
      total += Number(line.split(" ").at(-1));
    }
  }
  return total;
}

/** The container's cgroup v1 folder in `hierarchy`. */
function cgroupOf(node: RealNode, pod: Manifest, hierarchy: string): string {
  const root = `/log-probe-${node.dir.split("/").at(-1)}`;
  const id = pod.status.containerStatuses[0].containerID.replace(/^\w+:\/\//, "");
  const qos = pod.status.qosClass.toLowerCase();
  return `/sys/fs/cgroup/${hierarchy}${root}/kubepods/${qos}/pod${pod.metadata.uid}/${id}`;
}

async function sh(script: string): Promise<string> {
  return (await run("sh", ["-c", script])).stdout.trim();
}

async function runningPods(node: RealNode, app: string): Promise<Manifest[]> {
  const list = await node.get(["pods", "-n", "bench", "-l", `app=${app}`]);
  return list.items.filter((p: Manifest) =>
    p.status.containerStatuses?.every((c: Manifest) => c.state.running)
  );
}

const rate = (a: Record<string, number>, b: Record<string, number>, name: string) =>
  ((b[name] ?? 0) - (a[name] ?? 0)) * TICK_MS;

if (import.meta.main) {
  const node = await RealNode.up();
  const work = await Deno.makeTempDir({ prefix: "log-probe-bench-node-" });
  try {
    // Pod Security "restricted" only: the e2e's quota would cap the namespace at 24 of these pods.
    await node.apply("bench", [platformNamespace("bench")[0]]);
    await run("ln", ["-s", ROOT.replace(/\/$/, ""), `${work}/log-probe`]);
    await Deno.mkdir(`${work}/my-worker`);
    const worker = foreignWorker("ledger-sync", "sync", PRINT_EVERY_2S);
    await Deno.writeTextFile(
      `${work}/my-worker/deployment.yaml`,
      worker.map((o) => JSON.stringify(o)).join("\n---\n"),
    );
    await Deno.writeTextFile(
      `${work}/my-worker/log-probe.yaml`,
      probePatchFor("ledger-sync", "sync"),
    );
    await Deno.writeTextFile(
      `${work}/my-worker/kustomization.yaml`,
      "resources: [deployment.yaml]\ncomponents: [../log-probe/components/log-probe]\npatches: [{path: log-probe.yaml}]\n",
    );
    await node.kubectl(["apply", "-n", "bench", "-k", "log-probe"], { cwd: work });
    const rendered = await renderKustomization(`${work}/my-worker`);
    const deployment = rendered.find((m) => m.kind === "Deployment");
    deployment.spec.replicas = PODS;
    const spec = deployment.spec.template.spec;
    // 50 pods on 2 cores: the init container's 50m request would not fit; 10m does.
    spec.initContainers[0].resources.requests.cpu = "10m";
    const probe = spec.containers[0].livenessProbe;
    Object.assign(probe, { initialDelaySeconds: PERIOD, periodSeconds: PERIOD });
    probe.exec.command = probe.exec.command.map((a: string) =>
      a.startsWith("--period=") ? `--period=${PERIOD}s` : a
    );
    const bare = structuredClone(worker[1]);
    bare.metadata.name = bare.spec.selector.matchLabels.app = "bare";
    bare.spec.template.metadata.labels.app = "bare";

    // The node idle (the release applied, no pods), as the baseline.
    const idle0 = await processTicks();
    await sleep(30_000);
    const idle1 = await processTicks();
    const idleSeconds = 30;

    await node.apply("bench", [
      ...rendered.filter((m) => m.kind !== "Deployment"),
      deployment,
      bare,
    ]);
    const startedAt = Date.now();
    while ((await runningPods(node, "ledger-sync")).length < PODS) {
      if (Date.now() - startedAt > 900_000) throw new Error("pods not running in 15 minutes");
      await sleep(2000);
    }
    const startSeconds = (Date.now() - startedAt) / 1000;
    await sleep(3 * PERIOD * 1000);
    const probed = (await runningPods(node, "ledger-sync")).slice(0, 5);
    const [barePod] = await runningPods(node, "bare");
    const sampled = [...probed, barePod];
    for (const pod of sampled) {
      await sh(`echo 0 > ${cgroupOf(node, pod, "memory")}/memory.max_usage_in_bytes`);
    }
    const cpu0 = await Promise.all(
      sampled.map((p) => sh(`cat ${cgroupOf(node, p, "cpuacct")}/cpuacct.usage`)),
    );
    const checks0 = await probesRun(node);
    const busy0 = await processTicks();
    await sleep(MEASURE * 1000);
    const busy1 = await processTicks();
    const checks1 = await probesRun(node);
    const cpu1 = await Promise.all(
      sampled.map((p) => sh(`cat ${cgroupOf(node, p, "cpuacct")}/cpuacct.usage`)),
    );
    const peaks = await Promise.all(
      sampled.map((p) => sh(`cat ${cgroupOf(node, p, "memory")}/memory.max_usage_in_bytes`)),
    );
    const checks = checks1 - checks0;
    const perCheck: Record<string, number> = {};
    for (const name of Object.keys({ ...busy1, ...idle1 })) {
      const busy = rate(busy0, busy1, name) / MEASURE;
      const idle = rate(idle0, idle1, name) / idleSeconds;
      perCheck[name] = Math.round((busy - idle) * MEASURE / checks * 100) / 100;
    }
    const appMs = (i: number) => (Number(cpu1[i]) - Number(cpu0[i])) / 1e6;
    const bareMs = appMs(sampled.length - 1);
    const containerMs = probed.map((_, i) =>
      Math.round((appMs(i) - bareMs) / (MEASURE / PERIOD) * 10) / 10
    );
    const mibOf = (bytes: string) => Math.round(Number(bytes) / 1048576 * 10) / 10;
    const controlPlane = perCheck["kube-apiserver"] + perCheck.etcd;
    const results = {
      measured: new Date().toISOString(),
      pods: PODS,
      periodSeconds: PERIOD,
      seconds: MEASURE,
      podsStartedInSeconds: startSeconds,
      checks,
      checksPerSecond: Math.round(checks / MEASURE * 10) / 10,
      cpuMsPerCheck: perCheck,
      containerCpuMsPerCheck: containerMs,
      containerPeakMiB: peaks.slice(0, -1).map(mibOf),
      workerWithoutProbePeakMiB: mibOf(peaks.at(-1)!),
      per1000PodsAt60s: {
        apiserverAndEtcdCores: Math.round(1000 / 60 * controlPlane / 1000 * 1000) / 1000,
        kubeletAndContainerdCores: Math.round(
          1000 / 60 * (perCheck.kubelet + perCheck.containerd +
            (perCheck["containerd-shim-runc-v2"] ?? 0)) /
            1000 * 1000,
        ) / 1000,
      },
      podsOneControlPlaneCoreCarriesAt60s: Math.round(60 * 1000 / controlPlane),
      loadavg: await sh("cat /proc/loadavg"),
    };
    console.log(JSON.stringify(results, null, 2));
    await Deno.writeTextFile(
      `${ROOT}bench/node-results.json`,
      JSON.stringify(results, null, 2) + "\n",
    );
  } finally {
    const down = await node.down();
    if (down.left) console.error(`node left: ${down.left}`);
    await Deno.remove(work, { recursive: true });
    await Deno.remove(node.dir, { recursive: true }).catch(() => {});
  }
}
