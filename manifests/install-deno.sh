# Copies Deno, its dynamic loader and the libraries it links into the folder
# $1, so the probe runs in any Linux image (Alpine, distroless, scratch):
#   $1/ld.so --library-path $1 $1/deno run ...
# Run by the init container (from the official Deno image, which has ldd) and
# by examples/image-volume/Dockerfile. The loader's name differs per
# architecture (ld-linux-x86-64.so.2, ld-linux-aarch64.so.1): ldd names it.
set -eu
to=$1
deno=$(command -v deno)
cp "$deno" "$to/deno"
ldd "$deno" >"$to/ldd.txt"
while read -r name arrow path _; do
  if [ "$arrow" = "=>" ]; then
    cp -L "$path" "$to/"
  elif [ "${name#/}" != "$name" ]; then
    cp -L "$name" "$to/ld.so"
  fi
done <"$to/ldd.txt"
rm "$to/ldd.txt"
# Fail here, loudly, rather than in every probe run.
"$to/ld.so" --library-path "$to" "$to/deno" --version >/dev/null
