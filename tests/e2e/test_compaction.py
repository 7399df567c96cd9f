"""cleanup.policy=compact: a compacted topic read from the start holds the
latest record of each key at its original offset, whether producers
compressed their batches or not; tombstones go after delete.retention.ms;
the gaps compaction leaves survive a kill -9 restart."""

import time

import pytest

import helpers as h

FAST = {"log.retention.check.interval.ms": "100"}
KEYS = [f"k{i}".encode() for i in range(10)]


def _read(broker, topic):
    return h.consume_all(broker, topic, [0])


def test_compaction_keeps_latest_per_key(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic = h.unique("cmp")
    h.create_topic(broker, topic, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "300",
        "delete.retention.ms": "1000"})
    recs = [(k, f"{k.decode()}-{r}".encode() * 4, 0) for r in range(20) for k in KEYS]
    acked = h.produce_records(broker, topic, recs, **{"linger.ms": 0, "batch.num.messages": 7})
    latest = {}
    for k, v, _p, o in acked:
        latest[k] = (o, v)
    (tomb,) = h.produce_records(broker, topic, [(KEYS[3], None, 0)])
    time.sleep(0.5)
    # a new key after segment.ms rolls the segment: everything above is sealed
    h.produce_records(broker, topic, [(b"filler", b"x", 0)])
    expect = {k: ov for k, ov in latest.items() if k != KEYS[3]}

    def compacted():
        got = _read(broker, topic)
        by_key = {}
        for k, v, _p, o, _ts in got:
            by_key.setdefault(k, []).append((o, v))
        return got, by_key

    deadline = time.monotonic() + 20
    while True:
        got, by_key = compacted()
        done = all(by_key.get(k) == [ov] for k, ov in expect.items()) and KEYS[3] not in by_key
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert done, f"not compacted: {[(k, len(v)) for k, v in sorted(by_key.items())]}"
    assert by_key[b"filler"] == [(tomb[3] + 1, b"x")]
    segs = sorted(p.name for p in (broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segs) >= 2
    before = [(k, v, o) for k, v, _p, o, _ts in got]
    broker.kill9()
    broker.restart()
    after = [(k, v, o) for k, v, _p, o, _ts in _read(broker, topic)]
    assert after == before, "recovery keeps the compacted log, gaps included"
    # production continues after the last offset
    (more,) = h.produce_records(broker, topic, [(KEYS[0], b"new", 0)])
    assert more[3] == tomb[3] + 2


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compaction_cleans_compressed_batches(broker_factory, codec):
    """Regression: compressed batches were kept whole and their keys not
    even noted, so a topic fed by compressing producers was never compacted."""
    broker = broker_factory(overrides=FAST)
    topic = h.unique("cmpz")
    h.create_topic(broker, topic, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "300"})
    recs = [(k, f"{k.decode()}-{r}".encode() * 8, 0) for r in range(12) for k in KEYS]
    acked = h.produce_records(broker, topic, recs, **{
        "compression.type": codec, "linger.ms": 0, "batch.num.messages": 5})
    latest = {k: (o, v) for k, v, _p, o in acked}
    time.sleep(0.5)
    # a record after segment.ms rolls the segment: everything above is sealed
    (filler,) = h.produce_records(broker, topic, [(b"filler", b"x", 0)])
    deadline = time.monotonic() + 20
    while True:
        by_key = {}
        for k, v, _p, o, _ts in _read(broker, topic):
            by_key.setdefault(k, []).append((o, v))
        done = all(by_key.get(k) == [ov] for k, ov in latest.items())
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert done, f"not compacted: {[(k, len(v)) for k, v in sorted(by_key.items())]}"
    assert by_key[b"filler"] == [(filler[3], b"x")]
    # the cleaned batches are still compressed with the producer's codec
    broker.stop()
    codecs = set()
    for seg in sorted((broker.data_dir / f"{topic}-0").glob("*.log")):
        data, at = seg.read_bytes(), 0
        while at + 61 <= len(data):
            length = int.from_bytes(data[at + 8:at + 12], "big")
            if length == 0:
                break
            codecs.add(int.from_bytes(data[at + 21:at + 23], "big") & 7)
            at += 12 + length
    assert codecs >= {{"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]}, codecs
