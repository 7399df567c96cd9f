#!/usr/bin/env bash
# Side by side: one shard appending under retention with segment recycling
# on and off (log.segment.recycle), alternating fresh brokers of one build
# (scripts/bench-ab.sh does the runs).
# Usage: scripts/bench-recycle.sh [DIR] [ROUNDS] [SECONDS] [PARTITIONS]
# Env: CHECK (log.retention.check.interval.ms, default Kafka's 300000),
#      and bench-ab.sh's INFLIGHT, SEG, RET.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
broker="target/release/sluice broker --shards 1 --override log.retention.check.interval.ms=${CHECK:-300000}"
LOG_GREP='into a recycled file' exec scripts/bench-ab.sh "$broker --override log.segment.recycle=true" \
    "$broker --override log.segment.recycle=false" "$@"
