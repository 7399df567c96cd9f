#!/usr/bin/env bash
# This machine's limits, for comparing broker figures in the same run:
# sequential direct-I/O write bandwidth and fdatasync latency (fio) on the
# disk of DIR, and loopback TCP bandwidth (iperf3).
# Usage: scripts/baseline.sh [DIR] [SECONDS]   (prints key=value lines)
set -euo pipefail
DIR="${1:-$PWD/bench-data}"
SECS="${2:-10}"
mkdir -p "$DIR"
for tool in fio iperf3; do
    command -v "$tool" >/dev/null || { echo "baseline.sh: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done
f="$DIR/baseline-fio.dat"
trap 'rm -f "$f"' EXIT
# Sequential 1 MiB direct writes, 4 in flight: the disk's write bandwidth.
bw=$(fio --name=seq --filename="$f" --size=2G --bs=1M --rw=write --direct=1 --ioengine=io_uring --iodepth=4 \
        --runtime="$SECS" --time_based --output-format=json 2>/dev/null |
     python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024))')
rm -f "$f"
# 4 KiB writes each followed by fdatasync: what one durable acknowledgement costs.
sync=$(fio --name=sync --filename="$f" --size=256M --bs=4k --rw=write --direct=1 --ioengine=sync --fdatasync=1 \
          --runtime="$SECS" --time_based --output-format=json 2>/dev/null |
       python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
s = j["sync"]["lat_ns"]
p = s.get("percentile", {})
print("%.3f %.3f %.3f" % (s["mean"] / 1e6, p.get("50.000000", 0) / 1e6, p.get("99.000000", 0) / 1e6))')
rm -f "$f"
# 1 MiB writes (iperf3's largest): the broker sends fetch responses in
# pieces of that order, and iperf3's default 128 KiB writes understate what
# loopback carries by ~40% on this machine.
iperf3 -s -1 -p 29399 >/dev/null 2>&1 &
sleep 0.5
lo=$(iperf3 -c 127.0.0.1 -p 29399 -t "$SECS" -l 1M -J |
     python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8 / 2**20))')
read -r sync_mean sync_p50 sync_p99 <<<"$sync"
echo "disk_write_mib_s=$bw"
echo "fdatasync_mean_ms=$sync_mean"
echo "fdatasync_p50_ms=$sync_p50"
echo "fdatasync_p99_ms=$sync_p99"
echo "loopback_mib_s=$lo"
