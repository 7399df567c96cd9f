"""What the replication benchmark scripts share: creating a topic and
waiting until its replicas are in sync, and load from a third-party
client (a figure only sluice-bench sees is not yet a figure,
docs/BENCHMARKS.md), starting one broker, and sluice-bench runs with the
broker's CPU time per record."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def create_in_sync(bootstrap, name, partitions, rf, min_isr):
    """Creates topic `name` and waits until every partition has a leader
    and all `rf` replicas in sync."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    conf = {"min.insync.replicas": str(min_isr)}
    for f in a.create_topics([NewTopic(name, partitions, rf, config=conf)], request_timeout=30).values():
        f.result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        t = a.list_topics(name, timeout=5).topics[name]
        if len(t.partitions) == partitions and all(len(p.isrs) == rf and p.leader >= 0
                                                   for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise SystemExit(f"{name}: replicas not in sync")


def confluent_rate(bootstrap, topic, duration, record=1024):
    """Records/s confluent-kafka (librdkafka) gets acknowledged with
    acks=all, producing `record`-byte values as fast as it can for
    `duration` seconds (then waiting for the last acknowledgements)."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1 << 20, "queue.buffering.max.messages": 200000})
    done = [0]

    def cb(err, _msg):
        if err is None:
            done[0] += 1

    value = b"x" * record
    t0 = time.monotonic()
    while time.monotonic() - t0 < duration:
        try:
            p.produce(topic, value=value, on_delivery=cb)
        except BufferError:
            p.poll(0.001)
    p.flush(60)
    return done[0] / (time.monotonic() - t0)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def bench(env, bootstrap, topic, partitions, duration, rate, out, pid, record=1024):
    """sluice-bench producing `record`-byte records with acks=all to
    `topic` for `duration` seconds, as fast as it can (`rate` 0) or at
    `rate` records/s: (records/s, broker `pid`'s CPU microseconds per
    record, produce p50, p99, p99.9 in ms)."""
    cmd = [env["SLUICE_BENCH"], "produce", "--bootstrap", bootstrap, "--topic", topic,
           "--partitions", str(partitions), "--record-size", str(record), "--acks", "-1",
           "--duration", str(duration), "--warmup", "1", "--output", str(out)]
    if rate:
        cmd += ["--rate", str(rate)]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    s = json.loads((out / "summary.json").read_text())
    lat = s["latency"]["produce"]
    # CPU over the whole run (warm-up included) per record at the measured rate.
    per_record_us = cpu / (s["records_per_s"] * wall) * 1e6
    return s["records_per_s"], per_record_us, lat["p50_ms"], lat["p99_ms"], lat["p99_9_ms"]


def start_one_broker(binary, d, port, shards=2):
    """Starts `binary` as one broker of `shards` shards in `d`/data, its log
    in `d`/broker.log, and waits until it is ready."""
    log = open(d / "broker.log", "wb")
    proc = subprocess.Popen([binary, "broker", "--data-dir", str(d / "data"), "--port", str(port),
                             "--shards", str(shards)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not re.search(rb"sluice broker ready", (d / "broker.log").read_bytes()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the broker did not start; see {d / 'broker.log'}")
        time.sleep(0.1)
    return proc
