#!/usr/bin/env python3
"""Replication between two shards of one broker (issue 24): what the copy
costs, and whether its transport (loopback Fetch) matters. One broker of
two shards in a fresh directory; topics of replication factor 1 and 2
(min.insync.replicas=2), 6 partitions each:

- throughput: sluice-bench producing 1 KiB records with acks=all as fast as
  it can, RF 1 and RF 2 alternated A B A B (best of 2), with the broker's
  CPU time per record (user+system, from /proc) during each run;
- the same with a third-party client: confluent-kafka (librdkafka)
  producing 1 KiB records with acks=all for --duration seconds;
- latency at a fixed rate (--rate records/s): p50/p99/p99.9 per topic;
- what loopback TCP carries on this machine (iperf3, one stream, if
  installed), against the bytes per second the RF 2 copy needed.

Usage: scripts/bench-shard-replication.py [--duration S] [--rate N] [--port P]
Needs confluent-kafka (the e2e venv has it) and target/release/sluice-bench."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_clients import bench, confluent_rate, create_in_sync, start_one_broker

HERE = Path(__file__).resolve().parent
PARTITIONS = 6
RECORD = 1024


def loopback_gbit():
    """One iperf3 stream over loopback, in Gbit/s; None without iperf3."""
    if not shutil.which("iperf3"):
        return None
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", "39555"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", "39555", "-t", "3", "-J"],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        server.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--port", type=int, default=39492)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="sluice-bench-shards-"))
    env = dict(os.environ)
    env.setdefault("SLUICE", str(HERE.parent / "target/release/sluice"))
    env.setdefault("SLUICE_BENCH", str(HERE.parent / "target/release/sluice-bench"))
    proc = start_one_broker(env["SLUICE"], d, args.port)
    bootstrap = f"127.0.0.1:{args.port}"
    try:
        create_in_sync(bootstrap, "rf1", PARTITIONS, 1, 1)
        create_in_sync(bootstrap, "rf2", PARTITIONS, 2, 2)
        runs = {"rf1": [], "rf2": []}
        for k, topic in enumerate(["rf1", "rf2", "rf1", "rf2"]):
            runs[topic].append(bench(env, bootstrap, topic, PARTITIONS, args.duration, 0, d / f"max-{k}", proc.pid))
        best = {t: max(rs) for t, rs in runs.items()}
        print(f"sluice-bench, acks=all, 1 KiB, {PARTITIONS} partitions, as fast as possible (best of 2): "
              f"RF1 {best['rf1'][0]:.0f} rec/s ({best['rf1'][1]:.1f} us broker CPU/record), "
              f"RF2 {best['rf2'][0]:.0f} rec/s ({best['rf2'][1]:.1f} us/record), "
              f"RF2/RF1 {best['rf2'][0] / best['rf1'][0]:.2f}")
        ck = {t: confluent_rate(bootstrap, t, args.duration, RECORD) for t in ("rf1", "rf2", "rf1", "rf2")}
        print(f"confluent-kafka, acks=all, 1 KiB: RF1 {ck['rf1']:.0f} rec/s, RF2 {ck['rf2']:.0f} rec/s, "
              f"RF2/RF1 {ck['rf2'] / ck['rf1']:.2f} (second run of each)")
        for topic in ("rf1", "rf2"):
            _, _, p50, p99, p999 = bench(env, bootstrap, topic, PARTITIONS, args.duration, args.rate, d / f"rate-{topic}", proc.pid)
            print(f"{topic} at {args.rate} rec/s: produce p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99.9 {p999:.2f} ms")
        gbit = loopback_gbit()
        need = best["rf2"][0] * RECORD * 8 / 1e9
        if gbit is not None:
            print(f"loopback TCP (iperf3, one stream): {gbit:.1f} Gbit/s; the RF2 copy carried {need:.2f} Gbit/s "
                  f"({need / gbit * 100:.1f}% of it)")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
