/**
 * log-probe: a Kubernetes exec liveness probe for containers that offer no
 * health endpoint. It asks the API server for the container's own console
 * output: output means alive; silence for longer than the limit (the window
 * the schedule 60s, 180s, 360s … reaches at the kubelet's failureThreshold-th
 * check: 2h by default) means hung, and the check fails until the kubelet
 * restarts the container. The container's start counts as output.
 *
 * Run it inside the container, e.g.
 *
 * ```sh
 * deno run --no-prompt --no-config --no-lock --no-remote --no-npm \
 *   --v8-flags=--enable-experimental-regexp-engine \
 *   --allow-read=/var/run/secrets/kubernetes.io/serviceaccount,/opt/log-probe/termination-log,/var/lib/log-probe \
 *   --allow-write=/var/lib/log-probe --allow-env=LOG_PROBE_POD_NAME,NO_PROXY \
 *   --allow-net=kubernetes.default.svc probe.ts --container=worker --period=60s \
 *   --failure-threshold=15 --state-file=/var/lib/log-probe/state \
 *   --termination-message-path=/opt/log-probe/termination-log
 * ```
 *
 * Permissions: read the service-account folder, the termination-message file
 * (the kubelet makes it anew at each container start: it tells instances apart
 * and dates the start) and the state file's folder; write the state file's
 * folder; the environment variables it should consult (LOG_PROBE_POD_NAME
 * here; KUBERNETES_SERVICE_HOST/PORT, NAMESPACE, POD_NAMESPACE, POD_NAME,
 * HOSTNAME, CONTAINER_NAME where used); the API server's host. The V8 flag lets
 * --match/--ignore run in linear time. The service account's role needs `get`
 * on `pods/log` only. No imports: it runs offline from a ConfigMap.
 *
 * Exit codes: 0 alive (or nothing to judge), 1 silent, 2 misconfigured (one check in three at
 * most: see `decide`).
 *
 * @module
 */

/** The version `--version` prints. */
export const VERSION = "0.4.1";

/** How the window grows with each check: it sets the limit, the window at the threshold. */
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
  /** Lines of last words with patterns (`tailLines`). */
  tail: number;
  /** Bytes of one read when there are patterns (`limitBytes`); a check reads page after page. */
  limitBytes: number;
  /** When set, matching stops at this `performance.now()` time: {@linkcode OutOfTime}. */
  deadline?: number;
}

/** The kubelet's probe settings, which the limit and the restart follow. */
export interface PlanOptions extends WindowOptions {
  /** The probe's `periodSeconds`. */
  period: number;
  /** The probe's `failureThreshold`. */
  failureThreshold: number;
}

/** Options of one check (and of `doctor`), as given on the command line. */
export interface CheckOptions extends PlanOptions, LineOptions {
  server?: string;
  namespace?: string;
  pod?: string;
  container?: string;
  stateFile: string;
  /** Deadline of the whole check, in seconds. */
  timeout: number;
  serviceAccountDir: string;
  terminationMessagePath: string;
  /** A startupProbe's check: fails until the container's first output (see `decide`). */
  firstOutput?: boolean;
  /** Quote the last line on the silent path. */
  lastLine: boolean;
  /** `--period` was given: a second check within the same period leaves the counts alone. */
  periodGiven: boolean;
  /** Flags still accepted but no longer used, to say so. */
  retired: string[];
  output: "line" | "json";
}

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

/**
 * What the counter remembers of this container instance, and the time: all a decision needs
 * besides the evidence. Times in ms on the pod's clock, the node's under runc (`CLOCK_REALTIME`
 * is not namespaced), the one the runtime stamps lines with.
 */
export interface Memory {
  /** The newest output any check saw, or the container's start: silence counts from here. */
  lastOutput: number;
  /** No output seen yet: `lastOutput` is the container's start. */
  fromStart: boolean;
  /** When the last answered read was made: everything written before it was read. */
  seenUntil?: number;
  /** Non-zero exits in a row so far: the kubelet's count, as far as this probe made it. */
  failures: number;
  /** Checks in a row that could not see the log (lost answers, errors). */
  blind: number;
  /** The check before met the kubelet's error on the log file. */
  unreadable: boolean;
  /**
   * How often in this silence a blind check passed where the kubelet's last failure would have
   * been (up to 3): the silent check after the first passes too, moving the streak by one check;
   * after the second it does not; after later ones, as a coin drawn from the clock says.
   */
  passedLast?: number;
  /** False for a second probe's check within the same period: the counts stay. */
  counted: boolean;
  /**
   * Checks the kubelet ran since the last one this counter saw that left no trace: killed at
   * `timeoutSeconds`, which the kubelet counts as failures (known with `--period` only).
   */
  missed?: number;
  now: number;
}

/** The verdict of one check and the memory it leaves. */
export interface Outcome {
  verdict: Verdict;
  /** The exit code the kubelet sees. */
  code: number;
  /** The line to print, without notes. */
  message: string;
  /** Seconds since the last output (or the start), as this check judged. */
  silence: number;
  next: Omit<Memory, "counted" | "missed" | "now">;
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
/** A misconfiguration fails one check in this many (the first of each run, then every third). */
export const ERROR_CADENCE = 3;
const MAX_BODY = 4096;
const LAST_LINE_BYTES = 256;
/** Pages of one check with patterns, at most: a bound besides the deadline. */
const MAX_PAGES = 64;

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
const ALL: CommandName[] = ["plan", "backtest", "check", "doctor"];

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
  "first-output": ["check"],
  "output": ["check"],
  "window": ALL,
  "growth": ALL,
  "max-window": ALL,
  "match": LINES,
  "ignore": LINES,
  "tail": LINES,
  "limit-bytes": LINES,
  "period": ALL,
  "failure-threshold": ALL,
  "log-file": ["backtest"],
};
const SWITCHES = new Set(["last-line", "first-output"]);
const REPEATABLE = new Set(["match", "ignore"]);
const SHORT_FLAGS: Record<string, string> = { n: "namespace", c: "container" };
const GROWTHS: Growth[] = ["triangular", "linear", "exponential", "fixed"];

/** The `--help` text: one screen. */
export const HELP =
  `log-probe ${VERSION}: a liveness probe that reads the container's own log output

Usage: probe.ts [check] [flags]   one check: exit 0 alive, 1 silent, 2 misconfigured
       probe.ts doctor [flags]    check the set-up, one line each (through kubectl exec)
       probe.ts plan [flags]      the limit, and when the kubelet restarts a silent container
       probe.ts backtest --log-file F [flags]  replay \`kubectl logs --timestamps\` output
       probe.ts --help | --version
The rule: a check fails when the container has printed nothing (since its start, if never)
for longer than the limit; the kubelet restarts it after failureThreshold failures in a row.
A check that cannot see the log (API down, an error) never makes that last failure.
Where (flags, else environment, else ${SERVICE_ACCOUNT_DIR}):
  --server URL            API server (KUBERNETES_SERVICE_HOST/_PORT, else kubernetes.default.svc)
  -n, --namespace NAME    (NAMESPACE, POD_NAMESPACE, else the service account's namespace)
  --pod NAME              (LOG_PROBE_POD_NAME, POD_NAME, else HOSTNAME)
  -c, --container NAME    (CONTAINER_NAME) needed in pods with more than one container
  --service-account-dir D token, ca.crt and namespace (default as above)
  --timeout DURATION      deadline of the whole check, below timeoutSeconds (5s, at most 5m)
Check:
  --state-file PATH       the counter (${DEFAULTS.stateFile}); .NAME added for container NAME
  --termination-message-path P  the container's terminationMessagePath, outside /dev (Deno
                          guards /dev): dates the container's start, tells restarts apart
  --last-line             on silence, quote the last line (events reach more people than logs)
  --first-output          for a startupProbe: fail until the container's first output
  --output json           one JSON object instead of the line
Limit (every command); durations like 30s, 5m, 1h30m:
  --window DURATION       the first window of the schedule (60s)
  --growth G              triangular: 1,3,6,10… windows (default); linear, exponential, fixed
  --max-window DURATION   the limit at most
  --period DURATION       periodSeconds (60s): a second probe on one counter counts once a period
  --failure-threshold N   failureThreshold (15): the limit is the N-th window (2h by default)
Lines (check, doctor, backtest):
  --match REGEX           only matching lines are signs of life (repeatable); needs deno run
                          ${LINEAR_REGEXP_FLAG}: linear time, so no
                          backreferences or lookaheads, ${MAX_PATTERN} characters at most
  --ignore REGEX          matching lines never are (repeatable). With patterns a check reads
                          all written since the check before (first ${MATCHED_CHARS} chars a line)
  --limit-bytes N         bytes of one read (${DEFAULTS.limitBytes}); a check reads page after page
  --tail N                lines --last-line looks through with patterns (${DEFAULTS.tail})
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

/** The flags of a command line, by name, in order; checked against the command. */
function flagValues(args: string[], command: CommandName, from: number): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (let i = from; i < args.length; i++) {
    const arg = args[i];
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
  return values;
}

/** The limit's and the kubelet's options, shared by every command. */
function planOptions(values: Map<string, string[]>): PlanOptions {
  const get = (name: string) => values.get(name)?.[0];
  const duration = (name: string) =>
    values.has(name) ? parseDuration(get(name)!, `--${name}`) : undefined;
  const growth = get("growth") ?? DEFAULTS.growth;
  if (!GROWTHS.includes(growth as Growth)) {
    throw new ConfigError(`Invalid --growth ${quote(growth)}: use ${GROWTHS.join(", ")}`);
  }
  const options: PlanOptions = {
    window: duration("window") ?? DEFAULTS.window,
    growth: growth as Growth,
    maxWindow: duration("max-window"),
    period: duration("period") ?? DEFAULTS.period,
    failureThreshold: values.has("failure-threshold")
      ? wholeNumber(get("failure-threshold")!, "--failure-threshold", 9999)
      : DEFAULTS.failureThreshold,
  };
  if (options.maxWindow !== undefined && options.maxWindow < options.window) {
    throw new ConfigError(
      `Invalid --max-window ${quote(get("max-window")!)}: shorter than --window`,
    );
  }
  return options;
}

function lineOptions(values: Map<string, string[]>): LineOptions {
  const get = (name: string) => values.get(name)?.[0];
  return {
    match: (values.get("match") ?? []).map((p) => compilePattern(p, "--match")),
    ignore: (values.get("ignore") ?? []).map((p) => compilePattern(p, "--ignore")),
    tail: values.has("tail") ? wholeNumber(get("tail")!, "--tail", 100_000) : DEFAULTS.tail,
    limitBytes: values.has("limit-bytes")
      ? wholeNumber(get("limit-bytes")!, "--limit-bytes", 64 * 1024 * 1024)
      : DEFAULTS.limitBytes,
  };
}

/**
 * Parses the command line into a command and its options. Throws
 * {@linkcode ConfigError} naming the bad value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const parsed = parseArgs(["plan", "--window", "30s"]);
 * assert.equal(parsed.command === "plan" && parsed.options.window, 30);
 * ```
 */
export function parseArgs(args: string[]): Command {
  if (args.some((arg) => arg === "--help" || arg === "-h")) return { command: "help" };
  if (args.includes("--version")) return { command: "version" };
  const named = ["check", "plan", "doctor", "backtest"].includes(args[0]);
  const command = (named ? args[0] : "check") as CommandName;
  const values = flagValues(args, command, named ? 1 : 0);
  const get = (name: string) => values.get(name)?.[0];
  const plan = planOptions(values);
  if (command === "plan") return { command, options: plan };
  const lines = lineOptions(values);
  if (command === "backtest") {
    const logFile = get("log-file");
    if (!logFile) {
      throw new ConfigError("Missing --log-file: the output of kubectl logs --timestamps");
    }
    return { command, options: { ...plan, ...lines, logFile } };
  }
  const output = get("output") ?? "line";
  if (output !== "line" && output !== "json") {
    throw new ConfigError(`Invalid --output ${quote(output)}: use json`);
  }
  for (const name of ["state-file", "service-account-dir"]) {
    if (get(name) === "") throw new ConfigError(`Empty --${name}`);
  }
  const timeout = values.has("timeout") ? parseDuration(get("timeout")!, "--timeout") : 5;
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
      ...plan,
      ...lines,
      server: get("server"),
      namespace: get("namespace"),
      pod: get("pod"),
      container: get("container"),
      stateFile: get("state-file") ?? DEFAULTS.stateFile,
      timeout,
      serviceAccountDir: get("service-account-dir") ?? DEFAULTS.serviceAccountDir,
      terminationMessagePath: get("termination-message-path") ?? "",
      lastLine: values.has("last-line"),
      firstOutput: values.has("first-output"),
      periodGiven: values.has("period"),
      // 0.3.0's modes for lost answers: one rule now (decide).
      retired: values.has("on-api-error") ? ["--on-api-error"] : [],
      output,
    },
  };
}

/**
 * The window, in seconds, after `checks` checks of the schedule.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(windowFor(2, { window: 60, growth: "triangular" }), 360);
 * ```
 */
export function windowFor(checks: number, options: WindowOptions): number {
  const n = checks;
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
 * The limit, in seconds: the longest silence a check passes. It is the window the schedule
 * reaches at the kubelet's `failureThreshold`-th check (2h with the defaults), so the kubelet
 * restarts a silent container after the limit and `failureThreshold` failing checks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(limitOf({ window: 60, growth: "triangular", period: 60, failureThreshold: 15 }), 7200);
 * ```
 */
export function limitOf(options: PlanOptions): number {
  return windowFor(options.failureThreshold - 1, options);
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
  const pod = options.pod ?? env("LOG_PROBE_POD_NAME") ?? env("POD_NAME") ?? env("HOSTNAME");
  const container = options.container ?? env("CONTAINER_NAME");
  const label = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
  if (!namespace) {
    throw new ConfigError(
      "No namespace: pass --namespace or set POD_NAMESPACE (downward API)",
    );
  }
  if (!label.test(namespace)) throw new ConfigError(`Invalid namespace ${quote(namespace)}`);
  if (!pod) {
    throw new ConfigError("No pod name: pass --pod or set LOG_PROBE_POD_NAME (downward API)");
  }
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
  /** Read on the node's clock by the kubelet. */
  sinceSeconds?: number;
  /** Read what is new since this time (RFC3339, whole seconds: the API server drops the rest). */
  sinceTime?: string;
  /** Absent: every line of the current log file (that `since` keeps). */
  tailLines?: number;
  limitBytes: number;
}

/** Seconds re-read before where the last read ended: the API server rounds sinceTime down. */
const REREAD = 2;

/**
 * Where a check starts reading (ms): where the last answered read ended, or, before any, the
 * output remembered (the container's start, for a new instance), less {@linkcode REREAD}
 * seconds, so that no line written since is missed, however long the checks between could not
 * see the log. Without patterns the one line asked for costs the same however far back: at least
 * the limit back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const now = Date.parse("2026-11-25T14:00:00Z");
 * const memory = { now, lastOutput: now - 600_000, seenUntil: now - 60_000 };
 * assert.equal(readFrom(memory, 7200, true), now - 62_000);
 * assert.equal(readFrom(memory, 7200, false), now - 7_200_000);
 * assert.equal(readFrom({ now, lastOutput: now - 9_000_000 }, 7200, false), now - 9_002_000);
 * ```
 */
export function readFrom(
  memory: Pick<Memory, "seenUntil" | "lastOutput" | "now">,
  limit: number,
  patterns: boolean,
): number {
  const seen = memory.seenUntil !== undefined && memory.seenUntil <= memory.now
    ? memory.seenUntil
    : Math.min(memory.lastOutput, memory.now);
  const from = seen - REREAD * 1000;
  return patterns ? from : Math.min(memory.now - limit * 1000, from);
}

/**
 * The query of a check without patterns: the newest line, if the kubelet finds it after `from`
 * (ms, on the node's clock), at most {@linkcode LIMIT_BYTES} bytes; any byte is output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const now = Date.parse("2026-11-25T14:00:00Z");
 * assert.deepEqual(newestQuery(now - 7_200_000, now), { sinceSeconds: 7200, tailLines: 1, limitBytes: 64 });
 * ```
 */
export function newestQuery(from: number, now: number): LogQuery {
  const seconds = Math.min(Math.max(1, Math.ceil((now - from) / 1000)), WINDOW_LIMIT);
  return { sinceSeconds: seconds, tailLines: 1, limitBytes: LIMIT_BYTES };
}

/**
 * The query of one page of a check with patterns: every line from `from` (ms, rounded down to
 * the second as the API server does), at most `limitBytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(pageQuery(Date.parse("2026-11-25T12:01:58.500Z"), 1048576), {
 *   sinceTime: "2026-11-25T12:01:58Z",
 *   limitBytes: 1048576,
 * });
 * ```
 */
export function pageQuery(from: number, limitBytes: number): LogQuery {
  return { sinceTime: utc(from).replace(/\.\d+Z$/, "Z"), limitBytes };
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

/** Seconds a remembered time may lie ahead of the pod's clock before it is not trusted. */
const CLOCK_SLACK = 60;

/**
 * The kubelet's own errors on the log file, which reach the probe as a 200 whose body is the
 * error's text (`GetKubeletContainerLogs` in `pkg/kubelet/kubelet_pods.go` writes zero bytes,
 * which commits the status, before the runtime reads the file): `cri-client`
 * `pkg/logs/logs.go` `ReadLogs` (a file renamed by rotation, one the runtime never reopened, a
 * corrupted one) and `pkg/kubelet/kuberuntime/kuberuntime_container.go` `GetContainerLogs` (the
 * runtime's status call failed).
 */
/** apimachinery's message for a 404 it has no better words for (NewGenericServerResponse). */
const NOT_FOUND = "the server could not find the requested resource";

const KUBELET_LOG_ERROR =
  /^(failed to (try resolving symlinks in path|open log file|read log file|seek|reset seek in log file|tail|get parse function:)|unable to retrieve container logs for) /;

/**
 * What an answer shows, before the memory is brought in: an answered read (`seen`, with the
 * newest line that counts in it, if any, and what was not read), no sight of the log (`blind`:
 * an outage, or with `error` a set-up that cannot work), or the kubelet's error on the log file
 * (`unreadable`).
 */
export type Evidence =
  | { kind: "seen"; at?: number; unread?: string; partial?: boolean }
  | { kind: "blind"; why: string; error?: boolean }
  | { kind: "unreadable"; why: string };

/** Evidence of an answer that was not a 200. */
function failedAnswer(answer: Answer, target: Target): Evidence {
  const lost = (why: string): Evidence => ({ kind: "blind", why });
  const error = (why: string): Evidence => ({ kind: "blind", why, error: true });
  if ("failure" in answer) {
    const detail = answer.detail;
    switch (answer.failure) {
      case "timeout":
        return lost(`no answer from the API server within ${detail}`);
      case "unreachable":
        return lost(`API server unreachable: ${detail}`);
      case "expired":
        return lost(
          `API server certificate ${
            /NotValidYet|not valid yet/i.test(detail) ? "not valid yet" : "expired"
          } (the control plane's to renew, or this node's clock)`,
        );
      case "tls":
        return error(
          `API server certificate rejected: ${detail} (is ca.crt the cluster's CA? --server right?)`,
        );
      case "protocol":
        return error(
          `API server does not speak TLS as expected: ${detail} (a plain-HTTP port? --server right?)`,
        );
      case "permission":
        return error(`Deno permission missing: ${detail}`);
    }
  }
  const message = statusMessage(answer.body);
  const status = answer.status;
  if (status === 408 || status === 429 || status >= 500) {
    return lost(`API server answered ${status} ${message}`);
  }
  if (status === 401) {
    return error(
      "unauthorized: the API server rejected the service-account token (deleted ServiceAccount? expired token?)",
    );
  }
  if (status === 403) {
    const user = message.match(/User "([^"]+)"/)?.[1] ?? "this pod's service account";
    const who = user.startsWith("system:serviceaccount:") ? `the service account ${user}` : user;
    return error(
      `forbidden: ${who} cannot get pods/log in ${target.namespace} (bind the Role log-probe to it)`,
    );
  }
  // The kubelet's own 404: it does not know the pod (pkg/kubelet/server/server.go
  // getContainerLogs), which reaches us as this generic message (k8s.io/apiserver
  // pkg/registry/generic/rest/response_checker.go). The kubelet that runs this check knows its
  // pod: it is a kubelet restarted a moment ago (the real node's answer for about a second), or
  // the API server reached another node's kubelet. An error, so that it is loud if it lasts; one
  // alone fails nothing (errors fail the third blind check in a row). A pod that does not exist
  // is the API server's own `pods "x" not found`, below.
  if (status === 404 && message === `${NOT_FOUND} ( pods/log ${target.pod})`) {
    return error(
      `the kubelet does not know the pod ${target.namespace}/${target.pod} (restarted a moment ago, or the API server reached another node's kubelet: a stale node address?)`,
    );
  }
  if (status === 404) {
    return error(
      `not found: pod ${target.namespace}/${target.pod} (${message}; is --pod/LOG_PROBE_POD_NAME right?)`,
    );
  }
  if (status === 400 && message.startsWith("a container name must be specified")) {
    return error(`${message} (pass --container)`);
  }
  return error(`API server answered ${status}: ${message}`);
}

/**
 * Turns the API server's answer into {@linkcode Evidence}. A 200 answer is read with
 * {@linkcode scanLog} from `since` (ms) unless the check already streamed it (`answer.scan`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const lines = { match: [], ignore: [], tail: 300, limitBytes: 1048576 };
 * const target = { server: "https://10.0.0.1", namespace: "shop", pod: "web" };
 * const body = "2026-11-25T12:00:00.000000000Z processed job 1\n";
 * assert.deepEqual(evidenceOf({ status: 200, body, bytes: body.length, type: "text/plain" }, lines, target), {
 *   kind: "seen",
 *   at: Date.parse("2026-11-25T12:00:00Z"),
 * });
 * ```
 */
export function evidenceOf(
  answer: Answer,
  options: LineOptions,
  target: Target,
  since?: number,
): Evidence {
  if ("failure" in answer || answer.status !== 200) return failedAnswer(answer, target);
  // The API server serves every log as text/plain (pkg/registry/core/pod/rest/log.go).
  const type = answer.type?.split(";")[0].trim().toLowerCase();
  const encoding = answer.encoding ?? "identity";
  const scan = answer.scan ?? scanLog(answer.body, options, {
    since,
    cut: filtering(options) && answer.bytes >= (answer.limit ?? Infinity),
  });
  if (scan.stamped === 0 && scan.bare !== undefined && KUBELET_LOG_ERROR.test(scan.bare)) {
    return { kind: "unreadable", why: `the kubelet cannot read the log: ${quote(scan.bare)}` };
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
    return {
      kind: "blind",
      error: true,
      why:
        `answer is not a container log (${not}): --server is not the API server, or a proxy answers`,
    };
  }
  const unread = scan.outOfTime
    ? `only ${plural(scan.lines, "line")} matched within --timeout: raise it or the CPU limit`
    : undefined;
  return {
    kind: "seen",
    ...(scan.newest ? { at: scan.newest.at } : {}),
    ...(unread ? { unread, partial: true } : {}),
  };
}

/** What the decision needs besides the evidence and the memory: the limit and the lines. */
export type DecisionOptions = PlanOptions & LineOptions & { firstOutput?: boolean };

/**
 * The decision: evidence and memory → verdict, exit code, next memory. One rule: **a check
 * fails when the container has printed nothing (since its start, if never) for longer than the
 * limit** ({@linkcode limitOf}); the kubelet restarts it after `failureThreshold` failures in a
 * row. Checks that cannot see the log only delay that, and never fail a container that printed.
 *
 * | evidence | when | verdict | exit | failures in a row |
 * |---|---|---|---|---|
 * | seen | silence ≤ limit | alive | 0 | 0 |
 * | seen | silence > limit | silent | 1 | +1 |
 * | blind (lost or error) | the last answered check was silent, fewer than `failureThreshold` blind in a row, and this is not the `failureThreshold`-th failure | unknown / error | 1 / 2 | +1 |
 * | blind, error | otherwise, the third of a blind run and every third after it, after a pass, with a `failureThreshold` over 2 | error | 2 | +1 |
 * | blind | otherwise | unknown / error | 0 | 0 |
 * | unreadable | the check before was unreadable too | as seen, no line | | |
 * | unreadable | otherwise | as blind (lost) | | |
 *
 * With `firstOutput` (a startupProbe's check) the start does not count: silent until the first
 * line, and a blind check passes (the liveness probe takes over).
 *
 * So the kubelet's last failure before a restart is always a check that saw the log; a blind
 * run in a silent streak keeps it going; a misconfiguration fails at most one check in three.
 * A check that does not count (`counted: false`: a second probe on the same counter within
 * the same period) gives its verdict, never fails for being blind, and leaves the counts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const options = { window: 60, growth: "triangular" as const, period: 60, failureThreshold: 15, match: [], ignore: [], tail: 300, limitBytes: 1048576 };
 * const now = Date.parse("2026-11-25T14:00:00Z");
 * const memory = { lastOutput: now - 7260_000, failures: 0, blind: 0, unreadable: false, fromStart: false, counted: true, now };
 * const outcome = decide({ kind: "seen" }, memory, options);
 * assert.equal(outcome.code, 1);
 * assert.equal(outcome.message, "silent: no output for 2h1m, over the 2h limit (1 failure in a row; the kubelet restarts at 15)");
 * ```
 */
export function decide(evidence: Evidence, memory: Memory, options: DecisionOptions): Outcome {
  if (evidence.kind === "unreadable") {
    // Once: a rotation under way, most likely. On consecutive checks: a log the node cannot
    // read again, judged as an empty one (a restart gives the container a new file).
    const outcome = memory.unreadable
      ? decide({ kind: "seen", unread: `${evidence.why}, twice in a row` }, memory, options)
      : decide(
        { kind: "blind", why: `${evidence.why} (once; twice in a row: an empty log)` },
        memory,
        options,
      );
    // Nothing was read: the next read starts where the last one that read ended.
    return {
      ...outcome,
      next: { ...outcome.next, seenUntil: memory.seenUntil, unreadable: true },
    };
  }
  const outcome = evidence.kind === "seen"
    ? decideSeen(evidence, memory, options)
    : decideBlind(evidence, memory, options);
  // A startupProbe's check that cannot see the log hands over to the liveness probe.
  if (options.firstOutput && evidence.kind !== "seen") return { ...outcome, code: 0 };
  if (memory.counted) return outcome;
  // A second probe's check in the same period: its verdict; the counts stay the first one's.
  const next = {
    ...outcome.next,
    failures: memory.failures,
    blind: memory.blind,
    passedLast: outcome.verdict === "alive" ? 0 : memory.passedLast,
  };
  if (outcome.verdict === "silent") return { ...outcome, next };
  // One that would fail for being blind passes, and its line must not say it failed.
  const message = outcome.code && evidence.kind === "blind"
    ? `${outcome.verdict}: ${evidence.why}; passed: not counted, the check before was this period's`
    : outcome.message;
  return { ...outcome, code: 0, message, next };
}

/** The silence a memory shows (seconds), with a time ahead of the clock taken as now. */
function lastOutputOf(memory: Memory): number {
  return memory.lastOutput > memory.now + CLOCK_SLACK * 1000 ? memory.now : memory.lastOutput;
}

function decideSeen(
  evidence: { at?: number; unread?: string; partial?: boolean },
  memory: Memory,
  options: DecisionOptions,
): Outcome {
  const limit = limitOf(options);
  const known = lastOutputOf(memory);
  const fresh = evidence.at !== undefined && evidence.at > known;
  const lastOutput = fresh ? Math.min(evidence.at!, memory.now) : known;
  const fromStart = memory.fromStart && !fresh;
  const silence = Math.max(0, (memory.now - lastOutput) / 1000);
  // Part of what was written was not read (too much in one second, too many pages, the
  // deadline): a line that counts may be there. Silence is never claimed unseen: as blind.
  if (evidence.partial && silence > limit) {
    // A line it did find is remembered all the same.
    const found = { ...memory, lastOutput, fromStart };
    const why = fresh
      ? "the newest line that counts in what was read is past the limit"
      : "no line that counts in what was read";
    return decideBlind({ why: `${why}: ${evidence.unread}` }, found, options);
  }
  const output = filtering(options) ? "matching output" : "output";
  const note = evidence.unread ? ` (${evidence.unread})` : "";
  // Rounded up past the limit, so that the line never shows a silence equal to it.
  const shown = formatDuration(silence > limit ? Math.ceil(silence) : silence);
  const since = fromStart ? ` since the start ${shown} ago` : ` for ${shown}`;
  const next = {
    lastOutput,
    fromStart,
    seenUntil: memory.now,
    blind: 0,
    unreadable: false,
    // A new line begins a new silence: its passed last failures are counted afresh.
    passedLast: fresh ? 0 : memory.passedLast,
  };
  if (options.firstOutput && fromStart) {
    // A startupProbe's: the start does not count, only a line does.
    const message = `silent: no ${output} yet, started ${formatDuration(silence)} ago${note}`;
    return { verdict: "silent", code: 1, message, silence, next: { ...next, failures: 0 } };
  }
  if (silence <= limit) {
    const message = evidence.at !== undefined && silence < limit
      ? `alive: ${output} ${formatDuration(silence)} ago${note}`
      : `alive: no ${output}${since}, within the ${formatDuration(limit)} limit${note}`;
    // Within the limit: the next silence starts its count of passed last failures afresh.
    return {
      verdict: "alive",
      code: 0,
      message,
      silence,
      next: { ...next, failures: 0, passedLast: 0 },
    };
  }
  const message = `silent: no ${output}${since}, over the ${formatDuration(limit)} limit`;
  const silent = (code: number, said: string, failures: number): Outcome => ({
    verdict: "silent",
    code,
    message: `${message}${said}${evidence.unread ? `; ${evidence.unread}` : ""}`,
    silence,
    next: { ...next, failures },
  });
  const counted = fresh ? { ...memory, passedLast: 0 } : memory;
  return failSilent(silent, counted, options, { known, silence });
}

/**
 * A silent check's exit. It fails, except where it would move the streak off blind checks (see
 * below) or make the kubelet's last failure before `plan`'s minimum.
 */
function failSilent(
  silent: (code: number, said: string, failures: number) => Outcome,
  memory: Memory,
  options: DecisionOptions,
  seen: { known: number; silence: number },
): Outcome {
  const limit = limitOf(options);
  const failures = memory.failures + (memory.missed ?? 0) + 1;
  // A blind check just passed where it would have made the last failure. Checks that cannot see
  // the log in a rhythm (every other one, with an even failureThreshold) would land there every
  // time. The first time, this check passes too, moving the streak by one check; the second
  // time it does not: under any single rhythm one of the two streaks ends on an answered check.
  // After that (blind checks in a rhythm of several beats), a coin drawn from the clock decides.
  const blindPassed = memory.blind > 0 && memory.failures === 0 && memory.seenUntil !== undefined &&
    (memory.seenUntil - seen.known) / 1000 > limit;
  const passedLast = Math.min((memory.passedLast ?? 0) + (blindPassed ? 1 : 0), 3);
  const outcome = (code: number, said: string, failures: number): Outcome => {
    const out = silent(code, said, failures);
    return { ...out, next: { ...out.next, passedLast } };
  };
  const move = passedLast === 1 || (passedLast === 3 && coin(memory.now));
  if (blindPassed && move) {
    return outcome(
      0,
      "; passed once, to move the streak off the checks that cannot see the log",
      0,
    );
  }
  // The kubelet's last failure only once the silence has lasted the limit and the
  // failureThreshold − 1 periods after it: never earlier because errors or killed checks
  // began the run before the limit.
  const { earliest } = restartAfter(options);
  if (failures >= options.failureThreshold && seen.silence <= earliest) {
    const said = `; passed: failure ${failures} in a row would come before ${
      formatDuration(earliest)
    } of silence`;
    return outcome(0, said, 0);
  }
  const said = ` (${
    plural(failures, "failure")
  } in a row; the kubelet restarts at ${options.failureThreshold})`;
  return outcome(1, said, failures);
}

/**
 * Heads or tails from a time's second: a hash of it, so that no rhythm of checks lines up with
 * it, and the same for every run within that second (a check's own milliseconds vary).
 */
function coin(ms: number): boolean {
  // murmur3's finalizer, then its top bit: every bit of the second moves it.
  let h = Math.floor(ms / 1000) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 31 === 1;
}

function decideBlind(
  evidence: { why: string; error?: boolean },
  memory: Memory,
  options: DecisionOptions,
): Outcome {
  const limit = limitOf(options);
  const threshold = options.failureThreshold;
  const lastOutput = lastOutputOf(memory);
  const silence = Math.max(0, (memory.now - lastOutput) / 1000);
  const failing = memory.seenUntil !== undefined &&
    (memory.seenUntil - lastOutput) / 1000 > limit && memory.blind < threshold;
  // The kubelet's count so far: this probe's failures and the checks it killed since.
  const failures = memory.failures + (memory.missed ?? 0);
  const last = failures + 1 >= threshold;
  const verdict = evidence.error ? "error" : "unknown";
  const fail = evidence.error ? 2 : 1;
  // A misconfiguration's turn to fail: every third blind check; one that would follow a failure
  // (a killed check) waits for the next check, so two never come in a row.
  const due = evidence.error && !failing && threshold > 2 &&
    memory.blind % ERROR_CADENCE === ERROR_CADENCE - 1;
  const [code, said] = failing && !last
    ? [fail, `failed, as the silent check before (${failures + 1} in a row)`]
    : failing
    ? [0, `passed: a check that cannot see the log never makes failure ${threshold} in a row`]
    : due && failures === 0
    ? [2, ""]
    : evidence.error
    ? [0, "passed (errors fail one check in three)"]
    : [0, `passed, as the check before (last output ${formatDuration(silence)} ago)`];
  return {
    verdict,
    code,
    message: `${verdict}: ${evidence.why}${said ? `; ${said}` : ""}`,
    silence,
    next: {
      lastOutput,
      fromStart: memory.fromStart,
      seenUntil: memory.seenUntil,
      failures: code ? failures + 1 : 0,
      blind: due && code === 0 ? memory.blind : memory.blind + 1,
      unreadable: false,
      passedLast: memory.passedLast,
    },
  };
}

/**
 * Turns the API server's answer into a verdict, an exit code and the memory it leaves:
 * {@linkcode evidenceOf}, then {@linkcode decide}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const options = { window: 60, growth: "triangular" as const, period: 60, failureThreshold: 15, match: [], ignore: [], tail: 300, limitBytes: 1048576 };
 * const target = { server: "https://10.0.0.1", namespace: "shop", pod: "web" };
 * const now = Date.parse("2026-11-25T12:20:00Z");
 * const memory = { lastOutput: now - 1200_000, fromStart: true, failures: 0, blind: 0, unreadable: false, counted: true, now };
 * const outcome = judge({ status: 200, body: "", bytes: 0 }, memory, options, target);
 * assert.equal(outcome.message, "alive: no output since the start 20m ago, within the 2h limit");
 * ```
 */
export function judge(
  answer: Answer,
  memory: Memory,
  options: DecisionOptions,
  target: Target,
): Outcome {
  const since = readFrom(memory, limitOf(options), filtering(options));
  return decide(evidenceOf(answer, options, target, since), memory, options);
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

/** The counter file: the memory of one container instance, and when a check last counted. */
export interface Counter extends Omit<Memory, "counted" | "missed" | "now"> {
  instance: string;
  /** When a check last counted (ms): a second probe within the same period does not. */
  countedAt?: number;
  /** True when there is no counter file yet. */
  missing?: boolean;
  /** Why the stored memory was not used, when it was not. */
  note?: string;
}

const COUNTER_TAG = "log-probe/4";
const STAMP_OR_NONE = "(-|\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z)";
const COUNTER_LINE = new RegExp(
  `^${COUNTER_TAG} (\\S{1,80}) ${STAMP_OR_NONE} ${STAMP_OR_NONE} ${STAMP_OR_NONE} (\\d{1,4}) (\\d{1,4}) (\\d|1[0-5])\\n?$`,
);

/** A counter for a container instance no check has seen yet: silence counts from `start`. */
export function freshCounter(instance: string, start: number, note?: string): Counter {
  return {
    instance,
    lastOutput: start,
    fromStart: true,
    failures: 0,
    blind: 0,
    unreadable: false,
    ...(note ? { note } : { missing: true }),
  };
}

/**
 * Reads the counter file's text, one line:
 * `log-probe/4 instance lastOutput seenUntil countedAt failures blind flags` (UTC times, `-` for
 * none; flags: 1 the kubelet could not read the log at the last check, 2 no output seen yet, so
 * lastOutput is the start, plus 4 times `passedLast`, 0 to 3). Garbage, another version's line
 * and another instance's give a fresh counter from `start`, with a note.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const start = Date.parse("2026-11-25T12:00:00Z");
 * const counter = parseCounter(
 *   "log-probe/4 64768:1201:- 2026-11-25T12:30:00.500Z 2026-11-25T12:31:00.000Z - 0 0 0\n",
 *   "64768:1201:-",
 *   start,
 * );
 * assert.equal(counter.lastOutput, Date.parse("2026-11-25T12:30:00.500Z"));
 * assert.equal(parseCounter(undefined, "64768:1201:-", start).lastOutput, start);
 * ```
 */
export function parseCounter(text: string | undefined, instance: string, start: number): Counter {
  if (text === undefined) return freshCounter(instance, start);
  const line = text.match(COUNTER_LINE);
  if (!line) return freshCounter(instance, start, "counter held garbage or another version's line");
  if (line[1] !== instance && line[1] !== "-" && instance !== "-") {
    return freshCounter(instance, start, "counter of a previous container instance discarded");
  }
  const time = (value: string) => value === "-" ? undefined : Date.parse(value);
  const [lastOutput, seenUntil, countedAt] = [line[2], line[3], line[4]].map(time);
  if (lastOutput === undefined || [lastOutput, seenUntil, countedAt].some(Number.isNaN)) {
    return freshCounter(instance, start, "counter held garbage or another version's line");
  }
  const flags = Number(line[7]);
  return {
    instance,
    lastOutput,
    fromStart: (flags & 2) !== 0,
    ...(seenUntil !== undefined ? { seenUntil } : {}),
    ...(countedAt !== undefined ? { countedAt } : {}),
    failures: Number(line[5]),
    blind: Number(line[6]),
    unreadable: (flags & 1) !== 0,
    ...(flags >> 2 ? { passedLast: flags >> 2 } : {}),
  };
}

/** The counter file's text: one short line. */
export function formatCounter(counter: Counter): string {
  const time = (ms?: number) => ms === undefined ? "-" : utc(ms);
  const flags = (counter.unreadable ? 1 : 0) + (counter.fromStart ? 2 : 0) +
    4 * (counter.passedLast ?? 0);
  return `${COUNTER_TAG} ${counter.instance} ${time(counter.lastOutput)} ${
    time(counter.seenUntil)
  } ${time(counter.countedAt)} ${Math.min(counter.failures, 9999)} ${
    Math.min(counter.blind, 9999)
  } ${flags}\n`;
}

/**
 * What a check at `now` knows: the counter's memory; whether it counts (not a second probe's
 * check on the same counter within 3/4 of a period of the last that counted); and how many of
 * the kubelet's checks since that one left no trace (a gap of n periods: n − 1 checks killed at
 * `timeoutSeconds`, or that never finished). Both need `--period` (`periodGiven`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const counter = { ...freshCounter("-", 0), countedAt: 60_000 };
 * const options = { period: 60, periodGiven: true, failureThreshold: 15 };
 * assert.equal(recall(counter, 90_000, options).counted, false);
 * assert.equal(recall(counter, 240_000, options).missed, 2);
 * ```
 */
export function recall(
  counter: Counter,
  now: number,
  options: { period: number; periodGiven: boolean; failureThreshold: number },
): Memory {
  const gap = counter.countedAt === undefined ? undefined : (now - counter.countedAt) / 1000;
  const known = options.periodGiven && gap !== undefined && gap >= 0;
  const counted = !known || gap! >= options.period * 0.75;
  const missed = known && counted ? Math.max(0, Math.round(gap! / options.period) - 1) : 0;
  // The kubelet would have restarted this instance after failureThreshold: a longer gap was not
  // all failures (a kubelet restart, a paused node), so at most the rest of the threshold.
  const room = Math.max(0, options.failureThreshold - 1 - counter.failures);
  return { ...counter, counted, missed: Math.min(missed, room), now };
}

/** The counter a check leaves: its outcome's memory, where it read to, and when it counted. */
export function nextCounter(
  counter: Counter,
  outcome: Outcome,
  memory: Memory,
  seenUntil?: number,
): Counter {
  return {
    instance: counter.instance,
    ...outcome.next,
    ...(seenUntil !== undefined ? { seenUntil } : {}),
    countedAt: memory.counted ? memory.now : counter.countedAt,
  };
}

/**
 * When the kubelet restarts a container that printed its last line (or started) at 0s, in
 * seconds of silence: the first failing check comes up to one period after the limit, the
 * restart `failureThreshold − 1` periods after that. `earliest` is exclusive.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(restartAfter({ window: 60, growth: "triangular", period: 60, failureThreshold: 15 }), {
 *   limit: 7200,
 *   earliest: 8040,
 *   latest: 8100,
 * });
 * ```
 */
export function restartAfter(
  options: PlanOptions,
): { limit: number; earliest: number; latest: number } {
  const limit = limitOf(options);
  const rest = (options.failureThreshold - 1) * options.period;
  return { limit, earliest: limit + rest, latest: limit + rest + options.period };
}

/** The text `plan` prints. */
export function renderPlan(options: PlanOptions): string {
  const { limit, earliest, latest } = restartAfter(options);
  const threshold = options.failureThreshold;
  const windows = Array.from({ length: threshold }, (_, n) => windowFor(n, options));
  const shown = windows.length > 8 ? [...windows.slice(0, 4), "…", ...windows.slice(-2)] : windows;
  return [
    `Limit: ${
      formatDuration(limit)
    }, the window the schedule reaches at check ${threshold} (--window ${
      formatDuration(options.window)
    } --growth ${options.growth}${
      options.maxWindow ? ` --max-window ${formatDuration(options.maxWindow)}` : ""
    }: ${shown.map((w) => typeof w === "number" ? formatDuration(w) : w).join(", ")}).`,
    `Kubelet: a check every ${formatDuration(options.period)}, restart after ${
      plural(threshold, "failure")
    } in a row.`,
    "",
    `A check fails once the container has printed nothing for more than ${
      formatDuration(limit)
    }, counted from its start if it never printed.`,
    `The kubelet restarts it after ${formatDuration(earliest)} to ${
      formatDuration(latest)
    } of silence, depending on where the last output falls between two checks.`,
    `A worker that prints at least every ${formatDuration(earliest)} is never restarted.`,
    `A check that cannot see the log (the API server down, an error) never makes failure ${threshold} in a row: it can delay a restart, never bring it forward.`,
    `A misconfiguration fails one check in ${ERROR_CADENCE} at most: it never restarts the container.`,
    "Output printed and rotated away between two checks cannot count: no check saw it.",
  ].join("\n");
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
 * Tells container instances apart, and dates this one's start: the kubelet creates a new
 * termination-message file just before each container start (`makeMounts`,
 * `pkg/kubelet/kubelet_pods.go`) and nothing writes it until the container ends. Its device,
 * inode and birth time (where the filesystem keeps one: an inode number alone can come back once
 * the file is deleted) name the instance; its modification time is the start. No file named:
 * instance "-", and the start is unknown.
 */
function instanceOf(path: string): { instance: string; start?: number } {
  if (path === "") return { instance: "-" };
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
  return {
    instance: `${info.dev}:${info.ino}:${born === undefined ? "-" : born.toString(36)}`,
    start: info.mtime?.getTime(),
  };
}

/** A counter line is short: more than this is garbage, and is not read. */
const COUNTER_BYTES = 256;

/** The counter of this instance; a missing or unusable one starts from `start`. */
function loadCounter(path: string, instance: string, start: number): Counter {
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
      return freshCounter(instance, start, `counter unreadable (${reason(error)}), started afresh`);
    }
  }
  return parseCounter(text, instance, start);
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
      // Lines that arrived before the deadline still show output, and the rest was not read
      // (outOfTime); without any, the answer is lost.
      const scan = streamed ? init.scanner?.scan : undefined;
      if (!scan?.newest && !scan?.outOfTime) return { failure: "timeout", detail: "the deadline" };
      scan.outOfTime = true;
      return { status: 200, type: "text/plain", body: "", bytes: scan.bytes, scan };
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

/** What a check read: its evidence, and where reading stopped (ms) when it read. */
interface Reading {
  evidence: Evidence;
  seenUntil?: number;
}

/** A request at the check's deadline is a lost answer named by the check's --timeout. */
async function ask(
  url: string,
  credentials: Credentials,
  signal: AbortSignal,
  options: CheckOptions,
  init: { limit?: number; scanner?: LogScanner } = {},
): Promise<Answer> {
  const answer = await call(url, credentials, signal, init);
  return "failure" in answer && answer.failure === "timeout"
    ? { failure: "timeout", detail: formatDuration(options.timeout) }
    : answer;
}

/**
 * The check's read: without patterns, the newest line if the kubelet finds it inside the limit;
 * with them, every line since the last read, page by page ({@linkcode readPages}).
 */
async function readLog(
  target: Target,
  options: CheckOptions,
  memory: Memory,
  credentials: Credentials,
  signal: AbortSignal,
  deadline: number,
): Promise<Reading> {
  if (filtering(options)) {
    return await readPages(target, options, memory, { credentials, signal, deadline });
  }
  const query = newestQuery(readFrom(memory, limitOf(options), false), memory.now);
  const answer = await ask(logUrl(target, query), credentials, signal, options);
  const from = memory.now - query.sinceSeconds! * 1000;
  const evidence = evidenceOf(answer, options, target, from);
  if (evidence.kind !== "seen") return { evidence };
  // A line the kubelet found in the window (on the node's clock) is in it.
  if (evidence.at !== undefined) evidence.at = Math.max(evidence.at, from);
  return { evidence, seenUntil: memory.now };
}

/**
 * Every line written since the last read (or the limit back), at most `--limit-bytes` a
 * request, each page starting at the second of the last line the one before judged, until
 * caught up, out of time or {@linkcode MAX_PAGES}: the newest line that counts decides, and
 * what was not read is named. The kubelet writes lines from `since` forward and stops at
 * limitBytes (`cri-client` `pkg/logs/logs.go`), so a cut page lacks only the newest lines.
 */
async function readPages(
  target: Target,
  options: CheckOptions,
  memory: Memory,
  io: { credentials: Credentials; signal: AbortSignal; deadline: number },
): Promise<Reading> {
  const lines = { ...options, deadline: io.deadline };
  let from = readFrom(memory, limitOf(options), true);
  let newest: number | undefined;
  let bytes = 0;
  // Seconds with more than a page of lines, whose rest was not read: named in the line.
  const skipped = { seconds: 0, first: 0 };
  const notRead = () =>
    skipped.seconds
      ? `more than --limit-bytes in ${plural(skipped.seconds, "second")} from ${
        utc(skipped.first)
      }, the rest of ${skipped.seconds === 1 ? "it" : "each"} not read`
      : "";
  const seen = (seenUntil: number, unread?: string): Reading => ({
    evidence: {
      kind: "seen",
      ...(newest !== undefined ? { at: newest } : {}),
      ...(unread ? { unread, partial: true } : {}),
    },
    seenUntil,
  });
  for (let page = 1;; page++) {
    const scanner = new LogScanner(lines, from);
    const query = pageQuery(from, options.limitBytes);
    const url = logUrl(target, query);
    const answer = await ask(url, io.credentials, io.signal, options, {
      limit: query.limitBytes,
      scanner,
    });
    if (page === 1 && "scan" in answer && answer.scan?.bare !== undefined) {
      await confirmBare(answer.scan, target, lines, io, from);
    }
    const evidence = evidenceOf(answer, lines, target, from);
    if (evidence.kind !== "seen") {
      if (page === 1) return { evidence };
      const why = evidence.kind === "blind" ? evidence.why : "unreadable";
      return seen(from, `the log after ${utc(from)} not read: ${why}`);
    }
    if (evidence.at !== undefined && !(evidence.at < (newest ?? -Infinity))) newest = evidence.at;
    const scan = "scan" in answer && answer.scan ? answer.scan : { bytes: 0, judgedUntil: from };
    bytes += scan.bytes;
    if (evidence.unread) return seen(scan.judgedUntil ?? from, evidence.unread);
    if ("status" in answer && answer.bytes < query.limitBytes) {
      return seen(memory.now, notRead() || undefined);
    }
    // The API server takes sinceTime in whole seconds: more than a page in one second skips it.
    const second = Math.floor(from / 1000) * 1000;
    const judged = Math.floor((scan.judgedUntil ?? from) / 1000) * 1000;
    const next = judged > second ? judged : second + 1000;
    if (judged <= second) {
      if (!skipped.seconds) skipped.first = second;
      skipped.seconds++;
    }
    const why = page >= MAX_PAGES
      ? `${MAX_PAGES} pages, the most a check reads: raise --limit-bytes`
      : performance.now() >= io.deadline
      ? "--timeout: raise it or the CPU limit"
      : undefined;
    if (why) {
      const more = notRead();
      return seen(
        next,
        `${Math.round(bytes / 1024)} KiB read in ${plural(page, "page")}, the log after ${
          utc(next)
        } not before ${why}${more ? `; ${more}` : ""}`,
      );
    }
    from = next;
  }
}

/**
 * A page that starts with a piece without a timestamp: the rest of a long line the runtime split
 * (CRI partial lines) whose start fell before `since`, or a page that is no log at all. The
 * kubelet's newest line, asked for alone, starts with its timestamp (a tail's first line always
 * does), which a proxy's page never has: only then the piece counts, at `since`.
 */
async function confirmBare(
  scan: Scan,
  target: Target,
  options: LineOptions,
  io: { credentials: Credentials; signal: AbortSignal },
  since: number,
): Promise<void> {
  if (KUBELET_LOG_ERROR.test(scan.bare!)) return;
  const url = logUrl(target, { tailLines: 1, limitBytes: LIMIT_BYTES });
  const newest = await call(url, io.credentials, io.signal);
  const last = "status" in newest && newest.status === 200
    ? scanLog(newest.body, { ...options, match: [], ignore: [] }).newest
    : undefined;
  if (last && last.at >= since) {
    scan.stamped++;
    if (counts(scan.bare!, options)) scan.newest = { at: since, text: scan.bare! };
  }
}

/**
 * For `--last-line`: the newest line that counts in the current log file, with no window. With
 * patterns the newest `--tail` lines, fewer when they pass `--limit-bytes` (the kubelet writes a
 * tail from its oldest line forward and stops at limitBytes, so a cut answer lacks the newest).
 */
async function lastWords(
  target: Target,
  options: CheckOptions,
  io: { credentials: Credentials; signal: AbortSignal; deadline: number },
): Promise<string | undefined> {
  const lines = { ...options, deadline: io.deadline };
  let tail = filtering(options) ? options.tail : 1;
  for (let attempt = 1; attempt <= 8; attempt++) {
    const limit = filtering(options) ? options.limitBytes : LAST_LINE_BYTES;
    const query: LogQuery = { tailLines: tail, limitBytes: limit };
    const scanner = new LogScanner(lines);
    const answer = await call(logUrl(target, query), io.credentials, io.signal, {
      limit,
      scanner,
    });
    if (!("scan" in answer) || !answer.scan) return undefined;
    if (answer.bytes < limit || tail === 1 || answer.scan.outOfTime) {
      return answer.scan.newest?.text;
    }
    tail = Math.max(1, Math.min(answer.scan.lines, Math.floor(tail / 2)));
  }
}

/** What one check did: the outcome, the notes on its counter, and the line the kubelet shows. */
export interface CheckResult {
  outcome: Outcome;
  notes: string[];
  line: string;
}

/** A container name that may name the counter file: a DNS label. */
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The counter file, this instance's memory and whether this check counts, at `now`. */
function memoryOf(
  options: CheckOptions,
  now: number,
): { counter: Counter; memory: Memory; problem?: unknown } {
  let self: { instance: string; start?: number } = { instance: "-" };
  let problem: unknown;
  try {
    self = instanceOf(options.terminationMessagePath);
  } catch (error) {
    problem = error;
  }
  // Without a termination-message file the start is not known: the first check stands for it.
  const counter = loadCounter(options.stateFile, self.instance, Math.min(self.start ?? now, now));
  return { counter, memory: recall(counter, now, options), problem };
}

/** One check, start to end. */
export async function check(given: CheckOptions): Promise<CheckResult> {
  const named = given.container ?? env("CONTAINER_NAME");
  const options = {
    ...given,
    stateFile: counterPath(given.stateFile, named && LABEL.test(named) ? named : undefined),
  };
  const now = Date.now();
  const { counter, memory, problem } = memoryOf(options, now);
  const proxiesOff = keepProxiesOff();
  // Monotonic, as the abort timer: a step of the wall clock moves neither. Matching stops a
  // little before the abort, so that lines that arrived are judged (the probe's own slowness)
  // and only an answer that did not arrive is lost (the server's).
  const deadline = performance.now() + options.timeout * 1000 -
    Math.min(200, options.timeout * 100);
  const signal = AbortSignal.timeout(options.timeout * 1000);
  let reading: Reading;
  let credentials: Credentials | undefined;
  let quoted = "";
  try {
    if (problem) throw problem;
    // The credentials first: without the service-account volume the namespace file is missing
    // too, and the token is the cause to name.
    credentials = readCredentials(options.serviceAccountDir);
    const target = targetOf(given);
    reading = await readLog(target, options, memory, credentials, signal, deadline);
    if (options.lastLine && decide(reading.evidence, memory, options).verdict === "silent") {
      const io = { credentials, signal, deadline };
      const last = await lastWords(target, options, io).catch(() => undefined);
      if (last !== undefined) quoted = `; last line: ${JSON.stringify(last)}`;
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    reading = { evidence: { kind: "blind", why: error.message, error: true } };
  } finally {
    credentials?.client.close();
  }
  const outcome = decide(reading.evidence, memory, options);
  const notes = counter.note ? [counter.note] : [];
  if (!proxiesOff) notes.push("warning: HTTPS_PROXY not kept off (add --allow-env=NO_PROXY)");
  for (const flag of options.retired) notes.push(`${flag} is no longer used`);
  const next = nextCounter(counter, outcome, memory, reading.seenUntil);
  // Written once, atomically; even when nothing changed but the file is missing: a missing file
  // would cost every later check a NotFound error, 1 MiB at peak (bench/).
  if (formatCounter(next) !== formatCounter(counter) || counter.note || counter.missing) {
    try {
      saveCounter(options.stateFile, next);
    } catch (error) {
      unsaved(outcome, options.stateFile, reason(error), notes);
    }
  }
  // The notes come before the quoted line, which is what gets cut when the line is too long.
  const line = oneLine(outcome.message + notes.map((note) => `; ${note}`).join("") + quoted);
  return { outcome, notes, line };
}

/**
 * A counter that cannot be written. A pass stays a pass, with a warning (and the stale counter
 * goes). A silent check stays silent: the answer showed the silence. A failure that is only
 * counted (a blind check's) cannot be kept from the kubelet's threshold: it passes and says so.
 */
function unsaved(outcome: Outcome, path: string, why: string, notes: string[]): void {
  if (outcome.code === 0 || outcome.verdict === "silent") {
    notes.push(`warning: counter not saved to ${path} (${why})`);
    try {
      // An unlink works on a full tmpfs too.
      if (outcome.code === 0 && Deno.lstatSync(path).isFile) Deno.removeSync(path);
    } catch {
      // not there, or not ours to remove: the next check reads what it reads
    }
    return;
  }
  outcome.code = 0;
  outcome.message = `error: counter ${path} cannot be written (${why}): --state-file must ` +
    `name a file on a writable emptyDir; ${outcome.message}; not counted`;
  outcome.verdict = "error";
}

/** The JSON form of a check, for `--output json`. */
export function checkJson(result: CheckResult): string {
  const { outcome } = result;
  return JSON.stringify({
    verdict: outcome.verdict,
    exitCode: outcome.code,
    silence: Math.round(outcome.silence),
    failures: outcome.next.failures,
    lastOutput: utc(outcome.next.lastOutput),
    message: result.line,
  });
}

/** `doctor`'s list: one line an item, ✓ or ✗ with the fix. */
class Findings {
  readonly lines: string[] = [];
  pass(text: string): void {
    this.lines.push(`✓ ${text}`);
  }
  fail(text: string): void {
    this.lines.push(`✗ ${text}`);
  }
}

/** The Deno permissions a check needs, as flags; the missing ones fail. */
function checkPermissions(options: CheckOptions, target: Target | undefined, found: Findings) {
  const dir = options.serviceAccountDir;
  const stateDir = options.stateFile.replace(/\/[^/]*$/, "") || "/";
  const url = target && new URL(target.server);
  const needed: Array<[Deno.PermissionDescriptor, string]> = [
    [{ name: "read", path: dir }, `--allow-read=${dir}`],
    // to keep HTTPS_PROXY and friends, meant for the app, off the probe's request
    [{ name: "env", variable: "NO_PROXY" }, "--allow-env=NO_PROXY"],
    [{ name: "read", path: stateDir }, `--allow-read=${stateDir}`],
    [{ name: "write", path: stateDir }, `--allow-write=${stateDir}`],
  ];
  if (url) {
    const host = `${url.hostname}:${url.port || 443}`;
    needed.splice(2, 0, [{ name: "net", host }, `--allow-net=${url.hostname}`]);
  }
  if (options.terminationMessagePath) {
    const path = options.terminationMessagePath;
    needed.push([{ name: "read", path }, `--allow-read=${path}`]);
  }
  const missing = needed.filter(([descriptor]) =>
    Deno.permissions.querySync(descriptor).state !== "granted"
  );
  if (missing.length) {
    found.fail(`Deno permissions missing: add ${missing.map(([, flag]) => flag).join(" ")}`);
  } else {
    found.pass(`Deno permissions: ${needed.map(([, flag]) => flag).join(" ")}`);
  }
}

/** GET /version: reachable, the certificate verified, the token accepted. */
async function checkServer(
  target: Target,
  credentials: Credentials,
  signal: AbortSignal,
  found: Findings,
): Promise<boolean> {
  const version = await call(`${target.server}/version`, credentials, signal);
  if (!("status" in version)) {
    const evidence = failedAnswer(version, target);
    found.fail(evidence.kind === "blind" ? evidence.why : "no answer");
    return false;
  }
  if (version.status === 401) {
    found.fail("the API server rejected the token (deleted ServiceAccount? expired token?)");
    return false;
  }
  if (version.status !== 200) {
    found.fail(
      `GET /version answered ${version.status} ${statusMessage(version.body)}: not an API server?`,
    );
    return false;
  }
  let release: unknown;
  try {
    release = JSON.parse(version.body).gitVersion;
  } catch {
    // an answer, but not the usual one
  }
  found.pass(
    `API server reachable, certificate verified, token accepted${
      typeof release === "string" ? ` (Kubernetes ${release})` : ""
    }`,
  );
  return true;
}

/** A SelfSubjectAccessReview: may this account get pods/log of this pod? */
async function checkAccess(
  target: Target,
  credentials: Credentials,
  signal: AbortSignal,
  found: Findings,
): Promise<void> {
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
  if (allowed) found.pass(`allowed to get pods/log in ${target.namespace}`);
  else if (allowed === false) {
    found.fail(`not allowed to get pods/log in ${target.namespace}: bind the Role log-probe to it`);
  } else {
    found.fail(
      `the access review failed (${
        "status" in review ? `${review.status} ${statusMessage(review.body)}` : review.detail
      })`,
    );
  }
}

/** The counter: readable, writable, and what it remembers. */
function checkCounter(options: CheckOptions, found: Findings): void {
  const stateDir = options.stateFile.replace(/\/[^/]*$/, "") || "/";
  try {
    const { counter } = memoryOf(options, Date.now());
    if (counter.note?.startsWith("counter unreadable")) throw new Error(counter.note);
    const probe = `${options.stateFile}.doctor.${Deno.pid}`;
    Deno.writeTextFileSync(probe, "", { createNew: true });
    Deno.removeSync(probe);
    const memory = counter.missing
      ? "no check yet"
      : `${counter.fromStart ? "no output yet, started" : "last output"} ${
        formatDuration((Date.now() - counter.lastOutput) / 1000)
      } ago`;
    found.pass(
      `counter ${options.stateFile} readable and writable (${memory}${
        counter.note ? `; ${counter.note}` : ""
      })`,
    );
  } catch (error) {
    found.fail(
      `counter ${options.stateFile}: ${reason(error)}: ${
        error instanceof Deno.errors.NotCapable
          ? `add --allow-read=${stateDir} --allow-write=${stateDir}`
          : `--state-file must name a file on a writable emptyDir mounted at ${stateDir}`
      }`,
    );
  }
}

/** `doctor`: the set-up checked one item a line, with the fix for each ✗. */
export async function doctor(given: CheckOptions): Promise<{ lines: string[]; ok: boolean }> {
  let options = given;
  const found = new Findings();
  let target: Target | undefined;
  try {
    target = targetOf(options);
    options = { ...options, stateFile: counterPath(options.stateFile, target.container) };
    found.pass(
      `pod ${target.namespace}/${target.pod}${
        target.container ? `, container ${target.container}` : ""
      }, API server ${target.server}`,
    );
  } catch (error) {
    found.fail(messageOf(error));
  }
  checkPermissions(options, target, found);
  if (options.terminationMessagePath) {
    try {
      const self = instanceOf(options.terminationMessagePath);
      const start = self.start === undefined ? "" : `, started ${utc(self.start)}`;
      found.pass(
        `container instance told apart by ${options.terminationMessagePath} (${self.instance}${start})`,
      );
    } catch (error) {
      found.fail(messageOf(error));
    }
  }
  let credentials: Credentials | undefined;
  keepProxiesOff();
  try {
    credentials = readCredentials(options.serviceAccountDir);
    found.pass(`token and CA in ${options.serviceAccountDir} (the token is never shown)`);
  } catch (error) {
    found.fail(messageOf(error));
  }
  if (credentials && target) {
    const signal = AbortSignal.timeout(options.timeout * 1000);
    if (await checkServer(target, credentials, signal, found)) {
      await checkAccess(target, credentials, signal, found);
      const deadline = performance.now() + options.timeout * 1000;
      const { memory } = memoryOf(options, Date.now());
      const { evidence } = await readLog(target, options, memory, credentials, signal, deadline);
      const { message, verdict } = decide(evidence, memory, options);
      const said = `log request: ${message}`;
      if (verdict === "alive" || verdict === "silent") found.pass(said);
      else found.fail(said);
    }
    credentials.client.close();
  }
  checkCounter(options, found);
  // Read by a person at a terminal, not the kubelet: lines are not cut.
  const lines = found.lines.map((line) => oneLine(line, Infinity));
  return { lines, ok: !lines.some((line) => line.startsWith("✗")) };
}

/** One replay of a history, with checks at one offset from its first line. */
interface Replay {
  nextCheck: number;
  checks: number;
  memory: Memory;
  /** Waiting for the container's next line after a restart (the real one did not restart). */
  restarted: boolean;
  restarts: Array<{ at: number; silence: number }>;
  /** The most failures in a row that did not end in a restart, and when. */
  nearest: { failures: number; at: number };
}

/** Reads a file line by line (a line kept to its first 64 KiB), with its size in bytes. */
async function forEachLine(
  path: string,
  take: (line: string, bytes: number) => void,
  progress?: (bytes: number) => void,
): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new ConfigError(`Cannot read --log-file ${quote(path)}: ${reason(error)}`);
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
}

/** One check of a replay at `now`, the newest line that counts so far at `living` (ms). */
function replayCheck(replay: Replay, now: number, living: number, options: BacktestOptions) {
  replay.checks++;
  if (replay.restarted) return;
  const memory = { ...replay.memory, now };
  const evidence: Evidence = { kind: "seen", at: living };
  const { next, verdict } = decide(evidence, memory, options);
  replay.memory = { ...memory, ...next };
  if (verdict === "silent" && next.failures >= options.failureThreshold) {
    replay.restarts.push({ at: now, silence: (now - living) / 1000 });
    replay.restarted = true;
    // The kubelet's count starts over with the restart: no streak to carry into the next line.
    replay.memory = { ...replay.memory, failures: 0 };
  } else if (verdict !== "silent" && memory.failures > replay.nearest.failures) {
    replay.nearest = { failures: memory.failures, at: now };
  }
}

/**
 * `backtest`: replays the probe's decisions over a container's real history
 * (`kubectl logs --timestamps`), with the same decision code as the live check, at up to 60
 * check offsets within a period from the first line (taken as the start), and reports the worst.
 */
export async function backtest(
  options: BacktestOptions,
  progress?: (bytes: number) => void,
): Promise<string> {
  let lines = 0;
  let malformed = 0;
  let first: number | undefined;
  let previous: number | undefined;
  let living: number | undefined; // the newest line that counts, or the first line
  let longest = { seconds: 0, from: 0, to: 0 };
  const replays: Replay[] = [];
  const take = (raw: string) => {
    const stamp = raw.match(TIMESTAMP)?.[0];
    const ms = stamp ? Date.parse(stamp.trim()) : NaN;
    if (!stamp || Number.isNaN(ms) || (previous !== undefined && ms < previous)) {
      if (raw !== "") malformed++;
      return;
    }
    lines++;
    if (first === undefined) {
      first = living = ms;
      const samples = Math.min(options.period, 60);
      for (let k = 1; k <= samples; k++) {
        const memory = { ...freshCounter("-", ms), counted: true, now: ms };
        replays.push({
          nextCheck: ms + Math.ceil(k * options.period / samples) * 1000,
          checks: 0,
          memory,
          restarted: false,
          restarts: [],
          nearest: { failures: 0, at: 0 },
        });
      }
    }
    for (const replay of replays) {
      for (; replay.nextCheck < ms; replay.nextCheck += options.period * 1000) {
        replayCheck(replay, replay.nextCheck, living!, options);
      }
    }
    previous = ms;
    if (!counts(raw.slice(stamp.length, stamp.length + MATCHED_CHARS), options)) return;
    if ((ms - living!) / 1000 > longest.seconds) {
      longest = { seconds: (ms - living!) / 1000, from: living!, to: ms };
    }
    living = ms;
    for (const replay of replays) replay.restarted = false;
  };
  await forEachLine(options.logFile, take, progress);
  if (first === undefined || previous === undefined) {
    throw new ConfigError(
      `No timestamped lines in ${quote(options.logFile)}: use kubectl logs --timestamps`,
    );
  }
  return backtestReport(options, replays, {
    lines,
    malformed,
    first,
    last: previous,
    longest: (previous - living!) / 1000 > longest.seconds
      ? { seconds: (previous - living!) / 1000, from: living!, to: previous }
      : longest,
  });
}

function backtestReport(
  options: BacktestOptions,
  replays: Replay[],
  log: {
    lines: number;
    malformed: number;
    first: number;
    last: number;
    longest: { seconds: number; from: number; to: number };
  },
): string {
  // The worst offset: the most restarts, then the earliest; the best: the fewest.
  const ranked = [...replays].sort((a, b) =>
    b.restarts.length - a.restarts.length ||
    (a.restarts[0]?.at ?? Infinity) - (b.restarts[0]?.at ?? Infinity)
  );
  const worst = ranked[0];
  const fewest = ranked[ranked.length - 1].restarts.length;
  const nearest = replays.reduce((a, b) => b.nearest.failures > a.nearest.failures ? b : a)
    .nearest;
  const { limit } = restartAfter(options);
  return [
    `${options.logFile}: ${log.lines} lines from ${utc(log.first)} to ${utc(log.last)} (${
      formatDuration((log.last - log.first) / 1000)
    }), ${worst.checks} checks every ${formatDuration(options.period)}${
      log.malformed ? `, ${plural(log.malformed, "malformed line")} skipped` : ""
    }`,
    `settings: limit ${formatDuration(limit)}${
      filtering(options) ? " with --match/--ignore" : ""
    }, restart after ${plural(options.failureThreshold, "failure")} in a row; replayed at ${
      plural(replays.length, "check offset")
    }, the worst shown`,
    worst.restarts.length
      ? `restarts: ${worst.restarts.length}, ${
        worst.restarts.slice(0, 5).map((r) =>
          `at ${utc(r.at)} after ${formatDuration(r.silence)} of silence`
        ).join("; ")
      }${worst.restarts.length > 5 ? "; …" : ""}${
        fewest < worst.restarts.length ? ` (${fewest} at the best offset)` : ""
      }`
      : "restarts: none",
    `longest silence: ${formatDuration(log.longest.seconds)}${
      log.longest.seconds ? ` from ${utc(log.longest.from)} to ${utc(log.longest.to)}` : ""
    }`,
    nearest.failures
      ? `longest streak without a restart: ${nearest.failures} of ${options.failureThreshold} failures in a row, ending ${
        utc(nearest.at)
      }`
      : "longest streak without a restart: no failed check",
  ].join("\n");
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
 * and written, so that it fails one check in three at most. Where the counter cannot be used,
 * the check passes and says so.
 */
function uncheckable(args: string[], said: string): { line: string; code: number } {
  const value = (name: string, short?: string) => {
    for (let i = 0; i < args.length; i++) {
      const [flag, inline] = args[i].split(/=(.*)/s);
      if (flag === `--${name}` || (short && flag === `-${short}`)) return inline ?? args[i + 1];
    }
  };
  try {
    const named = value("container", "c") ?? env("CONTAINER_NAME");
    const threshold = Number(value("failure-threshold"));
    let period: number | undefined;
    try {
      period = parseDuration(value("period") ?? "", "--period");
    } catch {
      // no usable --period: checks killed before this one cannot be told
    }
    const options = {
      ...DEFAULTS,
      period: period ?? DEFAULTS.period,
      match: [],
      ignore: [],
      failureThreshold: Number.isInteger(threshold) && threshold > 0
        ? threshold
        : DEFAULTS.failureThreshold,
      stateFile: counterPath(
        value("state-file") || DEFAULTS.stateFile,
        named && LABEL.test(named) ? named : undefined,
      ),
      terminationMessagePath: value("termination-message-path") ?? "",
      periodGiven: period !== undefined,
    } as unknown as CheckOptions;
    const now = Date.now();
    const { counter, memory } = memoryOf(options, now);
    const evidence: Evidence = { kind: "blind", why: said.replace(/^error: /, ""), error: true };
    const outcome = decide(evidence, memory, options);
    saveCounter(options.stateFile, nextCounter(counter, outcome, memory));
    return { line: oneLine(outcome.message), code: outcome.code };
  } catch (error) {
    return {
      line: oneLine(`${said}; not counted (${reason(error)}), so it never fails`),
      code: 0,
    };
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
