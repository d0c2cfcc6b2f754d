/**
 * The real node of testing/controlplane/node.sh for the e2e test and the
 * benchmark: bring it up, run kubectl inside its network namespace, tear it
 * down; the platform owner's namespace and a foreign worker to install
 * log-probe into, as the README says.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { type Manifest, ROOT } from "./kubelet.ts";

/** testing/controlplane/node.sh. */
export const NODE_SH = `${ROOT}testing/controlplane/node.sh`;

/** Runs a command; never throws on a non-zero exit. */
export async function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(command, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `kubectl auth can-i QUESTION -n NS --as=USER` through `kubectl`: "yes" or "no". (`get pods/log`
 * would ask about a pod named "log": ask `get pods --subresource=log`.)
 */
export async function canI(
  kubectl: (args: string[]) => Promise<{ stdout: string }>,
  user: string,
  ns: string,
  ...question: string[]
): Promise<string> {
  return (await kubectl(["auth", "can-i", ...question, "-n", ns, `--as=${user}`])).stdout.trim();
}

/** Polls `check` until it holds; throws after `ms`. */
export async function eventually(what: string, check: () => Promise<boolean>, ms = 15_000) {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** A folder's entries, sorted; none when it is gone. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch { /* gone */ }
  return names.sort();
}
export const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** The node: its folder, and kubectl run inside its network namespace. */
export class RealNode {
  #execs = 0;

  private constructor(
    readonly dir: string,
    readonly bin: string,
    readonly upSeconds: number,
  ) {}

  /** `logMaxSize`: the kubelet's containerLogMaxSize (node.sh's default, 4Ki, rotates a chatty worker in seconds). */
  static async up(options: { logMaxSize?: string } = {}): Promise<RealNode> {
    const build = await run("bash", [NODE_SH, "build"]);
    if (build.code !== 0) throw new Error(`node.sh build failed: ${build.stderr}`);
    const dir = await Deno.makeTempDir({ prefix: "log-probe-node-" });
    const started = performance.now();
    const env = options.logMaxSize ? { NODE_LOG_MAX_SIZE: options.logMaxSize } : undefined;
    const up = await run("bash", [NODE_SH, "up", dir], { env });
    if (up.code !== 0) {
      await run("bash", [NODE_SH, "down", dir]);
      throw new Error(`node.sh up failed (${up.code}): ${up.stderr}`);
    }
    return new RealNode(dir, build.stdout.trim(), seconds(performance.now() - started));
  }

  exec(args: string[], options: { stdin?: string; cwd?: string } = {}) {
    return run("bash", [NODE_SH, "exec", this.dir, ...args], options);
  }

  /** The kubelet's log folder of a pod's container on the node's disk (`/var/log/pods/…`). */
  logDir(pod: Manifest, container: string): string {
    const { namespace, name, uid } = pod.metadata;
    return `${this.dir}/var-log/pods/${namespace}_${name}_${uid}/${container}`;
  }

  /** Stops the kubelet or the API server (node.sh stop); the pods keep running. */
  async stop(component: "kubelet" | "apiserver"): Promise<void> {
    const stopped = await run("bash", [NODE_SH, "stop", this.dir, component]);
    assert.equal(stopped.code, 0, stopped.stderr);
  }

  /** Starts it again and waits until it answers (node.sh start). */
  async start(component: "kubelet" | "apiserver"): Promise<void> {
    const started = await run("bash", [NODE_SH, "start", this.dir, component]);
    assert.equal(started.code, 0, started.stderr);
  }

  /**
   * Runs `argv` in a running container through containerd (`ctr tasks exec`, as the
   * kubelet's ExecSync does: the container's user, environment and mounts), without the
   * API server or the kubelet, so it works while either is down.
   */
  async execIn(pod: Manifest, container: string, argv: string[]) {
    const status = pod.status.containerStatuses.find((c: Manifest) => c.name === container);
    const id = status.containerID.replace(/^containerd:\/\//, "");
    const result = await this.exec([
      `${this.bin}/ctr`,
      "--address",
      "/run/containerd/containerd.sock",
      "--namespace",
      "k8s.io",
      "tasks",
      "exec",
      "--exec-id",
      `e2e-${++this.#execs}`,
      id,
      ...argv,
    ]);
    // ctr's own warning (containerd on cgroup v1) is not the command's output.
    const stderr = result.stderr.split("\n").filter((line) => !/level=warning/.test(line))
      .join("\n");
    return { ...result, stderr };
  }

  kubectl(args: string[], options: { stdin?: string; cwd?: string } = {}) {
    return this.exec(["kubectl", "--kubeconfig", `${this.dir}/kubeconfig`, ...args], options);
  }

  async get(args: string[]): Promise<Manifest> {
    const result = await this.kubectl(["get", ...args, "-o", "json"]);
    if (result.code !== 0) throw new Error(`kubectl get ${args.join(" ")}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  async apply(namespace: string, objects: Manifest[]): Promise<string> {
    const list = { apiVersion: "v1", kind: "List", items: objects };
    const applied = await this.kubectl(["apply", "-n", namespace, "-f", "-"], {
      stdin: JSON.stringify(list),
    });
    assert.equal(applied.code, 0, applied.stderr);
    return applied.stdout;
  }

  /** Stops everything; what node.sh down found left on the host ("" when nothing). */
  async down(): Promise<{ code: number; left: string }> {
    const down = await run("bash", [NODE_SH, "down", this.dir]);
    return { code: down.code, left: down.stderr.trim() };
  }
}

/** The platform owner's namespace: Pod Security "restricted" enforced, a quota, limits per container. */
export function platformNamespace(name: string): Manifest[] {
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name,
        labels: {
          "pod-security.kubernetes.io/enforce": "restricted",
          "pod-security.kubernetes.io/enforce-version": "latest",
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: { name: "compute", namespace: name },
      spec: {
        hard: {
          "requests.cpu": "4",
          "requests.memory": "6Gi",
          "limits.cpu": "12",
          "limits.memory": "12Gi",
          pods: "30",
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "LimitRange",
      metadata: { name: "per-container", namespace: name },
      spec: {
        limits: [{
          type: "Container",
          min: { cpu: "5m", memory: "16Mi" },
          max: { cpu: "1", memory: "1Gi" },
        }],
      },
    },
  ];
}

/**
 * Someone else's worker: its own account, names and security context, busybox
 * (static, no glibc), a shell loop that stops promptly on SIGTERM.
 */
export function foreignWorker(name: string, container: string, script: string): Manifest[] {
  return [
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name } },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, labels: { team: "ledger" } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            serviceAccountName: name,
            terminationGracePeriodSeconds: 5,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 10001,
              runAsGroup: 10001,
              seccompProfile: { type: "RuntimeDefault" },
            },
            containers: [{
              name: container,
              image: "busybox:1.37-musl",
              command: ["/bin/sh", "-c", `trap 'exit 0' TERM\n${script}`],
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              resources: {
                requests: { cpu: "10m", memory: "32Mi" },
                limits: { cpu: "500m", memory: "160Mi" },
              },
            }],
          },
        },
      },
    },
  ];
}

/** The README's step 2: a copy of container.yaml with the two names set. */
export function probePatchFor(deployment: string, container: string): string {
  const template = Deno.readTextFileSync(`${ROOT}components/log-probe/container.yaml`);
  const named = template
    .replace(/name: \S+ # ①/, `name: ${deployment} # ①`)
    .replace(/- name: \S+ # ②/, `- name: ${container} # ②`)
    .replace(/- --container=[^\s#]+/, `- --container=${container}`);
  assert.notEqual(named, template, "container.yaml has the two names marked ① and ②");
  return named;
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

export async function du(path: string): Promise<number> {
  const result = await run("du", ["-sb", path]);
  assert.equal(result.code, 0, result.stderr);
  return Number(result.stdout.split("\t")[0]);
}

export async function renderKustomization(dir: string): Promise<Manifest[]> {
  const result = await run("kubectl", ["kustomize", dir]);
  assert.equal(result.code, 0, result.stderr);
  return parseAllDocuments(result.stdout).map((doc) => doc.toJS());
}

/** The Deployment's pod once its probed container runs (the kubelet's view). */
export async function runningPod(node: RealNode, ns: string, app: string): Promise<Manifest> {
  const until = Date.now() + 180_000;
  while (Date.now() < until) {
    const list = await node.get(["pods", "-n", ns, "-l", `app=${app}`]);
    const pod = list.items[0];
    if (pod?.status.containerStatuses?.every((c: Manifest) => c.state.running)) return pod;
    await sleep(250);
  }
  const events = await node.kubectl(["get", "events", "-n", ns]);
  throw new Error(`No running pod for app=${app} in 180s:\n${events.stdout}`);
}
