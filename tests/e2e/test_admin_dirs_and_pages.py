"""Admin calls of Kafka 4.0's tools, through kafka-python's admin client:
DescribeTopicPartitions page by page, DescribeLogDirs and
AlterReplicaLogDirs as a broker with one log directory answers them."""

import pytest
from kafka import KafkaAdminClient
from kafka.errors import LogDirNotFoundError, NoError, NotLeaderForPartitionError
from kafka.structs import TopicPartitionReplica

import helpers as h


@pytest.fixture
def kadmin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    yield a
    a.close()


def all_pages(kadmin, topics, limit):
    """Every page of a DescribeTopicPartitions walk: [(topic, partition)] per page."""
    pages, cursor = [], None
    while True:
        r = kadmin.describe_topic_partitions(topics, response_partition_limit=limit, cursor=cursor)
        pages.append([(t["name"], p["partition_index"]) for t in r["topics"] for p in t["partitions"]])
        cursor = r["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ends"


def test_describe_topic_partitions_pages_through_topics_in_name_order(broker, kadmin):
    prefix = h.unique("dtp")
    sizes = {f"{prefix}-a": 3, f"{prefix}-b": 2, f"{prefix}-c": 1}
    for name, n in sizes.items():
        h.create_topic(broker, name, n)
    everything = [(name, p) for name in sorted(sizes) for p in range(sizes[name])]

    pages = all_pages(kadmin, list(sizes), 2)
    assert pages == [everything[0:2], everything[2:4], everything[4:6]]
    pages = all_pages(kadmin, list(sizes), 4)
    assert pages == [everything[0:4], everything[4:6]]
    assert all_pages(kadmin, list(sizes), 2000) == [everything]

    # Every topic of the cluster when none is named: ours appear, in order.
    listed = [tp for page in all_pages(kadmin, [], 1) for tp in page]
    assert [tp for tp in listed if tp[0].startswith(prefix)] == everything

    r = kadmin.describe_topic_partitions([f"{prefix}-b", f"{prefix}-missing"])
    by_name = {t["name"]: t for t in r["topics"]}
    assert by_name[f"{prefix}-missing"]["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    b = by_name[f"{prefix}-b"]
    assert b["error_code"] == 0 and b["topic_id"] is not None
    assert [p["leader_id"] for p in b["partitions"]] == [p["replica_nodes"][0] for p in b["partitions"]]

    # confluent-kafka's describe_topics (librdkafka asks Metadata for it,
    # not DescribeTopicPartitions) sees the same partitions and leaders.
    from confluent_kafka import TopicCollection
    ck = h.admin(broker)
    described = ck.describe_topics(TopicCollection(sorted(sizes)), request_timeout=10)
    for name, future in described.items():
        d = future.result(15)
        assert [p.id for p in d.partitions] == list(range(sizes[name]))
        assert not d.is_internal and d.topic_id is not None

    # A cursor naming a topic not in the list is refused, as Kafka refuses it.
    r = kadmin.describe_topic_partitions([f"{prefix}-c"], cursor={"topic_name": f"{prefix}-b", "partition_index": 0})
    assert [t["error_code"] for t in r["topics"]] == [42]  # INVALID_REQUEST


def test_describe_log_dirs_reports_the_data_dir_and_partition_sizes(broker, kadmin):
    topic = h.unique("dirs")
    h.create_topic_on_both_shards(broker, topic, 2)
    h.produce_records(broker, topic, [(None, b"x" * 1000, p % 2) for p in range(40)])
    answers = kadmin.describe_log_dirs(topic_partitions=[topic])
    assert sorted(a["broker"] for a in answers) == list(range(broker.shards))
    sizes = {}
    for a in answers:
        (d,) = a["log_dirs"]
        assert d["error_code"] == 0
        assert d["log_dir"] == str(broker.data_dir.resolve())
        assert 0 < d["usable_bytes"] <= d["total_bytes"]
        for t in d["topics"]:
            assert t["name"] == topic
            for p in t["partitions"]:
                assert p["offset_lag"] == 0 and not p["is_future_key"]
                sizes[(a["broker"], p["partition_index"])] = p["partition_size"]
    # Each partition is reported once, by the node that leads it, with its
    # bytes: 20 records of 1000 bytes each, plus batch overheads.
    leaders = h.partition_leaders(broker, topic)
    assert sorted(sizes) == sorted((leader, p) for p, leader in leaders.items())
    assert all(20_000 < s < 40_000 for s in sizes.values()), sizes


def test_alter_replica_log_dirs_with_one_log_dir(broker, kadmin):
    topic = h.unique("alterdir")
    h.create_topic_on_both_shards(broker, topic, 2)
    leaders = h.partition_leaders(broker, topic)
    here = str(broker.data_dir.resolve())
    r = kadmin.alter_replica_log_dirs({
        TopicPartitionReplica(topic, 0, leaders[0]): here,
        TopicPartitionReplica(topic, 1, leaders[1]): "/nowhere/else",
        # Partition 0 asked of the node that does not hold it.
        TopicPartitionReplica(topic, 0, leaders[1]): here,
    })
    assert r[TopicPartitionReplica(topic, 0, leaders[0])] is NoError
    assert r[TopicPartitionReplica(topic, 1, leaders[1])] is LogDirNotFoundError
    assert r[TopicPartitionReplica(topic, 0, leaders[1])] is NotLeaderForPartitionError
    h.assert_healthy(broker)
