"""Disk full: on a small dedicated ext4 filesystem, acks=all production runs
until the disk fills. The failing produce requests get KAFKA_STORAGE_ERROR
(56), the broker stays up, every acknowledged record stays readable (and
nothing that failed appears), and once space is freed production resumes
at the next offset: dense, nothing lost, nothing resurrected by a restart."""

import os
import socket
import struct
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

import helpers as h
import kafka_wire as kw
import loopfs

FS_SIZE = "48M"
LEAVE_FREE = 4 * 1024 * 1024  # bytes left free next to the filler file
RECORD_SIZE = 1024
PRODUCE_CHUNK = 200  # records produced per flush
TRUNCATION_MSG = "truncating torn or corrupt log tail"


@pytest.fixture
def small_fs(tmp_path):
    """A freshly made 48 MiB ext4 filesystem loop-mounted at tmp_path/mnt."""
    with loopfs.mounted(tmp_path / "fs.img", tmp_path / "mnt", FS_SIZE) as mnt:
        yield mnt


def _value(seq):
    head = f"v{seq:08d}-".encode()
    return head + bytes([97 + seq % 26]) * (RECORD_SIZE - len(head))


def _produce(p, topic, seqs, timeout=60):
    """Produce values for ``seqs`` to partition 0 and wait for every delivery
    report. Returns ([(seq, offset) acked], [(seq, KafkaError) failed])."""
    acked, failed = [], []

    def make_cb(seq):
        def cb(err, msg):
            if err is None:
                acked.append((seq, msg.offset()))
            else:
                failed.append((seq, err))
        return cb

    for seq in seqs:
        while True:
            try:
                p.produce(topic, value=_value(seq), partition=0, on_delivery=make_cb(seq))
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(timeout)
    assert left == 0, f"{left} records still undelivered {timeout}s after producing them"
    assert len(acked) + len(failed) == len(seqs)
    return acked, failed


def _check_segment_file(broker, topic, n, ctx):
    """Look at the bytes on disk: the (single) segment holds batches for
    offsets 0..n-1 and nothing but zero padding after them, i.e. the bytes
    of the failed writes were cut off."""
    segs = sorted((broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segs) == 1, f"{ctx}: expected one segment, got {[s.name for s in segs]}"
    data = segs[0].read_bytes()
    pos = kw.stored_batches_end(data)
    last = kw.decode_record_batches(data[:pos])[-1]["offset"] if pos else -1
    garbage = len(data) - pos - data[pos:].count(0)
    assert last == n - 1 and garbage == 0, (
        f"{ctx}: {segs[0].name} ({len(data)} bytes) has batches up to offset {last} "
        f"(expected {n - 1}) ending at byte {pos}, then {garbage} non-zero bytes")


def _check_log(broker, topic, acked, ctx):
    """The partition holds exactly the acknowledged records: offsets
    0..n-1, byte-identical, and the high watermark is n."""
    got = h.consume_all(broker, topic, [0], timeout=60, expect=len(acked))
    stored = {o: v for _k, v, _p, o, _ts in got}
    missing = sorted(set(acked) - set(stored))
    wrong = sorted(o for o in acked if o in stored and stored[o] != acked[o])
    extra = sorted(set(stored) - set(acked))
    assert not missing and not wrong and not extra, (
        f"{ctx}: {len(missing)} acknowledged records missing (first {missing[:5]}), "
        f"{len(wrong)} with different bytes (first {wrong[:5]}), {len(extra)} records "
        f"that were never acknowledged (first {[(o, stored[o][:12]) for o in extra[:5]]})")
    assert sorted(acked) == list(range(len(acked))), \
        f"{ctx}: acknowledged offsets are not dense 0..{len(acked)}"
    c = h.consumer(broker)
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()
    assert (lo, hi) == (0, len(acked)), \
        f"{ctx}: watermarks {(lo, hi)}, expected (0, {len(acked)})"


@pytest.mark.timeout(180)
def test_disk_full_fails_produce_then_recovers(small_fs, broker_factory):
    broker = broker_factory(data_dir=small_fs / "data")
    topic = h.unique("full")
    h.create_topic(broker, topic, 1)

    free = loopfs.free_bytes(small_fs)
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, free - LEAVE_FREE)
    print(f"filesystem: {free} bytes free, filler takes {free - LEAVE_FREE}, "
          f"{loopfs.free_bytes(small_fs)} left")

    p = h.producer(broker, acks="all", retries=0, **{
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        "request.timeout.ms": 20000,
    })
    acked = {}  # offset -> value
    failures = []
    seq = 0
    max_seq = 4 * (LEAVE_FREE // RECORD_SIZE)  # far more than fits
    t0 = time.monotonic()
    while not failures:
        assert seq < max_seq, (
            f"no produce failed after {seq} records of {RECORD_SIZE} bytes with only "
            f"{LEAVE_FREE} bytes free; free now {loopfs.free_bytes(small_fs)}")
        ok, failed = _produce(p, topic, range(seq, seq + PRODUCE_CHUNK))
        for s, off in ok:
            assert off not in acked, f"offset {off} acknowledged twice"
            acked[off] = _value(s)
        failures += failed
        seq += PRODUCE_CHUNK
    codes = {e.code() for _s, e in failures}
    print(f"disk full after {time.monotonic() - t0:.1f}s: {len(acked)} records acked, "
          f"{len(failures)} failed; first error: {failures[0][1]}")
    assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, (
        f"expected only KAFKA_STORAGE_ERROR (56) failures, got codes {sorted(codes)}: "
        f"{[str(e) for _s, e in failures[:3]]}")
    assert KafkaError.KAFKA_STORAGE_ERROR == 56
    broker.assert_alive()
    assert acked, "no record was acknowledged before the disk filled"

    # Still full: each further produce either fits into what is left or fails
    # with 56 (the log end was rolled back, so the next one simply tries
    # again); none hangs, offsets stay dense, the broker keeps running.
    failed_attempts = 0
    attempts = 0
    while failed_attempts < 3:
        attempts += 1
        assert attempts <= 100, \
            f"disk never full again: {attempts} produces of 10 records after the first failure"
        ok, failed = _produce(p, topic, range(seq, seq + 10), timeout=30)
        for s, off in ok:
            assert off not in acked, f"offset {off} acknowledged twice"
            acked[off] = _value(s)
        for _s, e in failed:
            assert e.code() == KafkaError.KAFKA_STORAGE_ERROR, \
                f"produce on a full disk failed with {e} (code {e.code()}), expected 56"
        failed_attempts += bool(failed)
        seq += 10
    print(f"{attempts} more produces of 10 records while full, {failed_attempts} failed; "
          f"{len(acked)} records acked")
    broker.assert_alive()

    # fetches of existing data keep working while the disk is full
    _check_log(broker, topic, acked, "disk full")
    _check_segment_file(broker, topic, len(acked), "disk full")

    # free space: production resumes at the next offset
    filler.unlink()
    n = len(acked)
    ok, failed = _produce(p, topic, range(seq, seq + 50))
    assert not failed, \
        f"produce still fails after freeing space: {[str(e) for _s, e in failed[:3]]}"
    offsets = sorted(off for _s, off in ok)
    assert offsets == list(range(n, n + 50)), \
        f"after freeing space records went to offsets {offsets[:3]}..{offsets[-3:]}, expected {n}.."
    for s, off in ok:
        acked[off] = _value(s)
    seq += 50
    _check_log(broker, topic, acked, "after freeing space")
    p.flush(5)
    del p

    # nothing failed comes back after a crash and restart
    broker.kill9()
    broker.restart()
    h.wait_topic(broker, topic, 1)
    log = h.broker_log_since_last_start(broker)
    torn = [ln for ln in log.splitlines() if TRUNCATION_MSG in ln]
    assert not torn, f"restart after the disk-full episode found a damaged log: {torn}"
    _check_log(broker, topic, acked, "after kill -9 and restart")
    _check_segment_file(broker, topic, len(acked), "after kill -9 and restart")
    print(f"{len(acked)} records acked in total; all present after restart")


def test_broker_keeps_serving_when_its_log_cannot_be_written(broker_factory):
    """The broker's own log may sit on the full disk too. Every log line then
    fails to be written (here: stdout and stderr go to /dev/full, where every
    write fails with ENOSPC); the broker must go on serving, not abort."""
    broker = broker_factory(start=False)
    broker.output = "/dev/full"
    broker.start()  # startup logs lines: an abort here fails the test
    topic = h.unique("quietlog")
    h.create_topic(broker, topic, 2)
    h.produce_records(broker, topic, [(b"k", b"v%d" % i) for i in range(100)])
    # A bad frame is logged as a warning when its connection is closed.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(struct.pack(">i", -5))
        assert s.recv(1) == b"", "the broker answered a negative frame length"
    got = h.consume_all(broker, topic, [0, 1], timeout=60, expect=100)
    assert sorted(v for _k, v, _p, _o, _ts in got) == sorted(b"v%d" % i for i in range(100))
    broker.assert_alive()


def _fill_up(fs, filler):
    """Grows ``filler`` until the filesystem has no free block left."""
    with open(filler, "ab") as f:
        while loopfs.free_bytes(fs) > 0:
            try:
                os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size, loopfs.free_bytes(fs))
            except OSError:
                break
            f.flush()
    assert loopfs.free_bytes(fs) == 0, f"{loopfs.free_bytes(fs)} bytes still free"


@pytest.mark.timeout(180)
def test_retention_frees_space_on_a_full_disk(small_fs, broker_factory):
    """With the disk full, a topic under retention.bytes (here set once the
    disk has filled) still deletes its oldest segments, though the new log
    start cannot be written to a file, and production goes on in the space
    freed, with nothing freed by hand."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, OffsetSpec

    broker = broker_factory(data_dir=small_fs / "data", overrides={"log.retention.check.interval.ms": "100"})
    topic = h.unique("fullret")
    segment = 1 << 20
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(segment)})
    # An idempotent producer's batches, in the first segment, which
    # retention deletes below: its state must outlive them.
    with h.leader_conn(broker, topic) as c:
        for seq in (0, 3, 6):
            assert h.produce_raw(c, topic, h.idem_batch(9, 0, seq))[:2] == (0, seq)
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, loopfs.free_bytes(small_fs) - LEAVE_FREE)
    p = h.producer(broker, acks="all", retries=0, **{
        "enable.idempotence": False, "linger.ms": 5, "message.timeout.ms": 30000, "request.timeout.ms": 20000})
    acked, failures, seq = {}, [], 0
    while not failures:
        assert seq < 4 * (LEAVE_FREE // RECORD_SIZE), "the disk never filled"
        ok, failed = _produce(p, topic, range(seq, seq + PRODUCE_CHUNK))
        acked.update((off, _value(s)) for s, off in ok)
        failures += failed
        seq += PRODUCE_CHUNK
    assert {e.code() for _s, e in failures} == {KafkaError.KAFKA_STORAGE_ERROR}
    segs_full = sorted(f.name for f in (broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segs_full) >= 3, segs_full
    time.sleep(0.5)  # the failed write's bytes are cut off (freeing blocks) just after it fails
    _fill_up(small_fs, filler)  # not a block left, even for a small file
    # A restart on the full disk: retention then deletes the segments that
    # hold the idempotent producer's batches with not a block to spare.
    broker.kill9()
    broker.start()
    a = h.admin(broker)
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.bytes", str(segment), incremental_operation=AlterConfigOpType.SET)])
    for fut in a.incremental_alter_configs([res]).values():
        fut.result(30)

    def low():
        # The admin client's ListOffsets: a consumer would make the broker
        # create __consumer_offsets, whose failed creation frees blocks.
        (fut,) = a.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}).values()
        return fut.result(30).offset

    deadline = time.monotonic() + 30
    while low() == 0:
        assert time.monotonic() < deadline, (
            f"retention deleted nothing on the full disk ({loopfs.free_bytes(small_fs)} bytes free); "
            f"broker log: {h.broker_log_since_last_start(broker)[-600:]}")
        time.sleep(0.2)
    assert "disk full: deleting segments without recording the new log start" in broker.log_path.read_text(
        errors="replace")
    h.settled(low)
    assert not (broker.data_dir / f"{topic}-0" / "recycled.segment").exists(), \
        "on a full disk no deleted segment is kept as the spare: its space must be freed"
    # After a crash now, the idempotent producer is still known.
    assert "cannot write the producer snapshot" not in h.broker_log_since_last_start(broker)
    broker.kill9()
    broker.start()
    with h.leader_conn(broker, topic) as c:
        # The retry of its last batch: still deduplicated.
        assert h.produce_raw(c, topic, h.idem_batch(9, 0, 6))[:2] == (0, 6)
    ok, failed = _produce(p, topic, range(seq, seq + 50))
    assert not failed, f"production did not resume in the space retention freed: {failed[:3]}"
    n = max(acked) + 1
    assert sorted(off for _s, off in ok) == list(range(n, n + 50))
    start = h.settled(low)  # retention goes on down to retention.bytes
    got = h.consume_all(broker, topic, [0], timeout=60, expect=n + 50 - start)
    assert [o for *_r, o, _ts in got] == list(range(start, n + 50)), "dense from the new log start"
    assert all(v == acked[o] for _k, v, _p, o, _ts in got if o in acked)
    p.flush(5)
    broker.assert_alive()

