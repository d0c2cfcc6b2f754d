/**
 * A simulated cluster for the tests, the demo and the benchmark: the stand-in
 * API server, one pod with a service account, the pod's files in a temporary
 * folder, and a runner that starts the real `probe.ts` as a subprocess with
 * the exact Deno permission flags a pod gives it.
 *
 * @module
 */
import { formatCounter, LINEAR_REGEXP_FLAG } from "../probe.ts";
import { FakeApiServer, makePki, type Pki, type Pod } from "./apiserver.ts";
import { clockLibrary } from "./clock.ts";

/** The probe file under test. */
export const PROBE = new URL("../probe.ts", import.meta.url).pathname;

/** The environment variables the probe may read. */
export const PROBE_ENV = [
  "KUBERNETES_SERVICE_HOST",
  "KUBERNETES_SERVICE_PORT",
  "NAMESPACE",
  "POD_NAMESPACE",
  "LOG_PROBE_POD_NAME",
  "POD_NAME",
  "HOSTNAME",
  "CONTAINER_NAME",
  "NO_PROXY", // set by the probe, to keep proxies meant for the app off its request
];

/** Paths a probe run is allowed to touch. */
export interface ProbePaths {
  serviceAccountDir: string;
  stateDir: string;
  terminationMessagePath: string;
}

/** The Deno flags a pod runs the probe with: offline, quiet, least privilege. */
export function denoFlags(paths: ProbePaths, host: string): string[] {
  return [
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    LINEAR_REGEXP_FLAG,
    `--allow-read=${paths.serviceAccountDir},${paths.terminationMessagePath},${paths.stateDir}`,
    `--allow-write=${paths.stateDir}`,
    `--allow-env=${PROBE_ENV.join(",")}`,
    `--allow-net=${host}`,
  ];
}

/** Runs a command and returns what it printed; throws if it fails. */
export async function commandOutput(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped" }).output();
  if (!output.success) throw new Error(`${command} ${args.join(" ")} failed`);
  return new TextDecoder().decode(output.stdout);
}

/** What one probe run printed and returned. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time in milliseconds. */
  ms: number;
}

/** Options of {@linkcode Cluster.run}. */
export interface RunOptions {
  /** Environment variables to add or, with `undefined`, remove. */
  env?: Record<string, string | undefined>;
  /** Replaces the Deno flags. */
  flags?: string[];
  /** Another counter file than the cluster's. */
  stateFile?: string;
  /** Pass `args` alone, without the pod's path flags. */
  bare?: boolean;
  /** Ask another API server (`host:port`) than the cluster's: `--server` and the net permission. */
  server?: string;
  /** Run the probe under this command, e.g. `["/usr/bin/time", "-f", "%M", "-o", file]`. */
  wrapper?: string[];
  /**
   * The `--failure-threshold` a check is given, as the example's probe gives it: 15 unless the
   * arguments name one; `null` for none (the probe then takes 15 as well).
   */
  failureThreshold?: number | null;
}

/** A simulated cluster with one pod, `shop/worker-7d9f`, and its probe's files. */
export class Cluster {
  readonly token = `tok-${crypto.randomUUID()}`;
  readonly namespace = "shop";
  readonly podName = "worker-7d9f";
  /** Every line any probe run printed, to prove the token never shows. */
  readonly outputs: string[] = [];
  readonly paths: ProbePaths;
  readonly stateFile: string;

  private constructor(
    readonly pki: Pki,
    readonly server: FakeApiServer,
    readonly pod: Pod,
    readonly dir: string,
    /** The shim that puts a probe run on the virtual clock (testing/clock.ts). */
    readonly clock: string,
  ) {
    this.paths = {
      serviceAccountDir: `${dir}/serviceaccount`,
      stateDir: `${dir}/state`,
      terminationMessagePath: `${dir}/termination-log`,
    };
    this.stateFile = `${this.paths.stateDir}/counter`;
  }

  /** Starts the server and lays out the pod's files. */
  static async start(options: { containers?: string[] } = {}): Promise<Cluster> {
    const pki = await makePki();
    const server = new FakeApiServer(pki);
    const dir = await Deno.makeTempDir({ prefix: "log-probe-pod-" });
    const pod = server.addPod("shop", "worker-7d9f", options.containers);
    const cluster = new Cluster(pki, server, pod, dir, await clockLibrary());
    server.addServiceAccount(cluster.token, "shop", "log-probe");
    await Deno.mkdir(cluster.paths.serviceAccountDir);
    await Deno.mkdir(cluster.paths.stateDir);
    await Deno.writeTextFile(`${cluster.paths.serviceAccountDir}/token`, cluster.token);
    await Deno.writeTextFile(`${cluster.paths.serviceAccountDir}/ca.crt`, pki.caCert);
    await Deno.writeTextFile(`${cluster.paths.serviceAccountDir}/namespace`, "shop");
    await cluster.#startContainer(server.now);
    return cluster;
  }

  /**
   * The container restarts at `at` on the virtual clock (now by default): the runtime opens a new,
   * empty log, and the start is dated as {@linkcode Cluster.start} dates the first.
   */
  async restartContainer(container = "app", at = this.server.now): Promise<void> {
    this.server.restart(this.pod, container);
    await this.#startContainer(at);
  }

  /**
   * A container start at `at`: the kubelet makes a new termination-message file just before it
   * (`makeMounts`, pkg/kubelet/kubelet_pods.go), so its modification time is the start.
   */
  async #startContainer(at: number): Promise<void> {
    const fresh = `${this.paths.terminationMessagePath}.new`;
    await Deno.writeTextFile(fresh, "");
    await Deno.utime(fresh, new Date(at), new Date(at));
    await Deno.rename(fresh, this.paths.terminationMessagePath);
  }

  /** The container instance as the probe sees it: device, inode, birth time (base 36). */
  instance(): string {
    const { dev, ino, birthtime } = Deno.statSync(this.paths.terminationMessagePath);
    return `${dev}:${ino}:${birthtime === null ? "-" : birthtime.getTime().toString(36)}`;
  }

  /**
   * The counter file's line a check writes (`formatCounter`): this instance, the newest output
   * seen (or the start, with `fromStart`), where the last answered read ended, when a check last
   * counted, failures and blind checks in a row, and whether the kubelet could not read the log.
   */
  counterLine(
    lastOutput: number,
    more: {
      fromStart?: boolean;
      seenUntil?: number;
      countedAt?: number;
      failures?: number;
      blind?: number;
      unreadable?: boolean;
    } = {},
  ): string {
    return formatCounter({
      instance: this.instance(),
      lastOutput,
      fromStart: more.fromStart ?? false,
      ...(more.seenUntil !== undefined ? { seenUntil: more.seenUntil } : {}),
      ...(more.countedAt !== undefined ? { countedAt: more.countedAt } : {}),
      failures: more.failures ?? 0,
      blind: more.blind ?? 0,
      unreadable: more.unreadable ?? false,
    });
  }

  /**
   * The counter file's text with its `seenUntil` and `countedAt` fields set back to
   * `virtualNow` when they lie within `slack` ms after it: the probe's clock runs on from the
   * virtual "now" while it works.
   */
  async counterAt(virtualNow: number, slack = 10_000): Promise<string | undefined> {
    const text = await this.counter();
    if (text === undefined) return text;
    const fields = text.trimEnd().split(" ");
    for (const i of [3, 4]) {
      const at = Date.parse(fields[i]);
      if (at >= virtualNow && at - virtualNow < slack) {
        fields[i] = new Date(virtualNow).toISOString();
      }
    }
    return `${fields.join(" ")}\n`;
  }

  /** The counter file's text, or undefined when there is none. */
  async counter(): Promise<string | undefined> {
    try {
      return await Deno.readTextFile(this.stateFile);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  /** Starts the real probe, as the kubelet would, with the pod's flags and environment. */
  spawn(args: string[] = [], options: RunOptions = {}): Deno.ChildProcess {
    const env: Record<string, string> = {
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: String(this.server.port),
      HOSTNAME: this.podName,
    };
    for (const name of ["HOME", "DENO_DIR", "PATH"]) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[name];
      else env[name] = value;
    }
    const host = options.server ?? `127.0.0.1:${this.server.port}`;
    const flags = options.flags ?? denoFlags(this.paths, host);
    const server = options.server ? ["--server", `https://${options.server}`] : [];
    // The pod shares the node's clock: the probe's real-time clock reads the kubelet's "now".
    // Through env(1), as Deno lets only an unrestricted --allow-run set LD_PRELOAD itself.
    return new Deno.Command("env", {
      args: [
        `LD_PRELOAD=${this.clock}`,
        `LOG_PROBE_FAKE_NOW_MS=${this.server.now}`,
        ...options.wrapper ?? [],
        Deno.execPath(),
        ...flags,
        PROBE,
        ...this.#withPaths(
          ["check", "doctor"].includes(args[0])
            ? [args[0], ...server, ...args.slice(1)]
            : [...server, ...args],
          options,
        ),
      ],
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Runs the real probe once and collects what it printed. */
  async run(args: string[] = [], options: RunOptions = {}): Promise<Run> {
    const started = performance.now();
    const output = await this.spawn(args, options).output();
    const run = {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
      ms: performance.now() - started,
    };
    this.outputs.push(run.stdout, run.stderr);
    return run;
  }

  /** The pod's path flags, after the subcommand (which must come first); none for plan and backtest. */
  #withPaths(args: string[], options: RunOptions): string[] {
    const paths = this.#pathArgs(options.stateFile ?? this.stateFile, args, options);
    if (options.bare || args[0] === "plan" || args[0] === "backtest") return args;
    if (args[0] === "check" || args[0] === "doctor") return [args[0], ...paths, ...args.slice(1)];
    return [...paths, ...args];
  }

  #pathArgs(stateFile: string, args: string[], options: RunOptions): string[] {
    const threshold = options.failureThreshold === undefined ? 15 : options.failureThreshold;
    const named = args.some((arg) => arg.startsWith("--failure-threshold"));
    return [
      "--service-account-dir",
      this.paths.serviceAccountDir,
      "--termination-message-path",
      this.paths.terminationMessagePath,
      "--state-file",
      stateFile,
      ...(threshold === null || named ? [] : ["--failure-threshold", String(threshold)]),
    ];
  }

  /** Stops the server and removes every file. */
  async stop(): Promise<void> {
    await this.server.close();
    await Deno.remove(this.dir, { recursive: true });
    await Deno.remove(this.pki.dir, { recursive: true });
  }
}
