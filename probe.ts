/**
 * log-probe: a Kubernetes exec liveness probe for containers that offer no
 * health endpoint. It asks the API server for the container's own console
 * output in a recent window: output means alive, silence means hung. Each
 * silent check in a row widens the window (60s, 180s, 360s … by default), so
 * a quiet but healthy worker is not killed between two prints.
 *
 * Run it inside the container, e.g.
 *
 * ```sh
 * deno run --no-prompt --no-config --no-lock --no-remote --no-npm \
 *   --v8-flags=--enable-experimental-regexp-engine \
 *   --allow-read=/var/run/secrets/kubernetes.io/serviceaccount,/termination-log,/var/lib/log-probe \
 *   --allow-write=/var/lib/log-probe --allow-env=POD_NAME,NO_PROXY --allow-net=kubernetes.default.svc \
 *   probe.ts --state-file=/var/lib/log-probe/state --termination-message-path=/termination-log
 * ```
 *
 * Permissions: read the service-account folder, the termination-message file
 * (it tells container instances apart) and the state file's folder; write the
 * state file's folder; the environment variables it should consult (POD_NAME
 * here; KUBERNETES_SERVICE_HOST/PORT, NAMESPACE, POD_NAMESPACE, HOSTNAME,
 * CONTAINER_NAME where used); the API server's host. The V8 flag lets
 * --match/--ignore run in linear time. The service account's
 * role needs `get` on `pods/log` only. No imports: it runs offline from a
 * ConfigMap.
 *
 * Exit codes: 0 alive (or API unreachable), 1 silent, 2 misconfigured (never the kubelet's
 * failureThreshold-th failure in a row: see `decide`).
 *
 * @module
 */

/** The version `--version` prints. */
export const VERSION = "0.3.0";

/** How the window grows with each silent check in a row. */
export type Growth = "triangular" | "linear" | "exponential" | "fixed";

/** What one check concluded. */
export type Verdict = "alive" | "silent" | "unknown" | "error";

/** The window flags, shared by every command. Durations in seconds. */
export interface WindowOptions {
  window: number;
  growth: Growth;
  maxWindow?: number;
}

/** Which lines are signs of life. With no patterns, any output is. */
export interface LineOptions {
  /** Only lines matching one of these count (when any are given). */
  match: RegExp[];
  /** Lines matching one of these never count. */
  ignore: RegExp[];
  /** Lines asked for when there are patterns (`tailLines`). */
  tail: number;
  /** Bytes asked for when there are patterns (`limitBytes`). */
  limitBytes: number;
  /** When set, matching stops at this `performance.now()` time: {@linkcode OutOfTime}. */
  deadline?: number;
}

/** The kubelet's probe settings, for `plan` and `backtest`. */
export interface PlanOptions extends WindowOptions {
  /** The probe's `periodSeconds`. */
  period: number;
  /** The probe's `failureThreshold`. */
  failureThreshold: number;
}

/** Options of one check (and of `doctor`), as given on the command line. */
export interface CheckOptions extends WindowOptions, LineOptions {
  server?: string;
  namespace?: string;
  pod?: string;
  container?: string;
  stateFile: string;
  /** Deadline of the whole check, in seconds. */
  timeout: number;
  /** What a lost answer (`unknown`) does to the kubelet's count; see {@linkcode ApiErrorMode}. */
  onApiError: ApiErrorMode;
  serviceAccountDir: string;
  terminationMessagePath: string;
  /** Quote the last line on the silent path. */
  lastLine: boolean;
  /** The probe's `periodSeconds`, when given. */
  period?: number;
  /** The probe's `failureThreshold`, when given: errors fail at most one fewer checks in a row. */
  failureThreshold?: number;
  output: "line" | "json";
}

/**
 * What an `unknown` check exits with. `streak` (the default): 0 for a container
 * that had output at the last answer, 1 for one in a silent streak (which goes
 * on one step); `ignore`: always 0; `fail`: always 1.
 */
export type ApiErrorMode = "streak" | "ignore" | "fail";

/** Options of `backtest`. */
export interface BacktestOptions extends PlanOptions, LineOptions {
  logFile: string;
}

/** A parsed command line. */
export type Command =
  | { command: "check" | "doctor"; options: CheckOptions }
  | { command: "plan"; options: PlanOptions }
  | { command: "backtest"; options: BacktestOptions }
  | { command: "help" }
  | { command: "version" };

/** Where to ask, for which container: the outcome of flags, environment and files. */
export interface Target {
  server: string;
  namespace: string;
  pod: string;
  container?: string;
}

/**
 * The API server's answer (its body's start, how many bytes that is, its content type), or why
 * there was none: `unreachable` and `timeout` are outages, `expired` a certificate outside its
 * validity (a control-plane fault), `tls` one the pod must not trust, `protocol` a server that
 * does not speak TLS or HTTP as an API server does.
 */
export type Answer =
  | {
    status: number;
    body: string;
    bytes: number;
    type?: string;
    encoding?: string;
    /** The limitBytes asked for: an answer that reaches it was cut there. */
    limit?: number;
    /** A log answer the check read as it streamed, instead of `body`. */
    scan?: Scan;
  }
  | {
    failure: "unreachable" | "timeout" | "expired" | "tls" | "protocol" | "permission";
    detail: string;
  };

/** What a check knows before it asks: the counter file's memory, and the time. */
export interface CheckState {
  /** Silent checks in a row so far: the window's step. */
  silentChecks: number;
  /** The newest line that counted, as an earlier check of this container instance saw it. */
  lastOutput?: string;
  /** The last check of this container instance that could judge the log failed. */
  failing?: boolean;
  /** Non-zero exits in a row so far: the kubelet's count of failures. */
  failures?: number;
  /** How many of those were misconfigurations. */
  errors?: number;
  /** Where the last answered read ended (UTC): a check with patterns reads from there. */
  seenUntil?: string;
  /** The previous check met the kubelet's error on the log file. */
  unreadable?: boolean;
  /** False for a second probe's check within the same period: the silent count stays. */
  counted?: boolean;
  /**
   * The pod's clock, in ms: the node's clock (`CLOCK_REALTIME` is not namespaced), the one the
   * runtime stamps lines with and the kubelet turns `sinceSeconds` into a time with.
   */
  now: number;
}

/** The verdict of one check and the counter it leaves. */
export interface Outcome {
  verdict: Verdict;
  /** The exit code the kubelet sees. */
  code: number;
  /** Silent checks in a row after this check. */
  silentChecks: number;
  /** Non-zero exits in a row after this check. */
  failures: number;
  /** How many of those were misconfigurations. */
  errors: number;
  /** The last check that could judge the log failed. */
  failing: boolean;
  /** This check met the kubelet's error on the log file. */
  unreadable?: boolean;
  /** The line to print, without notes. */
  message: string;
  /** The window this check looked at, in seconds. */
  window: number;
  /** The timestamp of the newest line that counted, in this answer or remembered. */
  lastOutput?: string;
}

/** A misconfiguration or bad input: exit 2 with the message. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Thrown by {@linkcode counts} when matching reaches the check's deadline. */
export class OutOfTime extends Error {
  override name = "OutOfTime";
}

/** The pod's mounted service-account folder, as client-go knows it. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Bytes asked of the kubelet: room for one RFC3339Nano timestamp and more. */
export const LIMIT_BYTES = 64;
/** The longest window ever asked for, ten years, whatever the growth. */
export const WINDOW_LIMIT = 10 * 365 * 86400;
/** Lines are cut to this length; the kubelet shows a probe's output in events. */
export const MAX_LINE = 199;
/** Patterns see at most this much of a line, so a huge line cannot stall a match. */
export const MATCHED_CHARS = 4096;
/** Patterns are at most this long: a linear-time match still grows with the pattern. */
export const MAX_PATTERN = 256;
/**
 * The V8 flag that lets a pattern run on V8's linear-time engine (the `l` flag); without it
 * `--match '^(a+)+$'` backtracks for minutes on a 31-character line.
 */
export const LINEAR_REGEXP_FLAG = "--v8-flags=--enable-experimental-regexp-engine";
/**
 * The longest `--timeout`, five minutes: far inside what a timer can hold (24.8 days), and
 * longer than any exec probe should take to read one line (the kubelet's default
 * timeoutSeconds is 1, the seed article's 10); a longer check only delays the restart.
 */
export const MAX_TIMEOUT = 300;
const MAX_BODY = 4096;
const LAST_LINE_BYTES = 256;

const DEFAULTS = {
  window: 60,
  growth: "triangular" as Growth,
  stateFile: "/tmp/log-probe.state",
  timeout: 5,
  serviceAccountDir: SERVICE_ACCOUNT_DIR,
  period: 60,
  failureThreshold: 15,
  tail: 300,
  limitBytes: 1024 * 1024,
};

type CommandName = "check" | "plan" | "doctor" | "backtest";
const ASKING: CommandName[] = ["check", "doctor"];
const LINES: CommandName[] = ["check", "doctor", "backtest"];
const KUBELET: CommandName[] = ["plan", "backtest", "check", "doctor"];

/** Which commands take each flag. */
const FLAGS: Record<string, CommandName[]> = {
  "server": ASKING,
  "namespace": ASKING,
  "pod": ASKING,
  "container": ASKING,
  "timeout": ASKING,
  "service-account-dir": ASKING,
  "state-file": ASKING,
  "termination-message-path": ASKING,
  "on-api-error": ["check"],
  "last-line": ["check"],
  "output": ["check"],
  "window": ["check", "plan", "doctor", "backtest"],
  "growth": ["check", "plan", "doctor", "backtest"],
  "max-window": ["check", "plan", "doctor", "backtest"],
  "match": LINES,
  "ignore": LINES,
  "tail": LINES,
  "limit-bytes": LINES,
  "period": KUBELET,
  "failure-threshold": KUBELET,
  "log-file": ["backtest"],
};
const SWITCHES = new Set(["last-line"]);
const REPEATABLE = new Set(["match", "ignore"]);
const SHORT_FLAGS: Record<string, string> = { n: "namespace", c: "container" };
const GROWTHS: Growth[] = ["triangular", "linear", "exponential", "fixed"];

/** The `--help` text: one screen. */
export const HELP =
  `log-probe ${VERSION}: a liveness probe that reads the container's own log output

Usage: probe.ts [check] [flags]   one check: exit 0 alive, 1 silent, 2 misconfigured
       probe.ts doctor [flags]    check the set-up, one line each (through kubectl exec)
       probe.ts plan [flags]      each window of a silent streak; when the kubelet restarts
       probe.ts backtest --log-file F [flags]  replay \`kubectl logs --timestamps\` output
       probe.ts --help | --version
Where (flags, else environment, else ${SERVICE_ACCOUNT_DIR}):
  --server URL            API server (KUBERNETES_SERVICE_HOST/_PORT, else kubernetes.default.svc)
  -n, --namespace NAME    (NAMESPACE, POD_NAMESPACE, else the service account's namespace)
  --pod NAME              (POD_NAME, else HOSTNAME)
  -c, --container NAME    (CONTAINER_NAME) needed in pods with more than one container
  --service-account-dir D token, ca.crt and namespace (default as above)
  --timeout DURATION      deadline of the whole check, below timeoutSeconds (5s, at most 5m)
Check:
  --state-file PATH       the counter (${DEFAULTS.stateFile}); .NAME added for container NAME
  --termination-message-path P  the container's terminationMessagePath, outside /dev (Deno
                          guards /dev): a counter on an emptyDir then dies with its container
  --on-api-error MODE     unreachable API, 429, 5xx: streak (default): exit as the check
                          before, window grown as if silent; ignore: always 0; fail: always 1
  --last-line             on silence, quote the last line (events reach more people than logs)
  --output json           one JSON object instead of the line
Window (every command); durations like 30s, 5m, 1h30m:
  --window DURATION       window while the container logs (60s)
  --growth G              triangular: 1,3,6,10… windows (default); linear, exponential,
                          fixed: one window (the counter keeps output and failures)
  --max-window DURATION   never look further back than this
Lines (check, doctor, backtest):
  --match REGEX           only matching lines are signs of life (repeatable); needs deno run
                          ${LINEAR_REGEXP_FLAG}: linear time, so no
                          backreferences or lookaheads, ${MAX_PATTERN} characters at most
  --ignore REGEX          matching lines never are (repeatable). With patterns a check reads
                          all written since the check before (first ${MATCHED_CHARS} chars a line)
  --limit-bytes N         bytes of one read (${DEFAULTS.limitBytes}); beyond, the newest lines decide
  --tail N                lines of that newest read, and of last words (${DEFAULTS.tail})
Kubelet (plan, backtest; given to check, as in the probe's spec):
  --period DURATION       periodSeconds (60s): two probes on one counter count once a period
  --failure-threshold N   failureThreshold (15): an error fails at most N-1 checks in a row
                          (check without it: every other one), so it never restarts
  --log-file PATH         (backtest) the history to replay`;

// ---------------------------------------------------------------------------
// Pure functions

/** Quotes a value for a one-line message: escaped and cut short. */
export function quote(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 56)}…"` : text;
}

/**
 * Parses a duration like kubectl's: `30s`, `5m`, `2h`, `1h30m`, in whole
 * seconds.
 *
 * @example
 * ```ts
 * parseDuration("1h30m", "--window"); // 5400
 * ```
 */
export function parseDuration(text: string, flag: string): number {
  const match = text.match(/^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/);
  if (!match || text === "") {
    throw new ConfigError(
      `Invalid ${flag} ${quote(text)}: use a duration like 30s, 5m or 1h30m`,
    );
  }
  const [, h = "0", m = "0", s = "0"] = match;
  const seconds = Number(h) * 3600 + Number(m) * 60 + Number(s);
  if (seconds < 1 || seconds > WINDOW_LIMIT) {
    throw new ConfigError(
      `Invalid ${flag} ${quote(text)}: must be between 1s and 10 years`,
    );
  }
  return seconds;
}

/**
 * Formats seconds the way {@linkcode parseDuration} reads them.
 *
 * @example
 * ```ts
 * formatDuration(5400); // "1h30m"
 * ```
 */
export function formatDuration(seconds: number): string {
  seconds = Math.round(seconds);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor(seconds % 3600 / 60);
  const s = seconds % 60;
  const text = (h ? `${h}h` : "") + (m ? `${m}m` : "") + (s ? `${s}s` : "");
  return text || "0s";
}

/**
 * Compiles a --match or --ignore pattern for V8's linear-time engine, so no pattern can
 * backtrack past the deadline; a pattern that engine cannot run (backreferences, lookaheads,
 * large counted repeats) or a bad one names itself and the reason.
 */
export function compilePattern(text: string, flag: string): RegExp {
  if (text.length > MAX_PATTERN) {
    throw new ConfigError(`Invalid ${flag} ${quote(text)}: longer than ${MAX_PATTERN} characters`);
  }
  try {
    return new RegExp(text, "l");
  } catch (error) {
    const message = (error as Error).message;
    if (message.startsWith("Invalid flags")) {
      throw new ConfigError(
        `${flag} needs linear-time matching: run deno with ${LINEAR_REGEXP_FLAG}`,
      );
    }
    const why = message.endsWith("Cannot be executed in linear time")
      ? "cannot be matched in linear time (no backreferences, lookaheads or large {n} repeats)"
      : message.replace(/^.*: /, "");
    throw new ConfigError(`Invalid ${flag} ${quote(text)}: ${why}`);
  }
}

function wholeNumber(text: string, flag: string, max: number): number {
  if (!/^\d{1,10}$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new ConfigError(`Invalid ${flag} ${quote(text)}: use a whole number from 1 to ${max}`);
  }
  return Number(text);
}

/**
 * Parses the command line into a command and its options. Throws
 * {@linkcode ConfigError} naming the bad value.
 *
 * @example
 * ```ts
 * parseArgs(["plan", "--window", "30s"]); // { command: "plan", options: { window: 30, … } }
 * ```
 */
export function parseArgs(args: string[]): Command {
  const named = ["check", "plan", "doctor", "backtest"].includes(args[0]);
  const command = (named ? args[0] : "check") as CommandName;
  const values = new Map<string, string[]>();
  for (let i = named ? 1 : 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") return { command: "help" };
    if (arg === "--version") return { command: "version" };
    const match = arg.match(/^(?:--([a-z][a-z-]*)|-([a-z]))(?:=(.*))?$/s);
    const name = match && (match[1] ?? SHORT_FLAGS[match[2]]);
    if (!match || !name) {
      throw new ConfigError(
        `${arg.startsWith("-") ? "Unknown flag" : "Unexpected argument"} ${
          quote(arg)
        } (see --help)`,
      );
    }
    const commands = FLAGS[name];
    if (!commands) throw new ConfigError(`Unknown flag ${quote(arg)} (see --help)`);
    if (!commands.includes(command)) {
      throw new ConfigError(`Flag --${name} does not apply to ${command}`);
    }
    let value = match[3];
    if (SWITCHES.has(name)) {
      if (value !== undefined && value !== "true") {
        throw new ConfigError(`Flag --${name} takes no value`);
      }
      value = "true";
    } else if (value === undefined) {
      value = args[++i];
      if (value === undefined || value.startsWith("--")) {
        throw new ConfigError(`Missing value for --${name}`);
      }
    }
    if (values.has(name) && !REPEATABLE.has(name)) {
      throw new ConfigError(`Flag --${name} given twice`);
    }
    values.set(name, [...values.get(name) ?? [], value]);
  }
  const get = (name: string) => values.get(name)?.[0];
  const duration = (name: string, fallback?: number) =>
    values.has(name) ? parseDuration(get(name)!, `--${name}`) : fallback;
  const growth = get("growth") ?? DEFAULTS.growth;
  if (!GROWTHS.includes(growth as Growth)) {
    throw new ConfigError(`Invalid --growth ${quote(growth)}: use ${GROWTHS.join(", ")}`);
  }
  const window: WindowOptions = {
    window: duration("window", DEFAULTS.window)!,
    growth: growth as Growth,
    maxWindow: duration("max-window"),
  };
  if (window.maxWindow !== undefined && window.maxWindow < window.window) {
    throw new ConfigError(
      `Invalid --max-window ${quote(get("max-window")!)}: shorter than --window`,
    );
  }
  const lines: LineOptions = {
    match: (values.get("match") ?? []).map((p) => compilePattern(p, "--match")),
    ignore: (values.get("ignore") ?? []).map((p) => compilePattern(p, "--ignore")),
    tail: values.has("tail") ? wholeNumber(get("tail")!, "--tail", 100_000) : DEFAULTS.tail,
    limitBytes: values.has("limit-bytes")
      ? wholeNumber(get("limit-bytes")!, "--limit-bytes", 64 * 1024 * 1024)
      : DEFAULTS.limitBytes,
  };
  const kubelet: PlanOptions = {
    ...window,
    period: duration("period", DEFAULTS.period)!,
    failureThreshold: values.has("failure-threshold")
      ? wholeNumber(get("failure-threshold")!, "--failure-threshold", 9999)
      : DEFAULTS.failureThreshold,
  };
  if (command === "plan") return { command, options: kubelet };
  if (command === "backtest") {
    const logFile = get("log-file");
    if (!logFile) {
      throw new ConfigError("Missing --log-file: the output of kubectl logs --timestamps");
    }
    return { command, options: { ...kubelet, ...lines, logFile } };
  }
  const onApiError = (get("on-api-error") ?? "streak") as ApiErrorMode;
  if (!["streak", "ignore", "fail"].includes(onApiError)) {
    throw new ConfigError(
      `Invalid --on-api-error ${quote(onApiError)}: use streak, ignore or fail`,
    );
  }
  const output = get("output") ?? "line";
  if (output !== "line" && output !== "json") {
    throw new ConfigError(`Invalid --output ${quote(output)}: use json`);
  }
  for (const name of ["state-file", "service-account-dir"]) {
    if (get(name) === "") throw new ConfigError(`Empty --${name}`);
  }
  const timeout = duration("timeout", DEFAULTS.timeout)!;
  if (timeout > MAX_TIMEOUT) {
    throw new ConfigError(
      `Invalid --timeout ${quote(get("timeout")!)}: at most ${
        formatDuration(MAX_TIMEOUT)
      }, and below the probe's timeoutSeconds`,
    );
  }
  return {
    command,
    options: {
      ...window,
      ...lines,
      server: get("server"),
      namespace: get("namespace"),
      pod: get("pod"),
      container: get("container"),
      stateFile: get("state-file") ?? DEFAULTS.stateFile,
      timeout,
      onApiError,
      serviceAccountDir: get("service-account-dir") ?? DEFAULTS.serviceAccountDir,
      terminationMessagePath: get("termination-message-path") ?? "",
      lastLine: values.has("last-line"),
      output,
      period: values.has("period") ? kubelet.period : undefined,
      failureThreshold: values.has("failure-threshold") ? kubelet.failureThreshold : undefined,
    },
  };
}

/**
 * The window, in seconds, after `silentChecks` silent checks in a row.
 *
 * @example
 * ```ts
 * windowFor(2, { window: 60, growth: "triangular" }); // 360
 * ```
 */
export function windowFor(silentChecks: number, options: WindowOptions): number {
  const n = silentChecks;
  const base = options.window;
  const window = options.growth === "triangular"
    ? base * (n + 1) * (n + 2) / 2
    : options.growth === "linear"
    ? base * (n + 1)
    : options.growth === "exponential"
    ? base * 2 ** Math.min(n, 64)
    : base;
  return Math.min(window, options.maxWindow ?? WINDOW_LIMIT, WINDOW_LIMIT);
}

/**
 * Finds the API server, namespace, pod and container: flags first, then the
 * environment, then the service account's namespace file, as client-go's
 * `rest.InClusterConfig` does.
 */
export function resolveTarget(
  options: CheckOptions,
  env: (name: string) => string | undefined,
  namespaceFile: () => string | undefined,
): Target {
  let server = options.server;
  if (server === undefined) {
    const host = env("KUBERNETES_SERVICE_HOST");
    const port = env("KUBERNETES_SERVICE_PORT");
    // Only a host name or an IP address: a "/", "@" or "\" would make another host or path.
    if (
      host &&
      !/^(?:[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/.test(
        host,
      )
    ) {
      throw new ConfigError(
        `Invalid KUBERNETES_SERVICE_HOST ${quote(host)}: not a host name or IP address`,
      );
    }
    if (host && port && !/^\d{1,5}$/.test(port)) {
      throw new ConfigError(`Invalid KUBERNETES_SERVICE_PORT ${quote(port)}: not a port number`);
    }
    server = host && port
      ? `https://${host.includes(":") ? `[${host}]` : host}:${port}`
      : "https://kubernetes.default.svc";
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    // A value with "@" may hold a password: it is not repeated.
    throw new ConfigError(
      `Invalid API server URL${server.includes("@") ? "" : ` ${quote(server)}`}`,
    );
  }
  if (url.username || url.password) {
    // The value is not repeated: it holds a secret.
    throw new ConfigError(
      "Invalid API server URL: it holds a user name or password (the pod's token is sent instead)",
    );
  }
  if (url.protocol !== "https:" || url.search || url.hash) {
    throw new ConfigError(
      `Invalid API server URL ${quote(server)}: use https://host[:port]`,
    );
  }
  const namespace = options.namespace ?? env("NAMESPACE") ??
    env("POD_NAMESPACE") ?? namespaceFile()?.trim();
  const pod = options.pod ?? env("POD_NAME") ?? env("HOSTNAME");
  const container = options.container ?? env("CONTAINER_NAME");
  const label = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
  if (!namespace) {
    throw new ConfigError(
      "No namespace: pass --namespace or set POD_NAMESPACE (downward API)",
    );
  }
  if (!label.test(namespace)) throw new ConfigError(`Invalid namespace ${quote(namespace)}`);
  if (!pod) throw new ConfigError("No pod name: pass --pod or set POD_NAME (downward API)");
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(pod)) {
    throw new ConfigError(`Invalid pod name ${quote(pod)}`);
  }
  if (container !== undefined && !label.test(container)) {
    throw new ConfigError(`Invalid container name ${quote(container)}`);
  }
  return { server: url.href.replace(/\/$/, ""), namespace, pod, container };
}

/** The query of one log request, in the kubelet's terms. */
export interface LogQuery {
  /** The window, read on the node's clock by the kubelet. */
  sinceSeconds?: number;
  /** Read what is new since this time (RFC3339, whole seconds: the API server drops the rest). */
  sinceTime?: string;
  /** Absent: every line of the current log file (that `since` keeps). */
  tailLines?: number;
  limitBytes: number;
}

/**
 * The first query of a check. With no patterns: the last line of the window, at most
 * {@linkcode LIMIT_BYTES} bytes; any byte is output. With --match or --ignore: every line written
 * since the previous answered check (`seenUntil`, when it lies inside the window) or else in the
 * window, so a line that counts is found however many lines that do not count came after it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const lines = { match: [], ignore: [/^DEBUG/], tail: 300, limitBytes: 1048576 };
 * assert.deepEqual(checkQuery(180, lines, { now: Date.parse("2026-11-25T12:03:00Z") }), {
 *   sinceSeconds: 180,
 *   limitBytes: 1048576,
 * });
 * assert.deepEqual(
 *   checkQuery(180, lines, {
 *     now: Date.parse("2026-11-25T12:03:00Z"),
 *     seenUntil: "2026-11-25T12:02:00.500Z",
 *   }),
 *   { sinceTime: "2026-11-25T12:01:58Z", limitBytes: 1048576 },
 * );
 * ```
 */
export function checkQuery(
  window: number,
  options: LineOptions,
  memory: { now: number; seenUntil?: string } = { now: 0 },
): LogQuery {
  if (!filtering(options)) return { sinceSeconds: window, tailLines: 1, limitBytes: LIMIT_BYTES };
  const from = readFrom(window, memory);
  return from === undefined
    ? { sinceSeconds: window, limitBytes: options.limitBytes }
    : { sinceTime: utc(from).replace(/\.\d+Z$/, "Z"), limitBytes: options.limitBytes };
}

/** Seconds re-read before `seenUntil`: the API server rounds sinceTime down, clocks drift. */
const REREAD = 2;

/** How far back a check reads at most, when the last answered read is older than the window. */
const CATCH_UP = 3600;

/**
 * Where a check with patterns starts reading (ms): where the previous answered check stopped,
 * less {@linkcode REREAD} seconds, so no line is missed between two checks, however late one
 * comes; the window's start when there was none (or it lies further back than an hour and the
 * window). Undefined for the window's start.
 */
function readFrom(window: number, memory: { now: number; seenUntil?: string }): number | undefined {
  if (memory.seenUntil === undefined) return undefined;
  const from = Date.parse(memory.seenUntil) - REREAD * 1000;
  const oldest = memory.now - Math.max(window, CATCH_UP) * 1000;
  return from >= oldest && from <= memory.now ? from : undefined;
}

function filtering(options: LineOptions): boolean {
  return options.match.length > 0 || options.ignore.length > 0;
}

/**
 * The URL of a log request, timestamps on, path segments encoded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(
 *   logUrl({ server: "https://10.0.0.1", namespace: "shop", pod: "web" }, { sinceSeconds: 60, tailLines: 1, limitBytes: 64 }),
 *   "https://10.0.0.1/api/v1/namespaces/shop/pods/web/log?sinceSeconds=60&tailLines=1&timestamps=true&limitBytes=64",
 * );
 * ```
 */
export function logUrl(target: Target, query: LogQuery): string {
  const params = new URLSearchParams();
  if (query.sinceSeconds !== undefined) params.set("sinceSeconds", String(query.sinceSeconds));
  if (query.sinceTime !== undefined) params.set("sinceTime", query.sinceTime);
  if (query.tailLines !== undefined) params.set("tailLines", String(query.tailLines));
  params.set("timestamps", "true");
  params.set("limitBytes", String(query.limitBytes));
  if (target.container) params.set("container", target.container);
  const path = ["api/v1/namespaces", target.namespace, "pods", target.pod, "log"]
    .map((segment, i) => i % 2 ? encodeURIComponent(segment) : segment);
  return `${target.server}/${path.join("/")}?${params}`;
}

/** The `message` of a `v1.Status` answer, or the start of the body. */
function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body);
    if (typeof status?.message === "string") return status.message;
  } catch {
    // not a Status: a proxy's page, say
  }
  return body.trim().slice(0, 80) || "(empty answer)";
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) /;
/** The longest timestamp prefix kept with a line's text. */
const STAMP_CHARS = 40;

/**
 * Whether a line's text (timestamp stripped) is a sign of life. Throws {@linkcode OutOfTime}
 * once `options.deadline` has passed: each test is linear in the line, but a long run of them
 * is not bounded otherwise.
 */
export function counts(text: string, options: LineOptions): boolean {
  const tested = text.length > MATCHED_CHARS ? text.slice(0, MATCHED_CHARS) : text;
  const test = (pattern: RegExp) => {
    if (options.deadline !== undefined && performance.now() >= options.deadline) {
      throw new OutOfTime();
    }
    return pattern.test(tested);
  };
  if (options.ignore.some(test)) return false;
  return options.match.length === 0 || options.match.some(test);
}

/** What a scan of one or more log answers found. */
export interface Scan {
  /** The newest line that counts: its time (ms since the epoch) and text. */
  newest?: { at: number; text: string };
  /** Complete lines judged. */
  lines: number;
  /** Lines that carried a timestamp. */
  stamped: number;
  /** Bytes read. */
  bytes: number;
  /** The check's deadline came while lines were being matched: later lines were not judged. */
  outOfTime?: boolean;
  /** More was written than one answer holds: the lines between were not read. */
  skipped?: boolean;
  /** A first piece without a timestamp that no timestamped line followed (see LogScanner). */
  bare?: string;
  /** The time of the last timestamped line judged (ms). */
  judgedUntil?: number;
}

/**
 * Reads a timestamped log answer as it streams, in memory bounded by one line's first
 * {@linkcode MATCHED_CHARS} characters whatever the answer's size, and keeps only what the
 * decision needs: the newest line that counts. A first piece without a timestamp is the rest of
 * a long line the runtime split (CRI partial lines) whose start fell before `since`: the kubelet
 * prefixes only a piece that starts a line (`cri-client` `pkg/logs/logs.go`, `logWriter.write`).
 * It counts, at `since` (the earliest it can be), only when a timestamped line follows it, as in
 * every answer the kubelet gives; an answer with no timestamped line is not a container log.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const scanner = new LogScanner({ match: [], ignore: [/^DEBUG/], tail: 300, limitBytes: 4096 });
 * scanner.push("2026-11-25T12:00:00Z processed job 1\n2026-11-25T12:00:01Z DEBUG poll\n");
 * assert.equal(scanner.end(false).newest?.text, "processed job 1");
 * ```
 */
export class LogScanner {
  readonly scan: Scan = { lines: 0, stamped: 0, bytes: 0 };
  #line = "";
  #overlong = false;
  #first = true;
  #bare?: string;
  #decoder = new TextDecoder();

  constructor(readonly options: LineOptions, readonly since?: number) {}

  /** Adds bytes (or text) of the answer, in order. */
  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    this.scan.bytes += typeof chunk === "string"
      ? new TextEncoder().encode(chunk).length
      : chunk.length;
    let start = 0;
    for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
      // A whole line in this chunk is judged as a slice of it: no copy.
      if (this.#line === "" && !this.#overlong) {
        this.#judge(text.slice(start, Math.min(end, start + STAMP_CHARS + MATCHED_CHARS)));
      } else {
        this.#add(text.slice(start, end));
        this.#judge(this.#line);
      }
      this.#line = "";
      this.#overlong = false;
      start = end + 1;
    }
    this.#add(text.slice(start));
  }

  /** The answer ended; `cut` when it stopped at limitBytes (its last line's end is missing). */
  end(cut: boolean): Scan {
    this.#line += this.#decoder.decode();
    // A last line without its newline: a partial line the runtime has not finished (it is
    // output), or, when the answer was cut, the start of a line whose end is missing.
    if (this.#line !== "" && (!cut || !filtering(this.options) || this.#overlong)) {
      this.#judge(this.#line);
    }
    this.#line = "";
    if (this.#bare !== undefined && this.scan.stamped === 0) this.scan.bare = this.#bare;
    return this.scan;
  }

  /** Keeps the start of a line only: enough for the timestamp and the matched characters. */
  #add(piece: string): void {
    if (this.#overlong) return;
    this.#line += piece;
    if (this.#line.length > STAMP_CHARS + MATCHED_CHARS) {
      this.#line = this.#line.slice(0, STAMP_CHARS + MATCHED_CHARS);
      this.#overlong = true;
    }
  }

  #judge(line: string): void {
    if (this.scan.outOfTime) return;
    const first = this.#first;
    this.#first = false;
    const stamped = TIMESTAMP.test(line);
    if (!stamped) {
      // The rest of a split line (first piece only, and only after `since`), the kubelet's error
      // (see evidenceOf), or a piece of something that is not a log.
      if (first) this.#bare = line;
      return;
    }
    this.scan.lines++;
    this.scan.stamped++;
    // CRLF output: the carriage return is not part of what a pattern sees.
    if (line.endsWith("\r")) line = line.slice(0, -1);
    try {
      if (
        this.#bare !== undefined && this.since !== undefined && counts(this.#bare, this.options)
      ) {
        this.#found(this.since, this.#bare);
      }
      this.#bare = undefined;
      const space = line.indexOf(" ");
      const text = line.slice(space + 1);
      const counted = counts(text, this.options);
      const at = Date.parse(line.slice(0, space));
      if (!Number.isNaN(at)) this.scan.judgedUntil = at;
      // A stamp no date parses is output in the window of unknown time: the window's start.
      if (counted) this.#found(Number.isNaN(at) ? this.since ?? NaN : at, text);
    } catch (error) {
      if (!(error instanceof OutOfTime)) throw error;
      this.scan.outOfTime = true;
    }
  }

  #found(at: number, text: string): void {
    const newest = this.scan.newest;
    if (newest === undefined || !(at < newest.at)) this.scan.newest = { at, text };
  }
}

/**
 * The newest line that counts in a whole answer's text, the way a check reads a streamed one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const scan = scanLog("2026-11-25T12:00:00Z job 1\n", { match: [/job/], ignore: [], tail: 1, limitBytes: 64 });
 * assert.equal(scan.newest?.at, Date.parse("2026-11-25T12:00:00Z"));
 * ```
 */
export function scanLog(
  body: string,
  options: LineOptions,
  read: { since?: number; cut?: boolean } = {},
): Scan {
  const scanner = new LogScanner(options, read.since);
  scanner.push(body);
  return scanner.end(read.cut ?? false);
}

/** Seconds a remembered line may lie ahead of the pod's clock before it is forgotten. */
const CLOCK_SLACK = 60;

/**
 * A time as `Date.prototype.toISOString` writes it (UTC, to the millisecond), by arithmetic:
 * `toISOString` costs 1.6 MiB at peak in a fresh Deno process (bench/README.md), on every check.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(utc(1795608000123), "2026-11-25T12:00:00.123Z");
 * ```
 */
export function utc(ms: number): string {
  const days = Math.floor(ms / 86_400_000);
  const rest = ms - days * 86_400_000;
  // Days since 1970-01-01 to a civil date: Howard Hinnant's civil_from_days.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) -
      Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) -
    Math.floor(yearOfEra / 100));
  const shifted = Math.floor((5 * dayOfYear + 2) / 153); // months from March
  const day = dayOfYear - Math.floor((153 * shifted + 2) / 5) + 1;
  const month = shifted < 10 ? shifted + 3 : shifted - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(year, 4)}-${pad(month)}-${pad(day)}T${pad(Math.floor(rest / 3_600_000))}:${
    pad(Math.floor(rest / 60_000) % 60)
  }:${pad(Math.floor(rest / 1000) % 60)}.${pad(Math.floor(rest % 1000), 3)}Z`;
}

/**
 * What the counter remembers once a line stamped `stamp` (ms) was seen: the later of it and the
 * line remembered so far, in UTC, never after `now`. A stamp no date parses changes nothing.
 */
export function remember(
  known: string | undefined,
  stamp: number,
  now: number,
): string | undefined {
  if (Number.isNaN(stamp)) return known;
  const seen = Math.min(stamp, now);
  return known !== undefined && Date.parse(known) >= seen ? known : utc(seen);
}

/** Kubelet errors while it renames and reopens a container's log file (log rotation). */
const ROTATING =
  /^failed to (try resolving symlinks in path|open log file|read log file|seek|tail) /;

/**
 * What an answer shows, before the counter's memory is brought in: a line that counts (`output`),
 * none (`quiet`, with what was not read), no answer (`lost`: an outage, or the kubelet's error on
 * a log file it is renaming: `unreadable`), or a set-up that cannot work (`misconfigured`).
 */
export type Evidence =
  | { kind: "output"; at: number }
  | { kind: "quiet"; hint?: string; seen?: number }
  | { kind: "lost"; why: string; unreadable?: boolean }
  | { kind: "misconfigured"; why: string };

/**
 * Turns the API server's answer into {@linkcode Evidence}. A 200 answer is read with
 * {@linkcode scanLog} unless the check already streamed it (`answer.scan`).
 */
export function evidenceOf(
  answer: Answer,
  options: LineOptions,
  target: Target,
  read: { since?: number; windowStart?: number } = {},
): Evidence {
  const lost = (why: string): Evidence => ({ kind: "lost", why });
  const misconfigured = (why: string): Evidence => ({ kind: "misconfigured", why });
  if ("failure" in answer) {
    switch (answer.failure) {
      case "timeout":
        return lost(`no answer from the API server within ${answer.detail}`);
      case "unreachable":
        return lost(`API server unreachable: ${answer.detail}`);
      case "expired":
        return lost(
          `API server certificate ${
            /NotValidYet|not valid yet/i.test(answer.detail) ? "not valid yet" : "expired"
          } (the control plane's to renew, or this node's clock)`,
        );
      case "tls":
        return misconfigured(
          `API server certificate rejected: ${answer.detail} (is ca.crt the cluster's CA? --server right?)`,
        );
      case "protocol":
        return misconfigured(
          `API server does not speak TLS as expected: ${answer.detail} (a plain-HTTP port? --server right?)`,
        );
      case "permission":
        return misconfigured(`Deno permission missing: ${answer.detail}`);
    }
  }
  const { status, body } = answer;
  if (status === 200) {
    // The API server serves every log as text/plain (pkg/registry/core/pod/rest/log.go).
    // The kubelet's own error on the log file comes as a 200 too: GetKubeletContainerLogs
    // (pkg/kubelet/kubelet_pods.go) flushes a zero-byte write, which commits the status, before
    // ReadLogs fails; server.go's 400 then only adds the error's text as the body.
    const type = answer.type?.split(";")[0].trim().toLowerCase();
    const encoding = answer.encoding ?? "identity";
    const scan = answer.scan ?? scanLog(body, options, {
      since: read.since,
      cut: filtering(options) && answer.bytes >= (answer.limit ?? Infinity),
    });
    if (scan.stamped === 0 && scan.bare !== undefined && ROTATING.test(scan.bare)) {
      return { kind: "lost", why: "the kubelet could not open the log file", unreadable: true };
    }
    // Asked for identity and timestamps: the kubelet prefixes every line it starts.
    const not = type !== undefined && type !== "text/plain"
      ? type
      : encoding !== "identity"
      ? `content-encoding ${encoding}`
      : scan.bytes > 0 && scan.stamped === 0
      ? "no timestamp"
      : undefined;
    if (not) {
      return misconfigured(
        `answer is not a container log (${not}): --server is not the API server, or a proxy answers`,
      );
    }
    // Read from the check before: a line that counts may be older than the window.
    if (scan.newest && !(scan.newest.at < (read.windowStart ?? -Infinity))) {
      return { kind: "output", at: scan.newest.at };
    }
    const hint = scan.outOfTime
      ? `only ${plural(scan.lines, "line")} matched within --timeout: raise it or the CPU limit`
      : scan.skipped
      ? "more than --limit-bytes since the last check: only the newest lines read"
      : undefined;
    return {
      kind: "quiet",
      ...(hint ? { hint } : {}),
      ...(scan.newest ? { seen: scan.newest.at } : {}),
    };
  }
  const message = statusMessage(body);
  if (status === 408 || status === 429 || status >= 500) {
    return lost(`API server answered ${status} ${message}`);
  }
  if (status === 400 && ROTATING.test(message)) {
    // The kubelet's ReadLogs failed on the log file (pkg/kubelet/server/server.go answers 400).
    return { kind: "lost", why: "the kubelet could not open the log file", unreadable: true };
  }
  if (status === 401) {
    return misconfigured(
      "unauthorized: the API server rejected the service-account token (deleted ServiceAccount? expired token?)",
    );
  }
  if (status === 403) {
    const user = message.match(/User "([^"]+)"/)?.[1] ?? "this pod's service account";
    const who = user.startsWith("system:serviceaccount:") ? `the service account ${user}` : user;
    return misconfigured(
      `forbidden: ${who} cannot get pods/log in ${target.namespace} (bind the Role log-probe to it)`,
    );
  }
  if (status === 404) {
    return misconfigured(
      `not found: pod ${target.namespace}/${target.pod} (${message}; is --pod/POD_NAME right?)`,
    );
  }
  if (status === 400 && message.startsWith("a container name must be specified")) {
    return misconfigured(`${message} (pass --container)`);
  }
  return misconfigured(`API server answered ${status}: ${message}`);
}

/** What the decision needs besides the evidence and the counter: the window, lines, policies. */
export type DecisionOptions = WindowOptions & LineOptions & {
  onApiError?: ApiErrorMode;
  failureThreshold?: number;
};

/** The counts a state holds, with what older counters left out derived in one place. */
function countsOf(state: CheckState): { failures: number; errors: number; failing: boolean } {
  const failures = state.failures ?? (state.failing ? 1 : 0);
  const errors = state.errors ?? 0;
  return { failures, errors, failing: state.failing ?? failures > errors };
}

/** What a check leaves for the next: the counts and the last result that saw the log. */
interface Next {
  silentChecks: number;
  failures: number;
  errors: number;
  failing: boolean;
}

/**
 * The decision: evidence and what the counter remembers → verdict, exit code, next counter.
 * `failing`: the last check that could judge the log failed (silent, or a lost answer in a silent
 * streak); `failures`: non-zero exits in a row, the kubelet's count; `errors`: how many of those
 * were misconfigurations.
 *
 * | evidence | memory | verdict | exit | silent checks | failing |
 * |---|---|---|---|---|---|
 * | output | any | alive | 0 | 0 | no |
 * | quiet | output remembered inside the window | alive | 0 | 0 | no |
 * | quiet | none inside the window | silent | 1 | +1 | yes |
 * | lost (`streak`) | output remembered inside the window | unknown | 0 | 0 | no |
 * | lost (`streak`) | failing | unknown | 1 | +1 | yes |
 * | lost (`streak`) | not failing | unknown | 0 | +1 | no |
 * | unreadable, the check before too | | as quiet | | | |
 * | misconfigured | failing | error, as a lost answer | 1 | +1 | yes |
 * | misconfigured | failures + 1 < failureThreshold | error | 2 | = | = |
 * | misconfigured | otherwise | error | 0 | = | = |
 *
 * Misconfigurations are loud (the kubelet shows a failing probe's line in the pod's events) but
 * never the kubelet's `failureThreshold`-th failure in a row, and a failure they helped count never
 * is either: a silent check that would be the threshold-th only because errors came before it
 * passes once (the window still grows). During a silent streak an error cannot see the log, as an
 * outage cannot: the streak goes on, so errors between silent checks never prevent a restart.
 * A check that does not count (`counted: false`: a second probe on the same counter within the
 * same period, see `--period`) gives its verdict but leaves the counts, and never fails for an
 * error.
 */
export function decide(
  evidence: Evidence,
  state: CheckState,
  options: DecisionOptions,
): Outcome {
  const outcome = decideCounted(evidence, state, options);
  if (state.counted ?? true) return outcome;
  // A second probe's check in the same period: its verdict, but the counts stay the first one's,
  // and an error never fails (the first probe's checks carry it).
  const kept = {
    ...outcome,
    silentChecks: state.silentChecks,
    ...countsOf(state),
    unreadable: state.unreadable,
  };
  if (outcome.code === 0) return kept;
  return outcome.verdict === "error"
    ? {
      ...kept,
      code: 0,
      message: `${outcome.message}; not counted: the check before was this period's`,
    }
    : {
      ...kept,
      message:
        `${outcome.message}; counted by this period's check before (two probes on one counter, or --period above periodSeconds?)`,
    };
}

function decideCounted(
  evidence: Evidence,
  state: CheckState,
  options: DecisionOptions,
): Outcome {
  const { silentChecks } = state;
  const { failures, errors, failing } = countsOf(state);
  const window = windowFor(silentChecks, options);
  const output = filtering(options) ? "matching output" : "output";
  // A remembered line from the future (the clock stepped back) proves nothing: forgotten.
  const age = state.lastOutput === undefined
    ? undefined
    : (state.now - Date.parse(state.lastOutput)) / 1000;
  const remembered = age !== undefined && age >= -CLOCK_SLACK ? Math.max(0, age) : undefined;
  const known = remembered === undefined ? undefined : state.lastOutput;
  const inWindow = remembered !== undefined && remembered <= window;
  const outcome = (verdict: Verdict, code: number, next: Next, message: string): Outcome => ({
    verdict,
    code,
    ...next,
    window,
    message: `${verdict}: ${message}`,
    ...(known ? { lastOutput: known } : {}),
  });
  const pass: Next = { silentChecks: 0, failures: 0, errors: 0, failing: false };
  const next = { silentChecks: silentChecks + 1, failures: failures + 1, errors, failing: true };
  /** A failure that sees the log: never the threshold-th in a row only because of errors. */
  const failure = (verdict: Verdict, message: string): Outcome => {
    const threshold = options.failureThreshold;
    if (threshold !== undefined && errors > 0 && failures + 1 >= threshold) {
      return outcome(
        verdict,
        0,
        { ...next, failures: 0, errors: 0 },
        `${message}; passed this once: ${plural(errors, "error")} made the failures in a row`,
      );
    }
    return outcome(verdict, 1, next, message);
  };
  const after = silentChecks ? ` (after ${plural(silentChecks, "silent check")} in a row)` : "";
  const fromMemory = () =>
    outcome(
      "alive",
      0,
      pass,
      `${output} ${formatDuration(remembered!)} ago, inside the ${window}s window (no longer ` +
        `in the answer: log rotated or unreadable, or read by an earlier check)`,
    );
  const silent = (why = "") =>
    failure(
      "silent",
      `no ${output} in the last ${window}s${why} (${
        plural(next.silentChecks, "silent check")
      } in a row; next window ${windowFor(next.silentChecks, options)}s)`,
    );
  /** A lost answer: the kubelet's last result holds; the window grows as if silent. */
  const lost = (verdict: Verdict, why: string, unreadable?: boolean): Outcome => {
    const mark = (o: Outcome) => unreadable ? { ...o, unreadable: true } : o;
    const mode = options.onApiError ?? "streak";
    if (mode === "ignore") {
      return mark(outcome(verdict, 0, { ...pass, silentChecks }, `${why}; not counted`));
    }
    if (mode === "fail") {
      return mark(outcome(verdict, 1, { ...next, silentChecks }, `${why}; failed`));
    }
    if (inWindow) {
      return mark(outcome(
        verdict,
        0,
        pass,
        `${why}; ${output} ${formatDuration(remembered!)} ago is inside the ${window}s window`,
      ));
    }
    return mark(
      failing
        ? failure(
          verdict,
          `${why}; failed, as the check before (${next.silentChecks} silent in a row)`,
        )
        : outcome(
          verdict,
          0,
          { ...pass, silentChecks: silentChecks + 1 },
          `${why}; not counted, as the check before passed`,
        ),
    );
  };
  switch (evidence.kind) {
    case "output": {
      const lastOutput = remember(known, evidence.at, state.now);
      return {
        ...outcome("alive", 0, pass, `${output} in the last ${window}s${after}`),
        lastOutput,
      };
    }
    case "quiet":
      if (evidence.seen !== undefined) {
        // Output read since the check before but older than the window: remembered, as the
        // check then would have, and judged as a remembered line is.
        const lastOutput = remember(state.lastOutput, evidence.seen, state.now);
        return decideCounted(
          { kind: "quiet", hint: evidence.hint },
          { ...state, lastOutput },
          options,
        );
      }
      return inWindow ? fromMemory() : silent(evidence.hint ? ` (${evidence.hint})` : "");
    case "lost": {
      if (evidence.unreadable && state.unreadable) {
        // The same kubelet error twice in a row is no rotation: a log file the node cannot open
        // again. Judged as an empty log; a restart gives the container a new file.
        const why =
          " (the kubelet cannot open the log file, twice in a row: a restart gives a new one)";
        return { ...(inWindow ? fromMemory() : silent(why)), unreadable: true };
      }
      const why = evidence.unreadable ? `${evidence.why} (rotation under way?)` : evidence.why;
      return lost("unknown", why, evidence.unreadable);
    }
    case "misconfigured": {
      // In a silent streak an error is as blind as an outage: the streak goes on.
      if (failing) return lost("error", evidence.why);
      const threshold = options.failureThreshold ?? 2;
      const counted = { silentChecks, failures: failures + 1, errors: errors + 1, failing };
      return failures + 1 < threshold ? outcome("error", 2, counted, evidence.why) : outcome(
        "error",
        0,
        { silentChecks, failures: 0, errors: 0, failing },
        `${evidence.why}; passed this once, so the kubelet never restarts for it`,
      );
    }
  }
}

/**
 * Turns the API server's answer into a verdict, an exit code and the counter it leaves:
 * {@linkcode evidenceOf}, then {@linkcode decide}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const lines = { match: [], ignore: [], tail: 300, limitBytes: 1048576 };
 * const target = { server: "https://10.0.0.1", namespace: "shop", pod: "web" };
 * const outcome = judge({ status: 200, body: "", bytes: 0 }, { silentChecks: 1, now: Date.now() }, { window: 60, growth: "triangular", ...lines }, target);
 * assert.equal(outcome.message, "silent: no output in the last 180s (2 silent checks in a row; next window 360s)");
 * ```
 */
export function judge(
  answer: Answer,
  state: CheckState,
  options: DecisionOptions,
  target: Target,
): Outcome {
  const window = windowFor(state.silentChecks, options);
  const from = filtering(options) ? readFrom(window, state) : undefined;
  const windowStart = state.now - window * 1000;
  const read = from === undefined ? { since: windowStart } : { since: from, windowStart };
  return decide(evidenceOf(answer, options, target, read), state, options);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * One printable line, cut to `max` ({@linkcode MAX_LINE}): C0 and C1 controls, DEL, line and
 * paragraph separators and bidi controls escaped, so a log line cannot move a terminal's cursor
 * or reorder the text around it in `kubectl describe`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(oneLine("a\x1b[2Jb\u009b\u202e"), "a\\x1b[2Jb\\u009b\\u202e");
 * ```
 */
export function oneLine(text: string, max = MAX_LINE): string {
  const line = text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => {
      const code = c.charCodeAt(0);
      return code < 0x80
        ? `\\x${code.toString(16).padStart(2, "0")}`
        : `\\u${code.toString(16).padStart(4, "0")}`;
    },
  );
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * What the counter file says: the count, the container instance it counts for, the newest output
 * that counted as a check of that instance saw it, the kubelet's failures in a row, where the
 * last answered read ended, when a check last counted, and whether the kubelet could not open
 * the log file at the last check.
 */
export interface Counter {
  silentChecks: number;
  instance: string;
  /** The timestamp of the newest line that counted, in UTC. */
  lastOutput?: string;
  /** Non-zero exits in a row: the kubelet's count of failures, as far as this probe made it. */
  failures: number;
  /** The pod's clock when the last answered read was asked (UTC): the next read starts there. */
  seenUntil?: string;
  /** When a check last counted (UTC): a second probe within the same period does not. */
  countedAt?: string;
  /** The last check met the kubelet's error on the log file. */
  unreadable?: boolean;
  /** The last check that could judge the log failed. */
  failing?: boolean;
  /** How many of the failures in a row were misconfigurations. */
  errors?: number;
  /** True when there is no counter file yet. */
  missing?: boolean;
  /** Why the stored count was not used, when it was not. */
  note?: string;
}

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;
const STAMP_OR_NONE = "(-|\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(?:\\.\\d{1,9})?Z)";
const COUNTER_LINE = new RegExp(
  `^(\\d{1,9}) (\\S{1,80}) ${STAMP_OR_NONE} (\\d{1,4}) ${STAMP_OR_NONE} ${STAMP_OR_NONE} ([0-3])(?: (\\d{1,4}))?\\n?$`,
);
/** The lines of 0.2.0 (`count instance lastOutput pass|fail`) and 0.1.0 (`count instance`). */
const OLD_COUNTER_LINE = /^(\d{1,9}) (\S{1,64})(?: (-|\S{20,40}) (pass|fail))?\n?$/;

/**
 * Reads the counter file's text, one line:
 * `count instance lastOutput failures seenUntil countedAt flags errors` (`-` for a time not
 * known; flags: 1 the kubelet could not open the log file, 2 failing; the lines of 0.2.0 and
 * 0.1.0 are read too, and their instance, device and inode, is this one's without a birth time). Garbage and another instance's line give 0 and no
 * memory, with a note.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(
 *   parseCounter("2 64768:1201:- 2026-11-25T12:00:00.500Z 2 2026-11-25T12:02:00.000Z - 0\n", "64768:1201:-"),
 *   {
 *     silentChecks: 2,
 *     instance: "64768:1201:-",
 *     lastOutput: "2026-11-25T12:00:00.500Z",
 *     failures: 2,
 *     seenUntil: "2026-11-25T12:02:00.000Z",
 *   },
 * );
 * ```
 */
export function parseCounter(text: string | undefined, instance: string): Counter {
  if (text === undefined) return { silentChecks: 0, instance, failures: 0, missing: true };
  const garbage = {
    silentChecks: 0,
    instance,
    failures: 0,
    note: "counter file held garbage, counted as 0",
  };
  const line = text.match(COUNTER_LINE);
  const old = line ? undefined : text.match(OLD_COUNTER_LINE);
  const match = line ?? old;
  if (!match) return garbage;
  const time = (value: string | undefined) =>
    value === undefined || value === "-" ? undefined : value;
  const stamps = line ? [line[3], line[5], line[6]].map(time) : [time(old![3])];
  if (
    stamps.some((stamp) => stamp !== undefined && (!STAMP.test(stamp) || isNaN(Date.parse(stamp))))
  ) {
    return garbage;
  }
  // 0.2.0 named an instance by device and inode only.
  const same = match[2] === instance || (old !== undefined && instance.startsWith(`${match[2]}:`));
  if (!same && match[2] !== "-" && instance !== "-") {
    return {
      silentChecks: 0,
      instance,
      failures: 0,
      note: "counter of a previous container instance discarded",
    };
  }
  const silentChecks = Number(match[1]);
  const [lastOutput, seenUntil, countedAt] = stamps;
  // 0.2.0 kept pass or fail only: a failing streak of n silent checks is n failures in a row.
  const failures = line
    ? Number(line[4])
    : (old![4] ? old![4] === "fail" : silentChecks > 0)
    ? Math.max(1, silentChecks)
    : 0;
  const flags = line ? Number(line[7]) : failures > 0 ? 2 : 0;
  const errors = line?.[8] ? Math.min(Number(line[8]), failures) : 0;
  return {
    silentChecks,
    instance,
    ...(lastOutput ? { lastOutput } : {}),
    failures,
    ...(seenUntil ? { seenUntil } : {}),
    ...(countedAt ? { countedAt } : {}),
    ...(flags & 1 ? { unreadable: true } : {}),
    ...(flags & 2 ? { failing: true } : {}),
    ...(errors ? { errors } : {}),
  };
}

/** The counter file's text: one short line. */
export function formatCounter(counter: Counter): string {
  const flags = (counter.unreadable ? 1 : 0) + (counter.failing ? 2 : 0);
  return `${counter.silentChecks} ${counter.instance} ${counter.lastOutput ?? "-"} ${
    Math.min(counter.failures, 9999)
  } ${counter.seenUntil ?? "-"} ${counter.countedAt ?? "-"} ${flags} ${
    Math.min(counter.errors ?? 0, 9999)
  }\n`;
}

/** What `plan` finds: how one silent stretch plays out. */
export interface PlanRun {
  /** Seconds from the last output to the first check after it. */
  phase: number;
  /** Seconds of silence when the kubelet restarts the container. */
  restartAfter: number;
  /** Times (seconds of silence) at which an old line fell back inside the window. */
  resets: number[];
  /** The windows of the final streak, check by check: [time, window]. */
  streak: Array<[number, number]>;
}

/**
 * Simulates the kubelet probing a container that wrote its last line at 0s,
 * first probed `phase` seconds later: each check's window, the streaks an old
 * line breaks by falling back inside a grown window, and the restart.
 */
export function simulate(options: PlanOptions, phase: number): PlanRun {
  const resets: number[] = [];
  let streak: Array<[number, number]> = [];
  for (let t = phase;; t += options.period) {
    const window = windowFor(streak.length, options);
    if (t <= window) {
      if (streak.length) resets.push(t);
      streak = [];
      continue;
    }
    streak.push([t, window]);
    if (streak.length >= options.failureThreshold) {
      return { phase, restartAfter: t, resets, streak };
    }
  }
}

/** The text `plan` prints. */
export function renderPlan(options: PlanOptions): string {
  // Where the last output falls between two checks matters: try up to 60 places.
  const samples = Math.min(options.period, 60);
  const runs = Array.from(
    { length: samples },
    (_, k) => simulate(options, Math.ceil((k + 1) * options.period / samples)),
  );
  const sorted = [...runs].sort((a, b) => a.restartAfter - b.restartAfter);
  const [first, last] = [sorted[0], sorted[sorted.length - 1]];
  const windows = Array.from(
    { length: options.failureThreshold },
    (_, n) => formatDuration(windowFor(n, options)),
  );
  const lines = [
    `Window after 0, 1, 2 … silent checks in a row (--window ${
      formatDuration(options.window)
    } --growth ${options.growth}${
      options.maxWindow ? ` --max-window ${formatDuration(options.maxWindow)}` : ""
    }):`,
    `  ${windows.join(", ")}`,
    `Kubelet: a check every ${formatDuration(options.period)}, restart after ${
      plural(options.failureThreshold, "failure")
    } in a row.`,
    "",
    `A container whose last output comes just after a check (worst case):`,
  ];
  if (last.resets.length) {
    const shown = last.resets.slice(0, 8).map(formatDuration).join(", ");
    lines.push(
      `  streak reset at ${shown}${
        last.resets.length > 8 ? ", …" : ""
      }: a grown window reached back to the last output`,
    );
  }
  for (const [i, [t, window]] of last.streak.entries()) {
    lines.push(
      `  ${formatDuration(t).padStart(8)}  window ${
        formatDuration(window).padEnd(7)
      } silent, failure ${i + 1} of ${options.failureThreshold}${
        i + 1 === options.failureThreshold ? ": restart" : ""
      }`,
    );
  }
  lines.push(
    "",
    first.restartAfter === last.restartAfter
      ? `Restart after ${formatDuration(last.restartAfter)} of silence.`
      : `Restart after ${formatDuration(first.restartAfter)} to ${
        formatDuration(last.restartAfter)
      } of silence, depending on where the last output falls between two checks.`,
  );
  if (last.resets.length) {
    lines.push(
      `The streak was reset ${
        plural(last.resets.length, "time")
      } before the last output fell out of reach for good.`,
    );
  }
  const fresh = options.failureThreshold * options.period;
  lines.push(
    `The counter file remembers the newest output a check saw, the failures in a row${
      options.growth === "fixed" ? "" : " and the silent checks in a row (the window's step)"
    }: log rotation and lines that do not count leave this as it is; lost answers can move it ` +
      "by a few checks.",
    "Output no check could see (printed and rotated away between two checks, or before the " +
      `first check) cannot count: a container that hangs from its start is restarted after ${
        plural(options.failureThreshold, "check")
      } (${formatDuration(fresh)}).`,
    `A misconfiguration (error) fails at most ${
      options.failureThreshold - 1
    } checks in a row: it never restarts the container (pass --failure-threshold ${options.failureThreshold} to the check).`,
  );
  return lines.join("\n");
}

// ---------------------------------------------------------------------------
// The edges: files, environment, network

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // not allowed: the user chose not to use it
  }
}

/**
 * Tells container instances apart: the kubelet mounts a new termination-message file for each
 * container start. Its device, inode and birth time (where the filesystem keeps one: an inode
 * number alone can come back once the file is deleted). "-" when no file is named.
 */
function instanceOf(path: string): string {
  if (path === "") return "-";
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    throw new ConfigError(
      error instanceof Deno.errors.NotCapable
        ? `Deno permission missing: ${reason(error)} (add --allow-read=${path})`
        : `termination-message file ${path}: ${
          reason(error)
        } (--termination-message-path must be the container's terminationMessagePath)`,
    );
  }
  const born = info.birthtime?.getTime();
  return `${info.dev}:${info.ino}:${born === undefined ? "-" : born.toString(36)}`;
}

/** A counter line is short: more than this is garbage, and is not read. */
const COUNTER_BYTES = 256;

function loadCounter(path: string, instance: string): Counter {
  let text: string | undefined;
  try {
    // A FIFO would block the read, a huge file cost its size: only a small regular file is read.
    // (Not Deno.openSync and a bounded read: an FsFile costs about 1 MiB at peak, bench/.)
    const info = Deno.statSync(path);
    if (!info.isFile) throw new Error(info.isDirectory ? "Is a directory" : "not a regular file");
    text = info.size > COUNTER_BYTES ? "" : Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    if (!(error instanceof Deno.errors.NotFound)) {
      return {
        silentChecks: 0,
        instance,
        failures: 0,
        note: `counter unreadable (${reason(error)}), counted as 0`,
      };
    }
  }
  return parseCounter(text, instance);
}

/**
 * Writes the counter atomically: a new temporary file of an unguessable name (never a file or
 * link planted there), then a rename over the old one.
 */
function saveCounter(path: string, counter: Counter): void {
  const suffix = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16))
    .join("");
  const temporary = `${path}.${Deno.pid}.${suffix}.tmp`;
  try {
    Deno.writeTextFileSync(temporary, formatCounter(counter), { mode: 0o600, createNew: true });
    Deno.renameSync(temporary, path);
  } catch (error) {
    try {
      Deno.removeSync(temporary);
    } catch {
      // nothing was written
    }
    throw error;
  }
}

/** The counter file of a named container: one per container, so two never share a streak. */
export function counterPath(stateFile: string, container?: string): string {
  return container ? `${stateFile}.${container}` : stateFile;
}

function reason(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    return error.message.replace(/, run again with.*$/, "");
  }
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^.*client error \([^)]*\): /s, "")
    .replace(/ \(os error \d+\)/, "")
    .replace(/: [a-z]+ '[^']*'( -> '[^']*')?$/, ""); // the paths, which the line already names
}

/** The pod's credentials, read afresh on every run (projected tokens rotate). */
interface Credentials {
  token: string;
  client: Deno.HttpClient;
}

function readCredentials(dir: string): Credentials {
  const token = readText(`${dir}/token`)?.trim();
  if (token === undefined) {
    throw new ConfigError(
      `No service-account token at ${dir}/token (automountServiceAccountToken: false?)`,
    );
  }
  if (token === "") throw new ConfigError(`Empty service-account token at ${dir}/token`);
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(`The token at ${dir}/token holds characters no bearer token has`);
  }
  const ca = readText(`${dir}/ca.crt`);
  if (ca === undefined) throw new ConfigError(`No CA certificate at ${dir}/ca.crt`);
  if (!ca.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`No PEM certificate in ${dir}/ca.crt`);
  }
  try {
    // HTTP/1.1: one or two short requests gain nothing from HTTP/2, which costs a preface and a
    // SETTINGS exchange, and stalled 40 ms on a reused connection in our measurements (bench/).
    return { token, client: Deno.createHttpClient({ caCerts: [ca], http2: false }) };
  } catch (error) {
    throw new ConfigError(`Unusable CA certificate in ${dir}/ca.crt: ${reason(error)}`);
  }
}

/**
 * Deno's fetch takes HTTPS_PROXY/ALL_PROXY from the environment whatever --allow-env says, and
 * checks NO_PROXY first (deno_fetch `proxy.rs`): the API server is asked directly, never through
 * a proxy meant for the app. Needs --allow-env=NO_PROXY; `doctor` says when it is missing.
 */
function keepProxiesOff(): boolean {
  try {
    Deno.env.set("NO_PROXY", "*,0.0.0.0/0,::/0"); // "*" matches names only, not addresses
    return true;
  } catch {
    return false;
  }
}

/** One request to the API server, TLS verified against the pod's CA, the answer bounded. */
async function call(
  url: string,
  credentials: Credentials,
  signal: AbortSignal,
  init: { method?: string; body?: string; limit?: number; scanner?: LogScanner } = {},
): Promise<Answer> {
  let streamed = false;
  try {
    const response = await fetch(url, {
      client: credentials.client,
      signal,
      method: init.method ?? "GET",
      body: init.body,
      redirect: "manual",
      headers: {
        authorization: `Bearer ${credentials.token}`,
        accept: "text/plain, application/json",
        // Deno asks for gzip and br and inflates them unless this header is set: a tiny
        // compressed answer would then inflate to any size before a byte is counted.
        "accept-encoding": "identity",
        ...(init.body ? { "content-type": "application/json" } : {}),
      },
    });
    const head = {
      status: response.status,
      type: response.headers.get("content-type") ?? undefined,
      encoding: response.headers.get("content-encoding") ?? undefined,
      limit: init.limit,
    };
    const log = head.type?.split(";")[0].trim().toLowerCase() === "text/plain" &&
      head.encoding === undefined;
    if (init.scanner && response.status === 200 && log) {
      streamed = true;
      // Streamed up to the limitBytes asked for: an answer that reaches it was cut there.
      const cut = await stream(response, init.scanner, init.limit ?? MAX_BODY);
      return { ...head, body: "", bytes: init.scanner.scan.bytes, scan: init.scanner.end(cut) };
    }
    // An error's Status, or a short answer, is read whole (up to MAX_BODY).
    return { ...head, ...await readAtMost(response, Math.max(MAX_BODY, init.limit ?? 0)) };
  } catch (error) {
    if (signal.aborted) {
      // Lines that arrived before the deadline still show output; without any, the answer is lost.
      const scan = streamed ? init.scanner?.scan : undefined;
      return scan?.newest || scan?.outOfTime
        ? { status: 200, type: "text/plain", body: "", bytes: scan.bytes, scan }
        : { failure: "timeout", detail: "the deadline" };
    }
    if (error instanceof Deno.errors.NotCapable) {
      return { failure: "permission", detail: reason(error) };
    }
    const detail = reason(error instanceof Error && error.cause ? error.cause : error);
    return { failure: failureOf(detail), detail };
  }
}

/**
 * Sorts a failed request by rustls' and hyper's words: a certificate outside its validity is
 * the control plane's fault (an outage); one from another CA or for another name, or a peer
 * that does not speak TLS, is a misconfiguration; refused, reset, closed (also mid-handshake)
 * and DNS failures are outages.
 */
export function failureOf(detail: string): "unreachable" | "expired" | "tls" | "protocol" {
  if (
    /invalid peer certificate: (Expired|NotValidYet|certificate expired|certificate not valid yet)/i
      .test(detail)
  ) {
    return "expired";
  }
  if (/certificate/i.test(detail)) return "tls";
  if (
    /corrupt message|fatal alert|InvalidContentType|invalid HTTP|peer is incompatible/i.test(detail)
  ) {
    return "protocol";
  }
  return "unreachable";
}

/**
 * Feeds a log answer to the scanner as it arrives, at most `limit` bytes; stops early when the
 * scanner has run out of time. True when the answer reached `limit` (the kubelet cut it there).
 */
async function stream(response: Response, scanner: LogScanner, limit: number): Promise<boolean> {
  if (!response.body) return false;
  // Into one buffer, read again and again: a chunk allocated per read would wait for the garbage
  // collector, 10 MiB more at peak for a 16 MiB answer (measured).
  const reader = response.body.getReader({ mode: "byob" });
  let buffer = new Uint8Array(64 * 1024);
  let bytes = 0;
  while (true) {
    const { done, value } = await reader.read(buffer);
    if (done || !value) return bytes >= limit;
    const kept = value.length > limit - bytes ? value.subarray(0, limit - bytes) : value;
    scanner.push(kept);
    bytes += kept.length;
    buffer = new Uint8Array(value.buffer);
    if (bytes >= limit || scanner.scan.outOfTime) {
      await reader.cancel();
      return bytes >= limit;
    }
  }
}

/**
 * Reads at most `limit` bytes of a body, counted as decoded, so a misbehaving proxy cannot flood
 * the probe, neither with a long answer nor with a short compressed one.
 */
async function readAtMost(
  response: Response,
  limit: number,
): Promise<{ body: string; bytes: number }> {
  const length = Number(response.headers.get("content-length") ?? NaN);
  const encoding = response.headers.get("content-encoding") ?? "identity";
  // The usual answer: short, uncompressed, with its length declared. text() is the cheaper path
  // (a stream reader costs about 0.8 MiB more at peak, measured in bench/).
  if (length <= limit && encoding === "identity") {
    return { body: await response.text(), bytes: length };
  }
  if (!response.body) return { body: "", bytes: 0 };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
  }
  if (size >= limit) await reader.cancel();
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const kept = bytes.subarray(0, limit);
  return { body: new TextDecoder().decode(kept), bytes: kept.length };
}

function targetOf(options: CheckOptions): Target {
  return resolveTarget(options, env, () => readText(`${options.serviceAccountDir}/namespace`));
}

/** Whether a check counts: not a second probe's check on the same counter in the same period. */
function countsNow(counter: Counter, period: number | undefined, now: number): boolean {
  if (period === undefined || counter.countedAt === undefined) return true;
  const since = now - Date.parse(counter.countedAt);
  return since < 0 || since >= period * 750;
}

/**
 * The check's read of the window the counter calls for, and its verdict: what is new since the
 * last answered read (with patterns), or the window's last line (without). With patterns, when
 * more was written than one answer holds and none of it counts, the newest lines decide.
 */
async function lookAtWindow(
  target: Target,
  options: CheckOptions,
  state: CheckState,
  credentials: Credentials,
  signal: AbortSignal,
  deadline: number,
): Promise<{ outcome: Outcome; seenUntil?: string }> {
  const { now } = state;
  const window = windowFor(state.silentChecks, options);
  const query = checkQuery(window, options, state);
  const from = filtering(options) ? readFrom(window, state) : undefined;
  const windowStart = now - window * 1000;
  const since = from ?? windowStart;
  const lines = { ...options, deadline };
  const scanner = filtering(options) ? new LogScanner(lines, since) : undefined;
  let answer = await call(logUrl(target, query), credentials, signal, {
    limit: query.limitBytes,
    scanner,
  });
  if ("failure" in answer && answer.failure === "timeout") {
    answer = { failure: "timeout", detail: formatDuration(options.timeout) };
  }
  const scan = "scan" in answer ? answer.scan : undefined;
  if (scan?.bare !== undefined && !ROTATING.test(scan.bare)) {
    // Only the rest of a split line: the kubelet's newest line, asked for alone, starts with its
    // timestamp (a tail's first line always does), which a proxy's page never has.
    const newest = await call(
      logUrl(target, { tailLines: 1, limitBytes: LIMIT_BYTES }),
      credentials,
      signal,
    );
    const last = "status" in newest && newest.status === 200
      ? scanLog(newest.body, { ...options, match: [], ignore: [] }).newest
      : undefined;
    if (last && last.at >= since) {
      scan.stamped++;
      if (counts(scan.bare, options)) scan.newest = { at: since, text: scan.bare };
    }
  }
  // Cut, and nothing read counts inside the window (a read from the check before may begin
  // earlier): the newest lines decide.
  const stale = !scan?.newest || (from !== undefined && scan.newest.at < windowStart);
  if (
    scan && stale && !scan.outOfTime && "status" in answer && answer.bytes >= query.limitBytes
  ) {
    const { sinceSeconds, sinceTime } = query;
    const newest = await newestLines(target, lines, credentials, signal, {
      sinceSeconds,
      sinceTime,
    });
    const more = "scan" in newest ? newest.scan : undefined;
    scan.skipped = true;
    if (more?.newest && !(more.newest.at <= (scan.newest?.at ?? -Infinity))) {
      scan.newest = more.newest;
    }
    if (more?.outOfTime) scan.outOfTime = true;
  }
  const read = from === undefined ? { since } : { since, windowStart };
  const outcome = decide(evidenceOf(answer, options, target, read), state, options);
  const answered = "status" in answer && answer.status === 200 && filtering(options);
  // Lines not judged before the deadline are read again by the next check.
  const judged = scan?.outOfTime
    ? (scan.judgedUntil === undefined ? state.seenUntil : utc(scan.judgedUntil))
    : utc(now);
  return { outcome, seenUntil: answered ? judged : state.seenUntil };
}

/**
 * The newest lines one answer holds: the last `--tail` lines (of those `since` keeps) and, when
 * they are more than `--limit-bytes`, fewer, until the newest fit: the kubelet writes a tail from
 * its oldest line forward and stops at limitBytes (`cri-client` `pkg/logs/logs.go`), so a cut
 * answer lacks exactly the newest lines.
 */
async function newestLines(
  target: Target,
  options: LineOptions,
  credentials: Credentials,
  signal: AbortSignal,
  since: { sinceSeconds?: number; sinceTime?: string },
): Promise<Answer> {
  let tail = options.tail;
  for (let attempt = 1;; attempt++) {
    const query: LogQuery = { ...since, tailLines: tail, limitBytes: options.limitBytes };
    const scanner = new LogScanner(options);
    const answer = await call(logUrl(target, query), credentials, signal, {
      limit: query.limitBytes,
      scanner,
    });
    if (!("scan" in answer) || !answer.scan) return answer;
    const cut = answer.bytes >= query.limitBytes;
    if (!cut || tail === 1 || answer.scan.outOfTime || attempt === 8) return answer;
    tail = Math.max(1, Math.min(answer.scan.lines, Math.floor(tail / 2)));
  }
}

/** What one check did: the outcome, the notes on its counter, and the line the kubelet shows. */
export interface CheckResult {
  outcome: Outcome;
  notes: string[];
  line: string;
}

/** How long before now a log timestamp is. */
function ago(stamp: string): string {
  return formatDuration(Math.max(0, (Date.now() - Date.parse(stamp)) / 1000));
}

/**
 * Last words, on the silent path only: the newest line that counts in the current log file,
 * with no window (one more bounded request). Undefined when none is there.
 */
async function lastWords(
  target: Target,
  options: CheckOptions,
  credentials: Credentials,
  signal: AbortSignal,
  deadline: number,
): Promise<{ at: number; text: string } | undefined> {
  const lines = { ...options, deadline };
  if (filtering(options)) {
    const answer = await newestLines(target, lines, credentials, signal, {});
    return "scan" in answer ? answer.scan?.newest : undefined;
  }
  const limit = options.lastLine ? LAST_LINE_BYTES : LIMIT_BYTES;
  const answer = await call(
    logUrl(target, { tailLines: 1, limitBytes: limit }),
    credentials,
    signal,
    {
      limit: MAX_BODY,
    },
  );
  if (!("status" in answer) || answer.status !== 200) return undefined;
  return scanLog(answer.body, lines).newest;
}

/** A container name that may name the counter file: a DNS label. */
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** One check, start to end. */
export async function check(given: CheckOptions): Promise<CheckResult> {
  // The counter comes first: a misconfiguration met later is counted in it, so that it is never
  // the kubelet's failureThreshold-th failure in a row (see decide).
  const named = given.container ?? env("CONTAINER_NAME");
  const options = {
    ...given,
    stateFile: counterPath(given.stateFile, named && LABEL.test(named) ? named : undefined),
  };
  let instance = "-";
  let problem: unknown;
  try {
    instance = instanceOf(options.terminationMessagePath);
  } catch (error) {
    problem = error;
  }
  const counter = loadCounter(options.stateFile, instance);
  const proxiesOff = keepProxiesOff();
  // Monotonic, as the abort timer: a step of the wall clock moves neither. Matching stops a
  // little before the abort, so that lines that arrived are judged (the probe's own slowness)
  // and only an answer that did not arrive is lost (the server's).
  const deadline = performance.now() + options.timeout * 1000 -
    Math.min(200, options.timeout * 100);
  const signal = AbortSignal.timeout(options.timeout * 1000);
  const now = Date.now();
  // One clock reading and one answer to "does this check count" for the read, the decision
  // and the counter it leaves, whichever way the check ends.
  const counted = countsNow(counter, options.period, now);
  const state: CheckState = { ...counter, now, counted };
  let outcome: Outcome;
  let seenUntil = counter.seenUntil;
  let credentials: Credentials | undefined;
  let quoted = "";
  try {
    if (problem) throw problem;
    // The credentials first: without the service-account volume the namespace file is missing
    // too, and the token is the cause to name.
    credentials = readCredentials(options.serviceAccountDir);
    const target = targetOf(given);
    ({ outcome, seenUntil } = await lookAtWindow(
      target,
      options,
      state,
      credentials,
      signal,
      deadline,
    ));
    // Last words, on the silent path, while the deadline allows, when the counter remembers no
    // output yet (or the line is to be quoted): a line no check saw, older than the window, is
    // remembered too, so that a rotation cannot hide it from the next checks. Once the counter
    // remembers one, nothing newer can be outside the window while the window is at least the
    // period, so a silent check makes one request.
    const wordsWanted = outcome.lastOutput === undefined || options.lastLine;
    if (outcome.verdict === "silent" && wordsWanted && deadline - performance.now() > 1000) {
      const last = await lastWords(target, options, credentials, signal, deadline);
      if (last) outcome.lastOutput = remember(outcome.lastOutput, last.at, Date.now());
      if (last && options.lastLine) quoted = `; last line: ${JSON.stringify(last.text)}`;
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    outcome = decide({ kind: "misconfigured", why: error.message }, state, options);
  } finally {
    credentials?.client.close();
  }
  const notes = counter.note ? [counter.note] : [];
  if (!proxiesOff) notes.push("warning: HTTPS_PROXY not kept off (add --allow-env=NO_PROXY)");
  const next: Counter = {
    silentChecks: outcome.silentChecks,
    instance: counter.instance,
    lastOutput: outcome.lastOutput,
    failures: outcome.failures,
    seenUntil,
    countedAt: options.period !== undefined ? (counted ? utc(now) : counter.countedAt) : undefined,
    unreadable: outcome.unreadable,
    failing: outcome.failing,
    errors: outcome.errors,
  };
  // Written once, atomically; even when nothing changed but the file is missing: a missing file
  // would cost every later check a NotFound error, 1 MiB at peak (bench/).
  const changed = formatCounter(next) !== formatCounter(counter) || counter.note ||
    counter.missing;
  if (changed) {
    try {
      saveCounter(options.stateFile, next);
    } catch (error) {
      unsaved(outcome, options, reason(error), notes);
    }
  }
  const said = outcome.verdict === "silent" && outcome.lastOutput
    ? `; last ${filtering(options) ? "matching output" : "output"} ${ago(outcome.lastOutput)} ago`
    : "";
  // The notes come before the quoted line, which is what gets cut when the line is too long.
  const line = oneLine(
    outcome.message + said + notes.map((note) => `; ${note}`).join("") + quoted,
  );
  return { outcome, notes, line };
}

/**
 * The exit of a failure no counter can hold: 2 in every other period (the kubelet then shows it
 * in the pod's events, and two checks in a row never both fail), else 0; always 0 without
 * `--period`, which it needs to tell periods apart.
 */
function uncounted(period: number | undefined): number {
  if (period === undefined) return 0;
  return Math.floor(Date.now() / (period * 1000)) % 2 === 0 ? 2 : 0;
}

/**
 * A counter that cannot be written. A pass stays a pass, with a warning (and the stale counter
 * goes, so that its "fail" does not outlive this pass). A failure that cannot be counted cannot be
 * kept from the kubelet's threshold: with a window that grows, or a misconfiguration, the check
 * passes and says so; with `fixed` growth a silent check needs no count and still fails.
 */
function unsaved(outcome: Outcome, options: CheckOptions, why: string, notes: string[]): void {
  const path = options.stateFile;
  if (outcome.code === 0) {
    notes.push(`warning: counter not saved to ${path} (${why})`);
    try {
      // An unlink works on a full tmpfs too.
      if (Deno.lstatSync(path).isFile) Deno.removeSync(path);
    } catch {
      // not there, or not ours to remove: the next check reads what it reads
    }
    return;
  }
  if (outcome.code === 1 && options.growth === "fixed") {
    notes.push(`warning: counter not saved to ${path} (${why})`);
    return;
  }
  const fix = "--state-file must name a file on a writable emptyDir";
  outcome.code = uncounted(options.period);
  outcome.message = outcome.verdict === "error"
    ? `${outcome.message}; not counted: counter ${path} cannot be written (${why})`
    : `error: counter ${path} cannot be written (${why}): ${fix}; ${outcome.verdict}, not counted`;
  outcome.verdict = "error";
}

/** The JSON form of a check, for `--output json`. */
export function checkJson(result: CheckResult): string {
  const { outcome } = result;
  return JSON.stringify({
    verdict: outcome.verdict,
    exitCode: outcome.code,
    window: outcome.window,
    silentChecks: outcome.silentChecks,
    ...(outcome.lastOutput ? { lastOutput: outcome.lastOutput } : {}),
    message: result.line,
  });
}

/** `doctor`: the set-up checked one item a line, with the fix for each ✗. */
export async function doctor(given: CheckOptions): Promise<{ lines: string[]; ok: boolean }> {
  let options = given;
  const lines: string[] = [];
  const pass = (text: string) => lines.push(`✓ ${text}`);
  const fail = (text: string) => lines.push(`✗ ${text}`);
  const dir = options.serviceAccountDir;
  const stateDir = options.stateFile.replace(/\/[^/]*$/, "") || "/";

  let target: Target | undefined;
  try {
    target = targetOf(options);
    options = { ...options, stateFile: counterPath(options.stateFile, target.container) };
    pass(
      `pod ${target.namespace}/${target.pod}${
        target.container ? `, container ${target.container}` : ""
      }, API server ${target.server}`,
    );
  } catch (error) {
    fail(`${messageOf(error)}`);
  }
  const url = target && new URL(target.server);
  const needed: Array<[Deno.PermissionDescriptor, string]> = [
    [{ name: "read", path: dir }, `--allow-read=${dir}`],
    // to keep HTTPS_PROXY and friends, meant for the app, off the probe's request
    [{ name: "env", variable: "NO_PROXY" }, "--allow-env=NO_PROXY"],
    ...(url
      ? [[
        { name: "net", host: `${url.hostname}:${url.port || 443}` },
        `--allow-net=${url.hostname}`,
      ] as [Deno.PermissionDescriptor, string]]
      : []),
  ];
  needed.push(
    [{ name: "read", path: stateDir }, `--allow-read=${stateDir}`],
    [{ name: "write", path: stateDir }, `--allow-write=${stateDir}`],
  );
  if (options.terminationMessagePath) {
    const path = options.terminationMessagePath;
    needed.push([{ name: "read", path }, `--allow-read=${path}`]);
  }
  const missing = needed.filter(([descriptor]) =>
    Deno.permissions.querySync(descriptor).state !== "granted"
  );
  if (missing.length) {
    fail(`Deno permissions missing: add ${missing.map(([, flag]) => flag).join(" ")}`);
  } else {
    pass(`Deno permissions: ${needed.map(([, flag]) => flag).join(" ")}`);
  }
  let instance = "-";
  if (options.terminationMessagePath) {
    try {
      instance = instanceOf(options.terminationMessagePath);
      pass(`container instance told apart by ${options.terminationMessagePath} (${instance})`);
    } catch (error) {
      fail(messageOf(error));
    }
  }

  let credentials: Credentials | undefined;
  keepProxiesOff();
  try {
    credentials = readCredentials(dir);
    pass(`token and CA in ${dir} (the token is never shown)`);
  } catch (error) {
    fail(messageOf(error));
  }
  if (credentials && target) {
    const signal = AbortSignal.timeout(options.timeout * 1000);
    const version = await call(`${target.server}/version`, credentials, signal);
    const reached = "status" in version;
    if (!reached) {
      // Why, without what a check would do about it.
      const state = { silentChecks: 0, now: Date.now() };
      const { message } = judge(version, state, { ...options, onApiError: "ignore" }, target);
      fail(message.replace(/^\w+: /, "").replace(/; not counted$/, ""));
    } else if (version.status === 401) {
      fail("the API server rejected the token (deleted ServiceAccount? expired token?)");
    } else if (version.status !== 200) {
      fail(
        `GET /version answered ${version.status} ${
          statusMessage(version.body)
        }: not an API server?`,
      );
    } else {
      let release: unknown;
      try {
        release = JSON.parse(version.body).gitVersion;
      } catch {
        // an answer, but not the usual one
      }
      pass(
        `API server reachable, certificate verified, token accepted${
          typeof release === "string" ? ` (Kubernetes ${release})` : ""
        }`,
      );
    }
    if (reached && version.status === 200) {
      const review = await call(
        `${target.server}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews`,
        credentials,
        signal,
        {
          method: "POST",
          body: JSON.stringify({
            apiVersion: "authorization.k8s.io/v1",
            kind: "SelfSubjectAccessReview",
            spec: {
              resourceAttributes: {
                namespace: target.namespace,
                verb: "get",
                resource: "pods",
                subresource: "log",
                name: target.pod,
              },
            },
          }),
        },
      );
      let allowed: boolean | undefined;
      try {
        if ("status" in review && review.status === 201) {
          allowed = JSON.parse(review.body).status?.allowed === true;
        }
      } catch {
        // not a review
      }
      if (allowed) pass(`allowed to get pods/log in ${target.namespace}`);
      else if (allowed === false) {
        fail(`not allowed to get pods/log in ${target.namespace}: bind the Role log-probe to it`);
      } else {
        fail(
          `the access review failed (${
            "status" in review ? `${review.status} ${statusMessage(review.body)}` : review.detail
          })`,
        );
      }
      const deadline = performance.now() + options.timeout * 1000;
      const counter = loadCounter(options.stateFile, instance);
      const now = Date.now();
      const state = { ...counter, now, counted: countsNow(counter, options.period, now) };
      const { outcome } = await lookAtWindow(
        target,
        options,
        state,
        credentials,
        signal,
        deadline,
      );
      const said = `log request (window ${outcome.window}s): ${outcome.message}`;
      if (outcome.verdict === "alive" || outcome.verdict === "silent") pass(said);
      else fail(said);
    }
    credentials.client.close();
  }
  {
    try {
      const counter = loadCounter(options.stateFile, instance);
      if (counter.note?.startsWith("counter unreadable")) throw new Error(counter.note);
      const probe = `${options.stateFile}.doctor.${Deno.pid}`;
      Deno.writeTextFileSync(probe, "", { createNew: true });
      Deno.removeSync(probe);
      const count = counter.missing
        ? "no count yet"
        : plural(counter.silentChecks, "silent check") + " in a row";
      pass(
        `counter ${options.stateFile} readable and writable (${count}${
          counter.note ? `; ${counter.note}` : ""
        })`,
      );
    } catch (error) {
      fail(
        `counter ${options.stateFile}: ${reason(error)}: ${
          error instanceof Deno.errors.NotCapable
            ? `add --allow-read=${stateDir} --allow-write=${stateDir}`
            : `--state-file must name a file on a writable emptyDir mounted at ${stateDir}`
        }`,
      );
    }
  }
  // Read by a person at a terminal, not the kubelet: lines are not cut.
  const shown = lines.map((line) => oneLine(line, Infinity));
  return { lines: shown, ok: !lines.some((line) => line.startsWith("✗")) };
}

/** One line of `kubectl logs --timestamps`, as the replay keeps it. */
interface HistoryLine {
  ms: number;
  stamp: string;
}

/** One replay of a history, with checks at one offset from its first line. */
interface Replay {
  offset: number;
  nextCheck: number;
  checks: number;
  state: CheckState;
  /** Log bytes up to the last check: more than --limit-bytes between two checks is a cut read. */
  bytesAtCheck: number;
  /** When the last check read (a live check's seenUntil), and the newest line it remembered. */
  seenMs?: number;
  livingMs?: number;
  cutReads: number;
  /** Waiting for the container's next line after a restart (the real one did not restart). */
  restarted: boolean;
  restarts: Array<{ at: number; silence: number }>;
  nearest: { failures: number; at: string };
  streakEnd: string;
}

/**
 * `backtest`: replays the probe's decisions over a container's real history
 * (`kubectl logs --timestamps`), with the same decision code as the live check, at every check
 * offset `plan` tries (where the first check falls after the first line), reading the file as a
 * stream, and reports the worst. A live check with patterns reads every line since the check
 * before, so the newest line that counts decides; a read of more than --limit-bytes is counted.
 */
export async function backtest(
  options: BacktestOptions,
  progress?: (bytes: number) => void,
): Promise<string> {
  let lines = 0;
  let bytes = 0;
  let malformed = 0;
  let first: HistoryLine | undefined;
  let previous: HistoryLine | undefined;
  let living: HistoryLine | undefined; // the newest line that counts
  let longest = { seconds: 0, from: "", to: "" };
  const samples = Math.min(options.period, 60);
  const replays: Replay[] = [];

  const checkAt = (replay: Replay, now: number) => {
    if (replay.restarted) return;
    replay.checks++;
    const { state } = replay;
    const window = windowFor(state.silentChecks, options);
    if (filtering(options) && bytes - replay.bytesAtCheck > options.limitBytes) replay.cutReads++;
    replay.bytesAtCheck = bytes;
    if (living && living.ms >= now - window * 1000) {
      // Output inside the window, read now or remembered: alive, whatever else the table says.
      // A fast path (up to 60 replays make one for every period of the history): no strings.
      const failures = state.failures ?? 0;
      if (failures > replay.nearest.failures) {
        replay.nearest = { failures, at: replay.streakEnd };
      }
      if (replay.livingMs !== living.ms) {
        state.lastOutput = remember(state.lastOutput, living.ms, now);
        replay.livingMs = living.ms;
      }
      Object.assign(state, { silentChecks: 0, failures: 0, now });
      replay.seenMs = now;
      return;
    }
    if (filtering(options) && replay.seenMs !== undefined) state.seenUntil = utc(replay.seenMs);
    const since = readFrom(window, { ...state, now }) ?? now - window * 1000;
    const evidence: Evidence = !living || living.ms < since
      ? { kind: "quiet" }
      : living.ms >= now - window * 1000
      ? { kind: "output", at: living.ms }
      : { kind: "quiet", seen: living.ms };
    const outcome = decide(evidence, { ...state, now }, options);
    let lastOutput = outcome.lastOutput;
    if (outcome.verdict === "silent" && lastOutput === undefined && living) {
      lastOutput = remember(lastOutput, living.ms, now); // the live check's last words
    }
    replay.state = {
      silentChecks: outcome.silentChecks,
      failures: outcome.failures,
      lastOutput,
      now,
    };
    replay.seenMs = now;
    if (outcome.verdict !== "silent") {
      if (state.failures! > replay.nearest.failures) {
        replay.nearest = { failures: state.failures!, at: replay.streakEnd };
      }
      return;
    }
    replay.streakEnd = utc(now);
    if (outcome.failures >= options.failureThreshold) {
      replay.restarts.push({ at: now, silence: (now - (living?.ms ?? now)) / 1000 });
      replay.state = { silentChecks: 0, failures: 0, now }; // a restarted container starts afresh
      replay.restarted = true;
    }
  };
  const take = (raw: string, size: number) => {
    const stamp = raw.match(TIMESTAMP)?.[0];
    const ms = stamp ? Date.parse(stamp.trim()) : NaN;
    if (!stamp || Number.isNaN(ms) || (previous && ms < previous.ms)) {
      if (raw !== "") malformed++;
      return;
    }
    lines++;
    const line = { ms, stamp: stamp.trim() };
    if (!first) {
      first = line;
      for (let k = 0; k < samples; k++) {
        const offset = Math.ceil((k + 1) * options.period / samples);
        replays.push({
          offset,
          nextCheck: ms + offset * 1000,
          checks: 0,
          state: { silentChecks: 0, failures: 0, now: ms },
          bytesAtCheck: 0,
          cutReads: 0,
          restarted: false,
          restarts: [],
          nearest: { failures: 0, at: "" },
          streakEnd: "",
        });
      }
    }
    for (const replay of replays) {
      for (; replay.nextCheck < ms; replay.nextCheck += options.period * 1000) {
        checkAt(replay, replay.nextCheck);
      }
    }
    bytes += size;
    previous = line;
    if (!counts(raw.slice(stamp.length, stamp.length + MATCHED_CHARS), options)) return;
    if (living && (ms - living.ms) / 1000 > longest.seconds) {
      longest = { seconds: (ms - living.ms) / 1000, from: living.stamp, to: line.stamp };
    }
    living = line;
    for (const replay of replays) replay.restarted = false;
  };

  let file: Deno.FsFile;
  try {
    file = await Deno.open(options.logFile);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new ConfigError(`Cannot read --log-file ${quote(options.logFile)}: ${reason(error)}`);
  }
  const decoder = new TextDecoder();
  let pending = "";
  let skipping = false; // the rest of a line too long to keep
  let read = 0;
  for await (const chunk of file.readable) {
    read += chunk.length;
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n", start)) {
      if (!skipping) take(pending.slice(start, end), end - start + 1);
      skipping = false;
      start = end + 1;
    }
    pending = pending.slice(start);
    if (pending.length > 1 << 20) {
      if (!skipping) take(pending.slice(0, 1 << 16), pending.length);
      skipping = true;
      pending = "";
    }
    progress?.(read);
  }
  if (pending && !skipping) take(pending, pending.length);
  if (!first || !previous) {
    throw new ConfigError(
      `No timestamped lines in ${quote(options.logFile)}: use kubectl logs --timestamps`,
    );
  }
  for (const replay of replays) {
    const failures = replay.state.failures ?? 0;
    if (failures > replay.nearest.failures) {
      replay.nearest = { failures, at: replay.streakEnd };
    }
  }
  if (living && (previous.ms - living.ms) / 1000 > longest.seconds) {
    const seconds = (previous.ms - living.ms) / 1000;
    longest = { seconds, from: living.stamp, to: `the end of the log (${previous.stamp})` };
  }
  // The worst offset: the most restarts, then the earliest; the best: the fewest.
  const ranked = [...replays].sort((a, b) =>
    b.restarts.length - a.restarts.length ||
    (a.restarts[0]?.at ?? Infinity) - (b.restarts[0]?.at ?? Infinity)
  );
  const worst = ranked[0];
  const fewest = ranked[ranked.length - 1].restarts.length;
  const nearest = replays.reduce((a, b) => b.nearest.failures > a.nearest.failures ? b : a)
    .nearest;
  const span = (previous.ms - first.ms) / 1000;
  const offsets = `${plural(replays.length, "check offset")}`;
  const report = [
    `${options.logFile}: ${lines} lines from ${first.stamp} to ${previous.stamp} (${
      formatDuration(span)
    }), ${worst.checks} checks every ${formatDuration(options.period)}${
      malformed ? `, ${plural(malformed, "malformed line")} skipped` : ""
    }`,
    `settings: --window ${formatDuration(options.window)} --growth ${options.growth}${
      options.maxWindow ? ` --max-window ${formatDuration(options.maxWindow)}` : ""
    }${filtering(options) ? " with --match/--ignore" : ""}, restart after ${
      plural(options.failureThreshold, "failure")
    } in a row; replayed at ${offsets}, the worst shown`,
    worst.restarts.length
      ? `restarts: ${worst.restarts.length}, ${
        worst.restarts.slice(0, 5).map((r) =>
          `at ${utc(r.at)} after ${formatDuration(r.silence)} of silence`
        ).join("; ")
      }${worst.restarts.length > 5 ? "; …" : ""}${
        fewest < worst.restarts.length ? ` (${fewest} at the best offset)` : ""
      }`
      : "restarts: none",
    `longest silence: ${formatDuration(longest.seconds)}${
      longest.from ? ` from ${longest.from} to ${longest.to}` : ""
    }`,
    nearest.failures && !worst.restarts.length
      ? `nearest call without a restart: ${nearest.failures} of ${options.failureThreshold} failures in a row at ${nearest.at}`
      : nearest.failures
      ? `longest streak without a restart: ${nearest.failures} of ${options.failureThreshold} failures in a row at ${nearest.at}`
      : "nearest call without a restart: no failed check",
  ];
  const cut = Math.max(...replays.map((replay) => replay.cutReads));
  if (cut) {
    report.push(
      `${
        plural(cut, "check")
      } would read more than --limit-bytes written since the check before: a live check then judges the newest --tail lines only; raise --limit-bytes`,
    );
  }
  return report.join("\n");
}

function messageOf(error: unknown): string {
  return error instanceof ConfigError
    ? error.message
    : error instanceof Deno.errors.NotCapable
    ? `Deno permission missing: ${reason(error)}`
    : `Unexpected failure: ${reason(error)}`;
}

/** Runs the command line; never throws, never prints a stack trace. */
export async function main(args: string[]): Promise<number> {
  const json = args.some((arg, i) =>
    arg === "--output=json" || (arg === "--output" && args[i + 1] === "json")
  );
  try {
    const command = parseArgs(args);
    switch (command.command) {
      case "help":
        console.log(HELP);
        return 0;
      case "version":
        console.log(`log-probe ${VERSION}`);
        return 0;
      case "plan":
        console.log(renderPlan(command.options));
        return 0;
      case "backtest": {
        const terminal = Deno.stderr.isTerminal();
        const encoder = new TextEncoder();
        let shown = 0;
        const report = await backtest(command.options, (bytes) => {
          if (terminal && bytes - shown >= 64 * 1024 * 1024) {
            shown = bytes;
            Deno.stderr.writeSync(encoder.encode(`\rread ${Math.round(bytes / 1048576)} MiB…`));
          }
        });
        if (shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
        console.log(report);
        return 0;
      }
      case "doctor": {
        const { lines, ok } = await doctor(command.options);
        console.log(lines.join("\n"));
        return ok ? 0 : 2;
      }
      case "check": {
        const result = await check(command.options);
        console.log(command.options.output === "json" ? checkJson(result) : result.line);
        return result.outcome.code;
      }
    }
  } catch (error) {
    const said = `error: ${messageOf(error)}`;
    const { line, code } = ["plan", "doctor", "backtest"].includes(args[0])
      ? { line: oneLine(said), code: 2 }
      : uncheckable(args, said);
    console.log(json ? JSON.stringify({ verdict: "error", exitCode: code, message: line }) : line);
    return code;
  }
}

/**
 * A check that could not run (a flag it does not know, a counter it may not read) is a
 * misconfiguration like any other: counted in the counter its flags name, where that can be read
 * and written, so that it is never the kubelet's failureThreshold-th failure in a row. Where the
 * counter cannot be used, the check passes and says so: it cannot know the kubelet's count.
 */
function uncheckable(args: string[], said: string): { line: string; code: number } {
  const value = (name: string, short?: string) => {
    for (let i = 0; i < args.length; i++) {
      const [flag, inline] = args[i].split(/=(.*)/s);
      if (flag === `--${name}` || (short && flag === `-${short}`)) return inline ?? args[i + 1];
    }
  };
  let period: number | undefined;
  try {
    period = parseDuration(value("period") ?? "", "--period");
  } catch {
    // no period: every check counts, and one that cannot be counted passes
  }
  try {
    const named = value("container", "c") ?? env("CONTAINER_NAME");
    const stateFile = value("state-file") || DEFAULTS.stateFile;
    const path = counterPath(stateFile, named && LABEL.test(named) ? named : undefined);
    let instance = "-";
    try {
      instance = instanceOf(value("termination-message-path") ?? "");
    } catch {
      // counted all the same, for whichever instance
    }
    const counter = loadCounter(path, instance);
    const threshold = Number(value("failure-threshold"));
    const options = {
      window: DEFAULTS.window,
      growth: DEFAULTS.growth,
      match: [],
      ignore: [],
      tail: 1,
      limitBytes: LIMIT_BYTES,
      failureThreshold: Number.isInteger(threshold) && threshold > 0 ? threshold : undefined,
    };
    const misconfigured: Evidence = { kind: "misconfigured", why: said.replace(/^error: /, "") };
    const now = Date.now();
    const counted = countsNow(counter, period, now);
    const outcome = decide(misconfigured, { ...counter, now, counted }, options);
    const countedAt = period !== undefined && counted ? utc(now) : counter.countedAt;
    saveCounter(path, { ...counter, ...outcome, lastOutput: counter.lastOutput, countedAt });
    return { line: oneLine(outcome.message), code: outcome.code };
  } catch (error) {
    return {
      line: oneLine(
        `${said}; not counted (${reason(error)}), so the kubelet never restarts for it`,
      ),
      code: uncounted(period),
    };
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
