#!/bin/sh
# run.sh — what `make run` starts once the build is done.
set -eu
cd "$(dirname "$0")/.."
exec ./initlab info
