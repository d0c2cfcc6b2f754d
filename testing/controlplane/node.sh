#!/usr/bin/env bash
# A real Kubernetes node for testing/e2e_test.ts, testing/node_e2e_test.ts and
# bench/node.ts: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# a cluster DNS, containerd, runc, the CNI bridge plugin and the kubelet, all
# built from their Go modules, running in network, mount and PID namespaces of
# their own. NODE_LOG_MAX_SIZE at `up` sets containerLogMaxSize (4Ki).
#
#   node.sh build             build once into the cache, print its folder
#   node.sh up DIR            start the node; DIR/kubeconfig; DIR/holder.pid
#   node.sh exec DIR CMD...   run CMD in the node's network, mount and PID namespaces
#   node.sh stop DIR kubelet|apiserver    stop one component (the pods keep running)
#   node.sh start DIR kubelet|apiserver   start it again, and wait until it answers
#   node.sh down DIR          stop everything, remove its cgroups, check the host
#   node.sh leftovers DIR     what the node left on the host (nothing: no output)
#   node.sh check             why this machine cannot run a node (no output: it can)
#
# Inside its network namespace the node has one address, 10.254.0.1 on lo, and a
# bridge for its pods: nothing can leave it. In its mount namespace /run is a
# tmpfs, /var/lib and /var/log are DIR/var-lib and DIR/var-log, and the sysctls
# the kubelet sets are read-only files holding the values it wants, so the
# host's never change. The kubelet's cgroups live under /log-probe-<DIR's name>
# in every cgroup v1 hierarchy (and the unified one), removed by `down`.
# Binaries and images are cached in ${XDG_CACHE_HOME:-~/.cache}/log-probe-node/
# <hash of the sources and versions>; the first build takes long (see README).
set -euo pipefail
node_sh=$(cd "$(dirname "$0")" && pwd)/node.sh
# shellcheck source=controlplane.sh
source "$(dirname "$0")/controlplane.sh"

readonly node_ip=10.254.0.1
readonly node_name=e2e-node
readonly pod_subnet=10.88.0.0/24
readonly containerd_module=github.com/containerd/containerd/v2@v2.4.2
readonly runc_module=github.com/opencontainers/runc@v1.5.3
readonly cni_module=github.com/containernetworking/plugins@v1.10.0
readonly deno_image=docker.io/denoland/deno:debian-2.9.6
readonly busybox_image=docker.io/library/busybox:1.37-musl
readonly pause_image=registry.k8s.io/pause:3.10.2
readonly image_volume_image=registry.example.com/log-probe-deno:2.9.6
# The sysctls the kubelet sets (setupKernelTunables), with the values it wants.
readonly sysctls="vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1
kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000"
readonly host_paths="/var/lib/kubelet /var/lib/containerd /run/containerd /var/log/pods /etc/cni
/opt/cni /var/lib/cni /run/netns"

deno_binary() {
  local deno
  deno=$(cd "$here/../.." && pwd)/tools/node_modules/deno/deno
  [ -x "$deno" ] || deno=$(command -v deno)
  echo "$deno"
}

node_bin_dir() {
  local hash
  hash=$( (
    cd "$here" && cat go.mod go.sum ./*/*.go tools.go controlplane.sh
    # What the build does, and with which versions (not the rest of this file).
    declare -f node_build go_install oci_image deb_extract with_libraries images version_ldflags
    grep -E '^readonly [a-z_]+(module|image)=' node.sh
    sha256sum "$(deno_binary)" | cut -c1-64
  ) | sha256sum | cut -c1-16)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/log-probe-node/$hash"
}

check() { # why this machine cannot run the node, on stdout; nothing when it can
  local missing=()
  for tool in go cc pkg-config kubectl openssl curl unshare nsenter ip mount tar sha256sum apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "no ${missing[*]} on PATH"
  elif [ "$(id -u)" != 0 ]; then
    echo "not root (the kubelet, containerd and runc need root)"
  elif ! unshare --net --mount --pid --fork --mount-proc true 2>/dev/null; then
    echo "cannot make network, mount and PID namespaces with unshare"
  elif [ ! -d /sys/fs/cgroup/memory ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "no cgroup memory controller under /sys/fs/cgroup"
  fi
}

go_install() { # GOBIN TAGS MODULE@VERSION PACKAGES...: build commands of another module
  local gobin=$1 tags=$2 module=$3
  shift 3
  local path=${module%@*} version=${module#*@} pkgs=()
  for pkg in "$@"; do pkgs+=("$path$pkg@$version"); done
  (cd "$gobin" && GOBIN=$gobin GOFLAGS= GOTOOLCHAIN=local nice go install -trimpath \
    -ldflags="-s -w" -tags "$tags" "${pkgs[@]}") >&2
}

oci_image() { # NAME ROOTFS OUT CMD: an OCI image layout tarball of one uncompressed layer
  local name=$1 rootfs=$2 out=$3 cmd=$4 work layer config manifest
  work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer" .
  layer=$(sha256sum "$work/layer" | cut -c1-64)
  mv "$work/layer" "$work/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$cmd" "$layer" >"$work/config"
  config=$(sha256sum "$work/config" | cut -c1-64)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config" "$(stat -c %s "$work/config")" "$layer" "$(stat -c %s "$work/blobs/sha256/$layer")" \
    >"$work/manifest"
  manifest=$(sha256sum "$work/manifest" | cut -c1-64)
  mv "$work/config" "$work/blobs/sha256/$config"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$(stat -c %s "$work/manifest")" "$name" "${name##*:}" >"$work/index.json"
  mv "$work/manifest" "$work/blobs/sha256/$manifest"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$work" -cf "$out" oci-layout index.json blobs
  rm -rf "$work"
}

deb_extract() { # PACKAGE DIR: a Debian package's files, extracted (not installed) into DIR
  local package=$1 dir=$2
  mkdir -p "$dir"
  (cd "$dir" && { apt-get download "$package" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get download "$package" >/dev/null; }; })
  dpkg-deb -x "$dir/${package}"_*.deb "$dir"
  rm "$dir/${package}"_*.deb
}

with_libraries() { # ROOTFS BINARY...: copy each binary's libraries and loader (as ldd names them)
  local rootfs=$1 lib
  shift
  for lib in $(ldd "$@" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}

images() { # OUT: the images the node needs, as OCI tarballs (no registry is reachable)
  local out=$1 work applet
  work=$(mktemp -d)
  deb_extract busybox-static "$work/deb"
  mv "$work/deb/bin/busybox" "$work/busybox.bin"
  # busybox:1.37-musl, the example worker's image: Debian's busybox-static stands in.
  mkdir -p "$work/busybox/bin"
  cp "$work/busybox.bin" "$work/busybox/bin/busybox"
  for applet in sh echo sleep cat ls cp rm mkdir date head tail true false env yes seq dd; do
    ln -s busybox "$work/busybox/bin/$applet"
  done
  mkdir -p "$work/busybox/tmp" && chmod 1777 "$work/busybox/tmp"
  oci_image "$busybox_image" "$work/busybox" "$out/busybox.tar" '["sh"]'
  # denoland/deno:debian-2.9.6: what install-deno.sh needs (sh, ldd, cp, rm, env and Deno
  # on the PATH), made from the npm Deno binary and this machine's Debian programs (dash as
  # sh, as in the Debian image: busybox's sh answers `command -v env` with "env").
  mkdir -p "$work/deno/usr/bin" "$work/deno/usr/lib" "$work/deno/usr/lib64" "$work/deno/tmp"
  chmod 1777 "$work/deno/tmp"
  for dir in bin lib lib64; do ln -s "usr/$dir" "$work/deno/$dir"; done
  local programs=(/usr/bin/dash /usr/bin/bash /usr/bin/ldd /usr/bin/env /usr/bin/cp /usr/bin/rm
    /usr/bin/cat /usr/bin/ls /usr/bin/mkdir)
  cp "${programs[@]}" "$work/deno/usr/bin/"
  ln -s dash "$work/deno/usr/bin/sh"
  cp "$(deno_binary)" "$work/deno/usr/bin/deno"
  with_libraries "$work/deno" /usr/bin/dash /usr/bin/bash /usr/bin/env /usr/bin/cp /usr/bin/rm \
    /usr/bin/cat /usr/bin/ls /usr/bin/mkdir "$(deno_binary)"
  chmod -R a+rX "$work/deno"
  oci_image "$deno_image" "$work/deno" "$out/deno.tar" '["deno","--version"]'
  # examples/image-volume's image, as its Dockerfile makes it: install-deno.sh's copy at the root.
  mkdir -p "$work/volume"
  PATH="$(dirname "$(deno_binary)"):$PATH" sh "$here/../../manifests/install-deno.sh" "$work/volume"
  chmod -R a+rX "$work/volume"
  oci_image "$image_volume_image" "$work/volume" "$out/image-volume.tar" '["/deno"]'
  # registry.k8s.io/pause, the sandbox: pause/main.go, static.
  mkdir -p "$work/pause"
  cp "$out/pause" "$work/pause/pause"
  oci_image "$pause_image" "$work/pause" "$out/pause.tar" '["/pause"]'
  rm -rf "$work"
}

node_build() {
  local out tmp started
  build >/dev/null # the control plane's binaries (controlplane.sh)
  out=$(node_bin_dir)
  if [ -f "$out/complete" ]; then
    echo "$out"
    return
  fi
  command -v go >/dev/null || { echo "node: no go on PATH" >&2 && return 1; }
  local reason
  reason=$(check)
  if [ -n "$reason" ]; then # the control plane alone still serves the admission test
    echo "node: not built: $reason" >&2
    return 0
  fi
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp -d "$out.tmp-XXXXXX")
  started=$(date +%s)
  echo "node: building the kubelet, controller-manager, scheduler, containerd, runc and CNI into $out" >&2
  (cd "$here" && GOFLAGS=-mod=mod GOTOOLCHAIN=local nice go build -trimpath \
    -ldflags="-s -w $(version_ldflags)" -o "$tmp/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler) >&2
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local nice go build -trimpath \
    -ldflags="-s -w" -o "$tmp/" ./dns ./pause) >&2
  go_install "$tmp" "no_btrfs no_devmapper no_zfs" "$containerd_module" \
    /cmd/containerd /cmd/containerd-shim-runc-v2 /cmd/ctr
  # runc's seccomp (RuntimeDefault) links libseccomp: Debian's static library, not installed.
  local seccomp pc
  seccomp=$(mktemp -d)
  deb_extract libseccomp-dev "$seccomp"
  pc=$(dirname "$(find "$seccomp" -name libseccomp.pc)")
  rm -f "$(dirname "$pc")/libseccomp.so"
  PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$seccomp go_install "$tmp" seccomp "$runc_module" ""
  rm -rf "$seccomp"
  mkdir -p "$tmp/cni"
  CGO_ENABLED=0 go_install "$tmp/cni" "" "$cni_module" /plugins/main/bridge /plugins/main/loopback \
    /plugins/ipam/host-local
  images "$tmp"
  echo "node: built in $(($(date +%s) - started))s" >&2
  touch "$tmp/complete"
  rm -rf "$out"
  mv "$tmp" "$out"
  # Builds of other sources, a day old (another checkout may be using a newer one).
  find "$(dirname "$out")" -mindepth 1 -maxdepth 1 ! -path "$out" -mmin +1440 -exec rm -rf {} +
  echo "$out"
}

cgroup_root() { # DIR: the kubelet's cgroupRoot for this node
  echo "/log-probe-$(basename "$1")"
}

cgroup_dirs() { # DIR: the node's cgroup folder in each hierarchy, where it exists
  local root
  root=$(cgroup_root "$1")
  awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo 2>/dev/null |
    while read -r mnt; do [ -d "$mnt$root" ] && echo "$mnt$root"; done
  true
}

host_state() { # the host's state the node must not change: sysctls, paths, addresses
  local entry
  for entry in $sysctls; do echo "sysctl ${entry%%=*}=$(cat "/proc/sys/${entry%%=*}" 2>/dev/null)"; done
  for path in $host_paths; do [ -e "$path" ] && echo "path $path exists"; done
  ip -o addr show | awk '{ print "address", $2, $4 }'
  ip -o link show | awk -F': ' '{ print "link", $2 }' | cut -d@ -f1
}

leftovers() { # DIR: processes, mounts, cgroups and host changes the node left
  local dir=$1 bin pid exe
  bin=$(node_bin_dir)
  for pid in /proc/[0-9]*; do
    exe=$(readlink "$pid/exe" 2>/dev/null || true)
    case $exe in "$bin"/* | "$(bin_dir)"/*) echo "process ${pid#/proc/} $exe" ;; esac
  done
  grep -E " ($dir|/var/lib/kubelet|/var/lib/containerd|/run/containerd|/var/log/pods|/run/netns)[/ ]" \
    /proc/self/mountinfo | awk '{ print "mount", $5 }' || true
  cgroup_dirs "$dir" | sed 's/^/cgroup /'
  if [ -f "$dir/host-before" ]; then
    diff <(sort "$dir/host-before") <(host_state | sort) | grep '^[<>]' | sed 's/^/host changed: /' || true
  fi
}

kubelet_pki() { # DIR: the kubelet's serving and client certificates, the components' kubeconfigs
  local dir=$1
  (
    cd "$dir/pki"
    cert node "/O=system:nodes/CN=system:node:$node_name" "subjectAltName=IP:$node_ip
extendedKeyUsage=serverAuth"
    cert kubelet "/O=system:nodes/CN=system:node:$node_name" "extendedKeyUsage=clientAuth"
  )
  sed -e "s|$dir/pki/admin|$dir/pki/kubelet|g" "$dir/kubeconfig" >"$dir/kubelet.kubeconfig"
}

write_configs() { # DIR BIN: containerd's, the CNI's and the kubelet's configuration
  local dir=$1 bin=$2
  mkdir -p "$dir/cni" "$dir/var-lib" "$dir/var-log" "$dir/sysctl" "$dir/volume-plugins"
  cat >"$dir/containerd.toml" <<TOML
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below containerd's.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$bin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$bin/cni"]
    conf_dir = "$dir/cni"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$pause_image"
TOML
  cat >"$dir/cni/10-bridge.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "e2e", "plugins": [{"type": "bridge", "bridge": "cni0",
  "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local",
  "ranges": [[{"subnet": "$pod_subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
JSON
  echo "nameserver $node_ip" >"$dir/resolv.conf"
  cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: $node_ip
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $dir/pki/node.crt
tlsPrivateKeyFile: $dir/pki/node.key
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
# cgroup v1 (this machine's hybrid layout): accepted, not failed.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $(cgroup_root "$dir")
podLogsDir: /var/log/pods
volumePluginDir: $dir/volume-plugins
clusterDNS: [$node_ip]
clusterDomain: cluster.local
resolvConf: $dir/resolv.conf
failSwapOn: false
# Rotation at its smallest: the kubelet checks every 3s and rotates past 4 KiB.
containerLogMaxSize: ${NODE_LOG_MAX_SIZE:-4Ki}
containerLogMaxFiles: 2
containerLogMonitorInterval: 3s
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
YAML
}

wait_node_ready() { # DIR
  kubectl --kubeconfig "$1/kubeconfig" wait --for=condition=Ready "node/$node_name" --timeout=5s
}

start_kubelet() { # DIR: the kubelet, in the background (inside the node's namespaces)
  local dir=$1
  "$(node_bin_dir)/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubelet.kubeconfig" \
    --hostname-override="$node_name" --node-ip="$node_ip" --v="${NODE_KUBELET_V:-2}" \
    </dev/null >>"$dir/kubelet.log" 2>&1 &
  echo $! >"$dir/kubelet.pid"
}

inside() { # DIR: PID 1 of the node's namespaces: mounts, then every component, then wait
  local dir=$1 bin cp_bin entry name
  bin=$(node_bin_dir)
  cp_bin=$(bin_dir)
  export PATH="$bin:$PATH"
  ip link set lo up
  ip addr add "$node_ip/32" dev lo
  mount -t tmpfs -o mode=755 tmpfs /run
  mount --bind "$dir/var-lib" /var/lib
  mount --bind "$dir/var-log" /var/log
  for entry in $sysctls; do
    name=${entry%%=*}
    echo "${entry#*=}" >"$dir/sysctl/${name//\//.}"
    mount --bind -o ro "$dir/sysctl/${name//\//.}" "/proc/sys/$name"
  done
  start "$dir" "$node_ip" etcd
  start "$dir" "$node_ip" apiserver
  "$bin/dns" --listen "$node_ip:53" --answer "kubernetes.default.svc.cluster.local=$node_ip" \
    >>"$dir/dns.log" 2>&1 &
  "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --bind-address="$node_ip" --secure-port=10257 --cert-dir="$dir/kcm-certs" \
    --root-ca-file="$dir/pki/ca.crt" --service-account-private-key-file="$dir/pki/sa.key" \
    --use-service-account-credentials=false --profiling=false \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    >>"$dir/controller-manager.log" 2>&1 &
  "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --bind-address="$node_ip" --secure-port=10259 --cert-dir="$dir/scheduler-certs" --profiling=false \
    --authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
    >>"$dir/scheduler.log" 2>&1 &
  "$bin/containerd" --config "$dir/containerd.toml" >>"$dir/containerd.log" 2>&1 &
  wait_for containerd 60 "$bin/ctr" --address /run/containerd/containerd.sock version
  for image in pause busybox deno image-volume; do
    "$bin/ctr" --address /run/containerd/containerd.sock -n k8s.io images import \
      --snapshotter overlayfs "$bin/$image.tar" >>"$dir/images.log" 2>&1
  done
  start_kubelet "$dir"
  wait_for "the node" 120 wait_node_ready "$dir"
  : >"$dir/ready"
  sleep infinity &
  wait
}

up() { # DIR
  local dir=$1 bin reason holder root mnt
  reason=$(check)
  [ -z "$reason" ] || { echo "node: cannot run here: $reason" >&2 && return 3; }
  bin=$(node_bin_dir)
  [ -f "$bin/complete" ] || { echo "node: not built (node.sh build)" >&2 && return 1; }
  mkdir -p "$dir"
  host_state >"$dir/host-before"
  pki "$dir" "$node_ip"
  kubelet_pki "$dir"
  write_configs "$dir" "$bin"
  root=$(cgroup_root "$dir")
  awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo | while read -r mnt; do
    mkdir -p "$mnt$root"
    if [ -f "$mnt/cpuset.cpus" ]; then # a new cpuset cgroup starts empty
      cat "$mnt/cpuset.cpus" >"$mnt$root/cpuset.cpus"
      cat "$mnt/cpuset.mems" >"$mnt$root/cpuset.mems"
    fi
  done
  setsid unshare --net --mount --pid --fork --mount-proc --kill-child \
    bash "$node_sh" _inside "$dir" </dev/null >>"$dir/node.log" 2>&1 &
  holder=$!
  echo "$holder" >"$dir/holder.pid"
  for _ in $(seq 1500); do
    [ -f "$dir/ready" ] && break
    if ! kill -0 "$holder" 2>/dev/null; then
      echo "node: did not come up; the end of $dir/node.log:" >&2
      tail -n 20 "$dir/node.log" >&2
      return 1
    fi
    sleep 0.2
  done
  [ -f "$dir/ready" ] || { echo "node: not ready in 300s (logs in $dir)" >&2 && return 1; }
  cat "/proc/$holder/task/$holder/children" | awk '{ print $1 }' >"$dir/init.pid"
}

node_exec() { # DIR CMD...
  local dir=$1
  shift
  nsenter --target "$(cat "$dir/init.pid")" --net --mount --pid --wd="$PWD" -- "$@"
}

down() { # DIR: kill the namespaces' PID 1 (the kernel kills the rest), remove cgroups, check
  local dir=$1 holder init left
  holder=$(cat "$dir/holder.pid" 2>/dev/null || true)
  init=$(cat "$dir/init.pid" 2>/dev/null || true)
  [ -z "$init" ] && [ -n "$holder" ] &&
    init=$(awk '{ print $1 }' "/proc/$holder/task/$holder/children" 2>/dev/null || true)
  [ -n "$init" ] && kill -KILL "$init" 2>/dev/null || true
  [ -n "$holder" ] && kill -KILL "$holder" 2>/dev/null || true
  for _ in $(seq 100); do
    [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  for _ in $(seq 50); do # a killed process leaves its cgroup once the kernel has reaped it
    cgroup_dirs "$dir" | while read -r cg; do find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null; done
    [ -z "$(cgroup_dirs "$dir")" ] && break
    sleep 0.2
  done
  rm -f "$dir/holder.pid" "$dir/init.pid" "$dir/ready"
  left=$(leftovers "$dir")
  if [ -n "$left" ]; then
    echo "node: left on the host:" >&2
    echo "$left" >&2
    return 1
  fi
}

case ${1:-} in
build) node_build ;;
check) check ;;
up) up "$2" ;;
exec)
  dir=$2
  shift 2
  node_exec "$dir" "$@"
  ;;
down) down "$2" ;;
leftovers) leftovers "$2" ;;
_inside) inside "$2" ;;
stop) node_exec "$2" bash "$node_sh" _stop "$2" "$3" ;;
start) node_exec "$2" bash "$node_sh" _start "$2" "$3" ;;
_stop) # inside: the pid files hold the namespace's PIDs
  case $3 in kubelet | apiserver) stop "$2" "$3" ;; *) echo "node: stop kubelet|apiserver" >&2 && exit 2 ;; esac
  ;;
_start)
  case $3 in
  kubelet)
    start_kubelet "$2"
    wait_for "the kubelet" 60 curl -sf "http://$node_ip:10248/healthz"
    ;;
  apiserver) start "$2" "$node_ip" apiserver ;;
  *) echo "node: start kubelet|apiserver" >&2 && exit 2 ;;
  esac
  ;;
_images) images "$2" ;; # for debugging: the image tarballs into $2 (needs $2/pause)
*)
  sed -n '2,24p' "$0" >&2
  exit 2
  ;;
esac
