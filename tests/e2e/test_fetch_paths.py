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


# ---------------------------------------------------------------------------
# raw Fetch v4: long poll, limits, non-null empty records
# ---------------------------------------------------------------------------

import threading  # noqa: E402
import time  # noqa: E402

import kafka_wire as kw  # noqa: E402

HOST = "127.0.0.1"


def _leader_conn(broker, topic, part=0):
    return kw.WireConn(HOST, broker.shard_port(h.partition_leaders(broker, topic)[part]))


def _produce(c, topic, records):
    pr = kw.parse_produce_v3_response(c.request(
        kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, kw.build_record_batch(records))))
    assert pr[(topic, 0)][0] == 0, pr


def _fetch(c, topic, offset, **kw_):
    fr = kw.parse_fetch_v4_response(c.request(kw.API_FETCH, 4, kw.fetch_v4_body(topic, 0, offset, **kw_)))
    return fr[(topic, 0)]


def test_fetch_long_poll_waits_then_returns_empty_not_null(broker):
    topic = h.unique("lp")
    h.create_topic(broker, topic, 1)
    with _leader_conn(broker, topic) as c:
        t0 = time.monotonic()
        err, hw, recs = _fetch(c, topic, 0, max_wait_ms=800, min_bytes=1)
        waited = time.monotonic() - t0
    assert (err, hw) == (0, 0)
    assert recs == b"", f"records must be empty bytes, not {recs!r}"
    assert 0.7 <= waited < 5, f"long poll returned after {waited:.2f}s, max_wait_ms was 800"


def test_fetch_long_poll_wakes_when_data_arrives(broker):
    topic = h.unique("lpw")
    h.create_topic(broker, topic, 1)
    result = {}

    def waiter():
        with _leader_conn(broker, topic) as c:
            t0 = time.monotonic()
            result["fetch"] = _fetch(c, topic, 0, max_wait_ms=10_000, min_bytes=1)
            result["waited"] = time.monotonic() - t0

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    with _leader_conn(broker, topic) as c:
        _produce(c, topic, [(b"k", b"wake up")])
    t.join(15)
    err, hw, recs = result["fetch"]
    assert (err, hw) == (0, 1)
    assert [r["value"] for r in kw.decode_record_batches(recs)] == [b"wake up"]
    assert result["waited"] < 5, f"fetch slept {result['waited']:.2f}s after data arrived"


def test_fetch_byte_limits(broker):
    topic = h.unique("lim")
    h.create_topic(broker, topic, 1)
    with _leader_conn(broker, topic) as c:
        for i in range(3):
            _produce(c, topic, [(None, bytes([i]) * 1000)])  # three batches of ~1070 bytes
        _err, _hw, all3 = _fetch(c, topic, 0)
        assert len(kw.decode_record_batches(all3)) == 3
        one = len(all3) // 3
        # KIP-74: a limit smaller than the first batch still returns that batch
        err, _hw, recs = _fetch(c, topic, 0, partition_max_bytes=1)
        assert err == 0 and len(kw.decode_record_batches(recs)) == 1
        err, _hw, recs = _fetch(c, topic, 0, max_bytes=1, partition_max_bytes=1 << 20)
        assert err == 0 and len(kw.decode_record_batches(recs)) == 1
        # room for two batches but not three
        err, _hw, recs = _fetch(c, topic, 0, partition_max_bytes=2 * one + 10)
        assert [r["value"][0] for r in kw.decode_record_batches(recs)] == [0, 1]
        err, _hw, recs = _fetch(c, topic, 0, max_bytes=2 * one + 10)
        assert [r["value"][0] for r in kw.decode_record_batches(recs)] == [0, 1]
        # from the middle
        err, _hw, recs = _fetch(c, topic, 2)
        assert [r["value"][0] for r in kw.decode_record_batches(recs)] == [2]
        # past the end
        err, hw, recs = _fetch(c, topic, 4, max_wait_ms=0)
        assert (err, hw) == (1, 3)


def test_pipelined_metadata_autocreate_then_produce_keeps_order(broker):
    """Kafka answers a connection's requests in order, as if one at a time.
    Produce appends as soon as it is read, so a Produce pipelined right
    behind a Metadata request that auto-creates its topic must still find
    the topic (regression: it got UNKNOWN_TOPIC_OR_PARTITION)."""
    for i in range(5):
        topic = h.unique(f"pipe{i}")
        # A single-partition topic lives on shard 0 (the emptiest node first).
        with kw.WireConn(HOST, broker.shard_port(0)) as c:
            c.send(kw.request_frame(kw.API_METADATA, 4, 1, kw.metadata_v4_body([topic], True))
                   + kw.request_frame(kw.API_PRODUCE, 3, 2, kw.produce_v3_body(
                       topic, 0, kw.build_record_batch([(b"k", b"v")]))))
            md = c.recv_frame()
            pr = c.recv_frame()
        assert md[:4] == (1).to_bytes(4, "big") and pr[:4] == (2).to_bytes(4, "big")
        leaders = h.partition_leaders(broker, topic)
        if leaders[0] != 0:
            continue  # placed on the other shard: NOT_LEADER is right there
        assert kw.parse_produce_v3_response(pr[4:])[(topic, 0)] == (0, 0)
        return
    raise AssertionError("no auto-created topic landed on shard 0 in 5 tries")
