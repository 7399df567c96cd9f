#!/usr/bin/env bash
# Drives a running Kafka-compatible broker with sluice-bench and leaves the
# latency histograms (.hgrm), summary.json and latency.svg in --output.
# Starts nothing: point it at a broker you run.
#
#   scripts/load-test.sh --bootstrap-server 127.0.0.1:9092 --profile latency --duration 10 --output DIR
#   scripts/load-test.sh --bootstrap-server HOST:PORT -- e2e --rate 50000 --partitions 4   (raw harness flags)
#
# Profiles (1 KiB records, acks=all):
#   throughput  produce as fast as possible, one partition per shard, 8 requests in flight (default 30 s)
#   latency     produce at a fixed 20 MB/s (20,000 records/s), open loop, 5 ms linger   (default 30 s)
#   e2e         produce at 20 MB/s and consume at once: produce-to-consume latency      (default 30 s)
#   consume     write 100 MB per shard, then read it over and over (from the broker's cache) (default 30 s)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap=127.0.0.1:9092; profile=""; duration=""; output=""; raw=()
usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap-server) bootstrap="$2"; shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --output) output="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; raw=("$@"); break ;;
        *) echo "load-test.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
    esac
done
bench="${SLUICE_BENCH:-$here/../target/release/sluice-bench}"
[[ -x "$bench" ]] || bench="$(command -v sluice-bench || true)"
[[ -n "$bench" ]] || { echo "load-test.sh: sluice-bench not found (cargo build --release)" >&2; exit 1; }
output="${output:-bench-results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$output"
# One partition per shard: ask the cluster how many nodes it has.
nodes() {
    "${SLUICE_BIN:-$here/../target/release/sluice}" cluster --bootstrap-server "$bootstrap" 2>/dev/null | grep -c '^Node ' || echo 1
}
if [[ ${#raw[@]} -gt 0 ]]; then
    exec "$bench" "${raw[@]}" --bootstrap "$bootstrap" --output "$output"
fi
case "$profile" in
    throughput)
        parts=$(nodes)
        args=(produce --topic bench-throughput --partitions "$parts" --producers "$parts" --inflight 64
              --batch-records 256 --record-size 1024 --acks -1 --warmup 2 --duration "${duration:-30}") ;;
    latency)
        args=(produce --topic bench-latency --partitions 1 --rate 20000 --linger-ms 5 --record-size 1024
              --acks -1 --warmup 2 --duration "${duration:-30}") ;;
    e2e)
        args=(e2e --topic bench-e2e --partitions 1 --rate 20000 --linger-ms 5 --record-size 1024
              --acks -1 --warmup 2 --duration "${duration:-30}") ;;
    consume)
        parts=$(nodes)
        "$bench" produce --bootstrap "$bootstrap" --topic bench-consume --partitions "$parts" --producers "$parts" \
            --records $((parts * 100000)) --record-size 1024 --duration 600 >/dev/null
        args=(consume --topic bench-consume --partitions "$parts" --record-size 1024 --rewind --warmup 2
              --duration "${duration:-30}") ;;
    "") echo "load-test.sh: give --profile throughput|latency|e2e|consume, or raw flags after --" >&2; exit 1 ;;
    *) echo "load-test.sh: unknown profile $profile" >&2; exit 1 ;;
esac
"$bench" "${args[@]}" --bootstrap "$bootstrap" --output "$output"
