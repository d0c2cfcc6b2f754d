/**
 * The promises, end to end, on the virtual clock: a hung container is restarted when `plan`
 * says, counted from its last output or its start; lost answers and errors only delay that; a
 * probe that cannot do its job never restarts anything. Each test plays the kubelet over a
 * container's life (log rotation, bursts, a flaky or absent API server) and runs the real probe
 * at every check, with short settings (a 1m limit) so that a life takes a few dozen checks.
 */
import assert from "node:assert/strict";
import {
  ERROR_CADENCE,
  formatDuration,
  LINEAR_REGEXP_FLAG,
  type PlanOptions,
  restartAfter,
} from "../probe.ts";
import { rfc3339Nano } from "./apiserver.ts";
import { Cluster, type RunOptions } from "./cluster.ts";

const PERIOD = 10;
const THRESHOLD = 3;
const PLAN: PlanOptions = {
  window: 10,
  growth: "triangular",
  period: PERIOD,
  failureThreshold: THRESHOLD,
};
/** The probe's flags for PLAN, as the component keeps them in step with the kubelet's. */
const FLAGS = [
  "--window",
  "10s",
  "--failure-threshold",
  String(THRESHOLD),
  "--period",
  `${PERIOD}s`,
];
const { limit: LIMIT, earliest: EARLIEST, latest: LATEST } = restartAfter(PLAN);

/** What the kubelet saw: the check (seconds from the start) that restarted it, and every exit. */
interface Life {
  restartAt?: number;
  codes: number[];
  lines: string[];
}

/**
 * The kubelet: a check every PERIOD seconds from `from` to `until` (seconds from
 * `start`), a restart after THRESHOLD failures in a row. `before` runs at each
 * check's time, before the probe: it logs lines and breaks things.
 */
async function live(
  c: Cluster,
  start: number,
  options: {
    from?: number;
    until: number;
    args?: string[];
    before?: (t: number) => void | Promise<void>;
    run?: (t: number) => RunOptions;
  },
): Promise<Life> {
  const life: Life = { codes: [], lines: [] };
  let failures = 0;
  for (let t = options.from ?? PERIOD; t <= options.until; t += PERIOD) {
    c.server.now = start + t * 1000;
    await options.before?.(t);
    const run = await c.run([...FLAGS, ...options.args ?? []], options.run?.(t) ?? {});
    assert.ok([0, 1].includes(run.code), `${t}s: ${run.stdout}`);
    life.codes.push(run.code);
    life.lines.push(`${t}s ${run.code} ${run.stdout.trim()}`);
    failures = run.code === 0 ? 0 : failures + 1;
    if (failures === THRESHOLD) {
      life.restartAt = t;
      return life;
    }
  }
  return life;
}

/**
 * The check (seconds, checks at k·PERIOD) at which plan restarts a container whose last output,
 * or start, is at `last` seconds: the first check with more than the limit of silence fails, and
 * THRESHOLD − 1 more. A check exactly at the limit would be a tie the probe's running clock
 * breaks: the tests keep clear of it.
 */
function planned(last: number): number {
  assert.notEqual((last + LIMIT) % PERIOD, 0, "a check exactly at the limit");
  const firstFailure = Math.floor((last + LIMIT) / PERIOD) * PERIOD + PERIOD;
  const restart = firstFailure + (THRESHOLD - 1) * PERIOD;
  assert.ok(restart - last > EARLIEST && restart - last <= LATEST, "inside plan's range");
  return restart;
}

/** A chatty worker: logs a line every 5 s up to `last` seconds, as the virtual clock passes. */
function chatter(c: Cluster, start: number, last: number): (t: number) => void {
  let next = 5;
  return (t) => {
    for (; next <= last && next <= t; next += 5) {
      c.server.log(c.pod, `processed job ${next}`, "app", start + next * 1000);
    }
  };
}

/** A 503 from the API server, for `c.server.override`. */
const UNAVAILABLE = { status: 503, headers: { "content-type": "application/json" }, body: "{}" };

Deno.test("log rotation after the last line the probe saw: restart at the same check as without", async () => {
  const last = 95; // seen by the check at 100s; the log rotates at 105s, then silence
  const plain = await Cluster.start();
  try {
    const start = plain.server.now;
    const without = await live(plain, start, {
      until: 600,
      before: chatter(plain, start, last),
    });
    assert.equal(without.restartAt, planned(last), without.lines.join("\n"));
  } finally {
    await plain.stop();
  }

  const c = await Cluster.start();
  try {
    const log = chatter(c, c.server.now, last);
    const rotated = await live(c, c.server.now, {
      until: 600,
      before: (t) => {
        log(t);
        // Renamed at 105s; the runtime reopens the file only after the check at 110s, which
        // meets the kubelet's error: unknown, not a failure.
        if (t === 110) c.server.rotate(c.pod, "app", false);
        if (t === 120) c.server.reopen(c.pod);
      },
    });
    assert.match(
      rotated.lines[10],
      /^110s 0 unknown: the kubelet cannot read the log: .*\(once; twice in a row: an empty log\); passed, as the check before \(last output \d+s ago\)$/,
    );
    // The line seen before the rotation is remembered: the empty new file is not a reset.
    assert.match(rotated.lines[11], /^120s 0 alive: no output for \d+s, within the 1m limit$/);
    assert.equal(rotated.restartAt, planned(last), rotated.lines.join("\n"));
    console.log(
      `rotation: restart ${rotated.restartAt! - last}s after the last line, as plan says`,
    );
  } finally {
    await c.stop();
  }
});

Deno.test("--ignore: a burst of lines that do not count, then a hang: restart as plan says, as backtest says", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    // A job line every 2 s for 40 s, then 400 "retrying" lines in 4 s, then nothing for 10 min
    // (the history's last line, at 600 s, marks where `kubectl logs` was taken).
    const history: Array<[number, string]> = [];
    for (let s = 1; s <= 39; s += 2) history.push([s, `processed job ${s}`]);
    const lastJob = history.at(-1)![0];
    for (let i = 0; i < 400; i++) history.push([41 + i / 100, "connection refused, retrying"]);
    history.push([600, "connection refused, retrying"]);
    const pending = [...history];
    const args = ["--ignore", "retrying"];
    const hung = await live(c, start, {
      until: 600,
      args,
      before: (t) => {
        while (pending.length && pending[0][0] <= t) {
          const [s, text] = pending.shift()!;
          c.server.log(c.pod, text, "app", start + s * 1000);
        }
      },
    });
    assert.equal(hung.restartAt, planned(lastJob), hung.lines.join("\n"));
    // backtest, on the same history as `kubectl logs --timestamps` prints it, agrees.
    const file = `${c.dir}/burst.log`;
    await Deno.writeTextFile(
      file,
      history.map(([s, text]) => `${rfc3339Nano(start + s * 1000)} ${text}\n`).join(""),
    );
    const replay = await c.run(
      ["backtest", "--log-file", file, ...args, ...FLAGS],
      {
        flags: ["run", LINEAR_REGEXP_FLAG, "--no-prompt", "--no-config", `--allow-read=${file}`],
      },
    );
    // backtest replays check offsets a second apart and shows the worst: plan's shortest
    // silence (its earliest is exclusive), counted from the last job line, never later than
    // this life's restart.
    const worst = replay.stdout.match(/restarts: 1, at (\S+) after (\S+) of silence/);
    assert.ok(worst, replay.stdout);
    assert.equal(worst[2], formatDuration(EARLIEST + 1), replay.stdout);
    assert.ok(Date.parse(worst[1]) <= start + hung.restartAt! * 1000, replay.stdout);
    console.log(
      `burst: restart ${hung.restartAt! - lastJob}s after the last job line; backtest's worst ${
        EARLIEST + 1
      }s`,
    );
  } finally {
    await c.stop();
  }
});

/** Seeded random numbers, so a failing life can be replayed. */
function random(seed: number): () => number {
  return () => (seed = (seed * 16807) % 2147483647) / 2147483647;
}

/** A hung worker behind an API server that loses the answers `lost` picks (by check number). */
async function flakyLife(lost: (check: number) => boolean): Promise<Life & { last: number }> {
  const last = 95;
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const log = chatter(c, start, last);
    let check = 0;
    const life = await live(c, start, {
      // Long enough to move a streak off a rhythm of lost answers (twice at most, then a coin).
      until: last + 8 * LATEST,
      before: (t) => {
        log(t);
        c.server.override = lost(++check) ? UNAVAILABLE : undefined;
      },
    });
    return { ...life, last };
  } finally {
    await c.stop();
  }
}

Deno.test("a hung worker behind a flaky API server (20 % of the answers lost at random) is restarted, never before plan's minimum, within twice plan's time and a threshold per lost last failure", async () => {
  for (const seed of [2026, 1125]) {
    const draw = random(seed);
    const life = await flakyLife(() => draw() < 0.2);
    const said = `seed ${seed}: ${life.restartAt}s\n${life.lines.join("\n")}`;
    assert.ok(life.restartAt !== undefined, said);
    assert.ok(life.restartAt - life.last > EARLIEST, said);
    // Within twice plan's time, and one threshold and a period more for each lost answer where
    // the last failure would have been (it passes; the check after it may pass too, moving the streak).
    const passes = life.lines.filter((line) => / never makes failure 3 in a row/.test(line)).length;
    assert.ok(
      life.restartAt - life.last <= 2 * LATEST + passes * (THRESHOLD + 1) * PERIOD,
      said,
    );
    console.log(
      `flaky API (seed ${seed}): restart after ${life.restartAt - life.last}s of silence; ` +
        `plan says (${EARLIEST}s, ${LATEST}s]`,
    );
  }
});

Deno.test("a hung worker whose every third answer is lost, in any phase, is restarted; each lost last failure costs one threshold and a period", async () => {
  // With THRESHOLD 3, one phase puts a lost answer where the kubelet's third failure would be:
  // it passes, and so may the next check, moving the streak off the rhythm.
  // A lost answer just past the limit cannot begin the streak: one period more, at most (never
  // two lost in a row here).
  for (const phase of [0, 1, 2]) {
    const life = await flakyLife((check) => check % THRESHOLD === phase);
    const said = `phase ${phase}: ${life.restartAt}s\n${life.lines.join("\n")}`;
    assert.ok(life.restartAt !== undefined, said);
    assert.ok(life.restartAt - life.last > EARLIEST, said);
    const passes = life.lines.filter((line) => / never makes failure 3 in a row/.test(line)).length;
    assert.ok(
      life.restartAt - life.last <= LATEST + PERIOD + passes * (THRESHOLD + 1) * PERIOD,
      said,
    );
  }
});

Deno.test("an outage of six limits (refused, 503, timeouts) fails no check of a container that had output", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const refused = `127.0.0.1:${closed.addr.port}`;
    closed.close();
    // The worker goes on logging; the API server is down from 100 to 460 s: refused, then 503,
    // then slower than --timeout 1s, 120 s each.
    const [from, to] = [100, 100 + 6 * LIMIT];
    const third = (to - from) / 3;
    let next = 5;
    const life = await live(c, start, {
      until: to + 5 * PERIOD,
      args: ["--timeout", "1s"],
      before: (t) => {
        for (; next <= t; next += 20) {
          c.server.log(c.pod, `job ${next}`, "app", start + next * 1000);
        }
        c.server.override = t > from + third && t <= from + 2 * third ? UNAVAILABLE : undefined;
        c.server.delay = t > from + 2 * third && t <= to ? 2000 : 0;
      },
      run: (t) => t > from && t <= from + third ? { server: refused } : {},
    });
    assert.equal(life.restartAt, undefined);
    assert.deepEqual(life.codes.filter((code) => code !== 0), [], life.lines.join("\n"));
    const outage = life.lines.filter((line) => / unknown: /.test(line));
    const checks = (to - from) / PERIOD;
    assert.equal(outage.length, checks, life.lines.join("\n"));
    assert.match(outage[0], /unreachable/);
    assert.match(outage[checks / 3], /answered 503/);
    assert.match(outage[checks - 1], /no answer from the API server within 1s/);
    assert.match(life.lines.at(-1)!, / 0 alive: output \d+s ago$/);
  } finally {
    await c.stop();
  }
});

Deno.test("an outage in a quiet worker's silent streak delays its restart, never brings it forward: restart within plan's time after the answers return", async () => {
  const last = 95; // quiet from 95 s: the check at 160 s fails, then the API server goes
  const [from, to] = [160, 300]; // 503 for the checks after 160 s, up to 300 s
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    for (let s = 5; s <= last; s += 5) c.server.log(c.pod, `job ${s}`, "app", start + s * 1000);
    const life = await live(c, start, {
      until: 1200,
      before: (t) => {
        c.server.override = t > from && t <= to ? UNAVAILABLE : undefined;
      },
    });
    const said = life.lines.join("\n");
    // The streak began before the outage: lost answers go on failing, but a lost answer never
    // makes the kubelet's last failure, and a long blind run stops failing.
    assert.equal(planned(last) - (THRESHOLD - 1) * PERIOD, from, "the streak's first check");
    const during = life.codes.slice(from / PERIOD, to / PERIOD);
    assert.ok(during.includes(1) && during.includes(0), said);
    assert.match(said, /unknown: API server answered 503 .*; failed, as the silent check before/);
    // No restart while no check could see the log; one within plan's time once they can.
    assert.ok(life.restartAt !== undefined && life.restartAt > to, said);
    assert.ok(life.restartAt - to <= LATEST, said);
    assert.ok(life.restartAt - last > EARLIEST, said);
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// Logs of other shapes

Deno.test("a log the kubelet can never read again: one rotation is unknown, then a restart within twice plan's time", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const lastSeen = 88; // the last line a check can see; the worker goes on logging unseen
    let next = 3;
    const life = await live(c, start, {
      until: lastSeen + 4 * LATEST,
      before: (t) => {
        for (; next <= t; next += 5) c.server.log(c.pod, `job ${next}`, "app", start + next * 1000);
        // Renamed before the check at 100s and never reopened: every read fails.
        if (t === 100) c.server.rotate(c.pod, "app", false);
      },
    });
    const said = life.lines.join("\n");
    assert.match(life.lines[9], /^100s 0 unknown: the kubelet cannot read the log: .*; passed,/);
    assert.match(
      said,
      /silent: no output for \d+m\d+s, over the 1m limit \(\d failures? in a row; the kubelet restarts at 3\); the kubelet cannot read/,
    );
    assert.ok(life.restartAt !== undefined, said);
    assert.ok(life.restartAt - lastSeen > EARLIEST, said);
    assert.ok(life.restartAt - lastSeen <= 2 * LATEST, `restart at ${life.restartAt}s`);
    console.log(
      `unreadable log: restart ${life.restartAt - lastSeen}s after the last line seen; ` +
        `plan says (${EARLIEST}s, ${LATEST}s]`,
    );
  } finally {
    await c.stop();
  }
});

Deno.test("a job every plan's-minimum, each followed by 400 lines --ignore'd within 4 s: never restarted", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    // plan: "A worker that prints at least every <earliest> is never restarted".
    const jobs = Array.from({ length: 5 }, (_, i) => 5 + i * EARLIEST);
    let next = 0;
    const life = await live(c, start, {
      until: jobs.at(-1)! + EARLIEST,
      args: ["--ignore", "retrying"],
      before: (t) => {
        for (; next < jobs.length && jobs[next] <= t; next++) {
          const at = start + jobs[next] * 1000;
          c.server.log(c.pod, `processed job ${next}`, "app", at);
          for (let i = 0; i < 400; i++) c.server.log(c.pod, "retrying", "app", at + 100 + i * 10);
        }
      },
    });
    assert.equal(life.restartAt, undefined, life.lines.join("\n"));
    // The check after each job sees it, under the 400 retries.
    for (const job of jobs) {
      const after = life.lines[Math.ceil(job / PERIOD) - 1];
      assert.match(after, /^\d+s 0 alive: matching output \d+s ago$/, after);
    }
  } finally {
    await c.stop();
  }
});

Deno.test("a container that hangs before its first check: restarted on plan's schedule counted from its start", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    // The container started 5 s before the kubelet's clock here reads 0 (the termination-message
    // file's date). Its start-up banner was rotated away before the first check: no check sees it.
    await c.restartContainer("app", start - 5000);
    c.server.log(c.pod, "worker v1.2 started", "app", start - 4000);
    c.server.rotate(c.pod);
    const life = await live(c, start, { until: 600 });
    assert.equal(life.restartAt, planned(-5), life.lines.join("\n"));
    assert.match(
      life.lines.at(-1)!,
      /silent: no output since the start 1m\d+s ago, over the 1m limit \(3 failures in a row; the kubelet restarts at 3\)$/,
    );
  } finally {
    await c.stop();
  }
});

Deno.test("a healthy worker whose first line comes late, within the limit, is never restarted", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const first = LIMIT - 5; // a silent start-up: block-buffered stdout, no banner
    let next = first;
    const life = await live(c, start, {
      until: first + 3 * LATEST,
      before: (t) => {
        for (; next <= t; next += 20) {
          c.server.log(c.pod, `processed job ${next}`, "app", start + next * 1000);
        }
      },
    });
    assert.equal(life.restartAt, undefined, life.lines.join("\n"));
    assert.deepEqual(life.codes.filter((code) => code !== 0), [], life.lines.join("\n"));
    assert.match(
      life.lines[0],
      /^10s 0 alive: no output since the start \d+s ago, within the 1m limit$/,
    );
  } finally {
    await c.stop();
  }
});

/**
 * The kubelet, for a probe that cannot do its job, with a worker that logs: a check every
 * PERIOD, any exit code; every `killedEvery`-th check is killed at timeoutSeconds (the probe never
 * runs, the kubelet counts a failure).
 */
async function misconfigured(
  c: Cluster,
  args: string[],
  killedEvery: number,
): Promise<{ codes: number[]; lines: string[]; longest: number; restartAt?: number }> {
  const codes: number[] = [];
  const lines: string[] = [];
  let failures = 0;
  let longest = 0;
  for (let t = PERIOD; t <= 45 * PERIOD; t += PERIOD) {
    c.server.now += PERIOD * 1000;
    c.server.log(c.pod, `processed job ${t}`);
    let code = 1; // killed: a failure the probe cannot record
    if ((t / PERIOD) % killedEvery !== 0) {
      const run = await c.run([...FLAGS, ...args]);
      codes.push(run.code);
      lines.push(run.stdout.trim());
      code = run.code;
    }
    failures = code === 0 ? 0 : failures + 1;
    longest = Math.max(longest, failures);
    if (failures === THRESHOLD) return { codes, lines, longest, restartAt: t };
  }
  return { codes, lines, longest };
}

Deno.test("a misconfigured probe fails at most one check in three, never two in a row, and never restarts the container, killed checks included", async () => {
  const cases: Array<[string, (c: Cluster) => Promise<void>, string[], RegExp]> = [
    ["no RoleBinding", (c) => Promise.resolve(c.server.grants.clear()), [], /^error: forbidden: /],
    [
      "a sidecar and no --container",
      (c) => Promise.resolve(void c.pod.containers.set("istio-proxy", [])),
      [],
      /^error: a container name must be specified for pod worker-7d9f, choose one of: \[app istio-proxy\]/,
    ],
    [
      "no token (automountServiceAccountToken: false)",
      (c) => Deno.remove(`${c.paths.serviceAccountDir}/token`),
      [],
      /^error: No service-account token at .* \(automountServiceAccountToken: false\?\)/,
    ],
    ["a flag it does not know", () => Promise.resolve(), ["--windw", "2m"], /^error: Unknown flag/],
  ];
  for (const [name, breakIt, args, message] of cases) {
    // Without kills, the probe's own exits; with every fourth check killed, the kubelet's count.
    for (const killedEvery of [Infinity, 4]) {
      const c = await Cluster.start();
      try {
        await breakIt(c);
        const life = await misconfigured(c, args, killedEvery);
        const said = `${name}, killed every ${killedEvery}\n${life.lines.join("\n")}`;
        assert.equal(life.restartAt, undefined, `restarted: ${said}`);
        assert.ok(life.longest <= 2, `${life.longest} failures in a row: ${said}`);
        assert.ok(life.codes.every((code) => code === 0 || code === 2), said);
        // Loud: a failing line in the events at least every third check, when none is killed.
        if (killedEvery === Infinity) {
          for (let i = 0; i + ERROR_CADENCE <= life.codes.length; i++) {
            const failed: number[] = life.codes.slice(i, i + ERROR_CADENCE).filter((code) =>
              code === 2
            );
            assert.equal(failed.length, 1, `checks ${i + 1} to ${i + ERROR_CADENCE}: ${said}`);
          }
        } else {
          assert.ok(life.codes.includes(2), said);
        }
        for (const line of life.lines) assert.match(line, message, name);
        assert.ok(
          life.lines.some((line) => /; passed\b.*one check in three/.test(line)),
          said,
        );
      } finally {
        await c.stop();
      }
    }
  }
});

Deno.test("two probes on one counter (liveness and readiness, same command and --period): restart as one", async () => {
  const last = 95;
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    for (let s = 5; s <= last; s += 5) c.server.log(c.pod, `job ${s}`, "app", start + s * 1000);
    const args = FLAGS;
    let failures = 0;
    let restartAt: number | undefined;
    const lines: string[] = [];
    for (let t = PERIOD; t <= 600 && restartAt === undefined; t += PERIOD) {
      c.server.now = start + t * 1000;
      const liveness = await c.run(args);
      lines.push(`${t}s ${liveness.code} ${liveness.stdout.trim()}`);
      failures = liveness.code === 0 ? 0 : failures + 1;
      if (failures === THRESHOLD) restartAt = t;
      c.server.now = start + (t + PERIOD / 2) * 1000; // the readiness probe, half a period later
      const readiness = await c.run(args);
      lines.push(`${t + PERIOD / 2}s ${readiness.code} ${readiness.stdout.trim()}`);
    }
    assert.equal(restartAt, planned(last), lines.join("\n"));
  } finally {
    await c.stop();
  }
});
