/**
 * Heartbeat patterns (--match, --ignore, page by page), --last-line, --output json, doctor
 * and backtest: each run as the real probe against the test server.
 */
import assert from "node:assert/strict";
import {
  counts,
  formatDuration,
  limitOf,
  LINEAR_REGEXP_FLAG,
  type LineOptions,
  LogScanner,
  MATCHED_CHARS,
  pageQuery,
  parseArgs,
  type PlanOptions,
  restartAfter,
  utc,
} from "../probe.ts";
import { rfc3339Nano } from "./apiserver.ts";
import { Cluster, denoFlags, PROBE } from "./cluster.ts";

/** The defaults the probe runs with here (the example's flags): a 2h limit. */
const DEFAULTS: PlanOptions = {
  window: 60,
  growth: "triangular",
  period: 60,
  failureThreshold: 15,
};
const LIMIT = limitOf(DEFAULTS);

/**
 * The counter of a container whose last output, `ago` ms before now, a check saw a minute ago:
 * the steady state of a quiet container. Returns the output's time.
 */
async function lastSeen(c: Cluster, ago: number): Promise<number> {
  const at = c.server.now - ago;
  const check = c.server.now - 60_000;
  await c.restartContainer("app", at - 16_000);
  await Deno.writeTextFile(c.stateFile, c.counterLine(at, { seenUntil: check, countedAt: check }));
  return at;
}

const lineOptions = (match: string[], ignore: string[] = []): LineOptions => ({
  match: match.map((p) => new RegExp(p)),
  ignore: ignore.map((p) => new RegExp(p)),
  tail: 300,
  limitBytes: 262144,
});

// ---------------------------------------------------------------------------
// Heartbeat patterns

Deno.test("counts: --ignore wins over --match; only the first 4096 characters are tested", () => {
  const options = lineOptions(["processed job \\d+"], ["retrying"]);
  assert.ok(counts("processed job 42", options));
  assert.ok(!counts("worker v1.2 started", options));
  assert.ok(!counts("processed job 42, retrying", options));
  assert.ok(counts("anything", lineOptions([], ["retrying"])));
  assert.ok(!counts(`${"x".repeat(MATCHED_CHARS)}processed job 1`, options));
  // A page starts at a whole second, as the API server reads sinceTime.
  assert.deepEqual(pageQuery(Date.parse("2026-11-25T13:59:57.500Z"), options.limitBytes), {
    sinceTime: "2026-11-25T13:59:57Z",
    limitBytes: 262144,
  });
});

Deno.test("LogScanner keeps the newest line that counts, strips timestamps, in any chunking", () => {
  const body = "2026-11-25T12:00:00Z processed job 1\n2026-11-25T12:00:01.5Z retrying\n" +
    "2026-11-25T12:00:02Z processed job 2 é\n2026-11-25T12:00:03Z retrying\n";
  const bytes = new TextEncoder().encode(body);
  for (const size of [1, 2, 7, 64, bytes.length]) {
    const scanner = new LogScanner(lineOptions([], ["retrying"]));
    for (let i = 0; i < bytes.length; i += size) scanner.push(bytes.subarray(i, i + size));
    const scan = scanner.end(false);
    assert.deepEqual(scan.newest, {
      at: Date.parse("2026-11-25T12:00:02Z"),
      text: "processed job 2 é",
    });
    assert.deepEqual([scan.lines, scan.bytes], [4, bytes.length], `chunks of ${size}`);
  }
  const none = new LogScanner(lineOptions(["nothing"]));
  none.push(body);
  assert.equal(none.end(false).newest, undefined);
});

Deno.test("LogScanner: a 64 MiB answer of lines that do not count, then one that does: found, in bounded memory", () => {
  const scanner = new LogScanner(lineOptions(["processed"]));
  const chunk = new TextEncoder().encode(
    `2026-11-25T12:00:00Z ${"x".repeat(1000)} retrying\n`.repeat(1024),
  );
  const before = Deno.memoryUsage().rss;
  for (let i = 0; i < 64; i++) scanner.push(chunk);
  scanner.push("2026-11-25T12:00:09Z processed job 9\n");
  const scan = scanner.end(false);
  const grown = Deno.memoryUsage().rss - before;
  assert.equal(scan.newest?.text, "processed job 9");
  assert.equal(scan.lines, 64 * 1024 + 1);
  assert.ok(grown < 32 * 1024 * 1024, `RSS grew ${grown} bytes`);
});

Deno.test("a bad pattern is an error naming the pattern and the reason, exit 2 one check in three", async () => {
  assert.throws(() => parseArgs(["--match", "("]), /Invalid --match "\(": Unterminated group/);
  const c = await Cluster.start();
  try {
    // A misconfiguration: one check in three fails (exit 2), each line names it.
    const runs = [await c.run(["--ignore", "[z-a]"]), await c.run(["--ignore", "[z-a]"])];
    runs.push(await c.run(["--ignore", "[z-a]"]));
    assert.deepEqual(runs.map((run) => run.code).sort(), [0, 0, 2]);
    for (const run of runs) {
      assert.ok(
        run.stdout.startsWith(
          'error: Invalid --ignore "[z-a]": Range out of order in character class',
        ),
        run.stdout,
      );
    }
    assert.equal(c.server.seen.length, 0);
  } finally {
    await c.stop();
  }
});

Deno.test("--match: a worker that only logs its banner is silent; one that processes jobs is alive", async () => {
  const c = await Cluster.start();
  try {
    // Started more than the limit ago; its banner, 10 s ago, is output but no sign of life.
    const start = c.server.now - (LIMIT + 60) * 1000;
    await c.restartContainer("app", start);
    c.server.log(c.pod, "worker v1.2 started", "app", c.server.now - 10_000);
    const banner = await c.run(["--match", "processed job \\d+"]);
    assert.equal(banner.code, 1);
    assert.match(
      banner.stdout,
      /^silent: no matching output since the start 2h1m\d*s? ago, over the 2h limit \(1 failure in a row; the kubelet restarts at 15\)$/m,
    );
    // The first check of an instance reads every line of the limit at least, a page at a time.
    const asked = c.server.seen.at(-1)!.query;
    assert.equal(asked.get("tailLines"), null);
    assert.equal(asked.get("limitBytes"), "1048576");
    const from = Date.parse(asked.get("sinceTime")!);
    assert.ok(
      from >= start - 3_000 && from <= c.server.now - LIMIT * 1000 + 10_000,
      `sinceTime ${asked.get("sinceTime")}`,
    );
    c.server.now += 60_000;
    c.server.log(c.pod, "processed job 42", "app", c.server.now - 5_000);
    c.server.log(c.pod, "heartbeat", "app", c.server.now - 1_000);
    const working = await c.run(["--match", "processed job \\d+", "--match", "^task done"]);
    assert.equal(working.code, 0);
    assert.match(working.stdout, /^alive: matching output \d+s ago$/m);
  } finally {
    await c.stop();
  }
});

Deno.test("--ignore: a worker stuck printing retries is silent, and restarted on plan's schedule", async () => {
  const plan: PlanOptions = { window: 10, growth: "triangular", period: 10, failureThreshold: 3 };
  const flags = ["--window", "10s", "--failure-threshold", "3", "--period", "10s"];
  const { earliest, latest } = restartAfter(plan);
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    const job = 5; // the last job line, then retries every 2 s
    c.server.log(c.pod, "processed job 7", "app", start + job * 1000);
    let next = job + 1;
    let failures = 0;
    let restartAt: number | undefined;
    const lines: string[] = [];
    for (let t = plan.period; restartAt === undefined && t <= 10 * latest; t += plan.period) {
      c.server.now = start + t * 1000;
      for (; next <= t; next += 2) {
        c.server.log(c.pod, "connection refused, retrying", "app", start + next * 1000);
      }
      const run = await c.run([...flags, "--ignore", "retrying"]);
      lines.push(`${t}s ${run.code} ${run.stdout.trim()}`);
      failures = run.code === 0 ? 0 : failures + 1;
      if (failures === plan.failureThreshold) restartAt = t;
    }
    const said = lines.join("\n");
    assert.ok(restartAt !== undefined, said);
    assert.ok(restartAt - job > earliest && restartAt - job <= latest, said);
    assert.match(lines.at(-1)!, /silent: no matching output for 1m\d+s, over the 1m limit/);
    // Without --ignore the same log looks alive: that is the point of --ignore.
    const plain = await c.run(flags);
    assert.equal(plain.code, 0, plain.stdout);
  } finally {
    await c.stop();
  }
});

Deno.test("a line that counts among more lines that do not count than one read holds is found, page by page", async () => {
  const c = await Cluster.start();
  try {
    await c.restartContainer("app", c.server.now - 600_000);
    const job = c.server.now - 100_000;
    // 30 KB of retries around the job line, ten a second; --limit-bytes 1000 holds 16 of them.
    for (let i = 0; i < 100; i++) {
      c.server.log(c.pod, "connection refused, retrying", "app", c.server.now - 200_000 + i * 100);
    }
    c.server.log(c.pod, "processed job 7", "app", job);
    for (let i = 0; i < 400; i++) {
      c.server.log(c.pod, "connection refused, retrying", "app", c.server.now - 40_000 + i * 100);
    }
    const found = await c.run(["--ignore", "retrying", "--limit-bytes", "1000"]);
    assert.equal(found.code, 0, found.stdout);
    assert.match(found.stdout, /^alive: matching output 1m\d+s ago$/m);
    const pages = c.server.seen.filter((s) => s.query.has("sinceTime"));
    assert.ok(pages.length > 20, `${pages.length} pages`);
    assert.ok(pages.every((s) => s.query.get("limitBytes") === "1000" && s.bytes <= 1000));
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(job, { seenUntil: c.server.now, countedAt: c.server.now }),
    );
    // The next check reads only what is new (from 2 s before the last read): the job line,
    // seen earlier, is remembered.
    const seenUntil = Date.parse((await c.counter())!.split(" ")[3]);
    const asked = c.server.seen.length;
    c.server.now += 60_000;
    const remembered = await c.run(["--ignore", "retrying", "--limit-bytes", "1000"]);
    assert.equal(remembered.code, 0);
    assert.match(remembered.stdout, /^alive: no matching output for 2m\d+s, within the 2h limit$/m);
    const first = c.server.seen[asked].query.get("sinceTime");
    assert.equal(first, pageQuery(seenUntil - 2_000, 1).sinceTime);
  } finally {
    await c.stop();
  }
});

Deno.test("more than --limit-bytes within one second: the rest of that second is not read, never claimed silent", async () => {
  const c = await Cluster.start();
  try {
    await c.restartContainer("app", c.server.now - (LIMIT + 60) * 1000);
    // 100 retries (6 KB) and then a job line, all in one second 30 s ago: the API server takes
    // sinceTime in whole seconds, so a read of 1000 bytes cannot reach past the retries.
    const second = c.server.now - 30_000;
    for (let i = 0; i < 100; i++) {
      c.server.log(c.pod, "connection refused, retrying", "app", second + i);
    }
    c.server.log(c.pod, "processed job 7", "app", second + 500);
    const run = await c.run(["--ignore", "retrying", "--limit-bytes", "1000"]);
    // Past the limit, but a line that counts may be in what was not read: as blind, named.
    assert.equal(run.code, 0, run.stdout);
    assert.match(
      run.stdout,
      new RegExp(
        `^unknown: no line that counts in what was read: more than --limit-bytes in 1 second from ${
          utc(second).replace(/\./g, "\\.")
        }, the rest of it not read; `,
      ),
    );
  } finally {
    await c.stop();
  }
});

Deno.test("with patterns a check reads what is new since the check before, so a job buried by a burst counts", async () => {
  const c = await Cluster.start();
  try {
    const start = c.server.now;
    await c.restartContainer("app", start - 60_000);
    c.server.log(c.pod, "processed job 1", "app", start - 5_000);
    assert.equal((await c.run(["--ignore", "retrying"])).code, 0);
    const seenUntil = Date.parse((await c.counter())!.split(" ")[3]);
    // Between two checks: a job, then 5000 retries (more than --tail), all inside 40 s.
    c.server.now = start + 60_000;
    c.server.log(c.pod, "processed job 2", "app", start + 10_000);
    for (let i = 0; i < 5000; i++) c.server.log(c.pod, "retrying", "app", start + 11_000 + i * 5);
    const run = await c.run(["--ignore", "retrying"]);
    assert.equal(run.code, 0, run.stdout);
    assert.match(run.stdout, /^alive: matching output \d+s ago$/m);
    const asked = c.server.seen.at(-1)!.query;
    assert.equal(asked.get("sinceTime"), pageQuery(seenUntil - 2_000, 1).sinceTime);
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(start + 10_000, { seenUntil: c.server.now, countedAt: c.server.now }),
    );
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// --last-line and --output json

Deno.test("a silent check makes one request; --last-line quotes the newest line with one more", async () => {
  const c = await Cluster.start();
  try {
    const words = await lastSeen(c, 7384_000);
    c.server.log(c.pod, 'waiting for upstream\u001b[0m "db"', "app", words);
    const before = c.server.seen.length;
    const silent = await c.run();
    assert.equal(silent.code, 1);
    assert.match(
      silent.stdout,
      /^silent: no output for 2h3m\d+s, over the 2h limit \(1 failure in a row; the kubelet restarts at 15\)$/m,
    );
    const [check, ...more] = c.server.seen.slice(before);
    assert.deepEqual(Object.fromEntries(check.query), {
      sinceSeconds: String(LIMIT),
      tailLines: "1",
      timestamps: "true",
      limitBytes: "64",
    });
    assert.deepEqual(more, []);
    const quoted = await c.run(["--last-line"]);
    assert.match(
      quoted.stdout,
      /^silent: no output for 2h3m\d+s, over the 2h limit \(2 failures in a row; the kubelet restarts at 15\); last line: "waiting for upstream\\u001b\[0m \\"db\\""\n$/m,
    );
    const last = c.server.seen.at(-1)!;
    assert.equal(last.query.get("sinceSeconds"), null);
    assert.equal(last.query.get("tailLines"), "1");
    assert.ok(last.bytes <= 256);
    c.server.log(c.pod, "x".repeat(1000), "app", words);
    const long = await c.run(["--last-line"]);
    assert.equal(long.stdout.length, 200, "cut to 199 characters and a newline");
    assert.ok(long.stdout.endsWith("…\n"));
    // Alive checks make no second request.
    c.server.log(c.pod, "back");
    const requests = c.server.seen.length;
    assert.equal((await c.run(["--last-line"])).code, 0);
    assert.equal(c.server.seen.length, requests + 1);
  } finally {
    await c.stop();
  }
});

Deno.test("--last-line follows --match/--ignore: the newest line that counts, not the newest line", async () => {
  const c = await Cluster.start();
  try {
    const job = await lastSeen(c, 7384_000);
    c.server.log(c.pod, "processed job 7", "app", job);
    for (let i = 0; i < 20; i++) c.server.log(c.pod, "retrying", "app", c.server.now - 30_000 + i);
    const run = await c.run(["--match", "processed job", "--last-line", "--output", "json"]);
    const result = JSON.parse(run.stdout);
    assert.equal(result.verdict, "silent");
    assert.equal(result.exitCode, 1);
    assert.equal(result.lastOutput, utc(job));
    assert.match(
      result.message,
      /^silent: no matching output for 2h3m\d+s, over the 2h limit \(1 failure in a row; the kubelet restarts at 15\); last line: "processed job 7"$/m,
    );
    assert.equal(
      await c.counterAt(c.server.now),
      c.counterLine(job, { seenUntil: c.server.now, countedAt: c.server.now, failures: 1 }),
    );
  } finally {
    await c.stop();
  }
});

Deno.test("the rest of a long line whose start is older than the read arrives bare: output", async () => {
  const c = await Cluster.start();
  try {
    const now = c.server.now;
    await c.restartContainer("app", now - 600_000);
    // The check before read up to a minute ago; this one reads from 62 s ago.
    await Deno.writeTextFile(
      c.stateFile,
      c.counterLine(now - 600_000, { fromStart: true, seenUntil: now - 60_000 }),
    );
    const records = c.pod.containers.get("app")!;
    // The runtime split one long line in three CRI records; the first is older than the read.
    records.push({ at: now - 120_000, text: "x".repeat(16384), partial: true });
    records.push({ at: now - 30_000, text: "y".repeat(16384), partial: true });
    records.push({ at: now - 20_000, text: "z processed job 9" });
    const run = await c.run(["--ignore", "retrying"]);
    assert.equal(run.code, 0, run.stdout);
    // It counts at the read's start, the earliest it can have been written.
    assert.match(run.stdout, /^alive: matching output 1m\d+s ago$/m);
    const seen = c.server.seen.find((s) => s.query.has("sinceTime"))!;
    assert.equal(seen.query.get("sinceTime"), pageQuery(now - 62_000, 1).sinceTime);
    assert.ok(seen.bytes > 16384, "the body starts with the bare rest of the line");
    // The kubelet's newest line, asked for alone, starts with a timestamp: it is a log.
    assert.equal(c.server.seen.at(-1)!.query.get("tailLines"), "1");
  } finally {
    await c.stop();
  }
});

Deno.test("--last-line gives up at the check's deadline: the silent line, unquoted, within --timeout", async () => {
  const c = await Cluster.start();
  try {
    c.server.log(c.pod, "last words", "app", await lastSeen(c, 7384_000));
    c.server.delay = 2500; // the check's answer in 2.5 s; the quote's would come after 4 s
    const run = await c.run(["--timeout", "4s", "--last-line"]);
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      /^silent: no output for 2h3m\d+s, over the 2h limit \(1 failure in a row; the kubelet restarts at 15\)$/m,
    );
    assert.ok(run.ms < 4000 + 1500, `${run.ms} ms`);
  } finally {
    await c.stop();
  }
});

Deno.test("--output json: the verdict as one object", async () => {
  const c = await Cluster.start();
  try {
    await c.restartContainer("app", c.server.now - 60_000);
    const line = c.server.now - 5_000;
    c.server.log(c.pod, "processed job 1", "app", line);
    const alive = JSON.parse((await c.run(["--output", "json"])).stdout);
    assert.deepEqual(Object.keys(alive), [
      "verdict",
      "exitCode",
      "silence",
      "failures",
      "lastOutput",
      "message",
    ]);
    assert.deepEqual({ ...alive, silence: undefined, message: undefined }, {
      verdict: "alive",
      exitCode: 0,
      silence: undefined,
      failures: 0,
      lastOutput: utc(line),
      message: undefined,
    });
    assert.ok(alive.silence >= 5 && alive.silence < 15, `${alive.silence}`);
    assert.match(alive.message, /^alive: output \d+s ago$/m);
    c.server.now += (LIMIT + 120) * 1000;
    const silent = JSON.parse((await c.run(["--output=json"])).stdout);
    assert.equal(silent.verdict, "silent");
    assert.equal(silent.exitCode, 1);
    assert.equal(silent.failures, 1);
    assert.equal(silent.lastOutput, utc(line));
    assert.ok(silent.silence > LIMIT + 120, `${silent.silence}`);
    // Errors too: one object, its exit code the process's (here, the silent streak goes on).
    const error = await c.run(["--output", "json", "--growth", "sideways"], {
      failureThreshold: null,
    });
    const object = JSON.parse(error.stdout);
    assert.deepEqual(Object.keys(object), ["verdict", "exitCode", "message"]);
    assert.equal(object.verdict, "error");
    assert.equal(object.exitCode, error.code);
    assert.equal(error.code, 2);
    assert.equal(
      object.message,
      'error: Invalid --growth "sideways": use triangular, linear, exponential, fixed; failed, as the silent check before (2 in a row)',
    );
  } finally {
    await c.stop();
  }
});

// ---------------------------------------------------------------------------
// doctor

Deno.test("doctor: every item passes on a good set-up, exit 0", async () => {
  const c = await Cluster.start();
  try {
    c.server.log(c.pod, "processed job 1");
    const run = await c.run(["doctor"]);
    assert.equal(run.code, 0, run.stdout);
    const lines = run.stdout.trimEnd().split("\n");
    assert.ok(lines.every((line) => line.startsWith("✓ ")), run.stdout);
    assert.match(run.stdout, /✓ pod shop\/worker-7d9f, API server https:\/\/127\.0\.0\.1:\d+/);
    assert.match(
      run.stdout,
      /✓ API server reachable, certificate verified, token accepted \(Kubernetes v1\.32\.4\)/,
    );
    assert.match(run.stdout, /✓ allowed to get pods\/log in shop/);
    assert.match(run.stdout, /✓ log request: alive: output \d+s ago$/m);
    assert.match(run.stdout, /✓ counter .*counter readable and writable/);
    assert.ok(!run.stdout.includes(c.token));
    assert.equal(await c.counter(), undefined, "doctor does not touch the counter");
  } finally {
    await c.stop();
  }
});

Deno.test("doctor: an access review refused, RBAC missing, a missing CA, a missing permission", async () => {
  const c = await Cluster.start();
  c.server.log(c.pod, "processed job 1");
  c.server.reviewOverride = {
    status: 403,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      kind: "Status",
      code: 403,
      message: "selfsubjectaccessreviews is forbidden by policy",
    }),
  };
  const refused = await c.run(["doctor"]);
  assert.equal(refused.code, 2);
  assert.match(
    refused.stdout,
    /✗ the access review failed \(403 selfsubjectaccessreviews is forbidden by policy\)/,
  );
  c.server.reviewOverride = undefined;
  c.server.grants.clear();
  const rbac = await c.run(["doctor"]);
  assert.equal(rbac.code, 2);
  assert.match(
    rbac.stdout,
    /✗ not allowed to get pods\/log in shop: bind the Role log-probe to it/,
  );
  assert.match(rbac.stdout, /✗ log request: error: forbidden/);
  await Deno.remove(`${c.paths.serviceAccountDir}/ca.crt`);
  const noCa = await c.run(["doctor"]);
  assert.equal(noCa.code, 2);
  assert.match(noCa.stdout, /✗ No CA certificate at .*ca\.crt/);
  assert.match(noCa.stdout, /✓ pod shop\/worker-7d9f/, "the other items are still checked");
  const flags = denoFlags(c.paths, `127.0.0.1:${c.server.port}`)
    .filter((flag) => !flag.startsWith("--allow-write"));
  const noWrite = await c.run(["doctor"], { flags });
  assert.equal(noWrite.code, 2);
  assert.match(
    noWrite.stdout,
    new RegExp(`✗ Deno permissions missing: add --allow-write=${c.paths.stateDir}`),
  );
  await c.stop();
});

// ---------------------------------------------------------------------------
// backtest

/** `kubectl logs --timestamps` text for lines at the given seconds after `start`. */
function history(start: number, seconds: number[], text = (i: number) => `processed job ${i}`) {
  return seconds.map((s, i) => `${rfc3339Nano(start + s * 1000)} ${text(i)}\n`).join("");
}

async function backtest(c: Cluster, file: string, args: string[] = []) {
  return await c.run(["backtest", "--log-file", file, ...args], {
    // The README's backtest command: patterns need the linear-time engine's flag.
    flags: ["run", "--no-prompt", "--no-config", LINEAR_REGEXP_FLAG, `--allow-read=${file}`],
  });
}

Deno.test("backtest: the restart it predicts is the one plan predicts for the same silence", async () => {
  const c = await Cluster.start();
  try {
    const start = Date.parse("2026-11-20T00:00:00Z");
    // An hour of a line every 30 s, three hours of silence, an hour of output again.
    const busy = Array.from({ length: 120 }, (_, i) => i * 30);
    const again = Array.from({ length: 120 }, (_, i) => 4 * 3600 + i * 30);
    const file = `${c.dir}/app.log`;
    await Deno.writeTextFile(
      file,
      history(start, [...busy, ...again]) + "not a log line\n\n2026-13-45T99:99:99Z bad\n",
    );
    const run = await backtest(c, file);
    assert.equal(run.code, 0, run.stdout);
    const lastBusy = busy.at(-1)!;
    // Replayed with the first check 1 to 60 s after the first line: the worst offset restarts
    // after plan's shortest silence, one second past its (exclusive) earliest.
    const worst = (options: PlanOptions) => {
      const silence = restartAfter(options).earliest + 1;
      const at = utc(start + (lastBusy + silence) * 1000);
      return new RegExp(`^restarts: 1, at ${at} after ${formatDuration(silence)} of silence$`, "m");
    };
    assert.match(run.stdout, worst(DEFAULTS));
    assert.match(
      run.stdout,
      /^settings: limit 2h, restart after 15 failures in a row; replayed at 60 check offsets, the worst shown$/m,
    );
    assert.match(
      run.stdout,
      /240 lines from 2026-11-20T00:00:00.000Z to 2026-11-20T04:59:30.000Z \(4h59m30s\), \d+ checks every 1m, 2 malformed lines skipped/,
    );
    assert.match(
      run.stdout,
      /^longest silence: 3h30s from 2026-11-20T00:59:30.000Z to 2026-11-20T04:00:00.000Z$/m,
    );
    // Every offset restarted: no streak of failures ended without a restart.
    assert.match(run.stdout, /^longest streak without a restart: no failed check$/m);
    // With a 30 minute cap the limit is 30m: the restart comes sooner, as plan says.
    const capped = await backtest(c, file, ["--max-window", "30m"]);
    assert.match(capped.stdout, /^settings: limit 30m,/m);
    assert.match(capped.stdout, worst({ ...DEFAULTS, maxWindow: 1800 }));
  } finally {
    await c.stop();
  }
});

Deno.test("backtest: --ignore turns a retry loop into the restart it should be", async () => {
  const c = await Cluster.start();
  try {
    const start = Date.parse("2026-11-20T00:00:00Z");
    const seconds = Array.from({ length: 4 * 360 }, (_, i) => i * 10); // 4 hours, every 10 s
    const file = `${c.dir}/retry.log`;
    await Deno.writeTextFile(
      file,
      history(
        start,
        seconds,
        (i) => i < 60 ? `processed job ${i}` : "connection refused, retrying",
      ),
    );
    const plain = await backtest(c, file);
    assert.match(plain.stdout, /^restarts: none$/m);
    assert.match(plain.stdout, /^longest streak without a restart: no failed check$/m);
    // Silence counts from the last job line (00:09:50), whatever the loop printed after it: at the
    // worst offset, one second past plan's earliest.
    const silence = restartAfter(DEFAULTS).earliest + 1;
    const at = utc(start + (590 + silence) * 1000);
    const ignoring = await backtest(c, file, ["--ignore", "retrying"]);
    assert.match(
      ignoring.stdout,
      new RegExp(`^restarts: 1, at ${at} after ${formatDuration(silence)} of silence$`, "m"),
    );
    assert.match(ignoring.stdout, /^settings: limit 2h with --match\/--ignore,/m);
  } finally {
    await c.stop();
  }
});

Deno.test("backtest reads a 200 MB log as a stream, in bounded memory", async () => {
  const c = await Cluster.start();
  try {
    const file = `${c.dir}/big.log`;
    const handle = await Deno.open(file, { write: true, create: true });
    const start = Date.parse("2026-11-01T00:00:00Z");
    const encoder = new TextEncoder();
    let t = 0;
    let size = 0;
    while (size < 200_000_000) {
      let chunk = "";
      for (let i = 0; i < 10_000; i++) {
        t += 1 + (i % 7);
        chunk += `${new Date(start + t * 1000).toISOString()} processed job ${t} ${
          "·".repeat(20)
        }\n`;
      }
      const bytes = encoder.encode(chunk);
      await handle.write(bytes);
      size += bytes.length;
    }
    handle.close();
    const flags = ["run", "--no-prompt", "--no-config", `--allow-read=${file}`];
    const output = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%M", Deno.execPath(), ...flags, PROBE, "backtest", "--log-file", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const rssMiB = Number(new TextDecoder().decode(output.stderr).trim().split("\n").at(-1)) / 1024;
    assert.equal(output.code, 0, stdout);
    assert.match(stdout, /restarts: none/);
    assert.ok(rssMiB < 150, `${rssMiB.toFixed(0)} MiB for ${Math.round(size / 1e6)} MB`);
    console.log(`backtest: ${Math.round(size / 1e6)} MB log, peak RSS ${rssMiB.toFixed(0)} MiB`);
  } finally {
    await c.stop();
  }
});

Deno.test("with patterns, a first page refused (no RoleBinding) is the error it is, never alive on memory", async () => {
  const c = await Cluster.start();
  try {
    c.server.log(c.pod, "processed job 1", "app", c.server.now - 5_000);
    c.server.grants.delete("shop/system:serviceaccount:shop:log-probe");
    const lines: string[] = [];
    for (let i = 0; i < 3; i++) {
      c.server.now += 10_000;
      const run = await c.run(["--match", "processed", "--period", "10s"]);
      lines.push(`${run.code} ${run.stdout.trim()}`);
    }
    assert.ok(lines.every((line) => /^[02] error: forbidden: /.test(line)), lines.join("\n"));
    assert.deepEqual(lines.map((line) => line[0]), ["0", "0", "2"], lines.join("\n"));
  } finally {
    await c.stop();
  }
});
