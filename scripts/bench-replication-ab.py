#!/usr/bin/env python3
"""Two broker builds side by side on replicated produce (issue 24): e.g. a
follower that fetches only once its last append is durable against one
that pipelines its fetches. Each round starts a fresh broker of two shards
per build, A B then B A (so that a drifting machine favours neither), with
a topic of replication factor 2 (min.insync.replicas=2, 6 partitions: the
copies of one broker's two shards replicate over loopback), and measures:

- sluice-bench, 1 KiB records, acks=all, as fast as it can: records/s and
  the broker's CPU time per record;
- confluent-kafka (librdkafka), 1 KiB records, acks=all, as fast as it can;
- sluice-bench at a fixed --rate: produce p50/p99/p99.9;
- catching up: a topic of replication factor 1 (2 partitions, one per
  shard) filled by sluice-bench for --duration seconds is given a second
  replica on the other shard (AlterPartitionReassignments); the MB/s (10^6
  bytes) the new copies take until both are in the ISR.

Prints each run, then the median of each figure per build and B/A.

Usage: scripts/bench-replication-ab.py BINARY_A BINARY_B [--rounds N]
       [--duration S] [--rate N] [--port P]
Needs confluent-kafka (the e2e venv has it) and target/release/sluice-bench."""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.protocol.admin import AlterPartitionReassignmentsRequest

from bench_clients import bench, confluent_rate, create_in_sync, start_one_broker

HERE = Path(__file__).resolve().parent
PARTITIONS = 6
FIGURES = ["bench rec/s", "us CPU/rec", "confluent rec/s", "p50 ms", "p99 ms", "p99.9 ms", "catch-up MB/s"]


def add_replicas(bootstrap, topic, moves):
    """AlterPartitionReassignments: `moves` is {partition: replicas}."""
    R = AlterPartitionReassignmentsRequest
    parts = [R.ReassignableTopic.ReassignablePartition(partition_index=p, replicas=r) for p, r in moves.items()]
    ka = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resp = ka._manager.run(ka._manager.send, R(timeout_ms=30000, topics=[R.ReassignableTopic(
            name=topic, partitions=parts)], version=0))
    finally:
        ka.close()
    codes = [p.error_code for t in resp.responses for p in t.partitions]
    if any(codes):
        raise SystemExit(f"reassignment refused: {codes}")


def catch_up(env, bootstrap, d, duration, pid):
    """MB/s at which a second replica copies a filled RF 1 topic."""
    create_in_sync(bootstrap, "fill", 2, 1, 1)
    bench(env, bootstrap, "fill", 2, duration, 0, d / "fill", pid)
    size = sum(f.stat().st_size for f in (d / "data").rglob("*.log") if f.parent.name.startswith("fill-"))
    a = AdminClient({"bootstrap.servers": bootstrap})
    leaders = {p: m.leader for p, m in a.list_topics("fill", timeout=10).topics["fill"].partitions.items()}
    t0 = time.monotonic()
    add_replicas(bootstrap, "fill", {p: [n, 1 - n] for p, n in leaders.items()})
    while True:
        parts = a.list_topics("fill", timeout=10).topics["fill"].partitions.values()
        if all(len(p.isrs) == 2 for p in parts):
            return size / (time.monotonic() - t0) / 1e6
        if time.monotonic() - t0 > 600:
            raise SystemExit("the new replicas did not catch up in 10 minutes")
        time.sleep(0.05)


def one_run(binary, env, d, args):
    """The figures of one fresh broker running `binary`."""
    proc = start_one_broker(binary, d, args.port)
    bootstrap = f"127.0.0.1:{args.port}"
    try:
        create_in_sync(bootstrap, "rf2", PARTITIONS, 2, 2)
        rate, cpu, *_ = bench(env, bootstrap, "rf2", PARTITIONS, args.duration, 0, d / "max", proc.pid)
        ck = confluent_rate(bootstrap, "rf2", args.duration)
        _, _, p50, p99, p999 = bench(env, bootstrap, "rf2", PARTITIONS, args.duration, args.rate, d / "rate",
                                     proc.pid)
        copied = catch_up(env, bootstrap, d, args.duration, proc.pid)
        return [rate, cpu, ck, p50, p99, p999, copied]
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--port", type=int, default=39592)
    args = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("SLUICE_BENCH", str(HERE.parent / "target/release/sluice-bench"))
    builds = {"A": args.a, "B": args.b}
    runs = {"A": [], "B": []}
    root = Path(tempfile.mkdtemp(prefix="sluice-bench-ab-"))
    try:
        for r in range(args.rounds):
            for name in ("AB" if r % 2 == 0 else "BA"):
                d = root / f"{name}{r}"
                d.mkdir()
                figures = one_run(builds[name], env, d, args)
                shutil.rmtree(d, ignore_errors=True)
                runs[name].append(figures)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in zip(FIGURES, figures)),
                      flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {n: [statistics.median(col) for col in zip(*rs)] for n, rs in runs.items()}
    for k, a, b in zip(FIGURES, med["A"], med["B"]):
        print(f"median {k}: A {a:.2f}, B {b:.2f}, B/A {b / a:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
