"""The classic group protocol's rules and error codes, request by request
(kafka-python's protocol classes as the codec), against a real broker."""

import threading
import time

import pytest

import group_wire as w
from helpers import create_topic, unique

FAST = {"group.initial.rebalance.delay.ms": "0"}
PROTOCOLS = [w.JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")]


def coordinator(broker, group):
    """A connection to the group's coordinator (FindCoordinator v0 via bootstrap)."""
    c = w.Conn(broker.shard_port(0))
    r = c.call(w.FindCoordinatorRequest(key=group, key_type=0), 0)
    c.close()
    assert r.error_code == w.NONE
    return w.Conn(r.port), r.node_id


def join(conn, group, member_id="", session_ms=10000, instance=None, version=5, protocol_type="consumer"):
    return conn.call(w.JoinGroupRequest(group_id=group, session_timeout_ms=session_ms, rebalance_timeout_ms=10000,
                                        member_id=member_id, group_instance_id=instance,
                                        protocol_type=protocol_type, protocols=PROTOCOLS), version)


def sync(conn, group, generation, member_id, assignments=(), instance=None):
    asg = [w.SyncGroupRequest.SyncGroupRequestAssignment(member_id=m, assignment=a) for m, a in assignments]
    return conn.call(w.SyncGroupRequest(group_id=group, generation_id=generation, member_id=member_id,
                                        group_instance_id=instance, assignments=asg), 3)


def heartbeat(conn, group, generation, member_id, instance=None):
    return conn.call(w.HeartbeatRequest(group_id=group, generation_id=generation, member_id=member_id,
                                        group_instance_id=instance), 3).error_code


def join_stable(conn, group, **kw):
    """KIP-394 two-step join, then sync as leader: a stable one-member group."""
    r = join(conn, group, **kw)
    if r.error_code == w.MEMBER_ID_REQUIRED:
        r = join(conn, group, member_id=r.member_id, **kw)
    assert r.error_code == w.NONE, r
    s = sync(conn, group, r.generation_id, r.member_id, [(r.member_id, b"asg")], instance=kw.get("instance"))
    assert s.error_code == w.NONE and s.assignment == b"asg"
    return r.member_id, r.generation_id


def describe(conn, group):
    return conn.call(w.DescribeGroupsRequest(groups=[group]), 4).groups[0]


def test_join_sync_heartbeat_and_their_errors(broker_factory):
    broker = broker_factory(overrides=FAST)
    group = unique("g")
    conn, _ = coordinator(broker, group)
    # KIP-394: a v4+ join without an id gets one, and must come back with it.
    first = join(conn, group)
    assert first.error_code == w.MEMBER_ID_REQUIRED and first.member_id
    r = join(conn, group, member_id=first.member_id)
    assert (r.error_code, r.generation_id, r.leader, r.member_id) == (w.NONE, 1, first.member_id, first.member_id)
    assert [m.member_id for m in r.members] == [first.member_id]
    member, gen = r.member_id, r.generation_id

    # Before the sync (CompletingRebalance) a heartbeat of this generation is fine.
    assert heartbeat(conn, group, gen, member) == w.NONE
    assert sync(conn, group, gen + 1, member).error_code == w.ILLEGAL_GENERATION
    assert sync(conn, group, gen, "nobody").error_code == w.UNKNOWN_MEMBER_ID
    assert sync(conn, group, gen, member, [(member, b"a1")]).assignment == b"a1"
    assert heartbeat(conn, group, gen, member) == w.NONE
    assert heartbeat(conn, group, gen - 1, member) == w.ILLEGAL_GENERATION
    assert heartbeat(conn, group, gen, "nobody") == w.UNKNOWN_MEMBER_ID
    assert heartbeat(conn, unique("none"), 1, member) in (w.UNKNOWN_MEMBER_ID, w.NOT_COORDINATOR)
    assert join(conn, group, member_id="made-up").error_code == w.UNKNOWN_MEMBER_ID
    d = describe(conn, group)
    assert (d.group_state, d.protocol_type, d.protocol_data) == ("Stable", "consumer", "range")
    assert [m.member_id for m in d.members] == [member] and d.members[0].member_assignment == b"a1"
    conn.close()
    broker.assert_alive()


def test_a_second_member_triggers_a_rebalance(broker_factory):
    broker = broker_factory(overrides=FAST)
    group = unique("g")
    a, _ = coordinator(broker, group)
    b, _ = coordinator(broker, group)
    member_a, gen = join_stable(a, group)
    first_b = join(b, group)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=join(b, group, member_id=first_b.member_id)))
    t.start()
    # A learns of the rebalance through its heartbeat (once B's rejoin, sent on another
    # connection, has reached the coordinator), then rejoins.
    deadline = time.monotonic() + 5
    while (code := heartbeat(a, group, gen, member_a)) == w.NONE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert code == w.REBALANCE_IN_PROGRESS
    ra = join(a, group, member_id=member_a)
    t.join(15)
    rb = result["r"]
    assert ra.error_code == rb.error_code == w.NONE
    assert ra.generation_id == rb.generation_id == gen + 1
    # The old leader stays leader and alone sees the member list.
    assert ra.leader == member_a and len(ra.members) == 2 and rb.members == []
    # Until the leader's sync, commits wait for the new assignment.
    topic = unique("t")
    create_topic(broker, topic, partitions=1)
    assert commit(a, group, {(topic, 0): 1}, gen + 1, member_a) == {(topic, 0): w.REBALANCE_IN_PROGRESS}
    assert sync(a, group, gen + 1, member_a, [(member_a, b"x"), (rb.member_id, b"y")]).assignment == b"x"
    assert sync(b, group, gen + 1, rb.member_id).assignment == b"y"
    # A commit from the old generation is refused; the current one is taken.
    assert commit(a, group, {(topic, 0): 1}, gen, member_a) == {(topic, 0): w.ILLEGAL_GENERATION}
    assert commit(a, group, {(topic, 0): 1}, gen + 1, member_a) == {(topic, 0): w.NONE}
    a.close()
    b.close()
    broker.assert_alive()


def test_members_that_stop_heartbeating_are_expelled_on_time(broker_factory):
    broker = broker_factory(overrides=FAST)
    group = unique("g")
    conn, _ = coordinator(broker, group)
    member, gen = join_stable(conn, group, session_ms=6000)
    start = time.monotonic()
    while describe(conn, group).members:
        assert time.monotonic() - start < 10, "member not expelled 10 s into a 6 s session"
        time.sleep(0.2)
    took = time.monotonic() - start
    assert 5.5 <= took, f"expelled after {took:.1f}s of a 6 s session"
    assert describe(conn, group).group_state == "Empty"
    assert heartbeat(conn, group, gen, member) == w.UNKNOWN_MEMBER_ID
    conn.close()


def test_static_membership_fences_the_old_instance(broker_factory):
    broker = broker_factory(overrides=FAST)
    group = unique("g")
    conn, _ = coordinator(broker, group)
    old, gen = join_stable(conn, group, instance="inst-1")
    # The same instance restarts: a new member id, same generation, no rebalance.
    r = join(conn, group, instance="inst-1")
    assert r.error_code == w.NONE and r.member_id != old and r.generation_id == gen
    assert heartbeat(conn, group, gen, old, instance="inst-1") == w.FENCED_INSTANCE_ID
    assert heartbeat(conn, group, gen, r.member_id, instance="inst-1") == w.NONE
    assert describe(conn, group).group_state == "Stable"
    # LeaveGroup v3+: members by instance id, in one request.
    leave = conn.call(w.LeaveGroupRequest(group_id=group, members=[
        w.LeaveGroupRequest.MemberIdentity(member_id="", group_instance_id="inst-1"),
        w.LeaveGroupRequest.MemberIdentity(member_id="", group_instance_id="inst-unknown")]), 3)
    assert [m.error_code for m in leave.members] == [w.NONE, w.UNKNOWN_MEMBER_ID]
    assert describe(conn, group).group_state == "Empty"
    conn.close()


def test_bad_joins_get_kafkas_errors(broker_factory):
    broker = broker_factory(overrides=FAST)
    group = unique("g")
    conn, node = coordinator(broker, group)
    assert join(conn, group, session_ms=100).error_code == w.INVALID_SESSION_TIMEOUT
    assert join(conn, "").error_code == w.INVALID_GROUP_ID
    join_stable(conn, group)
    assert join(conn, group, protocol_type="connect", version=3).error_code == w.INCONSISTENT_GROUP_PROTOCOL
    # The other shard is not this group's coordinator.
    other = w.Conn(broker.shard_port(1 - node))
    assert join(other, group).error_code == w.NOT_COORDINATOR
    other.close()
    conn.close()
    broker.assert_alive()


def commit(conn, group, offsets, generation=-1, member="", metadata="", version=2):
    topics = {}
    for (t, p), o in offsets.items():
        topics.setdefault(t, []).append(w.OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
            partition_index=p, committed_offset=o, committed_metadata=metadata))
    req = w.OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=generation, member_id=member,
                                retention_time_ms=-1, topics=[
                                    w.OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
                                    for t, ps in topics.items()])
    r = conn.call(req, version)
    return {(t.name, p.partition_index): p.error_code for t in r.topics for p in t.partitions}


def fetch(conn, group, topic, partitions, version=3):
    r = conn.call(w.OffsetFetchRequest(group_id=group, topics=[
        w.OffsetFetchRequest.OffsetFetchRequestTopic(name=topic, partition_indexes=partitions)]), version)
    return {p.partition_index: p.committed_offset for t in r.topics for p in t.partitions}


def test_offset_commit_fetch_and_delete(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic = unique("t")
    create_topic(broker, topic, partitions=3)
    group = unique("g")
    conn, node = coordinator(broker, group)
    assert commit(conn, group, {(topic, 0): 5, (topic, 1): 9}) == {(topic, 0): 0, (topic, 1): 0}
    assert fetch(conn, group, topic, [0, 1, 2]) == {0: 5, 1: 9, 2: -1}
    assert commit(conn, group, {("no-such-topic", 0): 1}) == {("no-such-topic", 0): w.UNKNOWN_TOPIC_OR_PARTITION}
    assert commit(conn, group, {(topic, 7): 1}) == {(topic, 7): w.UNKNOWN_TOPIC_OR_PARTITION}
    assert commit(conn, group, {(topic, 2): 1}, metadata="m" * 5000) == {(topic, 2): w.OFFSET_METADATA_TOO_LARGE}
    # Committing with a generation to a group that does not have it.
    assert commit(conn, group, {(topic, 0): 6}, generation=3, member="x") == {(topic, 0): w.UNKNOWN_MEMBER_ID}

    # OffsetFetch v8: several groups in one request (here two on this coordinator).
    other = next(g for g in (unique("g") for _ in range(100)) if coordinator(broker, g)[1] == node)
    assert commit(conn, other, {(topic, 2): 42}) == {(topic, 2): 0}
    OFG = w.OffsetFetchRequest.OffsetFetchRequestGroup
    r = conn.call(w.OffsetFetchRequest(groups=[
        OFG(group_id=group, topics=None), OFG(group_id=other, topics=[
            OFG.OffsetFetchRequestTopics(name=topic, partition_indexes=[2, 0])])]), 8)
    got = {g.group_id: {(t.name, p.partition_index): p.committed_offset for t in g.topics for p in t.partitions}
           for g in r.groups}
    assert got == {group: {(topic, 0): 5, (topic, 1): 9}, other: {(topic, 2): 42, (topic, 0): -1}}

    # OffsetDelete on an empty group removes the offsets.
    r = conn.call(w.OffsetDeleteRequest(group_id=group, topics=[w.OffsetDeleteRequest.OffsetDeleteRequestTopic(
        name=topic, partitions=[w.OffsetDeleteRequest.OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(
            partition_index=0)])]), 0)
    assert r.error_code == 0 and r.topics[0].partitions[0].error_code == 0
    assert fetch(conn, group, topic, [0, 1]) == {0: -1, 1: 9}

    # ListGroups with a state filter; DeleteGroups of an unknown group.
    listed = conn.call(w.ListGroupsRequest(states_filter=["Empty"]), 4).groups
    assert {group, other} <= {g.group_id for g in listed}
    assert not conn.call(w.ListGroupsRequest(states_filter=["Stable"]), 4).groups
    r = conn.call(w.DeleteGroupsRequest(groups_names=[unique("missing")]), 2)
    assert r.results[0].error_code in (w.GROUP_ID_NOT_FOUND, w.NOT_COORDINATOR)
    conn.close()
    broker.assert_alive()


def test_offset_delete_refuses_subscribed_topics(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic = unique("t")
    create_topic(broker, topic, partitions=1)
    group = unique("g")
    conn, _ = coordinator(broker, group)
    # A consumer-protocol subscription (v0: topics, user data) to `topic`.
    sub = b"\x00\x00" + b"\x00\x00\x00\x01" + len(topic).to_bytes(2, "big") + topic.encode() + b"\xff\xff\xff\xff"
    global PROTOCOLS
    saved = PROTOCOLS
    PROTOCOLS = [w.JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=sub)]
    try:
        member, gen = join_stable(conn, group)
    finally:
        PROTOCOLS = saved
    assert commit(conn, group, {(topic, 0): 3}, generation=gen, member=member) == {(topic, 0): 0}
    r = conn.call(w.OffsetDeleteRequest(group_id=group, topics=[w.OffsetDeleteRequest.OffsetDeleteRequestTopic(
        name=topic, partitions=[w.OffsetDeleteRequest.OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(
            partition_index=0)])]), 0)
    assert r.topics[0].partitions[0].error_code == w.GROUP_SUBSCRIBED_TO_TOPIC
    assert fetch(conn, group, topic, [0]) == {0: 3}
    conn.close()


def test_find_coordinator_batched_keys(broker_factory):
    broker = broker_factory(overrides=FAST)
    conn = w.Conn(broker.shard_port(0))
    groups = [unique("g") for _ in range(6)]
    r = conn.call(w.FindCoordinatorRequest(key_type=0, coordinator_keys=groups), 4)
    assert [c.key for c in r.coordinators] == groups
    for c in r.coordinators:
        assert c.error_code == 0 and c.port == broker.shard_port(c.node_id)
        single = conn.call(w.FindCoordinatorRequest(key=c.key, key_type=0), 1)
        assert (single.node_id, single.port) == (c.node_id, c.port)
    assert conn.call(w.FindCoordinatorRequest(key="tx", key_type=1), 1).error_code != 0
    conn.close()


def test_offsets_of_an_empty_group_expire(broker_factory):
    """offsets.retention.minutes=1: a minute after the group emptied (and
    its last commit) the offsets are gone, also after a restart."""
    broker = broker_factory(overrides={**FAST, "offsets.retention.minutes": "1",
                                       "offsets.retention.check.interval.ms": "1000"})
    topic = unique("t")
    create_topic(broker, topic, partitions=1)
    group, keep = unique("g"), unique("g")
    conn, _ = coordinator(broker, group)
    assert commit(conn, group, {(topic, 0): 11}) == {(topic, 0): 0}
    conn.close()
    deadline = time.monotonic() + 60
    keeper, _ = coordinator(broker, keep)
    while time.monotonic() < deadline:  # a group that keeps committing keeps its offsets
        commit(keeper, keep, {(topic, 0): 1})
        time.sleep(5)
    keeper.close()
    conn, _ = coordinator(broker, group)
    deadline = time.monotonic() + 20
    while fetch(conn, group, topic, [0]) != {0: -1}:
        assert time.monotonic() < deadline, "offsets did not expire"
        time.sleep(0.5)
    conn.close()
    broker.restart()
    conn, _ = coordinator(broker, group)
    assert fetch(conn, group, topic, [0]) == {0: -1}
    k, _ = coordinator(broker, keep)
    assert fetch(k, keep, topic, [0]) == {0: 1}
    conn.close()
    k.close()


def test_rebalance_timeout_drops_members_that_do_not_rejoin(broker_factory):
    broker = broker_factory(overrides=FAST)
    group = unique("g")
    a, _ = coordinator(broker, group)
    b, _ = coordinator(broker, group)
    r = a.call(w.JoinGroupRequest(group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=3000,
                                  member_id="", protocol_type="consumer", protocols=PROTOCOLS), 3)
    member_a = r.member_id
    assert sync(a, group, r.generation_id, member_a, [(member_a, b"a")]).error_code == w.NONE
    result = {}
    started = time.monotonic()
    # The rebalance waits for the largest rebalance timeout of the members (3 s each here).
    t = threading.Thread(target=lambda: result.update(r=b.call(w.JoinGroupRequest(
        group_id=group, session_timeout_ms=30000, rebalance_timeout_ms=3000, member_id="",
        protocol_type="consumer", protocols=PROTOCOLS), 3)))
    t.start()
    # B's JoinGroup travels on another connection, so A's first heartbeats may reach the
    # coordinator before it: NONE is fine until the rebalance has begun, never after.
    while heartbeat(a, group, r.generation_id, member_a) == w.NONE:
        assert time.monotonic() - started < 2, "B's JoinGroup did not start a rebalance"
        time.sleep(0.05)
    # A keeps heartbeating but never rejoins: heartbeats do not save it.
    while t.is_alive() and time.monotonic() - started < 15:
        assert heartbeat(a, group, r.generation_id, member_a) in (w.REBALANCE_IN_PROGRESS, w.UNKNOWN_MEMBER_ID)
        t.join(0.5)
    took = time.monotonic() - started
    rb = result["r"]
    assert rb.error_code == w.NONE and rb.leader == rb.member_id and [m.member_id for m in rb.members] == [rb.member_id]
    assert 2.5 <= took < 6, f"rebalance completed after {took:.1f}s with a 3 s rebalance timeout"
    assert heartbeat(a, group, r.generation_id, member_a) == w.UNKNOWN_MEMBER_ID
    a.close()
    b.close()


def test_initial_rebalance_delay_gathers_members(broker_factory):
    broker = broker_factory(overrides={"group.initial.rebalance.delay.ms": "1500"})
    group = unique("g")
    conns = [coordinator(broker, group)[0] for _ in range(3)]
    results = [None] * 3
    started = time.monotonic()

    def member(i):
        time.sleep(0.3 * i)  # they trickle in within the delay
        results[i] = join(conns[i], group, version=3)
    threads = [threading.Thread(target=member, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    took = time.monotonic() - started
    # One generation for all three, not one rebalance per arrival.
    assert {r.generation_id for r in results} == {1}
    leader = [r for r in results if r.members]
    assert len(leader) == 1 and len(leader[0].members) == 3
    assert took >= 1.5, f"the first rebalance did not wait for the delay ({took:.1f}s)"
    for c in conns:
        c.close()
