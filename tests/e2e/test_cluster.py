"""Three sluice brokers on this machine as one cluster (issue 23): a metadata
quorum of three voters on openraft, over TCP between the brokers'
controller listeners. Every broker registers its shards, which get node ids
unique across the cluster; Metadata from any broker lists every broker's
nodes, and replicas of a partition go to different brokers."""

import re
import time

from confluent_kafka.admin import NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

import helpers as h
from cluster import Cluster, _free_port
from conftest import HOST
from test_tools import script, sluice


def _metadata(broker, topic):
    md = h.admin(broker).list_topics(topic, timeout=15)
    return md, md.topics[topic]


def _broker_id_of(broker, via, node):
    """DescribeConfigs of node `node`'s broker.id, sent to node `via` (of
    `broker`): (error code, message or value)."""
    from kafka.protocol.admin import DescribeConfigsRequest as R
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        req = R(resources=[R.DescribeConfigsResource(resource_type=4, resource_name=str(node),
                                                     configuration_keys=["broker.id"])],
                include_synonyms=False)
        (res,) = ka._manager.run(ka._manager.send, req, via).results
    finally:
        ka.close()
    if res.error_code:
        return res.error_code, res.error_message
    return 0, next(c.value for c in res.configs if c.name == "broker.id")


def _same_leader(q, leader):
    assert q["leader_id"] == leader, q
    return q


def test_a_topic_of_three_replicas_spans_three_brokers_and_serves_every_client(broker_factory):
    c = Cluster(broker_factory).start()
    b1, b2, b3 = c.brokers.values()
    topic = h.unique("rf3")
    a = h.admin(b1)
    for fut in a.create_topics([NewTopic(topic, 12, 3)], request_timeout=30).values():
        fut.result(30)
    # Every broker's Metadata: three nodes, one per broker, the same
    # placement; each partition's replicas on the three brokers, leaders
    # four per broker.
    node_port = {}
    for b in (b1, b2, b3):
        md, t = h.eventually(lambda b=b: _metadata(b, topic))
        assert {n.port for n in md.brokers.values()} == {b1.port, b2.port, b3.port}, md.brokers
        node_port = {n.id: n.port for n in md.brokers.values()}
        placement = {p.id: p.replicas for p in t.partitions.values()}
        assert len(placement) == 12
        for replicas in placement.values():
            assert sorted(node_port[n] for n in replicas) == sorted([b1.port, b2.port, b3.port]), placement
        leaders = [node_port[p.leader] for p in t.partitions.values()]
        assert sorted(leaders.count(b.port) for b in (b1, b2, b3)) == [4, 4, 4], leaders
    # confluent-kafka through one bootstrap address, kafka-python through
    # another: every partition is written and read back.
    p = h.producer(b2)
    acked = []
    for i in range(240):
        p.produce(topic, value=f"c{i}".encode(), partition=i % 12,
                  on_delivery=lambda e, m: acked.append((e, m.partition(), m.offset())))
    assert p.flush(30) == 0
    assert [e for e, *_ in acked if e] == [] and len(acked) == 240
    kp = KafkaProducer(bootstrap_servers=b3.bootstrap, acks="all")
    for i in range(120):
        kp.send(topic, value=f"k{i}".encode(), partition=i % 12)
    kp.flush(30)
    kp.close()
    consumer = KafkaConsumer(bootstrap_servers=b1.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    consumer.assign([TopicPartition(topic, i) for i in range(12)])
    got = [m for m in consumer]
    consumer.close()
    assert len(got) == 360 and {m.partition for m in got} == set(range(12))
    assert sorted(m.value for m in got) == sorted([f"c{i}".encode() for i in range(240)]
                                                   + [f"k{i}".encode() for i in range(120)])
    # DescribeCluster through kafka-python: the three nodes.
    ka = KafkaAdminClient(bootstrap_servers=b2.bootstrap)
    try:
        described = ka.describe_cluster()
    finally:
        ka.close()
    assert sorted(n["port"] for n in described["brokers"]) == sorted([b1.port, b2.port, b3.port])
    # DescribeConfigs of a node: its broker.id is its broker's node.id; a
    # broker answers for its own nodes only, another's is refused (Kafka
    # refuses any id but its own).
    port_broker = {b.port: i for i, b in c.brokers.items()}
    node_of = {port_broker[port]: n for n, port in node_port.items()}
    for i, b in c.brokers.items():
        assert _broker_id_of(b, node_of[i], node_of[i]) == (0, str(i))
    code, msg = _broker_id_of(b1, node_of[1], node_of[2])
    assert code == 42 and f"is a shard of broker 2: ask it (127.0.0.1:{b2.port})" in msg, (code, msg)
    # `sluice cluster`: each broker with its nodes, leaders and replicas.
    out = sluice("cluster", "--bootstrap-server", b3.bootstrap).stdout
    for i, b in c.brokers.items():
        assert f"Broker {i}: 127.0.0.1, alive, 1 shard(s), leads 4 partitions, holds 12 replicas" in out, out
        assert f"  Node {node_of[i]}: 127.0.0.1:{b.port}, alive, leads 4 partitions" in out, out
    assert re.search(r"voters 1 \(lag \d+\), 2 \(lag \d+\), 3 \(lag \d+\)", out), out
    # A replication factor no set of brokers can hold is refused.
    (fut,) = a.create_topics([NewTopic(h.unique("rf4"), 1, 4)], request_timeout=30).values()
    try:
        fut.result(30)
        raise AssertionError("four replicas on three nodes")
    except Exception as e:  # noqa: BLE001
        assert "INVALID_REPLICATION_FACTOR" in str(e), e


def test_the_quorum_fails_over_after_kill_9_and_the_killed_voter_catches_up(broker_factory):
    c = Cluster(broker_factory).start()
    # DescribeQuorum through kafka-python: three voters, one leader, the
    # same view from every broker.
    leader = c.leader_id()
    for b in c.brokers.values():
        q = h.eventually(lambda b=b: _same_leader(c.quorum(b), leader))
        assert q["leader_id"] == leader
        assert sorted(v["replica_id"] for v in q["current_voters"]) == [1, 2, 3]
    # Asked of a follower, it answers as the leader sees the quorum (every
    # voter's log end), as Kafka's brokers forward it to the controller.
    follower = c.brokers[next(i for i in c.brokers if i != leader)]

    def caught_up():
        q = c.quorum(follower)
        assert all(v["log_end_offset"] == q["high_watermark"] for v in q["current_voters"]), q["current_voters"]
        return q

    q = h.eventually(caught_up)
    epoch = q["leader_epoch"]

    c.brokers[leader].kill9()
    survivor = c.any_running()
    started = time.monotonic()
    topic = h.unique("after")
    a = h.admin(survivor)
    while True:
        (fut,) = a.create_topics([NewTopic(topic, 2, 2)], request_timeout=20).values()
        try:
            fut.result(30)
            break
        except Exception as e:  # noqa: BLE001
            assert time.monotonic() - started < 20, f"no CreateTopics after the leader died: {e}"
            time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    new_leader = c.leader_id(but=(leader,))
    assert new_leader != leader
    assert c.quorum(survivor)["leader_epoch"] > epoch

    # The killed voter restarts and catches up: its Metadata has the topic
    # created while it was down.
    killed = c.brokers[leader]
    killed.start()
    md, t = h.eventually(lambda: _metadata(killed, topic))
    assert len(t.partitions) == 2 and t.error is None
    q = c.quorum(c.brokers[new_leader])
    assert sorted(v["replica_id"] for v in q["current_voters"]) == [1, 2, 3]


def _live_ports(broker):
    md = h.admin(broker).list_topics(timeout=15)
    return sorted(n.port for n in md.brokers.values())


def test_a_killed_broker_is_fenced_within_its_session_and_unfenced_when_back(broker_factory):
    session_ms = 3000
    c = Cluster(broker_factory, overrides={
        "broker.session.timeout.ms": str(session_ms), "broker.heartbeat.interval.ms": "300"}).start()
    leader = c.leader_id()
    victim_id = next(i for i in c.brokers if i != leader)
    victim = c.brokers[victim_id]
    watcher = c.brokers[leader]
    topic = h.unique("fence")
    a = h.admin(watcher)
    for fut in a.create_topics([NewTopic(topic, 6, 1)], request_timeout=30).values():
        fut.result(30)
    md, t = h.eventually(lambda: _metadata(victim, topic))
    victim_nodes = {n.id for n in md.brokers.values() if n.port == victim.port}
    victims = sorted(p.id for p in t.partitions.values() if p.leader in victim_nodes)
    assert len(victims) == 2, t.partitions
    # One record in each partition, to read back after the broker returns.
    p = h.producer(watcher)
    for i in range(6):
        p.produce(topic, value=f"v{i}".encode(), partition=i)
    assert p.flush(30) == 0

    victim.kill9()
    killed = time.monotonic()

    def fenced():
        assert victim.port not in _live_ports(watcher)
        _, t = _metadata(watcher, topic)
        leaderless = sorted(p.id for p in t.partitions.values() if p.error is not None)
        assert leaderless == victims, t.partitions
        return time.monotonic() - killed

    took = h.eventually(fenced, timeout=20)
    assert took < session_ms / 1000 + 4, took
    # `sluice cluster` names the partitions without a live leader.
    out = sluice("cluster", "--bootstrap-server", watcher.bootstrap).stdout
    for part in victims:
        assert f"{topic}-{part}" in out, out
    # ... and the victim's node as fenced (DescribeCluster v2 on request).
    for n in victim_nodes:
        assert f"Node {n}: 127.0.0.1:{victim.port}, fenced" in out, out
    # Nothing new goes to a fenced broker.
    other = h.unique("placed")
    for fut in a.create_topics([NewTopic(other, 4, 2)], request_timeout=30).values():
        fut.result(30)
    _, placed = h.eventually(lambda: _metadata(watcher, other))
    assert all(not set(p.replicas) & victim_nodes for p in placed.partitions.values()), placed.partitions

    victim.start()
    h.eventually(lambda: _assert_back(watcher, victim, topic), timeout=20)
    # Its partitions' records are all there.
    got = h.consume_all(watcher, topic, 6)
    assert sorted(m[1] for m in got) == [f"v{i}".encode() for i in range(6)]
    # Back, it starts a new session: the leader (the watcher) does not fence
    # it again from the heartbeat it last had before the kill.
    time.sleep(1.5)
    fencings = watcher.log_path.read_text(errors="replace").count(f"session.timeout.ms broker={victim_id} ")
    assert fencings == 1, f"fenced {fencings} times"


def _assert_back(watcher, broker, topic):
    assert broker.port in _live_ports(watcher)
    _, t = _metadata(watcher, topic)
    assert all(p.error is None for p in t.partitions.values()), t.partitions


def test_a_controlled_shutdown_fences_the_broker_before_it_stops(broker_factory):
    # A long session: only the broker's own word can fence it this fast.
    # Frequent heartbeats: one sent while it shuts down would unfence it.
    c = Cluster(broker_factory, overrides={
        "broker.session.timeout.ms": "60000", "broker.heartbeat.interval.ms": "20"}).start()
    b1, b2, _ = c.brokers.values()
    assert b2.port in _live_ports(b1)
    b2.stop()
    assert b2.port not in _live_ports(b1), "SIGTERM fences the broker before it exits"
    time.sleep(1)
    assert b2.port not in _live_ports(b1), "and nothing it sent while stopping unfenced it"
    b2.start()
    h.eventually(lambda: b2.port in _live_ports(b1) or _fail("not back"), timeout=20)


def _fail(why):
    raise AssertionError(why)


def test_a_fourth_broker_that_does_not_vote_joins_and_takes_new_partitions(broker_factory):
    c = Cluster(broker_factory).start()
    b1 = c.brokers[1]
    a = h.admin(b1)
    before = h.unique("before")
    for fut in a.create_topics([NewTopic(before, 3, 1)], request_timeout=30).values():
        fut.result(30)
    b4 = c.add_broker(broker_factory, 4)
    b4.start()
    for b in c.brokers.values():
        h.eventually(lambda b=b: b4.port in _live_ports(b) or _fail(f"{b} does not list broker 4"))
    # It follows the log: its Metadata has the topic made before it joined.
    h.eventually(lambda: _metadata(b4, before))
    # DescribeQuorum: three voters, broker 4 an observer.
    q = c.quorum(c.brokers[c.leader_id()])
    assert sorted(v["replica_id"] for v in q["current_voters"]) == [1, 2, 3]
    assert [o["replica_id"] for o in q["observers"]] == [4], q
    # It leads nothing yet: a new partition goes to it, and serves clients
    # through any bootstrap address.
    after = h.unique("after")
    a4 = h.admin(b4)
    for fut in a4.create_topics([NewTopic(after, 1, 1)], request_timeout=30).values():
        fut.result(30)
    md, t = h.eventually(lambda: _metadata(b1, after))
    assert md.brokers[t.partitions[0].leader].port == b4.port
    p = h.producer(b1)
    for i in range(10):
        p.produce(after, value=f"x{i}".encode())
    assert p.flush(30) == 0
    got = h.consume_all(b1, after, 1)
    assert [m[1] for m in got] == [f"x{i}".encode() for i in range(10)]
    # A restart keeps its node id and its partition.
    node_id = t.partitions[0].leader
    b4.restart()
    md, t = h.eventually(lambda: _metadata(b1, after))
    assert t.partitions[0].leader == node_id and t.partitions[0].error is None
    # Decommissioned: a running broker is refused, a stopped one (fenced at
    # once by its controlled shutdown) is unregistered and no longer
    # sent the log.
    b = ("--bootstrap-server", b1.bootstrap)
    running = script("kafka-cluster.sh", "unregister", *b, "--id", "4", check=False)
    assert running.returncode != 0 and "stop it" in running.stderr, running.stderr
    b4.stop()
    assert b4.port not in _live_ports(b1)
    done = script("kafka-cluster.sh", "unregister", *b, "--id", "4")
    assert "Broker 4 is no longer registered" in done.stdout
    h.eventually(lambda: _no_observers(c.quorum(c.brokers[c.leader_id()])))
    again = script("kafka-cluster.sh", "unregister", *b, "--id", "4", check=False)
    assert again.returncode != 0 and "BROKER_ID_NOT_REGISTERED" in again.stderr, again.stderr
    # Its partition has no live leader now, and keeps its assignment.
    _, t = _metadata(b1, after)
    assert t.partitions[0].error is not None and t.partitions[0].replicas == [node_id]
    cid = script("kafka-cluster.sh", "cluster-id", *b).stdout
    assert cid.startswith("Cluster ID: ") and len(cid.split()[-1]) == 22, cid
    # It comes back: it joins the quorum again, registers with its old node
    # id, and leads its partition again with its records.
    b4.start()
    _, t = h.eventually(lambda: _assert_led(b1, after))
    assert t.partitions[0].leader == node_id
    got = h.consume_all(b1, after, 1)
    assert [m[1] for m in got] == [f"x{i}".encode() for i in range(10)]


def _assert_led(broker, topic):
    md, t = _metadata(broker, topic)
    assert t.partitions[0].error is None, t.partitions
    return md, t


def test_a_single_brokers_data_dir_cannot_join_a_cluster(broker_factory, tmp_path):
    """A data dir with a single broker's pre-quorum metadata log is refused
    by a cluster node at once, with the reason: merging it into a quorum
    that may hold other brokers' metadata is not supported."""
    import tarfile
    from pathlib import Path
    c = Cluster(broker_factory, size=3)
    b1 = c.brokers[1]
    with tarfile.open(Path(__file__).parent / "fixtures" / "data-dir-before-replicas.tar.gz") as tar:
        tar.extractall(tmp_path / "old", filter="data")
    b1.data_dir = tmp_path / "old" / "data"
    assert (b1.data_dir / "__cluster_metadata.log").exists(), list(b1.data_dir.iterdir())
    b1.start(wait=False)
    assert b1.proc.wait(timeout=30) != 0
    b1.proc = None  # it exited as it should: nothing to stop at teardown
    out = b1.log_path.read_text(errors="replace")
    assert "a broker joining a cluster needs a fresh data directory" in out, out[-2000:]


def _no_observers(q):
    assert q["observers"] == [], q


def test_controllers_without_shards_run_the_quorum_for_brokers_that_do_not_vote(broker_factory):
    """process.roles=controller: three voters with no shards and no client
    listener; two brokers (process.roles=broker) follow them. Clients see
    only the brokers; the quorum fails over among the controllers and still
    fences a killed broker. One broker names the voters, the other only
    controller.quorum.bootstrap.servers, the first of them not listening:
    it asks the next one for the voters."""
    c = Cluster(broker_factory, roles="controller", overrides={
        "broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "300"})
    b4 = c.add_broker(broker_factory, 4)
    nobody = _free_port(c.taken, 1)
    b5 = c.add_broker(broker_factory, 5, bootstrap=[f"{HOST}:{nobody}", f"{HOST}:{c.controller_ports[2]}"])
    c.start()
    for b in (b4, b5):
        h.eventually(lambda b=b: _live_ports(b) == sorted([b4.port, b5.port]) or _fail(_live_ports(b)))
    q = c.quorum(b4)
    assert sorted(v["replica_id"] for v in q["current_voters"]) == [1, 2, 3], q
    assert sorted(o["replica_id"] for o in q["observers"]) == [4, 5], q
    assert q["leader_id"] in (1, 2, 3), q
    # Replicas of a partition go to the two brokers.
    topic = h.unique("ctl")
    a = h.admin(b4)
    for fut in a.create_topics([NewTopic(topic, 2, 2)], request_timeout=30).values():
        fut.result(30)
    md, t = h.eventually(lambda: _metadata(b5, topic))
    for p in t.partitions.values():
        assert sorted(md.brokers[r].port for r in p.replicas) == sorted([b4.port, b5.port]), t.partitions
    p = h.producer(b4)
    for i in range(20):
        p.produce(topic, value=f"c{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    got = h.consume_all(b5, topic, 2)
    assert sorted(m[1] for m in got) == sorted(f"c{i}".encode() for i in range(20))
    # kill -9 the leading controller: the other two elect one and
    # CreateTopics works again; the brokers never stopped serving.
    leader = c.leader_id()
    c.brokers[leader].kill9()
    after = h.unique("ctl-after")
    h.eventually(lambda: _created(b5, after), timeout=30)
    assert c.leader_id(but=(leader,)) in (1, 2, 3)
    # The new leader fences a killed broker.
    b5.kill9()
    h.eventually(lambda: _live_ports(b4) == [b4.port] or _fail(_live_ports(b4)), timeout=20)
    out = sluice("cluster", "--bootstrap-server", b4.bootstrap).stdout
    assert "fenced" in out, out


def _created(broker, topic):
    a = h.admin(broker)
    for fut in a.create_topics([NewTopic(topic, 1, 1)], request_timeout=10).values():
        fut.result(15)
    return True


def _props(tmp_path, node):
    """A server.properties naming `node`, for add-controller."""
    path = tmp_path / f"node{node}.properties"
    path.write_text(f"process.roles=controller\nnode.id={node}\n")
    return path


def _voters(q, expected):
    assert sorted(v["replica_id"] for v in q["current_voters"]) == expected, q
    assert not {o["replica_id"] for o in q["observers"]} & set(expected), q
    return q


def test_controllers_are_added_to_and_removed_from_the_voters_at_run_time(broker_factory, tmp_path):
    """KIP-853's dynamic quorum: a controller started outside the voter set
    follows as an observer; add-controller (AddRaftVoter) makes it a voter
    that counts towards the majority, remove-controller (RemoveRaftVoter)
    makes a voter an observer; a voter added keeps voting after a restart."""
    c = Cluster(broker_factory).start()
    n4 = c.add_controller(broker_factory, 4)
    n5 = c.add_controller(broker_factory, 5)
    b6 = c.add_broker(broker_factory, 6)
    for n in (n4, n5, b6):
        n.start()
    b = c.brokers[1]
    h.eventually(lambda: sorted(o["replica_id"] for o in c.quorum(b)["observers"]) == [4, 5, 6]
                 or _fail("observers 4, 5, 6"))
    quorum = ("kafka-metadata-quorum.sh", "--bootstrap-server", b.bootstrap)
    # A broker that does not vote cannot be made a voter; nor can a
    # controller that stopped (it would not answer, and the change could not
    # commit).
    broker_only = script(*quorum, "add-controller", "--controller.config", str(_props(tmp_path, 6)), check=False)
    assert broker_only.returncode != 0 and "has not registered as a controller" in broker_only.stderr, \
        broker_only.stderr
    n5.stop()
    time.sleep(6)
    stopped = script(*quorum, "add-controller", "--controller.config", str(_props(tmp_path, 5)), check=False)
    assert stopped.returncode != 0 and "does not follow the quorum's log" in stopped.stderr, stopped.stderr
    props = _props(tmp_path, 4)
    added = script(*quorum, "add-controller", "--controller.config", str(props))
    assert "Added controller 4" in added.stdout, added.stdout
    h.eventually(lambda: _voters(c.quorum(b), [1, 2, 3, 4]))
    again = script(*quorum, "add-controller", "--controller.config", str(props), check=False)
    assert again.returncode != 0 and "DUPLICATE_VOTER" in again.stderr, again.stderr
    nobody = script(*quorum, "remove-controller", "--controller-id", "9", "--controller-directory-id", "x",
                    check=False)
    assert nobody.returncode != 0 and "VOTER_NOT_FOUND" in nobody.stderr, nobody.stderr
    # One voter that does not lead is removed; it keeps following.
    leader = c.leader_id()
    removed = next(i for i in (1, 2, 3) if i != leader)
    script(*quorum, "remove-controller", "--controller-id", str(removed), "--controller-directory-id", "x")
    remaining = sorted({1, 2, 3, 4} - {removed})
    q = h.eventually(lambda: _voters(c.quorum(b), remaining))
    h.eventually(lambda: removed in [o["replica_id"] for o in c.quorum(b)["observers"]] or _fail(q))
    # kill -9 the leader: of the three voters left, the other broker and
    # node 4 elect one, so node 4's vote counts; the removed voter, still a
    # broker, takes CreateTopics.
    c.brokers[leader].kill9()
    via = c.brokers[removed]
    h.eventually(lambda: _created(via, h.unique("after-change")), timeout=30)
    assert c.leader_id(but=(leader,)) in remaining
    # Restarted, node 4 is still a voter (it does not join as an observer).
    n4.restart()
    h.eventually(lambda: _voters(c.quorum(via), remaining))
    h.eventually(lambda: _created(via, h.unique("after-restart")), timeout=30)


def _producer_ids(broker, node, n):
    """n InitProducerId answers from node `node` (of `broker`)."""
    from kafka.protocol.producer import InitProducerIdRequest
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        ids = []
        for _ in range(n):
            req = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=-1)
            resp = ka._manager.run(ka._manager.send, req, node)
            assert resp.error_code == 0, resp
            ids.append(resp.producer_id)
        return ids
    finally:
        ka.close()


def test_producer_ids_come_in_blocks_unique_across_brokers(broker_factory):
    """Each broker takes blocks of 1000 producer ids from the quorum (one
    commit per block, as Kafka's AllocateProducerIds), so ids handed out by
    different brokers never collide, and a restart never reuses one."""
    c = Cluster(broker_factory).start()
    b1, b2 = c.brokers[1], c.brokers[2]
    md = h.admin(b1).list_topics(timeout=15)
    node = {n.port: n.id for n in md.brokers.values()}
    first = _producer_ids(b1, node[b1.port], 5)
    second = _producer_ids(b2, node[b2.port], 5)
    assert first == list(range(first[0], first[0] + 5)), first
    assert second == list(range(second[0], second[0] + 5)), second
    assert abs(first[0] - second[0]) >= 1000, (first, second)
    b1.restart()
    again = _producer_ids(b1, node[b1.port], 2)
    assert not set(again) & set(first + second), (again, first, second)
