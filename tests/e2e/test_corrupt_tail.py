"""Recovery of a torn or corrupt log tail: after kill -9, damage the last
batch of the active segment (flip bytes inside it, or cut the file in its
middle); on restart exactly that batch is gone, everything before it is
intact, the broker logs the truncation, and production continues at the
lost batch's offset."""

import re
import struct
import time

import pytest

import helpers as h
import kafka_wire as kw

BATCHES = 20
RECORDS_PER_BATCH = 3
TRUNCATION_MSG = "truncating torn or corrupt log tail"


def _value(b, r):
    return f"batch{b:02d}-rec{r}-".encode() + bytes([65 + (b + r) % 26]) * 37


def _leader_port(broker, topic):
    leader = h.partition_leaders(broker, topic)[0]
    assert 0 <= leader < broker.shards, f"bad leader {leader} for {topic}-0"
    return broker.shard_port(leader)


def _produce_batch(port, topic, records):
    """One raw Produce v3 (acks=all) carrying exactly one record batch;
    returns the assigned base offset."""
    batch = kw.build_record_batch(records)
    with kw.WireConn("127.0.0.1", port) as c:
        resp = kw.parse_produce_v3_response(
            c.request(kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, batch, acks=-1)))
    err, base = resp[(topic, 0)]
    assert err == kw.NONE, f"produce to {topic}-0 failed with error code {err}"
    return base


def _fetch_all(port, topic, timeout=30):
    """Read partition 0 from offset 0 up to the high watermark with raw
    Fetch v4. Returns ({offset: (key, value)}, high_watermark)."""
    out = {}
    offset = 0
    deadline = time.monotonic() + timeout
    with kw.WireConn("127.0.0.1", port) as c:
        while True:
            resp = kw.parse_fetch_v4_response(
                c.request(kw.API_FETCH, 4, kw.fetch_v4_body(topic, 0, offset, max_wait_ms=10)))
            err, hw, records = resp[(topic, 0)]
            assert err == kw.NONE, f"fetch {topic}-0 at offset {offset}: error code {err}"
            for r in kw.decode_record_batches(records or b""):
                assert r["offset"] not in out, f"offset {r['offset']} returned twice"
                out[r["offset"]] = (r["key"], r["value"])
                offset = max(offset, r["offset"] + 1)
            if offset >= hw:
                return out, hw
            assert time.monotonic() < deadline, \
                f"fetch of {topic}-0 stuck at offset {offset} below high watermark {hw}"


def _walk_batches(data):
    """[(position, base_offset, total_len)] of the batches in a segment's
    bytes, up to the logical end (a zero length = page padding)."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if length == 0:
            break
        total = length + 12
        assert pos + total <= len(data), \
            f"batch at {pos} (offset {base}) of {total} bytes runs past the file end {len(data)}"
        out.append((pos, base, total))
        pos += total
    return out


def _active_segment(broker, topic):
    pdir = broker.data_dir / f"{topic}-0"
    segs = sorted(pdir.glob("*.log"))
    assert segs, f"no segment files in {pdir}: {sorted(p.name for p in pdir.iterdir())}"
    return segs[-1]


def _truncation_lines(broker):
    log = h.broker_log_since_last_start(broker)
    return [ln for ln in log.splitlines() if TRUNCATION_MSG in ln]


def _field(line, name):
    m = re.search(rf"\b{name}=(\d+)", line)
    assert m, f"no {name}=<n> field in log line: {line!r}"
    return int(m.group(1))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage, segment_bytes", [
    ("flip_last_bytes", None),
    ("cut_mid_batch", None),
    ("flip_last_bytes", 2048),  # the log has rolled: damage in a later segment
])
def test_damaged_last_batch_is_cut_on_restart(broker, damage, segment_bytes):
    topic = h.unique("tail")
    h.create_topic(broker, topic, 1,
                   config={"segment.bytes": str(segment_bytes)} if segment_bytes else None)
    port = _leader_port(broker, topic)

    expected = {}  # offset -> (key, value)
    bases = []
    for b in range(BATCHES):
        recs = [(f"k{b}-{r}".encode(), _value(b, r)) for r in range(RECORDS_PER_BATCH)]
        base = _produce_batch(port, topic, recs)
        bases.append(base)
        for r, (k, v) in enumerate(recs):
            expected[base + r] = (k, v)
    assert bases == [b * RECORDS_PER_BATCH for b in range(BATCHES)], \
        f"unexpected base offsets {bases}"
    got, hw = _fetch_all(port, topic)
    assert hw == BATCHES * RECORDS_PER_BATCH and got == expected, \
        f"before the crash: high watermark {hw}, {len(got)} records read"

    broker.kill9()

    seg = _active_segment(broker, topic)
    data = bytearray(seg.read_bytes())
    batches = _walk_batches(data)
    in_seg = [base for _pos, base, _t in batches]
    assert in_seg and in_seg == bases[-len(in_seg):] and in_seg[0] == int(seg.stem), \
        f"{seg.name}: batches at offsets {in_seg}, expected a suffix of {bases}"
    if segment_bytes:
        assert len(in_seg) < len(bases), f"log did not roll: {seg.name} holds every batch"
    last_pos, last_base, last_total = batches[-1]
    logical_end = last_pos + last_total
    assert not any(data[logical_end:]), "bytes after the logical end are not zero padding"
    if damage == "flip_last_bytes":
        for i in range(logical_end - 3, logical_end):
            data[i] ^= 0xFF  # inside the last record's headers/value: CRC mismatch
        seg.write_bytes(bytes(data))
        file_len = len(data)
    else:
        file_len = logical_end - 10
        with open(seg, "r+b") as f:
            f.truncate(file_len)
    print(f"{damage}: {seg.name} ({len(in_seg)} of {len(bases)} batches) logical end {logical_end}, file {len(data)} -> {file_len} "
          f"bytes, last batch at {last_pos} (offset {last_base}, {last_total} bytes)")

    broker.restart()
    h.wait_topic(broker, topic, 1)
    port = _leader_port(broker, topic)

    lines = _truncation_lines(broker)
    assert len(lines) == 1, \
        f"expected one '{TRUNCATION_MSG}' warning after restart, got {lines}"
    assert _field(lines[0], "offsets_from") == last_base, \
        f"truncation reported from the wrong offset (expected {last_base}): {lines[0]}"
    assert _field(lines[0], "bytes") == file_len - last_pos, \
        f"truncation reported wrong byte count (expected {file_len - last_pos}): {lines[0]}"
    assert seg.stat().st_size == last_pos, \
        f"{seg.name} is {seg.stat().st_size} bytes after recovery, expected {last_pos}"

    got, hw = _fetch_all(port, topic)
    intact = {o: kv for o, kv in expected.items() if o < last_base}
    assert hw == last_base, f"high watermark {hw} after recovery, expected {last_base}"
    missing = sorted(set(intact) - set(got))
    wrong = sorted(o for o in intact if o in got and got[o] != intact[o])
    extra = sorted(set(got) - set(intact))
    assert not missing and not wrong and not extra, (
        f"after recovery: missing offsets {missing}, different bytes at {wrong}, "
        f"unexpected offsets {extra}")

    # production continues at the lost batch's offset
    new = [(b"again", f"after-{damage}-{r}".encode()) for r in range(RECORDS_PER_BATCH)]
    base = _produce_batch(port, topic, new)
    assert base == last_base, f"first produce after recovery got offset {base}, expected {last_base}"
    for r, kv in enumerate(new):
        intact[base + r] = kv
    got, hw = _fetch_all(port, topic)
    assert hw == last_base + RECORDS_PER_BATCH and got == intact, \
        f"after producing again: high watermark {hw}, offsets {sorted(got)[-5:]}"

    # the repaired log recovers cleanly: no second truncation, same contents
    broker.kill9()
    broker.restart()
    h.wait_topic(broker, topic, 1)
    port = _leader_port(broker, topic)
    assert _truncation_lines(broker) == [], \
        f"repaired log was truncated again: {_truncation_lines(broker)}"
    got, hw = _fetch_all(port, topic)
    assert hw == last_base + RECORDS_PER_BATCH and got == intact, \
        f"after a second restart: high watermark {hw}, {len(got)} records"
