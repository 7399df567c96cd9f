#!/usr/bin/env python3
"""Metadata figures of a three-broker sluice cluster on this machine
(issue 23), started with scripts/local-cluster.sh in a fresh directory:

- propagation: CreateTopics answered by one broker until every broker's
  Metadata shows the topic with all its partitions led (p50/p99/max);
- failover: kill -9 of the quorum leader until a survivor reports another
  leader, and until CreateTopics through a survivor succeeds (p50/max over
  rounds); the killed broker is restarted between rounds.

Usage: scripts/bench-metadata.py [--topics N] [--rounds R] [--dir DIR]
       [--port P] [--controller-port C]
Needs confluent-kafka and kafka-python (the e2e venv has them)."""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient

HERE = Path(__file__).resolve().parent


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def ms(x):
    return f"{x * 1000:.0f} ms"


def quorum_leader(bootstrap):
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        [t] = a.describe_metadata_quorum()["topics"]
        return t["partitions"][0]["leader_id"]
    finally:
        a.close()


def shows(admin, topic, partitions):
    md = admin.list_topics(topic, timeout=5)
    t = md.topics.get(topic)
    return t is not None and t.error is None and len(t.partitions) == partitions and all(
        p.error is None and p.leader >= 0 for p in t.partitions.values())


def propagation(ports, n):
    admins = [AdminClient({"bootstrap.servers": f"127.0.0.1:{p}"}) for p in ports]
    out = []
    for i in range(n):
        topic = f"prop-{uuid.uuid4().hex[:8]}"
        for fut in admins[i % len(admins)].create_topics([NewTopic(topic, 3, 1)], request_timeout=30).values():
            fut.result(30)
        answered = time.monotonic()
        pending = set(range(len(admins)))
        while pending:
            pending = {k for k in pending if not shows(admins[k], topic, 3)}
            if pending:
                time.sleep(0.001)
        out.append(time.monotonic() - answered)
    return out


def wait_port(port, timeout=60):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} not ready")


def failover(d, ports, rounds, env):
    elected, created = [], []
    for _ in range(rounds):
        leader = quorum_leader(f"127.0.0.1:{ports[0]}")
        pidfile = Path(d) / f"node-{leader}" / "broker.pid"
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        killed = time.monotonic()
        survivor = ports[(leader) % len(ports)]  # broker i serves ports[i-1]
        got_leader = None
        while got_leader is None:
            try:
                new = quorum_leader(f"127.0.0.1:{survivor}")
                if new not in (leader, -1):
                    got_leader = time.monotonic() - killed
            except Exception:  # noqa: BLE001
                pass
            if got_leader is None:
                time.sleep(0.01)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{survivor}"})
        while True:
            try:
                for fut in admin.create_topics([NewTopic(f"fo-{uuid.uuid4().hex[:8]}", 1, 1)],
                                               request_timeout=10).values():
                    fut.result(15)
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.01)
        created.append(time.monotonic() - killed)
        elected.append(got_leader)
        node = Path(d) / f"node-{leader}"
        log = open(node / "broker.log", "ab")
        proc = subprocess.Popen([env["SLUICE"], "broker", "--config", str(node / "server.properties"), "--shards", "1"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pidfile.write_text(str(proc.pid))
        wait_port(ports[leader - 1])
        time.sleep(3)  # the restarted voter catches up before the next round
    return elected, created


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--port", type=int, default=39092)
    ap.add_argument("--controller-port", type=int, default=39192)
    args = ap.parse_args()
    d = args.dir or tempfile.mkdtemp(prefix="sluice-bench-metadata-")
    env = dict(os.environ)
    env.setdefault("SLUICE", str(HERE.parent / "target/release/sluice"))
    env["SLUICE_BIN"] = env["SLUICE"]
    cluster = [str(HERE / "local-cluster.sh"), "--dir", d, "--port", str(args.port),
               "--controller-port", str(args.controller_port)]
    subprocess.run([cluster[0], "start", *cluster[1:]], check=True, env=env)
    ports = [args.port + 10 * i for i in range(3)]
    try:
        prop = propagation(ports, args.topics)
        print(f"propagation over {len(prop)} topics (CreateTopics answered -> every broker's Metadata): "
              f"p50 {ms(pct(prop, 50))}, p99 {ms(pct(prop, 99))}, max {ms(max(prop))}")
        elected, created = failover(d, ports, args.rounds, env)
        print(f"failover over {args.rounds} rounds (kill -9 of the quorum leader ->): "
              f"new leader p50 {ms(statistics.median(elected))} max {ms(max(elected))}; "
              f"CreateTopics succeeds p50 {ms(statistics.median(created))} max {ms(max(created))}")
    finally:
        subprocess.run([cluster[0], "stop", "--dir", d], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
