#!/usr/bin/env bash
# Side by side: two broker builds serving fetches from their cache. Each run
# starts a fresh one-shard broker (core 0), writes 100 MB into one
# partition, then re-reads it for 8 s with `sluice-bench consume --rewind`
# (core 1), which reads recent data over and over: the broker's cache.
# Rounds alternate the order (A B, then B A). Prints MB/s per run.
# Usage: scripts/bench-fetch-ab.sh BINARY_A BINARY_B [ROUNDS] [DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
A="$1"; B="$2"; ROUNDS="${3:-3}"; DIR="${4:-$PWD/bench-data/fetch-ab}"
BENCH="${SLUICE_BENCH:-target/release/sluice-bench}"
PORT=29500
run() {
    local bin=$1 tag=$2
    rm -rf "$DIR"; mkdir -p "$DIR"
    taskset -c 0 "$bin" broker --data-dir "$DIR" --host 127.0.0.1 --port $PORT --shards 1 > "$DIR.log" 2>&1 &
    local pid=$!
    sleep 1.5
    taskset -c 1 "$BENCH" produce --bootstrap 127.0.0.1:$PORT --topic f --partitions 1 --records 100000 \
        --record-size 1000 > /dev/null
    local mbs
    mbs=$(taskset -c 1 "$BENCH" consume --bootstrap 127.0.0.1:$PORT --topic f --partitions 1 --record-size 1000 \
        --rewind --duration 8 2>&1 | grep "records in" | grep -oE "[0-9.]+ MB/sec")
    echo "$tag: $mbs"
    kill $pid; wait $pid 2>/dev/null || true
}
for r in $(seq 1 "$ROUNDS"); do
    if (( r % 2 )); then run "$A" A; run "$B" B; else run "$B" B; run "$A" A; fi
done
rm -rf "$DIR" "$DIR.log"
