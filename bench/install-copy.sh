#!/usr/bin/env bash
# How long log-probe-install-deno's copy takes under its own limits: runs
# manifests/install-deno.sh (Deno, env, their loader and libraries) into a
# fresh folder on disk as user 65532, inside a cgroup with a CPU quota and a
# memory limit, as the kubelet would for the init container, with the local
# Deno standing in for the official image's. Prints one line per setting (the
# median of 5 runs) and writes them to bench/install-copy.txt. Root, and a
# writable cgroup hierarchy (v1 cpu and memory, or v2), needed; the page cache
# is warm (a node's first pod also reads the image from disk).
#
#   bash bench/install-copy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
deno_dir=$(dirname "$(readlink -f tools/node_modules/.bin/deno)")
out=bench/install-copy.txt
runs=5
name=log-probe-bench-copy-$$

if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  cg=/sys/fs/cgroup/$name
  mkdir "$cg"
  limit() { # CPU_MILLI MEMORY_BYTES
    echo "$(($1 * 100)) 100000" >"$cg/cpu.max"
    echo "$2" >"$cg/memory.max"
  }
  procs="$cg/cgroup.procs"
  cleanup() { rmdir "$cg"; }
else
  cpu=/sys/fs/cgroup/cpu/$name
  memory=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)/$name
  mkdir "$cpu" "$memory"
  limit() {
    echo 100000 >"$cpu/cpu.cfs_period_us"
    echo "$(($1 * 100))" >"$cpu/cpu.cfs_quota_us"
    echo "$2" >"$memory/memory.limit_in_bytes"
  }
  procs="$cpu/cgroup.procs $memory/cgroup.procs"
  cleanup() { rmdir "$cpu" "$memory"; }
fi
trap cleanup EXIT

copy_ms() { # one copy in the cgroup, in milliseconds
  local dir start
  dir=$(mktemp -d /var/tmp/log-probe-copy-XXXXXX)
  chmod 777 "$dir"
  start=$(date +%s%N)
  # The shell joins the cgroups, then becomes the copy.
  sh -c "for f in $procs; do echo \$\$ >\$f; done; exec env -i PATH=$deno_dir:/usr/bin:/bin \
    setpriv --reuid=65532 --regid=65532 --clear-groups sh manifests/install-deno.sh $dir" >&2
  local ms=$((($(date +%s%N) - start) / 1000000))
  [ "$(du -sm "$dir" | cut -f1)" -gt 50 ] || { echo "install-copy: the copy failed" >&2 && exit 1; }
  echo "$ms"
  rm -rf "$dir"
}

: >"$out.tmp"
# The init container's limits (100m, 64Mi), then more CPU for comparison.
for setting in "100 67108864" "200 67108864" "1000 134217728"; do
  read -r milli bytes <<<"$setting"
  limit "$milli" "$bytes"
  times=$(for _ in $(seq $runs); do copy_ms; done | sort -n)
  median=$(sed -n "$(((runs + 1) / 2))p" <<<"$times")
  line="cpu ${milli}m, memory $((bytes / 1048576))Mi: median ${median} ms of $runs ($(tr '\n' ' ' <<<"$times")ms)"
  echo "$line" | tee -a "$out.tmp"
done
{
  echo "# bench/install-copy.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)"
  cat "$out.tmp"
} >"$out"
rm "$out.tmp"
