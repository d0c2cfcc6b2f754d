/**
 * `deno task demo`: the probe's main job on a simulated cluster. A worker logs
 * for twenty minutes and then hangs; the kubelet runs the real probe once per
 * simulated minute (initialDelaySeconds 120, periodSeconds 60,
 * failureThreshold 15, as in the seed article) until it restarts the
 * container. The clock is virtual, so two hours pass in seconds.
 *
 * @module
 */
import { formatDuration, restartAfter } from "../probe.ts";
import { Cluster } from "./cluster.ts";

const PERIOD = 60;
const THRESHOLD = 15;
const HANG_AT = 20 * 60;

function clock(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor(seconds % 3600 / 60);
  const s = Math.floor(seconds % 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

const cluster = await Cluster.start();
const { server, pod } = cluster;
const start = server.now;
// The worker prints a line every 5 to 55 seconds, is quiet for four minutes
// from 0:08:00 (a long job), then hangs at 0:20:00.
const lines: number[] = [];
for (let t = 5, i = 0; t < HANG_AT; t += 5 + (i * 37) % 51, i++) {
  if (t < 8 * 60 || t > 12 * 60) lines.push(t);
}
const lastLine = lines.at(-1)!;

console.log("log-probe demo: a worker pod on a simulated cluster (virtual clock)");
console.log(
  `The worker logs every few seconds, then hangs after its line at ${clock(lastLine)}.`,
);
console.log(
  `The kubelet runs probe.ts every ${PERIOD}s from 0:02:00 and restarts after ${THRESHOLD} failures in a row.\n`,
);
console.log("    time  verdict  kubelet                  the probe's line");

const plan = {
  window: 60,
  growth: "triangular" as const,
  period: PERIOD,
  failureThreshold: THRESHOLD,
};
let failures = 0;
let restartedAt: number | undefined;
let shown = "";
for (let t = 120; restartedAt === undefined; t += PERIOD) {
  server.now = start + t * 1000;
  while (lines.length && lines[0] <= t) {
    server.log(pod, `processed job ${Math.round(lines[0])}`, "app", start + lines.shift()! * 1000);
  }
  const run = await cluster.run(["--period", `${PERIOD}s`]);
  const verdict = run.stdout.split(":")[0];
  failures = run.code === 0 ? 0 : failures + 1;
  const kubelet = run.code === 0
    ? "ok"
    : failures < THRESHOLD
    ? `failure ${failures} of ${THRESHOLD}`
    : "restarts the container";
  // Every failing check, each change of verdict, and one line every 20 minutes.
  if (run.code !== 0 || verdict !== shown || t % 1200 === 0) {
    console.log(
      `${clock(t).padStart(8)}  ${verdict.padEnd(7)}  ${kubelet.padEnd(23)}  ${
        run.stdout.trim().slice(verdict.length + 2, verdict.length + 70)
      }`,
    );
  }
  shown = verdict;
  if (failures === THRESHOLD) restartedAt = t;
}

const silence = restartedAt - lastLine;
const { earliest, latest } = restartAfter(plan);
console.log(
  `\nRestarted at ${clock(restartedAt)}, after ${formatDuration(silence)} of silence ` +
    `(probe.ts plan: ${formatDuration(earliest)} to ${formatDuration(latest)}).`,
);
await cluster.stop();
