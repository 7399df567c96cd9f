"""Retention (retention.bytes, retention.ms) and DeleteRecords, observed
through real clients: the earliest offset moves, whole segment files go, and
what remains reads back densely."""

import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from confluent_kafka import KafkaError, TopicPartition

import helpers as h
import kafka_wire as kw

FAST = {"log.retention.check.interval.ms": "100"}
SEGMENT = 65536


def _segments(broker, topic, p=0):
    return sorted(f.name for f in (broker.data_dir / f"{topic}-{p}").glob("*.log"))


def _watermarks(broker, topic, p=0):
    c = h.consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
    finally:
        c.close()


def _fill(broker, topic, n=600):
    recs = [(None, f"{i:06d}".encode() * 170, 0) for i in range(n)]  # ~1 KiB each
    return h.produce_records(broker, topic, recs, **{"linger.ms": 0, "batch.num.messages": 20})


def _wait(cond, what, timeout=15):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _check_suffix(broker, topic, acked, low):
    got = h.consume_all(broker, topic, [0])
    offsets = [o for *_r, o, _ts in got]
    assert offsets == list(range(low, len(acked))), f"expected dense {low}..{len(acked)}, got {offsets[:3]}..."
    by_offset = {o: v for _k, v, _p, o in acked}
    assert all(v == by_offset[o] for _k, v, _p, o, _ts in got)


def test_retention_bytes_deletes_oldest_segments(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic = h.unique("rbytes")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(3 * SEGMENT)})
    acked = _fill(broker, topic)
    before = _segments(broker, topic)
    # ~600 KiB went into 64 KiB segments; retention (which also runs as
    # each segment rolls) keeps about three of them.
    assert int(before[-1][:-4]) > 0 and len(before) >= 3, before
    _wait(lambda: _watermarks(broker, topic)[0] > 0, "the earliest offset to move")
    low, high = _settled(broker, topic)
    after = _segments(broker, topic)
    # (retention may already have run when `before` was listed)
    assert "00000000000000000000.log" not in after and after[-1] == before[-1], (before, after)
    assert after[0] == f"{low:020d}.log", "the log now starts at the first kept segment"
    total = sum((broker.data_dir / f"{topic}-0" / s).stat().st_size for s in after)
    assert total >= 3 * SEGMENT - SEGMENT, f"kept {total} bytes: retention keeps at least retention.bytes"
    assert high == len(acked)
    _check_suffix(broker, topic, acked, low)


def test_retention_ms_deletes_expired_segments(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic = h.unique("rms")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT), "retention.ms": "1500"})
    acked = _fill(broker, topic, 300)
    time.sleep(0.5)
    assert _watermarks(broker, topic)[0] == 0, "nothing has expired yet"
    _wait(lambda: _watermarks(broker, topic)[0] > 0, "expired segments to go", timeout=20)
    low, _high = _watermarks(broker, topic)
    # every sealed segment expired; only the active one stays
    assert len(_segments(broker, topic)) == 1
    _check_suffix(broker, topic, acked, low)


def test_delete_records_moves_log_start_and_survives_restart(broker):
    topic = h.unique("delrec")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT)})
    acked = _fill(broker, topic, 400)
    a = h.admin(broker)
    res = a.delete_records([TopicPartition(topic, 0, 123)], request_timeout=30, operation_timeout=30)
    (fut,) = res.values()
    assert fut.result(30).low_watermark == 123
    assert _watermarks(broker, topic) == (123, 400)
    _check_suffix(broker, topic, acked, 123)
    segs = _segments(broker, topic)
    assert int(segs[0][:-4]) <= 123 < (int(segs[1][:-4]) if len(segs) > 1 else 1 << 62), \
        f"segments wholly below 123 deleted, the one holding it kept: {segs}"
    # below the log start is out of range
    c = h.consumer(broker, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        deadline = time.monotonic() + 10
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is not None:
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    finally:
        c.close()
    # beyond the high watermark is refused
    res = a.delete_records([TopicPartition(topic, 0, 401)], request_timeout=30, operation_timeout=30)
    (fut,) = res.values()
    try:
        fut.result(30)
        raise AssertionError("deleting past the high watermark must fail")
    except Exception as e:  # noqa: BLE001
        assert "OFFSET_OUT_OF_RANGE" in str(e) or "out of range" in str(e).lower(), e
    broker.kill9()
    broker.restart()
    assert _watermarks(broker, topic) == (123, 400), "the log start offset is persisted"
    _check_suffix(broker, topic, acked, 123)


def test_segments_a_crash_left_below_the_log_start_are_deleted_at_start(broker):
    """A move of the log start (DeleteRecords, retention) persists the new
    start first and then unlinks the segments wholly below it. A crash in
    between leaves those segments: the next start deletes them, and the log
    reads back from the recorded start."""
    topic = h.unique("below")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT)})
    acked = _fill(broker, topic, 400)
    broker.kill9()
    pdir = broker.data_dir / f"{topic}-0"
    segs = _segments(broker, topic)
    assert len(segs) >= 4, segs
    start = int(segs[2][:-4]) + 5  # inside the third segment
    # As the crash leaves it: the start persisted, nothing unlinked yet.
    (pdir / "log-start-offset").write_text(f"{start}\n")
    broker.restart()
    assert _watermarks(broker, topic) == (start, len(acked))
    _check_suffix(broker, topic, acked, start)
    left = _segments(broker, topic)
    assert left[0] == segs[2] and left == segs[2:], f"segments below the start are deleted: {segs} -> {left}"
    assert not [f.name for f in pdir.iterdir() if f.stem in (segs[0][:-4], segs[1][:-4])], \
        "their index files go too"


def test_relaxed_flush_policy_still_serves_and_keeps_data(broker):
    """flush.messages / flush.ms relax "durable before acknowledging" into
    Kafka's page-cache behaviour: acknowledged after the write, fdatasynced by
    count or age. Records are served at once and, once flush.ms has passed,
    survive kill -9."""
    topic = h.unique("flush")
    h.create_topic(broker, topic, 1, config={"flush.messages": "1000000", "flush.ms": "200"})
    a = h.admin(broker)
    from confluent_kafka.admin import ConfigResource, ResourceType
    (fut,) = a.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=30).values()
    cfg = fut.result(30)
    assert cfg["flush.messages"].value == "1000000" and cfg["flush.ms"].value == "200"
    acked = _fill(broker, topic, 200)
    got = h.consume_all(broker, topic, [0], expect=len(acked))
    assert len(got) == len(acked)
    time.sleep(0.6)  # past flush.ms: the scheduled fdatasync has run
    broker.kill9()
    broker.restart()
    _check_suffix(broker, topic, acked, 0)


def _settled(broker, topic):
    """The watermarks once retention has stopped moving the log start."""
    return h.settled(lambda: _watermarks(broker, topic))


def _spare(broker, topic, p=0):
    return broker.data_dir / f"{topic}-{p}" / "recycled.segment"


def _recycled(path):
    """Whether a file carries sluice's mark of a recycled segment file."""
    try:
        return os.getxattr(path, "user.sluice.recycled") == b"1"
    except OSError:
        return False


def test_retention_recycles_a_deleted_segment_file_for_the_next(broker_factory):
    """With log.segment.recycle (the default) retention keeps one deleted
    segment's file as it is, marked as recycled, and the next segment is
    written into it: no stale batch of the old segment ever reads back,
    before or after a kill -9."""
    # Retention every 10 ms: a spare is ready for almost every roll.
    broker = broker_factory(overrides={"log.retention.check.interval.ms": "10"})
    topic = h.unique("recycle")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(3 * SEGMENT)})
    acked = _fill(broker, topic)
    if "cannot keep a deleted segment's file" in broker.log_path.read_text(errors="replace"):
        pytest.skip("the data dir's filesystem keeps no extended attributes")
    pdir = broker.data_dir / f"{topic}-0"
    marked = [f for f in pdir.iterdir() if _recycled(f)]
    assert marked, "no segment file was kept for recycling"
    assert all(f.name.endswith(".log") or f == _spare(broker, topic) for f in marked)
    # More, from three producers at once sending a record per request, so that
    # requests arrive while the next roll takes the spare.
    def more(tag):
        recs = [(None, f"{tag}{i:05d}".encode() * 170, 0) for i in range(150)]
        return h.produce_records(broker, topic, recs, **{"linger.ms": 0, "batch.num.messages": 1})

    with ThreadPoolExecutor(3) as pool:
        for got in pool.map(more, ["a", "b", "c"]):
            acked += got
    acked.sort(key=lambda r: r[3])
    assert [o for *_r, o in acked] == list(range(len(acked)))
    assert "writing the new segment into a recycled file" in broker.log_path.read_text(errors="replace")
    low, high = _settled(broker, topic)
    assert high == len(acked) and low > 0
    _check_suffix(broker, topic, acked, low)
    broker.kill9()
    broker.restart()
    assert _watermarks(broker, topic) == (low, high)
    _check_suffix(broker, topic, acked, low)
    assert "truncating torn" not in broker.log_path.read_text(errors="replace"), \
        "the old bytes after the log's end in a recycled file are not a torn batch"


def _log_end(data, base):
    """Where the batches of the segment based at ``base`` end in its file's
    bytes ``data``, and the next offset due: sluice's own log is dense."""
    pos, due = 0, base
    while pos + 61 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        last_delta = struct.unpack_from(">i", data, pos + 23)[0]
        if base_offset != due or length < 49 or pos + 12 + length > len(data):
            break
        pos, due = pos + 12 + length, base_offset + last_delta + 1
    return pos, due


def test_old_bytes_after_the_end_of_a_recycled_segment_are_not_log(broker_factory):
    """A recycled segment file holds the deleted segment's bytes past its
    log's end. Old record data there may look like a whole, intact batch
    with a later offset (here one is put right at the log's end, as after a
    kill -9 when the end falls on a page boundary): recovery of a recycled
    file takes only a batch at exactly the offset due, so the high
    watermark stays where the acknowledged log ends and nothing stale reads
    back."""
    broker = broker_factory(shards=1, overrides={"log.retention.check.interval.ms": "10"})
    topic = h.unique("stale")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(3 * SEGMENT)})
    acked = _fill(broker, topic)
    pdir = broker.data_dir / f"{topic}-0"

    def active():
        return max(pdir.glob("*.log"), key=lambda f: int(f.stem))

    def old_bytes_after_end():
        """The active segment, when it is a recycled file with old bytes
        after its log's last page (its log may already fill the old file)."""
        seg = active()
        if not _recycled(seg):
            return None
        data = seg.read_bytes()
        end, _due = _log_end(data, int(seg.stem))
        return seg if any(data[(end + 4095) // 4096 * 4096:]) else None

    deadline = time.monotonic() + 30
    while old_bytes_after_end() is None:
        if "cannot keep a deleted segment's file" in broker.log_path.read_text(errors="replace"):
            pytest.skip("the data dir's filesystem keeps no extended attributes")
        assert time.monotonic() < deadline, "no segment was written into a recycled file"
        acked += h.produce_records(broker, topic, [(None, b"x" * 1000, 0)] * 20,
                                   **{"linger.ms": 0, "batch.num.messages": 20})
    broker.kill9()
    seg = old_bytes_after_end()
    assert seg is not None, "the recycled file keeps the old segment's bytes past the log's end"
    data = seg.read_bytes()
    end, due = _log_end(data, int(seg.stem))
    assert due == len(acked), f"the active segment ends at offset {due}, {len(acked)} acknowledged"
    fake = kw.build_record_batch([(None, b"stale, never produced")], base_offset=due + 1000)
    with open(seg, "r+b") as f:
        f.seek(end)
        f.write(fake)
    broker.restart()
    low, high = _settled(broker, topic)
    assert high == len(acked), f"high watermark {high}: a stale batch was taken for log ({len(acked)} acked)"
    _check_suffix(broker, topic, acked, low)
    log = broker.log_path.read_text(errors="replace")
    assert "the log ends here in a recycled segment file" in log
    assert "truncating torn" not in log, "old bytes are not reported as a torn write"
    assert seg.stat().st_size == end, "recovery cut the file at the log's end"
    more = h.produce_records(broker, topic, [(None, b"after", 0)])
    assert more[0][3] == len(acked), "production goes on at the offset due"


def test_retention_runs_when_a_segment_rolls(broker_factory):
    """Retention also runs as each segment rolls, not only every
    log.retention.check.interval.ms (five minutes by default), so the
    segments it deletes are there to recycle while the partition writes."""
    broker = broker_factory()
    topic = h.unique("rollret")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(3 * SEGMENT)})
    acked = _fill(broker, topic)
    low, high = _settled(broker, topic)
    assert low > 0 and high == len(acked), "retention ran without waiting for its five-minute check"
    assert len(_segments(broker, topic)) <= 5
    _check_suffix(broker, topic, acked, low)


def test_retention_bytes_lets_a_segment_go_once_the_log_outgrows_it(broker_factory):
    """By Kafka's rule retention.bytes deletes the oldest segment only if the
    log stays at the limit without it, which a segment that has just rolled
    (still empty) often does not make true. Retention runs again as soon as
    the new segment's data makes it true, not only at the next roll or the
    five-minute check: the segment it deletes is the spare the next roll
    writes into."""
    broker = broker_factory()  # the timed check every five minutes, not in this test
    topic = h.unique("outgrown")
    limit = 3 * SEGMENT
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT), "retention.bytes": str(limit)})
    # One record of one size per batch, one batch at a time: ~10 KB batches,
    # six to a segment, so that a segment that just rolled needs a second
    # batch before the oldest may go.
    p = h.producer(broker, **{"linger.ms": 0, "batch.num.messages": 1})
    offsets = []
    for i in range(40):
        p.produce(topic, value=f"{i:04d}".encode() * 2475, partition=0,
                  on_delivery=lambda err, msg: offsets.append(-1 if err else msg.offset()))
        assert p.flush(30) == 0
    assert offsets == list(range(40))
    low, high = _settled(broker, topic)
    assert high == 40 and low > 0
    pdir = broker.data_dir / f"{topic}-0"
    sizes = [(pdir / s).stat().st_size for s in _segments(broker, topic)]
    assert len(sizes) >= 2 and sum(sizes) - sizes[0] < limit, (
        f"segments of {sizes} bytes: the log stays at retention.bytes ({limit}) without the oldest, "
        "which retention has not deleted"
    )
    assert sum(sizes) >= limit, f"retention keeps at least retention.bytes: {sizes}"
    if "cannot keep a deleted segment's file" not in broker.log_path.read_text(errors="replace"):
        active = pdir / _segments(broker, topic)[-1]
        assert _recycled(active), "the last roll wrote into the segment file retention deleted"


def test_altered_segment_settings_apply_without_a_restart(broker_factory):
    """segment.bytes and segment.ms altered with a Kafka client's
    IncrementalAlterConfigs apply from the next append, as in Kafka, not
    from the broker's next start."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    broker = broker_factory()
    topic = h.unique("altseg")
    h.create_topic(broker, topic, 1)
    acked = _fill(broker, topic, 100)
    assert len(_segments(broker, topic)) == 1, "1 GiB segments: one so far"

    def alter(name, value):
        res = ConfigResource("topic", topic, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
        a = h.admin(broker)  # kept until the futures resolve
        for f in a.incremental_alter_configs([res]).values():
            f.result()

    alter("segment.bytes", str(SEGMENT))
    acked += _fill(broker, topic, 300)
    rolled = _segments(broker, topic)
    assert len(rolled) >= 4, f"~300 KiB after segment.bytes={SEGMENT}: {rolled}"
    alter("segment.bytes", str(1 << 30))
    alter("segment.ms", "300")
    time.sleep(0.6)
    acked += _fill(broker, topic, 1)
    assert len(_segments(broker, topic)) == len(rolled) + 1, "segment.ms rolled the old segment"
    _check_suffix(broker, topic, acked, 0)


def test_delete_records_retried_after_a_failed_directory_fsync_waits_for_one(fsync_faults, broker_factory):
    """DeleteRecords answers once the new log start is durable: the start
    file's rename and the segments' unlinks need the partition directory's
    fsync. When that fsync fails the request fails, and so does a retry
    until a directory fsync succeeds (the start had already moved in memory,
    and a retry used to answer at once). Once it succeeds, a crash keeps the
    start."""
    broker = broker_factory()
    topic = h.unique("dsync")
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(SEGMENT)})
    acked = _fill(broker, topic, 400)
    a = h.admin(broker)

    def delete_to(offset):
        (fut,) = a.delete_records([TopicPartition(topic, 0, offset)], request_timeout=30,
                                  operation_timeout=30).values()
        return fut.result(30).low_watermark

    fsync_faults.arm(broker.data_dir / f"{topic}-0")
    for attempt in range(2):
        with pytest.raises(Exception) as e:
            delete_to(123)
        assert "STORAGE" in str(e.value).upper(), f"attempt {attempt}: {e.value}"
    fsync_faults.disarm()
    assert delete_to(123) == 123
    broker.kill9()
    broker.start()
    assert _watermarks(broker, topic) == (123, 400), "the log start offset is durable"
    _check_suffix(broker, topic, acked, 123)
