/**
 * `deno task bench`: what one check costs as it ships. Renders the example
 * Deployment (`kubectl kustomize examples/deployment`) and runs its
 * `livenessProbe.exec.command` the way the kubelet runs it, in the kubelet-like
 * sandbox (read-only root, the pod's volumes, environment and user), next to
 * the seed script, Deno's hello world and a bare `fetch`, all run the same
 * way. Each run is measured inside the sandbox (wall, CPU user+sys, peak RSS)
 * and by the stand-in API server (bytes sent). Tools run interleaved
 * (A B C D A B C D …) after a warm-up, as the log in the window grows, and
 * then under CFS CPU quotas. Writes bench/results.json and bench/results.svg.
 *
 * Needs root (mount namespaces, cgroups), `kubectl`, `openssl`, `python3` and
 * port 443 on 127.83.7.1: run it in its own network namespace, see
 * bench/README.md.
 *
 * @module
 */
import os from "node:os";
import { formatCounter } from "../probe.ts";
import { KubeletPod, SA_DIR } from "../testing/kubelet.ts";
import { BENCH_DIR, buildMeter, type Cost, measure } from "./meter.ts";
import { CpuCgroups } from "./cgroup.ts";
import { plot, type Results, type Stats } from "./plot.ts";

const HERE = new URL(".", import.meta.url).pathname;
const SEED = new URL("../../shared/seed/probe.sh", import.meta.url).pathname;
const SIZES = (Deno.env.get("BENCH_SIZES") ?? "0,1000,1000000,10000000,100000000").split(",").map(
  Number,
);
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 9);
const QUOTA_ROUNDS = Number(Deno.env.get("BENCH_QUOTA_ROUNDS") ?? 5);
const QUOTAS = [0, 250, 100]; // millicores; 0: no limit
const LINE = "x".repeat(99); // 100 bytes with its newline

interface Tool {
  id: string;
  label: string;
  argv: string[];
  mounts?: string[];
  env?: Record<string, string>;
  image?: "empty" | "host";
}

interface Sample extends Cost {
  serverBytes: number;
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mid = sorted.length >> 1;
  return {
    median: sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2,
    min: sorted[0],
    max: sorted[sorted.length - 1],
    p25: at(0.25),
    p75: at(0.75),
  };
}

const loadavg = () => Deno.loadavg().map((v) => v.toFixed(2)).join(" ");
const load: string[] = [loadavg()];

const pod = await KubeletPod.create("examples/deployment");
const { server } = pod;
await buildMeter(pod.dir);
// The floors run with the rendered command's Deno flags, between `run` and the script.
const run = pod.probeCommand.indexOf("run");
const script = pod.probeCommand.findIndex((arg, i) => i > run && !arg.startsWith("-"));
const denoRun = pod.probeCommand.slice(0, script);
const url =
  `https://kubernetes.default.svc/api/v1/namespaces/${pod.namespace}/pods/${pod.podName}` +
  `/log?sinceSeconds=60&tailLines=1&timestamps=true&limitBytes=64`;
const seedTmp = await scratch("seed-tmp");
// The probe keeps one counter per named container: --state-file plus ".NAME" with --container.
const container = pod.probeCommand.find((arg) => arg.startsWith("--container="))?.split("=")[1];
const stateFile = pod.probeCommand.find((arg) => arg.startsWith("--state-file="))?.split("=")[1]
  ?.concat(container ? `.${container}` : "");
const stateVolume = pod.container.volumeMounts.find((m: { mountPath: string }) =>
  stateFile?.startsWith(`${m.mountPath}/`)
);

const tools: Tool[] = [{
  id: "probe",
  label: "log-probe, the rendered probe command",
  argv: pod.probeCommand,
}, {
  id: "fetch",
  label: "floor: Deno bare fetch (same flags)",
  argv: [...denoRun, `${BENCH_DIR}/bare_fetch.ts`, SA_DIR, url],
}, {
  id: "hello",
  label: "floor: Deno hello world (same flags)",
  argv: [...denoRun, `${BENCH_DIR}/hello.ts`],
}];
const skipped: Record<string, string> = {};
try {
  await Deno.stat(SEED);
  tools.unshift({
    id: "seed",
    label: "seed probe.sh (bash + curl -k), unchanged",
    argv: ["/bin/bash", "/opt/seed/probe.sh"],
    // The article's pod has a writable /tmp for its counter and sets NAMESPACE.
    mounts: [`${SEED} /opt/seed/probe.sh ro`, `${seedTmp} /tmp rw`],
    env: { NAMESPACE: pod.namespace },
    image: "host", // bash, curl, timeout, cat: a Debian-like image
  });
} catch {
  skipped.seed = `${SEED} not found`;
}

/** A host folder standing for one more writable volume. */
async function scratch(name: string): Promise<string> {
  const path = `${pod.dir}/scratch-${name}`;
  await Deno.mkdir(path);
  await Deno.chmod(path, 0o777);
  return path;
}

/** When the log's one old line was printed: an hour before the virtual clock's now. */
const OLD_LINE_AT = () => server.now - 3600_000;

/**
 * The steady state of a healthy container: a counter of this instance with no failure, its last
 * output the log's one old line, and a check a period ago (so a read with patterns starts there).
 */
async function resetCounters(): Promise<void> {
  await Deno.remove(`${seedTmp}/ProbeFailedTimes`).catch(() => {});
  if (!stateFile || !stateVolume) return;
  const { dev, ino, birthtime } = await Deno.stat(pod.terminationLog);
  const born = birthtime === null ? "-" : birthtime.getTime().toString(36);
  const path = `${pod.emptyDir(stateVolume.name)}${stateFile.slice(stateVolume.mountPath.length)}`;
  const seen = OLD_LINE_AT();
  await Deno.writeTextFile(
    path,
    formatCounter({
      instance: `${dev}:${ino}:${born}`,
      lastOutput: seen,
      fromStart: false,
      seenUntil: server.now - 60_000,
      failures: 0,
      blind: 0,
      unreadable: false,
    }),
  );
}

async function runOnce(
  tool: Tool,
  options: { cgroup?: string; settle?: number } = {},
): Promise<Sample> {
  await resetCounters();
  const seen = server.seen.length;
  const cost = await measure(pod, tool.argv, {
    mounts: tool.mounts,
    env: tool.env,
    image: tool.image,
    ...options,
  });
  if (cost.stderr.trim()) throw new Error(`${tool.id} wrote to stderr: ${cost.stderr}`);
  return {
    ...cost,
    serverBytes: server.seen.slice(seen).reduce((sum, s) => sum + s.bytes, 0),
  };
}

function fill(bytes: number): void {
  const records = server.pods.get(`${pod.namespace}/${pod.podName}`)!.containers.get(
    pod.container.name,
  )!;
  records.length = 0;
  records.push({ at: OLD_LINE_AT(), text: "an old line, outside every window" });
  const count = Math.round(bytes / 100);
  for (let i = 0; i < count; i++) records.push({ at: server.now - 30_000 + i / count, text: LINE });
}

/** Runs `tools` interleaved for `rounds` rounds after one warm-up round. */
async function interleaved(
  list: Tool[],
  rounds: number,
  options: { cgroup?: string; settle?: number } = {},
): Promise<Map<string, Sample[]>> {
  for (const tool of list) await runOnce(tool, options);
  const samples = new Map<string, Sample[]>(list.map((t) => [t.id, []]));
  for (let round = 0; round < rounds; round++) {
    for (const tool of list) samples.get(tool.id)!.push(await runOnce(tool, options));
  }
  return samples;
}

/** Median of the per-round ratios a/b: each pair ran back to back, under the same load. */
function pairedRatio(a: number[], b: number[]): Stats {
  return stats(a.map((value, i) => value / b[i]));
}

function summary(tool: string, runs: Sample[]) {
  return {
    tool,
    wallMs: stats(runs.map((r) => r.wallMs)),
    cpuMs: stats(runs.map((r) => r.cpuMs)),
    userMs: stats(runs.map((r) => r.userMs)).median,
    sysMs: stats(runs.map((r) => r.sysMs)).median,
    peakRssMiB: stats(runs.map((r) => r.peakRssMiB)),
    serverBytes: stats(runs.map((r) => r.serverBytes)).median,
    exitCodes: [...new Set(runs.map((r) => r.code))],
  };
}

// 1. The log-size sweep.
const results: Results["results"] = [];
const targets: Results["targets"] = [];
const started = performance.now();
for (const size of SIZES) {
  fill(size);
  const samples = await interleaved(tools, ROUNDS);
  for (const tool of tools) {
    results.push({ logBytes: size, ...summary(tool.id, samples.get(tool.id)!) });
  }
  const probe = samples.get("probe")!;
  const floor = samples.get("fetch")!;
  const seed = samples.get("seed");
  targets.push({
    logBytes: size,
    wallRatio: pairedRatio(probe.map((r) => r.wallMs), floor.map((r) => r.wallMs)),
    cpuRatio: pairedRatio(probe.map((r) => r.cpuMs), floor.map((r) => r.cpuMs)),
    rssDeltaMiB: stats(probe.map((r, i) => r.peakRssMiB - floor[i].peakRssMiB)),
    cpuVsSeed: seed ? pairedRatio(probe.map((r) => r.cpuMs), seed.map((r) => r.cpuMs)) : undefined,
  });
  load.push(loadavg());
  console.error(
    `${size} bytes in the window: done (${Math.round(performance.now() - started)} ms)`,
  );
}

// 2. The same check with the other Deno cache setting, to show what the cache is worth.
fill(1_000);
const cacheDir = await scratch("deno-cache");
const rendered = pod.env().DENO_DIR;
const variants: Tool[] = [
  {
    ...tools.find((t) => t.id === "probe")!,
    id: "as rendered",
    label: `as rendered (DENO_DIR=${rendered ?? "unset"})`,
  },
  {
    id: "read-only cache",
    label: "DENO_DIR unset: cache under $HOME=/ on the read-only root",
    argv: pod.probeCommand,
    env: { DENO_DIR: "/.cache/deno" }, // where Deno puts it with DENO_DIR unset and HOME=/
  },
];
if (!rendered) {
  variants.push({
    id: "writable cache",
    label: "DENO_DIR on a writable scratch emptyDir",
    argv: pod.probeCommand,
    mounts: [`${cacheDir} /deno-cache rw`],
    env: { DENO_DIR: "/deno-cache" },
  });
}
const variantSamples = await interleaved(variants, ROUNDS);
const experiments = variants.map((v) => ({
  label: v.label,
  ...summary(v.id, variantSamples.get(v.id)!),
}));
load.push(loadavg());

// 3. CPU quotas: the exec probe runs in the container's cgroup.
const cgroups = await CpuCgroups.create(`log-probe-bench-${Deno.pid}`);
const quotaTools = tools.filter((t) => t.id !== "seed");
const quotas: Results["quotas"] = [];
try {
  const name = (millicores: number) => millicores ? `${millicores}m` : "unlimited";
  const procs = new Map<number, string>();
  for (const millicores of QUOTAS) {
    procs.set(millicores, await cgroups.child(name(millicores), millicores));
  }
  for (const [size, check] of [[1_000, "alive"], [0, "silent"]] as const) {
    fill(size);
    for (const millicores of QUOTAS) {
      const cgroup = procs.get(millicores)!;
      const before = await cgroups.throttled(name(millicores));
      // Settle 0.3 s inside the sandbox: its setup's CPU is refilled before the clock starts.
      const samples = await interleaved(quotaTools, QUOTA_ROUNDS, { cgroup, settle: 0.3 });
      const after = await cgroups.throttled(name(millicores));
      const throttling = {
        periods: after.periods - before.periods,
        throttled: after.throttled - before.throttled,
        ms: after.ms - before.ms,
      };
      for (const tool of quotaTools) {
        quotas.push({ millicores, check, throttling, ...summary(tool.id, samples.get(tool.id)!) });
      }
      console.error(`${check} check, CPU limit ${name(millicores)}: done`);
    }
  }
  skipped.quota = "";
} catch (error) {
  skipped.quota = `CPU quotas not measured: ${error instanceof Error ? error.message : error}`;
} finally {
  await cgroups.remove();
}
if (!skipped.quota) delete skipped.quota;
load.push(loadavg());

const output: Results = {
  date: new Date().toISOString(),
  machine: {
    cpus: navigator.hardwareConcurrency,
    model: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    cgroup: cgroups.version,
  },
  deno: Deno.version.deno,
  rounds: ROUNDS,
  quotaRounds: QUOTA_ROUNDS,
  loadavg: load,
  probeCommand: pod.probeCommand,
  probeEnv: pod.env(),
  tools: Object.fromEntries(tools.map((t) => [t.id, t.label])),
  skipped,
  results,
  targets,
  experiments,
  quotas,
};
await Deno.writeTextFile(`${HERE}results.json`, JSON.stringify(output, null, 2) + "\n");
await Deno.writeTextFile(`${HERE}results.svg`, plot(output));
await pod.close();

// Tables for bench/README.md and the README.
const size = (bytes: number) =>
  bytes >= 1e6 ? `${bytes / 1e6} MB` : bytes ? `${bytes / 1e3} KB` : "0";
const range = (s: Stats, digits = 1) =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
console.log(`load (1/5/15 min) before, after each size, variants, quotas: ${load.join(" | ")}\n`);
console.log(
  "| log in window | tool | wall ms | CPU ms (user+sys) | peak RSS MiB | bytes from server | exit |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of results) {
  console.log(
    `| ${size(r.logBytes)} | ${r.tool} | ${range(r.wallMs)} | ${range(r.cpuMs)} | ${
      range(r.peakRssMiB)
    } | ${r.serverBytes} | ${r.exitCodes.join(",")} |`,
  );
}
console.log(
  "\n| log in window | probe/fetch wall | probe/fetch CPU | probe−fetch RSS MiB | probe/seed CPU |",
);
console.log("| --- | --- | --- | --- | --- |");
for (const t of targets) {
  console.log(
    `| ${size(t.logBytes)} | ${range(t.wallRatio, 2)} | ${range(t.cpuRatio, 2)} | ${
      range(t.rssDeltaMiB, 1)
    } | ${t.cpuVsSeed ? range(t.cpuVsSeed, 2) : "–"} |`,
  );
}
console.log(
  "\n| probe.ts, 1 KB in window | wall ms | CPU ms | peak RSS MiB |\n| --- | --- | --- | --- |",
);
for (const e of experiments) {
  console.log(`| ${e.label} | ${range(e.wallMs)} | ${range(e.cpuMs)} | ${range(e.peakRssMiB)} |`);
}
console.log("\n| check | CPU limit | tool | wall ms | CPU ms | peak RSS MiB | exit |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const q of quotas) {
  console.log(
    `| ${q.check} | ${q.millicores ? `${q.millicores}m` : "none"} | ${q.tool} | ${
      range(q.wallMs)
    } | ${range(q.cpuMs)} | ${range(q.peakRssMiB)} | ${q.exitCodes.join(",")} |`,
  );
}
for (const [tool, why] of Object.entries(skipped)) console.log(`\n${tool} skipped: ${why}`);
