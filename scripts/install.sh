#!/bin/sh
# install.sh DESTDIR PREFIX — installs a built ./initlab and its files (`make install`).
#
#   PREFIX/bin/initlab                        the binary
#   PREFIX/share/initlab/web/                 the dashboard, with the npm files it loads
#   PREFIX/share/initlab/schema/              the migrations, for reference (compiled in)
#   PREFIX/share/man/man1/initlab.1           the manual page
#   PREFIX/share/doc/initlab/                 operations guide, example configuration
#   UNITDIR/initlab.service                   the systemd unit, ExecStart=PREFIX/bin/initlab
#   /etc/initlab/initlab.conf                 the configuration, only when absent
#   /srv/initlab/data/                        the dataset root, only when absent
#
# Every path is prefixed with DESTDIR (empty for a direct install). UNITDIR defaults to
# PREFIX/lib/systemd/system: systemd searches /usr/local/lib/systemd/system and
# /usr/lib/systemd/system, so local installs stay out of the package manager's
# /lib/systemd/system; for another PREFIX set UNITDIR=/etc/systemd/system.
set -eu
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
    echo "usage: $0 DESTDIR PREFIX" >&2
    exit 2
fi
DESTDIR=$1
PREFIX=$2
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
VERSION=$(cat VERSION)

case "$PREFIX" in
    /*) ;;
    *) echo "install: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 2 ;;
esac
case "$PREFIX$UNITDIR" in
    *"#"* | *"&"* | *"\\"*) echo "install: PREFIX and UNITDIR may not contain # & or \\" >&2; exit 2 ;;
esac
if [ ! -x initlab ]; then
    echo "install: ./initlab is not built; run make first" >&2
    exit 1
fi
umask 022

bindir=$DESTDIR$PREFIX/bin
sharedir=$DESTDIR$PREFIX/share/initlab
mandir=$DESTDIR$PREFIX/share/man/man1
docdir=$DESTDIR$PREFIX/share/doc/initlab
unitdir=$DESTDIR$UNITDIR
confdir=$DESTDIR/etc/initlab
datadir=$DESTDIR/srv/initlab/data

install -d "$bindir" "$sharedir" "$mandir" "$docdir" "$unitdir" "$confdir"
install -m 0755 initlab "$bindir/initlab"

# The dashboard: every file of web/ but the npm metadata and node_modules, then of
# node_modules only the files its pages and scripts name (/node_modules/PKG/FILE: today
# ECharts' echarts.min.js; its dist/ holds 46 MB the dashboard never loads), each with its
# package's licence and notice. The old copy goes first so that files removed from web/ do
# not linger after an upgrade.
rm -rf "$sharedir/web"
install -d "$sharedir/web"
(cd web && find . -path ./node_modules -prune -o -type f \
    ! -name package.json ! -name package-lock.json -print) |
while IFS= read -r f; do
    install -D -m 0644 "web/$f" "$sharedir/web/$f"
done
loaded=$(find web -path web/node_modules -prune -o -type f \( -name '*.html' -o -name '*.js' \
    -o -name '*.css' \) -print | xargs grep -ohE '/node_modules/[A-Za-z0-9@._/-]+' | sort -u)
for ref in $loaded; do
    rel=${ref#/node_modules/}
    case "$rel" in
        *..*) echo "install: refusing $ref" >&2; exit 1 ;;
        @*/*) pkg=$(echo "$rel" | cut -d/ -f1-2) ;;
        *) pkg=${rel%%/*} ;;
    esac
    if [ ! -f "web/node_modules/$rel" ]; then
        echo "install: warning: web/node_modules/$rel is missing (run make deps); the dashboard loads it" >&2
        continue
    fi
    install -D -m 0644 "web/node_modules/$rel" "$sharedir/web/node_modules/$rel"
    for f in LICENSE NOTICE; do
        if [ -f "web/node_modules/$pkg/$f" ]; then
            install -m 0644 "web/node_modules/$pkg/$f" "$sharedir/web/node_modules/$pkg/$f"
        fi
    done
done

rm -rf "$sharedir/schema"
install -d "$sharedir/schema"
install -m 0644 schema/*.sql "$sharedir/schema/"

# The manual page, with the installed version and paths filled in.
sed -e "s#^\.TH INITLAB 1 \"\([^\"]*\)\" \"initlab [^\"]*\"#.TH INITLAB 1 \"\1\" \"initlab $VERSION\"#" \
    -e "s#PREFIX/lib/systemd/system#$UNITDIR#g" -e "s#PREFIX/#$PREFIX/#g" \
    docs/initlab.1 > "$mandir/initlab.1.tmp"
chmod 0644 "$mandir/initlab.1.tmp"
mv "$mandir/initlab.1.tmp" "$mandir/initlab.1"

install -m 0644 docs/operations.md "$docdir/operations.md"
install -m 0644 systemd/initlab.conf.example "$docdir/initlab.conf.example"

sed "s#^ExecStart=/usr/local/bin/initlab #ExecStart=$PREFIX/bin/initlab #" \
    systemd/initlab.service > "$unitdir/initlab.service.tmp"
chmod 0644 "$unitdir/initlab.service.tmp"
mv "$unitdir/initlab.service.tmp" "$unitdir/initlab.service"

# Configuration belongs to the admin: never overwrite it.
if [ -e "$confdir/initlab.conf" ]; then
    echo "install: kept $confdir/initlab.conf; the current example is $docdir/initlab.conf.example"
else
    install -m 0644 systemd/initlab.conf.example "$confdir/initlab.conf"
fi
[ -d "$datadir" ] || install -d -m 0755 "$datadir"

echo "install: initlab $VERSION in $DESTDIR$PREFIX, unit in $unitdir"
case "$UNITDIR" in
    /usr/local/lib/systemd/system | /usr/lib/systemd/system | /lib/systemd/system | /etc/systemd/system) ;;
    *) echo "install: warning: systemd does not look for units in $UNITDIR; set UNITDIR=/etc/systemd/system" >&2 ;;
esac
if [ -z "$DESTDIR" ]; then
    echo "install: next: systemctl daemon-reload && systemctl enable --now initlab"
fi
