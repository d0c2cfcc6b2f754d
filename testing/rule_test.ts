/**
 * One rule, end to end: **a check fails when the container has printed nothing (since its
 * start, if never) for longer than the limit; checks that cannot see the log only delay a
 * restart; a misconfiguration never restarts anything.** First as properties over thousands of
 * random lives on the pure decision (testing/lives.ts, the functions the check itself uses),
 * then as the scenarios of issue 20 with the real probe at every check on the virtual clock.
 * Every expected figure comes from `restartAfter`, the closed form `plan` prints.
 */
import assert from "node:assert/strict";
import { type PlanOptions, restartAfter } from "../probe.ts";
import { Cluster, type RunOptions } from "./cluster.ts";
import { type CheckKind, live, random } from "./lives.ts";

/** The seed of the random lives: LOG_PROBE_SEED to replay one, printed on failure. */
const SEED = Number(Deno.env.get("LOG_PROBE_SEED") ?? 20261202);

const LINES = { match: [], ignore: [], tail: 300, limitBytes: 1 << 20 };
const DEFAULT: PlanOptions = { window: 60, growth: "triangular", period: 60, failureThreshold: 15 };
const SETTINGS: PlanOptions[] = [
  DEFAULT,
  { window: 10, growth: "triangular", period: 10, failureThreshold: 3 },
  { window: 30, growth: "fixed", period: 10, failureThreshold: 5 },
  { window: 5, growth: "linear", period: 20, failureThreshold: 1 },
  { window: 60, growth: "exponential", period: 30, failureThreshold: 8, maxWindow: 3600 },
];

/** Output times (s) from `from` until `until`, gaps up to `gap` (some up to 1.5 gap: bursts, lulls). */
function outputs(rand: () => number, from: number, until: number, gap: number): number[] {
  const times: number[] = [];
  for (let t = from; t < until; t += rand() * gap * (rand() < 0.2 ? 1.5 : 1)) {
    // a burst: several lines within a second
    const burst = rand() < 0.1 ? 1 + Math.floor(rand() * 50) : 1;
    for (let i = 0; i < burst; i++) times.push(t + i / 100);
  }
  return times;
}

/** What each check meets: blind with probability `blind` (errors among them: `errors`), outages. */
function checks(rand: () => number, blind: number, errors: number): (k: number) => CheckKind {
  let outage = 0;
  return () => {
    if (outage > 0) return outage--, rand() < errors ? "error" : "lost";
    if (rand() < blind / 10) outage = Math.floor(rand() * 10); // an outage of up to 10 checks
    return rand() < blind ? (rand() < errors ? "error" : "lost") : "answer";
  };
}

function failing(seed: number, settings: PlanOptions, life: unknown): string {
  return `seed ${seed} (LOG_PROBE_SEED=${seed} to replay), ${JSON.stringify(settings)}: ${
    JSON.stringify(life)
  }`;
}

Deno.test("random lives: never a restart before plan's minimum after the last output or the start", () => {
  const rand = random(SEED);
  let restarts = 0;
  for (const settings of SETTINGS) {
    const { earliest, latest } = restartAfter(settings);
    for (let i = 0; i < 600; i++) {
      // Quiet workers near the edge, slow starters, bursts; up to half of the answers blind,
      // 401s and 403s among them; rotations after answered checks.
      const slowStart = rand() < 0.3 ? rand() * 1.5 * earliest : 0;
      const life = {
        outputs: outputs(rand, slowStart, 6 * latest, earliest * (0.6 + rand() * 0.6)),
        firstCheck: rand() * settings.period * 3,
        horizon: 6 * latest,
        check: checks(rand, rand() * 0.5, rand()),
        rotateAfter: () => rand() < 0.05,
      };
      const lived = live(life, { ...settings, ...LINES });
      if (lived.restartAt === undefined) continue;
      restarts++;
      assert.ok(
        lived.restartAt - lived.lastOutput > earliest,
        failing(SEED, settings, { ...lived, earliest, outputs: life.outputs.slice(-3) }),
      );
    }
  }
  assert.ok(restarts > 100, `the lives restart too rarely to test anything (${restarts})`);
});

Deno.test("random lives: a hung container is restarted within twice plan's time, up to half the answers blind", () => {
  // The kubelet's last failure must be a check that saw the log (never before plan's minimum),
  // so a blind check where it would fall costs failureThreshold more periods: at random, up to
  // half blind, about 2 lives in 1,000 take longer than twice plan's time (measured over
  // 100,000; fewer with fewer blind), none longer than three times.
  const rand = random(SEED + 1);
  const { latest } = restartAfter(DEFAULT);
  const lives = 1500;
  let late = 0;
  for (let i = 0; i < lives; i++) {
    const hang = rand() < 0.2 ? 0 : rand() * 2 * latest; // 0: hung from its start
    const blind = rand() * 0.5;
    const errors = rand();
    const life = {
      outputs: hang ? outputs(rand, rand() * latest, hang, latest / 2) : [],
      firstCheck: rand() * DEFAULT.period * 3,
      horizon: hang + 3 * latest,
      check: (): CheckKind => rand() < blind ? (rand() < errors ? "error" : "lost") : "answer",
      rotateAfter: () => rand() < 0.05,
    };
    const lived = live(life, { ...DEFAULT, ...LINES });
    const took = (lived.restartAt ?? Infinity) - lived.lastOutput;
    assert.ok(took <= 3 * latest, failing(SEED + 1, DEFAULT, { ...lived, blind, latest }));
    if (took > 2 * latest) late++;
  }
  assert.ok(
    late <= lives / 200,
    `${late} of ${lives} lives restarted later than twice plan's time`,
  );
});

Deno.test("random lives: an outage delays a hung container's restart by at most its length and a threshold", () => {
  const rand = random(SEED + 3);
  const { latest } = restartAfter(DEFAULT);
  const { period, failureThreshold } = DEFAULT;
  for (let i = 0; i < 1000; i++) {
    const hang = rand() * latest;
    const outage = { from: hang + rand() * 2 * latest, checks: Math.floor(rand() * 300) };
    const first = rand() * period;
    const life = {
      outputs: outputs(rand, 0, hang, latest / 3),
      firstCheck: first,
      horizon: hang + 2 * latest + outage.checks * period + 2 * failureThreshold * period,
      check: (k: number): CheckKind => {
        const t = first + k * period;
        return t >= outage.from && t < outage.from + outage.checks * period ? "lost" : "answer";
      },
    };
    const lived = live(life, { ...DEFAULT, ...LINES });
    const bound = latest + outage.checks * period + failureThreshold * period;
    assert.ok(
      lived.restartAt !== undefined && lived.restartAt - lived.lastOutput <= bound,
      failing(SEED + 3, DEFAULT, { ...lived, outage, bound }),
    );
  }
});

Deno.test("random lives: a misconfigured probe never fails three checks in a row, killed checks included", () => {
  const rand = random(SEED + 2);
  for (const settings of SETTINGS) {
    for (let i = 0; i < 300; i++) {
      // A container that keeps logging behind a probe that cannot see it (401, 403, a wrong
      // container), some answers lost, and checks the kubelet kills at timeoutSeconds, never
      // two in a row.
      let killed = false;
      const lost = rand() * 0.5;
      const life = {
        outputs: outputs(rand, 0, 20 * settings.period * settings.failureThreshold, 30),
        firstCheck: rand() * settings.period,
        horizon: 20 * settings.period * settings.failureThreshold,
        check: (): CheckKind => {
          // failureThreshold 1: a killed check is a restart, whatever the probe does.
          killed = !killed && settings.failureThreshold > 1 && rand() < 0.15;
          return killed ? "killed" : rand() < lost ? "lost" : "error";
        },
      };
      const lived = live(life, { ...settings, ...LINES });
      assert.ok(lived.longestRun <= 2, failing(SEED + 2, settings, lived));
      assert.ok(lived.ownRun <= 1, failing(SEED + 2, settings, lived));
      assert.equal(lived.restartAt, undefined);
    }
  }
});

// ---------------------------------------------------------------------------
// The scenarios of issue 20, the real probe at every check on the virtual clock

const GRANT = "shop/system:serviceaccount:shop:log-probe";

/** What the kubelet did: each check's exit and line, its longest run of failures, the restart. */
interface Kubelet {
  restartAt?: number;
  runs: Array<{ t: number; code: number; line: string }>;
  longestRun: number;
}

/**
 * The kubelet: a check every `period` seconds from `from` until `until` (seconds after the
 * container's start, which is `Cluster.start`'s), a restart after `threshold` failures in a
 * row. `before` runs at each check's time (it logs lines, breaks things); `killed` checks are
 * not run and count as failures, as the kubelet counts a check it kills at timeoutSeconds.
 */
async function kubelet(
  c: Cluster,
  settings: { period: number; threshold: number; from: number; until: number; args: string[] },
  hooks: { before?: (t: number) => void; killed?: (t: number) => boolean; run?: RunOptions } = {},
): Promise<Kubelet> {
  const start = c.server.now;
  const life: Kubelet = { runs: [], longestRun: 0 };
  let failures = 0;
  for (let t = settings.from; t <= settings.until; t += settings.period) {
    c.server.now = start + t * 1000;
    hooks.before?.(t);
    if (hooks.killed?.(t)) {
      failures++;
    } else {
      const run = await c.run(settings.args, hooks.run);
      assert.ok([0, 1, 2].includes(run.code), `${t}s: ${run.stdout}${run.stderr}`);
      life.runs.push({ t, code: run.code, line: run.stdout.trim() });
      failures = run.code === 0 ? 0 : failures + 1;
    }
    life.longestRun = Math.max(life.longestRun, failures);
    if (failures >= settings.threshold) {
      life.restartAt = t;
      break;
    }
  }
  return life;
}

/** The component's flags: --period 60s --failure-threshold 15 (initialDelaySeconds 120). */
const COMPONENT = { period: 60, threshold: 15, from: 120, args: ["--period", "60s"] };

Deno.test("a slow starter whose first line comes 25 minutes after its start is never restarted", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const life = await kubelet(c, { ...COMPONENT, until: 40 * 60 }, {
      before: (t) => {
        if (t >= 25 * 60) c.server.log(c.pod, `processed job ${t}`, "app", start + t * 1000);
      },
    });
    assert.equal(life.restartAt, undefined);
    assert.deepEqual(life.runs.filter((r) => r.code !== 0), []);
    const at16 = life.runs.find((r) => r.t === 16 * 60)!;
    assert.equal(at16.line, "alive: no output since the start 16m ago, within the 2h limit");
    assert.equal(life.runs.at(-1)!.line, "alive: output 0s ago");
  } finally {
    await c.stop();
  }
});

Deno.test("a worker hung from its start is restarted on plan's schedule counted from its start", async () => {
  const c = await Cluster.start();
  try {
    const { earliest, latest } = restartAfter(DEFAULT);
    const life = await kubelet(c, { ...COMPONENT, from: 7000, until: 9000 });
    assert.ok(life.restartAt! > earliest && life.restartAt! <= latest, `${life.restartAt}`);
    assert.match(life.runs.at(-1)!.line, /^silent: no output since the start 2h1[45]m\d*s? ago/);
  } finally {
    await c.stop();
  }
});

Deno.test("RBAC removed from a chatty worker, checks killed: one failure in three at most, no restart", async () => {
  for (const threshold of ["15", "30"]) {
    const c = await Cluster.start();
    try {
      const start = c.server.now;
      // --failure-threshold 30 while the kubelet's is 15: the margin does not depend on it.
      const args = [...COMPONENT.args, "--failure-threshold", threshold];
      const life = await kubelet(c, { ...COMPONENT, until: 60 * 60, args }, {
        before: (t) => {
          c.server.log(c.pod, `processed job ${t}`, "app", start + t * 1000);
          if (t === 5 * 60) c.server.grants.delete(GRANT);
        },
        killed: (t) => t % 420 === 0, // every seventh minute, the kubelet kills the check
      });
      assert.equal(life.restartAt, undefined, threshold);
      assert.ok(life.longestRun <= 2, `${threshold}: ${life.longestRun}`);
      const errors = life.runs.filter((r) => r.t > 5 * 60);
      assert.ok(errors.every((r) => r.line.startsWith("error: forbidden")), threshold);
      // Loud: a failing line (an event) among every three checks run, four next to a killed
      // one (the check after a kill knows of it and leaves the failure to the next).
      for (let i = 0; i + 4 <= errors.length; i++) {
        assert.ok(
          errors.slice(i, i + 4).some((r) => r.code === 2),
          `${threshold} at ${i}: ${errors.map((r) => `${r.t}:${r.code}`).join(" ")}`,
        );
      }
      assert.ok(errors.filter((r) => r.code === 2).length >= errors.length / 3.5, threshold);
    } finally {
      await c.stop();
    }
  }
});

Deno.test("--on-api-error=fail is accepted and no longer turns a misconfiguration into a restart", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const args = [...COMPONENT.args, "--on-api-error=fail"];
    const life = await kubelet(c, { ...COMPONENT, until: 40 * 60, args }, {
      before: (t) => {
        if (t % 120 === 0) c.server.log(c.pod, `processed job ${t}`, "app", start + t * 1000);
        if (t === 10 * 60) c.server.grants.delete(GRANT);
      },
    });
    assert.equal(life.restartAt, undefined);
    assert.ok(life.longestRun <= 1, `${life.longestRun}`);
    assert.match(life.runs.at(-1)!.line, /; --on-api-error is no/);
  } finally {
    await c.stop();
  }
});

/** Short settings for long lives: limit 150 s, restart after 190 s to 200 s of silence. */
const SHORT: PlanOptions = { window: 10, growth: "triangular", period: 10, failureThreshold: 5 };
const SHORT_KUBELET = {
  period: 10,
  threshold: 5,
  from: 10,
  args: ["--window", "10s", "--period", "10s", "--failure-threshold", "5"],
};

Deno.test("a third of the answers 401: a worker printing just inside plan's minimum is never restarted", async () => {
  const { earliest } = restartAfter(SHORT);
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const every = earliest - 10; // 180 s: plan says never restarted
    const life = await kubelet(c, { ...SHORT_KUBELET, until: 8 * every }, {
      before: (t) => {
        if (t % every === 0) c.server.log(c.pod, `processed job ${t}`, "app", start + t * 1000);
        // One API server replica of three with stale service-account keys.
        c.server.override = t % 30 === 10
          ? { status: 401, headers: { "content-type": "application/json" }, body: "{}" }
          : undefined;
      },
    });
    assert.equal(life.restartAt, undefined);
    assert.ok(life.runs.some((r) => r.code === 1), "the worker's silences do fail checks");
  } finally {
    await c.stop();
  }
});

Deno.test("a third, then half of the answers 401: a hung worker is restarted after plan's minimum; each 401 at the last failure costs one threshold", async () => {
  const { earliest, latest } = restartAfter(SHORT);
  for (const [share, every] of [["a third", 3], ["half", 2]] as const) {
    const c = await Cluster.start();
    try {
      const start = c.server.now;
      const last = 85; // logged at 5 s before each check, up to the one at 90 s
      const life = await kubelet(c, { ...SHORT_KUBELET, until: last + 3 * latest }, {
        before: (t) => {
          if (t <= last + 5) {
            c.server.log(c.pod, `processed job ${t}`, "app", start + (t - 5) * 1000);
          }
          c.server.override = (t / 10) % every === 1
            ? { status: 401, headers: { "content-type": "application/json" }, body: "{}" }
            : undefined;
        },
      });
      const silence = life.restartAt! - last;
      // Each 401 where the last failure would fall passes (never the last failure), and the
      // streak starts over: one threshold and a period more each time (the check after the
      // first such pass in a silence passes too, moving the streak; after the second it does
      // not, so a single rhythm holds it twice at most); one period more when a 401 falls just
      // past the limit.
      const passes = life.runs.filter((r) => / never makes failure 5 in a row/.test(r.line)).length;
      assert.ok(passes <= 2, `${share}: ${passes} passes at the last failure`);
      const bound = latest + SHORT.period + passes * (SHORT.failureThreshold + 1) * SHORT.period;
      assert.ok(silence > earliest && silence <= bound, `${share}: ${silence}s (bound ${bound}s)`);
      if (passes === 0) assert.ok(silence <= 2 * latest, `${share}: ${silence}s`);
    } finally {
      await c.stop();
    }
  }
});

Deno.test("a flood of ignored lines (2 MiB a minute) never hides the job line: every check alive", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const debug = `DEBUG poll ${"x".repeat(1000)}`;
    const args = [...COMPONENT.args, "--ignore", "^DEBUG"];
    const life = await kubelet(c, { ...COMPONENT, from: 60, until: 12 * 60, args }, {
      before: (t) => {
        // 2048 lines of 1 KiB over the minute before the check, the job line somewhere among them.
        const job = Math.floor((t * 7919) % 2048);
        for (let i = 0; i < 2048; i++) {
          const at = start + (t - 60) * 1000 + i * 29;
          c.server.log(c.pod, i === job ? `processed job ${t}` : debug, "app", at);
        }
      },
    });
    assert.deepEqual(life.runs.filter((r) => !r.line.startsWith("alive: matching output")), []);
    const pages = c.server.seen.filter((s) => s.query.has("sinceTime")).length;
    assert.ok(pages >= 2 * life.runs.length, `${pages} pages for ${life.runs.length} checks`);
    assert.ok(
      c.server.seen.every((s) => s.bytes <= 1024 * 1024),
      "a page is at most --limit-bytes",
    );
  } finally {
    await c.stop();
  }
});

Deno.test("the kubelet's other 200-with-error answers are unknown once, then judged as an empty log", async () => {
  for (
    const text of [
      "unable to retrieve container logs for containerd://4f1c9e",
      'failed to get parse function: unsupported log format: "\\x00\\x00\\x00"',
    ]
  ) {
    const c = await Cluster.start();
    try {
      const start = c.server.now;
      c.server.log(c.pod, "processed job 1", "app", start + 10_000);
      c.server.now = start + 60_000;
      assert.equal((await c.run(COMPONENT.args)).code, 0);
      c.server.breakLog(c.pod, text);
      c.server.now = start + 120_000;
      const once = await c.run(COMPONENT.args);
      assert.equal(once.code, 0, once.stdout);
      assert.match(once.stdout, /^unknown: the kubelet cannot read the log: /);
      c.server.now = start + 180_000; // twice in a row: an empty log, the line remembered
      const twice = await c.run(COMPONENT.args);
      assert.equal(twice.code, 0, twice.stdout);
      assert.match(twice.stdout, /^alive: no output for 2m50s, within the 2h limit \(the kubelet/);
    } finally {
      await c.stop();
    }
  }
});

Deno.test("zone offsets, a line in P records and a last record without its newline are output at their time", async () => {
  for (const args of [COMPONENT.args, [...COMPONENT.args, "--ignore", "^DEBUG"]]) {
    const c = await Cluster.start();
    try {
      const start = c.server.now;
      const at = (s: number) => start + s * 1000;
      // A runtime that stamps +01:00 (the kubelet keeps the offset), 36-byte prefixes.
      c.server.log(c.pod, "DEBUG poll", "app", at(1));
      c.pod.containers.get("app")!.push({ at: at(10), text: "job one", offset: "+01:00" });
      const output = args.length > 2 ? "matching output" : "output";
      c.server.now = at(70);
      assert.equal((await c.run(args)).stdout.trim(), `alive: ${output} 1m ago`);
      // A 40 KiB line as three P records and an F record, then a record not finished yet.
      const records = c.pod.containers.get("app")!;
      for (let i = 0; i < 3; i++) {
        records.push({ at: at(100), text: "y".repeat(16384), partial: true });
      }
      records.push({ at: at(100), text: "end of job two" });
      records.push({ at: at(110), text: "job three, half writ", partial: true });
      c.server.now = at(130);
      assert.equal((await c.run(args)).stdout.trim(), `alive: ${output} 20s ago`);
    } finally {
      await c.stop();
    }
  }
});

Deno.test("--first-output (a startupProbe): fails until the container's first line, passes after it", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const args = ["--first-output", "--period", "10s"];
    const startup = await kubelet(c, { period: 10, threshold: 30, from: 10, until: 120, args }, {
      before: (t) => {
        if (t === 100) c.server.log(c.pod, "consumer ready", "app", start + 95_000);
      },
      run: { stateFile: `${c.paths.stateDir}/startup` },
    });
    assert.deepEqual(startup.runs.map((r) => r.code), [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    assert.equal(startup.runs[0].line, "silent: no output yet, started 10s ago");
    assert.equal(startup.runs.at(-1)!.line, "alive: output 25s ago"); // the newest line, seen again
  } finally {
    await c.stop();
  }
});

Deno.test("lives in a rhythm: blind every second to fifth check, at any phase, never holds off a restart, any threshold; at most two lost last failures, each costing one threshold and a period", () => {
  for (let threshold = 1; threshold <= 20; threshold++) {
    for (const every of [2, 3, 4, 5]) {
      for (let phase = 0; phase < every; phase++) {
        for (const clock of [0, 7, 29]) {
          const settings = { ...DEFAULT, failureThreshold: threshold };
          const { latest } = restartAfter(settings);
          const error = (phase + clock) % 2 === 1;
          const life = {
            outputs: [600 + clock],
            firstCheck: 60 + clock,
            horizon: 600 + 10 * latest,
            check: (k: number): CheckKind =>
              (k + phase) % every === 0 ? (error ? "error" : "lost") : "answer",
          };
          const lived = live(life, { ...settings, ...LINES });
          const said = `failureThreshold ${threshold}, blind every ${every} (phase ${phase}, ${
            error ? "errors" : "lost"
          }, clock +${clock}s): ${JSON.stringify(lived)}`;
          const bound = 2 * latest + lived.passes * (threshold + 1) * settings.period;
          assert.ok(lived.restartAt !== undefined && lived.restartAt - 600 - clock <= bound, said);
          // The check after the first lost last failure moves the streak, after the second it
          // does not: under a single rhythm, one of the two streaks ends on an answer.
          assert.ok(lived.passes <= 2, said);
        }
      }
    }
  }
});
