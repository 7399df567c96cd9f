"""Replicated partitions (issue 24): three brokers, replication factor 3.
Followers on other brokers copy their leader's log over Kafka's Fetch (as
replicas, with their node id); the leader keeps each follower's progress,
holds the high watermark at what every in-sync replica has on disk, drops a
follower that stops catching up from the ISR through the metadata quorum,
and takes it back once it caught up. acks=all waits for the ISR, and
min.insync.replicas is checked against it."""

import json
import time

from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient

import checker
import helpers as h
from cluster import Cluster
from test_tools import script

# A follower out of touch this long leaves the ISR (Kafka's default is 30 s).
LAG_MS = 2000


def _cluster(broker_factory, **overrides):
    return Cluster(broker_factory, overrides={"replica.lag.time.max.ms": str(LAG_MS), **overrides}).start()


def _partitions(b, topic):
    """partition -> (leader, replicas, isr) as `b`'s Metadata says."""
    t = h.list_topics(b).topics[topic]
    return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def _sizes(b, topic):
    """(node, partition) -> bytes, from every node's DescribeLogDirs."""
    a = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        answers = a.describe_log_dirs(topic_partitions=[topic])
    finally:
        a.close()
    return {(ans["broker"], p["partition_index"]): p["partition_size"]
            for ans in answers for d in ans["log_dirs"] for t in d["topics"] for p in t["partitions"]}


def _copied(b, topic, written):
    """Every replica of every partition holds as many bytes as the others,
    and those of the partitions in `written` hold some."""
    parts = _partitions(b, topic)
    sizes = _sizes(b, topic)
    for p, (_leader, replicas, _isr) in parts.items():
        got = [sizes.get((n, p)) for n in replicas]
        assert len(replicas) == 3 and got.count(got[0]) == 3 and got[0] is not None, (p, replicas, got)
        assert got[0] > 0 or p not in written, (p, got)
    return sizes


def _rf3_topic(c, prefix, partitions, **config):
    b1 = c.brokers[1]
    topic = h.unique(prefix)
    conf = {k.replace("_", "."): str(v) for k, v in config.items()}
    a = h.admin(b1)
    for f in a.create_topics([NewTopic(topic, partitions, 3, config=conf)], request_timeout=30).values():
        f.result(30)
    h.eventually(lambda: _count(b1, topic, partitions))
    return topic


def _dropped(b, topic, gone):
    """Every partition that `gone` does not lead has it out of its ISR (one
    it leads has no leader to drop it until elections come); returns the
    partitions led elsewhere."""
    parts = _partitions(b, topic)
    for p, (leader, _r, isr) in parts.items():
        assert leader == gone or gone not in isr, (p, leader, isr)
    return [p for p, (leader, _r, _i) in parts.items() if leader != gone]


def _all_in_sync(b, topic):
    """Every partition has a leader and all its replicas in sync."""
    for p, (leader, replicas, isr) in _partitions(b, topic).items():
        assert leader >= 0 and isr == replicas, (p, leader, replicas, isr)


def _count(b, topic, partitions):
    assert len(_partitions(b, topic)) == partitions


def _node_of(b, broker):
    """The node id of `broker`'s only shard, from `b`'s Metadata."""
    md = h.list_topics(b)
    return next(n.id for n in md.brokers.values() if n.port == broker.port)


def test_followers_copy_every_record_and_every_replica_is_in_sync(broker_factory):
    c = _cluster(broker_factory)
    b1, b2, _b3 = c.brokers.values()
    topic = _rf3_topic(c, "copy", 6, min_insync_replicas=2)
    records = [(f"k{i}".encode(), bytes([65 + i % 26]) * 1000, i % 6) for i in range(600)]
    acked = h.produce_records(b1, topic, records, acks="all")
    # Every replica ends up with the leader's bytes, and all are in sync.
    h.eventually(lambda: _copied(b1, topic, range(6)), timeout=30)
    _all_in_sync(b2, topic)
    got = h.consume_all(b2, topic, 6, expect=600)
    assert sorted((p, o, v) for _k, v, p, o, _t in got) == sorted((p, o, v) for _k, v, p, o in acked)


def test_a_follower_that_stops_leaves_the_isr_and_rejoins_once_caught_up(broker_factory):
    c = _cluster(broker_factory)
    b1, _b2, b3 = c.brokers.values()
    topic = _rf3_topic(c, "rejoin", 6, min_insync_replicas=2)
    gone = _node_of(b1, b3)
    b3.kill9()
    # Within the lag (and the quorum's commit), every partition's ISR drops
    # it; those it led stay without a leader until it is back (elections
    # come with the next slice).
    led_elsewhere = h.eventually(lambda: _dropped(b1, topic, gone), timeout=LAG_MS / 1000 + 15)
    assert len(led_elsewhere) == 4, _partitions(b1, topic)
    records = [(None, f"v{i}".encode() * 100, led_elsewhere[i % 4]) for i in range(400)]
    h.produce_records(b1, topic, records, acks="all")
    b3.start()
    # Back, it fetches what it missed and the leaders take it back.
    h.eventually(lambda: _all_in_sync(b1, topic), timeout=30)
    h.eventually(lambda: _copied(b1, topic, led_elsewhere), timeout=30)


def test_acks_all_needs_min_insync_replicas_in_the_isr(broker_factory):
    c = _cluster(broker_factory)
    b1, _b2, b3 = c.brokers.values()
    topic = _rf3_topic(c, "minisr", 3, min_insync_replicas=3)
    assert h.produce_records(b1, topic, [(None, b"before", p) for p in range(3)], acks="all")
    gone = _node_of(b1, b3)
    b3.kill9()
    p = h.eventually(lambda: _dropped(b1, topic, gone), timeout=LAG_MS / 1000 + 15)[0]
    errors = []
    prod = h.producer(b1, acks="all", retries=0)
    prod.produce(topic, value=b"refused", partition=p, on_delivery=lambda e, m: errors.append(e))
    prod.flush(30)
    assert [e and e.code() for e in errors] == [KafkaError.NOT_ENOUGH_REPLICAS], errors
    # acks=1 is not held to it.
    assert h.produce_records(b1, topic, [(None, b"one", p)], acks="1")


def _elect(b, election_type, topic_partitions):
    """ElectLeaders v1 through kafka-python: {(topic, partition): error code}."""
    from kafka.protocol.admin import ElectLeadersRequest as R
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        parts = None if topic_partitions is None else [
            R.TopicPartitions(topic=t, partitions=ps) for t, ps in topic_partitions.items()]
        req = R(election_type=election_type, topic_partitions=parts, timeout_ms=30000, version=1)
        resp = ka._manager.run(ka._manager.send, req)
    finally:
        ka.close()
    return {(r.topic, p.partition_id): p.error_code for r in resp.replica_election_results for p in r.partition_result}


def _bounce(b1, b, topic):
    """Stops broker `b` (a controlled shutdown fences it at once: its
    partitions get leaders in sync elsewhere, and stay there when it is
    back) and starts it again."""
    gone = _node_of(b1, b)
    b.stop()
    h.eventually(lambda: _led_elsewhere(b1, topic, gone))
    b.start()


def _preferred(b, topic):
    t = h.list_topics(b).topics[topic]
    return {p.id: (p.leader, p.replicas[0]) for p in t.partitions.values()}


def test_elect_leaders_gives_partitions_back_to_their_preferred_replicas(broker_factory):
    c = _cluster(broker_factory)
    b1, _b2, b3 = c.brokers.values()
    topic = _rf3_topic(c, "elect", 6, min_insync_replicas=2)
    _bounce(b1, b3, topic)
    h.eventually(lambda: _all_in_sync(b1, topic), timeout=30)
    moved = sorted(p for p, (leader, preferred) in _preferred(b1, topic).items() if leader != preferred)
    assert len(moved) == 2, _preferred(b1, topic)
    # Unclean election where every partition has a live leader: not needed.
    assert set(_elect(b1, 1, {topic: [moved[0]]}).values()) == {ELECTION_NOT_NEEDED}
    # Preferred election of everything: the moved ones (and only they) go
    # back to their preferred replica at a new epoch.
    assert _elect(b1, 0, None) == {(topic, p): 0 for p in moved}
    h.eventually(lambda: _led_by_preferred(b1, topic))
    # Kafka's tool, on one partition of a topic led by its preferred
    # replica already.
    out = script("kafka-leader-election.sh", "--bootstrap-server", b1.bootstrap, "--election-type", "PREFERRED",
                 "--topic", topic, "--partition", str(moved[0])).stdout
    assert f"partition {topic}-{moved[0]} (error code {ELECTION_NOT_NEEDED})" in out, out
    assert _elect(b1, 0, {topic: [0]}) == {(topic, 0): ELECTION_NOT_NEEDED}
    assert _elect(b1, 0, {"nope": [0]}) == {("nope", 0): UNKNOWN_TOPIC_OR_PARTITION}
    acked = h.produce_records(b1, topic, [(None, b"after", p) for p in range(6)], acks="all")
    assert len(acked) == 6


ELECTION_NOT_NEEDED = 84
UNKNOWN_TOPIC_OR_PARTITION = 3


def test_the_quorum_leader_gives_partitions_back_to_their_preferred_replicas(broker_factory):
    """auto.leader.rebalance.enable (on by default, checked here every
    second): a broker back in sync gets its preferred partitions back
    without anyone asking."""
    c = _cluster(broker_factory, **{"leader.imbalance.check.interval.seconds": "1"})
    b1, _b2, b3 = c.brokers.values()
    topic = _rf3_topic(c, "rebal", 6, min_insync_replicas=2)
    _bounce(b1, b3, topic)
    h.eventually(lambda: _led_by_preferred(b1, topic), timeout=30)


def _led_elsewhere(b, topic, node):
    """Every partition has a live leader other than `node`; returns them."""
    parts = _partitions(b, topic)
    for p, (leader, _r, isr) in parts.items():
        assert leader not in (-1, node), (p, leader, isr)
    return parts


def _led_by_preferred(b, topic):
    for p, (leader, preferred) in _preferred(b, topic).items():
        assert leader == preferred, (p, leader, preferred)


def _reassign(b, moves):
    """AlterPartitionReassignments through kafka-python: moves is
    {(topic, partition): replicas or None}; returns {(topic, p): code}."""
    from kafka.protocol.admin import AlterPartitionReassignmentsRequest as R
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        topics = {}
        for (t, p), replicas in moves.items():
            topics.setdefault(t, []).append(R.ReassignableTopic.ReassignablePartition(
                partition_index=p, replicas=replicas))
        req = R(timeout_ms=30000, topics=[R.ReassignableTopic(name=t, partitions=ps) for t, ps in topics.items()],
                version=0)
        resp = ka._manager.run(ka._manager.send, req)
    finally:
        ka.close()
    return {(t.name, p.partition_index): p.error_code for t in resp.responses for p in t.partitions}


def _ongoing_is(b, want):
    got = _ongoing(b)
    assert got == want, got


def _ongoing(b):
    """ListPartitionReassignments: {(topic, p): (replicas, adding, removing)}."""
    from kafka.protocol.admin import ListPartitionReassignmentsRequest as R
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        resp = ka._manager.run(ka._manager.send, R(timeout_ms=30000, topics=None, version=0))
    finally:
        ka.close()
    return {(t.name, p.partition_index): (p.replicas, p.adding_replicas, p.removing_replicas)
            for t in resp.topics for p in t.partitions}


def test_a_reassignment_moves_a_replica_to_another_broker_under_load(broker_factory):
    c = _cluster(broker_factory)
    b1 = c.brokers[1]
    topic = _rf3_topic(c, "move", 3, min_insync_replicas=2)
    b4 = c.add_broker(broker_factory, 4)
    b4.overrides["replica.lag.time.max.ms"] = str(LAG_MS)
    b4.start()
    node4 = h.eventually(lambda: _node_of(b1, b4))
    rec = h.AckRecorder(b1, topic, "m", rate=500, **{"enable.idempotence": True, "retries": 1000})
    rec.start()
    time.sleep(1)
    # Partition 0 moves off its leader's broker onto the new one: the new
    # replica catches up, joins the ISR, and leadership moves with it.
    leader, replicas, _isr = _partitions(b1, topic)[0]
    target = [node4] + [n for n in replicas if n != leader]
    plan = b1.workdir / "move.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": target}]}))
    common = ["--bootstrap-server", b1.bootstrap, "--reassignment-json-file", str(plan)]
    out = script("kafka-reassign-partitions.sh", *common, "--execute").stdout
    assert f"Reassignment of partition {topic}-0 started." in out, out
    h.eventually(lambda: _moved(b1, topic, target), timeout=30)
    h.eventually(lambda: _ongoing_is(b1, {}))
    out = script("kafka-reassign-partitions.sh", *common, "--verify").stdout
    assert f"Reassignment of partition {topic}-0 is completed." in out, out
    assert _reassign(b1, {("nope", 0): target}) == {("nope", 0): UNKNOWN_TOPIC_OR_PARTITION}
    assert _reassign(b1, {(topic, 0): None}) == {(topic, 0): NO_REASSIGNMENT_IN_PROGRESS}
    assert _reassign(b1, {(topic, 1): [node4, node4]}) == {(topic, 1): INVALID_REPLICA_ASSIGNMENT}
    time.sleep(1)
    rec.finish()
    # The old leader's broker dropped its copy; the new one holds the same
    # bytes as the others.
    old = next(b for b in c.brokers.values() if b is not b4 and _node_of(b1, b) == leader)
    h.eventually(lambda: _gone(old, topic))
    h.eventually(lambda: _copied_to(b1, topic, 0, target))
    acked = [(p, o, v) for (p, o), v in rec.acked.items()]
    got = h.consume_all(b1, topic, 3, timeout=60)
    report = checker.check(acked, [(p, o, v) for _k, v, p, o, _t in got],
                           sent=[f"m-{i}".encode() for i in range(rec.sent)])
    assert report.clean, report.summary()
    # A move to a broker that is down stays under way (listed, with what it
    # adds and removes) until cancelled, which restores the replicas.
    b4.stop()
    before = list(h.list_topics(b1).topics[topic].partitions[1].replicas)
    stuck = [node4] + before[1:]
    assert _reassign(b1, {(topic, 1): stuck}) == {(topic, 1): 0}
    # (Any broker may answer the listing, from metadata that can lag the
    # commit by a moment.)
    h.eventually(lambda: _ongoing_is(b1, {(topic, 1): (stuck + [before[0]], [node4], [before[0]])}))
    assert _reassign(b1, {(topic, 1): None}) == {(topic, 1): 0}
    h.eventually(lambda: _ongoing_is(b1, {}))
    h.eventually(lambda: _replicas_are(b1, topic, 1, before))


NO_REASSIGNMENT_IN_PROGRESS = 85
INVALID_REPLICA_ASSIGNMENT = 39


def _moved(b, topic, target):
    leader, replicas, isr = _partitions(b, topic)[0]
    assert replicas == sorted(target) and isr == sorted(target) and leader in target, (leader, replicas, isr)


def _replicas_are(b, topic, p, replicas):
    assert list(h.list_topics(b).topics[topic].partitions[p].replicas) == replicas


def _gone(broker, topic):
    assert not (broker.data_dir / f"{topic}-0").exists()


def _copied_to(b, topic, p, target):
    sizes = _sizes(b, topic)
    got = [sizes.get((n, p)) for n in target]
    assert got[0] and got.count(got[0]) == len(target), got
