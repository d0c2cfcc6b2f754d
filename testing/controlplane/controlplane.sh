#!/usr/bin/env bash
# A real control plane on one loopback address, without a node, for
# manifests/admission_e2e_test.ts: etcd (embedded go.etcd.io/etcd/server/v3) and
# kube-apiserver built from k8s.io/kubernetes. node.sh sources it for the same
# certificates and components, and adds the node.
#
#   controlplane.sh build                 build once into the cache, print its folder
#   controlplane.sh up DIR IP             certificates, etcd, kube-apiserver; DIR/kubeconfig
#   controlplane.sh start DIR IP WHAT     start etcd|apiserver again
#   controlplane.sh stop DIR WHAT         stop etcd|apiserver
#   controlplane.sh down DIR              stop everything
#
# IP is an address in 127.0.0.0/8: kube-apiserver serves on IP:443 (the probe's
# kubernetes.default.svc), etcd on IP:2379 and IP:2380.
# Binaries are cached in ${XDG_CACHE_HOME:-~/.cache}/log-probe-e2e/<hash of this
# folder's sources>; the first build takes long (see the README).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH="$PATH:/usr/local/go/bin"

bin_dir() {
  local hash
  hash=$( (cd "$here" && cat go.mod go.sum ./*/*.go tools.go && declare -f build version_ldflags) |
    sha256sum | cut -c1-16)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/log-probe-e2e/$hash"
}

version_ldflags() { # what `kubectl version` and the probe's doctor show: the module's version
  local version
  version=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$here/go.mod")
  version=${version#v}
  echo "-X k8s.io/component-base/version.gitVersion=v$version" \
    "-X k8s.io/component-base/version.gitMajor=${version%%.*}" \
    "-X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")"
}

build() {
  local out tmp started
  out=$(bin_dir)
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
    echo "$out"
    return
  fi
  command -v go >/dev/null || { echo "controlplane: no go on PATH" >&2; return 1; }
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp -d "$out.tmp-XXXXXX")
  started=$(date +%s)
  echo "controlplane: building kube-apiserver and etcd into $out (first time: long)" >&2
  (cd "$here" && GOFLAGS=-mod=mod GOTOOLCHAIN=local nice go build -trimpath -ldflags="-s -w $(version_ldflags)" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver ./etcd) >&2
  echo "controlplane: built in $(($(date +%s) - started))s" >&2
  rm -rf "$out"
  mv "$tmp" "$out"
  # Builds of other sources, a day old (another checkout may be using a newer one).
  find "$(dirname "$out")" -mindepth 1 -maxdepth 1 ! -path "$out" -mmin +1440 -exec rm -rf {} +
  echo "$out"
}

cert() { # NAME SUBJECT EXT: a key and a certificate signed by DIR's CA
  local name=$1 subject=$2 ext=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" \
    -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%s\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -out "$name.crt" -extfile "$name.ext" 2>/dev/null
  rm "$name.csr" "$name.ext"
}

pki() { # DIR IP
  local dir=$1 ip=$2
  mkdir -p "$dir/pki"
  (
    cd "$dir/pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
      -out ca.crt -days 2 -subj "/CN=log-probe-e2e-ca" 2>/dev/null
    cert apiserver /CN=kube-apiserver "subjectAltName=DNS:kubernetes.default.svc,DNS:kubernetes.default,DNS:kubernetes,DNS:localhost,IP:$ip
extendedKeyUsage=serverAuth"
    cert admin "/O=system:masters/CN=e2e-admin" "extendedKeyUsage=clientAuth"
    cert kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      "extendedKeyUsage=clientAuth"
    openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://$ip:443
    certificate-authority: $dir/pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $dir/pki/admin.crt
    client-key: $dir/pki/admin.key
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
KUBECONFIG
}

wait_for() { # WHAT SECONDS COMMAND...: until COMMAND succeeds
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "controlplane: $what did not become ready in ${seconds}s" >&2
  return 1
}

start() { # DIR IP WHAT
  local dir=$1 ip=$2 what=$3 bin p
  bin=$(bin_dir)
  p=$dir/pki
  case $what in
  etcd)
    "$bin/etcd" --data-dir "$dir/etcd" --listen-client "http://$ip:2379" \
      --listen-peer "http://$ip:2380" >>"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"
    wait_for etcd 60 curl -sf "http://$ip:2379/health"
    ;;
  apiserver)
    "$bin/kube-apiserver" \
      --etcd-servers="http://$ip:2379" \
      --bind-address="$ip" --secure-port=443 --advertise-address="$ip" \
      --endpoint-reconciler-type=none \
      --service-cluster-ip-range=10.0.0.0/24 \
      --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
      --client-ca-file="$p/ca.crt" \
      --service-account-issuer=https://kubernetes.default.svc \
      --service-account-key-file="$p/sa.pub" \
      --service-account-signing-key-file="$p/sa.key" \
      --authorization-mode=Node,RBAC \
      --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,ResourceQuota,NodeRestriction \
      --kubelet-client-certificate="$p/kubelet-client.crt" \
      --kubelet-client-key="$p/kubelet-client.key" \
      --kubelet-certificate-authority="$p/ca.crt" \
      --kubelet-preferred-address-types=InternalIP \
      --cert-dir="$dir/apiserver-certs" \
      --profiling=false \
      >>"$dir/apiserver.log" 2>&1 &
    echo $! >"$dir/apiserver.pid"
    wait_for kube-apiserver 180 curl -sf --cacert "$p/ca.crt" --cert "$p/admin.crt" \
      --key "$p/admin.key" "https://$ip:443/readyz"
    ;;
  *) echo "controlplane: start etcd|apiserver, not $what" >&2 && return 2 ;;
  esac
}

stop() { # DIR WHAT
  local pidfile=$1/$2.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  rm -f "$pidfile"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# Sourced by node.sh for its functions; run, it does what the header says.
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

case ${1:-} in
build) build ;;
up)
  dir=$2 ip=$3
  build >/dev/null
  pki "$dir" "$ip"
  start "$dir" "$ip" etcd
  start "$dir" "$ip" apiserver
  ;;
start) start "$2" "$3" "$4" ;;
stop) stop "$2" "$3" ;;
down) for what in apiserver etcd; do stop "$2" "$what"; done ;;
*)
  sed -n '2,16p' "$0" >&2
  exit 2
  ;;
esac
