"""Load from a third-party client for the benchmark scripts: a figure only
sluice-bench sees is not yet a figure (docs/BENCHMARKS.md)."""

import time

from confluent_kafka import Producer


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
