"""Fault rounds for replicated partitions (issue 24): three brokers,
replication factor 3, min.insync.replicas=2, confluent-kafka producing with
acks=all and recording every acknowledged (partition, offset, value); after
the fault, everything is read back and the checker (checker.py) reports
lost, duplicated, moved, reordered, gapped and phantom records. Each
scenario runs seeded rounds: SLUICE_FAULT_ROUNDS of them (2 in CI)."""

import os
import random
import threading
import time

import pytest

import checker
import helpers as h
from cluster import Cluster
from test_replication import _all_in_sync, _led_elsewhere, _node_of, _partitions, _rf3_topic

ROUNDS = int(os.environ.get("SLUICE_FAULT_ROUNDS", "2"))
SESSION_MS = 3000
PARTITIONS = 6


def _cluster(broker_factory):
    return Cluster(broker_factory, overrides={
        "replica.lag.time.max.ms": "2000",
        "broker.session.timeout.ms": str(SESSION_MS),
        "broker.heartbeat.interval.ms": "300",
    }).start()


def _read_all(b, topic):
    """Every record of every partition, in each partition's order:
    [(partition, offset, value)]."""
    got = h.consume_all(b, topic, PARTITIONS, timeout=90)
    return [(p, o, v) for _k, v, p, o, _t in got]


def _leader_of_most(c, topic):
    b1 = c.brokers[1]
    leaders = [leader for leader, _r, _i in _partitions(b1, topic).values()]
    node = max(set(leaders), key=lambda n: (leaders.count(n), -n))
    return next(b for b in c.brokers.values() if _node_of(b1, b) == node), node


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_kill9_of_the_leader_of_most_partitions_loses_nothing_acknowledged(broker_factory, seed):
    rng = random.Random(seed)
    c = _cluster(broker_factory)
    topic = _rf3_topic(c, f"kill{seed}", PARTITIONS, min_insync_replicas=2)
    victim, node = _leader_of_most(c, topic)
    survivor = next(b for b in c.brokers.values() if b is not victim)
    rec = h.AckRecorder(survivor, topic, f"s{seed}", rate=rng.choice([500, 1500, 3000]))
    rec.start()
    time.sleep(rng.uniform(1.0, 3.0))
    victim.kill9()
    killed = time.monotonic()
    # New leaders within the session plus a few seconds.
    h.eventually(lambda: _led_elsewhere(survivor, topic, node), timeout=SESSION_MS / 1000 + 10)
    took = time.monotonic() - killed
    # Production resumes: acknowledgements keep coming after the move.
    before = len(rec.acked)
    h.eventually(lambda: acked_more_than(rec, before + 100), timeout=30)
    time.sleep(rng.uniform(0.5, 2.0))
    rec.finish()
    victim.start()
    acked = [(p, o, v) for (p, o), v in rec.acked.items()]
    sent = [f"s{seed}-{i}".encode() for i in range(rec.sent)]
    report = checker.check(acked, _read_all(survivor, topic), sent=sent)
    assert report.clean, f"{report.summary()} (new leaders after {took:.1f} s)"
    assert not rec.double_acks, rec.double_acks[:5]


def acked_more_than(rec, n):
    """The recorder has more than `n` acknowledgements."""
    assert len(rec.acked) > n, (len(rec.acked), n, rec.error_codes)


def _coordinator_node(b, group):
    a = h.admin(b)
    desc = a.describe_consumer_groups([group])[group].result(15)
    return desc.coordinator.id


def test_a_group_moves_on_with_its_committed_offsets_when_its_coordinators_broker_dies(broker_factory):
    c = _cluster(broker_factory)
    b1 = c.brokers[1]
    topic = _rf3_topic(c, "grp", 3, min_insync_replicas=2)
    acked = h.produce_records(b1, topic, [(None, f"g{i}".encode(), i % 3) for i in range(300)], acks="all")
    group = h.unique("group")
    conf = {"group.id": group, "enable.auto.offset.store": True, "enable.partition.eof": False}
    first = h.consumer(b1, **conf)
    first.subscribe([topic])
    seen = []
    while len(seen) < 150:
        for m in first.consume(50, timeout=1.0):
            assert not m.error(), m.error()
            seen.append((m.partition(), m.offset(), m.value()))
    first.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in first.committed(
        [h.TopicPartition(topic, p) for p in range(3)], timeout=15)}
    first.close()
    node = _coordinator_node(b1, group)
    victim = next(b for b in c.brokers.values() if _node_of(b1, b) == node)
    survivor = next(b for b in c.brokers.values() if b is not victim)
    victim.kill9()
    h.eventually(lambda: _led_elsewhere(survivor, topic, node), timeout=SESSION_MS / 1000 + 10)
    # Another member of the group starts where the first committed, on the
    # new coordinator.
    second = h.consumer(survivor, **conf)
    second.subscribe([topic])
    rest = []
    deadline = time.monotonic() + 60
    while len(rest) < 300 - sum(max(o, 0) for o in committed.values()) and time.monotonic() < deadline:
        for m in second.consume(100, timeout=1.0):
            assert not m.error(), m.error()
            rest.append((m.partition(), m.offset(), m.value()))
    second.close()
    assert _coordinator_node(survivor, group) != node
    starts = {p: min(o for q, o, _v in rest if q == p) for p in range(3) if any(q == p for q, _o, _v in rest)}
    # No commit for a partition (-1001): from its start (earliest).
    assert starts == {p: max(o, 0) for p, o in committed.items() if o < 100}, (starts, committed)
    report = checker.check([(p, o, v) for _k, v, p, o in acked], seen + rest)
    assert not report.lost and not report.phantom, report.summary()


@pytest.mark.parametrize("seed", range(ROUNDS))
def test_kill9_of_every_broker_at_once_loses_nothing_acknowledged(broker_factory, seed):
    """acks=all means fdatasynced on every replica in the ISR: with every
    machine gone at once, what was acknowledged is on disk somewhere in
    sync, and comes back with the restart."""
    rng = random.Random(seed)
    c = _cluster(broker_factory)
    b1 = c.brokers[1]
    topic = _rf3_topic(c, f"all{seed}", PARTITIONS, min_insync_replicas=2)
    rec = h.AckRecorder(b1, topic, f"a{seed}", rate=rng.choice([1000, 3000]))
    rec.start()
    time.sleep(rng.uniform(1.0, 3.0))
    for b in c.brokers.values():
        b.kill9()
    rec.finish()
    assert len(rec.acked) > 100, (len(rec.acked), rec.error_codes)
    c.start()
    h.eventually(lambda: _led_elsewhere(b1, topic, None), timeout=30)
    acked = [(p, o, v) for (p, o), v in rec.acked.items()]
    sent = [f"a{seed}-{i}".encode() for i in range(rec.sent)]
    report = checker.check(acked, _read_all(b1, topic), sent=sent)
    assert report.clean, report.summary()


def test_a_rolling_restart_under_load_loses_nothing_and_production_goes_on(broker_factory):
    c = _cluster(broker_factory)
    b1 = c.brokers[1]
    topic = _rf3_topic(c, "roll", PARTITIONS, min_insync_replicas=2)
    rec = h.AckRecorder(b1, topic, "r", rate=1000, **{"retries": 10, "enable.idempotence": True})
    rec.start()
    stalls = _StallWatch(rec)
    stalls.start()
    for b in c.brokers.values():
        time.sleep(1.0)
        b.stop()  # SIGTERM: a controlled shutdown, fenced first
        b.start()
        # Back, it catches up and rejoins every ISR before the next goes.
        h.eventually(lambda: _all_in_sync(b1, topic), timeout=30)
    time.sleep(1.0)
    stalls.stop = True
    rec.finish()
    acked = [(p, o, v) for (p, o), v in rec.acked.items()]
    sent = [f"r-{i}".encode() for i in range(rec.sent)]
    report = checker.check(acked, _read_all(b1, topic), sent=sent)
    assert report.clean, report.summary()
    assert stalls.longest < 10, f"no acknowledgement for {stalls.longest:.1f} s"


class _StallWatch(threading.Thread):
    """The longest time the recorder went without a new acknowledgement."""

    def __init__(self, rec):
        super().__init__(daemon=True)
        self.rec, self.stop, self.longest = rec, False, 0.0

    def run(self):
        last_n, last_t = len(self.rec.acked), time.monotonic()
        while not self.stop:
            time.sleep(0.1)
            n, now = len(self.rec.acked), time.monotonic()
            if n != last_n:
                last_n, last_t = n, now
            self.longest = max(self.longest, now - last_t)
