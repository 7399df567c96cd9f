"""Replicated partitions (issue 24): three brokers, replication factor 3.
Followers on other brokers copy their leader's log over Kafka's Fetch (as
replicas, with their node id); the leader keeps each follower's progress,
holds the high watermark at what every in-sync replica has on disk, drops a
follower that stops catching up from the ISR through the metadata quorum,
and takes it back once it caught up. acks=all waits for the ISR, and
min.insync.replicas is checked against it."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient

import helpers as h
from cluster import Cluster

# A follower out of touch this long leaves the ISR (Kafka's default is 30 s).
LAG_MS = 2000


def _cluster(broker_factory):
    return Cluster(broker_factory, overrides={"replica.lag.time.max.ms": str(LAG_MS)}).start()


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
    for p, (_leader, replicas, isr) in _partitions(b, topic).items():
        assert isr == replicas, (p, replicas, isr)


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
