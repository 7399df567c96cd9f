#!/usr/bin/env bash
# Append throughput of one shard with fdatasync before every acknowledgement,
# side by side with fio's sequential direct writes on the same disk (the
# physical limit) and iperf3's loopback TCP bandwidth (the client's path to
# the broker), in one run.
#
# Two fio figures, because on thin-provisioned disks (this VM's virtio disk,
# cloud volumes) writing a block for the first time costs far more than
# overwriting it: "fio overwrite" rewrites a 4 GiB file (what fio's usual
# time-based job measures), "fio fresh space" writes a file larger than the
# run, never overwriting (what an append-only log does to a new topic).
# sluice runs twice: new topics (fresh space), and a steady state under
# retention, where each new segment is written into a segment file that
# retention deleted (log.segment.recycle), after a warm-up that fills the
# retention window. Also prints the broker's CPU seconds per GiB
# appended, which is steadier than MiB/s on a shared machine. Each producer
# connection keeps 16, then 64 requests of 256 KiB in flight (INFLIGHT="..."
# to choose): librdkafka keeps many more in flight by default.
# Usage: scripts/bench-append.sh [DIR] [SECONDS]
# DIR must be on the disk under test (default: ./bench-data); needs fio,
# and iperf3 for the loopback figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR="${1:-$PWD/bench-data}"
SECS="${2:-10}"
PORT=29392
mkdir -p "$DIR"
command -v fio >/dev/null || { echo "fio is needed (apt-get install fio)" >&2; exit 1; }
cargo build --release -q -p sluice -p bench-harness

fio_mib() { # $1: file size, $2: extra fio flags
    fio --name=seq --filename="$DIR/fio.dat" --size="$1" --bs=1M --rw=write --direct=1 --ioengine=io_uring \
        --iodepth=4 --runtime="$SECS" --time_based $2 --output-format=terse --terse-version=3 2>/dev/null |
        awk -F';' '{printf "%.1f", $48/1024}'
    rm -f "$DIR/fio.dat"
}

FIO_RAW=$(fio_mib 4G "")
FIO_SYNC=$(fio_mib 4G "--fdatasync=1")
# Larger than SECS seconds at 4 GiB/s, within 40% of the free space.
FREE_GIB=$(df -k --output=avail "$DIR" | tail -1 | awk '{print int($1 / 1048576)}')
FRESH_GIB=$((SECS * 4 < FREE_GIB * 2 / 5 ? SECS * 4 : FREE_GIB * 2 / 5))
FIO_FRESH=$(fio_mib "${FRESH_GIB}G" "")
LOOPBACK=n/a
if command -v iperf3 >/dev/null; then
    iperf3 -s -1 -p 29399 >/dev/null 2>&1 &
    sleep 0.5
    LOOPBACK=$(iperf3 -c 127.0.0.1 -p 29399 -t "$SECS" -l 1M -J | python3 -c \
        'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8/2**20))')
fi
TCK=$(getconf CLK_TCK)

rm -rf "$DIR/sluice"
target/release/sluice broker --data-dir "$DIR/sluice" --host 127.0.0.1 --port $PORT --shards 1 \
    > "$DIR/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DIR/sluice"' EXIT
sleep 1
RESULTS=()
SEGMENT=$((128 << 20))
# One measured run into topic $1: $2 partitions (a producer each), $3
# requests in flight, $4 "new" or "steady", further sluice-bench flags after.
# Records MiB/s and broker CPU s per GiB in RESULTS, then deletes the topic to
# free the space for the next run.
measure() {
    local topic=$1 parts=$2 inflight=$3 kind=$4 cpu0 cpu1 line mib
    shift 4
    cpu0=$(awk '{print $14+$15}' /proc/$BROKER/stat)
    line=$(target/release/sluice-bench produce --bootstrap 127.0.0.1:$PORT --topic "$topic" --partitions "$parts" \
        --producers "$parts" --duration "$SECS" --inflight "$inflight" --batch-records 256 "$@" | grep 'records/sec')
    cpu1=$(awk '{print $14+$15}' /proc/$BROKER/stat)
    mib=$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<<"$line" | awk '{printf "%.1f", $1 * 1e6 / 1048576}')
    RESULTS+=("$parts $mib $(awk -v c=$((cpu1 - cpu0)) -v t="$TCK" -v m="$mib" -v s="$SECS" \
        'BEGIN { printf "%.2f", (c / t) / (m * s / 1024) }') $inflight $kind")
    echo "$line"
    target/release/sluice topics delete --bootstrap-server 127.0.0.1:$PORT "$topic" >/dev/null
}
for inflight in ${INFLIGHT:-16 64}; do
    for parts in 1 4; do
        measure "append-$parts-$inflight" $parts "$inflight" new
    done
done
for parts in 1 4; do
    # Under retention: fill the retention window first (3 s), then measure.
    cfg=(--topic-config segment.bytes=$SEGMENT --topic-config retention.bytes=$((2 * SEGMENT)))
    target/release/sluice-bench produce --bootstrap 127.0.0.1:$PORT --topic "steady-$parts" --partitions $parts \
        --producers $parts --duration 3 --inflight 64 --batch-records 256 "${cfg[@]}" >/dev/null
    measure "steady-$parts" $parts 64 steady "${cfg[@]}"
done
echo "fio sequential direct 1 MiB writes, overwrite:  $FIO_RAW MiB/s"
echo "fio same, fdatasync after every write:         $FIO_SYNC MiB/s"
echo "fio sequential direct 1 MiB writes, fresh space: $FIO_FRESH MiB/s"
echo "iperf3 loopback TCP:                           $LOOPBACK MiB/s"
for r in "${RESULTS[@]}"; do
    set -- $r
    awk -v p="$1" -v m="$2" -v cpu="$3" -v inf="$4" -v kind="$5" -v raw="$FIO_RAW" -v sync="$FIO_SYNC" \
        -v fresh="$FIO_FRESH" -v lo="$LOOPBACK" 'BEGIN {
        what = kind == "new" ? "new topic       " : "under retention "
        printf "sluice 1 shard, %s %d partition(s), %2d in flight, acks=all: %.1f MiB/s = %.0f%% of fio overwrite, %.0f%% of fio fresh space",
            what, p, inf, m, 100*m/raw, 100*m/fresh
        if (lo != "n/a") printf ", %.0f%% of loopback", 100*m/lo
        printf "; broker CPU %s s per GiB\n", cpu }'
done
