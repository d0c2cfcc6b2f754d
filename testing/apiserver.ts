/**
 * A stand-in for the Kubernetes API server and the kubelet's log reader, for
 * the tests, the demo and the benchmark: real HTTPS with a CA made at start,
 * bearer tokens, RBAC answers, `v1.Status` errors and the kubelet's
 * `ReadLogs` semantics (tail first, then since, then limitBytes, timestamps as
 * RFC3339Nano) on a virtual clock.
 *
 * @module
 */

/** One CRI log record: `partial` records end without a newline. */
export interface LogRecord {
  /** Virtual time in milliseconds since the epoch. */
  at: number;
  /** The line without its newline; bytes for output that is not valid UTF-8. */
  text: string | Uint8Array;
  /**
   * A record without its newline: a CRI partial (`P`) record of a line over 16 KiB, or, last in
   * the file, a record the runtime has not finished writing (ReadLogs writes it as it is).
   */
  partial?: boolean;
  /**
   * The zone offset the runtime stamped the record with (`+01:00`), where it wrote one: the
   * kubelet re-formats the parsed time and keeps its offset (containerd writes `Z`).
   */
  offset?: string;
}

/** A pod with its containers' current log files. */
export interface Pod {
  namespace: string;
  name: string;
  /** The pod's uid, in the kubelet's log paths (`/var/log/pods/<ns>_<name>_<uid>`). */
  uid: string;
  /** Each container's restart count, the number of its current log file (`<count>.log`). */
  restarts: Map<string, number>;
  containers: Map<string, LogRecord[]>;
  /** Init containers' names: listed first when a container name is missing. */
  initContainers?: string[];
}

/** What the server saw of one request. */
export interface Seen {
  path: string;
  query: URLSearchParams;
  status: number;
  /** Bytes of the answer's body. */
  bytes: number;
  /** The request's Accept-Encoding header, if any. */
  acceptEncoding: string | null;
}

/** A canned answer that replaces the normal one (429, 5xx, a proxy's HTML). */
export interface Override {
  status: number;
  body: string | Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
}

/** PEM files of one certificate authority and a server certificate it signed. */
export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/**
 * Makes a CA and a server certificate for `hosts` with the `openssl` command.
 * The server certificate names `localhost`, `127.0.0.1` and
 * `kubernetes.default.svc` unless `hosts` says otherwise; `serverDays: -1`
 * makes it expired.
 */
export async function makePki(
  options: { hosts?: string[]; serverDays?: number } = {},
): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "log-probe-pki-" });
  const hosts = options.hosts ??
    ["DNS:localhost", "IP:127.0.0.1", "DNS:kubernetes.default.svc"];
  const days = "2";
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  await openssl(dir, [
    "req",
    "-x509",
    ...ec,
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    days,
    "-subj",
    `/CN=log-probe-test-ca-${crypto.randomUUID()}`,
  ]);
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    `subjectAltName=${hosts.join(",")}\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl(dir, [
    "req",
    ...ec,
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=kube-apiserver",
  ]);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    String(options.serverDays ?? 2), // -1: expired yesterday
    "-extfile",
    "ext.cnf",
  ]);
  return {
    dir,
    caCert: await Deno.readTextFile(`${dir}/ca.crt`),
    serverCert: await Deno.readTextFile(`${dir}/server.crt`),
    serverKey: await Deno.readTextFile(`${dir}/server.key`),
  };
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
}

/** RFC3339Nano as Go prints it: trailing zeros of the fraction dropped. */
export function rfc3339Nano(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0*Z$/, "Z");
}

/**
 * The timestamp the kubelet prefixes: `RFC3339NanoFixed` (cri-client
 * `pkg/logs/logs.go`, `timeFormatOut`), always nine digits of fraction, so the
 * prefix is 31 bytes in UTC. Seen against the real ReadLogs (testing/e2e-recorded.md).
 */
export function kubeletTimestamp(ms: number, offset?: string): string {
  if (offset === undefined || offset === "Z") {
    return new Date(ms).toISOString().replace(/Z$/, "000000Z");
  }
  const [, sign, hours, minutes] = offset.match(/^([+-])(\d\d):(\d\d)$/)!;
  const shift = (sign === "-" ? -1 : 1) * (Number(hours) * 60 + Number(minutes)) * 60_000;
  return new Date(ms + shift).toISOString().replace(/Z$/, `000000${offset}`);
}

function status(code: number, reason: string, message: string): Override {
  return {
    status: code,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      code,
    }),
  };
}

/**
 * The kubelet's `ReadLogs` for one request (`kubernetes/cri-client`,
 * `pkg/logs/logs.go`): the last `tailLines` records (a CRI partial record is
 * one line), those not older than `sinceSeconds`, each prefixed with its
 * timestamp when asked, cut at `limitBytes`. Only a record that starts a line
 * gets the prefix, and a record skipped by `since` still ends or continues its
 * line (`isNewLine` is updated for every parsed record), so the rest of a split
 * line whose first part is too old arrives bare. The timestamp is
 * {@linkcode kubeletTimestamp}'s, fixed width.
 */
export function readLogs(
  records: LogRecord[],
  query: URLSearchParams,
  now: number,
): Uint8Array<ArrayBuffer> {
  const tail = query.has("tailLines") ? Number(query.get("tailLines")) : -1;
  const limit = query.has("limitBytes") ? Number(query.get("limitBytes")) : Infinity;
  // sinceTime reaches the kubelet in whole seconds: the API server formats it with
  // time.RFC3339 (pkg/registry/core/pod/strategy.go, LogLocation).
  const since = query.has("sinceSeconds")
    ? now - Number(query.get("sinceSeconds")) * 1000
    : query.has("sinceTime")
    ? Math.floor(Date.parse(query.get("sinceTime")!) / 1000) * 1000
    : -Infinity;
  const timestamps = query.get("timestamps") === "true";
  const encoder = new TextEncoder();
  const pieces: Uint8Array<ArrayBuffer>[] = [];
  let size = 0;
  let startOfLine = true;
  const first = tail >= 0 ? Math.max(0, records.length - tail) : 0;
  for (let i = first; i < records.length && size < limit; i++) {
    const record = records[i];
    const prefixed = startOfLine;
    startOfLine = !record.partial;
    if (record.at < since) continue;
    const prefix = timestamps && prefixed ? `${kubeletTimestamp(record.at, record.offset)} ` : "";
    const newline = record.partial ? "" : "\n";
    const piece = typeof record.text === "string"
      ? encoder.encode(prefix + record.text + newline)
      : new Uint8Array([
        ...encoder.encode(prefix),
        ...record.text,
        ...encoder.encode(newline),
      ]);
    pieces.push(piece.subarray(0, limit - size));
    size += Math.min(piece.length, limit - size);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}

/** How far the virtual clock starts ahead of the real one: certificates are made on the real one. */
export const VIRTUAL_LEAD = 3600_000;

/** The stand-in API server. Stop it with {@linkcode FakeApiServer.close}. */
export class FakeApiServer {
  /**
   * Virtual clock in milliseconds; the kubelet's "now", and the probe's (testing/clock.ts).
   * It starts an hour after the real time, in whole seconds: a certificate made later in a test
   * (openssl sets its notBefore to the real time it was made) is then already valid on it.
   */
  now = Math.floor(Date.now() / 1000) * 1000 + VIRTUAL_LEAD;
  readonly pods = new Map<string, Pod>();
  /** token → service account user name, e.g. `system:serviceaccount:shop:log-probe` */
  readonly tokens = new Map<string, string>();
  /** `namespace/user` pairs allowed to get pods/log. */
  readonly grants = new Set<string>();
  readonly seen: Seen[] = [];
  /** When set, every request gets this answer. */
  override: Override | undefined;
  /** When set, access reviews get this answer (a 403 from an admission webhook, say). */
  reviewOverride: Override | undefined;
  /** Milliseconds to wait before each answer: a slow control plane. */
  delay = 0;
  readonly url: string;
  readonly port: number;
  #server: Deno.HttpServer<Deno.NetAddr>;
  /** Containers whose log the kubelet cannot read, with its error's text. */
  #broken = new Map<string, string>();

  constructor(pki: Pki, hostname = "127.0.0.1", port = 0) {
    this.#server = Deno.serve({
      hostname,
      port,
      cert: pki.serverCert,
      key: pki.serverKey,
      onListen: () => {},
    }, async (request) => await this.#answer(request));
    this.port = this.#server.addr.port;
    this.url = `https://${hostname}:${this.port}`;
  }

  /** Adds a pod whose containers have empty logs. */
  addPod(
    namespace: string,
    name: string,
    containers = ["app"],
    initContainers: string[] = [],
  ): Pod {
    const pod = {
      namespace,
      name,
      uid: crypto.randomUUID(),
      containers: new Map(),
      restarts: new Map(),
      initContainers,
    };
    for (const container of containers) pod.containers.set(container, []);
    this.pods.set(`${namespace}/${name}`, pod);
    return pod;
  }

  /** Adds a service account token, allowed to get pods/log unless `allowed` is false. */
  addServiceAccount(
    token: string,
    namespace: string,
    name: string,
    allowed = true,
  ): void {
    const user = `system:serviceaccount:${namespace}:${name}`;
    this.tokens.set(token, user);
    if (allowed) this.grants.add(`${namespace}/${user}`);
  }

  /**
   * Rotates a container's log as the kubelet does at `containerLogMaxSize`
   * (`pkg/kubelet/logs/container_log_manager.go`): the file is renamed, and
   * `pods/log` reads only the current one, which starts empty. Until
   * {@linkcode FakeApiServer.reopen}, there is no current file: the kubelet's
   * `ReadLogs` fails. The kubelet's `GetKubeletContainerLogs`
   * (`pkg/kubelet/kubelet_pods.go`, 1.37) has already written zero bytes through a flushing
   * writer, which commits a 200, so `pkg/kubelet/server/server.go`'s 400 only appends the
   * error's text, and the API server passes 200 text/plain with that body on
   * (testing/e2e-recorded.md).
   */
  rotate(pod: Pod, container = "app", reopened = true): void {
    pod.containers.set(container, []);
    const path = `/var/log/pods/${pod.namespace}_${pod.name}_${pod.uid}/${container}/${
      pod.restarts.get(container) ?? 0
    }.log`;
    if (reopened) this.reopen(pod, container);
    else {
      this.breakLog(
        pod,
        `failed to try resolving symlinks in path "${path}": lstat ${path}: no such file or directory`,
        container,
      );
    }
  }

  /**
   * The kubelet's log read fails with `text` until {@linkcode FakeApiServer.reopen}, sent as
   * 200 with the text as its body, like the missing file of a rotation (see rotate): the
   * runtime's failed status call (`unable to retrieve container logs for <id>`,
   * pkg/kubelet/kuberuntime/kuberuntime_container.go) and a corrupted file (`failed to get parse
   * function: unsupported log format: …`, cri-client pkg/logs/logs.go) fail after the same
   * zero-byte write.
   */
  breakLog(pod: Pod, text: string, container = "app"): void {
    this.#broken.set(`${pod.namespace}/${pod.name}/${container}`, text);
  }

  /**
   * The container restarts: the runtime writes a new, empty log file, `<restart count>.log`
   * (pkg/kubelet/kuberuntime/kuberuntime_container.go, as the real node showed).
   */
  restart(pod: Pod, container = "app"): void {
    pod.containers.set(container, []);
    pod.restarts.set(container, (pod.restarts.get(container) ?? 0) + 1);
    this.reopen(pod, container);
  }

  /** The runtime reopens the container's log file after a rotation; the read works again. */
  reopen(pod: Pod, container = "app"): void {
    this.#broken.delete(`${pod.namespace}/${pod.name}/${container}`);
  }

  /** Appends a line to a container's log at the virtual clock's time. */
  log(pod: Pod, text: string | Uint8Array, container = "app", at = this.now): void {
    pod.containers.get(container)!.push({ at, text });
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }

  async #answer(request: Request): Promise<Response> {
    if (this.delay) await new Promise((resolve) => setTimeout(resolve, this.delay));
    const url = new URL(request.url);
    const answer = this.override ?? await this.#route(request, url);
    const body = typeof answer.body === "string"
      ? new TextEncoder().encode(answer.body)
      : answer.body;
    this.seen.push({
      path: url.pathname,
      query: url.searchParams,
      status: answer.status,
      bytes: body.length,
      acceptEncoding: request.headers.get("accept-encoding"),
    });
    const headers = new Headers(answer.headers ?? { "content-type": "text/plain" });
    headers.set("date", new Date(this.now).toUTCString()); // the virtual clock
    return new Response(body, { status: answer.status, headers });
  }

  async #route(request: Request, url: URL): Promise<Override> {
    const auth = request.headers.get("authorization") ?? "";
    const user = auth.startsWith("Bearer ") ? this.tokens.get(auth.slice(7)) : undefined;
    if (user === undefined) return status(401, "Unauthorized", "Unauthorized");
    if (request.method === "GET" && url.pathname === "/version") {
      return {
        status: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ major: "1", minor: "32", gitVersion: "v1.32.4" }),
      };
    }
    if (
      request.method === "POST" &&
      url.pathname === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    ) {
      if (this.reviewOverride) return this.reviewOverride;
      const review = await request.json();
      const a = review.spec?.resourceAttributes ?? {};
      const allowed = a.verb === "get" && a.resource === "pods" && a.subresource === "log" &&
        this.grants.has(`${a.namespace}/${user}`);
      return {
        status: 201,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...review, status: { allowed } }),
      };
    }
    const match = url.pathname.match(
      /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/,
    );
    if (request.method !== "GET" || !match) {
      return status(
        404,
        "NotFound",
        "the server could not find the requested resource",
      );
    }
    const [namespace, name] = [
      decodeURIComponent(match[1]),
      decodeURIComponent(match[2]),
    ];
    if (!this.grants.has(`${namespace}/${user}`)) {
      return status(
        403,
        "Forbidden",
        `pods "${name}" is forbidden: User "${user}" cannot get resource "pods/log" in API group "" in the namespace "${namespace}"`,
      );
    }
    const pod = this.pods.get(`${namespace}/${name}`);
    if (!pod) return status(404, "NotFound", `pods "${name}" not found`);
    const query = url.searchParams;
    for (
      const [field, min] of [["sinceSeconds", 1], ["tailLines", 0], [
        "limitBytes",
        1,
      ]] as const
    ) {
      const value = query.get(field);
      if (value !== null && !(/^-?\d+$/.test(value) && Number(value) >= min)) {
        return status(
          400,
          "BadRequest",
          `PodLogOptions "${name}" is invalid: ${field}: Invalid value: ${value}: must be greater than ${
            min === 0 ? "or equal to 0" : "0"
          }`,
        );
      }
    }
    // pkg/apis/core/validation/validation.go, ValidatePodLogOptions.
    if (query.has("sinceSeconds") && query.has("sinceTime")) {
      return status(
        422,
        "Invalid",
        `PodLogOptions "${name}" is invalid: sinceSeconds: Forbidden: at most one of \`sinceTime\` or \`sinceSeconds\` may be specified`,
      );
    }
    const sinceTime = query.get("sinceTime");
    if (sinceTime !== null && Number.isNaN(Date.parse(sinceTime))) {
      return status(400, "BadRequest", `parsing time "${sinceTime}" as RFC3339: cannot parse`);
    }
    let container = query.get("container");
    if (container === null) {
      if (pod.containers.size > 1) {
        // pkg/registry/core/pod/strategy.go validateContainer: podutil.VisitContainers
        // lists init containers first, then containers (seen in testing/e2e-recorded.md).
        return status(
          400,
          "BadRequest",
          `a container name must be specified for pod ${name}, choose one of: [${
            [...pod.initContainers ?? [], ...pod.containers.keys()].join(" ")
          }]`,
        );
      }
      container = [...pod.containers.keys()][0];
    }
    const records = pod.containers.get(container);
    if (!records) {
      return status(
        400,
        "BadRequest",
        `container ${container} is not valid for pod ${name}`,
      );
    }
    const broken = this.#broken.get(`${namespace}/${name}/${container}`);
    // 200 and the error's text as the body (see rotate): kubernetes#107243 shows it in 1.19.
    if (broken !== undefined) return { status: 200, body: broken };
    return { status: 200, body: readLogs(records, query, this.now) };
  }
}
