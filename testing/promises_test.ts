/**
 * The two promises, end to end, on the virtual clock: a hung container is
 * restarted when `plan` says, and trouble in the control plane never restarts
 * a container that had output. Each test plays the kubelet over hours of a
 * container's life (log rotation, bursts, a flaky or absent API server) and
 * runs the real probe at every check.
 */
import assert from "node:assert/strict";
import { LINEAR_REGEXP_FLAG, type PlanOptions, simulate } from "../probe.ts";
import { rfc3339Nano } from "./apiserver.ts";
import { Cluster, type RunOptions } from "./cluster.ts";

const PERIOD = 60;
const THRESHOLD = 15;
const PLAN: PlanOptions = {
  window: 60,
  growth: "triangular",
  period: PERIOD,
  failureThreshold: THRESHOLD,
};

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
    const run = await c.run(options.args ?? [], options.run?.(t) ?? {});
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

/** When plan restarts a container whose last output is at `last` seconds (checks at k·PERIOD). */
function planned(last: number): number {
  const firstCheck = Math.floor(last / PERIOD) * PERIOD + PERIOD;
  return last + simulate(PLAN, firstCheck - last).restartAfter;
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

Deno.test("log rotation after the last line the probe saw: restart at the same check as without", async () => {
  const last = 595; // seen by the check at 600s; the log rotates at 605s, then silence
  const plain = await Cluster.start();
  const start = plain.server.now;
  const without = await live(plain, start, {
    until: 3 * 3600,
    before: chatter(plain, start, last),
  });
  await plain.stop();

  const c = await Cluster.start();
  const log = chatter(c, c.server.now, last);
  const rotated = await live(c, c.server.now, {
    until: 3 * 3600,
    before: (t) => {
      log(t);
      // Renamed at 605s; the runtime reopens the file only after the check at 660s, which meets
      // the kubelet's error: unknown, not a failure.
      if (t === 660) c.server.rotate(c.pod, "app", false);
      if (t === 720) c.server.reopen(c.pod);
    },
  });
  assert.match(rotated.lines[10], /^660s 0 unknown: the kubelet could not open the log file/);
  assert.match(rotated.lines.join("\n"), /inside the \d+s window \(no longer in the answer/);
  await c.stop();
  assert.equal(without.restartAt, planned(last), without.lines.join("\n"));
  assert.equal(rotated.restartAt, without.restartAt, rotated.lines.join("\n"));
  console.log(`rotation: restart ${rotated.restartAt! - last}s after the last line, as plan says`);
});

Deno.test("--ignore: a burst of lines that do not count, then a hang: restart as plan says, as backtest says", async () => {
  const c = await Cluster.start();
  const start = c.server.now;
  // A job line every 20 s for 20 minutes, then 400 "retrying" lines in 4 s, then nothing for 8 h
  // (the history's last line, at 8 h, marks where `kubectl logs` was taken).
  const history: Array<[number, string]> = [];
  for (let s = 0; s <= 1180; s += 20) history.push([s, `processed job ${s / 20}`]);
  for (let i = 0; i < 400; i++) history.push([1201 + i / 100, "connection refused, retrying"]);
  history.push([8 * 3600, "connection refused, retrying"]);
  const pending = [...history];
  const args = ["--ignore", "retrying"];
  const hung = await live(c, start, {
    until: 8 * 3600,
    args,
    before: (t) => {
      while (pending.length && pending[0][0] <= t) {
        const [s, text] = pending.shift()!;
        c.server.log(c.pod, text, "app", start + s * 1000);
      }
    },
  });
  assert.equal(hung.restartAt, planned(1180), hung.lines.join("\n"));
  // backtest, on the same history as `kubectl logs --timestamps` prints it, agrees.
  const file = `${c.dir}/burst.log`;
  await Deno.writeTextFile(
    file,
    history.map(([s, text]) => `${rfc3339Nano(start + s * 1000)} ${text}\n`).join(""),
  );
  const replay = await c.run(["backtest", "--log-file", file, ...args], {
    flags: ["run", LINEAR_REGEXP_FLAG, "--no-prompt", "--no-config", `--allow-read=${file}`],
  });
  // backtest replays every check offset and shows the worst: plan's shortest silence, counted
  // from the last job line, never later than this life's restart.
  const worst = replay.stdout.match(/restarts: 1, at (\S+) after 2h14m1s of silence/);
  assert.ok(worst, replay.stdout);
  assert.ok(Date.parse(worst[1]) <= start + hung.restartAt! * 1000, replay.stdout);
  console.log(
    `burst: restart ${hung.restartAt! - 1180}s after the last job line; backtest's worst 8041s`,
  );
  await c.stop();
});

/** Seeded random numbers, so a failing life can be replayed. */
function random(seed: number): () => number {
  return () => (seed = (seed * 16807) % 2147483647) / 2147483647;
}

/**
 * The shortest silence after which 15 checks in a row can all be silent, whatever resets came
 * before: the restart can never come sooner, however lost answers shift the streaks.
 */
function shortestStreak(): number {
  const windows = Array.from({ length: THRESHOLD }, (_, k) => 30 * (k + 1) * (k + 2) - k * PERIOD);
  return Math.max(...windows) + (THRESHOLD - 1) * PERIOD;
}

Deno.test("a hung worker behind a flaky API server (20 % 503, or every 15th check) is restarted within twice plan's time", async () => {
  const last = 1195;
  for (
    const [name, fails] of [["20 % at random", random(2026)], ["every 15th check", null]] as const
  ) {
    const c = await Cluster.start();
    const start = c.server.now;
    const log = chatter(c, start, last);
    let check = 0;
    const life = await live(c, start, {
      until: last + 2 * (planned(last) - last),
      before: (t) => {
        log(t);
        check++;
        const error = fails ? fails() < 0.2 : check % 15 === 0;
        c.server.override = error
          ? { status: 503, headers: { "content-type": "application/json" }, body: "{}" }
          : undefined;
      },
    });
    await c.stop();
    assert.ok(life.restartAt !== undefined, `${name}: no restart\n${life.lines.join("\n")}`);
    assert.ok(life.restartAt - last > shortestStreak(), `${name}: restarted at ${life.restartAt}s`);
    // One error in 15 checks never meets a probe that had not seen the last line: exactly plan.
    if (!fails) assert.equal(life.restartAt, planned(last), life.lines.join("\n"));
    console.log(
      `flaky API (${name}): restart after ${life.restartAt - last}s of silence; plan says ${
        planned(last) - last
      }s`,
    );
  }
});

Deno.test("a one-hour outage (refused, 503, timeouts) fails no check of a container that had output", async () => {
  const c = await Cluster.start();
  const start = c.server.now;
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = `127.0.0.1:${closed.addr.port}`;
  closed.close();
  let next = 5;
  const life = await live(c, start, {
    until: 90 * 60,
    args: ["--timeout", "1s"],
    before: (t) => {
      // The worker goes on logging; the API server is down from 10 to 70 minutes.
      for (; next <= t; next += 20) c.server.log(c.pod, `job ${next}`, "app", start + next * 1000);
      c.server.override = t > 1800 && t <= 3000
        ? { status: 503, headers: { "content-type": "application/json" }, body: "{}" }
        : undefined;
      c.server.delay = t > 3000 && t <= 4200 ? 2000 : 0; // slower than --timeout 1s
    },
    run: (t) => t > 600 && t <= 1800 ? { server: refused } : {},
  });
  await c.stop();
  assert.equal(life.restartAt, undefined);
  assert.deepEqual(life.codes.filter((code) => code !== 0), [], life.lines.join("\n"));
  const outage = life.lines.filter((line) => / unknown: /.test(line));
  assert.equal(outage.length, 60, life.lines.join("\n"));
  assert.match(outage[0], /unreachable/);
  assert.match(outage[30], /answered 503/);
  assert.match(outage[59], /no answer from the API server within 1s/);
});

Deno.test("an outage changes nothing for a quiet worker in a silent streak: restart at plan's check", async () => {
  const last = 295; // quiet from 5 minutes, in a silent streak (failed at 8 min) when the API goes
  const c = await Cluster.start();
  const start = c.server.now;
  for (let s = 5; s <= last; s += 5) c.server.log(c.pod, `job ${s}`, "app", start + s * 1000);
  const life = await live(c, start, {
    until: 4 * 3600,
    before: (t) => {
      c.server.override = t > 480 && t <= 4080
        ? { status: 503, headers: { "content-type": "application/json" }, body: "{}" }
        : undefined;
    },
  });
  await c.stop();
  // Failures during the hour, but never 15 in a row: the remembered line resets the streak when
  // the window reaches back to it, as an answer would have.
  const during = life.codes.slice(8, 68);
  assert.ok(during.includes(1) && during.includes(0), life.lines.join("\n"));
  assert.equal(life.restartAt, planned(last), life.lines.join("\n"));
});

// ---------------------------------------------------------------------------
// Logs of other shapes

Deno.test("a log the kubelet can never open again: one rotation is unknown, then a restart within twice plan's time", async () => {
  const c = await Cluster.start();
  const start = c.server.now;
  const last = 1195; // the last line the probe can see; the worker goes on logging unseen
  const log = chatter(c, start, 6 * 3600);
  const life = await live(c, start, {
    until: last + 2 * (planned(last) - last),
    before: (t) => {
      log(t);
      // Renamed at 1200s and never reopened: every read fails with the kubelet's 400.
      if (t === 1200) c.server.rotate(c.pod, "app", false);
    },
  });
  await c.stop();
  assert.match(life.lines[19], /^1200s 0 unknown: the kubelet could not open the log file/);
  assert.match(
    life.lines.join("\n"),
    /silent: no output in the last \d+s \(the kubelet cannot open the log file, twice in a row/,
  );
  assert.ok(life.restartAt !== undefined, life.lines.join("\n"));
  assert.ok(life.restartAt - last <= 2 * (planned(last) - last), `restart at ${life.restartAt}s`);
  console.log(
    `unreadable log: restart ${life.restartAt - last}s after the last line seen; plan says ${
      planned(last) - last
    }s`,
  );
});

Deno.test("a job every 100 minutes, each followed by 400 lines --ignore'd within 4 s: never restarted", async () => {
  const c = await Cluster.start();
  const start = c.server.now;
  const jobs = [600, 6600, 12600, 18600];
  let next = 0;
  const life = await live(c, start, {
    until: 22_000,
    args: ["--ignore", "retrying"],
    before: (t) => {
      for (; next < jobs.length && jobs[next] <= t; next++) {
        const at = start + jobs[next] * 1000;
        c.server.log(c.pod, `processed job ${next}`, "app", at);
        for (let i = 0; i < 400; i++) c.server.log(c.pod, "retrying", "app", at + 100 + i * 10);
      }
    },
  });
  await c.stop();
  assert.equal(life.restartAt, undefined, life.lines.join("\n"));
  // The check after each job sees it, under the 400 retries.
  for (const job of jobs) {
    const after = life.lines[Math.ceil(job / PERIOD) - 1];
    assert.match(after, /^\d+s 0 alive: matching output in the last/, after);
  }
});

Deno.test("a container that hangs before its first check: restarted after failureThreshold checks", async () => {
  const c = await Cluster.start();
  const start = c.server.now;
  // Its start-up banner was rotated away before the first check: no check can see it.
  c.server.log(c.pod, "worker v1.2 started", "app", start + 1000);
  c.server.rotate(c.pod);
  const life = await live(c, start, { until: 3600 });
  await c.stop();
  assert.equal(life.restartAt, THRESHOLD * PERIOD, life.lines.join("\n"));
});

/** The kubelet, for a probe that cannot do its job: a check every PERIOD, any exit code. */
async function misconfigured(
  c: Cluster,
  args: string[],
): Promise<{ codes: number[]; lines: string[]; restartAt?: number }> {
  const codes: number[] = [];
  const lines: string[] = [];
  let failures = 0;
  for (let t = PERIOD; t <= 45 * PERIOD; t += PERIOD) {
    c.server.now += PERIOD * 1000;
    c.server.log(c.pod, `processed job ${t}`);
    const run = await c.run(["--failure-threshold", String(THRESHOLD), ...args]);
    codes.push(run.code);
    lines.push(run.stdout.trim());
    failures = run.code === 0 ? 0 : failures + 1;
    if (failures === THRESHOLD) return { codes, lines, restartAt: t };
  }
  return { codes, lines };
}

Deno.test("a misconfigured probe never restarts the container, and fails (an event) 14 checks in 15", async () => {
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
    const c = await Cluster.start();
    await breakIt(c);
    const life = await misconfigured(c, args);
    await c.stop();
    assert.equal(life.restartAt, undefined, `${name}: restarted\n${life.lines.join("\n")}`);
    const expected = Array.from({ length: 45 }, (_, i) => (i + 1) % THRESHOLD === 0 ? 0 : 2);
    assert.deepEqual(life.codes, expected, `${name}\n${life.lines.join("\n")}`);
    for (const line of life.lines) assert.match(line, message, name);
    assert.match(life.lines[14], /passed this once, so the kubelet never restarts for it$/);
  }
});

Deno.test("two probes on one counter (liveness and readiness, same command and --period): restart as one", async () => {
  const threshold = 5;
  const plan: PlanOptions = { ...PLAN, failureThreshold: threshold };
  const last = 295;
  const c = await Cluster.start();
  const start = c.server.now;
  for (let s = 5; s <= last; s += 5) c.server.log(c.pod, `job ${s}`, "app", start + s * 1000);
  const args = ["--period", `${PERIOD}s`, "--failure-threshold", String(threshold)];
  let failures = 0;
  let restartAt: number | undefined;
  const lines: string[] = [];
  for (let t = PERIOD; t <= 3 * 3600 && restartAt === undefined; t += PERIOD) {
    c.server.now = start + t * 1000;
    const liveness = await c.run(args);
    lines.push(`${t}s ${liveness.code} ${liveness.stdout.trim()}`);
    failures = liveness.code === 0 ? 0 : failures + 1;
    if (failures === threshold) restartAt = t;
    c.server.now = start + (t + 20) * 1000; // the readiness probe, 20 s later
    await c.run(args);
  }
  await c.stop();
  const firstCheck = Math.floor(last / PERIOD) * PERIOD + PERIOD;
  assert.equal(
    restartAt,
    last + simulate(plan, firstCheck - last).restartAfter,
    lines.join("\n"),
  );
});
