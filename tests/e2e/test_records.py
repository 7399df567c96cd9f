"""What producers send by default (issue 5): compressed batches with every
codec from two client libraries, topic-level recompression, headers,
LogAppendTime topics and size limits."""

import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import (TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import NewTopic

import helpers as h
import kafka_wire as kw

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
N = 10_000


def stored_codecs(broker, topic, partition=0):
    """Codec ids of the batches the broker serves for a partition (raw Fetch v4)."""
    leader = h.partition_leaders(broker, topic)[partition]
    codecs, offset = [], 0
    with kw.WireConn("127.0.0.1", broker.shard_port(leader)) as c:
        while True:
            fr = kw.parse_fetch_v4_response(c.request(kw.API_FETCH, 4, kw.fetch_v4_body(topic, partition, offset)))
            err, hw, data = fr[(topic, partition)]
            assert err == 0
            pos = 0
            while pos + 61 <= len(data):
                base, length = struct.unpack_from(">qi", data, pos)
                if pos + 12 + length > len(data):
                    break
                (attributes,) = struct.unpack_from(">h", data, pos + 21)
                (delta,) = struct.unpack_from(">i", data, pos + 23)
                codecs.append(attributes & 7)
                offset = base + delta + 1
                pos += 12 + length
            if offset >= hw or pos == 0:
                return codecs


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_codec_round_trip(broker, codec):
    topic = h.unique(f"cz-{codec}")
    h.create_topic(broker, topic, partitions=2)
    records = [(f"k{i}".encode(), f"value-{i}-".encode() * 8, i % 2) for i in range(N)]
    h.produce_records(broker, topic, records, **{"compression.type": codec, "linger.ms": 20})
    got = h.consume_all(broker, topic, range(2), expect=N)
    assert sorted(v for _k, v, *_ in got) == sorted(v for _k, v, _p in records)
    # Stored and served as sent.
    assert set(stored_codecs(broker, topic)) == {CODEC_IDS[codec]}


KAFKA_PYTHON_CODEC = """\
import sys
from kafka import KafkaProducer, KafkaConsumer
bootstrap, topic, codec, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20)
for i in range(n):
    p.send(topic, key=b'k%d' % i, value=b'kp-%d' % i, headers=[('bin', bytes([0, 255, i % 256])), ('empty', b'')])
p.flush()
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset='earliest', consumer_timeout_ms=10000)
seen = set()
bad = 0
for m in c:
    i = int(m.value[3:])
    if m.key != b'k%d' % i or m.headers != [('bin', bytes([0, 255, i % 256])), ('empty', b'')]:
        bad += 1
    seen.add(i)
    if len(seen) == n:
        break
print(len(seen), bad)
"""


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_codec_round_trip(broker, codec):
    topic = h.unique(f"kz-{codec}")
    h.create_topic(broker, topic, partitions=1)
    r = subprocess.run([sys.executable, "-c", KAFKA_PYTHON_CODEC, broker.bootstrap, topic, codec, str(N)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == [str(N), "0"]
    assert set(stored_codecs(broker, topic)) == {CODEC_IDS[codec]}


def test_topic_compression_type_recompresses(broker):
    """compression.type=zstd: a producer sending lz4 is served zstd."""
    topic = h.unique("tz")
    h.create_topic(broker, topic, partitions=1, config={"compression.type": "zstd"})
    records = [(None, f"lz4-{i}".encode() * 4, 0) for i in range(2000)]
    h.produce_records(broker, topic, records, **{"compression.type": "lz4", "linger.ms": 20})
    assert set(stored_codecs(broker, topic)) == {CODEC_IDS["zstd"]}
    got = h.consume_all(broker, topic, [0], expect=2000)
    assert [v for _k, v, *_ in got] == [v for _k, v, _p in records]
    # And uncompressed: what arrives compressed is stored plain.
    plain = h.unique("tu")
    h.create_topic(broker, plain, partitions=1, config={"compression.type": "uncompressed"})
    h.produce_records(broker, plain, records[:100], **{"compression.type": "gzip"})
    assert set(stored_codecs(broker, plain)) == {0}
    assert [v for _k, v, *_ in h.consume_all(broker, plain, [0], expect=100)] == [v for _k, v, _p in records[:100]]


def test_bad_topic_compression_value_is_refused(broker):
    a = h.admin(broker)
    fut = a.create_topics([NewTopic(h.unique("bad"), 1, 1, config={"compression.type": "brotli"})])
    for f in fut.values():
        with pytest.raises(KafkaException) as e:
            f.result()
        assert h.err_code(e.value) == KafkaError.INVALID_CONFIG


def test_binary_and_empty_headers_round_trip(broker):
    topic = h.unique("hdr")
    h.create_topic(broker, topic, partitions=1)
    headers = [("bin", bytes(range(256))), ("empty", b""), ("dup", b"1"), ("dup", b"2")]
    p = h.producer(broker)
    p.produce(topic, value=b"v", headers=headers, partition=0)
    assert p.flush(30) == 0
    c = h.consumer(broker)
    c.assign([TopicPartition(topic, 0, 0)])
    m = None
    deadline = time.monotonic() + 20
    while m is None and time.monotonic() < deadline:
        m = c.poll(1)
        if m is not None and m.error():
            m = None
    c.close()
    assert m is not None and m.headers() == headers


def test_log_append_time_topics_show_broker_time(broker):
    topic = h.unique("lat")
    h.create_topic(broker, topic, partitions=1, config={"message.timestamp.type": "LogAppendTime"})
    reports = []
    p = h.producer(broker)
    before = int(time.time() * 1000)
    for i in range(5):
        p.produce(topic, value=b"x%d" % i, partition=0, timestamp=1_000_000 + i,
                  on_delivery=lambda err, msg: reports.append((err, msg.timestamp())))
    assert p.flush(30) == 0
    after = int(time.time() * 1000)
    assert all(err is None for err, _ in reports)
    # The produce response carries the broker's append time...
    for _err, (ts_type, ts) in reports:
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000, (ts_type, ts)
    # ...and so do the fetched records, not the producer's 1_000_000.
    c = h.consumer(broker)
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 5 and time.monotonic() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.timestamp())
    c.close()
    assert len(got) == 5
    for ts_type, ts in got:
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000


def test_record_over_the_limit_is_rejected_and_the_next_one_succeeds(broker_factory):
    broker = broker_factory(overrides={"message.max.bytes": "50000"})
    topic = h.unique("big")
    h.create_topic(broker, topic, partitions=1, config={"max.message.bytes": "20000"})
    # Batches of one record each, so that only the big one is refused.
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 1,
                  "message.max.bytes": 1_000_000, **h.quiet_conf()})
    results = []
    for value in (b"s" * 100, b"B" * 30000, b"t" * 100):
        p.produce(topic, value=value, partition=0, on_delivery=lambda err, msg: results.append(err))
        p.flush(30)
    assert results[0] is None and results[2] is None
    assert results[1] is not None and results[1].code() == KafkaError.MSG_SIZE_TOO_LARGE
    got = h.consume_all(broker, topic, [0], expect=2)
    assert [v for _k, v, *_ in got] == [b"s" * 100, b"t" * 100]
    # The broker-wide message.max.bytes is the default for other topics.
    other = h.unique("big2")
    h.create_topic(broker, other, partitions=1)
    results.clear()
    p.produce(other, value=b"B" * 60000, partition=0, on_delivery=lambda err, msg: results.append(err))
    p.flush(30)
    assert results[0] is not None and results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    broker.assert_alive()


def batch_with_raw_record(body):
    """A valid (CRC-correct) one-record v2 batch around a hand-made record body."""
    return kw.frame_batch(kw.varint(len(body)) + body, 1)


def test_record_claiming_two_billion_headers_is_refused_not_fatal(broker):
    """On a topic that recompresses, the broker decodes records; a record
    whose header count says 2^31-1 made the codec reserve ~97 GB and abort the
    process (found by the fuzz harness). Now: INVALID_RECORD (as Kafka answers
    a record that is not what it says), broker alive."""
    topic = h.unique("hdrbomb")
    h.create_topic(broker, topic, partitions=1, config={"compression.type": "zstd"})
    body = kw.i8(0) + kw.varint(0) + kw.varint(0) + kw.varint(-1) + kw.varint(1) + b"x" + kw.varint(2**31 - 1)
    with kw.WireConn("127.0.0.1", broker.shard_port(h.partition_leaders(broker, topic)[0])) as c:
        pr = kw.parse_produce_v3_response(c.request(
            kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, batch_with_raw_record(body), acks=-1)))
        assert pr[(topic, 0)][0] == kw.INVALID_RECORD
    broker.assert_alive()
    h.produce_records(broker, topic, [(None, b"fine", 0)])
    assert [v for _k, v, *_ in h.consume_all(broker, topic, [0], expect=1)] == [b"fine"]


def _produce_raw(broker, topic, records):
    with kw.WireConn("127.0.0.1", broker.shard_port(h.partition_leaders(broker, topic)[0])) as c:
        pr = kw.parse_produce_v3_response(c.request(kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, records, acks=-1)))
        return pr[(topic, 0)]


def _with_crc(b):
    b = bytearray(b)
    b[17:21] = kw.u32(kw.crc32c(bytes(b[21:])))
    return bytes(b)


def test_invalid_batches_are_corrupt_and_nothing_is_appended(broker):
    topic = h.unique("inv")
    h.create_topic(broker, topic, partitions=1)
    good = kw.build_record_batch([(None, b"a"), (None, b"b")])
    bad_magic = bytearray(good)
    bad_magic[16] = 1
    bad_count = bytearray(good)
    bad_count[57:61] = kw.i32(5)  # says 5 records, holds 2
    bad_length = bytearray(good)
    bad_length[8:12] = kw.i32(len(good) + 100)  # longer than the data
    for bad in (bytes(bad_magic), _with_crc(bad_count), bytes(bad_length), good[:-1]):
        # A good batch first, then the bad one: all or nothing.
        err = _produce_raw(broker, topic, good + bad)[0]
        assert err == kw.CORRUPT_MESSAGE, err
    assert _produce_raw(broker, topic, good)[:2] == (0, 0), "something was appended by a refused request"
    assert len(h.consume_all(broker, topic, [0], expect=2)) == 2


def test_silent_producers_expire(broker_factory):
    """producer.id.expiration.ms: once a producer has been forgotten, its old
    batch is new again (as in Kafka) - shown here to prove expiry happens."""
    broker = broker_factory(overrides={"producer.id.expiration.ms": "1500",
                                       "log.retention.check.interval.ms": "300"})
    topic = h.unique("exp")
    h.create_topic(broker, topic, partitions=1)
    batch = kw.build_record_batch([(None, b"x")], producer_id=31, producer_epoch=0, base_sequence=0,
                                  base_timestamp=int(time.time() * 1000))
    assert _produce_raw(broker, topic, batch)[:2] == (0, 0)
    assert _produce_raw(broker, topic, batch)[:2] == (0, 0)  # deduplicated while remembered
    time.sleep(3)
    assert _produce_raw(broker, topic, batch)[:2] == (0, 1)  # forgotten: appended again


def test_batch_claiming_two_billion_records_is_refused_not_fatal(broker):
    """A batch whose header says 2^31-1 records (and a matching offset delta,
    so the header checks pass) made the codec reserve ~378 GB when the broker
    decoded it for recompression, aborting the process (found by the fuzz
    harness). Now: INVALID_RECORD (the walk finds one record), broker alive."""
    topic = h.unique("cntbomb")
    h.create_topic(broker, topic, partitions=1, config={"compression.type": "zstd"})
    batch = bytearray(kw.build_record_batch([(None, b"x")]))
    batch[23:27] = kw.i32(2**31 - 2)  # last offset delta
    batch[57:61] = kw.i32(2**31 - 1)  # record count
    with kw.WireConn("127.0.0.1", broker.shard_port(h.partition_leaders(broker, topic)[0])) as c:
        err = kw.parse_produce_v3_response(c.request(
            kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, _with_crc(batch), acks=-1)))[(topic, 0)][0]
        assert err == kw.INVALID_RECORD
    broker.assert_alive()
    h.produce_records(broker, topic, [(None, b"fine", 0)])
    assert [v for _k, v, *_ in h.consume_all(broker, topic, [0], expect=1)] == [b"fine"]
