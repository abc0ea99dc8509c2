#!/bin/sh
# copytree.sh DEST — copies the source tree into DEST (created if missing) for a build that
# must not mix its objects with build/rel's: what git tracks plus new files git does not
# ignore (uncommitted edits included), or, outside git, the tree without its build outputs.
# Prints the short commit ("a tree outside git" outside one). Used by deb.sh and portable.sh.
set -eu
cd "$(dirname "$0")/.."
dest=$1
mkdir -p "$dest"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$dest"
    git rev-parse --short HEAD
else
    tar --exclude=./build --exclude=./state --exclude=./initlab --exclude=./initlab-asan \
        --exclude=node_modules -cf - . | tar -xf - -C "$dest"
    echo "a tree outside git"
fi
