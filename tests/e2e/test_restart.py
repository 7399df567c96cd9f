"""Durability across restarts: clean SIGTERM restart and kill -9 during
acks=all production."""

import time
from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition

import helpers as h

PARTITIONS = 4


def _check_all_present(acked, got, context):
    """Every acked (partition, offset) -> value must be consumed identically."""
    stored = {(p, o): v for _k, v, p, o, _ts in got}
    h.assert_acked_readable(acked, stored, context, f"consumed={len(got)}")
    # offsets must be dense: no holes within a partition
    by_part = defaultdict(list)
    for (p, o) in stored:
        by_part[p].append(o)
    for p, offs in by_part.items():
        offs.sort()
        assert offs == list(range(offs[0], offs[0] + len(offs))), \
            f"{context}: partition {p} has offset holes"


def test_clean_restart_keeps_topics_and_records(broker):
    topic = h.unique("rst")
    h.create_topic(broker, topic, PARTITIONS, config={"retention.ms": "86400000"})
    recs = [(f"k{i % 50}".encode(), f"before-{i}".encode()) for i in range(3000)]
    acked = h.produce_records(broker, topic, recs)
    ends = defaultdict(int)
    for _k, _v, p, o in acked:
        ends[p] = max(ends[p], o + 1)

    broker.stop()
    broker.restart()

    t = h.wait_topic(broker, topic, PARTITIONS)
    assert len(t.partitions) == PARTITIONS
    got = h.consume_all(broker, topic, range(PARTITIONS), expect=len(recs))
    _check_all_present({(p, o): v for _k, v, p, o in acked}, got, "after clean restart")
    assert len(got) == len(recs), f"consumed {len(got)} records, produced {len(recs)}"

    # the log continues where it left off (no offset reuse / overwrite)
    more = h.produce_records(broker, topic, [(None, f"after-{p}".encode(), p)
                                             for p in range(PARTITIONS)])
    for _k, _v, p, o in more:
        assert o == ends[p], f"partition {p}: first offset after restart {o}, expected {ends[p]}"
    got = h.consume_all(broker, topic, range(PARTITIONS), expect=len(recs) + PARTITIONS)
    assert len(got) == len(recs) + PARTITIONS

    # a second restart, this time without producing in between
    broker.restart()
    got2 = h.consume_all(broker, topic, range(PARTITIONS), expect=len(got))
    by_pos = lambda r: (r[2], r[3])  # noqa: E731  (keys may be None)
    assert sorted(got2, key=by_pos) == sorted(got, key=by_pos)


@pytest.mark.timeout(600)
def test_kill9_during_acks_all_loses_no_acked_record(broker):
    topic = h.unique("k9")
    h.create_topic_on_both_shards(broker, topic, PARTITIONS)

    all_acked = {}
    for rnd in range(3):
        rec = h.AckRecorder(broker, topic, f"round{rnd}")
        rec.start()
        # wait for ~2 s of production (and at least some acknowledgements)
        deadline = time.monotonic() + 20
        time.sleep(2.0)
        while len(rec.acked) < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        broker.kill9()
        acked_at_kill = len(rec.acked)
        rec.finish()
        assert acked_at_kill >= 100, \
            f"round {rnd}: only {acked_at_kill} records acknowledged before kill -9"
        parts_acked = {p for p, _o in rec.acked}
        assert parts_acked == set(range(PARTITIONS)), \
            f"round {rnd}: acks only for partitions {parts_acked}"
        for po, v in rec.acked.items():
            assert po not in all_acked, \
                f"round {rnd}: offset {po} acknowledged twice ({all_acked[po]!r} and {v!r})"
        all_acked.update(rec.acked)
        del rec

        broker.restart()
        h.wait_topic(broker, topic, PARTITIONS)
        got = h.consume_all(broker, topic, range(PARTITIONS), timeout=120)
        _check_all_present(all_acked, got, f"round {rnd} after kill -9")

        # watermarks cover at least every acknowledged record
        c = h.consumer(broker)
        try:
            for p in range(PARTITIONS):
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                 cached=False)
                max_acked = max((o for (pp, o) in all_acked if pp == p), default=-1)
                assert lo == 0 and hi > max_acked, \
                    f"round {rnd} partition {p}: watermarks {(lo, hi)}, max acked {max_acked}"
        finally:
            c.close()
        print(f"round {rnd}: {len(all_acked)} acked records verified")
    h.assert_healthy(broker)


def test_segments_roll_and_survive_restart(broker):
    """segment.bytes makes the log roll into Kafka-named segment files; reads
    span segments, and a kill -9 restart recovers all of them."""
    topic = h.unique("roll")
    h.create_topic(broker, topic, 1, config={"segment.bytes": "65536"})
    recs = [(None, f"{i:06d}".encode() * 170, 0) for i in range(400)]  # ~1 KiB each
    acked = h.produce_records(broker, topic, recs, **{"linger.ms": 0, "batch.num.messages": 20})
    pdir = broker.data_dir / f"{topic}-0"
    segs = sorted(p.name for p in pdir.glob("*.log"))
    assert len(segs) >= 4, f"expected several segments of 64 KiB, got {segs}"
    assert all(len(s) == len("00000000000000000000.log") for s in segs), segs
    assert segs[0] == "00000000000000000000.log"
    # sealed segments are cut to their logical size, at most segment.bytes
    # (a single batch larger than that would be allowed to overflow)
    for s in segs[:-1]:
        assert (pdir / s).stat().st_size <= 65536, (s, (pdir / s).stat().st_size)
    by_offset = {o: v for _k, v, _p, o in acked}
    for rnd in range(2):
        got = h.consume_all(broker, topic, [0], expect=len(recs))
        assert {o: v for _k, v, _p, o, _ts in got} == by_offset, f"round {rnd}"
        broker.kill9()
        broker.restart()


def test_temp_files_a_crash_leaves_are_removed_at_the_next_start(broker):
    """Index files, snapshots, the log start offset and compacted segments are
    replaced through `<name>.tmp` files; a crash before the rename leaves
    one behind (a compacted segment's as large as the segment). The next
    start removes them, and the log reads back whole."""
    topic = h.unique("tmpleft")
    h.create_topic(broker, topic, 1, config={"segment.bytes": "65536"})
    recs = [(None, f"{i:06d}".encode() * 170, 0) for i in range(200)]  # ~1 KiB each
    acked = h.produce_records(broker, topic, recs, **{"linger.ms": 0, "batch.num.messages": 20})
    broker.kill9()
    pdir = broker.data_dir / f"{topic}-0"
    seg = sorted(pdir.glob("*.log"))[0]
    planted = [pdir / f"{seg.name}.tmp", pdir / f"{seg.stem}.index.tmp", pdir / "log-start-offset.tmp",
               pdir / "producer.snapshot.tmp"]
    planted[0].write_bytes(seg.read_bytes())  # a compacted copy, never renamed
    for p in planted[1:]:
        p.write_bytes(b"torn")
    broker.restart()
    # Read first: the partition's shard has opened it once it serves the read.
    got = h.consume_all(broker, topic, [0], expect=len(recs))
    assert {o: v for _k, v, _p, o, _ts in got} == {o: v for _k, v, _p, o in acked}
    left = [p.name for p in planted if p.exists()]
    assert not left, f"temp files still there after the restart: {left}"
    assert "removed temp files left by a crash" in broker.log_path.read_text(errors="replace")


def test_index_files_of_deleted_segments_are_removed_at_the_next_start(broker):
    """Retention unlinks a segment, then its index files; a crash in
    between leaves index files with no segment, which a later segment of
    the same base could otherwise find. The next start removes them."""
    topic = h.unique("orphanix")
    h.create_topic(broker, topic, 1, config={"segment.bytes": "65536"})
    recs = [(None, f"{i:06d}".encode() * 170, 0) for i in range(100)]
    acked = h.produce_records(broker, topic, recs, **{"linger.ms": 0, "batch.num.messages": 20})
    broker.kill9()
    pdir = broker.data_dir / f"{topic}-0"
    orphans = [pdir / f"{99999:020d}.index", pdir / f"{99999:020d}.timeindex"]
    for p in orphans:
        p.write_bytes(b"\0" * 24)
    broker.restart()
    got = h.consume_all(broker, topic, [0], expect=len(recs))  # the shard has opened the partition
    assert {o: v for _k, v, _p, o, _ts in got} == {o: v for _k, v, _p, o in acked}
    assert not [p.name for p in orphans if p.exists()], "index files of a segment that is gone are removed"
    assert all((pdir / f"{int(s.stem):020d}.log").exists() for s in pdir.glob("*.index")), \
        "every index file left has its segment"


def test_segment_ms_rolls_by_age_and_preallocate_keeps_logical_size(broker):
    """segment.ms rolls a segment once its first batch is that old;
    preallocate reserves segment.bytes for the active segment (as Kafka does,
    the file is that long, zeros past the log's end); sealed segments and a
    segment recovered after a crash are cut to their logical size."""
    topic = h.unique("age")
    h.create_topic(broker, topic, 1, config={"segment.ms": "300", "preallocate": "true",
                                             "segment.bytes": str(8 << 20)})
    pdir = broker.data_dir / f"{topic}-0"
    acked = []
    for i in range(3):
        acked += h.produce_records(broker, topic, [(None, f"v{i}".encode(), 0)])
        time.sleep(0.5)
    segs = sorted(p.name for p in pdir.glob("*.log"))
    assert len(segs) == 3, f"one segment per 300 ms-apart batch: {segs}"
    active = pdir / segs[-1]
    st = active.stat()
    assert st.st_size == 8 << 20, f"active segment not preallocated: {st.st_size} bytes"
    assert st.st_blocks * 512 >= 8 << 20, f"space reserved: {st.st_blocks * 512} bytes"
    for s in segs[:-1]:
        assert (pdir / s).stat().st_size < 4096, f"sealed {s} not cut to its logical size"
    broker.kill9()
    broker.restart()
    got = h.consume_all(broker, topic, [0], expect=3)
    assert [v for _k, v, *_r in got] == [b"v0", b"v1", b"v2"]
    assert active.stat().st_size < 4096, "recovery did not cut the zeros past the log's end"
    assert h.broker_log_since_last_start(broker).count("truncating torn or corrupt log tail") == 0


def test_first_request_after_a_clean_restart_is_served(broker):
    """After SIGTERM the old process's listening sockets used to outlive it
    (io_uring teardown), so a client connecting right after the restart could
    be accepted by the dead broker's socket and reset. Shards now stop
    listening before they flush."""
    import kafka_wire as kw
    for _ in range(5):
        broker.restart()
        with kw.WireConn("127.0.0.1", broker.shard_port(0)) as c:
            err, apis = kw.parse_api_versions_v0_response(c.request(kw.API_API_VERSIONS, 0, b""))
            assert err == 0 and apis, "no ApiVersions answer right after the restart"
