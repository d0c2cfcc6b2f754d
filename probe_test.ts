import assert from "node:assert/strict";
import {
  type Answer,
  type CheckOptions,
  compilePattern,
  type Counter,
  counts,
  decide,
  type DecisionOptions,
  type Evidence,
  evidenceOf,
  formatCounter,
  formatDuration,
  freshCounter,
  HELP,
  judge,
  LIMIT_BYTES,
  limitOf,
  LogScanner,
  logUrl,
  MAX_LINE,
  type Memory,
  newestQuery,
  oneLine,
  OutOfTime,
  pageQuery,
  parseArgs,
  parseCounter,
  parseDuration,
  type PlanOptions,
  readFrom,
  recall,
  renderPlan,
  resolveTarget,
  restartAfter,
  scanLog,
  type Target,
  utc,
  windowFor,
} from "./probe.ts";
import { FakeApiServer, makePki, readLogs } from "./testing/apiserver.ts";
import { Cluster, denoFlags } from "./testing/cluster.ts";

const TARGET: Target = { server: "https://10.0.0.1", namespace: "shop", pod: "web" };
const TRIANGULAR = { window: 60, growth: "triangular" as const };
const ANY_LINE = { match: [], ignore: [], tail: 300, limitBytes: 262144 };
/** The component's settings: --window 60s --growth triangular, periodSeconds 60, failureThreshold 15. */
const SETTINGS: PlanOptions = { ...TRIANGULAR, period: 60, failureThreshold: 15 };
const OPTIONS: DecisionOptions = { ...SETTINGS, ...ANY_LINE };
/** The longest silence a check passes with those settings (2h). */
const LIMIT = limitOf(SETTINGS);
const NOW = Date.parse("2026-11-25T14:00:00Z");

function checkOptions(args: string[] = []): CheckOptions {
  const command = parseArgs(args);
  assert.equal(command.command, "check");
  return command.options;
}

/** A check's memory at NOW: by default output 10 minutes ago, the last answered read a period ago. */
function memory(more: Partial<Memory> = {}): Memory {
  return {
    lastOutput: NOW - 600_000,
    fromStart: false,
    seenUntil: NOW - 60_000,
    failures: 0,
    blind: 0,
    unreadable: false,
    counted: true,
    now: NOW,
    ...more,
  };
}

/**
 * In a silent streak: the last answered check, a period ago, saw 3 minutes more silence than the
 * limit, and failed for the second time in a row.
 */
const STREAK: Partial<Memory> = { lastOutput: NOW - (LIMIT + 240) * 1000, failures: 2 };

/**
 * A misconfiguration outside a silent streak, check after check from the first of a blind run:
 * one in three fails (exit 2), so the kubelet never counts two in a row of its own.
 */
const ERROR_CODES = "002002002";
const ERROR_FIRST = Number(ERROR_CODES[0]);
/** What the line adds when a misconfiguration's check passes. */
const ERROR_PASSES = "; passed (errors fail one check in three)";

Deno.test("parseDuration reads kubectl-style durations in whole seconds", () => {
  assert.equal(parseDuration("30s", "--window"), 30);
  assert.equal(parseDuration("5m", "--window"), 300);
  assert.equal(parseDuration("2h", "--window"), 7200);
  assert.equal(parseDuration("1h30m", "--window"), 5400);
  assert.equal(parseDuration("1h2m3s", "--window"), 3723);
});

Deno.test("parseDuration rejects zero, negative, unitless and garbage, naming the value", () => {
  for (const bad of ["0", "0s", "-5s", "abc", "60", "", "1.5m", "5 m", "1m1h", "11000000h"]) {
    assert.throws(
      () => parseDuration(bad, "--window"),
      (error: Error) => error.message.includes(`--window ${JSON.stringify(bad)}`),
      bad,
    );
  }
});

Deno.test("formatDuration writes what parseDuration reads", () => {
  for (const seconds of [1, 59, 60, 61, 3600, 3723, 5400, 7200, 86400]) {
    assert.equal(parseDuration(formatDuration(seconds), "--window"), seconds);
  }
  assert.equal(formatDuration(5400), "1h30m");
});

Deno.test("windowFor follows the article's schedule: 60, 180, 360 … 7200s at the 15th check", () => {
  const windows = Array.from({ length: 15 }, (_, n) => windowFor(n, TRIANGULAR));
  assert.deepEqual(windows, [
    60,
    180,
    360,
    600,
    900,
    1260,
    1680,
    2160,
    2700,
    3300,
    3960,
    4680,
    5460,
    6300,
    7200,
  ]);
});

Deno.test("windowFor grows linearly, exponentially, not at all, and stops at --max-window", () => {
  assert.deepEqual([0, 1, 2, 3].map((n) => windowFor(n, { window: 30, growth: "linear" })), [
    30,
    60,
    90,
    120,
  ]);
  assert.deepEqual(
    [0, 1, 2, 3].map((n) => windowFor(n, { window: 30, growth: "exponential" })),
    [30, 60, 120, 240],
  );
  assert.deepEqual([0, 5, 99].map((n) => windowFor(n, { window: 30, growth: "fixed" })), [
    30,
    30,
    30,
  ]);
  assert.equal(windowFor(14, { ...TRIANGULAR, maxWindow: 3600 }), 3600);
  assert.equal(windowFor(5000, { window: 60, growth: "exponential" }), 10 * 365 * 86400);
});

Deno.test("limitOf: the window the schedule reaches at the failureThreshold-th check, 2h by default", () => {
  assert.equal(limitOf(SETTINGS), windowFor(14, TRIANGULAR));
  assert.equal(limitOf(SETTINGS), 7200);
  assert.equal(limitOf({ ...SETTINGS, failureThreshold: 3 }), windowFor(2, TRIANGULAR));
  assert.equal(limitOf({ ...SETTINGS, maxWindow: 3600 }), 3600);
  assert.equal(limitOf({ window: 120, growth: "fixed", period: 60, failureThreshold: 15 }), 120);
  assert.equal(limitOf({ window: 30, growth: "linear", period: 60, failureThreshold: 1 }), 30);
});

Deno.test("parseArgs gives the defaults of SPEC.md", () => {
  const options = checkOptions();
  assert.equal(options.window, 60);
  assert.equal(options.growth, "triangular");
  assert.equal(options.timeout, 5);
  assert.equal(options.period, 60);
  assert.equal(options.failureThreshold, 15);
  assert.equal(options.periodGiven, false);
  assert.deepEqual(options.retired, []);
  assert.equal(options.stateFile, "/tmp/log-probe.state");
  assert.equal(options.serviceAccountDir, "/var/run/secrets/kubernetes.io/serviceaccount");
  assert.equal(options.terminationMessagePath, "");
  const plan = parseArgs(["plan"]);
  assert.ok(plan.command === "plan");
  assert.equal(plan.options.period, 60);
  assert.equal(plan.options.failureThreshold, 15);
  assert.equal(checkOptions(["--period", "1m"]).periodGiven, true);
});

Deno.test("--on-api-error is still accepted, whatever its value, and noted as no longer used", () => {
  for (const mode of ["streak", "ignore", "fail", "maybe"]) {
    assert.deepEqual(checkOptions(["--on-api-error", mode]).retired, ["--on-api-error"]);
  }
  assert.throws(() => parseArgs(["plan", "--on-api-error", "fail"]), /does not apply to plan/);
});
Deno.test("parseArgs takes kubectl's short flags and --flag=value", () => {
  const options = checkOptions(["-n", "shop", "-c=worker", "--pod=web-1", "--window", "2m"]);
  assert.equal(options.namespace, "shop");
  assert.equal(options.container, "worker");
  assert.equal(options.pod, "web-1");
  assert.equal(options.window, 120);
  assert.deepEqual(parseArgs(["--help"]), { command: "help" });
  assert.deepEqual(parseArgs(["check", "--version"]), { command: "version" });
});

Deno.test("the README shows the help as it is", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", import.meta.url));
  assert.ok(readme.includes(HELP.split("\n").slice(2).join("\n")));
});

Deno.test("the help fits on one screen", () => {
  const lines = HELP.split("\n");
  assert.ok(lines.length <= 40, `${lines.length} lines`);
  assert.ok(lines.every((line) => line.length <= 100));
});

Deno.test("resolveTarget: flags, then environment, then the namespace file, like InClusterConfig", () => {
  const env = (values: Record<string, string>) => (name: string) => values[name];
  const fromEnv = resolveTarget(
    checkOptions(),
    env({
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
      KUBERNETES_SERVICE_PORT: "443",
      POD_NAMESPACE: "shop",
      HOSTNAME: "web-1",
    }),
    () => "ignored",
  );
  assert.deepEqual(fromEnv, {
    server: "https://10.96.0.1",
    namespace: "shop",
    pod: "web-1",
    container: undefined,
  });
  const ipv6 = resolveTarget(
    checkOptions(),
    env({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443", HOSTNAME: "a" }),
    () => "shop\n",
  );
  assert.equal(ipv6.server, "https://[fd00::1]:6443");
  assert.equal(ipv6.namespace, "shop");
  const fallback = resolveTarget(
    checkOptions(["--pod", "web", "-c", "app"]),
    env({ POD_NAME: "ignored", NAMESPACE: "ns1", POD_NAMESPACE: "ns2" }),
    () => undefined,
  );
  assert.equal(fallback.server, "https://kubernetes.default.svc");
  assert.equal(fallback.namespace, "ns1");
  assert.equal(fallback.pod, "web");
  assert.equal(fallback.container, "app");
});

Deno.test("resolveTarget rejects what would change the request path or leave the cluster", () => {
  const none = () => undefined;
  const cases: Array<[string[], string]> = [
    [["--pod", "a/b", "-n", "x"], 'Invalid pod name "a/b"'],
    [["--pod", "..", "-n", "x"], 'Invalid pod name ".."'],
    [["--pod", "a", "-n", "X_Y"], 'Invalid namespace "X_Y"'],
    [["--pod", "a", "-n", "x", "-c", "a?b"], 'Invalid container name "a?b"'],
    [["--pod", "a", "-n", "x", "--server", "http://10.0.0.1"], "use https://"],
    [["--pod", "a"], "No namespace"],
    [["-n", "x"], "No pod name"],
  ];
  for (const [args, expected] of cases) {
    assert.throws(
      () => resolveTarget(checkOptions(args), none, none),
      (error: Error) => error.message.includes(expected),
      args.join(" "),
    );
  }
});

Deno.test("parseArgs rejects bad input with one line naming the bad value", () => {
  const cases: Array<[string[], string]> = [
    [["--bogus"], '"--bogus"'],
    [["--pod"], "Missing value for --pod"],
    [["--window", "--growth", "fixed"], "Missing value for --window"],
    [["--window", "0"], '"0"'],
    [["--window", "-5s"], '"-5s"'],
    [["--growth", "sideways"], '"sideways"'],
    [["--max-window", "30s"], '"30s": shorter than --window'],
    [["plan", "--failure-threshold", "0"], '"0"'],
    [["--failure-threshold", "10000"], '"10000"'],
    [["plan", "--pod", "web"], "--pod does not apply to plan"],
    [["--log-file", "x"], "--log-file does not apply to check"],
    [["stray"], '"stray"'],
    [["--window", "1m", "--window", "2m"], "--window given twice"],
  ];
  for (const [args, expected] of cases) {
    assert.throws(
      () => parseArgs(args),
      (error: Error) => error.message.includes(expected) && !error.message.includes("\n"),
      args.join(" "),
    );
  }
});
Deno.test("logUrl asks for the newest timestamped line within the limit, bounded, path segments encoded", () => {
  const url = new URL(
    logUrl({ ...TARGET, container: "app" }, newestQuery(NOW - LIMIT * 1000, NOW)),
  );
  assert.equal(url.pathname, "/api/v1/namespaces/shop/pods/web/log");
  assert.equal(
    url.search,
    `?sinceSeconds=${LIMIT}&tailLines=1&timestamps=true&limitBytes=${LIMIT_BYTES}&container=app`,
  );
  assert.ok(!logUrl(TARGET, newestQuery(NOW - 60_000, NOW)).includes("container="));
  const odd = logUrl({ ...TARGET, pod: "a b", namespace: "n/s" }, newestQuery(NOW - 1000, NOW));
  assert.ok(odd.includes("/namespaces/n%2Fs/pods/a%20b/log?"), odd);
  const page = new URL(logUrl(TARGET, pageQuery(Date.parse("2026-11-25T11:58:58.900Z"), 1024)));
  assert.equal(page.search, "?sinceTime=2026-11-25T11%3A58%3A58Z&timestamps=true&limitBytes=1024");
  const last = new URL(logUrl(TARGET, { tailLines: 1, limitBytes: 64 }));
  assert.equal(last.searchParams.get("sinceSeconds"), null, "last words: the whole current log");
});

Deno.test("readFrom: from 2 s before the last answered read, else before the start; without patterns never less than the limit", () => {
  const at = (seconds: number) => NOW + seconds * 1000;
  const start = at(-600);
  const from = (seenUntil: number | undefined, patterns: boolean) =>
    readFrom({ now: NOW, lastOutput: start, seenUntil }, LIMIT, patterns);
  assert.equal(from(at(-60), true), at(-62));
  assert.equal(from(at(-1800), true), at(-1802), "behind by half an hour: caught up");
  assert.equal(from(at(-LIMIT - 600), true), at(-LIMIT - 602), "after a long outage, too");
  assert.equal(from(at(0), true), at(-2));
  assert.equal(from(undefined, true), at(-602), "the first read of an instance: from its start");
  assert.equal(from(at(1), true), at(-602), "a read after now: the clock stepped back");
  // Without patterns one line is asked for, whatever the window: never less than the limit back.
  assert.equal(from(at(-60), false), at(-LIMIT));
  assert.equal(from(undefined, false), at(-LIMIT));
  assert.equal(from(at(-LIMIT - 600), false), at(-LIMIT - 602), "back to the last read");
  assert.equal(
    readFrom({ now: NOW, lastOutput: at(-LIMIT - 900) }, LIMIT, false),
    at(-LIMIT - 902),
    "no read yet: back to the start",
  );
  assert.equal(pageQuery(from(at(-60), true), 1048576).sinceTime, "2026-11-25T13:58:58Z");
  assert.deepEqual(newestQuery(from(at(-60), false), NOW), {
    sinceSeconds: LIMIT,
    tailLines: 1,
    limitBytes: LIMIT_BYTES,
  });
});

function status(code: number, message: string): Answer {
  const body = JSON.stringify({ kind: "Status", code, message });
  return { status: code, body, bytes: body.length };
}

function log(body: string, type = "text/plain"): Answer {
  return { status: 200, body, bytes: body.length, type };
}

Deno.test("judge sorts every answer: output, silence, a lost answer, a misconfiguration, the kubelet's error on the log", () => {
  // What each answer is, and what its line says.
  type Kind = "output" | "empty" | "lost" | "error" | "unreadable";
  const rows: Array<[Answer, Kind, RegExp]> = [
    [log(`${utc(NOW - 60_000)} hi\n`), "output", /^alive: output 1m ago$/],
    [log(`${utc(NOW - 30_500).replace(/\.\d+Z$/, ".5Z")} \n`), "output", /^alive: output 31s ago$/],
    [log(""), "empty", /^(alive|silent): no output for /],
    [log("no timestamp\n"), "error", /^error: answer is not a container log \(no timestamp\)/],
    [{ ...log(""), encoding: "br" }, "error", /not a container log \(content-encoding br\)/],
    [log("<html>proxy</html>", "text/html"), "error", /not a container log \(text\/html\)/],
    [
      { failure: "unreachable", detail: "tcp connect error: Connection refused" },
      "lost",
      /^unknown: API server unreachable: tcp connect error: Connection refused; /,
    ],
    [
      { failure: "timeout", detail: "5s" },
      "lost",
      /^unknown: no answer from the API server within 5s; /,
    ],
    [status(408, "timeout"), "lost", /^unknown: API server answered 408 timeout; /],
    [
      status(429, "Too many requests"),
      "lost",
      /^unknown: API server answered 429 Too many requests; /,
    ],
    [status(500, "boom"), "lost", /^unknown: API server answered 500 boom; /],
    [status(503, "unavailable"), "lost", /^unknown: API server answered 503 unavailable; /],
    [
      { failure: "expired", detail: "invalid peer certificate: Expired" },
      "lost",
      /^unknown: API server certificate expired \(the control plane's to renew, or this node's clock\); /,
    ],
    [
      // The kubelet has committed a 200 before ReadLogs fails; the error's text is the body
      // (testing/e2e-recorded.md).
      log(
        'failed to open log file "/var/log/pods/a/app/0.log": open /var/log/pods/a/app/0.log: no such file or directory',
      ),
      "unreadable",
      /^unknown: the kubelet cannot read the log: "failed to open log file .*" \(once; twice in a row: an empty log\); /,
    ],
    [
      log('failed to try resolving symlinks in path "/var/log/pods/a/app/0.log": lstat …'),
      "unreadable",
      /^unknown: the kubelet cannot read the log: "failed to try resolving symlinks/,
    ],
    [
      log("unable to retrieve container logs for containerd://0f0e"),
      "unreadable",
      /^unknown: the kubelet cannot read the log: "unable to retrieve container logs for/,
    ],
    [
      log('failed to get parse function: unsupported log format: "\\x00\\x00\\x00"'),
      "unreadable",
      /^unknown: the kubelet cannot read the log: "failed to get parse function: unsupported log format/,
    ],
    [
      status(400, "a container name must be specified for pod web, choose one of: [a b]"),
      "error",
      /^error: a container name must be specified for pod web, choose one of: \[a b\] \(pass --container\)/,
    ],
    [status(401, "Unauthorized"), "error", /^error: unauthorized: the API server rejected/],
    [
      status(
        403,
        'pods "web" is forbidden: User "system:serviceaccount:shop:log-probe" cannot get resource "pods/log" in API group "" in the namespace "shop"',
      ),
      "error",
      /^error: forbidden: the service account system:serviceaccount:shop:log-probe cannot get pods\/log in shop \(bind the Role log-probe to it\)/,
    ],
    [
      status(404, 'pods "web" not found'),
      "error",
      /^error: not found: pod shop\/web \(pods "web" not found; is --pod\/LOG_PROBE_POD_NAME right\?\)/,
    ],
    [
      // The kubelet's own 404 through the API server: a kubelet restarted a moment ago, as the
      // real node answered (testing/e2e-recorded.md), or another node's kubelet.
      status(404, "the server could not find the requested resource ( pods/log web)"),
      "error",
      /^error: the kubelet does not know the pod shop\/web \(restarted a moment ago, or the API server reached another node's kubelet: a stale node address\?\)/,
    ],
    [
      // The API server's own 404 for a path it has no route for (a proxy, a wrong --server).
      status(404, "the server could not find the requested resource"),
      "error",
      /^error: not found: pod shop\/web \(the server could not find the requested resource; is --pod/,
    ],
    [status(422, "invalid"), "error", /^error: API server answered 422: invalid/],
    [
      { failure: "tls", detail: "invalid peer certificate: UnknownIssuer" },
      "error",
      /^error: API server certificate rejected: invalid peer certificate: UnknownIssuer/,
    ],
    [
      { failure: "protocol", detail: "received corrupt message of type InvalidContentType" },
      "error",
      /^error: API server does not speak TLS as expected: .*plain-HTTP port/,
    ],
    [
      { failure: "permission", detail: "Requires net access" },
      "error",
      /^error: Deno permission missing/,
    ],
    [
      { status: 302, body: "", bytes: 0 },
      "error",
      /^error: API server answered 302: \(empty answer\)/,
    ],
  ];
  const limit = formatDuration(LIMIT);
  for (const [answer, kind, message] of rows) {
    const name = `${kind}: ${JSON.stringify(answer)}`;
    // In a silent streak: output ends it; silence and every check that cannot see the log
    // continue it, a lost answer with 1, a misconfiguration with 2.
    const streak = judge(answer, memory(STREAK), OPTIONS, TARGET);
    assert.match(streak.message, message, name);
    const [verdict, code, failures] = {
      output: ["alive", 0, 0],
      empty: ["silent", 1, 3],
      lost: ["unknown", 1, 3],
      unreadable: ["unknown", 1, 3],
      error: ["error", 2, 3],
    }[kind];
    assert.deepEqual(
      [streak.verdict, streak.code, streak.next.failures],
      [verdict, code, failures],
      name,
    );
    if (kind === "empty") {
      assert.equal(
        streak.message,
        `silent: no output for ${
          formatDuration(LIMIT + 240)
        }, over the ${limit} limit (3 failures in a row; the kubelet restarts at 15)`,
      );
    } else if (kind !== "output") {
      assert.match(streak.message, /; failed, as the silent check before \(3 in a row\)$/, name);
    }
    // After output 10 minutes ago: output, silence within the limit and lost answers pass; the
    // first check of a misconfiguration exits as ERROR_CODES says.
    const passing = judge(answer, memory(), OPTIONS, TARGET);
    assert.match(passing.message, message, name);
    assert.equal(passing.next.failures, passing.code ? 1 : 0);
    if (kind === "empty") {
      assert.equal(passing.message, `alive: no output for 10m, within the ${limit} limit`);
    } else if (kind === "lost" || kind === "unreadable") {
      assert.equal(passing.code, 0, name);
      assert.match(passing.message, /; passed, as the check before \(last output 10m ago\)$/, name);
    } else if (kind === "error") {
      assert.equal(passing.code, ERROR_FIRST, name);
      if (!ERROR_FIRST) assert.ok(passing.message.endsWith(ERROR_PASSES), name);
    } else {
      assert.equal(passing.code, 0, name);
    }
    assert.equal(passing.next.unreadable, kind === "unreadable");
    assert.ok(streak.message.length <= MAX_LINE, streak.message);
  }
});

Deno.test("judge: an empty answer counts from the output remembered: alive within the limit, silent past it, what was not matched in time named", () => {
  const empty = log("");
  const within = judge(empty, memory({ lastOutput: NOW - 150_000 }), OPTIONS, TARGET);
  assert.deepEqual([within.verdict, within.code], ["alive", 0]);
  assert.equal(within.message, "alive: no output for 2m30s, within the 2h limit");
  assert.equal(within.next.lastOutput, NOW - 150_000);
  const edge = judge(empty, memory({ lastOutput: NOW - LIMIT * 1000 }), OPTIONS, TARGET);
  assert.deepEqual([edge.verdict, edge.message], [
    "alive",
    "alive: no output for 2h, within the 2h limit",
  ]);
  const past = judge(empty, memory({ lastOutput: NOW - (LIMIT + 1) * 1000 }), OPTIONS, TARGET);
  assert.deepEqual([past.verdict, past.code, past.next.failures], ["silent", 1, 1]);
  assert.equal(
    past.message,
    "silent: no output for 2h1s, over the 2h limit (1 failure in a row; the kubelet restarts at 15)",
  );
  // Before the first line, silence counts from the start, and the line says so.
  const start = judge(
    empty,
    memory({ lastOutput: NOW - 960_000, fromStart: true }),
    OPTIONS,
    TARGET,
  );
  assert.equal(start.message, "alive: no output since the start 16m ago, within the 2h limit");
  assert.equal(start.next.fromStart, true);
  // The deadline came while lines were matched: judged on the lines matched, and said.
  const patterns = { ...OPTIONS, match: [/processed/] };
  const scan = { lines: 3, stamped: 3, bytes: 100, outOfTime: true };
  const slow: Answer = { status: 200, body: "", bytes: 100, type: "text/plain", scan };
  const alive = judge(slow, memory(), patterns, TARGET);
  assert.equal(
    alive.message,
    "alive: no matching output for 10m, within the 2h limit (only 3 lines matched within --timeout: raise it or the CPU limit)",
  );
  // Past the limit, what was not matched may hold a line that counts: never claimed silent, as
  // blind (a silent streak goes on, never to its last failure).
  const blind = judge(slow, memory(STREAK), patterns, TARGET);
  assert.deepEqual([blind.verdict, blind.code], ["unknown", 1]);
  assert.equal(
    blind.message,
    "unknown: no line that counts in what was read: only 3 lines matched within --timeout: raise it or the CPU limit; failed, as the silent check before (3 in a row)",
  );
});

Deno.test("judge: stamps with nanoseconds or an offset, from the future, or no date at all", () => {
  // The kubelet may print the runtime's offset and nine digits: remembered in UTC, to the ms.
  const offset = judge(log("2026-11-25T14:59:30.123456789+01:00 hi\n"), memory(), OPTIONS, TARGET);
  assert.deepEqual([offset.verdict, offset.next.lastOutput], [
    "alive",
    Date.parse("2026-11-25T13:59:30.123Z"),
  ]);
  assert.equal(offset.message, "alive: output 30s ago");
  // A remembered time over a minute ahead of the clock (it stepped back) is taken as now.
  const future = judge(log(""), memory({ lastOutput: NOW + 3600_000 }), OPTIONS, TARGET);
  assert.deepEqual([future.verdict, future.next.lastOutput], ["alive", NOW]);
  assert.equal(future.message, "alive: no output for 0s, within the 2h limit");
  // A line stamped after now is remembered as now, never later.
  const ahead = judge(log("2026-11-25T14:05:00Z hi\n"), memory(), OPTIONS, TARGET);
  assert.deepEqual([ahead.next.lastOutput, ahead.message], [NOW, "alive: output 0s ago"]);
  // A stamp no date parses is still a line the kubelet found: output at the read's start.
  const odd = judge(log("2026-11-25T25:00:00Z hi\n"), memory(STREAK), OPTIONS, TARGET);
  assert.deepEqual([odd.verdict, odd.code, odd.next.lastOutput], ["alive", 0, NOW - LIMIT * 1000]);
});
Deno.test("utc writes what toISOString writes, without its memory", () => {
  const random = mulberry32(7);
  const times = [0, 951_782_400_000, 951_868_800_000, 4_102_444_800_000, 1_795_608_000_123];
  for (let i = 0; i < 10_000; i++) times.push(Math.floor(random() * 4e12));
  for (const ms of times) assert.equal(utc(ms), new Date(ms).toISOString(), String(ms));
});

Deno.test("oneLine escapes control characters and cuts to the limit", () => {
  assert.equal(oneLine("a\nb\x1b[31m"), "a\\x0ab\\x1b[31m");
  const long = oneLine("x".repeat(500));
  assert.equal(long.length, MAX_LINE);
  assert.ok(long.endsWith("…"));
});

Deno.test("oneLine escapes C1 controls, NEL, line separators and bidi controls like C0", () => {
  assert.equal(oneLine("a\u009b2Jb\u0085c\u0080\u009f"), "a\\u009b2Jb\\u0085c\\u0080\\u009f");
  assert.equal(
    oneLine("\u2028\u2029\u202a\u202e\u2066\u2069\u200e\u200f\u061c"),
    [
      "\\u2028\\u2029\\u202a\\u202e\\u2066\\u2069\\u200e\\u200f\\u061c",
    ].join(""),
  );
  assert.equal(oneLine("é ü ™ 😀 \u00a0"), "é ü ™ 😀 \u00a0", "printable text is kept");
});

Deno.test("--timeout is at most 5m: a timer cannot hold 597h, and no probe waits that long", () => {
  assert.equal(checkOptions(["--timeout", "5m"]).timeout, 300);
  for (const value of ["597h", "301s", "6m"]) {
    assert.throws(
      () => parseArgs(["--timeout", value]),
      { message: `Invalid --timeout "${value}": at most 5m, and below the probe's timeoutSeconds` },
    );
  }
});

Deno.test("resolveTarget refuses a service host that is not a host name or IP, and URLs with credentials", () => {
  const env = (values: Record<string, string>) => (name: string) => values[name];
  const options = checkOptions(["-n", "shop", "--pod", "web"]);
  const none = () => undefined;
  for (const host of ["evil.example/x", "a@b", "a\\b", "a b", "a#b", "a?b", "[::1]", ""]) {
    const target = () =>
      resolveTarget(
        options,
        env({ KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: "443" }),
        none,
      );
    if (host === "") assert.equal(target().server, "https://kubernetes.default.svc");
    else {assert.throws(
        target,
        /^ConfigError: Invalid KUBERNETES_SERVICE_HOST .*: not a host name or IP address$/,
        host,
      );}
  }
  for (const host of ["10.96.0.1", "fd00::1", "kubernetes.default.svc"]) {
    const server = resolveTarget(
      options,
      env({ KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: "443" }),
      none,
    ).server;
    assert.equal(new URL(server).hostname.replace(/[[\]]/g, ""), host);
  }
  assert.throws(
    () =>
      resolveTarget(
        options,
        env({ KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "1/x" }),
        none,
      ),
    /Invalid KUBERNETES_SERVICE_PORT "1\/x": not a port number/,
  );
  for (
    const server of [
      "https://u:pw@10.0.0.1",
      "https://:pw@10.0.0.1",
      "https://u@10.0.0.1",
      "https://u:pw@[bad",
    ]
  ) {
    assert.throws(
      () => resolveTarget({ ...options, server }, env({}), none),
      (error: Error) =>
        error.message.startsWith("Invalid API server URL") && !error.message.includes("pw"),
      server,
    );
  }
});

Deno.test("compilePattern: linear-time patterns only, at most 256 characters, each refusal one line", () => {
  assert.ok(compilePattern("^processed job \\d+", "--match").test("processed job 7"));
  assert.equal(compilePattern("(a+)+$", "--match").flags, "l");
  for (
    const [pattern, why] of [
      ["(\\w)\\1", "cannot be matched in linear time"],
      ["a(?!b)", "cannot be matched in linear time"],
      ["a{1000}", "cannot be matched in linear time"],
      ["(", "Unterminated group"],
      ["y".repeat(257), "longer than 256 characters"],
    ]
  ) {
    assert.throws(
      () => compilePattern(pattern, "--ignore"),
      (error: Error) =>
        error.message.startsWith("Invalid --ignore ") && error.message.includes(why) &&
        !error.message.includes("\n"),
    );
  }
});

Deno.test("counts stops at its deadline with OutOfTime, and not before", () => {
  const options = { ...ANY_LINE, match: [compilePattern("job", "--match")] };
  assert.equal(counts("job 1", { ...options, deadline: performance.now() + 60_000 }), true);
  assert.throws(() => counts("job 1", { ...options, deadline: performance.now() - 1 }), OutOfTime);
  assert.equal(
    counts("job 1", { ...ANY_LINE, deadline: performance.now() - 1 }),
    true,
    "no pattern, no clock",
  );
});

Deno.test("readLogs in the test server: tail, then since, then limitBytes, with timestamps", () => {
  const now = Date.parse("2026-11-25T12:00:00Z");
  const records = [
    { at: now - 120_000, text: "old" },
    { at: now - 30_000, text: "new" },
    { at: now - 10_000, text: "part", partial: true },
    { at: now - 10_000, text: "ial" },
  ];
  const text = (query: string) =>
    new TextDecoder().decode(readLogs(records, new URLSearchParams(query), now));
  assert.equal(text("sinceSeconds=60"), "new\npartial\n");
  assert.equal(
    text("sinceSeconds=60&timestamps=true&tailLines=3"),
    // The kubelet's prefix is fixed-width (cri-client RFC3339NanoFixed).
    "2026-11-25T11:59:30.000000000Z new\n2026-11-25T11:59:50.000000000Z partial\n",
  );
  assert.equal(text("tailLines=1&sinceSeconds=5"), "");
  assert.equal(text("limitBytes=5"), "old\nn");
  // cri-client's logWriter: the rest of a line whose start `since` dropped comes without a prefix.
  const split = [
    { at: now - 30_000, text: "part", partial: true },
    { at: now - 10_000, text: "ial" },
  ];
  const decoded = (query: string) =>
    new TextDecoder().decode(readLogs(split, new URLSearchParams(query), now));
  assert.equal(decoded("sinceSeconds=20&timestamps=true"), "ial\n");
  assert.equal(decoded("tailLines=1&timestamps=true"), "2026-11-25T11:59:50.000000000Z ial\n");
});

Deno.test("LogScanner: CRLF, the deadline, a bare piece without since, ties, cut and unfinished lines", () => {
  const job = { ...ANY_LINE, match: [/job( \d)?$/] };
  assert.equal(scanLog("2026-11-25T12:00:00Z job\r\n", job).newest?.text, "job");
  const late = scanLog("2026-11-25T12:00:00Z a\n".repeat(3), {
    ...ANY_LINE,
    match: [/x/],
    deadline: performance.now() - 1,
  });
  assert.deepEqual([late.outOfTime, late.lines], [true, 1]);
  const bare = scanLog("job 1\n2026-11-25T12:00:00Z other\n", job);
  assert.equal(bare.newest, undefined, "no since: no split line's rest");
  const tie = scanLog("2026-11-25T12:00:00Z job 1\n2026-11-25T12:00:00Z job 2\n", job);
  assert.equal(tie.newest?.text, "job 2", "the later of two lines with one stamp");
  assert.equal(
    scanLog("2026-11-25T12:00:05Z x\n", ANY_LINE).judgedUntil,
    Date.parse("2026-11-25T12:00:05Z"),
  );
  // A last line without its newline: judged unless the answer was cut there; a cut line whose
  // tested characters all arrived is judged too.
  assert.equal(scanLog("2026-11-25T12:00:00Z job 2", job).newest?.text, "job 2");
  assert.equal(scanLog("2026-11-25T12:00:00Z job 2", job, { cut: true }).newest, undefined);
  const long = new LogScanner({ ...ANY_LINE, match: [/^job/] });
  long.push(`2026-11-25T12:00:00Z job ${"x".repeat(5000)}`);
  assert.ok(long.end(true).newest, "cut, but its first 4096 characters arrived");
});

Deno.test("decide follows its table, row by row", () => {
  const seen: Evidence = { kind: "seen" };
  const line: Evidence = { kind: "seen", at: NOW - 60_000 };
  const lost: Evidence = { kind: "blind", why: "refused" };
  const error: Evidence = { kind: "blind", why: "forbidden", error: true };
  const unreadable: Evidence = { kind: "unreadable", why: 'the kubelet cannot read the log: "x"' };
  const F = SETTINGS.failureThreshold;
  const over = `over the ${formatDuration(LIMIT)} limit`;
  const rows: Array<{
    row: string;
    evidence: Evidence;
    memory: Partial<Memory>;
    verdict: string;
    code: number;
    failures: number;
    blind: number;
    message: string;
  }> = [
    {
      row: "seen, silence ≤ limit: a line",
      evidence: line,
      memory: STREAK,
      verdict: "alive",
      code: 0,
      failures: 0,
      blind: 0,
      message: "alive: output 1m ago",
    },
    {
      row: "seen, silence ≤ limit: the limit itself",
      evidence: seen,
      memory: { lastOutput: NOW - LIMIT * 1000, failures: 3, blind: 2 },
      verdict: "alive",
      code: 0,
      failures: 0,
      blind: 0,
      message: "alive: no output for 2h, within the 2h limit",
    },
    {
      row: "seen, silence > limit",
      evidence: seen,
      memory: { lastOutput: NOW - LIMIT * 1000 - 1000, failures: 3, blind: 2 },
      verdict: "silent",
      code: 1,
      failures: 4,
      blind: 0,
      message:
        `silent: no output for 2h1s, ${over} (4 failures in a row; the kubelet restarts at 15)`,
    },
    {
      row: "blind (lost), the last answered check silent",
      evidence: lost,
      memory: STREAK,
      verdict: "unknown",
      code: 1,
      failures: 3,
      blind: 1,
      message: "unknown: refused; failed, as the silent check before (3 in a row)",
    },
    {
      row: "blind (error), the last answered check silent, blind F − 1 in a row",
      evidence: error,
      memory: { ...STREAK, blind: F - 1 },
      verdict: "error",
      code: 2,
      failures: 3,
      blind: F,
      message: "error: forbidden; failed, as the silent check before (3 in a row)",
    },
    {
      row: "blind, the last answered check silent, but the F-th failure: passes",
      evidence: lost,
      memory: { ...STREAK, failures: F - 1 },
      verdict: "unknown",
      code: 0,
      failures: 0,
      blind: 1,
      message:
        `unknown: refused; passed: a check that cannot see the log never makes failure ${F} in a row`,
    },
    {
      row: "blind, the last answered check silent, but F blind in a row: otherwise",
      evidence: lost,
      memory: { ...STREAK, blind: F },
      verdict: "unknown",
      code: 0,
      failures: 0,
      blind: F + 1,
      message: `unknown: refused; passed, as the check before (last output ${
        formatDuration(LIMIT + 240)
      } ago)`,
    },
    {
      row: "blind (lost) otherwise",
      evidence: lost,
      memory: {},
      verdict: "unknown",
      code: 0,
      failures: 0,
      blind: 1,
      message: "unknown: refused; passed, as the check before (last output 10m ago)",
    },
    {
      row: "unreadable, the check before unreadable too: as seen, within the limit",
      evidence: unreadable,
      memory: { unreadable: true },
      verdict: "alive",
      code: 0,
      failures: 0,
      blind: 0,
      message:
        'alive: no output for 10m, within the 2h limit (the kubelet cannot read the log: "x", twice in a row)',
    },
    {
      row: "unreadable, the check before unreadable too: as seen, past the limit",
      evidence: unreadable,
      memory: { ...STREAK, unreadable: true },
      verdict: "silent",
      code: 1,
      failures: 3,
      blind: 0,
      message: `silent: no output for ${
        formatDuration(LIMIT + 240)
      }, ${over} (3 failures in a row; the kubelet restarts at 15); the kubelet cannot read the log: "x", twice in a row`,
    },
    {
      row: "unreadable otherwise: as blind (lost), after a pass",
      evidence: unreadable,
      memory: {},
      verdict: "unknown",
      code: 0,
      failures: 0,
      blind: 1,
      message:
        'unknown: the kubelet cannot read the log: "x" (once; twice in a row: an empty log); passed, as the check before (last output 10m ago)',
    },
    {
      row: "unreadable otherwise: as blind (lost), in a silent streak",
      evidence: unreadable,
      memory: STREAK,
      verdict: "unknown",
      code: 1,
      failures: 3,
      blind: 1,
      message:
        'unknown: the kubelet cannot read the log: "x" (once; twice in a row: an empty log); failed, as the silent check before (3 in a row)',
    },
  ];
  // blind, error, otherwise: one check of a blind run in ERROR_CADENCE fails, never the F-th failure.
  for (const [blind, code] of [...ERROR_CODES].map(Number).entries()) {
    rows.push({
      row: `blind (error) otherwise, ${blind} blind before`,
      evidence: error,
      memory: { blind },
      verdict: "error",
      code,
      failures: code ? 1 : 0,
      blind: blind + 1,
      message: code ? "error: forbidden" : `error: forbidden${ERROR_PASSES}`,
    });
  }
  for (const { row, evidence, memory: remembered, ...expected } of rows) {
    const outcome = decide(evidence, memory(remembered), OPTIONS);
    assert.deepEqual(
      {
        verdict: outcome.verdict,
        code: outcome.code,
        failures: outcome.next.failures,
        blind: outcome.next.blind,
        message: outcome.message,
      },
      expected,
      row,
    );
    assert.equal(outcome.next.unreadable, evidence.kind === "unreadable", row);
    // Blind and unreadable checks keep where the last read ended (nothing was read, so the next
    // read starts there); answered ones read to now.
    const read = evidence.kind === "seen";
    assert.equal(outcome.next.seenUntil, read ? NOW : memory(remembered).seenUntil, row);
  }
  // The misconfiguration's F-th failure in a row never comes: it passes instead.
  const last = decide(error, memory({ failures: F - 1, blind: ERROR_CODES.indexOf("2") }), OPTIONS);
  assert.deepEqual([last.code, last.next.failures], [0, 0]);
});

Deno.test("decide: a second probe's check in the same period gives its verdict, never fails for being blind, and leaves the counts", () => {
  const second = (evidence: Evidence, more: Partial<Memory>) =>
    decide(evidence, memory({ ...more, counted: false }), OPTIONS);
  const silent = second({ kind: "seen" }, { ...STREAK, blind: 1 });
  assert.deepEqual([silent.verdict, silent.code, silent.next.failures, silent.next.blind], [
    "silent",
    1,
    2,
    1,
  ]);
  assert.equal(silent.next.seenUntil, NOW, "it read the log: where the read ended counts");
  for (
    const evidence of [{ kind: "blind", why: "refused" }, {
      kind: "blind",
      why: "forbidden",
      error: true,
    }] as Evidence[]
  ) {
    for (const more of [STREAK, {}, { blind: 2 }, { failures: 14 }]) {
      const outcome = second(evidence, more);
      const name = `${JSON.stringify(evidence)} ${JSON.stringify(more)}`;
      assert.equal(outcome.code, 0, name);
      assert.doesNotMatch(outcome.message, /failed/, name);
      if (decide(evidence, memory(more), OPTIONS).code) {
        assert.match(
          outcome.message,
          /; passed: not counted, the check before was this period's$/,
          name,
        );
      }
      assert.deepEqual([outcome.next.failures, outcome.next.blind], [
        memory(more).failures,
        memory(more).blind,
      ], name);
    }
  }
  // Nor does it spend the first probe's move off blind checks (readiness after liveness).
  const after = second({ kind: "seen" }, {
    lastOutput: NOW - 120_000 - (LIMIT + 60) * 1000,
    seenUntil: NOW - 120_000,
    blind: 1,
    failures: 0,
  });
  assert.deepEqual([after.code, after.next.passedLast], [0, undefined]);
  const alive = second({ kind: "seen", at: NOW - 1000 }, STREAK);
  assert.deepEqual([alive.code, alive.next.failures, alive.next.lastOutput], [0, 2, NOW - 1000]);
});

Deno.test("recall: with --period, a check within 3/4 of a period of the last counted does not count, and a gap counts the checks the kubelet killed", () => {
  const counter = { ...freshCounter("-", NOW - 3600_000), countedAt: NOW, failures: 3 };
  delete counter.missing;
  const period = { ...SETTINGS, periodGiven: true };
  const at = (seconds: number, options = period) => recall(counter, NOW + seconds * 1000, options);
  assert.deepEqual([at(44).counted, at(44).missed], [false, 0]);
  assert.deepEqual([at(45).counted, at(45).missed], [true, 0]);
  assert.deepEqual([at(60).counted, at(60).missed], [true, 0]);
  assert.deepEqual([at(240).counted, at(240).missed], [true, 3], "3 checks killed between");
  assert.deepEqual([at(-30).counted, at(-30).missed], [true, 0], "the clock stepped back");
  // Without --period nothing tells a second probe or a killed check apart: every check counts.
  const unknown = { ...SETTINGS, periodGiven: false };
  assert.deepEqual([at(10, unknown).counted, at(240, unknown).missed], [true, 0]);
  // A gap longer than the threshold was not all failures: at most the rest of it.
  assert.equal(at(86400).missed, SETTINGS.failureThreshold - 1 - counter.failures);
});

Deno.test("decide at its edges: the limit to the millisecond, clock slack, an older line, a line before the start, the earliest restart, killed checks", () => {
  const seen: Evidence = { kind: "seen" };
  const at = (ms: number) => decide(seen, memory({ lastOutput: NOW - ms }), OPTIONS);
  assert.equal(at(LIMIT * 1000).code, 0);
  assert.equal(at(LIMIT * 1000 + 1).code, 1);
  // A remembered time ahead of the clock: kept within a minute, taken as now beyond it.
  assert.equal(at(-60_000).next.lastOutput, NOW + 60_000);
  assert.equal(at(-60_001).next.lastOutput, NOW);
  assert.equal(at(-60_001).message, "alive: no output for 0s, within the 2h limit");
  // An older line never replaces a newer one; a line older than the start is not the first.
  const older = decide(
    { kind: "seen", at: NOW - 30_000 },
    memory({ lastOutput: NOW - 10_000 }),
    OPTIONS,
  );
  assert.equal(older.next.lastOutput, NOW - 10_000);
  const before = decide(
    { kind: "seen", at: NOW - 700_000 },
    memory({ lastOutput: NOW - 600_000, fromStart: true }),
    OPTIONS,
  );
  assert.deepEqual([before.next.lastOutput, before.next.fromStart], [NOW - 600_000, true]);
  const first = decide({ kind: "seen", at: NOW - 5000 }, memory({ fromStart: true }), OPTIONS);
  assert.deepEqual([first.next.lastOutput, first.next.fromStart], [NOW - 5000, false]);
  // The 15th failure in a row never comes before plan's minimum: a run that began early passes.
  const { earliest } = restartAfter(SETTINGS);
  const early = decide(
    seen,
    memory({ lastOutput: NOW - (LIMIT + 60) * 1000, failures: SETTINGS.failureThreshold - 1 }),
    OPTIONS,
  );
  assert.deepEqual([early.verdict, early.code, early.next.failures], ["silent", 0, 0]);
  assert.equal(
    early.message,
    `silent: no output for 2h1m, over the 2h limit; passed: failure 15 in a row would come before ${
      formatDuration(earliest)
    } of silence`,
  );
  const due = decide(
    seen,
    memory({ lastOutput: NOW - earliest * 1000 - 1, failures: SETTINGS.failureThreshold - 1 }),
    OPTIONS,
  );
  assert.deepEqual([due.code, due.next.failures], [1, SETTINGS.failureThreshold]);
  // Checks the kubelet killed count in its run, as this probe counts it.
  const killed = decide(seen, memory({ ...STREAK, missed: 2 }), OPTIONS);
  assert.deepEqual([killed.code, killed.next.failures], [1, 5]);
  assert.match(killed.message, /\(5 failures in a row; the kubelet restarts at 15\)$/);
  // Without --failure-threshold the kubelet's default, 15, is the threshold the line names.
  assert.equal(checkOptions().failureThreshold, 15);
});
Deno.test("parseCounter reads back what formatCounter writes: one short line of this version", () => {
  const start = Date.parse("2026-11-25T12:00:00Z");
  const full: Counter = {
    instance: "1:2:mi3x8k",
    lastOutput: start + 500,
    fromStart: false,
    seenUntil: start + 180_000,
    countedAt: start + 180_000,
    failures: 2,
    blind: 1,
    unreadable: true,
  };
  const text = formatCounter(full);
  assert.equal(
    text,
    "log-probe/4 1:2:mi3x8k 2026-11-25T12:00:00.500Z 2026-11-25T12:03:00.000Z 2026-11-25T12:03:00.000Z 2 1 1\n",
  );
  assert.deepEqual(parseCounter(text, full.instance, start), full);
  assert.deepEqual(parseCounter(text.trimEnd(), full.instance, start), full, "no newline");
  assert.ok(text.length < 256);
  // The passes at the kubelet's last failure in this silence ride in the flags, 4 each.
  const passed: Counter = { ...full, passedLast: 3 };
  assert.match(formatCounter(passed), / 2 1 13\n$/);
  assert.deepEqual(parseCounter(formatCounter(passed), full.instance, start), passed);
  // 0.4.0's line (flags 0 to 3) reads as none counted.
  assert.equal(parseCounter(text, full.instance, start).passedLast, undefined);
  // Before the first line: the start, no read yet, no check counted yet.
  const fresh: Counter = { ...freshCounter("1:2:mi3x8k", start, "n") };
  delete fresh.note;
  assert.equal(formatCounter(fresh), "log-probe/4 1:2:mi3x8k 2026-11-25T12:00:00.000Z - - 0 0 2\n");
  assert.deepEqual(parseCounter(formatCounter(fresh), fresh.instance, start + 1), fresh);
  // No file yet: a fresh counter from the start, and no note.
  assert.deepEqual(parseCounter(undefined, "1:2", start), {
    instance: "1:2",
    lastOutput: start,
    fromStart: true,
    failures: 0,
    blind: 0,
    unreadable: false,
    missing: true,
  });
});

Deno.test("parseCounter: garbage, another version's line (0.3.0's too) and another instance's start afresh with a note", () => {
  const start = Date.parse("2026-11-25T12:00:00Z");
  const afresh = (text: string, instance = "1:2:x") => {
    const counter = parseCounter(text, instance, start);
    assert.deepEqual(
      [counter.lastOutput, counter.fromStart, counter.failures, counter.blind, counter.seenUntil],
      [start, true, 0, 0, undefined],
      JSON.stringify(text),
    );
    return counter.note;
  };
  const good = "log-probe/4 1:2:x 2026-11-25T12:30:00.000Z - - 3 0 0";
  for (
    const garbage of [
      "",
      "abc",
      "\x00\x01garbage",
      "log-probe/4",
      "log-probe/4 1:2:x - - - 0 0 0", // no last output
      good.replace(" 3 0 0", " 3 0 16"), // flags 0 to 15
      good.replace(" 3 0 0", " 10000 0 0"), // counts up to 9999
      good.replace(" 3 0 0", " -1 0 0"),
      good.replace(" 3 0 0", " 3 0"),
      good.replace("2026-11-25T12:30:00.000Z", "2026-13-45T99:00:00.000Z"),
      good.replace("2026-11-25T12:30:00.000Z", "2026-11-25T12:30:00Z"),
      good.replace("log-probe/4", "log-probe/5"),
      `${good} extra`,
      `${good}\n${good}\n`,
      // 0.3.0's line: count, instance, last output, failures, read until, counted at, flags, errors
      "14 1:2:x 2026-11-25T12:30:00.000Z 14 2026-11-25T12:31:00.000Z 2026-11-25T12:31:00.000Z 2 0\n",
      // 0.2.0's and 0.1.0's
      "0 1:2:x 2026-11-25T12:00:00.500Z pass\n",
      "7 1:2:x\n",
      // a version 3 line in this format
      "log-probe/3 1:2:x 2026-11-25T12:30:00.000Z - - 3 0 0\n",
    ]
  ) {
    assert.equal(
      afresh(garbage),
      "counter held garbage or another version's line",
      JSON.stringify(garbage),
    );
  }
  assert.equal(afresh(good, "1:3:y"), "counter of a previous container instance discarded");
  // No termination-message file, now or then: nothing tells instances apart, so the line is kept.
  assert.equal(parseCounter(good, "-", start).failures, 3);
  assert.equal(parseCounter(good.replace("1:2:x", "-"), "1:2:x", start).failures, 3);
  assert.equal(parseCounter(good, "1:2:x", start).note, undefined);
});

Deno.test("formatCounter caps counts at 9999, and parseCounter keeps a last output from the future for decide to judge", () => {
  const counter: Counter = {
    instance: "-",
    lastOutput: NOW,
    fromStart: false,
    failures: 123456,
    blind: 10000,
    unreadable: false,
  };
  const text = formatCounter(counter);
  assert.equal(text, "log-probe/4 - 2026-11-25T14:00:00.000Z - - 9999 9999 0\n");
  assert.deepEqual([parseCounter(text, "-", 0).failures, parseCounter(text, "-", 0).blind], [
    9999,
    9999,
  ]);
  // Written by a clock that has since stepped back an hour: read as written …
  const future = formatCounter({ ...counter, lastOutput: NOW + 3600_000, failures: 0, blind: 0 });
  const read = parseCounter(future, "-", NOW - 600_000);
  assert.equal(read.lastOutput, NOW + 3600_000);
  // … and judged as output now: never a silence of minus an hour, never a restart for it.
  const outcome = decide({ kind: "seen" }, { ...read, counted: true, now: NOW }, OPTIONS);
  assert.deepEqual([outcome.code, outcome.silence, outcome.next.lastOutput], [0, 0, NOW]);
});
/**
 * The kubelet around decide: a check every period from `firstCheck` (ms after the last output at
 * NOW), each seeing the log; the silence (s) at the failureThreshold-th failure in a row.
 */
function restartSilence(settings: PlanOptions, firstCheck: number): number {
  const options = { ...settings, ...ANY_LINE };
  let remembered: Omit<Memory, "counted" | "now"> = {
    lastOutput: NOW,
    fromStart: false,
    failures: 0,
    blind: 0,
    unreadable: false,
  };
  let run = 0;
  for (let now = NOW + firstCheck;; now += settings.period * 1000) {
    const outcome = decide({ kind: "seen" }, { ...remembered, counted: true, now }, options);
    remembered = outcome.next;
    run = outcome.code ? run + 1 : 0;
    if (run === settings.failureThreshold) return (now - NOW) / 1000;
  }
}

Deno.test("restartAfter: the restart comes after (limit + (F − 1)·period, limit + F·period] of silence, as the kubelet plays decide at every phase", () => {
  assert.deepEqual(restartAfter(SETTINGS), { limit: 7200, earliest: 8040, latest: 8100 });
  const cases: PlanOptions[] = [
    SETTINGS,
    { window: 60, growth: "fixed", period: 60, failureThreshold: 3 },
    { window: 30, growth: "linear", period: 45, failureThreshold: 5, maxWindow: 100 },
    { window: 10, growth: "exponential", period: 10, failureThreshold: 1 },
    { ...SETTINGS, period: 10 },
  ];
  for (const settings of cases) {
    const { limit, earliest, latest } = restartAfter(settings);
    const name = JSON.stringify(settings);
    assert.equal(limit, limitOf(settings), name);
    assert.equal(earliest, limit + (settings.failureThreshold - 1) * settings.period, name);
    assert.equal(latest, earliest + settings.period, name);
    const period = settings.period * 1000;
    const phases = Array.from({ length: 12 }, (_, i) => Math.ceil((i + 1) * period / 12));
    // and the phases where a check falls on the limit itself (the latest restart) or just after
    // it (the earliest)
    phases.push(1, period - 1, (limit * 1000) % period || period, (limit * 1000 + 1) % period);
    const silences = phases.map((phase) => restartSilence(settings, phase));
    for (const silence of silences) {
      assert.ok(silence > earliest && silence <= latest, `${name}: ${silence}s`);
    }
    assert.equal(Math.max(...silences), latest, name);
    assert.ok(Math.min(...silences) <= earliest + 0.001, name);
  }
});

Deno.test("renderPlan says the limit and the restart as restartAfter computes them", () => {
  const text = renderPlan(SETTINGS);
  const { limit, earliest, latest } = restartAfter(SETTINGS);
  assert.match(text, /^Limit: 2h, the window the schedule reaches at check 15 /);
  assert.ok(text.includes("1m, 3m, 6m, 10m, …, 1h45m, 2h"), text);
  assert.ok(
    text.includes(`printed nothing for more than ${formatDuration(limit)}, counted from its start`),
  );
  assert.ok(
    text.includes(
      `restarts it after ${formatDuration(earliest)} to ${formatDuration(latest)} of silence`,
    ),
  );
  assert.equal(formatDuration(earliest), "2h14m");
  assert.ok(text.includes(`prints at least every ${formatDuration(earliest)} is never restarted`));
  assert.ok(text.split("\n").every((line) => line.length <= 200));
});

/** A check the kubelet killed at timeoutSeconds: a failure it counts, that the probe never saw. */
const KILLED = { kind: "killed" } as const;

/**
 * Plays the kubelet over a sequence of evidence with decide, a check a period: every exit (k for
 * a killed check), the kubelet's longest run of failures, and the restart.
 */
function kubelet(
  sequence: Array<(Evidence & { counted?: boolean }) | typeof KILLED>,
  start: Partial<Memory> = {},
  settings: PlanOptions = SETTINGS,
): { codes: string; restartAt?: number; silence?: number; longestRun: number } {
  const options = { ...settings, ...ANY_LINE };
  let remembered: Omit<Memory, "counted" | "now"> = {
    lastOutput: NOW,
    fromStart: true,
    failures: 0,
    blind: 0,
    unreadable: false,
    ...start,
  };
  let codes = "";
  let run = 0;
  let longestRun = 0;
  let missed = 0;
  for (const [i, step] of sequence.entries()) {
    const now = NOW + (i + 1) * settings.period * 1000;
    let failed = true;
    if (step.kind === "killed") {
      codes += "k";
      missed++;
    } else {
      const { counted = true, ...evidence } = step;
      const outcome = decide(
        evidence as Evidence,
        { ...remembered, counted, now, missed },
        options,
      );
      codes += outcome.code;
      failed = outcome.code !== 0;
      remembered = outcome.next;
      if (counted) missed = 0;
    }
    run = failed ? run + 1 : 0;
    longestRun = Math.max(longestRun, run);
    if (run === settings.failureThreshold) {
      return { codes, restartAt: i, silence: (now - remembered.lastOutput) / 1000, longestRun };
    }
  }
  return { codes, longestRun };
}

const repeat = <T>(n: number, item: T): T[] => Array.from({ length: n }, () => item);

Deno.test("decide over a life: errors and lost answers never make a restart, and never bring one before plan's minimum", () => {
  const error: Evidence = { kind: "blind", why: "forbidden", error: true };
  const lost: Evidence = { kind: "blind", why: "refused" };
  const silence: Evidence = { kind: "seen" };
  const { earliest } = restartAfter(SETTINGS);
  // A misconfiguration on a container that printed: loud, never more than two failures in a row.
  const forever = kubelet(repeat(300, error));
  assert.equal(forever.restartAt, undefined);
  assert.equal(forever.codes.slice(0, ERROR_CODES.length), ERROR_CODES);
  assert.ok(forever.longestRun <= 2, forever.codes);
  assert.equal(forever.codes.replaceAll("0", "").length, Math.ceil(300 / 3), "one check in three");
  // … counted as the kubelet counts, with checks it killed anywhere between.
  for (let every = 2; every <= 7; every++) {
    for (let offset = 0; offset < every; offset++) {
      const steps = Array.from({ length: 120 }, (_, i) => i % every === offset ? KILLED : error);
      const killed = kubelet(steps);
      assert.equal(killed.restartAt, undefined, killed.codes);
      assert.ok(killed.longestRun <= 2, `${every}/${offset}: ${killed.codes}`);
      // still loud: a failing line (or the kubelet's own, for a killed check) every third check
      assert.ok(!killed.codes.includes("000"), `${every}/${offset}: ${killed.codes}`);
    }
  }
  // A misconfiguration, then an outage: a container last seen alive is never failed.
  const outage = kubelet([...repeat(5, error), ...repeat(300, lost)]);
  assert.equal(outage.restartAt, undefined);
  assert.equal(outage.codes.slice(5), "0".repeat(300));
  // An outage all through a silent streak: the streak goes on, but no restart while blind.
  const hung = { lastOutput: NOW - (LIMIT + 60) * 1000, fromStart: false };
  const blindStreak = kubelet([silence, ...repeat(300, lost)], hung);
  assert.equal(blindStreak.restartAt, undefined, blindStreak.codes);
  assert.ok(blindStreak.codes.startsWith("1".repeat(14) + "0"), blindStreak.codes);
  // … and the restart comes once the log is seen again, silent.
  const seenAgain = kubelet([silence, ...repeat(20, lost), ...repeat(20, silence)], hung);
  assert.ok(seenAgain.restartAt! >= 21 && seenAgain.silence! > earliest, seenAgain.codes);
  // Silence and errors taking turns (an API server replica with stale keys answers 401): a hung
  // container is restarted at the threshold of the default settings.
  const turns = kubelet(repeat(100, [silence, error]).flat(), hung);
  assert.equal(turns.restartAt, SETTINGS.failureThreshold - 1, turns.codes);
  // Errors, then silence from the start: never restarted before plan's minimum from the start.
  for (const errors of [1, 2, 3, 5, 14]) {
    const after = kubelet([...repeat(errors, error), ...repeat(200, silence)]);
    assert.ok(
      after.restartAt !== undefined && after.silence! > earliest,
      `${errors}: ${after.codes}`,
    );
  }
  // Errors that fail just before the silence passes the limit, then silence: the kubelet's
  // count begins early, the restart does not.
  const quiet = LIMIT / SETTINGS.period; // checks until the silence reaches the limit
  for (let end = quiet - 3; end <= quiet + 3; end++) {
    const sequence: Evidence[] = repeat(200, silence);
    sequence.splice(end - 3, 3, error, error, error);
    const early = kubelet(sequence);
    assert.ok(early.restartAt !== undefined && early.silence! > earliest, `${end}: ${early.codes}`);
  }
  // Two probes on one counter: a check that does not count never fails for an error.
  const shared = kubelet(repeat(150, [error, { ...error, counted: false }]).flat());
  assert.equal(shared.restartAt, undefined, shared.codes);
  assert.ok(shared.longestRun <= 2, shared.codes);
});
Deno.test("evidenceOf: 408 is lost; a cut answer's unfinished line is not judged; a stamp no date parses counts at the read's start", () => {
  const job = { ...ANY_LINE, match: [/job/] };
  assert.deepEqual(evidenceOf({ status: 408, body: "{}", bytes: 2 }, job, TARGET), {
    kind: "blind",
    why: "API server answered 408 {}",
  });
  const body = "2026-11-25T12:00:00Z other\n2026-11-25T12:00:01Z job";
  const cut = { status: 200, body, bytes: body.length, limit: body.length, type: "text/plain" };
  assert.deepEqual(evidenceOf(cut, job, TARGET), { kind: "seen" });
  assert.deepEqual(evidenceOf({ ...cut, limit: body.length + 1 }, job, TARGET), {
    kind: "seen",
    at: Date.parse("2026-11-25T12:00:01Z"),
  });
  const since = Date.parse("2026-11-25T12:00:00Z");
  assert.deepEqual(evidenceOf(log("2026-11-25T99:00:00Z job\n"), job, TARGET, since), {
    kind: "seen",
    at: since,
  });
  // An empty 200 is an answered read with nothing in it, not a lost answer.
  assert.deepEqual(evidenceOf(log(""), ANY_LINE, TARGET), { kind: "seen" });
});
// ---------------------------------------------------------------------------
// The real probe, as a subprocess, against the HTTPS stand-in

const clusters: Cluster[] = [];
/** A started cluster that stops, its folders removed, when the test ends, passed or failed. */
async function cluster(
  options?: { containers?: string[] },
): Promise<Cluster & AsyncDisposable> {
  const started = await Cluster.start(options);
  clusters.push(started);
  return Object.assign(started, { [Symbol.asyncDispose]: () => started.stop() });
}

/**
 * A duration as a probe run prints it: its clock starts at the stand-in's virtual "now" and runs
 * on while Deno starts, so a second or two more (or, between two runs, one less) is the same.
 */
function near(seconds: number): string {
  return `(?:${[-1, 0, 1, 2].map((d) => formatDuration(Math.max(0, seconds + d))).join("|")})`;
}

/** The counter a check at the stand-in's "now" leaves: it read to now and counted now. */
function counted(
  c: Cluster,
  lastOutput: number,
  more: Parameters<Cluster["counterLine"]>[1] = {},
): string {
  return c.counterLine(lastOutput, { seenUntil: c.server.now, countedAt: c.server.now, ...more });
}

const LOG_QUERY = `sinceSeconds=${LIMIT}&tailLines=1&timestamps=true&limitBytes=${LIMIT_BYTES}`;

Deno.test("a container that printed within the limit is alive: one short request, and the counter remembers the line", async () => {
  await using c = await cluster();
  const start = c.server.now;
  c.server.now += (LIMIT + 1200) * 1000;
  // Three silent checks in a row before, the last one 10 minutes ago.
  const before = c.server.now - 600_000;
  await Deno.writeTextFile(
    c.stateFile,
    c.counterLine(start, { fromStart: true, seenUntil: before, countedAt: before, failures: 3 }),
  );
  const at = c.server.now - 500_000;
  c.server.log(c.pod, "processed job 42", "app", at);
  const run = await c.run();
  assert.match(run.stdout, new RegExp(`^alive: output ${near(500)} ago\n$`));
  assert.equal(run.code, 0);
  assert.equal(run.stderr, "");
  assert.equal(await c.counterAt(c.server.now), counted(c, at));
  assert.equal(c.server.seen.length, 1);
  const seen = c.server.seen[0];
  assert.equal(seen.path, "/api/v1/namespaces/shop/pods/worker-7d9f/log");
  assert.equal(seen.query.toString(), LOG_QUERY);
});

Deno.test("silent only past the limit: alive within it, counted from the start before the first line", async () => {
  await using c = await cluster();
  const start = c.server.now;
  // A slow start: nothing printed for 16 minutes is well within the limit.
  c.server.now = start + 16 * 60_000;
  const slow = await c.run();
  assert.equal(slow.code, 0);
  assert.match(
    slow.stdout,
    new RegExp(`^alive: no output since the start ${near(960)} ago, within the 2h limit\n$`),
  );
  assert.equal(c.server.seen.at(-1)!.query.toString(), LOG_QUERY);
  const at = start + 20 * 60_000;
  c.server.log(c.pod, "last words", "app", at);
  c.server.now = at + 60_000;
  const seen = await c.run();
  assert.equal(seen.code, 0);
  assert.match(seen.stdout, new RegExp(`^alive: output ${near(60)} ago\n$`));
  // A minute past the limit after that line: silent, the first failure of the kubelet's 15.
  c.server.now = at + (LIMIT + 60) * 1000;
  const silent = await c.run();
  assert.equal(silent.code, 1);
  assert.match(
    silent.stdout,
    new RegExp(
      `^silent: no output for ${
        near(LIMIT + 60)
      }, over the 2h limit \\(1 failure in a row; the kubelet restarts at 15\\)\n$`,
    ),
  );
  assert.equal(await c.counterAt(c.server.now), counted(c, at, { failures: 1 }));
  c.server.now += 60_000;
  const again = await c.run();
  assert.equal(again.code, 1);
  assert.match(again.stdout, /\(2 failures in a row; the kubelet restarts at 15\)\n$/);
});

Deno.test("a container silent since its start fails once the limit has passed since the start, on its first check", async () => {
  await using c = await cluster();
  const start = c.server.now;
  c.server.now += (LIMIT + 60) * 1000;
  const run = await c.run();
  assert.equal(run.code, 1);
  assert.match(
    run.stdout,
    new RegExp(
      `^silent: no output since the start ${
        near(LIMIT + 60)
      } ago, over the 2h limit \\(1 failure in a row; the kubelet restarts at 15\\)\n$`,
    ),
  );
  assert.equal(
    await c.counterAt(c.server.now),
    counted(c, start, { fromStart: true, failures: 1 }),
  );
});

Deno.test("without a termination-message file the first check stands for the start", async () => {
  await using c = await cluster();
  const args = ["--service-account-dir", c.paths.serviceAccountDir, "--state-file", c.stateFile];
  c.server.now += 3 * 3600_000; // the container started three hours ago: the probe cannot know
  const first = await c.run(args, { bare: true });
  assert.equal(first.code, 0);
  assert.match(
    first.stdout,
    new RegExp(`^alive: no output since the start ${near(0)} ago, within the 2h limit\n$`),
  );
  assert.match((await c.counter())!, /^log-probe\/4 - \S+ \S+ \S+ 0 0 2\n$/);
  c.server.now += (LIMIT + 60) * 1000;
  const later = await c.run(args, { bare: true });
  assert.equal(later.code, 1);
  assert.match(
    later.stdout,
    new RegExp(`^silent: no output since the start ${near(LIMIT + 60)} ago`),
  );
});

Deno.test("a blank line is output: the only line within the limit counts as alive", async () => {
  await using c = await cluster();
  c.server.now += (LIMIT + 600) * 1000;
  c.server.log(c.pod, "");
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.match(run.stdout, new RegExp(`^alive: output ${near(0)} ago\n$`));
});

Deno.test("50 MB of output within the limit: the server sends at most one short line", async () => {
  await using c = await cluster();
  c.server.now += 3600_000;
  const line = `${"x".repeat(99)}`;
  const records = c.pod.containers.get("app")!;
  for (let i = 0; i < 500_000; i++) {
    records.push({ at: c.server.now - 30_000 + i / 100, text: line });
  }
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^alive: output \S+ ago\n$/);
  assert.equal(c.server.seen.length, 1);
  const seen = c.server.seen[0];
  assert.equal(seen.query.toString(), LOG_QUERY);
  assert.ok(seen.bytes <= LIMIT_BYTES, `${seen.bytes} bytes`);
  assert.ok(seen.bytes > 20);
});

/** A port nothing listens on. */
function closedPort(): string {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  return `127.0.0.1:${port}`;
}

Deno.test("refused connections: a silent streak goes on failing; after a pass the check passes", async () => {
  await using c = await cluster();
  c.server.now += 4 * 3600_000;
  const now = c.server.now;
  const read = { seenUntil: now - 60_000, countedAt: now - 60_000 };
  const silentSince = now - (LIMIT + 240) * 1000;
  const streak = c.counterLine(silentSince, { ...read, failures: 2 });
  const passing = c.counterLine(now - 600_000, read);
  const server = closedPort();
  await Deno.writeTextFile(c.stateFile, streak);
  const failed = await c.run([], { server });
  assert.equal(failed.code, 1);
  assert.match(
    failed.stdout,
    /^unknown: API server unreachable: .*Connection refused; failed, as the silent check before \(3 in a row\)\n$/,
  );
  // Where the last answered read ended stays: a blind check read nothing.
  assert.equal(
    await c.counterAt(now),
    c.counterLine(silentSince, { ...read, countedAt: now, failures: 3, blind: 1 }),
  );
  await Deno.writeTextFile(c.stateFile, passing);
  const passed = await c.run([], { server });
  assert.equal(passed.code, 0);
  assert.match(
    passed.stdout,
    new RegExp(
      `^unknown: API server unreachable: .*Connection refused; passed, as the check before \\(last output ${
        near(600)
      } ago\\)\n$`,
    ),
  );
  assert.equal(
    await c.counterAt(now),
    c.counterLine(now - 600_000, { ...read, countedAt: now, blind: 1 }),
  );
  // 0.3.0's --on-api-error still runs, and changes nothing but a note.
  await Deno.writeTextFile(c.stateFile, passing);
  const retired = await c.run(["--on-api-error=fail"], { server });
  assert.equal(retired.code, 0);
  assert.match(
    retired.stdout,
    /; passed, as the check before .*; --on-api-error is no longer used\n$/,
  );
  await Deno.writeTextFile(c.stateFile, streak);
  const ignoring = await c.run(["--on-api-error", "ignore"], { server });
  assert.equal(ignoring.code, 1);
  assert.match(
    ignoring.stdout,
    /; failed, as the silent check before \(3 in a row\); --on-api-error is no longer used\n$/,
  );
});

Deno.test("a connection closed mid-handshake, and a DNS failure, are unknown and pass", async () => {
  await using c = await cluster();
  const start = c.server.now;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closer = (async () => {
    for await (const conn of listener) conn.close();
  })();
  const host = `127.0.0.1:${listener.addr.port}`;
  const closed = await c.run([], { server: host });
  assert.equal(closed.code, 0);
  assert.match(
    closed.stdout,
    /^unknown: API server unreachable: .*(eof|reset|closed).*; passed, as the check before \(last output \S+ ago\)\n$/i,
  );
  listener.close();
  await closer.catch(() => {});
  const dns = await c.run([], { server: "no-such-host.invalid" });
  assert.equal(dns.code, 0);
  assert.match(
    dns.stdout,
    /^unknown: API server unreachable: dns error.*; passed, as the check before/,
  );
  assert.equal(
    await c.counterAt(c.server.now),
    c.counterLine(start, { fromStart: true, countedAt: c.server.now, blind: 2 }),
  );
});

Deno.test("an API server that never answers: the probe gives up on its own deadline, unknown", async () => {
  await using c = await cluster();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const holder = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const host = `127.0.0.1:${listener.addr.port}`;
  const run = await c.run(["--timeout", "1s"], { server: host });
  assert.equal(run.code, 0);
  assert.match(
    run.stdout,
    new RegExp(
      `^unknown: no answer from the API server within 1s; passed, as the check before \\(last output ${
        near(0)
      } ago\\)\n$`,
    ),
  );
  assert.ok(run.ms < 3000, `${run.ms} ms`);
  assert.equal(
    await c.counterAt(c.server.now),
    c.counterLine(c.server.now, { fromStart: true, countedAt: c.server.now, blind: 1 }),
  );
  listener.close();
  held.forEach((conn) => conn.close());
  await holder.catch(() => {});
});

Deno.test("429, 500 and 503 from the API server are unknown: a failure streak goes on", async () => {
  await using c = await cluster();
  c.server.now += 4 * 3600_000;
  const now = c.server.now;
  const silentSince = now - (LIMIT + 420) * 1000;
  const read = { seenUntil: now - 60_000 };
  await Deno.writeTextFile(c.stateFile, c.counterLine(silentSince, { ...read, failures: 4 }));
  for (const [i, code] of [429, 500, 503].entries()) {
    c.server.override = {
      status: code,
      headers: { "content-type": "application/json", "retry-after": "1" },
      body: JSON.stringify({ kind: "Status", code, message: "the server is busy" }),
    };
    const run = await c.run();
    assert.equal(run.code, 1, String(code));
    assert.equal(
      run.stdout,
      `unknown: API server answered ${code} the server is busy; failed, as the silent check before (${
        5 + i
      } in a row)\n`,
    );
    assert.equal(
      await c.counterAt(now),
      c.counterLine(silentSince, { ...read, countedAt: now, failures: 5 + i, blind: 1 + i }),
    );
  }
});
Deno.test("a server certificate from another CA is refused, never retried without verification", async () => {
  await using c = await cluster();
  const other = await makePki();
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, other.caCert);
  let codes = "";
  for (let check = 0; check < 3; check++) {
    const run = await c.run();
    assert.match(run.stdout, /^error: API server certificate rejected: invalid peer certificate/);
    codes += run.code;
  }
  assert.equal(codes, ERROR_CODES.slice(0, 3), "a misconfiguration: loud once in three");
  assert.equal(c.server.seen.length, 0, "no request got through");
  await Deno.remove(other.dir, { recursive: true });
});

Deno.test("a server certificate for another host name is refused", async () => {
  await using c = await cluster();
  const pki = await makePki({ hosts: ["DNS:api.example.com"] });
  const server = new FakeApiServer(pki);
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, pki.caCert);
  let codes = "";
  for (let check = 0; check < 3; check++) {
    const run = await c.run([], {
      env: { KUBERNETES_SERVICE_PORT: String(server.port) },
      flags: denoFlags(c.paths, `127.0.0.1:${server.port}`),
    });
    assert.match(
      run.stdout,
      /^error: API server certificate rejected: invalid peer certificate: certificate not valid for name "127\.0\.0\.1"/,
    );
    codes += run.code;
  }
  assert.equal(codes, ERROR_CODES.slice(0, 3), "a misconfiguration: loud once in three");
  assert.equal(server.seen.length, 0);
  await server.close();
  await Deno.remove(pki.dir, { recursive: true });
});

Deno.test("with --period, a second probe's check in the same period gives its verdict and leaves the counts", async () => {
  await using c = await cluster();
  const start = c.server.now;
  c.server.now += (LIMIT + 60) * 1000;
  const firstAt = c.server.now;
  const args = ["--period", "1m"];
  const first = await c.run(args);
  assert.equal(first.code, 1);
  assert.match(first.stdout, /\(1 failure in a row; the kubelet restarts at 15\)\n$/);
  const read = async () => parseCounter(await c.counter(), c.instance(), 0);
  // Another probe (a readiness probe on the same counter, say) 10 s later: the log shows the
  // silence, so it fails; the count stays the first probe's.
  c.server.now += 10_000;
  const second = await c.run(args);
  assert.equal(second.code, 1);
  assert.match(second.stdout, /^silent: no output since the start /);
  let counter = await read();
  assert.deepEqual([counter.failures, counter.blind], [1, 0]);
  assert.ok(counter.countedAt! >= firstAt && counter.countedAt! < firstAt + 5000, "counted once");
  // A second check that cannot see the log never fails: the first probe's checks carry the count.
  c.server.now += 10_000;
  c.server.override = { status: 503, body: "busy" };
  const lost = await c.run(args);
  assert.equal(lost.code, 0);
  assert.equal(
    lost.stdout,
    "unknown: API server answered 503 busy; passed: not counted, the check before was this period's\n",
  );
  counter = await read();
  assert.deepEqual([counter.failures, counter.blind], [1, 0]);
  // The next period's check counts again.
  c.server.override = undefined;
  c.server.now = firstAt + 60_000;
  const next = await c.run(args);
  assert.equal(next.code, 1);
  assert.match(next.stdout, /\(2 failures in a row; the kubelet restarts at 15\)\n$/);
  assert.equal(
    await c.counterAt(c.server.now),
    counted(c, start, { fromStart: true, failures: 2 }),
  );
});

Deno.test("400, 401, 403 and 404 are errors that say what to fix, and fail one check in three at most", async () => {
  await using c = await cluster({ containers: ["app", "sidecar"] });
  c.server.now += 3600_000;
  const now = c.server.now;
  const read = { seenUntil: now - 60_000, countedAt: now - 60_000 };
  await Deno.writeTextFile(c.stateFile, c.counterLine(now - 600_000, read));
  const multi = await c.run();
  assert.equal(multi.code, Number(ERROR_CODES[0]));
  assert.match(
    multi.stdout,
    /^error: a container name must be specified for pod worker-7d9f, choose one of: \[app sidecar\] \(pass --container\)/,
  );
  assert.equal(
    await c.counterAt(now),
    c.counterLine(now - 600_000, {
      ...read,
      countedAt: now,
      failures: multi.code ? 1 : 0,
      blind: 1,
    }),
  );
  // With --container the check works, and its counter is the container's own.
  c.server.log(c.pod, "hi", "app");
  const named = await c.run(["-c", "app"]);
  assert.equal(named.code, 0);
  assert.equal(c.server.seen.at(-1)!.query.get("container"), "app");
  // Then one misconfiguration after another: each says what to fix; one in three fails.
  const wrongPod = () => c.run(["-c", "app"], { env: { HOSTNAME: "worker-0000" } });
  const errors = [
    [
      wrongPod,
      /^error: not found: pod shop\/worker-0000 \(pods "worker-0000" not found; is --pod\/LOG_PROBE_POD_NAME right\?\)/,
    ],
    [
      () => {
        c.server.grants.clear();
        return c.run(["-c", "app"]);
      },
      /^error: forbidden: the service account system:serviceaccount:shop:log-probe cannot get pods\/log in shop \(bind the Role log-probe to it\)/,
    ],
    [() => {
      c.server.tokens.clear();
      return c.run(["-c", "app"]);
    }, /^error: unauthorized: the API server rejected the service-account token/],
    [() => c.run(["-c", "app"]), /^error: unauthorized/],
    [wrongPod, /^error: unauthorized/],
    [wrongPod, /^error: unauthorized/],
  ] as const;
  let codes = "";
  for (const [run, message] of errors) {
    const result = await run();
    assert.match(result.stdout, message);
    assert.equal(result.stdout.split("\n").length, 2, "one line");
    assert.ok(result.stdout.length <= MAX_LINE + 1, result.stdout);
    if (result.code === 0) {
      assert.match(
        result.stdout,
        new RegExp(`${ERROR_PASSES.replace(/[()]/g, "\\$&")}\n$`),
      );
    }
    codes += result.code;
  }
  assert.equal(codes, ERROR_CODES.slice(0, errors.length));
});

Deno.test("missing, empty or unusable credentials are errors that name the file; the counter keeps the last output", async () => {
  await using c = await cluster();
  c.server.now += 3600_000;
  const now = c.server.now;
  const token = `${c.paths.serviceAccountDir}/token`;
  const ca = `${c.paths.serviceAccountDir}/ca.crt`;
  const cases: Array<[string | undefined, string | undefined, RegExp]> = [
    ["", c.pki.caCert, /^error: Empty service-account token at .*\/token/],
    [
      undefined,
      c.pki.caCert,
      /^error: No service-account token at .*\/token \(automountServiceAccountToken: false\?\)/,
    ],
    [
      "two\nlines",
      c.pki.caCert,
      /^error: The token at .*\/token holds characters no bearer token has/,
    ],
    [c.token, undefined, /^error: No CA certificate at .*\/ca\.crt/],
    [c.token, "not a certificate", /^error: No PEM certificate in .*\/ca\.crt/],
  ];
  const read = { seenUntil: now - 60_000, countedAt: now - 60_000 };
  for (const [tokenText, caText, expected] of cases) {
    await Deno.remove(token).catch(() => {});
    await Deno.remove(ca).catch(() => {});
    if (tokenText !== undefined) await Deno.writeTextFile(token, tokenText);
    if (caText !== undefined) await Deno.writeTextFile(ca, caText);
    for (const [blind, code] of [...ERROR_CODES.slice(0, 3)].map(Number).entries()) {
      await Deno.writeTextFile(c.stateFile, c.counterLine(now - 600_000, { ...read, blind }));
      const run = await c.run();
      assert.equal(run.code, code, run.stdout);
      assert.match(run.stdout, expected);
      assert.equal(run.stdout.split("\n").length, 2, "one line");
      assert.equal(
        await c.counterAt(now),
        c.counterLine(now - 600_000, {
          ...read,
          countedAt: now,
          failures: code ? 1 : 0,
          blind: blind + 1,
        }),
      );
    }
  }
  assert.equal(c.server.seen.length, 0, "nothing was sent without credentials");
});

Deno.test("bad flags: one line, counted as a misconfiguration like any other, nothing sent", async () => {
  await using c = await cluster();
  c.server.now += 3600_000;
  const now = c.server.now;
  const read = { seenUntil: now - 60_000, countedAt: now - 60_000 };
  await Deno.writeTextFile(c.stateFile, c.counterLine(now - 600_000, read));
  const bad = [
    ["--bogus"],
    ["--window", "0"],
    ["--window", "-5s"],
    ["--window", "abc"],
    ["--growth", "sideways"],
    ["--failure-threshold", "0"],
  ];
  let codes = "";
  for (const args of bad) {
    const run = await c.run(args);
    assert.match(run.stdout, /^error: .*"/, args.join(" "));
    assert.equal(run.stdout.split("\n").length, 2);
    assert.equal(run.stderr, "");
    codes += run.code;
  }
  assert.equal(codes, ERROR_CODES.slice(0, bad.length));
  assert.equal(
    await c.counterAt(now),
    c.counterLine(now - 600_000, {
      ...read,
      countedAt: now,
      failures: Number(codes.at(-1)) ? 1 : 0,
      blind: bad.length,
    }),
  );
  assert.equal(c.server.seen.length, 0);
});

Deno.test("a counter file holding garbage, or 0.3.0's line, starts afresh from the container's start and the line says so", async () => {
  await using c = await cluster();
  const start = c.server.now;
  c.server.now += (LIMIT + 60) * 1000;
  for (
    const old of [
      "\x00\x01garbage",
      `14 ${c.instance()} - 14 - - 2 0\n`, // 0.3.0: 14 silent checks and failures in a row
    ]
  ) {
    await Deno.writeTextFile(c.stateFile, old);
    const run = await c.run();
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      new RegExp(
        `^silent: no output since the start ${
          near(LIMIT + 60)
        } ago, over the 2h limit \\(1 failure in a row; the kubelet restarts at 15\\); counter held garbage or another version's line\n$`,
      ),
    );
    assert.equal(
      await c.counterAt(c.server.now),
      counted(c, start, { fromStart: true, failures: 1 }),
    );
  }
});

Deno.test("a counter left by a previous container instance does not carry over: silence counts from the new start", async () => {
  await using c = await cluster();
  c.server.now += 4 * 3600_000;
  const old = c.server.now - (LIMIT + 840) * 1000;
  await Deno.writeTextFile(
    c.stateFile,
    c.counterLine(old, { seenUntil: c.server.now - 60_000, failures: 14 }),
  );
  await c.restartContainer();
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.match(
    run.stdout,
    new RegExp(
      `^alive: no output since the start ${
        near(0)
      } ago, within the 2h limit; counter of a previous container instance discarded\n$`,
    ),
  );
  assert.equal(await c.counterAt(c.server.now), counted(c, c.server.now, { fromStart: true }));
});

Deno.test("a counter that cannot be written never turns output into a failure", async () => {
  await using c = await cluster();
  c.server.now += 3600_000;
  c.server.log(c.pod, "still here");
  await Deno.chmod(c.paths.stateDir, 0o500);
  const flags = denoFlags(c.paths, `127.0.0.1:${c.server.port}`);
  // root ignores file modes: take the write permission away from Deno instead
  flags.splice(flags.findIndex((flag) => flag.startsWith("--allow-write")), 1);
  const run = await c.run([], { flags });
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^alive: output \S+ ago; warning: counter not saved to .*counter/);
  await Deno.chmod(c.paths.stateDir, 0o700);
});

Deno.test("--growth fixed: the limit is --window, and a lost answer in a silent streak fails", async () => {
  await using c = await cluster();
  const start = c.server.now;
  const args = ["--growth", "fixed", "--window", "2m"];
  const limit = limitOf({ ...SETTINGS, growth: "fixed", window: 120 });
  assert.equal(limit, 120);
  c.server.now += (limit + 60) * 1000;
  for (let failures = 1; failures <= 3; failures++) {
    const run = await c.run(args);
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      new RegExp(
        `^silent: no output since the start \\S+ ago, over the 2m limit \\(${failures} failures? in a row`,
      ),
    );
    c.server.now += 60_000;
  }
  c.server.override = { status: 503, body: "busy" };
  const lost = await c.run(args);
  assert.equal(lost.code, 1, lost.stdout);
  assert.equal(
    lost.stdout,
    "unknown: API server answered 503 busy; failed, as the silent check before (4 in a row)\n",
  );
  const counter = parseCounter(await c.counter(), c.instance(), 0);
  assert.deepEqual(
    [counter.lastOutput, counter.fromStart, counter.failures, counter.blind],
    [start, true, 4, 1],
  );
});

Deno.test("--help, --version and plan print without any permission", async () => {
  await using c = await cluster();
  const bare = { flags: ["run", "--no-prompt", "--no-config"] };
  const help = await c.run(["--help"], bare);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^log-probe /);
  const version = await c.run(["--version"], bare);
  assert.match(version.stdout, /^log-probe \d+\.\d+\.\d+\n$/);
  const args = ["plan", "--window", "30s", "--failure-threshold", "3", "--period", "30s"];
  const plan = await c.run(args, bare);
  assert.equal(plan.code, 0);
  const command = parseArgs(args);
  assert.ok(command.command === "plan");
  const { earliest, latest } = restartAfter(command.options);
  assert.ok(
    plan.stdout.includes(
      `The kubelet restarts it after ${formatDuration(earliest)} to ${
        formatDuration(latest)
      } of silence`,
    ),
    plan.stdout,
  );
});
/** Deterministic random numbers, so a failing timeline can be replayed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("a 300-check timeline matches the rule check by check, each restart within plan's bounds", async () => {
  await using c = await cluster();
  const random = mulberry32(20261125);
  const { earliest, latest } = restartAfter(SETTINGS);
  // A worker that logs in bursts, with silences from seconds to three hours. Lines fall at least
  // 3 s from a whole minute after the start, where the checks are: a probe run's clock runs on
  // from the virtual "now" while Deno starts, and the rule's edges stay clear of that.
  const start = c.server.now;
  const lines: number[] = [];
  let t = start + 10_000;
  for (let gap = 0; t < start + 300 * 60_000; gap++) {
    const burst = 1 + Math.floor(random() * 20);
    for (let i = 0; i < burst; i++) {
      t += random() * 60_000;
      const at = Math.floor(t / 1000) * 1000;
      const phase = (at - start) % 60_000;
      lines.push(phase < 3000 ? at + 3000 : phase > 57_000 ? at - 3000 : at);
    }
    // every third silence is long: 2h to 3h, around the 2h14m to 2h15m plan predicts
    t += gap % 3 === 1 ? 2 * 3600_000 + random() * 3600_000 : random() * 40 * 60_000;
  }
  lines.sort((a, b) => a - b);
  // The model: silence counts from the newest line a check found (the kubelet finds the newest
  // line when it lies within the limit), or from the start.
  let lastOutput = start;
  let fromStart = true;
  let failures = 0;
  const restarts: string[] = [];
  const mismatches: string[] = [];
  for (let check = 1; check <= 300; check++) {
    c.server.now = start + check * 60_000;
    const records = c.pod.containers.get("app")!;
    while (lines.length && lines[0] <= c.server.now) {
      records.push({ at: lines.shift()!, text: `job ${check}` });
    }
    const newest = records.at(-1)?.at;
    if (newest !== undefined && newest >= c.server.now - LIMIT * 1000 && newest > lastOutput) {
      [lastOutput, fromStart] = [newest, false];
    }
    const silence = (c.server.now - lastOutput) / 1000;
    failures = silence <= LIMIT ? 0 : failures + 1;

    const requests = c.server.seen.length;
    const run = await c.run();
    const asked = c.server.seen.slice(requests).map((seen) => seen.query.toString());
    const got = `exit ${run.code}, asked ${asked.join(" ")}, counter ${await c.counterAt(
      c.server.now,
    )}`;
    const want = `exit ${failures ? 1 : 0}, asked ${LOG_QUERY}, counter ${
      counted(c, lastOutput, { fromStart, failures })
    }`;
    if (got !== want) mismatches.push(`check ${check}: got ${got}, want ${want}`);
    if (failures === SETTINGS.failureThreshold) {
      restarts.push(`check ${check} after ${formatDuration(silence)}`);
      assert.ok(silence > earliest && silence <= latest, `restart after ${silence}s of silence`);
      await c.restartContainer();
      [lastOutput, fromStart, failures] = [c.server.now, true, 0];
    }
  }
  assert.deepEqual(mismatches, []);
  assert.ok(restarts.length >= 1, "the timeline holds at least one restart");
  console.log(`timeline: 300 checks match the rule; restarts at ${restarts.join(", ")}`);
});

Deno.test("the token appears in no output of any probe run", async () => {
  await using c = await cluster();
  c.server.log(c.pod, "hi");
  await c.run(); // alive
  await c.run(["--output", "json"]);
  c.server.now += (LIMIT + 60) * 1000;
  await c.run(["--last-line"]); // silent, quoting the last line
  await c.run(["--bogus"]); // a bad flag
  await c.run(["doctor"]);
  c.server.grants.clear();
  await c.run(); // forbidden
  await c.run(["doctor"]);
  c.server.tokens.clear();
  await c.run(); // unauthorized
  await c.run(["doctor"]);
  // And every run of the other tests in this file, when they ran first.
  for (const each of clusters) {
    for (const output of each.outputs) assert.ok(!output.includes(each.token));
  }
  assert.ok(c.outputs.length >= 18);
});

// ---------------------------------------------------------------------------
// Pure promises the mutation pass over the decision found unpinned (issue 20)

import { nextCounter, WINDOW_LIMIT } from "./probe.ts";

const LOST: Evidence = { kind: "blind", why: "refused" };
const FORBIDDEN: Evidence = { kind: "blind", why: "forbidden", error: true };
const PERIOD = { ...SETTINGS, periodGiven: true };

Deno.test("a clock stepped back an hour under --period: the check counts, reads from now, and silence counts from now", () => {
  // Every time in the counter was written an hour ahead of the clock as it is now.
  const ahead = NOW + 3600_000;
  const counter: Counter = {
    instance: "-",
    lastOutput: ahead,
    fromStart: false,
    seenUntil: ahead,
    countedAt: ahead,
    failures: 0,
    blind: 0,
    unreadable: false,
  };
  const remembered = recall(counter, NOW, PERIOD);
  assert.deepEqual([remembered.counted, remembered.missed], [true, 0]);
  // A read from an hour ahead would miss every line written since: it starts before now.
  assert.equal(readFrom(remembered, LIMIT, true), NOW - 2000);
  assert.equal(readFrom({ ...remembered, seenUntil: undefined }, LIMIT, true), NOW - 2000);
  assert.equal(readFrom(remembered, LIMIT, false), NOW - LIMIT * 1000);
  // Seen or blind, the output an hour ahead is remembered as now, so a hang from here on is
  // restarted on plan's schedule, not an hour later.
  for (const evidence of [{ kind: "seen" }, LOST] as Evidence[]) {
    const outcome = decide(evidence, remembered, OPTIONS);
    assert.deepEqual([outcome.code, outcome.silence, outcome.next.lastOutput], [0, 0, NOW]);
  }
});

Deno.test("the read without patterns reaches back to where it must start: whole seconds rounded up, at least 1, at most ten years", () => {
  assert.equal(newestQuery(NOW - 7_200_500, NOW).sinceSeconds, 7201, "a line 7200.5 s back");
  assert.equal(newestQuery(NOW - 1, NOW).sinceSeconds, 1);
  // sinceSeconds=0 is refused by the API server (it must be positive).
  assert.equal(newestQuery(NOW, NOW).sinceSeconds, 1);
  // A counter's year-1 time never asks for more than the kubelet's durations hold.
  assert.equal(newestQuery(Date.parse("0001-01-01T00:00:00Z"), NOW).sinceSeconds, WINDOW_LIMIT);
});

Deno.test("an answer that only quotes the kubelet's error, or has no content type and no timestamp, is not a container log", () => {
  const notALog = /^answer is not a container log \(no timestamp\)/;
  const quoting = log("proxy: upstream said failed to open log file /var/log/pods/x: gone\n");
  const quoted = evidenceOf(quoting, ANY_LINE, TARGET);
  assert.equal(quoted.kind, "blind");
  assert.match((quoted as { why: string }).why, notALog);
  const untyped = evidenceOf({ status: 200, body: "hello\n", bytes: 6 }, ANY_LINE, TARGET);
  assert.deepEqual([untyped.kind, (untyped as { error?: boolean }).error], ["blind", true]);
  assert.match((untyped as { why: string }).why, notALog);
});

Deno.test("--first-output: a startupProbe fails until the first line whatever the limit, then judges as the liveness probe, and passes when blind", () => {
  const startup = { ...OPTIONS, firstOutput: true };
  const started = { lastOutput: NOW - 30_000, fromStart: true };
  const silent = decide({ kind: "seen" }, memory(started), startup);
  assert.deepEqual([silent.verdict, silent.code, silent.next.failures], ["silent", 1, 0]);
  const first = decide({ kind: "seen", at: NOW - 5000 }, memory(started), startup);
  assert.deepEqual([first.verdict, first.code, first.next.fromStart], ["alive", 0, false]);
  // After the first line: the liveness rule, within the limit and past it.
  assert.equal(decide({ kind: "seen" }, memory(), startup).code, 0);
  assert.equal(decide({ kind: "seen" }, memory(STREAK), startup).code, 1);
  // Blind: the liveness probe takes over, even where a liveness check would fail.
  for (const evidence of [LOST, FORBIDDEN]) {
    assert.equal(decide(evidence, memory(STREAK), OPTIONS).code, evidence === LOST ? 1 : 2);
    assert.equal(decide(evidence, memory(STREAK), startup).code, 0);
    assert.equal(decide(evidence, memory({ ...started, failures: 5 }), startup).code, 0);
  }
});

Deno.test("a remembered line up to a minute ahead of the clock is output now: a silence of 0, never negative", () => {
  for (const evidence of [{ kind: "seen" }, LOST] as Evidence[]) {
    const outcome = decide(evidence, memory({ lastOutput: NOW + 30_000 }), OPTIONS);
    assert.equal(outcome.silence, 0, evidence.kind);
    assert.doesNotMatch(outcome.message, /-\d/, evidence.kind);
  }
});

Deno.test("a check that reads the log clears the unreadable mark, a second probe's too: the next unreadable answer is blind again", () => {
  const unreadable: Evidence = { kind: "unreadable", why: 'the kubelet cannot read the log: "x"' };
  for (const counted of [true, false]) {
    const read = decide({ kind: "seen" }, memory({ unreadable: true, counted }), OPTIONS);
    assert.equal(read.next.unreadable, false, `counted: ${counted}`);
    // In a silent streak, the next unreadable answer is once: blind, not an empty log.
    const next = decide(unreadable, memory({ ...STREAK, ...read.next }), OPTIONS);
    assert.equal(next.verdict, "unknown", `counted: ${counted}`);
    assert.equal(next.next.unreadable, true);
  }
  // Without the read between, it is the second in a row: judged as an empty log.
  const twice = decide(unreadable, memory({ ...STREAK, unreadable: true }), OPTIONS);
  assert.equal(twice.verdict, "silent");
});

Deno.test("a line found at the window's edge is named as no output for the limit, within it", () => {
  const edge = decide(
    { kind: "seen", at: NOW - LIMIT * 1000 },
    memory({ lastOutput: NOW - LIMIT * 1000 - 5000 }),
    OPTIONS,
  );
  assert.deepEqual([edge.code, edge.next.lastOutput], [0, NOW - LIMIT * 1000]);
  assert.equal(edge.message, "alive: no output for 2h, within the 2h limit");
});

/**
 * At `now`: the check before a blind one (two periods ago) saw `before` seconds of silence; the
 * blind check between passed, after `passedLast` such passes in this silence.
 */
function afterBlindPass(now: number, before: number, passedLast?: number): Memory {
  return memory({
    now,
    lastOutput: now - 120_000 - before * 1000,
    seenUntil: now - 120_000,
    blind: 1,
    failures: 0,
    passedLast,
  });
}

/**
 * The clock's seconds from NOW on which a silent check after the third blind pass in a silence
 * passes once (the coin's turn).
 */
function heads(seconds: number): number[] {
  return Array.from({ length: seconds }, (_, i) => NOW + i * 1000).filter((now) =>
    decide({ kind: "seen" }, afterBlindPass(now, LIMIT + 60, 2), OPTIONS).code === 0
  );
}

Deno.test("the check before passed at exactly the limit: a blind check after it passes, and the silent check next is a failure", () => {
  const lastOutput = NOW - 60_000 - LIMIT * 1000;
  const before = memory({ now: NOW - 60_000, lastOutput, seenUntil: NOW - 120_000 });
  assert.equal(decide({ kind: "seen" }, before, OPTIONS).code, 0, "at the limit");
  for (const evidence of [LOST, FORBIDDEN]) {
    const blind = decide(evidence, memory({ lastOutput, seenUntil: NOW - 60_000 }), OPTIONS);
    assert.equal(blind.code, 0, evidence.kind);
  }
  // No failure was passed over, so nothing moves the streak: it fails, whatever the count of
  // passes before and on every clock coin.
  const coins = heads(60);
  assert.ok(coins.length > 0, "a minute holds a second that passes once");
  for (const now of [NOW, ...coins]) {
    for (const passedLast of [undefined, 1, 2, 3]) {
      const outcome = decide({ kind: "seen" }, afterBlindPass(now, LIMIT, passedLast), OPTIONS);
      assert.deepEqual([outcome.code, outcome.next.failures], [1, 1], utc(now));
    }
  }
});

Deno.test("after a blind check passes at the kubelet's last failure, the silent check next passes the first time in a silence, fails the second, then passes on half the clock's seconds, alike for every run within one", () => {
  const seconds = Array.from({ length: 60 }, (_, i) => NOW + i * 1000);
  for (const now of seconds) {
    const first = decide({ kind: "seen" }, afterBlindPass(now, LIMIT + 60), OPTIONS);
    assert.deepEqual([first.code, first.next.passedLast], [0, 1], utc(now));
    assert.match(first.message, /; passed once, to move the streak off the checks that cannot/);
    const second = decide({ kind: "seen" }, afterBlindPass(now, LIMIT + 60, 1), OPTIONS);
    assert.deepEqual([second.code, second.next.failures, second.next.passedLast], [1, 1, 2]);
    const later = decide({ kind: "seen" }, afterBlindPass(now, LIMIT + 60, 3), OPTIONS);
    assert.equal(later.next.passedLast, 3, "counted up to 3");
  }
  // Output within the limit starts the next silence's count afresh.
  const alive = decide(
    { kind: "seen", at: NOW - 1000 },
    memory({ now: NOW, passedLast: 3, lastOutput: NOW - LIMIT * 2000 }),
    OPTIONS,
  );
  assert.deepEqual([alive.code, alive.next.passedLast], [0, 0]);
  const passed = heads(2000);
  assert.ok(passed.length > 800 && passed.length < 1200, `${passed.length} of 2000`);
  for (const now of [...passed.slice(0, 20), NOW + 1000 * 2001]) {
    for (const ms of [1, 500, 999]) {
      assert.equal(
        decide({ kind: "seen" }, afterBlindPass(now + ms, LIMIT + 60, 2), OPTIONS).code,
        decide({ kind: "seen" }, afterBlindPass(now, LIMIT + 60, 2), OPTIONS).code,
        utc(now + ms),
      );
    }
  }
});

Deno.test("a misconfiguration fails one check in three at failureThreshold 3, and never at 2, where a failure and a killed check would restart", () => {
  const at = (failureThreshold: number) => ({ ...SETTINGS, failureThreshold });
  assert.equal(kubelet(repeat(30, FORBIDDEN), {}, at(3)).codes, "002".repeat(10));
  assert.equal(kubelet(repeat(30, FORBIDDEN), {}, at(2)).codes, "0".repeat(30));
  const killed = Array.from({ length: 60 }, (_, i) => i % 2 ? KILLED : FORBIDDEN);
  const two = kubelet(killed, {}, at(2));
  assert.deepEqual([two.restartAt, two.longestRun], [undefined, 1], two.codes);
});

Deno.test("a blind check in a silent streak counts the checks the kubelet killed, keeps the start, and counts toward one error in three", () => {
  const killed = decide(LOST, memory({ ...STREAK, missed: 2 }), OPTIONS);
  assert.deepEqual([killed.code, killed.next.failures], [1, 5]);
  // Before the first line a blind check leaves silence counted from the start.
  const start = decide(LOST, memory({ lastOutput: NOW - 600_000, fromStart: true }), OPTIONS);
  assert.equal(start.next.fromStart, true);
  const later = decide({ kind: "seen" }, memory({ ...start.next, now: NOW + 60_000 }), OPTIONS);
  assert.equal(later.message, "alive: no output since the start 11m ago, within the 2h limit");
  // An error at the threshold of a silent streak passes, and is one more blind check.
  const F = SETTINGS.failureThreshold;
  const last = decide(FORBIDDEN, memory({ ...STREAK, failures: F - 1, blind: 2 }), OPTIONS);
  assert.deepEqual([last.code, last.next.blind], [0, 3]);
});

Deno.test("the counter keeps where the read ended and when the check counted apart, for instances as long as a file's identity gets", () => {
  const start = Date.parse("2026-11-25T12:00:00Z");
  // device and inode as large as 64 bits print, the birth time in base 36
  const instance = `18446744073709551615:18446744073709551615:${(2 ** 53).toString(36)}`;
  const counter: Counter = {
    instance,
    lastOutput: start + 500,
    fromStart: false,
    seenUntil: start + 120_000,
    countedAt: start + 180_000,
    failures: 2,
    blind: 1,
    unreadable: false,
  };
  assert.deepEqual(parseCounter(formatCounter(counter), instance, start), counter);
  // A read or count time no calendar has is garbage, as a last output's is.
  const good = formatCounter(counter);
  for (const [field, value] of [["seenUntil", 120_000], ["countedAt", 180_000]] as const) {
    const bad = good.replace(utc(start + value), "2026-13-45T99:00:00.000Z");
    assert.equal(
      parseCounter(bad, instance, start).note,
      "counter held garbage or another version's line",
      field,
    );
  }
});

Deno.test("recall: a second probe at the same instant does not count; a check a little early or late counts the one killed between; a counter past the threshold, none", () => {
  const counter = { ...freshCounter("-", NOW - 3600_000), countedAt: NOW, failures: 3 };
  delete counter.missing;
  const at = (seconds: number, more: Partial<Counter> = {}) =>
    recall({ ...counter, ...more }, NOW + seconds * 1000, PERIOD);
  assert.equal(at(0).counted, false);
  assert.deepEqual([at(114).counted, at(114).missed], [true, 1], "two periods, 6 s early");
  assert.deepEqual([at(126).counted, at(126).missed], [true, 1], "two periods, 6 s late");
  // Without a termination-message file a counter outlives restarts: its count may pass the
  // threshold, and then no killed check is added, and none taken away.
  const past = at(240, { failures: SETTINGS.failureThreshold + 5 });
  assert.equal(past.missed, 0);
});

Deno.test("a second probe's check leaves when the first counted; the counter keeps its instance and where a paged read stopped", () => {
  const counter = { ...freshCounter("1:2:x", NOW - 3600_000), countedAt: NOW - 60_000 };
  const check = (counted: boolean, seenUntil?: number) => {
    const remembered = memory({ counted });
    const outcome = decide({ kind: "seen" }, remembered, OPTIONS);
    return nextCounter(counter, outcome, remembered, seenUntil);
  };
  assert.equal(check(false).countedAt, NOW - 60_000);
  assert.equal(check(true).countedAt, NOW);
  // So the first probe's next check, a period after its last, counts.
  assert.equal(recall(check(false), NOW, PERIOD).counted, true);
  // Pages read up to 30 s ago, out of time: the next check reads on from there.
  assert.equal(check(true, NOW - 30_000).seenUntil, NOW - 30_000);
  // A counter without its instance would be taken up by the container's next instance.
  assert.equal(check(true).instance, "1:2:x");
  assert.equal(
    parseCounter(formatCounter(check(true)), "1:3:y", NOW).note,
    "counter of a previous container instance discarded",
  );
});

Deno.test("output seen since the last read but older than the limit is remembered: silent, counted from that line", () => {
  const job = { ...OPTIONS, match: [/job/] };
  // An outage of three hours after four hours of silence; the line came 2h30m ago.
  const remembered = memory({ lastOutput: NOW - 4 * 3600_000, seenUntil: NOW - 3 * 3600_000 });
  const outcome = judge(log(`${utc(NOW - 9000_000)} job 7\n`), remembered, job, TARGET);
  assert.deepEqual([outcome.verdict, outcome.code, outcome.next.lastOutput], [
    "silent",
    1,
    NOW - 9000_000,
  ]);
  assert.match(outcome.message, /^silent: no matching output for 2h30m, over the 2h limit/);
});

Deno.test("the rest of a split line is judged by --match and --ignore like any line, and a known stamp is never lost to one no date parses", () => {
  const since = Date.parse("2026-11-25T12:00:00Z");
  const stamp = "2026-11-25T12:00:05Z";
  const job = { ...ANY_LINE, match: [/job/] };
  const quiet = { ...ANY_LINE, ignore: [/^DEBUG/] };
  assert.equal(scanLog(`job 7 done\n${stamp} other\n`, job, { since }).newest?.at, since);
  assert.equal(scanLog(`poll\n${stamp} other\n`, job, { since }).newest, undefined);
  assert.equal(scanLog(`DEBUG poll\n${stamp} DEBUG poll\n`, quiet, { since }).newest, undefined);
  // A line whose stamp no date parses counts at the read's start: never over a known later one.
  const odd = "2026-11-25T25:00:00Z";
  for (const body of [`${stamp} job 1\n${odd} job 2\n`, `${odd} job 2\n${stamp} job 1\n`]) {
    assert.equal(scanLog(body, job, { since }).newest?.at, Date.parse(stamp), body);
  }
  // Only the first piece can be the rest of a split line: every record after it has a stamp.
  assert.equal(
    scanLog(`${stamp} other\njob 7\n${stamp} other\n`, job, { since }).newest,
    undefined,
  );
});

Deno.test("judge with patterns: a stamp no date parses is output where this read began, not the limit back", () => {
  const job = { ...OPTIONS, match: [/job/] };
  const outcome = judge(log("2026-11-25T25:00:00Z job 7\n"), memory(), job, TARGET);
  assert.deepEqual([outcome.code, outcome.next.lastOutput], [0, NOW - 62_000]);
  assert.equal(outcome.message, "alive: matching output 1m2s ago");
});

Deno.test("a read that left part of the log unread remembers the new line it found, and within the limit is alive", () => {
  const unread = "64 pages, the most a check reads: raise --limit-bytes";
  const job = { ...OPTIONS, match: [/job/] };
  const found = decide(
    { kind: "seen", at: NOW - 9000_000, unread, partial: true },
    memory({ lastOutput: NOW - 4 * 3600_000, seenUntil: NOW - 3 * 3600_000 }),
    job,
  );
  assert.equal(found.next.lastOutput, NOW - 9000_000);
  const edge = decide(
    { kind: "seen", unread, partial: true },
    memory({ lastOutput: NOW - LIMIT * 1000 }),
    job,
  );
  assert.deepEqual([edge.verdict, edge.code], ["alive", 0]);
});
