/**
 * `deno task bench`: what one check costs, against the seed script and two
 * Deno floors, as the log grows. Starts the HTTPS test server (kubelet log
 * semantics), fills the window with N bytes of output, and runs each tool
 * interleaved (A B C D A B C D …) after a warm-up. Writes bench/results.json
 * and bench/results.svg.
 *
 * @module
 */
import os from "node:os";
import process from "node:process";
import { Cluster, denoFlags, PROBE } from "../testing/cluster.ts";
import { compileProbe } from "../testing/compile.ts";
import { plot, type Results, type Stats } from "./plot.ts";

const HERE = new URL(".", import.meta.url).pathname;
const SEED = new URL("../../shared/seed/probe.sh", import.meta.url).pathname;
const SIZES = [0, 1_000, 1_000_000, 10_000_000, 100_000_000];
const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 7);
const LINE = "x".repeat(99); // 100 bytes with its newline

interface Tool {
  id: string;
  label: string;
  argv: string[];
  env?: Record<string, string>;
}

interface Sample {
  ms: number;
  rssMiB: number;
  serverBytes: number;
  serverCpuMs: number;
  code: number;
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return {
    median: sorted.length % 2
      ? sorted[(sorted.length - 1) / 2]
      : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2,
    min: sorted[0],
    max: sorted[sorted.length - 1],
    p25: at(0.25),
    p75: at(0.75),
  };
}

const cluster = await Cluster.start();
const { server, paths } = cluster;
const work = await Deno.makeTempDir({ prefix: "log-probe-bench-" });
const host = `127.0.0.1:${server.port}`;
const flags = denoFlags(paths, host);
const url =
  `${server.url}/api/v1/namespaces/shop/pods/${cluster.podName}/log?sinceSeconds=60&tailLines=1&timestamps=true&limitBytes=64`;
const probeArgs = [
  "--service-account-dir",
  paths.serviceAccountDir,
  "--state-file",
  cluster.stateFile,
  "--termination-message-path",
  paths.terminationMessagePath,
];
// In a pod with a read-only root file system Deno has no writable cache.
const noCache = { DENO_DIR: `${work}/no-deno-dir/cache` };

const tools: Tool[] = [];
const skipped: Record<string, string> = {};
try {
  const script = (await Deno.readTextFile(SEED))
    .replaceAll("https://kubernetes.default.svc", `https://${host}`)
    .replaceAll(
      "/var/run/secrets/kubernetes.io/serviceaccount/token",
      `${paths.serviceAccountDir}/token`,
    )
    .replaceAll("/tmp/ProbeFailedTimes", `${work}/ProbeFailedTimes`);
  await Deno.writeTextFile(`${work}/seed.sh`, script);
  tools.push({
    id: "seed",
    label: "seed probe.sh (bash + curl -k)",
    argv: ["bash", `${work}/seed.sh`],
    env: { NAMESPACE: cluster.namespace, HOSTNAME: cluster.podName },
  });
} catch {
  skipped.seed = `${SEED} not found`;
}
tools.push(
  {
    id: "probe",
    label: "log-probe (deno run probe.ts)",
    argv: [Deno.execPath(), ...flags, PROBE, ...probeArgs],
    env: noCache,
  },
  {
    id: "hello",
    label: "floor: Deno hello world",
    argv: [Deno.execPath(), ...flags, `${HERE}hello.ts`],
    env: noCache,
  },
  {
    id: "fetch",
    label: "floor: Deno bare fetch",
    argv: [Deno.execPath(), ...flags, `${HERE}bare_fetch.ts`, paths.serviceAccountDir, url],
    env: noCache,
  },
);
const compileWhy = await compileProbe(work);
if (compileWhy) {
  skipped.compiled = compileWhy;
} else {
  tools.push({
    id: "compiled",
    label: "log-probe compiled",
    argv: [`${work}/log-probe`, ...probeArgs],
  });
}

async function runOnce(tool: Tool): Promise<Sample> {
  await cluster.setCounter(0); // the steady state of a healthy container
  await Deno.remove(`${work}/ProbeFailedTimes`).catch(() => {});
  const seen = server.seen.length;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const output = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M", "-o", `${work}/rss`, ...tool.argv],
    clearEnv: true,
    env: {
      PATH: "/usr/local/bin:/usr/bin:/bin",
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: String(server.port),
      HOSTNAME: cluster.podName,
      ...tool.env,
    },
    stdout: "null",
    stderr: "null",
  }).output();
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const rss = (await Deno.readTextFile(`${work}/rss`)).trim().split("\n").at(-1)!;
  return {
    ms,
    rssMiB: Number(rss) / 1024,
    serverBytes: server.seen.slice(seen).reduce((sum, s) => sum + s.bytes, 0),
    serverCpuMs: (used.user + used.system) / 1000,
    code: output.code,
  };
}

function fill(bytes: number): void {
  const records = cluster.pod.containers.get("app")!;
  records.length = 0;
  records.push({ at: server.now - 3600_000, text: "an old line, outside every window" });
  const count = Math.round(bytes / 100);
  for (let i = 0; i < count; i++) records.push({ at: server.now - 30_000 + i / count, text: LINE });
}

const results: Results["results"] = [];
const started = performance.now();
for (const size of SIZES) {
  fill(size);
  for (const tool of tools) await runOnce(tool); // warm-up
  const samples = new Map<string, Sample[]>(tools.map((t) => [t.id, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const tool of tools) samples.get(tool.id)!.push(await runOnce(tool));
  }
  for (const tool of tools) {
    const runs = samples.get(tool.id)!;
    results.push({
      tool: tool.id,
      logBytes: size,
      wallMs: stats(runs.map((r) => r.ms)),
      peakRssMiB: stats(runs.map((r) => r.rssMiB)),
      serverBytes: stats(runs.map((r) => r.serverBytes)).median,
      serverCpuMs: stats(runs.map((r) => r.serverCpuMs)).median,
      exitCodes: [...new Set(runs.map((r) => r.code))],
    });
  }
  console.error(
    `${size} bytes in the window: done (${Math.round(performance.now() - started)} ms)`,
  );
}

// What else might lower the cost of one check: flags and settings a manifest can carry.
fill(1_000);
const probe = tools.find((t) => t.id === "probe")!;
const variants: Tool[] = [
  { ...probe, id: "as shipped", label: "as shipped (no writable Deno cache)" },
  {
    ...probe,
    id: "cache",
    label: "DENO_DIR writable (transpile cached)",
    env: { DENO_DIR: `${work}/deno-dir` },
  },
  {
    ...probe,
    id: "system-ca",
    label: "DENO_TLS_CA_STORE=system",
    env: { ...noCache, DENO_TLS_CA_STORE: "system" },
  },
  {
    ...probe,
    id: "jitless",
    label: "--v8-flags=--jitless",
    argv: [Deno.execPath(), ...flags, "--v8-flags=--jitless", PROBE, ...probeArgs],
  },
  {
    ...probe,
    id: "single-threaded",
    label: "--v8-flags=--single-threaded",
    argv: [Deno.execPath(), ...flags, "--v8-flags=--single-threaded", PROBE, ...probeArgs],
  },
];
for (const variant of variants) await runOnce(variant);
const variantSamples = new Map<string, Sample[]>(variants.map((v) => [v.id, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const variant of variants) variantSamples.get(variant.id)!.push(await runOnce(variant));
}
const experiments = variants.map((variant) => ({
  label: variant.label,
  wallMs: stats(variantSamples.get(variant.id)!.map((r) => r.ms)).median,
  peakRssMiB: stats(variantSamples.get(variant.id)!.map((r) => r.rssMiB)).median,
}));

const output: Results = {
  date: new Date().toISOString(),
  machine: {
    cpus: navigator.hardwareConcurrency,
    model: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
  },
  deno: Deno.version.deno,
  rounds: ROUNDS,
  tools: Object.fromEntries(tools.map((t) => [t.id, t.label])),
  skipped,
  results,
  experiments,
};
await Deno.writeTextFile(`${HERE}results.json`, JSON.stringify(output, null, 2) + "\n");
await Deno.writeTextFile(`${HERE}results.svg`, plot(output));
await cluster.stop();
await Deno.remove(work, { recursive: true });

// A table for the README.
const find = (tool: string, size: number) =>
  results.find((r) => r.tool === tool && r.logBytes === size);
const mib = (bytes: number) =>
  bytes >= 1e6 ? `${bytes / 1e6} MB` : bytes ? `${bytes / 1e3} KB` : "0";
console.log(
  "| log in window | tool | wall ms (median, min–max) | peak RSS MiB | bytes from server | server CPU ms |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const size of SIZES) {
  for (const tool of tools) {
    const r = find(tool.id, size)!;
    console.log(
      `| ${mib(size)} | ${tool.id} | ${r.wallMs.median.toFixed(1)} (${r.wallMs.min.toFixed(1)}–${
        r.wallMs.max.toFixed(1)
      }) | ${r.peakRssMiB.median.toFixed(1)} | ${r.serverBytes} | ${r.serverCpuMs.toFixed(1)} |`,
    );
  }
}
for (const [tool, why] of Object.entries(skipped)) console.log(`\n${tool} skipped: ${why}`);
console.log(
  "\n| probe.ts variant (1 KB in window) | wall ms | peak RSS MiB |\n| --- | --- | --- |",
);
for (const e of experiments) {
  console.log(`| ${e.label} | ${e.wallMs.toFixed(1)} | ${e.peakRssMiB.toFixed(1)} |`);
}
const ratios = SIZES.map((size) => {
  const p = find("probe", size)!;
  const f = find("fetch", size)!;
  return `${mib(size)}: ${(p.wallMs.median / f.wallMs.median).toFixed(2)}× time, +${
    (p.peakRssMiB.median - f.peakRssMiB.median).toFixed(1)
  } MiB`;
});
console.log(`\nprobe.ts vs bare fetch: ${ratios.join("; ")}`);
const seedBig = find("seed", 100_000_000);
if (seedBig) {
  console.log(
    `at 100 MB: probe.ts is ${
      (seedBig.wallMs.median / find("probe", 100_000_000)!.wallMs.median).toFixed(0)
    }× faster than the seed script`,
  );
}
