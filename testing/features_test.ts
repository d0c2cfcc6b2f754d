/**
 * Heartbeat patterns (--match, --ignore), last words, --output json, doctor
 * and backtest: each run as the real probe against the test server.
 */
import assert from "node:assert/strict";
import {
  checkQuery,
  counts,
  LINEAR_REGEXP_FLAG,
  type LineOptions,
  LogScanner,
  MATCHED_CHARS,
  parseArgs,
  type PlanOptions,
  simulate,
} from "../probe.ts";
import { rfc3339Nano } from "./apiserver.ts";
import { Cluster, denoFlags, PROBE } from "./cluster.ts";

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
  // The first check of an instance reads the window; later ones what is new since the last.
  assert.deepEqual(checkQuery(60, options, { now: Date.parse("2026-11-25T12:01:00Z") }), {
    sinceSeconds: 60,
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

Deno.test("a bad pattern is exit 2 with the pattern and the reason", async () => {
  assert.throws(() => parseArgs(["--match", "("]), /Invalid --match "\(": Unterminated group/);
  const c = await Cluster.start();
  const run = await c.run(["--ignore", "[z-a]"]);
  assert.equal(run.code, 2);
  assert.equal(
    run.stdout,
    'error: Invalid --ignore "[z-a]": Range out of order in character class\n',
  );
  assert.equal(c.server.seen.length, 0);
  await c.stop();
});

Deno.test("--match: a worker that only logs its banner is silent; one that processes jobs is alive", async () => {
  const c = await Cluster.start();
  c.server.log(c.pod, "worker v1.2 started", "app", c.server.now - 10_000);
  const banner = await c.run(["--match", "processed job \\d+"]);
  assert.equal(banner.code, 1);
  assert.match(banner.stdout, /^silent: no matching output in the last 60s \(1 silent check/);
  // The first check of an instance reads the whole window, every line of it.
  const asked = c.server.seen.find((s) => s.query.has("sinceSeconds"))!.query;
  assert.equal(asked.get("tailLines"), null);
  assert.equal(asked.get("limitBytes"), "1048576");
  c.server.now += 60_000;
  c.server.log(c.pod, "processed job 42", "app", c.server.now - 5_000);
  c.server.log(c.pod, "heartbeat", "app", c.server.now - 1_000);
  const working = await c.run(["--match", "processed job \\d+", "--match", "^task done"]);
  assert.equal(working.code, 0);
  assert.match(working.stdout, /^alive: matching output in the last 180s \(after 1 silent check/);
  await c.stop();
});

Deno.test("--ignore: a worker stuck printing retries is silent, and restarted in the end", async () => {
  const c = await Cluster.start();
  c.server.log(c.pod, "processed job 7", "app", c.server.now - 600_000);
  for (let i = 0; i < 50; i++) {
    c.server.log(c.pod, "connection refused, retrying", "app", c.server.now - 50_000 + i * 1000);
  }
  const stuck = await c.run(["--ignore", "retrying"]);
  assert.equal(stuck.code, 1);
  assert.match(stuck.stdout, /^silent: no matching output in the last 60s/);
  // Without --ignore the same log looks alive: that is the point of --ignore.
  assert.equal((await c.run()).code, 0);
  await c.stop();
});

Deno.test("a line that counts behind more lines that do not count than --tail holds is found", async () => {
  const c = await Cluster.start();
  await c.setCounter(2);
  const job = c.server.now - 100_000;
  for (let i = 0; i < 100; i++) {
    c.server.log(c.pod, "connection refused, retrying", "app", c.server.now - 200_000 + i * 10);
  }
  c.server.log(c.pod, "processed job 7", "app", job);
  for (let i = 0; i < 400; i++) {
    c.server.log(c.pod, "connection refused, retrying", "app", c.server.now - 40_000 + i * 10);
  }
  const found = await c.run(["--ignore", "retrying"]);
  assert.equal(found.code, 0, found.stdout);
  assert.match(found.stdout, /^alive: matching output in the last 360s/);
  assert.equal(
    await c.counterAt(c.server.now),
    c.counterLine(0, job, 0, { seenUntil: c.server.now }),
  );
  // More than --limit-bytes in the window: the newest lines decide (the kubelet would keep the
  // oldest of a cut answer), so only retries are judged: silent, and the line names the flag.
  await c.setCounter(2);
  const cut = await c.run(["--ignore", "retrying", "--limit-bytes", "1000"]);
  assert.equal(cut.code, 1, cut.stdout);
  assert.match(
    cut.stdout,
    /more than --limit-bytes since the last check: only the newest lines read/,
  );
  const asked = c.server.seen.slice(-3).map((s) => s.query.get("tailLines"));
  assert.ok(asked.includes("300"), `asked for the newest --tail lines: ${asked}`);
  // An earlier check saw the job line: it is remembered, and inside the window.
  await Deno.writeTextFile(c.stateFile, c.counterLine(2, job));
  const remembered = await c.run(["--ignore", "retrying", "--limit-bytes", "1000"]);
  assert.equal(remembered.code, 0);
  assert.match(remembered.stdout, /^alive: matching output 1m40s ago, inside the 360s window/);
  await c.stop();
});

Deno.test("with patterns a check reads what is new since the check before, so a job buried by a burst counts", async () => {
  const c = await Cluster.start();
  const start = c.server.now;
  c.server.log(c.pod, "processed job 1", "app", start - 5_000);
  assert.equal((await c.run(["--ignore", "retrying"])).code, 0);
  // Between two checks: a job, then 5000 retries (more than --tail), all inside 40 s.
  c.server.now = start + 60_000;
  c.server.log(c.pod, "processed job 2", "app", start + 10_000);
  for (let i = 0; i < 5000; i++) c.server.log(c.pod, "retrying", "app", start + 11_000 + i * 5);
  const run = await c.run(["--ignore", "retrying"]);
  assert.equal(run.code, 0, run.stdout);
  const asked = c.server.seen.at(-1)!.query;
  assert.equal(
    asked.get("sinceTime"),
    new Date(start - 2_000).toISOString().replace(/\.\d+Z$/, "Z"),
  );
  assert.equal(
    await c.counterAt(c.server.now),
    c.counterLine(0, start + 10_000, 0, { seenUntil: c.server.now }),
  );
  await c.stop();
});

// ---------------------------------------------------------------------------
// Last words and --output json

Deno.test("last words: a silent line says when the container last wrote; --last-line quotes it", async () => {
  const c = await Cluster.start();
  c.server.log(c.pod, 'waiting for upstream\u001b[0m "db"', "app", c.server.now - 7384_000);
  const before = c.server.seen.length;
  const silent = await c.run();
  assert.equal(silent.code, 1);
  assert.equal(
    silent.stdout,
    "silent: no output in the last 60s (1 silent check in a row; next window 180s); last output 2h3m4s ago\n",
  );
  const [check, last] = c.server.seen.slice(before);
  assert.equal(check.query.get("sinceSeconds"), "60");
  assert.equal(last.query.get("sinceSeconds"), null);
  assert.equal(last.query.get("tailLines"), "1");
  assert.ok(last.bytes <= 64);
  const quoted = await c.run(["--last-line"]);
  assert.equal(
    quoted.stdout,
    'silent: no output in the last 180s (2 silent checks in a row; next window 360s); last output 2h3m4s ago; last line: "waiting for upstream\\u001b[0m \\"db\\""\n',
  );
  // The counter now remembers that line: a silent check without --last-line asks once.
  const asked = c.server.seen.length;
  const once = await c.run();
  assert.equal(once.code, 1);
  assert.match(once.stdout, /; last output 2h3m4s ago$/m);
  assert.equal(c.server.seen.length, asked + 1);
  c.server.log(c.pod, "x".repeat(1000), "app", c.server.now - 7384_000);
  const long = await c.run(["--last-line"]);
  assert.equal(long.stdout.length, 200, "cut to 199 characters and a newline");
  assert.ok(long.stdout.endsWith("…\n"));
  // Alive checks make no second request.
  c.server.log(c.pod, "back");
  const requests = c.server.seen.length;
  assert.equal((await c.run()).code, 0);
  assert.equal(c.server.seen.length, requests + 1);
  await c.stop();
});

Deno.test("last words follow --match/--ignore: the newest line that counts, not the newest line", async () => {
  const c = await Cluster.start();
  const job = c.server.now - 7384_000;
  c.server.log(c.pod, "processed job 7", "app", job);
  for (let i = 0; i < 20; i++) c.server.log(c.pod, "retrying", "app", c.server.now - 90_000 + i);
  const run = await c.run(["--match", "processed job", "--last-line", "--output", "json"]);
  const result = JSON.parse(run.stdout);
  assert.equal(result.verdict, "silent");
  assert.equal(result.lastOutput, new Date(job).toISOString());
  assert.match(
    result.message,
    /; last matching output 2h3m4s ago; last line: "processed job 7"$/,
  );
  // The counter remembers it: the next checks count silence from it, whatever follows.
  assert.equal(
    await c.counterAt(c.server.now),
    c.counterLine(1, job, 1, { seenUntil: c.server.now }),
  );
  await c.stop();
});

Deno.test("the rest of a long line whose start is older than the window arrives bare: output", async () => {
  const c = await Cluster.start();
  const records = c.pod.containers.get("app")!;
  // The runtime split one long line in three CRI records; the first is older than the window.
  records.push({ at: c.server.now - 120_000, text: "x".repeat(16384), partial: true });
  records.push({ at: c.server.now - 30_000, text: "y".repeat(16384), partial: true });
  records.push({ at: c.server.now - 20_000, text: "z processed job 9" });
  const run = await c.run(["--ignore", "retrying"]);
  assert.equal(run.code, 0, run.stdout);
  assert.equal(run.stdout, "alive: matching output in the last 60s\n");
  const seen = c.server.seen.find((s) => s.query.has("sinceSeconds"))!;
  assert.ok(seen.bytes > 16384, "the body starts with the bare rest of the line");
  // The kubelet's newest line, asked for alone, starts with a timestamp: it is a log.
  assert.equal(c.server.seen.at(-1)!.query.get("tailLines"), "1");
  await c.stop();
});

Deno.test("last words are skipped when less than a second of the deadline is left", async () => {
  const c = await Cluster.start();
  c.server.log(c.pod, "last words", "app", c.server.now - 7384_000);
  c.server.delay = 1500;
  const run = await c.run(["--timeout", "2s"]);
  assert.equal(run.code, 1);
  assert.equal(
    run.stdout,
    "silent: no output in the last 60s (1 silent check in a row; next window 180s)\n",
  );
  assert.equal(c.server.seen.length, 1, "no second request");
  assert.ok(run.ms < 3000);
  await c.stop();
});

Deno.test("--output json: the verdict as one object", async () => {
  const c = await Cluster.start();
  c.server.log(c.pod, "processed job 1", "app", c.server.now - 5_000);
  const alive = await c.run(["--output", "json"]);
  assert.deepEqual(JSON.parse(alive.stdout), {
    verdict: "alive",
    exitCode: 0,
    window: 60,
    silentChecks: 0,
    lastOutput: new Date(c.server.now - 5_000).toISOString(),
    message: "alive: output in the last 60s",
  });
  c.server.now += 120_000;
  const silent = JSON.parse((await c.run(["--output=json"])).stdout);
  assert.equal(silent.verdict, "silent");
  assert.equal(silent.exitCode, 1);
  assert.equal(silent.silentChecks, 1);
  assert.equal(silent.lastOutput, new Date(c.server.now - 125_000).toISOString());
  // Errors too: one object, its exit code the process's (what it is follows the failure policy).
  const error = await c.run(["--output", "json", "--growth", "sideways"], {
    failureThreshold: null,
  });
  const object = JSON.parse(error.stdout);
  assert.deepEqual(Object.keys(object), ["verdict", "exitCode", "message"]);
  assert.equal(object.verdict, "error");
  assert.equal(object.exitCode, error.code);
  assert.match(
    object.message,
    /^error: Invalid --growth "sideways": use triangular, linear, exponential, fixed; /,
  );
  await c.stop();
});

// ---------------------------------------------------------------------------
// doctor

Deno.test("doctor: every item passes on a good set-up, exit 0", async () => {
  const c = await Cluster.start();
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
  assert.match(run.stdout, /✓ log request \(window 60s\): alive: output in the last 60s/);
  assert.match(run.stdout, /✓ counter .*counter readable and writable/);
  assert.ok(!run.stdout.includes(c.token));
  assert.equal(await c.counter(), undefined, "doctor does not touch the counter");
  await c.stop();
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
  assert.match(rbac.stdout, /✗ log request \(window 60s\): error: forbidden/);
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
  // Replayed with the first check 1 to 60 s after the first line, as plan tries every phase:
  // the worst is plan's shortest silence.
  const plan: PlanOptions = { window: 60, growth: "triangular", period: 60, failureThreshold: 15 };
  const silence = Math.min(
    ...Array.from({ length: 60 }, (_, k) => simulate(plan, k + 1).restartAfter),
  );
  const at = new Date(start + (lastBusy + silence) * 1000).toISOString();
  assert.match(run.stdout, new RegExp(`restarts: 1, at ${at} after 2h14m1s of silence`));
  assert.match(run.stdout, /replayed at 60 check offsets, the worst shown/);
  assert.match(
    run.stdout,
    /240 lines from 2026-11-20T00:00:00Z to 2026-11-20T04:59:30Z \(4h59m30s\)/,
  );
  assert.match(run.stdout, /2 malformed lines skipped/);
  assert.match(
    run.stdout,
    /longest silence: 3h30s from 2026-11-20T00:59:30Z to 2026-11-20T04:00:00Z/,
  );
  // With a 30 minute cap the window never reaches back: the restart comes sooner.
  const capped = await backtest(c, file, ["--max-window", "30m"]);
  assert.match(capped.stdout, /restarts: 1, at .* after (4[0-9]|5[0-9])m\d*s? of silence/);
  await c.stop();
});

Deno.test("backtest: --ignore turns a retry loop into the restart it should be", async () => {
  const c = await Cluster.start();
  const start = Date.parse("2026-11-20T00:00:00Z");
  const seconds = Array.from({ length: 4 * 360 }, (_, i) => i * 10); // 4 hours, every 10 s
  const file = `${c.dir}/retry.log`;
  await Deno.writeTextFile(
    file,
    history(start, seconds, (i) => i < 60 ? `processed job ${i}` : "connection refused, retrying"),
  );
  const plain = await backtest(c, file);
  assert.match(plain.stdout, /restarts: none/);
  assert.match(plain.stdout, /nearest call without a restart: no failed check/);
  // Silence counts from the last job line (00:09:50), whatever the loop printed after it: the
  // restart plan predicts, whether or not the tail reaches back to that line.
  const restart = /restarts: 1, at 2026-11-20T02:23:51.000Z after 2h14m1s of silence/;
  const ignoring = await backtest(c, file, ["--ignore", "retrying"]);
  assert.match(ignoring.stdout, restart);
  assert.match(ignoring.stdout, /with --match\/--ignore/);
  assert.ok(!ignoring.stdout.includes("--limit-bytes"));
  // Reads larger than --limit-bytes are named: a live check then judges the newest lines only.
  const small = await backtest(c, file, ["--ignore", "retrying", "--limit-bytes", "100"]);
  assert.match(small.stdout, restart);
  assert.match(small.stdout, /\d+ checks would read more than --limit-bytes/);
  await c.stop();
});

Deno.test("backtest reads a 200 MB log as a stream, in bounded memory", async () => {
  const c = await Cluster.start();
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
      chunk += `${new Date(start + t * 1000).toISOString()} processed job ${t} ${"·".repeat(20)}\n`;
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
  await c.stop();
});
