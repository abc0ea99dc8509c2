#!/bin/sh
# portable.sh — builds build/portable/initlab: the daemon for any x86-64-v2 machine
# (ARCH=x86-64-v2, what the Debian package and the container image run), in a copy of the
# tree (build/portable/src) so that its objects never mix with the -march=native ones of
# build/rel. `make bench` runs it beside the native build: its own kernels pick AVX2 or
# AVX-512 at run time, so the two should train at about the same speed.
set -eu
cd "$(dirname "$0")/.."
out=build/portable
rm -rf "$out/src"
scripts/copytree.sh "$out/src" >/dev/null
make -C "$out/src" --no-print-directory -j"$(nproc)" ARCH=x86-64-v2 initlab > "$out/build.log" 2>&1 || {
    tail -n 40 "$out/build.log" >&2
    echo "portable: the build failed; the whole log is $out/build.log" >&2
    exit 1
}
cp "$out/src/initlab" "$out/initlab"
echo "portable: built $out/initlab (x86-64-v2)"
