#!/bin/sh
# bootstrap-images.sh [IMAGE...] — makes the Debian 12 base images docker/Dockerfile starts
# from (and the test suite's systemd image) with mmdebstrap, for a podman with no registry.
#
#   debian:12        Debian 12 minbase, as docker.io/library/debian:12
#   debian:12-slim   the same without manuals, docs and translations (dpkg path-exclude,
#                    kept for later installs, as in the official slim image)
#   systemd          debian:12 with systemd as /sbin/init, curl and procps:
#                    localhost/initlab-test-systemd:12 (tests/packaging)
#
# Without arguments: debian:12 and debian:12-slim. An image already present is kept, unless
# this script made it from another recipe (label org.initlab.recipe). The packages come from
# the Debian archive named in apt's own sources on this machine (/etc/apt/sources.list.d/
# *.sources or /etc/apt/sources.list), never from a host written here. The host's local CA
# certificates (/usr/local/share/ca-certificates) are copied in, so that an HTTPS proxy
# that re-signs certificates is trusted inside the image build (npm ci) once ca-certificates
# is installed there. Needs root, podman and mmdebstrap (make deps installs them).
set -eu
cd "$(dirname "$0")/.."

PODMAN=${PODMAN:-podman}
SUITE=bookworm
CA_DIR=/usr/local/share/ca-certificates

# "deb URI SUITE COMPONENTS" lines for this suite from apt's sources, deb822 and one-line.
mirror_lines() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && uris != "")
                    for (i = 1; i <= ns; i++)
                        if (s[i] == suite || index(s[i], suite "-") == 1)
                            for (j = 1; j <= nu; j++)
                                print "deb " u[j] " " s[i] " " comps
                types = uris = comps = ""; ns = nu = 0
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
            /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0; nu = split($0, u, /[ \t]+/) }
            /^Suites:/ { sub(/^Suites:[ \t]*/, ""); ns = split($0, s, /[ \t]+/) }
            /^Components:/ { sub(/^Components:[ \t]*/, ""); comps = $0 }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
            awk -v suite="$SUITE" '$1 == "deb" && ($3 == suite || index($3, suite "-") == 1) {
                line = "deb " $2 " " $3; for (i = 4; i <= NF; i++) line = line " " $i; print line }'
    done
}

MIRRORS=$(mirror_lines | awk '!seen[$0]++')
if [ -z "$MIRRORS" ]; then
    echo "bootstrap-images: apt's sources name no $SUITE archive" >&2
    exit 1
fi
command -v mmdebstrap >/dev/null 2>&1 || { echo "bootstrap-images: mmdebstrap is missing (make deps)" >&2; exit 1; }

# A recipe hash: this script, the mirror lines and the CA certificates.
RECIPE=$( { cat "$0"; echo "$MIRRORS"; find "$CA_DIR" -type f 2>/dev/null | sort | xargs -r cat; } |
    sha256sum | cut -c1-16)

tag_of() {
    case "$1" in
        debian:12) echo docker.io/library/debian:12 ;;
        debian:12-slim) echo docker.io/library/debian:12-slim ;;
        systemd) echo localhost/initlab-test-systemd:12 ;;
        *) echo "bootstrap-images: unknown image $1 (debian:12, debian:12-slim, systemd)" >&2; return 1 ;;
    esac
}

# True when the image is present and not an older recipe of this script's.
present() {
    label=$($PODMAN image inspect --format '{{index .Labels "org.initlab.recipe"}}' "$1" 2>/dev/null) || return 1
    [ -z "$label" ] || [ "$label" = "<no value>" ] || [ "$label" = "$RECIPE" ]
}

bootstrap() {
    name=$1
    tag=$(tag_of "$name")
    if present "$tag"; then
        echo "bootstrap-images: $tag is present"
        return 0
    fi
    set -- --variant=minbase --format=tar --quiet
    case "$name" in
        debian:12-slim)
            for p in man locale doc info groff lintian; do
                set -- "$@" --dpkgopt="path-exclude=/usr/share/$p/*"
            done
            set -- "$@" --dpkgopt='path-include=/usr/share/doc/*/copyright' \
                --dpkgopt='path-include=/usr/share/locale/locale.alias' ;;
        systemd)
            set -- "$@" --include=systemd,systemd-sysv,procps,curl ;;
    esac
    if [ -d "$CA_DIR" ]; then
        set -- "$@" --customize-hook="mkdir -p \"\$1$CA_DIR\"" \
            --customize-hook="sync-in $CA_DIR $CA_DIR"
    fi
    cmd='["bash"]'
    [ "$name" = systemd ] && cmd='["/sbin/init"]'
    old=$($PODMAN image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    start=$(date +%s)
    tar=$(mktemp "${TMPDIR:-/var/tmp}/initlab-bootstrap.XXXXXX")
    if ! echo "$MIRRORS" | mmdebstrap "$@" "$SUITE" - - > "$tar"; then
        rm -f "$tar"
        echo "bootstrap-images: mmdebstrap failed for $tag" >&2
        return 1
    fi
    if ! $PODMAN import --quiet --change "CMD $cmd" \
            --change "LABEL org.initlab.recipe=$RECIPE" "$tar" "$tag" >/dev/null; then
        rm -f "$tar"
        echo "bootstrap-images: podman import failed for $tag" >&2
        return 1
    fi
    rm -f "$tar"
    # The image of the older recipe, now untagged, unless a container still uses it.
    [ -z "$old" ] || $PODMAN rmi "$old" >/dev/null 2>&1 || true
    echo "bootstrap-images: $tag bootstrapped in $(( $(date +%s) - start )) s"
}

[ $# -gt 0 ] || set -- debian:12 debian:12-slim
pids=""
for name in "$@"; do
    tag_of "$name" >/dev/null
    bootstrap "$name" &
    pids="$pids $!"
done
status=0
for pid in $pids; do
    wait "$pid" || status=1
done
exit $status
