import assert from "node:assert/strict";
import {
  type Answer,
  type CheckOptions,
  checkQuery,
  type CheckState,
  compilePattern,
  counts,
  decide,
  type Evidence,
  evidenceOf,
  formatCounter,
  formatDuration,
  HELP,
  judge,
  LIMIT_BYTES,
  LogScanner,
  logUrl,
  MAX_LINE,
  oneLine,
  OutOfTime,
  parseArgs,
  parseCounter,
  parseDuration,
  type PlanOptions,
  remember,
  renderPlan,
  resolveTarget,
  scanLog,
  simulate,
  type Target,
  utc,
  windowFor,
} from "./probe.ts";
import { FakeApiServer, makePki, readLogs } from "./testing/apiserver.ts";
import { Cluster, denoFlags } from "./testing/cluster.ts";

const TARGET: Target = { server: "https://10.0.0.1", namespace: "shop", pod: "web" };
const TRIANGULAR = { window: 60, growth: "triangular" as const };
const ANY_LINE = { match: [], ignore: [], tail: 300, limitBytes: 262144 };

function checkOptions(args: string[] = []): CheckOptions {
  const command = parseArgs(args);
  assert.equal(command.command, "check");
  return command.options;
}

// ---------------------------------------------------------------------------
// Pure functions

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

Deno.test("parseArgs gives the defaults of SPEC.md", () => {
  const options = checkOptions();
  assert.equal(options.window, 60);
  assert.equal(options.growth, "triangular");
  assert.equal(options.timeout, 5);
  assert.equal(options.onApiError, "streak");
  assert.equal(options.stateFile, "/tmp/log-probe.state");
  assert.equal(options.serviceAccountDir, "/var/run/secrets/kubernetes.io/serviceaccount");
  const plan = parseArgs(["plan"]);
  assert.ok(plan.command === "plan");
  assert.equal(plan.options.period, 60);
  assert.equal(plan.options.failureThreshold, 15);
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

Deno.test("parseArgs rejects bad input with one line naming the bad value", () => {
  const cases: Array<[string[], string]> = [
    [["--bogus"], '"--bogus"'],
    [["--pod"], "Missing value for --pod"],
    [["--window", "--growth", "fixed"], "Missing value for --window"],
    [["--window", "0"], '"0"'],
    [["--window", "-5s"], '"-5s"'],
    [["--growth", "sideways"], '"sideways"'],
    [["--on-api-error", "maybe"], '"maybe"'],
    [["--max-window", "30s"], '"30s": shorter than --window'],
    [["plan", "--failure-threshold", "0"], '"0"'],
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

Deno.test("logUrl asks for one timestamped line of the window, bounded, path segments encoded", () => {
  const url = new URL(
    logUrl({ ...TARGET, container: "app" }, checkQuery(180, ANY_LINE)),
  );
  assert.equal(url.pathname, "/api/v1/namespaces/shop/pods/web/log");
  assert.equal(url.searchParams.get("sinceSeconds"), "180");
  assert.equal(url.searchParams.get("tailLines"), "1");
  assert.equal(url.searchParams.get("timestamps"), "true");
  assert.equal(url.searchParams.get("limitBytes"), String(LIMIT_BYTES));
  assert.equal(url.searchParams.get("container"), "app");
  assert.ok(!logUrl(TARGET, checkQuery(60, ANY_LINE)).includes("container="));
  const last = new URL(logUrl(TARGET, { tailLines: 1, limitBytes: 64 }));
  assert.equal(last.searchParams.get("sinceSeconds"), null, "last words: the whole current log");
});

function status(code: number, message: string): Answer {
  const body = JSON.stringify({ kind: "Status", code, message });
  return { status: code, body, bytes: body.length };
}

Deno.test("judge follows the decision table", () => {
  const log = (body: string, type = "text/plain") => ({
    status: 200,
    body,
    bytes: body.length,
    type,
  });
  // [answer, verdict, exit code, counter after, message], from a silent streak of 2
  const rows: Array<[Answer, string, number, number, RegExp]> = [
    [log("2026-11-25T12:00:00Z hi\n"), "alive", 0, 0, /^alive: output in the last 360s/],
    [log("2026-11-25T12:00:00.5Z \n"), "alive", 0, 0, /^alive/],
    [
      log("no timestamp\n"),
      "error",
      1,
      3,
      /^error: answer is not a container log \(no timestamp\)/,
    ],
    [
      { ...log(""), encoding: "br" },
      "error",
      1,
      3,
      /not a container log \(content-encoding br\)/,
    ],
    [
      log(""),
      "silent",
      1,
      3,
      /^silent: no output in the last 360s \(3 silent checks in a row; next window 600s\)$/,
    ],
    [log("<html>proxy</html>", "text/html"), "error", 1, 3, /not a container log \(text\/html\)/],
    [
      { failure: "unreachable", detail: "tcp connect error: Connection refused" },
      "unknown",
      1,
      3,
      /Connection refused; failed, as the check before \(3 silent in a row\)/,
    ],
    [{ failure: "timeout", detail: "5s" }, "unknown", 1, 3, /within 5s/],
    [status(429, "Too many requests"), "unknown", 1, 3, /429/],
    [status(500, "boom"), "unknown", 1, 3, /500/],
    [status(503, "unavailable"), "unknown", 1, 3, /503/],
    [
      status(
        400,
        'failed to try resolving symlinks in path "/var/log/pods/a/app/0.log": lstat /var/log/pods/a/app/0.log: no such file or directory',
      ),
      "unknown",
      1,
      3,
      /could not open the log file \(rotation under way\?\)/,
    ],
    [
      // Kubernetes 1.37: the kubelet has committed a 200 before ReadLogs fails; the error's text
      // is the body (testing/e2e-recorded.md).
      {
        status: 200,
        type: "text/plain",
        body:
          'failed to open log file "/var/log/pods/a/app/0.log": open /var/log/pods/a/app/0.log: no such file or directory',
        bytes: 110,
      },
      "unknown",
      1,
      3,
      /could not open the log file \(rotation under way\?\)/,
    ],
    [
      { failure: "expired", detail: "invalid peer certificate: Expired" },
      "unknown",
      1,
      3,
      /certificate expired/,
    ],
    [
      status(400, "a container name must be specified for pod web, choose one of: [a b]"),
      "error",
      1,
      3,
      /choose one of: \[a b\] \(pass --container\)/,
    ],
    [status(401, "Unauthorized"), "error", 1, 3, /^error: unauthorized/],
    [
      status(
        403,
        'pods "web" is forbidden: User "system:serviceaccount:shop:log-probe" cannot get resource "pods/log" in API group "" in the namespace "shop"',
      ),
      "error",
      1,
      3,
      /^error: forbidden: the service account system:serviceaccount:shop:log-probe cannot get pods\/log in shop \(bind the Role log-probe to it\)/,
    ],
    [status(404, 'pods "web" not found'), "error", 1, 3, /not found: pod shop\/web/],
    [
      { failure: "tls", detail: "invalid peer certificate: UnknownIssuer" },
      "error",
      1,
      3,
      /certificate rejected/,
    ],
    [
      { failure: "protocol", detail: "received corrupt message of type InvalidContentType" },
      "error",
      1,
      3,
      /does not speak TLS.*plain-HTTP port/,
    ],
    [{ status: 302, body: "", bytes: 0 }, "error", 1, 3, /302/],
  ];
  const state = { silentChecks: 2, failures: 2, now: Date.parse("2026-11-25T12:01:00Z") };
  const options = { ...TRIANGULAR, ...ANY_LINE, failureThreshold: 15 };
  for (const [answer, verdict, code, silentChecks, message] of rows) {
    const outcome = judge(answer, state, options, TARGET);
    assert.equal(outcome.verdict, verdict, JSON.stringify(answer));
    assert.equal(outcome.code, code, JSON.stringify(answer));
    assert.equal(outcome.silentChecks, silentChecks, JSON.stringify(answer));
    assert.match(outcome.message, message);
    assert.ok(outcome.message.length <= MAX_LINE);
  }
  // In a silent streak (above) an error cannot see the log, as an outage cannot: the streak goes
  // on. After a pass, an error fails (2) and keeps the count, at most 14 times in a row.
  const passed = { ...state, failures: 0, failing: false };
  for (const [answer, verdict, , , message] of rows.filter((row) => row[1] === "error")) {
    const outcome = judge(answer, passed, options, TARGET);
    assert.deepEqual([outcome.verdict, outcome.code, outcome.silentChecks], [verdict, 2, 2]);
    assert.match(outcome.message, message);
    const last = judge(answer, { ...passed, failures: 14, errors: 14 }, options, TARGET);
    assert.deepEqual([last.code, last.failures], [0, 0]);
    assert.match(last.message, /passed this once, so the kubelet never restarts for it$/);
  }
});

Deno.test("judge: a lost answer repeats the last result; the window grows as if silent", () => {
  const options = { ...TRIANGULAR, ...ANY_LINE };
  const now = Date.parse("2026-11-25T13:00:00Z");
  const refused: Answer = { failure: "unreachable", detail: "Connection refused" };
  const run = (state: CheckState, onApiError?: "streak" | "ignore" | "fail") => {
    const outcome = judge(refused, state, { ...options, onApiError }, TARGET);
    return [outcome.code, outcome.silentChecks];
  };
  // the last check passed: passes; the window grows as an answer with no new output would grow it
  assert.deepEqual(run({ silentChecks: 0, now }), [0, 1]);
  assert.deepEqual(run({ silentChecks: 3, failing: false, now }), [0, 4]);
  // the last check failed: fails, one step wider
  assert.deepEqual(run({ silentChecks: 4, failing: true, now }), [1, 5]);
  // output remembered inside the window (600s after 3): passes and ends the streak
  const recent = { silentChecks: 3, failing: true, lastOutput: "2026-11-25T12:51:00.000Z", now };
  assert.deepEqual(run(recent), [0, 0]);
  // --on-api-error ignore and fail: the old rules, counter kept
  assert.deepEqual(run({ silentChecks: 4, failing: true, now }, "ignore"), [0, 4]);
  assert.deepEqual(run({ silentChecks: 0, now }, "fail"), [1, 0]);
});

Deno.test("judge: output remembered inside the window is alive when the answer no longer shows it", () => {
  const now = Date.parse("2026-11-25T13:00:00Z");
  const empty: Answer = { status: 200, body: "", bytes: 0, type: "text/plain" };
  const state = { silentChecks: 1, lastOutput: "2026-11-25T12:57:30.000Z", now };
  const rotated = judge(empty, state, { ...TRIANGULAR, ...ANY_LINE }, TARGET);
  assert.deepEqual([rotated.verdict, rotated.code, rotated.silentChecks], ["alive", 0, 0]);
  assert.match(rotated.message, /^alive: output 2m30s ago, inside the 180s window/);
  assert.equal(rotated.lastOutput, "2026-11-25T12:57:30.000Z");
  const older = judge(empty, { ...state, silentChecks: 0 }, { ...TRIANGULAR, ...ANY_LINE }, TARGET);
  assert.deepEqual([older.verdict, older.silentChecks], ["silent", 1]);
  // more written since the last check than one read holds, none of the newest lines counting:
  // silent, and the line names the flag
  const patterns = { ...TRIANGULAR, ...ANY_LINE, match: [/processed/] };
  const scan = { lines: 3, stamped: 3, bytes: 100, skipped: true };
  const hidden = judge(
    { status: 200, body: "", bytes: 100, type: "text/plain", scan },
    { ...state, silentChecks: 0 },
    patterns,
    TARGET,
  );
  assert.deepEqual([hidden.verdict, hidden.code], ["silent", 1]);
  assert.match(hidden.message, /more than --limit-bytes since the last check/);
  // the deadline came while lines were matched: judged on those, never unknown
  const slow = judge(
    { status: 200, body: "", bytes: 100, type: "text/plain", scan: { ...scan, outOfTime: true } },
    { ...state, silentChecks: 0 },
    patterns,
    TARGET,
  );
  assert.deepEqual([slow.verdict, slow.code], ["silent", 1]);
  assert.match(slow.message, /only 3 lines matched within --timeout: raise it/);
});

Deno.test("utc writes what toISOString writes, without its memory", () => {
  const random = mulberry32(7);
  const times = [0, 951_782_400_000, 951_868_800_000, 4_102_444_800_000, 1_795_608_000_123];
  for (let i = 0; i < 10_000; i++) times.push(Math.floor(random() * 4e12));
  for (const ms of times) assert.equal(utc(ms), new Date(ms).toISOString(), String(ms));
});

Deno.test("judge: stamps with nanoseconds or an offset, from the future, or no date at all", () => {
  const options = { ...TRIANGULAR, ...ANY_LINE };
  const now = Date.parse("2026-11-25T12:01:00Z");
  const log = (body: string) => ({ status: 200, body, bytes: body.length, type: "text/plain" });
  // The kubelet may print the runtime's offset and nine digits: remembered in UTC, to the ms.
  const offset = judge(
    log("2026-11-25T13:00:30.123456789+01:00 hi\n"),
    { silentChecks: 0, now },
    options,
    TARGET,
  );
  assert.deepEqual([offset.verdict, offset.lastOutput], ["alive", "2026-11-25T12:00:30.123Z"]);
  // A remembered line ahead of the clock (it stepped back) proves nothing: forgotten, not alive.
  const future = { silentChecks: 0, lastOutput: "2026-11-25T13:01:00.000Z", now };
  const silent = judge(log(""), future, options, TARGET);
  assert.deepEqual([silent.verdict, silent.lastOutput], ["silent", undefined]);
  // A line stamped after now is remembered as now, never later.
  const ahead = judge(log("2026-11-25T12:05:00Z hi\n"), { silentChecks: 0, now }, options, TARGET);
  assert.equal(ahead.lastOutput, "2026-11-25T12:01:00.000Z");
  // A stamp no date parses is still a line in the window: alive, remembered as the window's start.
  const odd = judge(log("2026-11-25T25:00:00Z hi\n"), { silentChecks: 1, now }, options, TARGET);
  assert.deepEqual([odd.verdict, odd.lastOutput], ["alive", "2026-11-25T11:58:00.000Z"]);
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

Deno.test("parseCounter: garbage and another instance's count become 0 with a note", () => {
  assert.deepEqual(parseCounter(undefined, "1:2"), {
    silentChecks: 0,
    instance: "1:2",
    failures: 0,
    missing: true,
  });
  // 0.1.0's line: count and instance; a count of 7 was 7 failures in a row
  assert.deepEqual(parseCounter("7 1:2\n", "1:2"), {
    silentChecks: 7,
    instance: "1:2",
    failures: 7,
    failing: true,
  });
  // 0.2.0 named the instance by device and inode: the same instance with a birth time now.
  assert.equal(parseCounter("7 1:2\n", "1:2:mi3x8k").silentChecks, 7);
  assert.equal(parseCounter("7 1:2\n", "1:3:mi3x8k").silentChecks, 0);
  // 0.2.0's line: count, instance, newest output, pass or fail
  assert.deepEqual(parseCounter("0 1:2 2026-11-25T12:00:00.500Z pass\n", "1:2"), {
    silentChecks: 0,
    instance: "1:2",
    lastOutput: "2026-11-25T12:00:00.500Z",
    failures: 0,
  });
  // this release's line, back and forth
  const full = {
    silentChecks: 3,
    instance: "1:2:mi3x8k",
    lastOutput: "2026-11-25T12:00:00.500Z",
    failures: 2,
    seenUntil: "2026-11-25T12:03:00.000Z",
    countedAt: "2026-11-25T12:03:00.000Z",
    unreadable: true,
    failing: true,
    errors: 1,
  };
  assert.deepEqual(parseCounter(formatCounter(full), "1:2:mi3x8k"), full);
  assert.ok(formatCounter(full).length < 256);
  assert.match(parseCounter("7 1:1\n", "1:2").note!, /previous container instance/);
  assert.equal(parseCounter("7 1:1\n", "1:2").silentChecks, 0);
  for (
    const garbage of [
      "",
      "abc",
      "-1 1:2",
      "1e3 1:2",
      "7",
      "99999999999 1:2",
      "1 1:2 - maybe",
      "1 1:2 2026-13-45T99:00:00.000Z pass",
      "1 1:2 yesterday-at-noon-or-so pass",
      "1 1:2 - 1 - - 4",
      "1 1:2 - x - - 0",
      "1 1:2 - 1 2026-13-45T99:00:00.000Z - 0",
    ]
  ) {
    const counter = parseCounter(garbage, "1:2");
    assert.equal(counter.silentChecks, 0, garbage);
    assert.match(counter.note!, /garbage/);
  }
  const counter = {
    silentChecks: 4,
    instance: "-",
    lastOutput: "2026-11-25T12:00:00.000Z",
    failures: 0,
  };
  assert.deepEqual(parseCounter(formatCounter(counter), "1:2"), { ...counter, instance: "1:2" });
});

Deno.test("simulate: the default settings restart after 2h14m-2h15m, not the article's 105 minutes", () => {
  const options: PlanOptions = { ...TRIANGULAR, period: 60, failureThreshold: 15 };
  const worst = simulate(options, 60);
  assert.equal(worst.restartAfter, 2 * 3600 + 15 * 60);
  assert.equal(worst.streak.length, 15);
  assert.deepEqual(
    worst.streak.map(([, window]) => window),
    Array.from({ length: 15 }, (_, n) => windowFor(n, TRIANGULAR)),
  );
  assert.ok(worst.resets.length > 0);
  assert.equal(simulate(options, 1).restartAfter, 2 * 3600 + 14 * 60 + 1);
  const fixed = simulate({ window: 60, growth: "fixed", period: 60, failureThreshold: 3 }, 30);
  assert.deepEqual(fixed, {
    phase: 30,
    restartAfter: 210,
    resets: [],
    streak: [[90, 60], [150, 60], [210, 60]],
  });
  const text = renderPlan(options);
  assert.match(text, /Restart after 2h14m1s to 2h15m of silence/);
  assert.match(text, /streak reset at 3m/);
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

// ---------------------------------------------------------------------------
// The real probe, as a subprocess, against the HTTPS stand-in

const clusters: Cluster[] = [];
async function cluster(options?: { containers?: string[] }): Promise<Cluster> {
  const started = await Cluster.start(options);
  clusters.push(started);
  return started;
}

Deno.test("a container that logged in the window is alive, and its counter is reset", async () => {
  const c = await cluster();
  await c.setCounter(3);
  const at = c.server.now - 500_000;
  c.server.log(c.pod, "processed job 42", "app", at);
  const run = await c.run();
  assert.equal(run.stdout, "alive: output in the last 600s (after 3 silent checks in a row)\n");
  assert.equal(run.code, 0);
  assert.equal(run.stderr, "");
  // the count, the container instance, and the newest output seen (for rotation and outages)
  assert.equal(await c.counter(), c.counterLine(0, at));
  const seen = c.server.seen.at(-1)!;
  assert.equal(seen.path, "/api/v1/namespaces/shop/pods/worker-7d9f/log");
  assert.equal(seen.query.toString(), "sinceSeconds=600&tailLines=1&timestamps=true&limitBytes=64");
  await c.stop();
});

Deno.test("a silent window fails the probe and widens the next window", async () => {
  const c = await cluster();
  const at = c.server.now - 61_000;
  c.server.log(c.pod, "last words", "app", at);
  const first = await c.run();
  assert.equal(first.code, 1);
  assert.equal(
    first.stdout,
    "silent: no output in the last 60s (1 silent check in a row; next window 180s); last output 1m1s ago\n",
  );
  // the last words are remembered: a rotation cannot hide that line from the next checks
  assert.equal(await c.counter(), c.counterLine(1, at));
  c.server.now += 60_000;
  const second = await c.run();
  assert.equal(second.code, 0, "the line at -121s is back inside the 180s window");
  assert.match(second.stdout, /^alive: output in the last 180s/);
  await c.stop();
});

Deno.test("a blank line is output: the only line in the window counts as alive", async () => {
  const c = await cluster();
  c.server.log(c.pod, "");
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^alive/);
  await c.stop();
});

Deno.test("50 MB of output in the window: the server sends at most one short line", async () => {
  const c = await cluster();
  const line = `${"x".repeat(99)}`;
  const records = c.pod.containers.get("app")!;
  for (let i = 0; i < 500_000; i++) {
    records.push({ at: c.server.now - 30_000 + i / 100, text: line });
  }
  const run = await c.run();
  assert.equal(run.code, 0);
  assert.match(run.stdout, /^alive/);
  const seen = c.server.seen.at(-1)!;
  assert.ok(seen.bytes <= LIMIT_BYTES, `${seen.bytes} bytes`);
  assert.ok(seen.bytes > 20);
  await c.stop();
});

Deno.test("refused connections: after a failure, fail one step wider; after a pass, pass", async () => {
  const c = await cluster();
  await c.setCounter(2); // two silent checks, failed
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const server = `127.0.0.1:${port}`;
  const streak = await c.run([], { server });
  assert.equal(streak.code, 1);
  assert.match(
    streak.stdout,
    /^unknown: API server unreachable: .*Connection refused; failed, as the check before \(3 silent in a row\)$/m,
  );
  assert.equal(await c.counter(), c.counterLine(3));
  await c.setCounter(0);
  const passed = await c.run([], { server });
  assert.equal(passed.code, 0);
  assert.match(passed.stdout, /Connection refused; not counted, as the check before passed$/m);
  assert.equal(await c.counter(), c.counterLine(1, undefined, 0));
  await c.setCounter(0);
  const failing = await c.run(["--on-api-error=fail"], { server });
  assert.equal(failing.code, 1);
  assert.match(failing.stdout, /^unknown: .*; failed$/m);
  assert.equal(await c.counter(), c.counterLine(0, undefined, 1));
  await c.setCounter(5);
  const ignoring = await c.run(["--on-api-error=ignore"], { server });
  assert.equal(ignoring.code, 0);
  assert.match(ignoring.stdout, /^unknown: .*; not counted$/m);
  assert.equal(await c.counter(), c.counterLine(5, undefined, 0));
  await c.stop();
});

Deno.test("a connection closed mid-handshake, and a DNS failure, are unknown", async () => {
  const c = await cluster();
  await c.setCounter(0);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closer = (async () => {
    for await (const conn of listener) conn.close();
  })();
  const host = `127.0.0.1:${listener.addr.port}`;
  const closed = await c.run([], { server: host });
  assert.equal(closed.code, 0);
  assert.match(closed.stdout, /^unknown: API server unreachable: .*(eof|reset|closed)/i);
  listener.close();
  await closer.catch(() => {});
  const dns = await c.run([], { server: "no-such-host.invalid" });
  assert.equal(dns.code, 0);
  assert.match(dns.stdout, /^unknown: API server unreachable: dns error/);
  assert.equal(await c.counter(), c.counterLine(2, undefined, 0), "passed, window grown");
  await c.stop();
});

Deno.test("an API server that never answers: the probe gives up on its own deadline, unknown", async () => {
  const c = await cluster();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const holder = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const host = `127.0.0.1:${listener.addr.port}`;
  const run = await c.run(["--timeout", "1s"], { server: host });
  assert.equal(run.code, 0);
  assert.equal(
    run.stdout,
    "unknown: no answer from the API server within 1s; not counted, as the check before passed\n",
  );
  assert.ok(run.ms < 3000, `${run.ms} ms`);
  assert.equal(await c.counter(), c.counterLine(1, undefined, 0));
  listener.close();
  held.forEach((conn) => conn.close());
  await holder.catch(() => {});
  await c.stop();
});

Deno.test("429, 500 and 503 from the API server are unknown: a failure streak goes on", async () => {
  const c = await cluster();
  await c.setCounter(4);
  for (const [i, code] of [429, 500, 503].entries()) {
    c.server.override = {
      status: code,
      headers: { "content-type": "application/json", "retry-after": "1" },
      body: JSON.stringify({ kind: "Status", code, message: "the server is busy" }),
    };
    const run = await c.run();
    assert.equal(run.code, 1, String(code));
    assert.match(
      run.stdout,
      new RegExp(
        `^unknown: API server answered ${code} the server is busy; failed, as the check before \\(${
          5 + i
        } silent in a row\\)`,
      ),
    );
    assert.equal(await c.counter(), c.counterLine(5 + i));
  }
  await c.stop();
});

Deno.test("400, 401, 403 and 404 are errors that say what to fix, counted as failures in a row", async () => {
  const c = await cluster({ containers: ["app", "sidecar"] });
  await Deno.writeTextFile(c.stateFile, c.counterLine(2, undefined, 0)); // passing, window 2 steps wide
  const multi = await c.run();
  assert.equal(multi.code, 2);
  assert.equal(
    multi.stdout,
    "error: a container name must be specified for pod worker-7d9f, choose one of: [app sidecar] (pass --container)\n",
  );
  // Counted as a failure in a row; the silent count stays.
  assert.equal(await c.counter(), c.counterLine(2, undefined, 1, { errors: 1 }));
  c.server.log(c.pod, "hi", "app");
  const named = await c.run(["-c", "app"]);
  assert.equal(named.code, 0);
  assert.equal(c.server.seen.at(-1)!.query.get("container"), "app");
  const none = { failureThreshold: null };
  const wrongPod = await c.run(["-c", "app"], { ...none, env: { HOSTNAME: "worker-0000" } });
  assert.equal(wrongPod.code, 2);
  assert.match(wrongPod.stdout, /^error: not found: pod shop\/worker-0000/);
  c.server.grants.clear();
  // Without --failure-threshold an error fails every other check: the wrong pod failed once,
  // so this one passes (and says why), and the next fails again.
  const forbidden = await c.run(["-c", "app"], none);
  assert.equal(forbidden.code, 0);
  assert.equal(
    forbidden.stdout,
    "error: forbidden: the service account system:serviceaccount:shop:log-probe cannot get pods/log in shop (bind the Role log-probe to it); passed this once, so the kubelet never restarts for it\n",
  );
  c.server.tokens.clear();
  const unauthorized = await c.run(["-c", "app"], none);
  assert.equal(unauthorized.code, 2);
  assert.match(unauthorized.stdout, /^error: unauthorized/);
  await c.stop();
});

Deno.test("a server certificate from another CA is refused, never retried without verification", async () => {
  const c = await cluster();
  const other = await makePki();
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, other.caCert);
  const requests = c.server.seen.length;
  const run = await c.run();
  assert.equal(run.code, 2);
  assert.match(run.stdout, /^error: API server certificate rejected: invalid peer certificate/);
  assert.equal(c.server.seen.length, requests, "no request got through");
  await Deno.remove(other.dir, { recursive: true });
  await c.stop();
});

Deno.test("a server certificate for another host name is refused", async () => {
  const c = await cluster();
  const pki = await makePki({ hosts: ["DNS:api.example.com"] });
  const server = new FakeApiServer(pki);
  await Deno.writeTextFile(`${c.paths.serviceAccountDir}/ca.crt`, pki.caCert);
  const run = await c.run([], {
    env: { KUBERNETES_SERVICE_PORT: String(server.port) },
    flags: denoFlags(c.paths, `127.0.0.1:${server.port}`),
  });
  assert.equal(run.code, 2);
  assert.match(
    run.stdout,
    /^error: API server certificate rejected: invalid peer certificate: certificate not valid for name "127\.0\.0\.1"/,
  );
  assert.equal(server.seen.length, 0);
  await server.close();
  await Deno.remove(pki.dir, { recursive: true });
  await c.stop();
});

Deno.test("missing, empty or unusable credentials are errors, counter kept", async () => {
  const c = await cluster();
  await c.setCounter(5);
  const token = `${c.paths.serviceAccountDir}/token`;
  const ca = `${c.paths.serviceAccountDir}/ca.crt`;
  const threshold = ["--failure-threshold", "15"];
  const cases: Array<[string | undefined, string | undefined, RegExp]> = [
    ["", c.pki.caCert, /^error: Empty service-account token/],
    [undefined, c.pki.caCert, /^error: No service-account token at .*automountServiceAccountToken/],
    ["two\nlines", c.pki.caCert, /^error: The token at .* holds characters no bearer token has/],
    [c.token, undefined, /^error: No CA certificate at/],
    [c.token, "not a certificate", /^error: No PEM certificate in/],
  ];
  for (const [tokenText, caText, expected] of cases) {
    await Deno.remove(token).catch(() => {});
    await Deno.remove(ca).catch(() => {});
    if (tokenText !== undefined) await Deno.writeTextFile(token, tokenText);
    if (caText !== undefined) await Deno.writeTextFile(ca, caText);
    await Deno.writeTextFile(c.stateFile, c.counterLine(5, undefined, 0)); // passing, window 5 steps wide
    const run = await c.run(threshold);
    assert.equal(run.code, 2, run.stdout);
    assert.match(run.stdout, expected);
    assert.equal(run.stdout.split("\n").length, 2, "one line");
    assert.equal(
      await c.counter(),
      c.counterLine(5, undefined, 1, { errors: 1 }),
      "one failure, count kept",
    );
  }
  assert.equal(c.server.seen.length, 0, "nothing was sent without credentials");
  await c.stop();
});

Deno.test("bad flags: one line, counted as a failure in a row like any error, nothing sent", async () => {
  const c = await cluster();
  await Deno.writeTextFile(c.stateFile, c.counterLine(3, undefined, 0)); // passing, window 3 steps wide
  const bad = [["--bogus"], ["--window", "0"], ["--window", "-5s"], ["--window", "abc"], [
    "--growth",
    "sideways",
  ]];
  for (const args of bad) {
    const run = await c.run(args);
    assert.equal(run.code, 2, args.join(" "));
    assert.match(run.stdout, /^error: .*"/);
    assert.equal(run.stdout.split("\n").length, 2);
    assert.equal(run.stderr, "");
  }
  assert.equal(await c.counter(), c.counterLine(3, undefined, bad.length, { errors: bad.length }));
  assert.equal(c.server.seen.length, 0);
  await c.stop();
});

Deno.test("a counter file holding garbage counts as 0 and the line says so", async () => {
  const c = await cluster();
  await Deno.writeTextFile(c.stateFile, "\x00\x01garbage");
  const run = await c.run();
  assert.equal(run.code, 1);
  assert.equal(
    run.stdout,
    "silent: no output in the last 60s (1 silent check in a row; next window 180s); counter file held garbage, counted as 0\n",
  );
  assert.equal(await c.counter(), c.counterLine(1));
  await c.stop();
});

Deno.test("a counter left by a previous container instance does not carry over", async () => {
  const c = await cluster();
  await c.setCounter(14);
  await c.restartContainer();
  const run = await c.run();
  assert.equal(run.code, 1);
  assert.match(
    run.stdout,
    /^silent: no output in the last 60s \(1 silent check in a row.*previous container instance discarded$/m,
  );
  assert.equal(await c.counter(), c.counterLine(1));
  await c.stop();
});

Deno.test("a counter that cannot be written never turns output into a failure", async () => {
  const c = await cluster();
  await c.setCounter(2);
  c.server.log(c.pod, "still here");
  await Deno.chmod(c.paths.stateDir, 0o500);
  const flags = denoFlags(c.paths, `127.0.0.1:${c.server.port}`);
  // root ignores file modes: take the write permission away from Deno instead
  flags.splice(flags.findIndex((flag) => flag.startsWith("--allow-write")), 1);
  const run = await c.run([], { flags });
  assert.equal(run.code, 0);
  assert.match(
    run.stdout,
    /^alive: output in the last 360s.*; warning: counter not saved to .*counter/,
  );
  await Deno.chmod(c.paths.stateDir, 0o700);
  await c.stop();
});

Deno.test("--growth fixed keeps the failures in a row: a lost answer in a silent streak fails", async () => {
  const c = await cluster();
  for (let i = 0; i < 3; i++) {
    const run = await c.run(["--growth", "fixed", "--window", "2m"]);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^silent: no output in the last 120s/);
  }
  c.server.override = { status: 503, body: "busy" };
  const lost = await c.run(["--growth", "fixed", "--window", "2m"]);
  assert.equal(lost.code, 1, lost.stdout);
  assert.match(lost.stdout, /^unknown: API server answered 503 busy; failed, as the check before/);
  assert.equal(await c.counter(), c.counterLine(4, undefined, 4));
  await c.stop();
});

Deno.test("--help, --version and plan print without any permission", async () => {
  const c = await cluster();
  const bare = { flags: ["run", "--no-prompt", "--no-config"] };
  const help = await c.run(["--help"], bare);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^log-probe /);
  const plan = await c.run([
    "plan",
    "--window",
    "30s",
    "--failure-threshold",
    "3",
    "--period",
    "30s",
  ], bare);
  assert.equal(plan.code, 0);
  assert.match(plan.stdout, /Restart after/);
  await c.stop();
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

Deno.test("a 300-check timeline matches the schedule model check by check, restart included", async () => {
  const c = await cluster();
  const random = mulberry32(20261125);
  // A worker that logs in bursts, with silences from seconds to three hours.
  const start = c.server.now;
  const lines: number[] = [];
  let t = start - 30_000;
  for (let gap = 0; t < start + 300 * 60_000; gap++) {
    const burst = 1 + Math.floor(random() * 20);
    for (let i = 0; i < burst; i++) lines.push(t += random() * 60_000);
    // every third silence is long: 2h to 3h, around the 2h14m the plan predicts
    t += gap % 3 === 1 ? 2 * 3600_000 + random() * 3600_000 : random() * 40 * 60_000;
  }
  let silentChecks = 0;
  let failures = 0;
  const restarts: number[] = [];
  const mismatches: string[] = [];
  for (let check = 1; check <= 300; check++) {
    c.server.now = start + check * 60_000;
    const records = c.pod.containers.get("app")!;
    while (lines.length && lines[0] <= c.server.now) {
      records.push({ at: lines.shift()!, text: `job ${check}` });
    }
    // The model: SPEC.md's window, the kubelet's last line, since and failure count.
    const window = 60 * (silentChecks + 1) * (silentChecks + 2) / 2;
    const last = records.at(-1)?.at;
    const alive = last !== undefined && last >= c.server.now - window * 1000;
    silentChecks = alive ? 0 : silentChecks + 1;
    failures = alive ? 0 : failures + 1;

    const run = await c.run();
    const file = await c.counter();
    // The check's own request; a silent check adds one for the last words, without a window.
    const asked = c.server.seen.filter((s) => s.query.has("sinceSeconds")).at(-1)!;
    const got = `exit ${run.code}, sinceSeconds ${asked.query.get("sinceSeconds")}, counter ${
      file === undefined ? 0 : file
    }`;
    // The counter remembers the newest line a check saw: the last one, alive or in last words.
    const want = `exit ${alive ? 0 : 1}, sinceSeconds ${window}, counter ${
      file === undefined && alive ? 0 : c.counterLine(silentChecks, last)
    }`;
    if (got !== want) mismatches.push(`check ${check}: got ${got}, want ${want}`);
    if (failures === 15) {
      restarts.push(check);
      failures = silentChecks = 0;
      await c.restartContainer();
    }
  }
  assert.deepEqual(mismatches, []);
  assert.ok(restarts.length >= 1, "the timeline holds at least one restart");
  console.log(`timeline: 300 checks match the model; restarts at checks ${restarts.join(", ")}`);
  await c.stop();
});

Deno.test("the token appears in no output of any probe run", () => {
  for (const c of clusters) {
    for (const output of c.outputs) assert.ok(!output.includes(c.token));
    assert.ok(c.outputs.length > 0);
  }
  assert.ok(clusters.length > 10);
});

Deno.test("decide: the kubelet's log-file error twice in a row is an empty log, once a lost answer", () => {
  const now = Date.parse("2026-11-25T13:00:00Z");
  const options = { ...TRIANGULAR, ...ANY_LINE };
  const error: Answer = {
    status: 200,
    type: "text/plain",
    body: 'failed to try resolving symlinks in path "/var/log/pods/a/app/0.log": lstat …',
    bytes: 80,
  };
  // Once, after a pass: unknown, passes, and remembers the error.
  const once = judge(error, { silentChecks: 0, failures: 0, now }, options, TARGET);
  assert.deepEqual([once.verdict, once.code, once.unreadable], ["unknown", 0, true]);
  // Twice: judged as an empty log. Output remembered inside the window still passes …
  const recent = { silentChecks: 0, failures: 0, unreadable: true, now };
  const remembered = judge(
    error,
    { ...recent, lastOutput: "2026-11-25T12:59:30.000Z" },
    options,
    TARGET,
  );
  assert.deepEqual([remembered.verdict, remembered.code], ["alive", 0]);
  // … otherwise the check fails as silence does, and the window grows.
  const twice = judge(
    error,
    { ...recent, lastOutput: "2026-11-25T12:50:00.000Z" },
    options,
    TARGET,
  );
  assert.deepEqual([twice.verdict, twice.code, twice.silentChecks, twice.unreadable], [
    "silent",
    1,
    1,
    true,
  ]);
  assert.match(twice.message, /the kubelet cannot open the log file, twice in a row/);
});

Deno.test("decide: a second probe's check in the same period gives its verdict, the counts stay", () => {
  const now = Date.parse("2026-11-25T13:00:00Z");
  const options = { ...TRIANGULAR, ...ANY_LINE, failureThreshold: 15 };
  const state = { silentChecks: 4, failures: 4, lastOutput: "2026-11-25T12:00:00.000Z", now };
  const quiet: Evidence = { kind: "quiet" };
  const first = decide(quiet, state, options);
  assert.deepEqual([first.code, first.silentChecks, first.failures], [1, 5, 5]);
  const second = decide(quiet, { ...state, counted: false }, options);
  assert.deepEqual([second.code, second.silentChecks, second.failures], [1, 4, 4]);
  assert.match(second.message, /counted by this period's check before \(two probes on one counter/);
  // A misconfiguration seen by the second probe: its exit follows the failures, unrecorded.
  const error: Evidence = { kind: "misconfigured", why: "forbidden" };
  const last = decide(error, { ...state, failures: 14, counted: false }, options);
  assert.deepEqual([last.code, last.failures], [0, 14]);
});

/** Plays the kubelet over a sequence of evidence with decide: every exit, and the restart. */
function kubelet(
  sequence: Array<Evidence & { counted?: boolean }>,
  threshold: number,
  start: Partial<CheckState> = {},
): { codes: string; restartAt?: number } {
  const options = { ...TRIANGULAR, ...ANY_LINE, failureThreshold: threshold };
  let state: CheckState = { silentChecks: 0, failures: 0, now: 0, ...start };
  let codes = "";
  let run = 0;
  for (const [i, { counted, ...evidence }] of sequence.entries()) {
    const now = (state.now || Date.parse("2026-11-25T12:00:00Z")) + 60_000;
    const outcome = decide(evidence as Evidence, { ...state, now, counted }, options);
    codes += outcome.code;
    run = outcome.code === 0 ? 0 : run + 1;
    if (run === threshold) return { codes, restartAt: i };
    state = { ...outcome, now };
  }
  return { codes };
}

const repeat = <T>(n: number, item: T): T[] => Array.from({ length: n }, () => item);

Deno.test("decide over a life: errors never make a restart, and never prevent one", () => {
  const error: Evidence = { kind: "misconfigured", why: "forbidden" };
  const lost: Evidence = { kind: "lost", why: "refused" };
  const quiet: Evidence = { kind: "quiet" };
  const old = { lastOutput: "2026-11-25T10:00:00.000Z" };
  // A misconfiguration, then an outage: the container last seen alive is never failed.
  const outage = kubelet([...repeat(5, error), ...repeat(12, lost)], 15, old);
  assert.equal(outage.codes, "22222000000000000");
  assert.equal(outage.restartAt, undefined);
  // A misconfiguration alone: 14 failures, a pass, for ever.
  const forever = kubelet(repeat(200, error), 15);
  assert.equal(forever.restartAt, undefined);
  assert.equal(forever.codes.slice(0, 16), "2222222222222202");
  // Silence and errors taking turns (an API server replica that answers 401): the errors are
  // blind, as an outage is, so the streak goes on and a hung container is restarted, whatever
  // the threshold's parity.
  for (const threshold of [14, 15, 16]) {
    const turns = kubelet(repeat(100, [quiet, error]).flat(), threshold, {
      lastOutput: "2026-11-24T12:00:00.000Z", // a day before: no window reaches back to it
    });
    assert.equal(turns.restartAt, threshold - 1, `threshold ${threshold}: ${turns.codes}`);
  }
  // Errors, then silence: the restart waits for 15 silent checks of its own.
  const after = kubelet([...repeat(5, error), ...repeat(40, quiet)], 15, old);
  assert.ok(after.restartAt! >= 5 + 15, after.codes);
  // Two probes on one counter, or --period twice periodSeconds: a check that does not count
  // never fails for an error.
  const shared = kubelet(repeat(100, [error, { ...error, counted: false }]).flat(), 15);
  assert.equal(shared.restartAt, undefined, shared.codes);
});

Deno.test("checkQuery: a check with patterns reads from 2 s before the last read, within an hour or the window", () => {
  const now = Date.parse("2026-11-25T12:00:00Z");
  const lines = { ...ANY_LINE, match: [/job/] };
  const at = (seconds: number) => utc(now + seconds * 1000);
  const from = (window: number, seenUntil: string) => checkQuery(window, lines, { now, seenUntil });
  assert.equal(from(180, "2026-11-25T11:59:00.500Z").sinceTime, "2026-11-25T11:58:58Z");
  assert.equal(from(60, at(-1800)).sinceTime, "2026-11-25T11:29:58Z", "behind, caught up");
  assert.equal(from(60, at(-3598)).sinceTime, "2026-11-25T11:00:00Z", "an hour back, at most");
  assert.deepEqual(from(60, at(-3599)), { sinceSeconds: 60, limitBytes: 262144 });
  assert.equal(from(7200, at(-5000)).sinceTime, "2026-11-25T10:36:38Z", "a window over an hour");
  assert.equal(from(60, at(2)).sinceTime, "2026-11-25T12:00:00Z");
  assert.deepEqual(from(60, at(10)), { sinceSeconds: 60, limitBytes: 262144 }, "from the future");
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

Deno.test("evidenceOf: 408 is lost; a cut answer's unfinished line is not judged; the window's edge", () => {
  const job = { ...ANY_LINE, match: [/job/] };
  assert.equal(evidenceOf({ status: 408, body: "{}", bytes: 2 }, job, TARGET).kind, "lost");
  const body = "2026-11-25T12:00:00Z other\n2026-11-25T12:00:01Z job";
  const cut = { status: 200, body, bytes: body.length, limit: body.length, type: "text/plain" };
  assert.equal(evidenceOf(cut, job, TARGET).kind, "quiet");
  const edge = Date.parse("2026-11-25T12:00:00Z");
  const scan = { lines: 1, stamped: 1, bytes: 40, newest: { at: edge, text: "job" } };
  const answer = { status: 200, body: "", bytes: 40, type: "text/plain", scan };
  assert.deepEqual(evidenceOf(answer, job, TARGET, { since: edge - 5000, windowStart: edge }), {
    kind: "output",
    at: edge,
  });
  assert.deepEqual(
    evidenceOf(answer, job, TARGET, { since: edge - 5000, windowStart: edge + 1 }),
    { kind: "quiet", seen: edge },
  );
});

Deno.test("decide and remember at their edges", () => {
  const now = Date.parse("2026-11-25T12:00:00Z");
  const options = { ...TRIANGULAR, ...ANY_LINE };
  const quiet: Evidence = { kind: "quiet" };
  const error = decide({ kind: "misconfigured", why: "x" }, { silentChecks: 0, now }, options);
  assert.deepEqual([error.code, error.failures], [2, 1], "without --failure-threshold: 2");
  const at = (s: number) => utc(now + s * 1000);
  assert.equal(decide(quiet, { silentChecks: 0, lastOutput: at(-60), now }, options).code, 0);
  assert.equal(decide(quiet, { silentChecks: 0, lastOutput: at(-61), now }, options).code, 1);
  const ahead = decide(quiet, { silentChecks: 0, lastOutput: at(30), now }, options);
  assert.match(ahead.message, /^alive: output 0s ago/);
  assert.equal(decide(quiet, { silentChecks: 0, lastOutput: at(60), now }, options).code, 0);
  assert.equal(decide(quiet, { silentChecks: 0, lastOutput: at(61), now }, options).code, 1);
  const older = decide({ kind: "output", at: now - 30_000 }, {
    silentChecks: 0,
    lastOutput: at(-10),
    now,
  }, options);
  assert.equal(older.lastOutput, at(-10), "an older line never replaces a newer one");
  const second = { silentChecks: 0, failing: true, now, counted: false };
  assert.equal(decide(quiet, second, options).failures, 1);
  const pass = decide({ kind: "output", at: now }, { ...second, failing: false }, options);
  assert.equal(pass.message, "alive: output in the last 60s");
  assert.equal(remember("2026-11-25T12:00:00Z", now, now + 1000), "2026-11-25T12:00:00Z");
  assert.equal(remember(undefined, NaN, now), undefined);
});

Deno.test("parseCounter and formatCounter at their edges", () => {
  assert.equal(parseCounter("0 1:2 - 1 - - 2 5\n", "1:2").errors, 1, "never more than failures");
  assert.equal(parseCounter("0 1:2 - fail\n", "1:2").failures, 1);
  assert.equal(parseCounter("7 1:1:x - 7 - - 2 0\n", "-").silentChecks, 7, "no instance: kept");
  assert.equal(
    formatCounter({ silentChecks: 0, instance: "-", failures: 123456, errors: 123456 }),
    "0 - - 9999 - - 0 9999\n",
  );
});
