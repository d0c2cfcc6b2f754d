/**
 * A kubelet stand-in for the tests and the benchmark: renders an example with
 * `kubectl kustomize`, lays out one pod's volumes on the host (a projected
 * service-account token, the ConfigMap, the emptyDirs), and runs a container's
 * `livenessProbe.exec.command` the way the kubelet does: no shell, the
 * container's environment with the downward API evaluated, its user, its
 * volume mounts, a read-only root (`testing/sandbox.sh`).
 *
 * Needs `kubectl`, and root with `unshare` for the sandbox: check
 * {@linkcode hasKubectl} and {@linkcode canSandbox} first.
 *
 * @example
 * ```ts ignore
 * const pod = await KubeletPod.create("examples/deployment");
 * try {
 *   pod.log("processed job 1");
 *   const run = await pod.exec();
 *   console.log(run.code, run.stdout); // 0 "alive: output 0s ago\n"
 * } finally {
 *   await pod.close();
 * }
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { type CheckOptions, parseArgs } from "../probe.ts";
import { FakeApiServer, makePki, type Pki } from "./apiserver.ts";
import { clockEnv } from "./clock.ts";
import { commandOutput } from "./cluster.ts";

/** The repository's root folder, ending in `/`. */
export const ROOT = new URL("..", import.meta.url).pathname;
/** Where the kubelet mounts the service-account token, CA and namespace. */
export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A parsed Kubernetes object. */
// deno-lint-ignore no-explicit-any
export type Manifest = any;

/**
 * Asserts that a check printed `line(s)` for the silence `s` it measured, `silence` seconds after
 * the last output on the virtual clock: the probe reads the pod's clock once it has started, up
 * to its `timeout` (seconds) later (a pod's first run compiles probe.ts).
 */
export function assertSaidAfter(
  actual: string,
  silence: number,
  timeout: number,
  line: (silence: number) => string,
): void {
  const lines = Array.from({ length: timeout + 1 }, (_, late) => line(silence + late));
  assert.ok(
    lines.includes(actual),
    `${JSON.stringify(actual)}: expected ${JSON.stringify(lines[0])}, or up to ${timeout}s later`,
  );
}

/** What one run in the sandbox printed and returned. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The kubelet killed it at `timeoutSeconds` (see {@linkcode KubeletPod.exec}). */
  timedOut?: boolean;
}

/** Options of {@linkcode KubeletPod.exec}. */
export interface ExecOptions {
  /** Test-only mounts besides the pod's volumes, as "SOURCE TARGET ro|rw" lines. */
  mounts?: string[];
  /** Environment variables to add to the container's. */
  env?: Record<string, string>;
  /**
   * What the container's image holds: `"empty"` (the default: nothing, as
   * `FROM scratch`) or `"host"` (the host's /usr, /etc and /lib, a Debian-like
   * image).
   */
  image?: "empty" | "host";
  /**
   * Put the run on the API server's virtual clock (`server.now`): the pod
   * shares the node's clock. Test-only: preloads testing/clock.ts's shim,
   * mounted read-only at its host path.
   */
  virtualClock?: boolean;
  /** Run as this container of the pod (its user, environment and mounts): the probed one by default. */
  container?: Manifest;
  /** A host command the sandbox runs under (joining a cgroup, say), as `["sh", "-c", …, "sh"]`. */
  wrapper?: string[];
  /**
   * Kill the run after this many seconds, as the kubelet kills an exec probe at its
   * `timeoutSeconds`: the probe command's own by default, none for other commands.
   */
  timeoutSeconds?: number;
}

/** Options of {@linkcode KubeletPod.create}. */
export interface KubeletPodOptions {
  /**
   * The probed container's name: by default the one container with a
   * `livenessProbe`, else the first.
   */
  container?: string;
}

async function succeeds(command: string, args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(command, { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

/** Whether `kubectl` (with its built-in kustomize) can be run. */
export const hasKubectl: boolean = await succeeds("kubectl", ["version", "--client"]);
/** Whether this process may make private mount and PID namespaces (root and `unshare`). */
export const canSandbox: boolean = await succeeds("unshare", [
  "--mount",
  "--pid",
  "--fork",
  "--propagation",
  "private",
  "true",
]);

/** Added to a test's name when it is skipped for want of `kubectl`: why. */
export const NO_KUBECTL: string = hasKubectl ? "" : " (skipped: kubectl is not installed)";
/** Added to a test's name when it is skipped for want of `kubectl` or the sandbox: why. */
export const NO_SANDBOX: string = !hasKubectl
  ? NO_KUBECTL
  : canSandbox
  ? ""
  : " (skipped: needs root and unshare for a private mount namespace)";

/**
 * Renders the kustomization in `dir` (relative to the repository's root) with
 * `kubectl kustomize`; throws if it fails or warns.
 */
export async function render(dir: string): Promise<Manifest[]> {
  const output = await new Deno.Command("kubectl", {
    args: ["kustomize", `${ROOT}${dir}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success || stderr !== "") {
    throw new Error(`kubectl kustomize ${dir} failed or warned: ${stderr}`);
  }
  return parseAllDocuments(new TextDecoder().decode(output.stdout)).map((doc) => doc.toJS());
}

/** The one object of `kind` in `manifests`; throws unless there is exactly one. */
export function only(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`Expected one ${kind}, found ${found.length}`);
  return found[0];
}

/**
 * Starts the stand-in API server on port 443 of a random loopback address, so
 * two test runs on one machine never collide (`--allow-net=127.0.0.0/8:443`).
 */
function startApiServer(pki: Pki): FakeApiServer {
  for (let attempt = 0;; attempt++) {
    const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
    const host = `127.${a}.${b}.${(c % 254) + 1}`;
    try {
      return new FakeApiServer(pki, host, 443);
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || attempt === 9) throw error;
    }
  }
}

/** One pod of a rendered example: its files on the host, its API server, its probe runs. */
export class KubeletPod {
  readonly token = `tok-${crypto.randomUUID()}`;
  readonly podName = "worker-5d8f7c9b6-x2x7q";
  /** Every stdout and stderr of every run, to prove the token never shows. */
  readonly outputs: string[] = [];
  /** The host file behind the current container's termination-message path. */
  terminationLog = "";

  private constructor(
    /** The host folder holding the pod's volumes; removed by {@linkcode close}. */
    readonly dir: string,
    readonly deployment: Manifest,
    readonly configMap: Manifest,
    readonly server: FakeApiServer,
    readonly pki: Pki,
    readonly containerName: string,
  ) {}

  /** The namespace the pod runs in (`default` when the example sets none). */
  get namespace(): string {
    return this.deployment.metadata.namespace ?? "default";
  }

  /** The probed container (see {@linkcode KubeletPodOptions.container}). */
  get container(): Manifest {
    return this.deployment.spec.template.spec.containers
      .find((c: Manifest) => c.name === this.containerName);
  }

  /**
   * Renders the repository's root and `overlay` (a folder of the repository,
   * e.g. `examples/deployment`), applied after it as the README says, starts an API server that knows the pod and grants its account what the
   * rendered RBAC grants, and lays out the pod's volumes.
   */
  static async create(overlay: string, options: KubeletPodOptions = {}): Promise<KubeletPod> {
    const root = await render(".");
    const manifests = [...root, ...await render(overlay)];
    const deployment = only(manifests, "Deployment");
    const spec = deployment.spec.template.spec;
    const containerName = options.container ??
      (spec.containers.find((c: Manifest) => c.livenessProbe) ?? spec.containers[0]).name;
    const pki = await makePki();
    const server = startApiServer(pki);
    const dir = await Deno.makeTempDir({ prefix: "log-probe-sandbox-" });
    await Deno.chmod(dir, 0o755);
    const pod = new KubeletPod(
      dir,
      deployment,
      only(root, "ConfigMap"),
      server,
      pki,
      containerName,
    );
    const account = spec.serviceAccountName ?? "default";
    server.addServiceAccount(pod.token, pod.namespace, account, pod.#mayReadLogs(manifests));
    server.addPod(pod.namespace, pod.podName, spec.containers.map((c: Manifest) => c.name));
    // A projected service-account volume: files behind ..data, as the kubelet writes them.
    const stamp = "..2026_11_25_12_00_00.000000000";
    await pod.#atomicWriterVolume("serviceaccount", stamp, {
      token: pod.token,
      "ca.crt": pki.caCert,
      namespace: pod.namespace,
    });
    await pod.#atomicWriterVolume("configmap", stamp, pod.configMap.data);
    for (const volume of spec.volumes ?? []) {
      if (volume.projected) {
        await pod.#atomicWriterVolume(`projected-${volume.name}`, stamp, pod.#projected(volume));
      }
    }
    await Deno.writeTextFile(
      `${dir}/hosts`,
      `127.0.0.1 localhost\n${server.url.split(/[/:]+/)[1]} kubernetes.default.svc\n`,
    );
    await pod.#start(server.now);
    for (const volume of deployment.spec.template.spec.volumes ?? []) {
      // An `image` volume gets an empty folder too: the test fills it as the image would.
      if (volume.emptyDir || volume.image) await pod.#emptyDir(volume.name);
    }
    await pod.#runInitContainers();
    return pod;
  }

  /**
   * Runs each init container's command as the kubelet would. The official Deno
   * image is the only one known here: the host's files with the local Deno on
   * the PATH stand in for it.
   */
  async #runInitContainers(): Promise<void> {
    const denoDir = Deno.execPath().replace(/\/[^/]*$/, "");
    for (const init of this.deployment.spec.template.spec.initContainers ?? []) {
      if (!init.image.startsWith("denoland/deno:")) {
        throw new Error(`No stand-in for the image ${init.image}`);
      }
      const run = await this.exec([...init.command, ...init.args ?? []], {
        container: init,
        image: "host",
        mounts: [`${Deno.execPath()} ${Deno.execPath()} ro`],
        env: { PATH: `${denoDir}:${this.env(init).PATH}` },
      });
      if (run.code !== 0) throw new Error(`Init container ${init.name} failed: ${run.stderr}`);
    }
  }

  /**
   * The files of a projected volume: a service-account token, `ca.crt` from the
   * kube-root-ca.crt ConfigMap, the namespace from the downward API.
   */
  #projected(volume: Manifest): Record<string, string> {
    const files: Record<string, string> = {};
    for (const source of volume.projected.sources) {
      if (source.serviceAccountToken) files[source.serviceAccountToken.path] = this.token;
      for (const item of source.configMap?.items ?? []) {
        if (source.configMap.name !== "kube-root-ca.crt" || item.key !== "ca.crt") {
          throw new Error(`No stand-in for ConfigMap ${source.configMap.name} key ${item.key}`);
        }
        files[item.path] = this.pki.caCert;
      }
      for (const item of source.downwardAPI?.items ?? []) {
        if (item.fieldRef?.fieldPath !== "metadata.namespace") {
          throw new Error(`No stand-in for the downward API field ${item.fieldRef?.fieldPath}`);
        }
        files[item.path] = this.namespace;
      }
    }
    return files;
  }

  /** RBAC as rendered: the account may read logs only if a Role and a binding say so. */
  #mayReadLogs(manifests: Manifest[]): boolean {
    const account = this.deployment.spec.template.spec.serviceAccountName ?? "default";
    const roles = manifests.filter((m) =>
      m.kind === "Role" &&
      m.rules.some((r: Manifest) => r.resources.includes("pods/log") && r.verbs.includes("get"))
    ).map((m) => m.metadata.name);
    return manifests.some((m) =>
      m.kind === "RoleBinding" && roles.includes(m.roleRef.name) &&
      m.subjects.some((s: Manifest) =>
        s.kind === "ServiceAccount" && s.name === account &&
        (s.namespace ?? this.namespace) === this.namespace
      )
    );
  }

  /** Files behind a `..data` link, as the kubelet writes ConfigMap and projected volumes. */
  async #atomicWriterVolume(
    name: string,
    stamp: string,
    files: Record<string, string>,
  ): Promise<void> {
    await Deno.mkdir(`${this.dir}/${name}/${stamp}`, { recursive: true });
    for (const [file, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${this.dir}/${name}/${stamp}/${file}`, text);
      await symlink(`..data/${file}`, `${this.dir}/${name}/${file}`);
    }
    await symlink(stamp, `${this.dir}/${name}/..data`);
  }

  async #emptyDir(name: string): Promise<string> {
    const path = this.emptyDir(name);
    await Deno.remove(path, { recursive: true }).catch(() => {});
    await Deno.mkdir(path);
    await Deno.chmod(path, 0o777);
    return path;
  }

  /** The host folder behind the emptyDir (or `image`) volume `name`. */
  emptyDir(name: string): string {
    return `${this.dir}/emptydir-${name}`;
  }

  /**
   * A container restart at `at` on the virtual clock: a new, empty log (the runtime's
   * `<restart count>.log`), and a start dated then; emptyDirs stay.
   */
  async restart(at = this.server.now): Promise<void> {
    this.server.restart(
      this.server.pods.get(`${this.namespace}/${this.podName}`)!,
      this.container.name,
    );
    await this.#start(at);
  }

  /**
   * A container start at `at`: a new termination-message file, dated then, named by 8 random hex
   * digits in `containers/<name>/`, mode 0666, the earlier ones kept (the kubelet makes it just
   * before the start, `makeMounts` in pkg/kubelet/kubelet_pods.go, as the real node showed:
   * testing/e2e-recorded.md).
   */
  async #start(at: number): Promise<void> {
    const folder = `${this.dir}/containers/${this.container.name}`;
    await Deno.mkdir(folder, { recursive: true });
    const name = Array.from(crypto.getRandomValues(new Uint8Array(4)))
      .map((byte) => byte.toString(16).padStart(2, "0")).join("");
    this.terminationLog = `${folder}/${name}`;
    await Deno.writeTextFile(this.terminationLog, "");
    await Deno.chmod(this.terminationLog, 0o666);
    await Deno.utime(this.terminationLog, new Date(at), new Date(at));
  }

  /** Empties the emptyDirs the probed container writes to, as for a new pod. */
  async resetVolumes(): Promise<void> {
    for (const mount of this.container.volumeMounts ?? []) {
      const volume = this.deployment.spec.template.spec.volumes
        .find((v: Manifest) => v.name === mount.name);
      if (volume.emptyDir && !mount.readOnly) await this.#emptyDir(volume.name);
    }
  }

  /**
   * The container `container` (the probed one by default) prints `text` at
   * `at` (the API server's clock by default).
   */
  log(text: string, at: number = this.server.now, container: string = this.container.name): void {
    this.server.pods.get(`${this.namespace}/${this.podName}`)!.containers
      .get(container)!.push({ at, text });
  }

  /** A container's environment as the kubelet sets it, downward API evaluated. */
  env(container: Manifest = this.container): Record<string, string> {
    const env: Record<string, string> = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOSTNAME: this.podName,
      HOME: "/",
      KUBERNETES_SERVICE_HOST: this.server.url.split(/[/:]+/)[1],
      KUBERNETES_SERVICE_PORT: "443",
    };
    const fields: Record<string, string> = {
      "metadata.name": this.podName,
      "metadata.namespace": this.namespace,
    };
    for (const variable of container.env ?? []) {
      const path = variable.valueFrom?.fieldRef?.fieldPath;
      env[variable.name] = path ? fields[path] : variable.value;
    }
    return env;
  }

  /** The probed container's rendered `livenessProbe.exec.command`. */
  get probeCommand(): string[] {
    return this.container.livenessProbe.exec.command;
  }

  /**
   * The settings the probe command's own flags give (those after the script or the binary):
   * the limit and the restart follow from them (`limitOf`, `restartAfter` in probe.ts).
   */
  get plan(): CheckOptions {
    const command = this.probeCommand;
    const parsed = parseArgs(
      command.slice(command.findLastIndex((arg) => !arg.startsWith("-")) + 1),
    );
    if (parsed.command !== "check") throw new Error(`Not a check: ${command.join(" ")}`);
    return parsed.options;
  }

  /**
   * The host command that runs `argv` in the sandbox as `container` (the
   * probed container by default) with its volume mounts.
   */
  async #sandboxCommand(
    argv: string[],
    options: ExecOptions = {},
  ): Promise<string[]> {
    const spec = this.deployment.spec.template.spec;
    const container = options.container ?? this.container;
    // What the kubelet mounts into every container, besides its volumes.
    const clock = options.virtualClock ? await clockEnv(this.server.now) : {};
    const mounts = [
      ...spec.automountServiceAccountToken === false
        ? []
        : [`${this.dir}/serviceaccount ${SA_DIR} ro`],
      `${this.terminationLog} ${container.terminationMessagePath ?? "/dev/termination-log"} rw`,
      `${this.dir}/hosts /etc/hosts ro`,
      ...options.mounts ?? [],
      ...clock.LD_PRELOAD ? [`${clock.LD_PRELOAD} ${clock.LD_PRELOAD} ro`] : [],
    ];
    for (const mount of container.volumeMounts ?? []) {
      const volume = spec.volumes.find((v: Manifest) => v.name === mount.name);
      const source = volume.configMap
        ? `${this.dir}/configmap`
        : volume.projected
        ? `${this.dir}/projected-${volume.name}`
        : this.emptyDir(volume.name);
      mounts.push(`${source} ${mount.mountPath} ${mount.readOnly ? "ro" : "rw"}`);
    }
    const mountsFile = await Deno.makeTempFile({ dir: this.dir, prefix: "mounts-" });
    await Deno.writeTextFile(mountsFile, mounts.join("\n") + "\n");
    const envFile = await Deno.makeTempFile({ dir: this.dir, prefix: "env-" });
    const env = { ...this.env(container), ...options.env, ...clock };
    await Deno.writeTextFile(
      envFile,
      Object.entries(env).map(([name, value]) => `${name}=${value}\n`).join(""),
    );
    const root = await Deno.makeTempDir({ dir: this.dir, prefix: "root-" });
    const uid = container.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
    if (uid === undefined) throw new Error(`No runAsUser for container ${container.name}`);
    return [
      "unshare",
      "--mount",
      "--pid",
      "--fork",
      "--kill-child", // a run killed at its timeout takes its whole sandbox with it
      "--propagation",
      "private",
      "bash",
      `${ROOT}testing/sandbox.sh`,
      root,
      String(uid),
      mountsFile,
      envFile,
      options.image ?? "empty",
      "--",
      ...argv,
    ];
  }

  /**
   * Runs `argv` (the probe command by default) in the sandbox, as the kubelet would. The probe
   * command is killed at its `timeoutSeconds` (Kubernetes' default 1 when unset): the run then
   * has the kubelet's result, a failure (`code` -1) whose output is the event's text after
   * "Liveness probe failed: " (pkg/kubelet/prober/prober.go, as the real node wrote it:
   * testing/e2e-recorded.md), and `timedOut`.
   */
  async exec(argv: string[] = this.probeCommand, options: ExecOptions = {}): Promise<ExecResult> {
    const [command, ...args] = [
      ...options.wrapper ?? [],
      ...await this.#sandboxCommand(argv, options),
    ];
    const timeout = options.timeoutSeconds ??
      (argv === this.probeCommand ? this.container.livenessProbe.timeoutSeconds ?? 1 : undefined);
    const child = new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = timeout === undefined ? undefined : setTimeout(() => {
      try {
        child.kill("SIGKILL"); // unshare; its --kill-child ends the sandbox's PID namespace
        timedOut = true;
      } catch { /* it has just ended by itself */ }
    }, timeout * 1000);
    const output = await child.output();
    clearTimeout(timer);
    const run: ExecResult = timedOut
      ? {
        code: -1,
        stdout: `command timed out: "${argv.join(" ")}" timed out after ${timeout}s`,
        stderr: "",
        timedOut,
      }
      : {
        code: output.code,
        stdout: new TextDecoder().decode(output.stdout),
        stderr: new TextDecoder().decode(output.stderr),
      };
    this.outputs.push(run.stdout, run.stderr);
    return run;
  }

  /** Stops the API server and removes the pod's files. */
  async close(): Promise<void> {
    await this.server.close();
    await Deno.remove(this.dir, { recursive: true });
    await Deno.remove(this.pki.dir, { recursive: true });
  }
}

/** `ln -s`: Deno.symlink needs unscoped read and write permissions, which the tests do not get. */
async function symlink(target: string, path: string): Promise<void> {
  await commandOutput("ln", ["-s", target, path]);
}
