"""A data directory written by an earlier sluice opens under this one with
every topic, record and committed offset (issue 23's upgrade test). The
fixture (tests/e2e/fixtures/README.md) predates replica assignments: its
metadata log holds one-replica records, which must replay as such."""

import tarfile
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

import helpers as h

FIXTURE = Path(__file__).parent / "fixtures" / "data-dir-before-replicas.tar.gz"


def _unpack(tmp_path):
    with tarfile.open(FIXTURE) as t:
        t.extractall(tmp_path / "old", filter="data")
    return tmp_path / "old" / "data"


def _check(broker):
    md = h.admin(broker).list_topics(timeout=10)
    orders = md.topics["upgrade-orders"].partitions
    assert len(orders) == 3
    assert all(p.replicas == [p.leader] and p.isrs == [p.leader] for p in orders.values())
    got = h.consume_all(broker, "upgrade-orders", 3, expect=300)
    assert sorted(v.decode() for _k, v, *_ in got) == sorted(f"order-{i}" for i in range(300))
    assert all(v.decode() == "order-" + k.decode()[1:] for k, v, *_ in got), "keys and values paired"
    latest = {}
    for k, v, _p, _o, _ts in h.consume_all(broker, "upgrade-compacted", 1):
        latest[k] = v
    assert latest == {f"key{i}".encode(): f"v{15 + i}".encode() for i in range(5)}
    c = h.consumer(broker, **{"group.id": "upgrade-group"})
    try:
        tps = [TopicPartition("upgrade-orders", p) for p in range(3)]
        assert [tp.offset for tp in c.committed(tps, timeout=30)] == [17, 23, 5]
    finally:
        c.close()


def test_a_data_dir_from_before_replicas_opens_whole(broker_factory, tmp_path):
    broker = broker_factory(data_dir=_unpack(tmp_path))
    _check(broker)
    # It takes new topics with replicas, and keeps all of it across a restart.
    topic = h.unique("after-upgrade")
    a = h.admin(broker)
    a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=2)])[topic].result(timeout=30)
    h.produce_records(broker, "upgrade-orders", [(b"k-new", b"order-new")])
    broker.stop()
    broker.restart()
    md = h.admin(broker).list_topics(timeout=10)
    assert all(len(p.replicas) == 2 for p in md.topics[topic].partitions.values())
    got = h.consume_all(broker, "upgrade-orders", 3, expect=301)
    assert len(got) == 301
