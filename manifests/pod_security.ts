/**
 * The rules of the Pod Security Standards "restricted" profile (Kubernetes
 * 1.25+, `pod-security.kubernetes.io/enforce: restricted`) that a pod template
 * can break, checked on a rendered pod spec, and the per-container rule a
 * ResourceQuota enforces at admission. Test helpers for the manifests' tests.
 *
 * @module
 */
import type { Manifest } from "../testing/kubelet.ts";

/** Options of {@linkcode restrictedViolations}. */
export interface RestrictedOptions {
  /**
   * Also require `readOnlyRootFilesystem: true` of these containers (not a
   * Pod Security rule; what log-probe's own examples promise).
   */
  readOnlyRoot?: (container: Manifest) => boolean;
}

const VOLUME_TYPES = [
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "image", // allowed by pod-security-admission v0.37.2's restricted check (Kubernetes 1.33+ volumes)
  "persistentVolumeClaim",
  "projected",
  "secret",
];

/** Each way `podSpec` breaks the "restricted" profile, one line each; none when it passes. */
export function restrictedViolations(podSpec: Manifest, options: RestrictedOptions = {}): string[] {
  const problems: string[] = [];
  const pod = podSpec.securityContext ?? {};
  for (const field of ["hostNetwork", "hostPID", "hostIPC"]) {
    if (podSpec[field]) problems.push(field);
  }
  for (const volume of podSpec.volumes ?? []) {
    const type = Object.keys(volume).find((key) => key !== "name");
    if (!VOLUME_TYPES.includes(type!)) problems.push(`volume ${volume.name} is ${type}`);
  }
  if (pod.seccompProfile?.type === "Unconfined") problems.push("pod: seccomp Unconfined");
  if (pod.runAsUser === 0) problems.push("pod: runAsUser 0");
  const containers = [
    ...(podSpec.initContainers ?? []),
    ...podSpec.containers,
    ...(podSpec.ephemeralContainers ?? []),
  ];
  for (const container of containers) {
    const sc = container.securityContext ?? {};
    const where = `container ${container.name}`;
    if (sc.privileged) problems.push(`${where}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: privilege escalation`);
    if (sc.runAsNonRoot === false || !(sc.runAsNonRoot ?? pod.runAsNonRoot)) {
      problems.push(`${where}: may run as root`);
    }
    if ((sc.runAsUser ?? pod.runAsUser) === 0) problems.push(`${where}: runAsUser 0`);
    const seccomp = (sc.seccompProfile ?? pod.seccompProfile)?.type;
    if (!["RuntimeDefault", "Localhost"].includes(seccomp)) problems.push(`${where}: seccomp`);
    if (!sc.capabilities?.drop?.includes("ALL")) {
      problems.push(`${where}: capabilities not dropped`);
    }
    for (const cap of sc.capabilities?.add ?? []) {
      if (cap !== "NET_BIND_SERVICE") problems.push(`${where}: adds ${cap}`);
    }
    if (container.ports?.some((p: Manifest) => p.hostPort)) problems.push(`${where}: hostPort`);
    if (options.readOnlyRoot?.(container) && !sc.readOnlyRootFilesystem) {
      problems.push(`${where}: writable root file system`);
    }
  }
  return problems;
}

/**
 * What a ResourceQuota with `quota.spec.hard` rejects in `podSpec`: with
 * `limits.cpu` (say) in `hard`, every container and init container must set
 * that limit ("must specify limits.cpu").
 */
export function quotaViolations(podSpec: Manifest, quota: Manifest): string[] {
  const problems: string[] = [];
  const tracked = Object.keys(quota.spec.hard).flatMap((key) => {
    const [kind, resource] = key.includes(".") ? key.split(/\.(.*)/) : ["requests", key];
    return ["requests", "limits"].includes(kind) && ["cpu", "memory"].includes(resource)
      ? [[kind, resource]]
      : [];
  });
  for (const container of [...(podSpec.initContainers ?? []), ...podSpec.containers]) {
    for (const [kind, resource] of tracked) {
      if (container.resources?.[kind]?.[resource] === undefined) {
        problems.push(`container ${container.name}: must specify ${kind}.${resource}`);
      }
    }
  }
  return problems;
}
