"""100k keyed records through confluent-kafka (librdkafka) with acks=all."""

import time
from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition

import helpers as h

N_RECORDS = 100_000
N_KEYS = 1000
PARTITIONS = 6


@pytest.mark.timeout(600)
def test_bulk_keyed_acks_all(broker):
    topic = h.unique("bulk")
    h.create_topic(broker, topic, PARTITIONS)

    # --- leaders spread over both shards ---------------------------------
    md = h.admin(broker).list_topics(timeout=10)
    assert sorted(md.brokers) == [0, 1], f"brokers in metadata: {md.brokers}"
    for node_id, b in md.brokers.items():
        assert (b.host, b.port) == ("127.0.0.1", broker.shard_port(node_id)), \
            f"broker {node_id} advertised as {b.host}:{b.port}"
    leaders = {p.id: p.leader for p in md.topics[topic].partitions.values()}
    assert sorted(leaders) == list(range(PARTITIONS))
    assert set(leaders.values()) == {0, 1}, f"partition leaders not spread: {leaders}"

    # --- produce ---------------------------------------------------------
    p = h.producer(broker, acks="all", **{"linger.ms": 5})
    reports = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append((msg.key(), err))
        else:
            reports[msg.value()] = (msg.key(), msg.partition(), msg.offset())

    t0 = time.monotonic()
    for i in range(N_RECORDS):
        key = f"key-{i % N_KEYS}".encode()
        value = f"{key.decode()}|seq={i}".encode()
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(180)
    produce_s = time.monotonic() - t0
    assert left == 0, f"{left} records undelivered after flush"
    assert not errors, f"{len(errors)} delivery errors; first: {errors[:5]}"
    assert len(reports) == N_RECORDS, f"{len(reports)} delivery reports for {N_RECORDS}"

    # delivery reports are self-consistent: offsets per partition are unique
    # and dense from 0, and one key maps to one partition
    by_part = defaultdict(list)
    key_part = {}
    for value, (key, part, off) in reports.items():
        by_part[part].append(off)
        assert key_part.setdefault(key, part) == part, f"key {key} in several partitions"
    for part, offs in by_part.items():
        offs.sort()
        assert offs == list(range(len(offs))), \
            f"partition {part}: acked offsets not dense 0..{len(offs) - 1}"
    assert len(by_part) > 1, "all keys hashed to one partition?"

    # --- consume back ----------------------------------------------------
    t1 = time.monotonic()
    got = h.consume_all(broker, topic, range(PARTITIONS), timeout=180, expect=N_RECORDS,
                        **{"fetch.max.bytes": 52428800})
    consume_s = time.monotonic() - t1
    assert len(got) == N_RECORDS, f"consumed {len(got)} records, expected {N_RECORDS}"

    seen = set()
    last_seq = {}
    for key, value, part, off, _ts in got:
        assert value in reports, f"consumed unknown value {value!r} at {part}/{off}"
        assert value not in seen, f"duplicate value {value!r} at {part}/{off}"
        seen.add(value)
        exp_key, exp_part, exp_off = reports[value]
        assert (key, part, off) == (exp_key, exp_part, exp_off), (
            f"value {value!r}: consumed at key={key} {part}/{off}, "
            f"delivery report said key={exp_key} {exp_part}/{exp_off}")
        k, seq = value.decode().split("|seq=")
        assert k.encode() == key
        seq = int(seq)
        # per key, records arrive in production order (within one partition)
        assert last_seq.get(key, -1) < seq, f"key {key}: seq {seq} after {last_seq[key]}"
        last_seq[key] = seq
    assert len(last_seq) == N_KEYS

    # watermarks agree
    c = h.consumer(broker)
    try:
        for part, offs in by_part.items():
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10,
                                             cached=False)
            assert (lo, hi) == (0, len(offs)), f"partition {part} watermarks {(lo, hi)}"
    finally:
        c.close()
    print(f"produced {N_RECORDS} in {produce_s:.1f}s, consumed in {consume_s:.1f}s")
    broker.assert_alive()


def test_consume_order_per_partition(broker):
    """Fetch returns records in offset order, each offset exactly once."""
    topic = h.unique("order")
    h.create_topic(broker, topic, 2)
    recs = [(None, f"v{i}".encode(), i % 2) for i in range(2000)]
    acked = h.produce_records(broker, topic, recs)
    got = h.consume_all(broker, topic, [0, 1], expect=2000)
    offs = defaultdict(list)
    for _k, v, part, off, _ts in got:
        offs[part].append(off)
    for part in (0, 1):
        assert offs[part] == list(range(1000)), f"partition {part} offsets out of order"
    assert {(v, p, o) for _k, v, p, o in acked} == {(v, p, o) for _k, v, p, o, _ in got}
