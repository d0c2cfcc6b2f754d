# Copies Deno and env(1), the dynamic loader and the libraries they link into
# the folder $1, so the probe runs in any Linux image (Alpine, distroless,
# scratch), with a Deno cache of its own and the app's environment untouched:
#   $1/ld.so --library-path $1 $1/env DENO_DIR=... $1/ld.so --library-path $1 $1/deno run ...
# Run by the init container (from the official Deno image, which has ldd and
# env) and by examples/image-volume/Dockerfile. The loader's name differs per
# architecture (ld-linux-x86-64.so.2, ld-linux-aarch64.so.1): ldd names it.
set -eu
to=$1
for program in deno env; do
  path=$(command -v "$program")
  cp "$path" "$to/$program"
  ldd "$path" >"$to/ldd.txt"
  while read -r name arrow library _; do
    if [ "$arrow" = "=>" ]; then
      cp -L "$library" "$to/"
    elif [ "${name#/}" != "$name" ]; then
      cp -L "$name" "$to/ld.so"
    fi
  done <"$to/ldd.txt"
done
rm "$to/ldd.txt"
# Fail here, loudly, rather than in every probe run.
"$to/ld.so" --library-path "$to" "$to/env" DENO_DIR=/nonexistent \
  "$to/ld.so" --library-path "$to" "$to/deno" --version >/dev/null
