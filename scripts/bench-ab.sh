#!/usr/bin/env bash
# Side by side: two broker variants appending under retention, one shard,
# alternating fresh brokers, so that a noisy shared machine affects both
# alike. A variant is a broker command without its data dir and port, e.g.
# "target/release/sluice broker --shards 1" or an older build's binary with
# overrides. Each run warms up for 3 s (fills the retention window, so that
# segments are being deleted), then measures. Prints the harness's MB/s
# (10^6 bytes) and the broker's CPU per GiB appended (steadier than MB/s on
# a shared machine). One shard: the broker is confined to one CPU (a
# variant with more shards would put them all there; see bench-cpus.sh).
# Rounds alternate the order (A B, then B A) so that a drifting disk
# favours neither.
# Usage: scripts/bench-ab.sh "VARIANT A" "VARIANT B" [DIR] [ROUNDS] [SECONDS] [PARTITIONS]
# Env: INFLIGHT (default 64), SEG (segment.bytes, default 128 MiB),
#      RET (retention.bytes per partition, default 2 segments),
#      LOG_GREP (a pattern whose count in the broker's log is printed),
#      COMPRESSION (the producers' codec: none, gzip, snappy, lz4, zstd;
#      default none),
#      CLIENT_CPUS=shared (broker and load generator share the cores; by
#      default each has its own, see bench-cpus.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
A="$1"
B="$2"
DIR="${3:-$PWD/bench-data}"
ROUNDS="${4:-3}"
SECS="${5:-10}"
PARTS="${6:-4}"
PORT=29394
SEG="${SEG:-134217728}"
mkdir -p "$DIR"
cargo build --release -q -p sluice -p bench-harness
# shellcheck source=scripts/bench-cpus.sh
source scripts/bench-cpus.sh
TCK=$(getconf CLK_TCK)
BROKER=
trap '[[ -n $BROKER ]] && kill $BROKER 2>/dev/null && wait $BROKER 2>/dev/null; rm -rf "$DIR/ab"' EXIT
for r in $(seq 1 "$ROUNDS"); do
    order="A B"
    ((r % 2 == 0)) && order="B A"
    for v in $order; do
        rm -rf "$DIR/ab"
        # shellcheck disable=SC2086 # a variant is a command line
        "${BROKER_ON[@]}" ${!v} --data-dir "$DIR/ab" --host 127.0.0.1 --port $PORT > "$DIR/ab.log" 2>&1 &
        BROKER=$!
        sleep 1
        args=(--bootstrap 127.0.0.1:$PORT --topic t --partitions "$PARTS" --producers "$PARTS"
            --inflight "${INFLIGHT:-64}" --batch-records 256 --compression "${COMPRESSION:-none}"
            --topic-config segment.bytes="$SEG" --topic-config retention.bytes="${RET:-$((2 * SEG))}")
        "${CLIENT_ON[@]}" target/release/sluice-bench produce "${args[@]}" --duration 3 >/dev/null
        cpu0=$(awk '{print $14+$15}' /proc/$BROKER/stat)
        line=$("${CLIENT_ON[@]}" target/release/sluice-bench produce "${args[@]}" --duration "$SECS" | grep 'records/sec') ||
            { echo "variant $v: the run failed; broker log: $DIR/ab.log" >&2; exit 1; }
        cpu1=$(awk '{print $14+$15}' /proc/$BROKER/stat)
        mb=$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<<"$line")
        extra=
        [[ -n ${LOG_GREP:-} ]] && extra=", $(grep -c "$LOG_GREP" "$DIR/ab.log" || true) log lines matching '$LOG_GREP'"
        echo "round $r $v, $PARTS partition(s): $mb MB/s, broker CPU" \
            "$(awk -v c=$((cpu1 - cpu0)) -v t="$TCK" -v s="$SECS" 'BEGIN { printf "%.2f", c / t / s }') cores =" \
            "$(awk -v c=$((cpu1 - cpu0)) -v t="$TCK" -v m="$mb" -v s="$SECS" \
                'BEGIN { printf "%.2f", (c / t) / (m * 1e6 * s / 2^30) }') s per GiB$extra"
        kill $BROKER
        wait $BROKER 2>/dev/null || true
        BROKER=
    done
done
