"""Fetch served from disk, not only from the in-memory cache of recent
batches: catch-up readers on a broker that has not restarted, and fetch
offsets that fall inside a batch."""

import os

from confluent_kafka import TopicPartition

import helpers as h

# More than the per-partition cache of recent batches (4 MiB), so the start of
# the log can only be read back from the segment file.
RECORDS = 12_000
SIZE = 1024


def test_catch_up_read_from_disk_without_restart(broker):
    """Regression: on a device without polled I/O, glommio's per-thread probe
    ran against a new empty segment, wrongly enabled IOPOLL, and every disk
    read of that shard failed with EOPNOTSUPP until the broker restarted."""
    topic = h.unique("disk")
    h.create_topic(broker, topic, 2)
    recs = [(f"k{i}".encode(), os.urandom(SIZE - 16) + i.to_bytes(16, "big"), i % 2)
            for i in range(RECORDS)]
    acked = h.produce_records(broker, topic, recs, **{"acks": "1", "linger.ms": 5})
    got = h.consume_all(broker, topic, range(2), expect=RECORDS, timeout=120)
    stored = {(p, o): (k, v) for k, v, p, o, _ts in got}
    assert len(stored) == RECORDS
    for k, v, p, o in acked:
        assert stored[(p, o)] == (k, v), f"partition {p} offset {o} differs"


def test_fetch_offset_inside_a_batch_returns_that_batch(broker):
    topic = h.unique("mid")
    h.create_topic(broker, topic, 1)
    # one producer batch of 50 records: linger long enough to batch them all
    recs = [(None, f"v{i}".encode(), 0) for i in range(50)]
    h.produce_records(broker, topic, recs, **{"linger.ms": 200, "batch.num.messages": 1000})
    got = h.consume_all(broker, topic, [0], start=37, expect=13)
    offsets = [o for _k, _v, _p, o, _ts in got]
    # the client drops the records before the requested offset
    assert offsets == list(range(37, 50))
    assert [v for _k, v, *_ in got] == [f"v{i}".encode() for i in range(37, 50)]


def test_watermarks_follow_durable_end(broker):
    topic = h.unique("wm")
    h.create_topic(broker, topic, 1)
    h.produce_records(broker, topic, [(None, b"x", 0)] * 10)
    c = h.consumer(broker)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 10)
    finally:
        c.close()
