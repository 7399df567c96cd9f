#!/usr/bin/env bash
# Starts a fresh sluice broker (all cores, data in DIR), measures the
# machine's limits (scripts/baseline.sh) and runs the standard profiles
# (scripts/load-test.sh), then writes docs/benchmarks/<date>.md with each
# figure next to its physical limit, and the latency plots next to it.
# Usage: scripts/bench.sh [DIR] [SECONDS per profile]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR="${1:-$PWD/bench-data}"
SECS="${2:-20}"
PORT=29700
stamp="$(date -u +%Y-%m-%dT%H%M)"
results="bench-results/$stamp"
mkdir -p "$DIR" "$results" docs/benchmarks
cargo build --release -q -p sluice -p bench-harness

echo "==> baseline"
scripts/baseline.sh "$DIR" "$SECS" | tee "$results/baseline.txt"
source "$results/baseline.txt"

rm -rf "$DIR/sluice"
target/release/sluice broker --data-dir "$DIR/sluice" --host 127.0.0.1 --port $PORT > "$results/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null; rm -rf "$DIR/sluice"' EXIT
for _ in $(seq 50); do target/release/sluice cluster --bootstrap-server 127.0.0.1:$PORT >/dev/null 2>&1 && break; sleep 0.1; done

for p in throughput latency e2e consume; do
    echo "==> profile $p"
    scripts/load-test.sh --bootstrap-server 127.0.0.1:$PORT --profile "$p" --duration "$SECS" --output "$results/$p" | tail -8
done

get() { python3 -c "import json,sys; d=json.load(open('$results/$1/summary.json')); print($2)"; }
limit=$(python3 -c "print(min($disk_write_mib_s, $loopback_mib_s))")
tp=$(get throughput 'd["mb_per_s"]*1e6/2**20')
cons=$(get consume 'd["mb_per_s"]*1e6/2**20')
out="docs/benchmarks/$stamp.md"
cp "$results/latency/latency.svg" "docs/benchmarks/$stamp-latency.svg"
cp "$results/e2e/latency.svg" "docs/benchmarks/$stamp-e2e.svg"
python3 - "$out" <<PY
import json, sys
r = "$results"
def s(p): return json.load(open(f"{r}/{p}/summary.json"))
tp, lat, e2e, cons = s("throughput"), s("latency"), s("e2e"), s("consume")
mib = lambda d: d["mb_per_s"] * 1e6 / 2**20
limit = min($disk_write_mib_s, $loopback_mib_s)
lines = [
 f"# Benchmark run {r.split('/')[-1]} (scripts/bench.sh, {$SECS} s per profile)", "",
 "Machine limits measured in the same run (scripts/baseline.sh): disk sequential direct write "
 f"{$disk_write_mib_s} MiB/s, fdatasync p50 {$fdatasync_p50_ms} ms / p99 {$fdatasync_p99_ms} ms, "
 f"loopback TCP {$loopback_mib_s} MiB/s.", "",
 "| profile | figure | value | limit | % of limit | target |", "|---|---|---|---|---|---|",
 f"| throughput (produce, 1 KiB, acks=all, {tp['partitions']} partitions) | MiB/s | {mib(tp):.0f} | {limit:.0f} (min of disk, loopback) | {100*mib(tp)/limit:.0f}% | >= 60% |",
 f"| latency (produce 20 MB/s, acks=all) | p99 / p99.9 ms | {lat['latency']['produce']['p99_ms']:.2f} / {lat['latency']['produce']['p99_9_ms']:.2f} | | | <= 10 / <= 20 |",
 f"| e2e (20 MB/s) | end-to-end p99 / p99.9 ms | {e2e['latency']['end_to_end']['p99_ms']:.2f} / {e2e['latency']['end_to_end']['p99_9_ms']:.2f} | | | |",
 f"| consume (from the cache) | MiB/s | {mib(cons):.0f} | {$loopback_mib_s:.0f} (loopback) | {100*mib(cons)/$loopback_mib_s:.0f}% | >= 60% |",
 "", f"Harness CPU: throughput {tp['harness_cpu_cores']:.2f} cores, latency {lat['harness_cpu_cores']:.2f}, "
 f"e2e {e2e['harness_cpu_cores']:.2f}, consume {cons['harness_cpu_cores']:.2f}.", "",
 f"![produce latency at 20 MB/s]({r.split('/')[-1]}-latency.svg)", f"![end-to-end latency]({r.split('/')[-1]}-e2e.svg)", "",
]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
echo "wrote $out"
cat "$out"
