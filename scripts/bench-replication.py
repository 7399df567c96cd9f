#!/usr/bin/env python3
"""Replication figures of a three-broker sluice cluster on this machine
(issue 24), started with scripts/local-cluster.sh in a fresh directory:

- throughput: sluice-bench producing 1 KiB records with acks=all as fast as
  it can, to a topic of replication factor 3 (min.insync.replicas=2) and to
  one of factor 1, alternated A B A B so that both see the same machine;
  the ratio RF3/RF1 of records/s; the same with confluent-kafka;
- latency at a fixed rate (--rate records/s) to each: p50/p99/p99.9;
- failover: kill -9 of the broker leading partition 0 of the RF 3 topic
  while confluent-kafka produces to it with acks=all, until the first
  acknowledgement of a write sent after the kill (the new leader's);
  p50/max over rounds. The killed broker is restarted between rounds.
  Brokers run with broker.session.timeout.ms=3000 (--session-ms): a
  killed broker is fenced, and its partitions move, when that runs out.

Usage: scripts/bench-replication.py [--rounds R] [--duration S] [--rate N]
       [--session-ms MS] [--dir DIR] [--port P] [--controller-port C]
Needs confluent-kafka (the e2e venv has it) and target/release/sluice-bench."""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from bench_clients import confluent_rate, create_in_sync

HERE = Path(__file__).resolve().parent
PARTITIONS = 6
# Brokers the failover rounds started again (children of this process).
RESTARTED = []


def bench(env, bootstrap, topic, duration, rate, out):
    cmd = [env["SLUICE_BENCH"], "produce", "--bootstrap", bootstrap, "--topic", topic,
           "--partitions", str(PARTITIONS), "--record-size", "1024", "--acks", "-1",
           "--duration", str(duration), "--warmup", "1", "--output", str(out)]
    if rate:
        cmd += ["--rate", str(rate)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    s = json.loads((out / "summary.json").read_text())
    lat = s["latency"]["produce"]
    return s["records_per_s"], lat["p50_ms"], lat["p99_ms"], lat["p99_9_ms"]


def leader_port(bootstrap, topic, ports):
    a = AdminClient({"bootstrap.servers": bootstrap})
    md = a.list_topics(topic, timeout=10)
    leader = md.topics[topic].partitions[0].leader
    return md.brokers[leader].port


def failover(d, env, ports, topic, rounds):
    out = []
    for _ in range(rounds):
        port = leader_port(f"127.0.0.1:{ports[0]}", topic, ports)
        i = ports.index(port) + 1
        survivor = f"127.0.0.1:{ports[i % len(ports)]}"
        acked = []
        stop = threading.Event()

        def produce():
            p = Producer({"bootstrap.servers": survivor, "acks": "all", "linger.ms": 0,
                          "enable.idempotence": True, "message.timeout.ms": 60000,
                          "topic.metadata.refresh.interval.ms": 500})
            while not stop.is_set():
                sent = time.monotonic()
                p.produce(topic, value=b"x" * 1024, partition=0,
                          on_delivery=lambda e, m, sent=sent: e is None and acked.append((sent, time.monotonic())))
                p.poll(0.005)
            p.flush(10)

        t = threading.Thread(target=produce, daemon=True)
        t.start()
        time.sleep(2)
        pidfile = Path(d) / f"node-{i}" / "broker.pid"
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        killed = time.monotonic()
        while not any(sent >= killed for sent, _ in acked):
            time.sleep(0.005)
        first = min(at for sent, at in acked if sent >= killed)
        out.append(first - killed)
        stop.set()
        t.join(15)
        node = Path(d) / f"node-{i}"
        log = open(node / "broker.log", "ab")
        proc = subprocess.Popen([env["SLUICE"], "broker", "--config", str(node / "server.properties"),
                                 "--shards", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pidfile.write_text(str(proc.pid))
        RESTARTED.append(proc)
        create_wait_in_sync(f"127.0.0.1:{ports[0]}", topic)
    return out


def create_wait_in_sync(bootstrap, topic):
    a = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            t = a.list_topics(topic, timeout=5).topics[topic]
            if all(len(p.isrs) == 3 for p in t.partitions.values()):
                return
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.2)
    raise SystemExit("the restarted broker did not rejoin the ISR")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--session-ms", type=int, default=3000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--port", type=int, default=39092)
    ap.add_argument("--controller-port", type=int, default=39192)
    ap.add_argument("--failover-only", action="store_true", help="measure only the failover")
    args = ap.parse_args()
    d = Path(args.dir or tempfile.mkdtemp(prefix="sluice-bench-replication-"))
    env = dict(os.environ)
    env.setdefault("SLUICE", str(HERE.parent / "target/release/sluice"))
    env.setdefault("SLUICE_BENCH", str(HERE.parent / "target/release/sluice-bench"))
    env["SLUICE_BIN"] = env["SLUICE"]
    cluster = [str(HERE / "local-cluster.sh"), "--dir", str(d), "--port", str(args.port),
               "--controller-port", str(args.controller_port),
               "--set", f"broker.session.timeout.ms={args.session_ms}", "--set", "broker.heartbeat.interval.ms=500"]
    subprocess.run([cluster[0], "start", *cluster[1:]], check=True, env=env)
    ports = [args.port + 10 * i for i in range(3)]
    bootstrap = f"127.0.0.1:{ports[0]}"
    try:
        create_in_sync(bootstrap, "rf1", PARTITIONS, 1, 1)
        create_in_sync(bootstrap, "rf3", PARTITIONS, 3, 2)
        if not args.failover_only:
            throughput(args, env, bootstrap, d)
        took = failover(d, env, ports, "rf3", args.rounds)
        print(f"failover over {args.rounds} rounds (kill -9 of partition 0's leader -> first acknowledged "
              f"write sent after it; session {args.session_ms} ms): p50 {statistics.median(took):.2f} s, "
              f"max {max(took):.2f} s")
    finally:
        # Brokers this script restarted are its children: stopped and
        # reaped here, or local-cluster.sh would wait on their zombies.
        for proc in RESTARTED:
            proc.terminate()
            proc.wait(60)
        subprocess.run([cluster[0], "stop", "--dir", str(d)], env=env)
        if not args.dir:
            # Tens of GB at full speed: never leave them behind.
            shutil.rmtree(d, ignore_errors=True)
    return 0


def throughput(args, env, bootstrap, d):
    """The as-fast-as-possible and fixed-rate figures, RF 1 against RF 3."""
    runs = {"rf1": [], "rf3": []}
    for k, topic in enumerate(["rf1", "rf3", "rf1", "rf3"]):
        runs[topic].append(bench(env, bootstrap, topic, args.duration, 0, d / f"max-{k}"))
    best = {t: max(r[0] for r in rs) for t, rs in runs.items()}
    print(f"throughput, acks=all, 1 KiB, {PARTITIONS} partitions, as fast as possible (best of 2): "
          f"RF1 {best['rf1']:.0f} rec/s, RF3 {best['rf3']:.0f} rec/s, RF3/RF1 {best['rf3'] / best['rf1']:.2f}")
    ck = {t: confluent_rate(bootstrap, t, args.duration) for t in ("rf1", "rf3", "rf1", "rf3")}
    print(f"confluent-kafka, acks=all, 1 KiB: RF1 {ck['rf1']:.0f} rec/s, RF3 {ck['rf3']:.0f} rec/s, "
          f"RF3/RF1 {ck['rf3'] / ck['rf1']:.2f} (second run of each)")
    for topic in ("rf1", "rf3"):
        _, p50, p99, p999 = bench(env, bootstrap, topic, args.duration, args.rate, d / f"rate-{topic}")
        print(f"{topic} at {args.rate} rec/s: produce p50 {p50:.2f} ms, p99 {p99:.2f} ms, p99.9 {p999:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
