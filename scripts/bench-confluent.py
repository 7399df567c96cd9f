#!/usr/bin/env python3
"""Produce/consume throughput with confluent-kafka (librdkafka) against any
Kafka-compatible broker. Prints one line per phase, e.g.

    produce: 200000 records x 1024 B acks=all in 4.10 s = 48780 rec/s, 47.6 MiB/s

Usage: scripts/bench-confluent.py --bootstrap 127.0.0.1:9092 [--records N]
       [--size BYTES] [--partitions P] [--acks all|1|0] [--topic NAME]
       [--compression none|gzip|snappy|lz4|zstd]

Until sluice-bench (issue 7) exists this is the project's throughput probe.
It is closed-loop (librdkafka batches as fast as acks return), so it measures
throughput, not latency under a target rate."""

import argparse
import os
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--topic", default=None)
    ap.add_argument("--compression", default="none",
                    help="the producer's compression.type (with one, values are half random and half "
                         "repeated, so that they compress about 2:1)")
    args = ap.parse_args()

    topic = args.topic or f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)

    payload = os.urandom(args.size)
    if args.compression != "none":
        payload = os.urandom(args.size // 2) + b"x" * (args.size - args.size // 2)
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": 5,
        "batch.size": 1 << 20,
        "queue.buffering.max.kbytes": 1 << 20,
        "enable.idempotence": False,
        "compression.type": args.compression,
    })
    errors = 0

    def on_delivery(err, _msg):
        nonlocal errors
        if err is not None:
            errors += 1

    start = time.perf_counter()
    for i in range(args.records):
        while True:
            try:
                p.produce(topic, payload, key=str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.005)
        p.poll(0)
    p.flush(120)
    elapsed = time.perf_counter() - start
    mib = args.records * args.size / (1 << 20)
    print(f"produce: {args.records} records x {args.size} B acks={args.acks} compression={args.compression} "
          f"partitions={args.partitions} in {elapsed:.2f} s = "
          f"{args.records / elapsed:.0f} rec/s, {mib / elapsed:.1f} MiB/s, errors={errors}")

    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"bench-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "fetch.max.bytes": 64 << 20,
        # librdkafka pauses fetching for this long whenever its local queue
        # is over its threshold; 0 keeps the figure about the broker.
        "fetch.queue.backoff.ms": 0,
    })
    c.assign([TopicPartition(topic, i, 0) for i in range(args.partitions)])
    got = 0
    start = time.perf_counter()
    deadline = start + 300
    while got < args.records and time.perf_counter() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    print(f"consume: {got} records in {elapsed:.2f} s = {got / elapsed:.0f} rec/s, "
          f"{got * args.size / (1 << 20) / elapsed:.1f} MiB/s")


if __name__ == "__main__":
    main()
