"""`broker.rack` (Kafka's key): every shard of the broker reports it, in
Metadata and DescribeCluster, so rack-aware clients see it."""

from kafka.admin import KafkaAdminClient

import helpers as h


def test_the_rack_reaches_clients(broker_factory):
    broker = broker_factory(overrides={"broker.rack": "rack-a"})
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        cluster = a.describe_cluster()
        assert {b["rack"] for b in cluster["brokers"]} == {"rack-a"}
        assert len(cluster["brokers"]) == broker.shards
    finally:
        a.close()
    md = h.admin(broker).list_topics(timeout=10)
    assert len(md.brokers) == broker.shards


def test_no_rack_is_null(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert {b["rack"] for b in a.describe_cluster()["brokers"]} == {None}
    finally:
        a.close()
