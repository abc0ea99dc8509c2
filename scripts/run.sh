#!/bin/sh
# run.sh — what `make run` starts: the daemon on ./state with the demo dataset registered
# and, on a fresh state directory, a demo grid queued (2 models x Glorot/He) to watch.
set -eu
cd "$(dirname "$0")/.."

# make run PORT=8471 (or LISTEN=ADDR:PORT) serves elsewhere; STATE=DIR keeps the state there;
# EPOCHS=N trains the demo grid's jobs N epochs (default 6).
STATE=${STATE:-state}
EPOCHS=${EPOCHS:-6}
case "$EPOCHS" in
    ''|*[!0-9]*|0*) echo "run: EPOCHS=$EPOCHS: must be a whole number from 1" >&2; exit 2 ;;
esac
PORT=${PORT:-8470}
LISTEN=${LISTEN:-127.0.0.1:$PORT}
DEMO="$STATE/data/demo-weeds"
URL="http://$LISTEN"

mkdir -p "$STATE/data"
if [ ! -d "$DEMO" ]; then
    echo "run: writing the demo dataset (6 weed species x 300 photos) to $DEMO"
    ./initlab demo-data "$DEMO" --classes 6 --per-class 300 --size 96
fi

# Stopping. The daemon runs in a session of its own (setsid), so the terminal's Ctrl-C
# reaches make and this script but not the daemon; this script passes each interrupt on as
# one SIGTERM. The first one stops the daemon gracefully (running jobs checkpoint and are
# queued again); a second one, a moment later, makes it exit at once. make passes a SIGTERM
# sent to it alone on to this script, but not a SIGINT: GNU make then resets its SIGINT
# handler and waits for this script. So the script watches its parent: when make stops
# catching SIGINT, or is gone, the daemon is stopped the same way.
PARENT=$PPID
parent_catches_sigint() {
    mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$PARENT/status" 2>/dev/null) &&
        [ -n "$mask" ] && [ $((0x$mask & 2)) -ne 0 ]
}
WATCH_INT=0
if parent_catches_sigint; then WATCH_INT=1; fi
DAEMON=
STOPS=0
stop() {
    STOPS=$((STOPS + 1))
    [ $STOPS -eq 1 ] && echo "run: stopping the daemon (running jobs checkpoint)"
    kill -TERM "$DAEMON" 2>/dev/null || true
}
trap stop INT TERM HUP
# Whatever ends this script (an error in the set-up below included) stops the daemon too.
trap 'if kill -0 "$DAEMON" 2>/dev/null; then stop; wait "$DAEMON" || true; fi' EXIT

setsid ./initlab serve --listen "$LISTEN" --state-dir "$STATE" --data-root "$STATE/data" \
    --web-dir web &
DAEMON=$!

i=0
until curl -fsS "$URL/api/v1/health" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $STOPS -gt 0 ]; then
        wait "$DAEMON"
        exit $?
    fi
    if [ $i -gt 100 ] || ! kill -0 "$DAEMON" 2>/dev/null; then
        echo "run: the daemon did not start (is $LISTEN in use?)" >&2
        exit 1
    fi
    sleep 0.1
done

if ! curl -fsS "$URL/api/v1/datasets/demo-weeds" >/dev/null 2>&1; then
    curl -fsS -X POST "$URL/api/v1/datasets" -H 'Content-Type: application/json' \
        -d "{\"name\": \"demo-weeds\", \"path\": \"$(cd "$DEMO" && pwd)\"}" >/dev/null
fi
if curl -fsS "$URL/api/v1/jobs?limit=1" | grep -q '"total":0'; then
    echo "run: queueing the demo grid: MobileNet (alpha 0.5) and ResNet-18 (width 16)" \
         "x glorot_uniform, he_uniform"
    curl -fsS -X POST "$URL/api/v1/grids" -H 'Content-Type: application/json' -d '{
        "dataset": "demo-weeds", "preset": "quick",
        "models": ["mobilenet", "resnet18"], "initializers": ["glorot_uniform", "he_uniform"],
        "seeds": [0], "alpha": 0.5, "width": 16, "image_size": 64, "batch_size": 16,
        "epochs": '"$EPOCHS"', "lr": 0.02}' >/dev/null
fi

echo
echo "  initlab is running: open $URL/ in a browser (Ctrl-C stops it)"
echo "  API: $URL/api/v1/jobs   OpenAPI: $URL/api/v1/openapi.json"
echo
# `wait` returns early when a trapped signal arrives, so the loop polls both the daemon and
# the parent without delaying a Ctrl-C.
while kill -0 "$DAEMON" 2>/dev/null; do
    if [ $STOPS -eq 0 ] && ! kill -0 "$PARENT" 2>/dev/null; then
        echo "run: make is gone"
        stop
    elif [ $STOPS -eq 0 ] && [ $WATCH_INT -eq 1 ] && ! parent_catches_sigint; then
        echo "run: make was interrupted"
        stop
    fi
    sleep 0.5 &
    wait $! 2>/dev/null || true
done
wait "$DAEMON"
