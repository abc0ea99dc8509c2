#!/bin/sh
# run.sh — what `make run` starts: the daemon on ./state with the demo dataset registered
# and, on a fresh state directory, a demo grid queued (2 models x Glorot/He) to watch.
set -eu
cd "$(dirname "$0")/.."

STATE=${STATE:-state}
LISTEN=${LISTEN:-127.0.0.1:8470}
DEMO="$STATE/data/demo-weeds"
URL="http://$LISTEN"

mkdir -p "$STATE/data"
if [ ! -d "$DEMO" ]; then
    echo "run: writing the demo dataset (6 weed species x 300 photos) to $DEMO"
    ./initlab demo-data "$DEMO" --classes 6 --per-class 300 --size 96
fi

./initlab serve --listen "$LISTEN" --state-dir "$STATE" --data-root "$STATE/data" \
    --web-dir web &
DAEMON=$!
trap 'kill -TERM $DAEMON 2>/dev/null; wait $DAEMON' INT TERM

i=0
until curl -fsS "$URL/api/v1/health" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $DAEMON 2>/dev/null; then
        echo "run: the daemon did not start (is $LISTEN in use?)" >&2
        exit 1
    fi
    sleep 0.1
done

if ! curl -fsS "$URL/api/v1/datasets/demo-weeds" >/dev/null 2>&1; then
    curl -fsS -X POST "$URL/api/v1/datasets" -H 'Content-Type: application/json' \
        -d "{\"name\": \"demo-weeds\", \"path\": \"$(pwd)/$DEMO\"}" >/dev/null
fi
if curl -fsS "$URL/api/v1/jobs?limit=1" | grep -q '"total":0'; then
    echo "run: queueing the demo grid: MobileNet (alpha 0.5) and ResNet-18 (width 16)" \
         "x glorot_uniform, he_uniform"
    curl -fsS -X POST "$URL/api/v1/grids" -H 'Content-Type: application/json' -d '{
        "dataset": "demo-weeds", "preset": "quick",
        "models": ["mobilenet", "resnet18"], "initializers": ["glorot_uniform", "he_uniform"],
        "seeds": [0], "alpha": 0.5, "width": 16, "image_size": 64, "batch_size": 16,
        "epochs": 6, "lr": 0.02}' >/dev/null
fi

echo
echo "  initlab is running: open $URL/ in a browser (Ctrl-C stops it)"
echo "  API: $URL/api/v1/jobs   OpenAPI: $URL/api/v1/openapi.json"
echo
wait $DAEMON
