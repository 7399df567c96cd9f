"""What the replication benchmark scripts share: creating a topic and
waiting until its replicas are in sync, and load from a third-party
client (a figure only sluice-bench sees is not yet a figure,
docs/BENCHMARKS.md)."""

import time

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
