/**
 * Foreign workloads for the adoption tests, written the way their owners
 * would, and their kustomizations with log-probe added as the README says:
 * the kind's component and a copy of its `container.yaml` with the two names
 * set. Each workload runs as its own account, passes Pod Security
 * "restricted" and sets resources that a LimitRange with
 * `maxLimitRequestRatio` 4 admits. Test helpers for `kinds_test.ts` (rendered)
 * and `admission_e2e_test.ts` (against the real API server).
 *
 * @module
 */
import { ROOT } from "../testing/kubelet.ts";

/** A workload kind log-probe has a component for. */
export type Kind = "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "CronJob";

/** The component of each kind, a folder of the repository. */
export const COMPONENTS: Record<Kind, string> = {
  Deployment: "components/log-probe",
  StatefulSet: "components/log-probe-statefulset",
  DaemonSet: "components/log-probe-daemonset",
  Job: "components/log-probe-job",
  CronJob: "components/log-probe-cronjob",
};

/** A foreign workload: its name, kind, the probed container and what its pod holds. */
export interface Workload {
  /** The kustomization's folder name, and the workload's name. */
  name: string;
  kind: Kind;
  /** The container log-probe watches. */
  container: string;
  /** Its own liveness probe, if any (one handler and its timings). */
  livenessProbe?: Record<string, unknown>;
  /** Extra fields of the probed container (env, volumeMounts, …). */
  extra?: Record<string, unknown>;
  /** Extra pod volumes. */
  volumes?: Record<string, unknown>[];
  /** Extra objects beside the workload (a PersistentVolumeClaim, say). */
  objects?: Record<string, unknown>[];
  /** Containers listed before the probed one. */
  before?: string[];
  /** `namePrefix` and `nameSuffix` of its kustomization. */
  namePrefix?: string;
  nameSuffix?: string;
  /** Leave the container without resources: a LimitRange's defaults fill them in. */
  noResources?: boolean;
}

/** Resources within a LimitRange's `maxLimitRequestRatio` of 4. */
const RESOURCES = {
  requests: { cpu: "100m", memory: "128Mi" },
  limits: { cpu: "200m", memory: "256Mi" },
};

const CONTAINER_SECURITY = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
};

/** The pod spec of `workload`, as its owners wrote it. */
export function podSpec(workload: Workload): Record<string, unknown> {
  const container = (name: string, probed: boolean) => ({
    name,
    image: `registry.example.com/${workload.name}/${name}:1.0`,
    securityContext: CONTAINER_SECURITY,
    ...workload.noResources ? {} : { resources: RESOURCES },
    ...probed && workload.livenessProbe ? { livenessProbe: workload.livenessProbe } : {},
    ...probed ? workload.extra : {},
  });
  return {
    serviceAccountName: `${workload.name}-runner`,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    },
    ...workload.kind === "Job" || workload.kind === "CronJob" ? { restartPolicy: "OnFailure" } : {},
    containers: [
      ...(workload.before ?? []).map((name) => container(name, false)),
      container(workload.container, true),
    ],
    ...workload.volumes ? { volumes: workload.volumes } : {},
  };
}

/** The workload object itself, of its kind, with its pod template. */
export function workloadObject(workload: Workload): Record<string, unknown> {
  const labels = { "app.kubernetes.io/name": workload.name };
  const template = { metadata: { labels }, spec: podSpec(workload) };
  const group = workload.kind === "Job" || workload.kind === "CronJob" ? "batch/v1" : "apps/v1";
  const spec: Record<string, unknown> = {
    Deployment: { replicas: 1, selector: { matchLabels: labels }, template },
    StatefulSet: {
      serviceName: workload.name,
      replicas: 2,
      selector: { matchLabels: labels },
      template,
    },
    DaemonSet: { selector: { matchLabels: labels }, template },
    Job: { backoffLimit: 2, template },
    CronJob: {
      schedule: "0 2 * * *",
      concurrencyPolicy: "Forbid",
      jobTemplate: { spec: { backoffLimit: 2, template } },
    },
  }[workload.kind];
  return { apiVersion: group, kind: workload.kind, metadata: { name: workload.name }, spec };
}

/** Writes `workload`'s kustomization, with log-probe added, into `dir/<name>`; its folder. */
export async function writeKustomization(dir: string, workload: Workload): Promise<string> {
  const folder = `${dir}/${workload.name}`;
  await Deno.mkdir(folder, { recursive: true });
  const account = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: `${workload.name}-runner` },
  };
  const objects = [account, ...workload.objects ?? [], workloadObject(workload)];
  await Deno.writeTextFile(
    `${folder}/workload.yaml`,
    objects.map((o) => JSON.stringify(o)).join("\n---\n") + "\n",
  );
  const component = COMPONENTS[workload.kind];
  const copy = (await Deno.readTextFile(`${ROOT}${component}/container.yaml`))
    .replace("name: worker # ① your workload", `name: ${workload.name} # ① your workload`)
    .replace(/^( *)- name: worker # ② your container$/m, (_, indent) =>
      [
        ...(workload.before ?? []).map((name) => `${indent}- name: ${name}`),
        `${indent}- name: ${workload.container} # ② your container`,
      ].join("\n"))
    .replace("--container=worker #", `--container=${workload.container} #`);
  await Deno.writeTextFile(`${folder}/log-probe.yaml`, copy);
  // kustomize takes no absolute paths: the repository's root, from the folder.
  const root = "../".repeat(folder.split("/").length - 1) + ROOT.slice(1);
  await Deno.writeTextFile(
    `${folder}/kustomization.yaml`,
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      ...workload.namePrefix ? [`namePrefix: ${workload.namePrefix}`] : [],
      ...workload.nameSuffix ? [`nameSuffix: ${workload.nameSuffix}`] : [],
      "resources: [workload.yaml]",
      `components: [${root}${component}]`,
      "patches: [{ path: log-probe.yaml }]",
      "",
    ].join("\n"),
  );
  return folder;
}

/** The four handlers a liveness probe can have, each as a chart might write it. */
export const PROBE_HANDLERS: Record<string, Record<string, unknown>> = {
  httpGet: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 10 },
  tcpSocket: { tcpSocket: { port: 7000 }, failureThreshold: 3 },
  grpc: { grpc: { port: 7001 }, initialDelaySeconds: 5 },
  exec: { exec: { command: ["/bin/health"] }, timeoutSeconds: 3, successThreshold: 1 },
};

/**
 * The workloads the adoption tests render and the API server admits: a
 * Deployment with each kind of liveness probe, one that uses the names earlier
 * releases took, one of each other kind, and one under a name prefix and suffix.
 */
export const WORKLOADS: Workload[] = [
  ...Object.entries(PROBE_HANDLERS).map(([handler, livenessProbe]) => ({
    name: `probe-${handler.toLowerCase()}`,
    kind: "Deployment" as const,
    container: "app",
    livenessProbe,
  })),
  {
    name: "old-names",
    kind: "Deployment",
    container: "app",
    before: ["proxy"],
    // What 0.3.0's first cut took: a volume deno (here the app's PVC) and log-probe,
    // /opt/deno, DENO_DIR (a Deno app's cache), POD_NAME from the downward API.
    extra: {
      env: [
        { name: "DENO_DIR", value: "/opt/deno/cache" },
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      ],
      volumeMounts: [
        { name: "deno", mountPath: "/opt/deno" },
        { name: "log-probe", mountPath: "/var/lib/app-log-probe" },
      ],
    },
    volumes: [
      { name: "deno", persistentVolumeClaim: { claimName: "deno-cache" } },
      { name: "log-probe", emptyDir: { sizeLimit: "16Mi" } },
    ],
    objects: [{
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "deno-cache" },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
    }],
  },
  { name: "consumer", kind: "StatefulSet", container: "consumer" },
  { name: "shipper", kind: "DaemonSet", container: "shipper", noResources: true },
  { name: "backfill", kind: "Job", container: "backfill" },
  { name: "nightly", kind: "CronJob", container: "report", livenessProbe: PROBE_HANDLERS.exec },
  {
    name: "prefixed",
    kind: "Deployment",
    container: "app",
    namePrefix: "prod-",
    nameSuffix: "-eu",
  },
];
