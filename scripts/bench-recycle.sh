#!/usr/bin/env bash
# Side by side: one shard appending under retention with segment recycling
# on and off (log.segment.recycle), alternating fresh brokers of one build.
# Each run warms up for 3 s (fills the retention window, so that segments
# are being deleted), then measures. MB/s is the harness's (10^6 bytes).
# Usage: scripts/bench-recycle.sh [DIR] [ROUNDS] [SECONDS] [PARTITIONS]
# Env: CHECK (log.retention.check.interval.ms, default Kafka's 300000),
#      INFLIGHT (default 64), SEG (segment.bytes, default 128 MiB),
#      RET (retention.bytes per partition, default 2 segments).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR="${1:-$PWD/bench-data}"
ROUNDS="${2:-3}"
SECS="${3:-10}"
PARTS="${4:-4}"
PORT=29394
SEG="${SEG:-134217728}"
cargo build --release -q -p sluice -p bench-harness
TCK=$(getconf CLK_TCK)
BROKER=
trap '[[ -n $BROKER ]] && kill $BROKER 2>/dev/null; rm -rf "$DIR/recycle-ab"' EXIT
for r in $(seq 1 "$ROUNDS"); do
    for recycle in true false; do
        rm -rf "$DIR/recycle-ab"
        target/release/sluice broker --data-dir "$DIR/recycle-ab" --host 127.0.0.1 --port $PORT --shards 1 \
            --override log.segment.recycle=$recycle \
            --override log.retention.check.interval.ms="${CHECK:-300000}" > "$DIR/recycle-ab.log" 2>&1 &
        BROKER=$!
        sleep 1
        args=(--bootstrap 127.0.0.1:$PORT --topic t --partitions "$PARTS" --producers "$PARTS"
            --inflight "${INFLIGHT:-64}" --batch-records 256
            --topic-config segment.bytes="$SEG" --topic-config retention.bytes="${RET:-$((2 * SEG))}")
        target/release/sluice-bench produce "${args[@]}" --duration 3 >/dev/null
        cpu0=$(awk '{print $14+$15}' /proc/$BROKER/stat)
        line=$(target/release/sluice-bench produce "${args[@]}" --duration "$SECS" | grep 'records/sec')
        cpu1=$(awk '{print $14+$15}' /proc/$BROKER/stat)
        mb=$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<<"$line")
        echo "round $r recycle=$recycle partitions=$PARTS: $mb MB/s, broker CPU" \
            "$(awk -v c=$((cpu1 - cpu0)) -v t="$TCK" -v s="$SECS" 'BEGIN { printf "%.2f", c / t / s }') cores," \
            "$(grep -c 'into a recycled file' "$DIR/recycle-ab.log" || true) segments written into recycled files"
        kill $BROKER
        wait $BROKER 2>/dev/null || true
        BROKER=
    done
done
