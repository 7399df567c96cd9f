"""Replica assignments on one broker (issue 23's placement, first slice).

A broker's shards are Kafka nodes, so a client that sizes the replication
factor from the node count asks for more than one replica. Kafka places such
replicas on distinct nodes even when they share a host; sluice does the same
across its shards, with a warning (one machine is not machine-safe).
Followers on other shards copy their leader (issue 24; see
test_replication_one_broker.py) and are in sync."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewPartitions, NewTopic
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic

import helpers as h

INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39


def _create(broker, topic, **kw):
    a = h.admin(broker)
    f = a.create_topics([NewTopic(topic, **kw)])[topic]
    return f.result(timeout=30)


def _error(broker, topic, **kw):
    with pytest.raises(KafkaException) as e:
        _create(broker, topic, **kw)
    return e.value.args[0]


def _partitions(broker, topic):
    md = h.admin(broker).list_topics(topic, timeout=10)
    return {p.id: p for p in md.topics[topic].partitions.values()}


def test_replicas_go_to_distinct_shards_leaders_balanced(broker):
    topic = h.unique("rf2")
    _create(broker, topic, num_partitions=4, replication_factor=2)
    parts = _partitions(broker, topic)
    assert len(parts) == 4
    for p in parts.values():
        assert sorted(p.replicas) == [0, 1], p.replicas
        assert p.replicas[0] == p.leader
        assert sorted(p.isrs) == [0, 1], "a follower on the other shard is in sync"
    assert sorted(p.leader for p in parts.values()) == [0, 0, 1, 1]
    # Clients produce (acks=all, min.insync.replicas=1) and consume as usual.
    acked = h.produce_records(broker, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(400)])
    got = h.consume_all(broker, topic, 4)
    assert sorted(v for _k, v, *_ in got) == sorted(v for _k, v, *_ in acked)


def test_kafka_python_sees_the_replicas(broker):
    topic = h.unique("kprf")
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        a.create_topics([KpNewTopic(topic, num_partitions=2, replication_factor=2)])
        [desc] = a.describe_topics([topic])
        for p in desc["partitions"]:
            assert sorted(p["replica_nodes"]) == [0, 1]
            assert sorted(p["isr_nodes"]) == [0, 1]
    finally:
        a.close()


def test_more_replicas_than_nodes_are_refused(broker):
    err = _error(broker, h.unique("rf3"), num_partitions=1, replication_factor=3)
    assert err.code() == INVALID_REPLICATION_FACTOR
    assert "larger than available brokers: 2" in err.str()


def test_a_clients_assignment_is_kept_and_checked(broker):
    topic = h.unique("assign")
    # confluent-kafka wants the partition count beside an assignment.
    _create(broker, topic, num_partitions=3, replica_assignment=[[1, 0], [0, 1], [1, 0]])
    parts = _partitions(broker, topic)
    assert [parts[p].replicas for p in range(3)] == [[1, 0], [0, 1], [1, 0]]
    assert [parts[p].leader for p in range(3)] == [1, 0, 1]
    for bad in ([[0, 0]], [[0, 1], [1]], [[0, 5]]):
        err = _error(broker, h.unique("badassign"), num_partitions=len(bad), replica_assignment=bad)
        assert err.code() == INVALID_REPLICA_ASSIGNMENT, (bad, err)


def test_assignments_survive_a_restart_and_new_partitions_keep_the_factor(broker):
    topic = h.unique("keep")
    _create(broker, topic, num_partitions=2, replication_factor=2)
    before = {p: v.replicas for p, v in _partitions(broker, topic).items()}
    broker.stop()
    broker.restart()
    assert {p: v.replicas for p, v in _partitions(broker, topic).items()} == before
    a = h.admin(broker)
    a.create_partitions([NewPartitions(topic, 4)])[topic].result(timeout=30)
    parts = _partitions(broker, topic)
    assert len(parts) == 4
    assert all(sorted(p.replicas) == [0, 1] for p in parts.values())


def test_offsets_topic_takes_what_the_node_count_allows(broker):
    # offsets.topic.replication.factor is 3, as in Kafka; two shards hold 2.
    topic = h.unique("grp")
    h.create_topic(broker, topic, 1)
    h.produce_records(broker, topic, [(b"k", b"v")])
    h.commit_one(broker, h.unique("g"), topic)
    parts = _partitions(broker, "__consumer_offsets")
    assert parts and all(sorted(p.replicas) == [0, 1] for p in parts.values())


def test_the_tools_flag_replicas_on_one_host(broker):
    from test_tools import script
    one, two = h.unique("rf1"), h.unique("rf2")
    _create(broker, one, num_partitions=2, replication_factor=1)
    _create(broker, two, num_partitions=2, replication_factor=2)
    b = ("--bootstrap-server", broker.bootstrap)
    out = script("kafka-topics.sh", *b, "--describe", "--topic", two).stdout
    assert "ReplicationFactor: 2" in out
    assert out.count("NotMachineSafe") == 2, out
    assert "NotMachineSafe" not in script("kafka-topics.sh", *b, "--describe", "--topic", one).stdout
    # Followers on the other shard copy their leader and are in sync: no
    # partition is under-replicated.
    under = script("kafka-topics.sh", *b, "--describe", "--under-replicated-partitions").stdout
    assert f"Topic: {two}\tPartition:" not in under and f"Topic: {one}\tPartition:" not in under, under


def test_the_broker_checks_assignments_as_kafka_does(broker):
    # kafka-python sends assignments unchecked, so these reach the broker.
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    cases = {
        "Duplicate brokers": {0: [0, 0]},
        "same number of replicas": {0: [0, 1], 1: [1]},
        "does not exist": {0: [0, 5]},
        "consecutive 0-based": {1: [0, 1]},
    }
    try:
        for why, assignment in cases.items():
            t = KpNewTopic(h.unique("kpbad"), num_partitions=-1, replication_factor=-1, replica_assignments=assignment)
            [r] = a.create_topics([t], raise_errors=False)["topics"]
            assert r["error_code"] == INVALID_REPLICA_ASSIGNMENT and why in r["error_message"], r
    finally:
        a.close()
