"""Malformed input over raw sockets. After every case the broker must still be
alive and serve a fresh client (produce + consume on a new connection)."""

import random
import struct
import zlib

import pytest

import helpers as h
import kafka_wire as kw

HOST = "127.0.0.1"
MAX_FRAME = 104857600


@pytest.fixture
def healthy_after(broker):
    """Yields the broker; afterwards asserts it survived and still works."""
    yield broker
    h.assert_healthy(broker)


def conn(broker, shard=0):
    return kw.WireConn(HOST, broker.shard_port(shard))


# ---------------------------------------------------------------------------
# framing garbage
# ---------------------------------------------------------------------------


def test_garbage_bytes(healthy_after):
    rnd = random.Random(1234)
    for shard in range(healthy_after.shards):
        with conn(healthy_after, shard) as c:
            c.send(bytes(rnd.getrandbits(8) for _ in range(4096)))
        with conn(healthy_after, shard) as c:
            c.send(b"\xde\xad\xbe\xef" * 256)
            c.wait_closed()  # 0xdeadbeef is a negative frame length


def test_garbage_inside_valid_frame(healthy_after):
    rnd = random.Random(99)
    for _ in range(5):
        with conn(healthy_after) as c:
            c.send(kw.frame(bytes(rnd.getrandbits(8) for _ in range(200))))
            c.closed_or_response()


@pytest.mark.parametrize("length", [MAX_FRAME + 1, 2**31 - 1])
def test_frame_length_over_limit_is_rejected(healthy_after, length):
    with conn(healthy_after) as c:
        c.send(kw.i32(length) + b"\x00" * 64)
        # must not wait for (or allocate) the announced body
        c.wait_closed()


@pytest.mark.parametrize("length", [-1, -(2**31)])
def test_negative_frame_length(healthy_after, length):
    with conn(healthy_after) as c:
        c.send(kw.i32(length) + b"\x00" * 16)
        c.wait_closed()


def test_zero_and_tiny_frames(healthy_after):
    for payload in (b"", b"\x00", b"\x00\x12\x00"):
        with conn(healthy_after) as c:
            c.send(kw.frame(payload))
            c.closed_or_response()


# ---------------------------------------------------------------------------
# unknown API keys / versions
# ---------------------------------------------------------------------------


def test_unknown_api_key(healthy_after):
    with conn(healthy_after) as c:
        c.send(kw.request_frame(9999, 0, 42, b""))
        kind, payload = c.closed_or_response()
        if kind == "response":
            assert struct.unpack_from(">i", payload)[0] == 42, "wrong correlation id"


def test_api_versions_unsupported_version_gets_v0_error_response(healthy_after):
    with conn(healthy_after) as c:
        body = c.request(kw.API_API_VERSIONS, 99, kw.api_versions_v3_body(),
                         flexible_header=True)
        err, apis = kw.parse_api_versions_v0_response(body)
        assert err == kw.UNSUPPORTED_VERSION, f"error code {err}, expected 35"
        for key in (kw.API_PRODUCE, kw.API_FETCH, kw.API_LIST_OFFSETS, kw.API_METADATA,
                    kw.API_API_VERSIONS):
            assert key in apis, f"api key {key} missing from ApiVersions error response: {apis}"
        assert apis[kw.API_API_VERSIONS][0] == 0
        assert apis[kw.API_API_VERSIONS][1] >= 3, "ApiVersions v3 (used by librdkafka) missing"
        for k, (lo, hi) in apis.items():
            assert 0 <= lo <= hi, f"api {k}: bad range {lo}..{hi}"
        # The connection stays usable: clients (librdkafka) retry on the
        # same connection with a version from the returned range.
        err, apis2 = kw.parse_api_versions_v0_response(c.request(kw.API_API_VERSIONS, 0, b""))
        assert err == 0
        assert apis2 == apis


def test_unsupported_metadata_version(healthy_after):
    with conn(healthy_after) as c:
        c.send(kw.request_frame(kw.API_METADATA, 99, 7, kw.metadata_v1_body(None)))
        kind, payload = c.closed_or_response()
        if kind == "response":
            assert struct.unpack_from(">i", payload)[0] == 7, "wrong correlation id"


# ---------------------------------------------------------------------------
# truncated requests
# ---------------------------------------------------------------------------


def test_truncated_frame_then_close(healthy_after):
    with conn(healthy_after) as c:
        c.send(kw.i32(100) + b"\x00\x03\x00\x01" + b"\x00" * 6)  # 10 of 100 bytes


def test_truncated_frame_left_open(healthy_after):
    # a half-sent request on one connection must not block other clients
    c = conn(healthy_after)
    try:
        c.send(kw.i32(100) + b"\x00" * 10)
        h.assert_healthy(healthy_after)
    finally:
        c.close()


def test_header_client_id_longer_than_frame(healthy_after):
    hdr = kw.i16(kw.API_METADATA) + kw.i16(1) + kw.i32(5) + kw.i16(50) + b"abc"
    with conn(healthy_after) as c:
        c.send(kw.frame(hdr))
        c.closed_or_response()


def test_body_shorter_than_its_arrays_claim(healthy_after):
    # Metadata v1: topics array says 5 entries, none follow
    with conn(healthy_after) as c:
        c.send(kw.request_frame(kw.API_METADATA, 1, 11, kw.i32(5)))
        c.closed_or_response()
    # Metadata v1: topic name length 30, 4 bytes follow
    with conn(healthy_after) as c:
        c.send(kw.request_frame(kw.API_METADATA, 1, 12, kw.i32(1) + kw.i16(30) + b"abcd"))
        c.closed_or_response()


@pytest.mark.parametrize("api_key, version, body", [
    # Metadata v1: a 15-byte request claiming 2^31-1 topics
    (kw.API_METADATA, 1, kw.i32(2**31 - 1)),
    # Metadata v9 (flexible): compact array length 2^31 as an unsigned varint
    (kw.API_METADATA, 9, b"\x80\x80\x80\x80\x08"),
    # Produce v3: 2^31-1 topics
    (kw.API_PRODUCE, 3, kw.i16(-1) + kw.i16(1) + kw.i32(1000) + kw.i32(2**31 - 1)),
])
def test_huge_array_length_does_not_kill_broker(healthy_after, api_key, version, body):
    """Regression: the codec reserved memory for the claimed element count, so
    the allocation failed and the process aborted (see vendor/kafka-protocol)."""
    for shard in range(healthy_after.shards):
        with conn(healthy_after, shard) as c:
            c.send(kw.request_frame(api_key, version, 77, body, flexible=version >= 9))
            c.closed_or_response()
        healthy_after.assert_alive()


def test_produce_records_field_longer_than_frame(healthy_after):
    topic = h.unique("trunc")
    h.create_topic(healthy_after, topic, 1)
    leader = h.partition_leaders(healthy_after, topic)[0]
    body = kw.produce_v3_body(topic, 0, b"x" * 10)
    # patch the records length (last int32 before the 10 bytes) to 1000
    body = body[:-14] + kw.i32(1000) + body[-10:]
    with conn(healthy_after, leader) as c:
        c.send(kw.request_frame(kw.API_PRODUCE, 3, 13, body))
        c.closed_or_response()
    c2 = h.consumer(healthy_after)
    try:
        from confluent_kafka import TopicPartition
        assert c2.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                        cached=False) == (0, 0)
    finally:
        c2.close()


# ---------------------------------------------------------------------------
# hand-built Produce v3 with corrupt / correct record batches
# ---------------------------------------------------------------------------


def _produce_raw(broker, port_shard, topic, partition, batch, acks=1):
    with conn(broker, port_shard) as c:
        resp = kw.parse_produce_v3_response(
            c.request(kw.API_PRODUCE, 3, kw.produce_v3_body(topic, partition, batch, acks=acks)))
    assert list(resp) == [(topic, partition)], resp
    return resp[(topic, partition)]


def _watermarks(broker, topic, partition=0):
    from confluent_kafka import TopicPartition
    c = h.consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                       cached=False)
    finally:
        c.close()


def test_produce_bad_crc_is_rejected_and_good_crc_accepted(healthy_after):
    b = healthy_after
    topic = h.unique("crc")
    h.create_topic(b, topic, 1)
    leader = h.partition_leaders(b, topic)[0]
    records = [(b"key-0", b"value-0"), (None, b"value-1"), (b"key-2", b"")]

    good = kw.build_record_batch(records)
    good_crc = struct.unpack_from(">I", good, 17)[0]
    bad = kw.build_record_batch(records, base_timestamp=struct.unpack_from(">q", good, 27)[0],
                                crc_override=good_crc ^ 0x00FF00FF)
    assert len(bad) == len(good) and bad != good
    assert bad[:17] == good[:17] and bad[21:] == good[21:], "only the CRC may differ"

    for acks in (1, -1):
        err, _off = _produce_raw(b, leader, topic, 0, bad, acks=acks)
        assert err == kw.CORRUPT_MESSAGE, f"bad CRC (acks={acks}): error {err}, expected 2"
    assert _watermarks(b, topic) == (0, 0), "corrupt batch was stored"

    # a batch whose length field overruns the records blob is not stored either
    overrun = good[:8] + kw.i32(struct.unpack_from(">i", good, 8)[0] + 50) + good[12:]
    err, _off = _produce_raw(b, leader, topic, 0, overrun)
    assert err != 0, "batch with overrunning length accepted"
    assert _watermarks(b, topic) == (0, 0), "truncated batch was stored"

    # the same records with the correct CRC are accepted at offset 0
    err, base = _produce_raw(b, leader, topic, 0, good, acks=1)
    assert (err, base) == (0, 0), f"good batch: error {err} base_offset {base}"
    err, base = _produce_raw(b, leader, topic, 0, good, acks=-1)
    assert (err, base) == (0, 3), f"second good batch: error {err} base_offset {base}"
    assert _watermarks(b, topic) == (0, 6)

    got = h.consume_all(b, topic, [0], expect=6)
    assert [(k, v, o) for k, v, _p, o, _ts in got] == [
        (k, v, i) for i, (k, v) in enumerate(records + records)]
    # the same records read back via a raw Fetch v4, with a valid CRC
    with conn(b, leader) as c:
        fr = kw.parse_fetch_v4_response(c.request(kw.API_FETCH, 4,
                                                  kw.fetch_v4_body(topic, 0, 0)))
    err, hw, recs = fr[(topic, 0)]
    assert (err, hw) == (0, 6)
    decoded = kw.decode_record_batches(recs)
    assert [(r["key"], r["value"], r["offset"]) for r in decoded] == [
        (k, v, i) for i, (k, v) in enumerate(records + records)]


def test_produce_unknown_topic_partition(healthy_after):
    b = healthy_after
    topic = h.unique("unk")
    h.create_topic(b, topic, 1)
    batch = kw.build_record_batch([(None, b"x")])
    # partition 5 of a 1-partition topic: UNKNOWN_TOPIC_OR_PARTITION (3) or
    # NOT_LEADER_OR_FOLLOWER (6) depending on shard routing; never success
    err, _ = _produce_raw(b, 0, topic, 5, batch)
    assert err in (kw.UNKNOWN_TOPIC_OR_PARTITION, kw.NOT_LEADER_OR_FOLLOWER), err
    assert _watermarks(b, topic) == (0, 0)


def _gzip_bomb_batch(value_len):
    """A gzip-compressed v2 batch of one valid record whose value is
    `value_len` zero bytes: a few hundred KiB on the wire."""
    body = kw.i8(0) + kw.varint(0) + kw.varint(0) + kw.varint(-1) + kw.varint(value_len)
    tail = kw.varint(0)
    record_len = len(body) + value_len + len(tail)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    out = [z.compress(kw.varint(record_len) + body)]
    chunk = bytes(16 << 20)
    left = value_len
    while left:
        n = min(left, len(chunk))
        out.append(z.compress(chunk[:n]))
        left -= n
    out.append(z.compress(tail))
    out.append(z.flush())
    return kw.frame_batch(b"".join(out), 1, attributes=1)  # attributes 1: gzip


def test_cli_consumer_refuses_a_batch_that_expands_past_the_limit(broker_factory):
    """Regression: `sluice consume` decoded records with kafka-protocol's
    unbounded codecs, so a stored batch expanding to hundreds of MiB was
    decompressed whole (and printed). It now stops with a one-line error.
    (The broker is told to accept such a batch: by default it refuses
    batches expanding past 64 MiB.)"""
    import subprocess
    from conftest import sluice_bin

    b = broker_factory(overrides={"message.decompressed.max.bytes": str(400 << 20)})
    topic = h.unique("clibomb")
    h.create_topic(b, topic, 1)  # compression.type=producer: stored as sent
    leader = h.partition_leaders(b, topic)[0]
    err, off = _produce_raw(b, leader, topic, 0, _gzip_bomb_batch(300 << 20))
    assert (err, off) == (0, 0)
    r = subprocess.run([str(sluice_bin()), "consume", "--bootstrap-server", b.bootstrap, "--topic", topic,
                        "--from-beginning", "--max-messages", "1", "--timeout-ms", "10000"],
                       capture_output=True, timeout=120)
    assert r.returncode != 0, f"printed {len(r.stdout)} bytes and exited 0"
    assert b"decompresses to more than" in r.stderr and len(r.stdout) == 0, r.stderr[-500:]
    h.assert_healthy(b)


def test_produce_batch_that_expands_past_the_limit_is_refused(healthy_after):
    """Regression: records were decompressed without bound, so a small batch
    expanding to gigabytes made the broker allocate until it died. A batch
    that expands past message.decompressed.max.bytes (64 MiB) is now refused
    with MESSAGE_TOO_LARGE (here on the compression.type rewrite path;
    compaction keeps such a batch whole)."""
    b = healthy_after
    topic = h.unique("bomb")
    # lz4 storage makes the broker decode the producer's gzip batches
    h.create_topic(b, topic, 1, config={"compression.type": "lz4"})
    leader = h.partition_leaders(b, topic)[0]
    bomb = _gzip_bomb_batch(300 << 20)
    assert len(bomb) < 1 << 20, len(bomb)
    err, _off = _produce_raw(b, leader, topic, 0, bomb)
    assert err == 10, f"error {err}, expected MESSAGE_TOO_LARGE"
    assert _watermarks(b, topic) == (0, 0), "the batch was stored"
    # a batch of the same shape under the limit is recompressed and stored
    err, off = _produce_raw(b, leader, topic, 0, _gzip_bomb_batch(1 << 20))
    assert (err, off) == (0, 0)
    assert _watermarks(b, topic) == (0, 1)
