#!/usr/bin/env bash
# Append throughput of one shard with fdatasync before every acknowledgement,
# side by side with fio's sequential direct writes on the same disk (the
# physical limit), in rounds that alternate fio and sluice so that each
# ratio compares runs seconds apart (this machine's disk is shared, and its
# speed drifts by 2x within minutes).
#
# Two fio figures, because on thin-provisioned disks (this VM's virtio disk,
# cloud volumes) writing a block for the first time costs far more than
# overwriting it: "fio overwrite" rewrites a 4 GiB file (what fio's usual
# time-based job measures), "fio fresh space" writes a file larger than the
# run, never overwriting (what an append-only log does to a new topic).
# Each round runs: fio overwrite (with no flush, then with an fdatasync
# every 8 writes, sluice's group commit of up to 8 MiB, since the durable
# figure is what a broker that syncs before acknowledging can approach: on
# this VM's disk the host's cache makes unflushed overwrites up to twice as
# fast as flushed ones), sluice in a steady state under retention
# (1 and 4 partitions; each new segment is written into a segment file that
# retention deleted, log.segment.recycle; a 3 s warm-up fills the retention
# window first), fio fresh space, sluice appending to new topics (1 and 4
# partitions). Steady-state runs are compared with the overwrite figure,
# new-topic runs with the fresh-space figure. Each producer connection keeps
# INFLIGHT (default 64) requests of 256 KiB in flight: librdkafka keeps many
# more in flight by default. Also prints the broker's CPU seconds per GiB,
# steadier than MiB/s on a shared machine, and, once, fio with an fdatasync
# after every write and iperf3's loopback TCP bandwidth (the client's path).
# The broker and the load generator run on different cores (bench-cpus.sh;
# CLIENT_CPUS=shared lets them share).
# Usage: scripts/bench-append.sh [DIR] [SECONDS] [ROUNDS]
# DIR must be on the disk under test (default: ./bench-data); needs fio,
# and iperf3 for the loopback figure.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR="${1:-$PWD/bench-data}"
SECS="${2:-10}"
ROUNDS="${3:-3}"
INFLIGHT="${INFLIGHT:-64}"
PORT=29392
mkdir -p "$DIR"
command -v fio >/dev/null || { echo "fio is needed (apt-get install fio)" >&2; exit 1; }
cargo build --release -q -p sluice -p bench-harness
# shellcheck source=scripts/bench-cpus.sh
source scripts/bench-cpus.sh

fio_mib() { # $1: file size, $2: extra fio flags
    fio --name=seq --filename="$DIR/fio.dat" --size="$1" --bs=1M --rw=write --direct=1 --ioengine=io_uring \
        --iodepth=4 --runtime="$SECS" --time_based $2 --output-format=terse --terse-version=3 2>/dev/null |
        awk -F';' '{printf "%.1f", $48/1024}'
    rm -f "$DIR/fio.dat"
}
# Larger than SECS seconds at 4 GiB/s, within 40% of the free space.
FREE_GIB=$(df -k --output=avail "$DIR" | tail -1 | awk '{print int($1 / 1048576)}')
FRESH_GIB=$((SECS * 4 < FREE_GIB * 2 / 5 ? SECS * 4 : FREE_GIB * 2 / 5))
((FRESH_GIB > 0)) || { echo "$DIR has too little free space for fio's fresh-space run" >&2; exit 1; }
TCK=$(getconf CLK_TCK)

rm -rf "$DIR/sluice"
"${BROKER_ON[@]}" target/release/sluice broker --data-dir "$DIR/sluice" --host 127.0.0.1 --port $PORT --shards 1 \
    > "$DIR/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DIR/sluice" "$DIR/fio.dat"' EXIT
sleep 1
SEGMENT=$((128 << 20))
STEADY=(--topic-config segment.bytes=$SEGMENT --topic-config retention.bytes=$((2 * SEGMENT)))
# One measured run into topic $1 with $2 partitions (a producer each),
# further sluice-bench flags after. Prints "MiB/s CPU-s-per-GiB", then
# deletes the topic to free the space for the next run.
measure() {
    local topic=$1 parts=$2 cpu0 cpu1 line mib
    shift 2
    cpu0=$(awk '{print $14+$15}' /proc/$BROKER/stat)
    line=$("${CLIENT_ON[@]}" target/release/sluice-bench produce --bootstrap 127.0.0.1:$PORT --topic "$topic" --partitions "$parts" \
        --producers "$parts" --duration "$SECS" --inflight "$INFLIGHT" --batch-records 256 "$@" | grep 'records/sec') ||
        { echo "run into $topic failed; broker log: $DIR/broker.log" >&2; return 1; }
    cpu1=$(awk '{print $14+$15}' /proc/$BROKER/stat)
    mib=$(sed -E 's/.*\(([0-9.]+) MB\/sec\).*/\1/' <<<"$line" | awk '{printf "%.1f", $1 * 1e6 / 1048576}')
    awk -v c=$((cpu1 - cpu0)) -v t="$TCK" -v m="$mib" -v s="$SECS" 'BEGIN { printf "%s %.2f", m, (c / t) / (m * s / 1024) }'
    target/release/sluice topics delete --bootstrap-server 127.0.0.1:$PORT "$topic" >/dev/null
}
# $1 as a whole percentage of $2.
pct() { awk -v m="$1" -v f="$2" 'BEGIN { printf "%.0f", 100 * m / f }'; }
# Prints one result line: $1 label, $2 "MiB/s CPU", $3 fio figure, $4 its name.
report() {
    set -- "$1" $2 "$3" "$4"
    printf "  sluice 1 shard, %-32s %7.1f MiB/s = %3s%% of %s; broker CPU %s s per GiB\n" \
        "$1:" "$2" "$(pct "$2" "$4")" "$5" "$3"
}
RATIOS=()
SYNCED_RATIOS=()
for r in $(seq 1 "$ROUNDS"); do
    over=$(fio_mib 4G "")
    synced=$(fio_mib 4G "--fdatasync=8")
    steady=()
    for parts in 1 4; do
        "${CLIENT_ON[@]}" target/release/sluice-bench produce --bootstrap 127.0.0.1:$PORT --topic "steady-$r-$parts" \
            --partitions $parts --producers $parts --duration 3 --inflight "$INFLIGHT" --batch-records 256 \
            "${STEADY[@]}" >/dev/null
        steady+=("$(measure "steady-$r-$parts" $parts "${STEADY[@]}")")
    done
    fresh=$(fio_mib "${FRESH_GIB}G" "")
    new=()
    for parts in 1 4; do
        new+=("$(measure "new-$r-$parts" $parts)")
    done
    echo "round $r: fio sequential direct 1 MiB writes: overwrite $over MiB/s," \
        "overwrite with fdatasync every 8 MiB $synced MiB/s, fresh space $fresh MiB/s"
    for i in 0 1; do
        parts=$((i == 0 ? 1 : 4))
        report "under retention, $parts partition(s)" "${steady[$i]}" "$over" "fio overwrite"
        SYNCED_RATIOS+=("$(pct "${steady[$i]%% *}" "$synced")")
        printf "%52s = %3s%% of fio overwrite with fdatasync every 8 MiB\n" "" "${SYNCED_RATIOS[-1]}"
        RATIOS+=("$(pct "${steady[$i]%% *}" "$over")")
    done
    for i in 0 1; do
        parts=$((i == 0 ? 1 : 4))
        report "new topic, $parts partition(s)" "${new[$i]}" "$fresh" "fio fresh space"
        RATIOS+=("$(pct "${new[$i]%% *}" "$fresh")")
    done
done
echo "fio same 4 GiB overwrite, fdatasync after every write: $(fio_mib 4G "--fdatasync=1") MiB/s"
if command -v iperf3 >/dev/null; then
    iperf3 -s -1 -p 29399 >/dev/null 2>&1 &
    sleep 0.5
    echo "iperf3 loopback TCP: $(iperf3 -c 127.0.0.1 -p 29399 -t "$SECS" -l 1M -J | python3 -c \
        'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8/2**20))') MiB/s"
fi
echo "in flight per connection: $INFLIGHT requests; ratios to the round's fio, sorted: $(printf '%s\n' "${RATIOS[@]}" | sort -n | tr '\n' ' ')(%)"
echo "under retention vs fio overwrite with fdatasync every 8 MiB, sorted: $(printf '%s\n' "${SYNCED_RATIOS[@]}" | sort -n | tr '\n' ' ')(%)"
