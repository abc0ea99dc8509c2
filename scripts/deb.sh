#!/bin/sh
# deb.sh — builds the Debian package build/deb/initlab_VERSION_amd64.deb (`make deb`) and
# checks it with lintian (build/deb/lintian.txt; an error fails the build).
#
# dpkg-buildpackage runs debian/rules in a copy of the tree (build/deb/initlab-VERSION,
# scripts/copytree.sh), so that its portable x86-64-v2 objects never mix with the
# -march=native ones of build/rel. The copy also gets a link to web/node_modules, which
# `make deps` fills. The version is VERSION's;
# debian/changelog is written here, dated by the last commit (SOURCE_DATE_EPOCH when set).
set -eu
cd "$(dirname "$0")/.."

VERSION=$(cat VERSION)
out=build/deb
src=$out/initlab-$VERSION
for tool in dpkg-buildpackage dh lintian; do
    command -v "$tool" >/dev/null 2>&1 || { echo "deb: $tool is missing (make deps installs it)" >&2; exit 1; }
done
if [ ! -d web/node_modules ]; then
    echo "deb: web/node_modules is missing: run make deps" >&2
    exit 1
fi

rm -rf "$out"
commit=$(scripts/copytree.sh "$src")
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
else
    epoch=${SOURCE_DATE_EPOCH:-$(date +%s)}
fi
ln -s "$(pwd)/web/node_modules" "$src/web/node_modules"

maintainer=$(sed -n 's/^Maintainer: //p' debian/control)
cat > "$src/debian/changelog" <<CHANGELOG
initlab ($VERSION) unstable; urgency=medium

  * Built from the initlab repository at version $VERSION ($commit).

 -- $maintainer  $(date -u -R -d "@$epoch")
CHANGELOG

(cd "$src" && SOURCE_DATE_EPOCH=$epoch dpkg-buildpackage -b --no-sign) > "$out/build.log" 2>&1 || {
    tail -n 40 "$out/build.log" >&2
    echo "deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
    exit 1
}
deb=$out/initlab_${VERSION}_amd64.deb
[ -f "$deb" ] || { echo "deb: $deb was not built" >&2; exit 1; }

# lintian's errors fail the build; its warnings and notes are printed.
status=0
lintian --tag-display-limit 0 "$deb" > "$out/lintian.txt" 2>&1 || status=$?
if grep -q '^E: ' "$out/lintian.txt"; then
    cat "$out/lintian.txt" >&2
    echo "deb: lintian reports errors" >&2
    exit 1
fi
if [ "$status" -ne 0 ] && [ "$status" -ne 2 ]; then
    cat "$out/lintian.txt" >&2
    echo "deb: lintian failed (status $status)" >&2
    exit 1
fi
grep -v 'running with root privileges' "$out/lintian.txt" | sed 's/^/deb: lintian: /' || true
echo "deb: $deb ($(du -k "$deb" | cut -f1) KiB)"
