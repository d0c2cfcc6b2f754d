#!/bin/sh
# log-probe's Helm post-renderer: adds log-probe to the workloads of a chart
# that its arguments name, as the components do for a kustomization of your
# own; reads the rendered chart on stdin, writes it to stdout. Each argument:
#
#   KIND/NAME=CONTAINER          e.g. Deployment/shop-worker=worker
#   KIND/NAME=BEFORE,…,CONTAINER the containers listed before yours, then yours
#
# KIND is Deployment, StatefulSet, DaemonSet, Job or CronJob, NAME the
# workload's name as `helm template` prints it. Helm 4 (a plugin, see
# plugin.yaml):
#   helm install shop ./chart --post-renderer log-probe --post-renderer-args Deployment/shop-worker=worker
# Helm 3: --post-renderer ./log-probe/helm/log-probe/post-render.sh, same arguments.
# Needs kubectl (kustomize) and the checkout this file is in. Helm 4 hides a
# post-renderer's error line; to read it, run this by hand on `helm template`'s
# output: helm template shop ./chart | ./log-probe/helm/log-probe/post-render.sh ARGS
set -eu
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
fail() {
  echo "log-probe post-renderer: $*" >&2
  exit 1
}
[ $# -gt 0 ] || fail "name a workload: KIND/NAME=CONTAINER, e.g. Deployment/shop-worker=worker"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/chart.yaml"
dns='^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - chart.yaml"
} >"$tmp/kustomization.yaml"
: >"$tmp/patches" && : >"$tmp/replacements" && : >"$tmp/resources"
i=0
for arg in "$@"; do
  i=$((i + 1))
  kind=${arg%%/*}
  rest=${arg#*/}
  name=${rest%%=*}
  containers=${rest#*=}
  container=${containers##*,}
  case $kind in
  Deployment) component=log-probe group=apps spec=spec.template.spec ;;
  StatefulSet) component=log-probe-statefulset group=apps spec=spec.template.spec ;;
  DaemonSet) component=log-probe-daemonset group=apps spec=spec.template.spec ;;
  Job) component=log-probe-job group=batch spec=spec.template.spec ;;
  CronJob) component=log-probe-cronjob group=batch spec=spec.jobTemplate.spec.template.spec ;;
  *) fail "$arg: KIND must be Deployment, StatefulSet, DaemonSet, Job or CronJob" ;;
  esac
  [ "$rest" != "$arg" ] && [ "$containers" != "$rest" ] ||
    fail "$arg: write KIND/NAME=CONTAINER"
  for value in "$name" $(echo "$containers" | tr ',' ' '); do
    echo "$value" | grep -Eq "$dns" || fail "$arg: invalid name $value"
  done
  from="$root/components/$component"
  dir="$tmp/w$i"
  mkdir "$dir"
  cp "$from/pod.yaml" "$dir/pod.yaml"
  # The copy of container.yaml a kustomization would hold: the names set.
  awk -v name="$name" -v containers="$containers" -v container="$container" '
    /# ① your workload$/ { sub(/name: worker/, "name: " name) }
    /- name: worker # ② your container$/ {
      indent = substr($0, 1, index($0, "-") - 1)
      n = split(containers, listed, ",")
      for (j = 1; j < n; j++) print indent "- name: " listed[j]
      sub(/name: worker/, "name: " container)
    }
    /--container=worker # ②/ { sub(/--container=worker/, "--container=" container) }
    { print }
  ' "$from/container.yaml" >"$dir/container.yaml"
  sed "s/name: log-probe-WORKLOAD/name: log-probe-$name/" "$from/rolebinding.yaml" >"$dir/rolebinding.yaml"
  echo "  - w$i/rolebinding.yaml" >>"$tmp/resources"
  cat >>"$tmp/patches" <<PATCHES
  - path: w$i/pod.yaml
    target: { group: $group, kind: $kind, name: "^$name\$" }
  - path: w$i/container.yaml
    target: { group: $group, kind: $kind, name: "^$name\$" }
PATCHES
  cat >>"$tmp/replacements" <<REPLACEMENTS
  - source: { kind: $kind, name: $name, fieldPath: $spec.serviceAccountName }
    targets:
      - select: { kind: RoleBinding, name: log-probe-$name }
        fieldPaths: [subjects.0.name]
REPLACEMENTS
done
{
  cat "$tmp/resources"
  echo "patches:"
  cat "$tmp/patches"
  echo "replacements:"
  cat "$tmp/replacements"
} >>"$tmp/kustomization.yaml"
kubectl kustomize "$tmp" >"$tmp/out.yaml" 2>"$tmp/err" ||
  fail "kubectl kustomize: $(cat "$tmp/err")"
# Every named workload must be in the chart and run as an account of its own:
# binding the namespace's default account would give the Role to every pod
# without one (most charts: serviceAccount.create=true).
for arg in "$@"; do
  name=${arg#*/}
  name=${name%%=*}
  grep -q "^  name: log-probe-$name\$" "$tmp/out.yaml" || fail "$arg: no RoleBinding made"
done
awk '
  /^---/ { binding = 0; ours = 0; subjects = 0 }
  /^kind: RoleBinding$/ { binding = 1 }
  binding && /^  name: log-probe-/ { ours = 1 }
  /^subjects:/ { subjects = 1 }
  ours && subjects && /^  name: default$/ { bad = 1 }
  END { exit bad }
' "$tmp/out.yaml" ||
  fail "a named workload runs as the namespace's default account: give it its own (serviceAccountName)"
cat "$tmp/out.yaml"
