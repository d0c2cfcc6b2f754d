/**
 * `deno task bench-patterns`: the peak RSS and wall time of a check with --match/--ignore as
 * --limit-bytes and the log grow, next to a check without patterns. A check streams its answer
 * and keeps only the newest line that counts, page after page, so its memory must follow neither
 * --limit-bytes nor the pages: the target is a peak within 8 MiB of a normal check.
 *
 * Runs the real probe as a subprocess with the pod's Deno flags against the stand-in API server
 * (testing/cluster.ts), under `/usr/bin/time -f %M`. Writes bench/patterns.json.
 *
 * @module
 */
import { Cluster } from "../testing/cluster.ts";

const ROUNDS = Number(Deno.env.get("BENCH_ROUNDS") ?? 5);
const LIMITS = [256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024];
const DEBUG = `DEBUG ${"x".repeat(1017)}`; // 1 KiB with its timestamp and newline, about

interface Row {
  case: string;
  limitBytes: number;
  logBytes: number;
  rssMiB: number[];
  ms: number[];
  verdict: string;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

const c = await Cluster.start();
// Started an hour ago: a first check reads everything since the start, the whole filled log.
await c.restartContainer("app", c.server.now - 3600_000);
const file = `${c.dir}/rss`;

/** One check under /usr/bin/time: peak RSS in MiB, wall ms, the verdict word. */
async function measure(args: string[]): Promise<{ rssMiB: number; ms: number; verdict: string }> {
  const run = await c.run(args, { wrapper: ["/usr/bin/time", "-f", "%M", "-o", file] });
  const rssKiB = Number((await Deno.readTextFile(file)).trim().split("\n").at(-1));
  return { rssMiB: rssKiB / 1024, ms: run.ms, verdict: run.stdout.split(":")[0] };
}

/** A fresh log of `bytes` of DEBUG lines in the last 50 s, ending with `last` if given. */
function fill(bytes: number, last?: string): number {
  const records = c.pod.containers.get("app")!;
  records.length = 0;
  const count = Math.ceil(bytes / 1054);
  for (let i = 0; i < count; i++) {
    records.push({ at: c.server.now - 50_000 + Math.floor(i * 45_000 / count), text: DEBUG });
  }
  if (last) records.push({ at: c.server.now - 1000, text: last });
  return count * 1054;
}

const rows: Row[] = [];
async function row(name: string, limitBytes: number, logBytes: number, args: string[]) {
  const result: Row = { case: name, limitBytes, logBytes, rssMiB: [], ms: [], verdict: "" };
  for (let i = 0; i < ROUNDS; i++) {
    await Deno.remove(c.stateFile).catch(() => {});
    const { rssMiB, ms, verdict } = await measure(args);
    result.rssMiB.push(rssMiB);
    result.ms.push(ms);
    result.verdict = verdict;
  }
  rows.push(result);
  console.log(
    `${name.padEnd(34)} limit ${String(limitBytes).padStart(9)}  log ${
      String(logBytes).padStart(9)
    }  ${result.verdict.padEnd(6)} peak RSS ${median(result.rssMiB).toFixed(1)} MiB  ${
      median(result.ms).toFixed(0)
    } ms`,
  );
}

try {
  fill(0, "processed job 1");
  await row("no patterns, alive", 64, 1054, []);
  fill(10_000_000);
  await row("no patterns, 10 MB log, alive", 64, 10_000_000, []);
  for (const limit of LIMITS) {
    const logBytes = fill(Math.min(limit, 32 * 1024 * 1024), "processed job 1");
    const args = ["--ignore", "^DEBUG", "--limit-bytes", String(limit), "--timeout", "30s"];
    await row("--ignore, newest line counts", limit, logBytes, args);
    fill(Math.min(limit, 32 * 1024 * 1024));
    await row("--ignore, nothing counts", limit, logBytes, args);
  }
  // Pages: everything written since the last read, at most --limit-bytes a request.
  for (const pages of [16, 48]) {
    const logBytes = fill(pages * 1024 * 1024, "processed job 1");
    const args = ["--ignore", "^DEBUG", "--timeout", "60s"];
    await row(`--ignore, ${pages} pages of 1 MiB`, 1024 * 1024, logBytes, args);
  }
  const normal = median(rows[0].rssMiB);
  const worst = Math.max(...rows.slice(2).map((r) => median(r.rssMiB)));
  const machine = `${Deno.osRelease()}, ${navigator.hardwareConcurrency} cores, load ${
    Deno.loadavg().map((v) => v.toFixed(2)).join(" ")
  }`;
  console.log(
    `normal check ${normal.toFixed(1)} MiB; worst with patterns ${worst.toFixed(1)} MiB (+${
      (worst - normal).toFixed(1)
    } MiB; target: within 8 MiB) on ${machine}`,
  );
  await Deno.writeTextFile(
    new URL("patterns.json", import.meta.url),
    JSON.stringify({ machine, rounds: ROUNDS, normalMiB: normal, worstMiB: worst, rows }, null, 2) +
      "\n",
  );
} finally {
  await c.stop();
}
