"""Broker-less checks that the hand-written wire encoder in kafka_wire.py is
correct, by comparing with kafka-python's independent implementation. This is
what makes the raw-socket tests (bad CRC, wrong shard, ...) meaningful."""

import random

import crc32c as crc32c_pkg
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import ApiVersionsResponse, MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import kafka_wire as kw


def test_crc32c_reference_vectors():
    assert kw.crc32c_pure(b"123456789") == 0xE3069283
    assert kw.crc32c(b"123456789") == 0xE3069283
    rnd = random.Random(1)
    for n in (0, 1, 7, 64, 1000):
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        assert kw.crc32c_pure(data) == crc32c_pkg.crc32c(data)


def test_varint_zigzag():
    for n, enc in [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-2, b"\x03"),
                   (63, b"\x7e"), (64, b"\x80\x01"), (-65, b"\x81\x01")]:
        assert kw.varint(n) == enc
        assert kw._read_varint(enc, 0) == (n, len(enc))


def _kp_batch(records, ts, leader_epoch=0):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i, (k, v) in enumerate(records):
        b.append(i, timestamp=ts, key=k, value=v, headers=[])
    return bytes(b.build())


def test_record_batch_matches_kafka_python():
    ts = 1_700_000_000_000
    records = [(b"k1", b"v1"), (None, b"value-two"), (b"key-3", None),
               (b"x" * 200, b"y" * 300)]
    ours = kw.build_record_batch(records, base_timestamp=ts, partition_leader_epoch=0)
    theirs = _kp_batch(records, ts)
    assert ours == theirs

    parsed = DefaultRecordBatch(ours)
    assert parsed.validate_crc()
    assert [(r.key, r.value) for r in parsed] == records

    decoded = kw.decode_record_batches(ours)
    assert [(r["key"], r["value"], r["offset"], r["timestamp"]) for r in decoded] == [
        (k, v, i, ts) for i, (k, v) in enumerate(records)]


def test_bad_crc_batch_is_detected_by_kafka_python():
    good = kw.build_record_batch([(b"k", b"v")])
    crc = int.from_bytes(good[17:21], "big")
    bad = kw.build_record_batch([(b"k", b"v")], base_timestamp=None,
                                crc_override=(crc ^ 0x5A5A5A5A))
    # same length fields, only the CRC differs (timestamps may differ by 1 ms)
    assert len(bad) == len(good)
    assert not DefaultRecordBatch(bad).validate_crc()


def test_produce_v3_request_matches_kafka_python():
    batch = kw.build_record_batch([(b"k", b"v")], base_timestamp=123)
    ours = kw.request_frame(kw.API_PRODUCE, 3, 7,
                            kw.produce_v3_body("topic-a", 2, batch, acks=1, timeout_ms=5000),
                            client_id="sluice-e2e")
    req = ProduceRequest(
        transactional_id=None, acks=1, timeout_ms=5000,
        topic_data=[ProduceRequest.TopicProduceData(
            name="topic-a",
            partition_data=[ProduceRequest.TopicProduceData.PartitionProduceData(
                index=2, records=batch)])])
    req.API_VERSION = 3
    req.with_header(correlation_id=7, client_id="sluice-e2e")
    theirs = bytes(req.encode(version=3, header=True, framed=True))
    assert ours == theirs


def test_produce_v3_response_parser():
    P = ProduceResponse.TopicProduceResponse
    resp = ProduceResponse(
        responses=[P(name="topic-a", partition_responses=[
            P.PartitionProduceResponse(index=2, error_code=2, base_offset=-1,
                                       log_append_time_ms=-1),
            P.PartitionProduceResponse(index=3, error_code=0, base_offset=42,
                                       log_append_time_ms=-1)])],
        throttle_time_ms=0)
    body = bytes(resp.encode(version=3))
    assert kw.parse_produce_v3_response(body) == {("topic-a", 2): (2, -1),
                                                  ("topic-a", 3): (0, 42)}


def test_fetch_v4_request_and_response():
    ours = kw.request_frame(kw.API_FETCH, 4, 9, kw.fetch_v4_body("t", 1, 5, max_wait_ms=100,
                                                                 min_bytes=1, max_bytes=1000,
                                                                 partition_max_bytes=500))
    F = FetchRequest.FetchTopic
    req = FetchRequest(replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1000,
                       isolation_level=0,
                       topics=[F(topic="t", partitions=[F.FetchPartition(
                           partition=1, fetch_offset=5, partition_max_bytes=500)])])
    req.API_VERSION = 4
    req.with_header(correlation_id=9, client_id="sluice-e2e")
    assert ours == bytes(req.encode(version=4, header=True, framed=True))

    batch = kw.build_record_batch([(b"a", b"b")], base_timestamp=1)
    R = FetchResponse.FetchableTopicResponse
    resp = FetchResponse(throttle_time_ms=0, responses=[R(topic="t", partitions=[
        R.PartitionData(partition_index=1, error_code=6, high_watermark=-1,
                        last_stable_offset=-1, aborted_transactions=None, records=batch)])])
    body = bytes(resp.encode(version=4))
    assert kw.parse_fetch_v4_response(body) == {("t", 1): (6, -1, batch)}


def test_metadata_v1_request_matches_kafka_python():
    ours = kw.request_frame(kw.API_METADATA, 1, 3, kw.metadata_v1_body(["x", "y"]))
    req = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="x"),
                                  MetadataRequest.MetadataRequestTopic(name="y")])
    req.API_VERSION = 1
    req.with_header(correlation_id=3, client_id="sluice-e2e")
    assert ours == bytes(req.encode(version=1, header=True, framed=True))


def test_api_versions_v0_response_parser():
    A = ApiVersionsResponse.ApiVersion
    resp = ApiVersionsResponse(error_code=35, api_keys=[
        A(api_key=0, min_version=0, max_version=9), A(api_key=18, min_version=0, max_version=3)])
    body = bytes(resp.encode(version=0))
    assert kw.parse_api_versions_v0_response(body) == (35, {0: (0, 9), 18: (0, 3)})


def test_metadata_v4_request_and_response():
    ours = kw.request_frame(kw.API_METADATA, 4, 5, kw.metadata_v4_body(["x"]))
    req = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="x")],
                          allow_auto_topic_creation=False)
    req.API_VERSION = 4
    req.with_header(correlation_id=5, client_id="sluice-e2e")
    assert ours == bytes(req.encode(version=4, header=True, framed=True))

    B, T = MetadataResponse.MetadataResponseBroker, MetadataResponse.MetadataResponseTopic
    P = T.MetadataResponsePartition
    resp = MetadataResponse(
        throttle_time_ms=0,
        brokers=[B(node_id=0, host="127.0.0.1", port=9092, rack=None),
                 B(node_id=1, host="127.0.0.1", port=9093, rack=None)],
        cluster_id="abc", controller_id=0,
        topics=[T(error_code=0, name="x", is_internal=False, partitions=[
            P(error_code=0, partition_index=0, leader_id=1, replica_nodes=[1],
              isr_nodes=[1])])])
    body = bytes(resp.encode(version=4))
    md = kw.parse_metadata_v4_response(body)
    assert md["brokers"] == {0: ("127.0.0.1", 9092), 1: ("127.0.0.1", 9093)}
    assert md["controller"] == 0
    assert md["topics"]["x"]["partitions"][0]["leader"] == 1
