"""Links cut inside a cluster (issue 23; issue 24's fault tests build on
this): three brokers, each in a network namespace of its own with its own
address (netns.py), the test's clients in a fourth. A broker cut off from
the others misses its heartbeats and is fenced; when its link heals it is
unfenced with every record. A quorum leader cut off is replaced by the two
that still reach each other, which go on committing; healed, it follows
the new leader and catches up."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

import helpers as h
from cluster import Cluster
from netns import Net, available

pytestmark = pytest.mark.skipif(not available(), reason="needs root and iproute2 (ip netns)")

SESSION_MS = 3000


def _live_ports(broker):
    return sorted(n.port for n in h.admin(broker).list_topics(timeout=15).brokers.values())


def _fail(why):
    raise AssertionError(why)


def _create(broker, topic, partitions=1):
    """Creates `topic` through `broker`; a try that timed out on the client
    may have committed, so an existing topic counts as created."""
    a = h.admin(broker)
    for fut in a.create_topics([NewTopic(topic, partitions, 1)], request_timeout=10).values():
        try:
            fut.result(15)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return True


def test_a_cut_off_broker_is_fenced_and_a_cut_off_quorum_leader_is_replaced(broker_factory):
    with Net(["n1", "n2", "n3", "client"]) as net:
        net.enter("client")
        c = Cluster(broker_factory, net=net, overrides={
            "broker.session.timeout.ms": str(SESSION_MS), "broker.heartbeat.interval.ms": "300"}).start()
        leader = c.leader_id()
        victim = next(i for i in (1, 2, 3) if i != leader)
        watcher, cut_off = c.brokers[leader], c.brokers[victim]
        topic = h.unique("cut")
        _create(watcher, topic, 6)
        p = h.producer(watcher)
        for i in range(6):
            p.produce(topic, value=f"v{i}".encode(), partition=i)
        assert p.flush(30) == 0

        # A broker cut off is fenced within its session (plus slack for
        # this shared machine): its partitions have no live leader.
        net.cut(f"n{victim}")
        started = time.monotonic()
        h.eventually(lambda: cut_off.port not in _live_ports(watcher) or _fail(_live_ports(watcher)), timeout=20)
        assert time.monotonic() - started < SESSION_MS / 1000 + 5
        t = h.admin(watcher).list_topics(topic, timeout=15).topics[topic]
        assert any(part.error is not None for part in t.partitions.values()), t.partitions
        # Healed, it heartbeats again: unfenced, with every record.
        net.heal(f"n{victim}")
        h.eventually(lambda: cut_off.port in _live_ports(watcher) or _fail(_live_ports(watcher)), timeout=20)
        got = h.consume_all(watcher, topic, 6)
        assert sorted(m[1] for m in got) == [f"v{i}".encode() for i in range(6)]

        # The quorum leader cut off (read again: the healed voter may have
        # deposed the one before): the other two elect one of them and
        # commit; the old leader, healed, catches up.
        leader = c.leader_id()
        watcher = c.brokers[leader]
        survivor = c.brokers[next(i for i in (1, 2, 3) if i != leader)]
        net.cut(f"n{leader}")
        after = h.unique("after-cut")
        h.eventually(lambda: _create(survivor, after), timeout=30)
        q = c.quorum(survivor)
        assert q["leader_id"] in (1, 2, 3) and q["leader_id"] != leader, q
        net.heal(f"n{leader}")
        h.eventually(lambda: after in h.admin(watcher).list_topics(after, timeout=15).topics
                     and h.admin(watcher).list_topics(after, timeout=15).topics[after].error is None, timeout=30)
        for b in c.brokers.values():
            b.stop()
