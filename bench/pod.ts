/**
 * The example Deployment rendered with `kubectl kustomize`, its pod's files on
 * the host, and one command run the way the kubelet runs an exec probe: in
 * `testing/sandbox.sh` (read-only root, the pod's volumes at their mount
 * paths, the container's user and environment), under
 * `unshare --mount --pid --fork`, optionally inside a cgroup with a CPU quota.
 * Each run is measured from inside the sandbox by `rusage.py` (wait4(2)), so
 * the sandbox's own setup is never counted.
 *
 * @module
 */
import { parseAllDocuments } from "yaml";
import { type FakeApiServer, type Pki } from "../testing/apiserver.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const HERE = new URL(".", import.meta.url).pathname;
/** Where the pod's service-account volume is mounted. */
export const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** `kubernetes.default.svc` inside the sandbox (/etc/hosts); the server listens here on 443. */
export const API_HOST = "127.83.7.1";
/** Where `bench/` is mounted inside the sandbox, for the floors and the meter. */
export const BENCH_DIR = "/opt/log-probe-bench";

// deno-lint-ignore no-explicit-any
export type Manifest = any;

/** What one run cost, measured inside the sandbox. */
export interface Cost {
  wallMs: number;
  cpuMs: number;
  userMs: number;
  sysMs: number;
  peakRssMiB: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode BenchPod.exec}. */
export interface ExecOptions {
  /** Extra "SOURCE TARGET ro|rw" mounts. */
  mounts?: string[];
  /** Environment variables added to (or, with `undefined`, removed from) the container's. */
  env?: Record<string, string | undefined>;
  /** A `cgroup.procs` file the sandbox joins before it starts: the container's cgroup. */
  cgroup?: string;
  /** Seconds to sleep inside the sandbox before the clock starts. */
  settle?: number;
}

/** Renders a kustomization with `kubectl kustomize`. */
export async function render(dir: string): Promise<Manifest[]> {
  const output = await new Deno.Command("kubectl", {
    args: ["kustomize", `${ROOT}${dir}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`kubectl kustomize ${dir} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return parseAllDocuments(new TextDecoder().decode(output.stdout)).map((doc) => doc.toJS());
}

function only(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0];
}

async function symlink(target: string, path: string): Promise<void> {
  const output = await new Deno.Command("ln", { args: ["-s", target, path] }).output();
  if (!output.success) throw new Error(`ln -s ${target} ${path} failed`);
}

/** One pod of the example Deployment, with its files in a temporary folder. */
export class BenchPod {
  readonly token = `tok-${crypto.randomUUID()}`;
  readonly podName = "worker-5d8f7c9b6-x2x7q";
  readonly terminationLog: string;

  private constructor(
    readonly dir: string,
    readonly deployment: Manifest,
    readonly configMap: Manifest,
    readonly server: FakeApiServer,
  ) {
    this.terminationLog = `${dir}/termination-log`;
  }

  get namespace(): string {
    return this.deployment.metadata.namespace;
  }

  get spec(): Manifest {
    return this.deployment.spec.template.spec;
  }

  get container(): Manifest {
    return this.spec.containers[0];
  }

  /** The rendered liveness probe's argv, exactly. */
  get probeCommand(): string[] {
    return this.container.livenessProbe.exec.command;
  }

  /** The rendered command's Deno flags (between `run` and the script). */
  get denoFlags(): string[] {
    const command = this.probeCommand;
    const script = command.findIndex((arg, i) => i > 1 && !arg.startsWith("-"));
    return command.slice(2, script);
  }

  /** Renders the root and `overlay`, lays out the pod's files, registers it with `server`. */
  static async create(pki: Pki, server: FakeApiServer, overlay: string): Promise<BenchPod> {
    const root = await render(".");
    const deployment = only(await render(overlay), "Deployment");
    const dir = await Deno.makeTempDir({ prefix: "log-probe-bench-pod-" });
    await Deno.chmod(dir, 0o755);
    const pod = new BenchPod(dir, deployment, only(root, "ConfigMap"), server);
    server.addServiceAccount(pod.token, pod.namespace, pod.spec.serviceAccountName);
    server.addPod(pod.namespace, pod.podName, [pod.container.name]);
    // Projected volumes: files behind ..data, as the kubelet writes them.
    const stamp = "..2026_11_25_12_00_00.000000000";
    const files = {
      serviceaccount: { token: pod.token, "ca.crt": pki.caCert, namespace: pod.namespace },
      configmap: pod.configMap.data as Record<string, string>,
    };
    for (const [volume, content] of Object.entries(files)) {
      await Deno.mkdir(`${dir}/${volume}/${stamp}`, { recursive: true });
      for (const [file, text] of Object.entries(content)) {
        await Deno.writeTextFile(`${dir}/${volume}/${stamp}/${file}`, text);
        await symlink(`..data/${file}`, `${dir}/${volume}/${file}`);
      }
      await symlink(stamp, `${dir}/${volume}/..data`);
    }
    await Deno.writeTextFile(
      `${dir}/hosts`,
      `127.0.0.1 localhost\n${API_HOST} kubernetes.default.svc kubernetes.default.svc.cluster.local\n`,
    );
    await Deno.writeTextFile(pod.terminationLog, "");
    await Deno.chmod(pod.terminationLog, 0o666);
    for (const volume of pod.spec.volumes) {
      if (!volume.emptyDir) continue;
      await Deno.mkdir(`${dir}/emptydir-${volume.name}`);
      await Deno.chmod(`${dir}/emptydir-${volume.name}`, 0o777);
    }
    // What the init container does: the Deno binary into its emptyDir, so argv[0] stays as rendered.
    const deno = pod.spec.initContainers?.find((c: Manifest) => c.name === "install-deno");
    if (deno) {
      const target = deno.volumeMounts[0];
      await Deno.copyFile(Deno.execPath(), `${dir}/emptydir-${target.name}/deno`);
      await Deno.chmod(`${dir}/emptydir-${target.name}/deno`, 0o755);
    }
    return pod;
  }

  /** A host folder standing for an extra emptyDir (the seed script's writable /tmp). */
  async scratch(name: string): Promise<string> {
    const path = `${this.dir}/scratch-${name}`;
    await Deno.mkdir(path, { recursive: true });
    await Deno.chmod(path, 0o777);
    return path;
  }

  /** The host folder behind the emptyDir `name`. */
  emptyDir(name: string): string {
    return `${this.dir}/emptydir-${name}`;
  }

  /** The container's environment as the kubelet sets it, downward API evaluated. */
  env(): Record<string, string> {
    const env: Record<string, string> = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOSTNAME: this.podName,
      HOME: "/",
      KUBERNETES_SERVICE_HOST: API_HOST,
      KUBERNETES_SERVICE_PORT: "443",
    };
    const fields: Record<string, string> = {
      "metadata.name": this.podName,
      "metadata.namespace": this.namespace,
    };
    for (const variable of this.container.env ?? []) {
      const path = variable.valueFrom?.fieldRef?.fieldPath;
      env[variable.name] = path ? fields[path] : variable.value;
    }
    return env;
  }

  /** Runs `argv` in the sandbox as the container's user and measures it. */
  async exec(argv: string[], options: ExecOptions = {}): Promise<Cost> {
    const mounts = [
      `${this.dir}/serviceaccount ${SA_DIR} ro`,
      `${this.terminationLog} ${
        this.container.terminationMessagePath ?? "/dev/termination-log"
      } rw`,
      `${this.dir}/hosts /etc/hosts ro`,
      `${HERE} ${BENCH_DIR} ro`,
    ];
    for (const mount of this.container.volumeMounts) {
      const volume = this.spec.volumes.find((v: Manifest) => v.name === mount.name);
      const source = volume.configMap ? `${this.dir}/configmap` : this.emptyDir(volume.name);
      mounts.push(`${source} ${mount.mountPath} ${mount.readOnly ? "ro" : "rw"}`);
    }
    mounts.push(...options.mounts ?? []);
    await Deno.writeTextFile(`${this.dir}/mounts`, mounts.join("\n") + "\n");
    const env = { ...this.env(), ...options.env };
    const root = await Deno.makeTempDir({ dir: this.dir, prefix: "root-" });
    const uid = String(
      this.container.securityContext?.runAsUser ?? this.spec.securityContext.runAsUser,
    );
    const sandbox = [
      "unshare",
      ...["--mount", "--pid", "--fork", "--propagation", "private"],
      ...["bash", `${ROOT}testing/sandbox.sh`, root, uid, `${this.dir}/mounts`, "--"],
      "/usr/bin/env",
      "-i",
      ...Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`),
      ...["/usr/bin/python3", "-I", "-S", `${BENCH_DIR}/rusage.py`, String(options.settle ?? 0)],
      ...argv,
    ];
    // Joining the cgroup before unshare: the whole run, as in the container's cgroup.
    const join = options.cgroup
      ? ["sh", "-c", `echo $$ > ${options.cgroup} && exec "$@"`, "sh"]
      : [];
    const [command, ...args] = [...join, ...sandbox];
    const output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    await Deno.remove(root);
    const stderr = new TextDecoder().decode(output.stderr).trimEnd();
    const last = stderr.lastIndexOf("\n");
    let meter;
    try {
      meter = JSON.parse(stderr.slice(last + 1));
    } catch {
      throw new Error(`the sandbox failed (${output.code}): ${stderr}`);
    }
    return {
      wallMs: meter.wallMs,
      userMs: meter.userMs,
      sysMs: meter.sysMs,
      cpuMs: meter.userMs + meter.sysMs,
      peakRssMiB: meter.maxRssKiB / 1024,
      code: meter.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: stderr.slice(0, Math.max(0, last)),
    };
  }

  /** Removes the pod's files. */
  async remove(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true });
  }
}
