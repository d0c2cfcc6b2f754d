#!/usr/bin/env bash
# Runs one command the way the kubelet runs a container's command or exec probe:
# a read-only root, a fresh /dev and /proc, the pod's volumes mounted at their
# mountPaths, a non-root user, no new privileges. Run it as root inside new
# mount and PID namespaces, so every mount and process is gone when it ends:
#
#   unshare --mount --pid --fork --propagation private \
#     bash sandbox.sh ROOT UID MOUNTS ENV IMAGE -- COMMAND...
#
# ROOT is an empty temporary folder; MOUNTS is a file of lines
# "SOURCE TARGET ro|rw" (SOURCE a host file or folder, TARGET its path inside);
# ENV is a file of "NAME=value" lines, the command's whole environment.
# IMAGE is what the container's image holds: "empty" (scratch: nothing but
# the mounts, no libc, no shell, no /etc) or "host" (the host's /usr, /etc and
# /lib stand in for a Debian-like image).
set -euo pipefail
root=$1 uid=$2 mounts=$3 env=$4 image=$5
shift 6
# mount(8) keeps its bookkeeping in /run/mount, creating it on a machine's first
# mount: keep it beside ROOT instead, so the host's files never change.
export LIBMOUNT_UTAB="$root.utab/utab"

mount -t tmpfs -o mode=0755 sandbox-root "$root"
if [ "$image" = host ]; then
  for dir in usr etc; do
    mkdir "$root/$dir"
    mount --rbind "/$dir" "$root/$dir"
    mount -o remount,bind,ro "$root/$dir"
  done
  for dir in bin sbin lib lib32 lib64; do
    if [ -L "/$dir" ]; then
      ln -s "$(readlink "/$dir")" "$root/$dir"
    elif [ -d "/$dir" ]; then
      mkdir "$root/$dir"
      mount --rbind "/$dir" "$root/$dir"
    fi
  done
  mkdir -p "$root/tmp" "$root/run" "$root/var"
  ln -s ../run "$root/var/run" # as in Debian-based images (relative: never the host's /run)
fi
mkdir -p "$root/dev" "$root/proc"
mount -t tmpfs -o mode=0755,nosuid,noexec sandbox-dev "$root/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 666 "$root/dev/$name" c "$major" "$minor"
done
mount -t proc proc "$root/proc"

while read -r source target mode; do
  [ -n "$source" ] || continue
  if [ -d "$source" ]; then
    mkdir -p "$root$target"
  else
    mkdir -p "$(dirname "$root$target")"
    [ -e "$root$target" ] || touch "$root$target"
  fi
  mount --bind "$source" "$root$target"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$target"; fi
done <"$mounts"

mount -o remount,ro "$root" # readOnlyRootFilesystem
# The host's env, setpriv and chroot do the switch: an empty image needs no tools. Not `exec`:
# this shell stays the PID namespace's first process, as root, so that unshare --kill-child's
# signal (a parent-death signal, which the switch of user clears for its own process) still ends
# the namespace and the run with it (KubeletPod.exec's timeoutSeconds).
mapfile -t variables <"$env"
env -i "${variables[@]}" setpriv --no-new-privs -- chroot --userspec="$uid:$uid" --groups="$uid" "$root" "$@" &
wait $!
