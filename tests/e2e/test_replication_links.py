"""Links cut around replicated partitions (issue 24): three brokers, each
in a network namespace of its own (netns.py), the test's clients in a
fourth, replication factor 3, min.insync.replicas=2, acks=all producers
recording every acknowledgement, and the checker (checker.py) over what is
read back. Seeded rounds: SLUICE_FAULT_ROUNDS (2 in CI)."""

import random
import time

import pytest

import checker
import helpers as h
from cluster import Cluster
from netns import Net, available
from test_replication import _all_in_sync, _dropped, _led_elsewhere, _node_of, _partitions, _rf3_topic
from test_replication_faults import PARTITIONS, ROUNDS, SESSION_MS, _read_all, acked_more_than

pytestmark = pytest.mark.skipif(not available(), reason="needs root and iproute2 (ip netns)")

LAG_MS = 2000
# A producer whose requests stall on a leader cut away re-sends them to
# the new one; idempotence (its state moves with the log) keeps the retry
# from being stored twice. Without it librdkafka may store a record twice,
# as Kafka would.
IDEMPOTENT = {"enable.idempotence": True, "retries": 1000}


def _cluster(broker_factory, net):
    return Cluster(broker_factory, net=net, overrides={
        "replica.lag.time.max.ms": str(LAG_MS),
        "broker.session.timeout.ms": str(SESSION_MS),
        "broker.heartbeat.interval.ms": "300",
    }).start()


def _parted_setup(broker_factory, net, prefix, fewest):
    """A cluster in `net` with an RF 3 topic, and the broker to part from
    the others: the one leading fewest partitions, or most. Returns the
    topic, each broker's node, the victim, the other hosts and a broker
    that stays with the majority."""
    c = _cluster(broker_factory, net)
    b1 = c.brokers[1]
    topic = _rf3_topic(c, prefix, PARTITIONS, min_insync_replicas=2)
    leaders = [leader for leader, _r, _i in _partitions(b1, topic).values()]
    nodes = {i: _node_of(b1, b) for i, b in c.brokers.items()}
    if fewest:
        victim = min(nodes, key=lambda i: (leaders.count(nodes[i]), i))
    else:
        victim = max(nodes, key=lambda i: (leaders.count(nodes[i]), -i))
    others = [f"n{i}" for i in nodes if i != victim]
    return topic, nodes, victim, others, c.brokers[next(i for i in nodes if i != victim)]


def _check(rec, tag, b, topic):
    acked = [(p, o, v) for (p, o), v in rec.acked.items()]
    sent = [f"{tag}-{i}".encode() for i in range(rec.sent)]
    read = _read_all(b, topic)
    report = checker.check(acked, read, sent=sent)
    if not report.clean:
        ends = {p: max(o for q, o, _v in read if q == p) for p in range(PARTITIONS)}
        marks = h.eventually(lambda: _watermarks(b, topic))
        again = _watermarks(b, topic)
        raise AssertionError(f"{report.summary()}; read up to {ends}; watermarks {marks}, then {again}")


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_a_follower_cut_off_leaves_the_isr_and_rejoins_when_healed(broker_factory, seed):
    rng = random.Random(seed)
    with Net(["n1", "n2", "n3", "client"]) as net:
        net.enter("client")
        # The broker leading fewest partitions is cut off from the other
        # two (it stays reachable by the clients); the partitions it leads
        # are then led elsewhere.
        topic, nodes, victim, others, watcher = _parted_setup(broker_factory, net, f"fcut{seed}", fewest=True)
        rec = h.AckRecorder(watcher, topic, f"f{seed}", rate=rng.choice([500, 1500]), **IDEMPOTENT)
        rec.start()
        time.sleep(rng.uniform(0.5, 2.0))
        net.part(f"n{victim}", others)
        h.eventually(lambda: _dropped(watcher, topic, nodes[victim]), timeout=LAG_MS / 1000 + 15)
        h.eventually(lambda: _led_elsewhere(watcher, topic, nodes[victim]), timeout=SESSION_MS / 1000 + 15)
        # Production goes on without it.
        before = len(rec.acked)
        h.eventually(lambda: acked_more_than(rec, before + 100), timeout=30)
        net.unpart(f"n{victim}", others)
        h.eventually(lambda: _all_in_sync(watcher, topic), timeout=30)
        rec.finish()
        _check(rec, f"f{seed}", watcher, topic)


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_a_leader_cut_off_from_the_cluster_stops_acknowledging_and_loses_nothing(broker_factory, seed):
    """The leader of most partitions is parted from the other brokers and
    the quorum, while the clients still reach it: its acks=all writes can
    no longer reach the ISR, the others elect new leaders, and when it
    rejoins it cuts off what it took alone."""
    rng = random.Random(seed)
    with Net(["n1", "n2", "n3", "client"]) as net:
        net.enter("client")
        topic, nodes, victim, others, watcher = _parted_setup(broker_factory, net, f"lcut{seed}", fewest=False)
        rec = h.AckRecorder(watcher, topic, f"l{seed}", rate=rng.choice([500, 1500]), **IDEMPOTENT,
                            **{"message.timeout.ms": 20000, "request.timeout.ms": 10000})
        rec.start()
        time.sleep(rng.uniform(0.5, 2.0))
        net.part(f"n{victim}", others)
        h.eventually(lambda: _led_elsewhere(watcher, topic, nodes[victim]), timeout=SESSION_MS / 1000 + 15)
        before = len(rec.acked)
        h.eventually(lambda: acked_more_than(rec, before + 100), timeout=40)
        net.unpart(f"n{victim}", others)
        h.eventually(lambda: _all_in_sync(watcher, topic), timeout=40)
        rec.finish()
        _check(rec, f"l{seed}", watcher, topic)


def _watermarks(b, topic):
    c = h.consumer(b)
    try:
        return {p: c.get_watermark_offsets(h.TopicPartition(topic, p), timeout=10, cached=False)
                for p in range(PARTITIONS)}
    finally:
        c.close()


