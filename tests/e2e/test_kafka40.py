"""Kafka 4.0's client surface: the advertised API table, API by API, against
Kafka 4.0's; clients that infer the broker's version from it; ListOffsets'
special timestamps of v7-v10."""

import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec as CkOffsetSpec
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.protocol.consumer.offsets import OffsetSpec

import helpers as h
import kafka_wire as kw

# What a Kafka 4.0.0 broker answers to ApiVersions (KRaft, broker listener):
# api key -> (min, max). From a 4.0.0 broker's response, as kafka-python
# records it (kafka/protocol/broker_version_data.py).
KAFKA_40 = {
    0: (0, 12), 1: (4, 17), 2: (1, 10), 3: (0, 13), 8: (2, 9), 9: (1, 9), 10: (0, 6), 11: (2, 9),
    12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 6), 16: (0, 5), 17: (0, 1), 18: (0, 4), 19: (2, 7),
    20: (1, 6), 21: (0, 2), 22: (0, 5), 23: (2, 4), 24: (0, 5), 25: (0, 4), 26: (0, 5), 27: (1, 1),
    28: (0, 5), 29: (1, 3), 30: (1, 3), 31: (1, 3), 32: (1, 4), 33: (0, 2), 34: (1, 2), 35: (1, 4),
    36: (0, 2), 37: (0, 3), 38: (1, 3), 39: (1, 2), 40: (1, 2), 41: (1, 3), 42: (0, 2), 43: (0, 2),
    44: (0, 1), 45: (0, 0), 46: (0, 0), 47: (0, 0), 48: (0, 1), 49: (0, 1), 50: (0, 0), 51: (0, 0),
    55: (0, 2), 57: (0, 2), 60: (0, 2), 61: (0, 0), 64: (0, 0), 65: (0, 0), 66: (0, 1), 68: (0, 1),
    69: (0, 1), 74: (0, 0), 75: (0, 0), 80: (0, 0), 81: (0, 0),
}

# Kafka 4.0 APIs sluice does not serve yet, each with the issue that brings
# it. Serving one of them means taking it off this list, on purpose.
NOT_SERVED = {
    17: "SaslHandshake (security)", 36: "SaslAuthenticate (security)",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit (transactions)",
    29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls (security)",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken (security)",
    48: "DescribeClientQuotas", 49: "AlterClientQuotas (quotas)",
    50: "DescribeUserScramCredentials", 51: "AlterUserScramCredentials (security)",
    57: "UpdateFeatures",
    61: "DescribeProducers",
    65: "DescribeTransactions", 66: "ListTransactions (transactions)",
    68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe (KIP-848 groups)",
    71: "GetTelemetrySubscriptions", 72: "PushTelemetry", 74: "ListClientMetricsResources (metrics)",
}


def advertised(broker):
    with kw.WireConn("127.0.0.1", broker.port) as c:
        err, apis = kw.parse_api_versions_v0_response(c.request(kw.API_API_VERSIONS, 0, b""))
    assert err == 0
    return apis


def test_advertised_table_is_kafka_40s(broker):
    ours = advertised(broker)
    for key, (lo, hi) in ours.items():
        assert key in KAFKA_40, f"API {key} is advertised but Kafka 4.0 has no such API"
        k_lo, k_hi = KAFKA_40[key]
        assert hi == k_hi, f"API {key}: sluice's max v{hi}, Kafka 4.0's v{k_hi}"
        # Older versions than Kafka 4.0 keeps are served on purpose (older clients).
        assert lo <= k_lo, f"API {key}: sluice's min v{lo} is above Kafka 4.0's v{k_lo}"
    missing = sorted(set(KAFKA_40) - set(ours) - set(NOT_SERVED))
    assert not missing, f"Kafka 4.0 APIs neither served nor listed as not served: {missing}"
    wrongly_listed = sorted(set(NOT_SERVED) & set(ours))
    assert not wrongly_listed, f"served, yet listed as not served: {wrongly_listed}"


def test_kafka_python_infers_kafka_40(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert a.get_broker_version_data(0).broker_version == (4, 0)
        # DescribeCluster v2 (IsFenced) answers.
        brokers = a.describe_cluster()["brokers"]
        assert [b["is_fenced"] for b in brokers] == [False] * broker.shards
    finally:
        a.close()


def produce_timestamps(broker, topic, stamps, codec="none"):
    p = h.producer(broker, **{"linger.ms": 50, "compression.type": codec})
    for i, ts in enumerate(stamps):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=ts)
    assert p.flush(30) == 0


def kp_offsets(broker, topic, spec):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        tp = KpTopicPartition(topic, 0)
        r = a.list_partition_offsets({tp: spec})[tp]
        return r.offset, r.timestamp
    finally:
        a.close()


def ck_offsets(broker, topic, spec):
    tp = TopicPartition(topic, 0)
    a = h.admin(broker)
    r = a.list_offsets({tp: spec}, request_timeout=10)[tp].result(15)
    return r.offset, r.timestamp


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_list_offsets_max_timestamp_finds_the_newest_record(broker, codec):
    topic = h.unique("maxts")
    h.create_topic(broker, topic, 1, config={"compression.type": "producer"})
    assert kp_offsets(broker, topic, OffsetSpec.MAX_TIMESTAMP) == (-1, -1), "an empty log has no newest record"
    base = int(time.time() * 1000) - 60_000
    # Two batches; the largest timestamp is at offsets 2 and 6, inside each.
    produce_timestamps(broker, topic, [base + 10, base + 30, base + 50, base + 20], codec)
    produce_timestamps(broker, topic, [base + 40, base + 45, base + 50, base + 5], codec)
    assert kp_offsets(broker, topic, OffsetSpec.MAX_TIMESTAMP) == (2, base + 50)
    assert ck_offsets(broker, topic, CkOffsetSpec.max_timestamp()) == (2, base + 50)
    # The other v7+ specials: earliest local is the log start (no tiered
    # storage), latest tiered is "none" (-1).
    assert kp_offsets(broker, topic, OffsetSpec.EARLIEST_LOCAL) == (0, -1)
    assert kp_offsets(broker, topic, OffsetSpec.LATEST_TIERED) == (-1, -1)
    # Lookups by time find the record, not its batch's first one.
    assert kp_offsets(broker, topic, base + 31) == (2, base + 50)
    assert kp_offsets(broker, topic, base + 51) == (-1, -1)
    assert ck_offsets(broker, topic, CkOffsetSpec.for_timestamp(base + 21)) == (1, base + 30)
    # After a restart (indexes rebuilt), and with the newest record now later.
    broker.restart()
    assert kp_offsets(broker, topic, OffsetSpec.MAX_TIMESTAMP) == (2, base + 50)
    produce_timestamps(broker, topic, [base + 60])
    assert kp_offsets(broker, topic, OffsetSpec.MAX_TIMESTAMP) == (8, base + 60)
    a, cut = h.admin(broker), TopicPartition(topic, 0, 3)
    a.delete_records([cut], request_timeout=10)[cut].result(15)
    assert kp_offsets(broker, topic, OffsetSpec.EARLIEST_LOCAL) == (3, -1)
