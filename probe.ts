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
 *   --allow-read=/var/run/secrets/kubernetes.io/serviceaccount,/termination-log,/var/lib/log-probe \
 *   --allow-write=/var/lib/log-probe --allow-env=POD_NAME --allow-net=kubernetes.default.svc \
 *   probe.ts --state-file=/var/lib/log-probe/state --termination-message-path=/termination-log
 * ```
 *
 * Permissions: read the service-account folder, the termination-message file
 * (it tells container instances apart) and the state file's folder; write the
 * state file's folder; the environment variables it should consult (POD_NAME
 * here; KUBERNETES_SERVICE_HOST/PORT, NAMESPACE, POD_NAMESPACE, HOSTNAME,
 * CONTAINER_NAME where used); the API server's host. The service account's
 * role needs `get` on `pods/log` only. No imports: it runs offline from a
 * ConfigMap.
 *
 * Exit codes: 0 alive (or API unreachable), 1 silent, 2 misconfigured.
 *
 * @module
 */

/** The version `--version` prints. */
export const VERSION = "0.1.0";

/** How the window grows with each silent check in a row. */
export type Growth = "triangular" | "linear" | "exponential" | "fixed";

/** What one check concluded. */
export type Verdict = "alive" | "silent" | "unknown" | "error";

/** The window flags, shared by `check` and `plan`. Durations in seconds. */
export interface WindowOptions {
  window: number;
  growth: Growth;
  maxWindow?: number;
}

/** Options of one check, as given on the command line. */
export interface CheckOptions extends WindowOptions {
  server?: string;
  namespace?: string;
  pod?: string;
  container?: string;
  stateFile: string;
  /** Deadline of the whole check, in seconds. */
  timeout: number;
  /** Whether an unreachable or overloaded API server fails the probe. */
  onApiError: "ignore" | "fail";
  serviceAccountDir: string;
  terminationMessagePath: string;
}

/** Options of `plan`: the window flags and the kubelet's probe settings. */
export interface PlanOptions extends WindowOptions {
  /** The probe's `periodSeconds`. */
  period: number;
  /** The probe's `failureThreshold`. */
  failureThreshold: number;
}

/** A parsed command line. */
export type Command =
  | { command: "check"; options: CheckOptions }
  | { command: "plan"; options: PlanOptions }
  | { command: "help" }
  | { command: "version" };

/** Where to ask, for which container: the outcome of flags, environment and files. */
export interface Target {
  server: string;
  namespace: string;
  pod: string;
  container?: string;
}

/** The API server's answer, or why there was none. */
export type Answer =
  | { status: number; body: string }
  | { failure: "unreachable" | "timeout" | "tls" | "permission"; detail: string };

/** The verdict of one check and the counter it leaves. */
export interface Outcome {
  verdict: Verdict;
  /** Silent checks in a row after this check. */
  silentChecks: number;
  /** The line to print, without notes. */
  message: string;
}

/** A misconfiguration or bad input: exit 2 with the message. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The pod's mounted service-account folder, as client-go knows it. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Bytes asked of the kubelet: room for one RFC3339Nano timestamp and more. */
export const LIMIT_BYTES = 64;
/** The longest window ever asked for, ten years, whatever the growth. */
export const WINDOW_LIMIT = 10 * 365 * 86400;
/** Lines are cut to this length; the kubelet shows a probe's output in events. */
export const MAX_LINE = 199;
const MAX_BODY = 4096;

const DEFAULTS: CheckOptions & PlanOptions = {
  window: 60,
  growth: "triangular",
  stateFile: "/tmp/log-probe.state",
  timeout: 5,
  onApiError: "ignore",
  serviceAccountDir: SERVICE_ACCOUNT_DIR,
  terminationMessagePath: "",
  period: 60,
  failureThreshold: 15,
};

/** Which flags each command takes; `both` are the window flags. */
const FLAGS: Record<string, "check" | "plan" | "both"> = {
  "server": "check",
  "namespace": "check",
  "pod": "check",
  "container": "check",
  "state-file": "check",
  "timeout": "check",
  "on-api-error": "check",
  "service-account-dir": "check",
  "termination-message-path": "check",
  "window": "both",
  "growth": "both",
  "max-window": "both",
  "period": "plan",
  "failure-threshold": "plan",
};
const SHORT_FLAGS: Record<string, string> = { n: "namespace", c: "container" };
const GROWTHS: Growth[] = ["triangular", "linear", "exponential", "fixed"];

/** The `--help` text: one screen. */
export const HELP =
  `log-probe ${VERSION}: a liveness probe that reads the container's own log output

Usage: probe.ts [check] [flags]   one check: exit 0 alive, 1 silent, 2 misconfigured
       probe.ts plan [flags]      each window of a silent streak, and when the kubelet restarts
       probe.ts --help | --version

Check (flags, else environment, else ${SERVICE_ACCOUNT_DIR}):
  --server URL             API server (KUBERNETES_SERVICE_HOST/_PORT, else kubernetes.default.svc)
  -n, --namespace NAME     (NAMESPACE, POD_NAMESPACE, else the service account's namespace)
  --pod NAME               (POD_NAME, else HOSTNAME)
  -c, --container NAME     (CONTAINER_NAME) needed in pods with more than one container
  --state-file PATH        silent-check counter, written atomically (${DEFAULTS.stateFile})
  --timeout DURATION       deadline of the whole check, below timeoutSeconds (5s)
  --on-api-error MODE      ignore: API server unreachable, 429 or 5xx exits 0 (default)
                           fail: it exits 1, so a long outage restarts the container
  --service-account-dir D  token, ca.crt and namespace (default as above)
  --termination-message-path P  the container's terminationMessagePath, outside /dev (Deno
                           guards /dev): a counter on an emptyDir then dies with its container
Window (check and plan); durations like 30s, 5m, 1h30m:
  --window DURATION        window while the container logs (60s)
  --growth G               triangular: 1,3,6,10… windows (default); linear, exponential,
                           fixed: always one window, no counter file
  --max-window DURATION    never look further back than this
Plan:
  --period DURATION        the probe's periodSeconds (60s)
  --failure-threshold N    the probe's failureThreshold (15)`;

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
  const h = Math.floor(seconds / 3600);
  const m = Math.floor(seconds % 3600 / 60);
  const s = seconds % 60;
  const text = (h ? `${h}h` : "") + (m ? `${m}m` : "") + (s ? `${s}s` : "");
  return text || "0s";
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
  const command = args[0] === "plan" ? "plan" : "check";
  const values = new Map<string, string>();
  for (let i = args[0] === "plan" || args[0] === "check" ? 1 : 0; i < args.length; i++) {
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
    const scope = FLAGS[name];
    if (!scope) throw new ConfigError(`Unknown flag ${quote(arg)} (see --help)`);
    if (scope !== "both" && scope !== command) {
      throw new ConfigError(`Flag --${name} does not apply to ${command}`);
    }
    let value = match[3];
    if (value === undefined) {
      value = args[++i];
      if (value === undefined || value.startsWith("--")) {
        throw new ConfigError(`Missing value for --${name}`);
      }
    }
    if (values.has(name)) throw new ConfigError(`Flag --${name} given twice`);
    values.set(name, value);
  }
  const duration = (name: string, fallback?: number) =>
    values.has(name) ? parseDuration(values.get(name)!, `--${name}`) : fallback;
  const growth = values.get("growth") ?? DEFAULTS.growth;
  if (!GROWTHS.includes(growth as Growth)) {
    throw new ConfigError(
      `Invalid --growth ${quote(growth)}: use ${GROWTHS.join(", ")}`,
    );
  }
  const window: WindowOptions = {
    window: duration("window", DEFAULTS.window)!,
    growth: growth as Growth,
    maxWindow: duration("max-window"),
  };
  if (window.maxWindow !== undefined && window.maxWindow < window.window) {
    throw new ConfigError(
      `Invalid --max-window ${quote(values.get("max-window")!)}: shorter than --window`,
    );
  }
  if (command === "plan") {
    const threshold = values.get("failure-threshold") ?? "15";
    if (!/^\d{1,4}$/.test(threshold) || Number(threshold) < 1) {
      throw new ConfigError(
        `Invalid --failure-threshold ${quote(threshold)}: use a whole number from 1 to 9999`,
      );
    }
    return {
      command,
      options: {
        ...window,
        period: duration("period", DEFAULTS.period)!,
        failureThreshold: Number(threshold),
      },
    };
  }
  const onApiError = values.get("on-api-error") ?? DEFAULTS.onApiError;
  if (onApiError !== "ignore" && onApiError !== "fail") {
    throw new ConfigError(
      `Invalid --on-api-error ${quote(onApiError)}: use ignore or fail`,
    );
  }
  for (const name of ["state-file", "service-account-dir"]) {
    if (values.get(name) === "") throw new ConfigError(`Empty --${name}`);
  }
  return {
    command,
    options: {
      ...window,
      server: values.get("server"),
      namespace: values.get("namespace"),
      pod: values.get("pod"),
      container: values.get("container"),
      stateFile: values.get("state-file") ?? DEFAULTS.stateFile,
      timeout: duration("timeout", DEFAULTS.timeout)!,
      onApiError,
      serviceAccountDir: values.get("service-account-dir") ??
        DEFAULTS.serviceAccountDir,
      terminationMessagePath: values.get("termination-message-path") ??
        DEFAULTS.terminationMessagePath,
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
    server = host && port
      ? `https://${host.includes(":") ? `[${host}]` : host}:${port}`
      : "https://kubernetes.default.svc";
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ConfigError(`Invalid API server URL ${quote(server)}`);
  }
  if (url.protocol !== "https:" || url.search || url.hash || url.username) {
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

/**
 * The one request of a check: the last line of the window, timestamped,
 * at most {@linkcode LIMIT_BYTES} bytes.
 *
 * @example
 * ```ts
 * logUrl({ server: "https://10.0.0.1", namespace: "shop", pod: "web" }, 60);
 * // "https://10.0.0.1/api/v1/namespaces/shop/pods/web/log?sinceSeconds=60&tailLines=1&timestamps=true&limitBytes=64"
 * ```
 */
export function logUrl(target: Target, window: number): string {
  const query = new URLSearchParams({
    sinceSeconds: String(window),
    tailLines: "1",
    timestamps: "true",
    limitBytes: String(LIMIT_BYTES),
  });
  if (target.container) query.set("container", target.container);
  const path = ["api/v1/namespaces", target.namespace, "pods", target.pod, "log"]
    .map((segment, i) => i % 2 ? encodeURIComponent(segment) : segment);
  return `${target.server}/${path.join("/")}?${query}`;
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

/**
 * Turns the API server's answer into a verdict and the counter it leaves,
 * following the decision table: output is `alive`, an empty window `silent`,
 * an outage `unknown`, a misconfiguration `error`.
 *
 * @example
 * ```ts
 * judge({ status: 200, body: "" }, 1, { window: 60, growth: "triangular" }, target);
 * // { verdict: "silent", silentChecks: 2, message: "silent: no output in the last 180s (2 silent checks in a row; next window 360s)" }
 * ```
 */
export function judge(
  answer: Answer,
  silentChecks: number,
  options: WindowOptions,
  target: Target,
): Outcome {
  const window = windowFor(silentChecks, options);
  const kept = (verdict: Verdict, message: string): Outcome => ({
    verdict,
    silentChecks,
    message: `${verdict}: ${message}`,
  });
  const unknown = (why: string) =>
    kept(
      "unknown",
      `${why}; not counted${
        silentChecks ? ` (${plural(silentChecks, "silent check")} in a row kept)` : ""
      }`,
    );
  if ("failure" in answer) {
    switch (answer.failure) {
      case "timeout":
        return unknown(`no answer from the API server within ${answer.detail}`);
      case "unreachable":
        return unknown(`API server unreachable: ${answer.detail}`);
      case "tls":
        return kept(
          "error",
          `API server certificate rejected: ${answer.detail} (is ca.crt the cluster's CA? --server right?)`,
        );
      case "permission":
        return kept("error", `Deno permission missing: ${answer.detail}`);
    }
  }
  const { status, body } = answer;
  const where = `${target.namespace}/${target.pod}`;
  if (status === 200) {
    if (body === "") {
      const next = windowFor(silentChecks + 1, options);
      return {
        verdict: "silent",
        silentChecks: silentChecks + 1,
        message: `silent: no output in the last ${window}s (${
          plural(silentChecks + 1, "silent check")
        } in a row; next window ${next}s)`,
      };
    }
    if (!TIMESTAMP.test(body)) {
      return unknown("answer is not a container log (a proxy in the way?)");
    }
    return {
      verdict: "alive",
      silentChecks: 0,
      message: `alive: output in the last ${window}s` +
        (silentChecks ? ` (after ${plural(silentChecks, "silent check")} in a row)` : ""),
    };
  }
  if (status === 408 || status === 429 || status >= 500) {
    return unknown(`API server answered ${status} ${statusMessage(body)}`);
  }
  const message = statusMessage(body);
  if (status === 401) {
    return kept(
      "error",
      "unauthorized: the API server rejected the service-account token (deleted ServiceAccount? expired token?)",
    );
  }
  if (status === 403) {
    const user = message.match(/User "([^"]+)"/)?.[1] ?? "this pod's service account";
    const who = user.startsWith("system:serviceaccount:") ? `the service account ${user}` : user;
    return kept(
      "error",
      `forbidden: ${who} cannot get pods/log in ${target.namespace} (apply manifests/rbac.yaml)`,
    );
  }
  if (status === 404) {
    return kept("error", `not found: pod ${where} (${message}; is --pod/POD_NAME right?)`);
  }
  if (status === 400 && message.startsWith("a container name must be specified")) {
    return kept("error", `${message} (pass --container or set CONTAINER_NAME)`);
  }
  return kept("error", `API server answered ${status}: ${message}`);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** The exit code the kubelet sees for a verdict. */
export function exitCode(verdict: Verdict, onApiError: "ignore" | "fail"): number {
  return verdict === "alive"
    ? 0
    : verdict === "silent"
    ? 1
    : verdict === "error"
    ? 2
    : onApiError === "fail"
    ? 1
    : 0;
}

/** One printable line: control characters escaped, cut to {@linkcode MAX_LINE}. */
export function oneLine(text: string): string {
  const line = text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE - 1)}…` : line;
}

/** What the counter file says: the count, and the container instance it counts for. */
export interface Counter {
  silentChecks: number;
  instance: string;
  /** True when there is no counter file yet. */
  missing?: boolean;
  /** Why the stored count was not used, when it was not. */
  note?: string;
}

/** Reads the counter file's text; garbage and another instance's count give 0 with a note. */
export function parseCounter(text: string | undefined, instance: string): Counter {
  if (text === undefined) return { silentChecks: 0, instance, missing: true };
  const match = text.match(/^(\d{1,9}) (\S+)\n?$/);
  if (!match) {
    return { silentChecks: 0, instance, note: "counter file held garbage, counted as 0" };
  }
  if (match[2] !== instance && match[2] !== "-" && instance !== "-") {
    return {
      silentChecks: 0,
      instance,
      note: "counter of a previous container instance discarded",
    };
  }
  return { silentChecks: Number(match[1]), instance };
}

/** The counter file's text. */
export function formatCounter(counter: Counter): string {
  return `${counter.silentChecks} ${counter.instance}\n`;
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
 * Tells container instances apart: the kubelet mounts a new termination-message
 * file for each container start. "-" where there is none.
 */
function instanceOf(path: string): string {
  if (path === "") return "-";
  try {
    const { dev, ino } = Deno.statSync(path);
    return `${dev}:${ino}`;
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error; // a flag is missing: say so
    return "-";
  }
}

function loadCounter(path: string, instance: string): Counter {
  try {
    return parseCounter(readText(path), instance);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return {
      silentChecks: 0,
      instance,
      note: `counter unreadable (${reason(error)}), counted as 0`,
    };
  }
}

/** Writes the counter atomically: a temporary file, then a rename over the old one. */
function saveCounter(path: string, counter: Counter): void {
  const temporary = `${path}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(temporary, formatCounter(counter), { mode: 0o600 });
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

function reason(error: unknown): string {
  if (error instanceof Deno.errors.NotCapable) {
    return error.message.replace(/, run again with.*$/, "");
  }
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^.*client error \([^)]*\): /s, "")
    .replace(/ \(os error \d+\)/, "")
    .replace(/: [a-z]+ '[^']*'( -> '[^']*')?$/, ""); // the paths, which the line already names
}

/** Reads the token and CA afresh (projected tokens rotate) and asks once, within the deadline. */
async function ask(url: string, options: CheckOptions): Promise<Answer> {
  const dir = options.serviceAccountDir;
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
  const signal = AbortSignal.timeout(options.timeout * 1000);
  let client: Deno.HttpClient;
  try {
    client = Deno.createHttpClient({ caCerts: [ca] });
  } catch (error) {
    throw new ConfigError(`Unusable CA certificate in ${dir}/ca.crt: ${reason(error)}`);
  }
  try {
    const response = await fetch(url, {
      client,
      signal,
      redirect: "manual",
      headers: { authorization: `Bearer ${token}`, accept: "text/plain, application/json" },
    });
    return { status: response.status, body: await readAtMost(response, MAX_BODY) };
  } catch (error) {
    if (signal.aborted) return { failure: "timeout", detail: formatDuration(options.timeout) };
    if (error instanceof Deno.errors.NotCapable) {
      return { failure: "permission", detail: reason(error) };
    }
    const detail = reason(error instanceof Error && error.cause ? error.cause : error);
    return {
      failure: /invalid peer certificate|certificate/i.test(detail) ? "tls" : "unreachable",
      detail,
    };
  } finally {
    client.close();
  }
}

/** Reads at most `limit` bytes of a body, so a misbehaving proxy cannot flood the probe. */
async function readAtMost(response: Response, limit: number): Promise<string> {
  const length = Number(response.headers.get("content-length") ?? NaN);
  // The usual answer: short, with its length declared. text() is the cheaper path (a stream
  // reader costs about 0.8 MiB more at peak, measured in bench/).
  if (length <= limit) return await response.text();
  if (!response.body) return "";
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
  return new TextDecoder().decode(bytes.subarray(0, limit));
}

/** One check, start to end: returns the line to print and the exit code. */
export async function check(options: CheckOptions): Promise<{ line: string; code: number }> {
  const target = resolveTarget(
    options,
    env,
    () => readText(`${options.serviceAccountDir}/namespace`),
  );
  const counting = options.growth !== "fixed";
  const counter = counting
    ? loadCounter(options.stateFile, instanceOf(options.terminationMessagePath))
    : { silentChecks: 0, instance: "-" };
  const answer = await ask(logUrl(target, windowFor(counter.silentChecks, options)), options);
  const outcome = judge(answer, counter.silentChecks, options, target);
  const notes = counter.note ? [counter.note] : [];
  // Only a check that saw the log moves the counter. The file is written even when the count
  // stays 0: a missing file would cost every later check a NotFound error, 1 MiB at peak (bench/).
  const seen = outcome.verdict === "alive" || outcome.verdict === "silent";
  const changed = outcome.silentChecks !== counter.silentChecks || counter.note || counter.missing;
  if (counting && seen && changed) {
    try {
      saveCounter(options.stateFile, {
        silentChecks: outcome.silentChecks,
        instance: counter.instance,
      });
    } catch (error) {
      notes.push(`warning: counter not saved to ${options.stateFile} (${reason(error)})`);
    }
  }
  const line = oneLine([outcome.message, ...notes].join("; "));
  return { line, code: exitCode(outcome.verdict, options.onApiError) };
}

/** Runs the command line; never throws, never prints a stack trace. */
export async function main(args: string[]): Promise<number> {
  try {
    const command = parseArgs(args);
    if (command.command === "help") {
      console.log(HELP);
      return 0;
    }
    if (command.command === "version") {
      console.log(`log-probe ${VERSION}`);
      return 0;
    }
    if (command.command === "plan") {
      console.log(renderPlan(command.options));
      return 0;
    }
    const { line, code } = await check(command.options);
    console.log(line);
    return code;
  } catch (error) {
    const message = error instanceof ConfigError
      ? error.message
      : error instanceof Deno.errors.NotCapable
      ? `Deno permission missing: ${reason(error)}`
      : `Unexpected failure: ${reason(error)}`;
    console.log(oneLine(`error: ${message}`));
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
