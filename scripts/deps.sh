#!/bin/sh
# deps.sh — installs what initlab needs and is missing: Debian packages, then npm packages.
# Idempotent: when everything is present it only looks (about a second) and changes nothing.
set -eu
cd "$(dirname "$0")/.."

# Build: compiler, pkg-config and the libraries. `make run`: curl. Tests and benchmarks:
# Debian's PyTorch as the numerical and speed reference (numpy, Pillow beside it; scipy.stats
# checks Table 1's tests),
# Fashion-MNIST as real image data, Chromium for the browser tests, systemd-analyze,
# strace, man and PyYAML for the operations tests; protoc-c and libprotobuf-c for the
# TensorBoard export, protoc and Python's protobuf to read its files back in the tests.
# Remote workers: libcurl (GnuTLS flavour, as libmicrohttpd's TLS); their tests: Slurm and
# munge for a real cluster, iproute2 for network namespaces, openssl for a certificate,
# kubectl to check the Kubernetes manifest. `make deb`: debhelper and lintian. The
# packaging tests: podman with runc (crun fails on cgroup v1/hybrid hosts), netavark and
# iptables for its networks and published ports, uidmap, and mmdebstrap for the Debian 12
# base images. Node.js comes further down.
PACKAGES="gcc make pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev \
libturbojpeg0-dev libopenblas-dev zlib1g-dev libprotobuf-c-dev protobuf-c-compiler curl \
libcurl4-gnutls-dev slurm-wlm slurm-client munge iproute2 openssl \
python3 python3-numpy python3-scipy python3-torch python3-pil python3-yaml python3-protobuf \
protobuf-compiler dataset-fashion-mnist \
chromium systemd strace man-db \
debhelper lintian podman runc netavark iptables uidmap mmdebstrap"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

# Node.js may come from Debian (nodejs + npm) or from another packager whose nodejs ships
# npm itself and conflicts with Debian's npm: ask for the commands, not the packages.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
# kubectl: Debian's kubernetes-client, unless some kubectl is there already (another
# packager's owns /usr/bin/kubectl and would conflict).
command -v kubectl >/dev/null 2>&1 || missing="$missing kubernetes-client"

if [ -n "$missing" ]; then
    echo "deps: installing Debian packages:$missing"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install:$missing" >&2; exit 1; }
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# npm: every folder with a package-lock.json gets `npm ci` when its node_modules is absent
# or older than the lock file.
for lock in web/package-lock.json tests/browser/package-lock.json; do
    [ -f "$lock" ] || continue
    dir=$(dirname "$lock")
    stamp="$dir/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
        echo "deps: npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
