"""Replication between the shards of one broker (issue 24): a broker of two
shards asked for replication factor 2 keeps a copy on each, the first in
Kafka's `topic-p` directory and the other in `topic-p+N` (N its
node), and the follower shard copies its leader over loopback Fetch like a
follower on another machine. The fault round puts the follower's directory
on a small disk of its own and fills it while acks=all production runs:
the follower stalls and leaves the ISR, production goes on, and once the
disk has room again it catches up and rejoins; the checker finds nothing
lost, duplicated or out of place. Seeded rounds: SLUICE_FAULT_ROUNDS."""

import json
import random
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import admin as ca
from confluent_kafka.admin import NewPartitions, NewTopic

import checker
import helpers as h
import kafka_wire as kw
import loopfs
from test_replication import _partitions, _reassign, _sizes
from test_replication_faults import ROUNDS, acked_more_than

LAG_MS = 2000


def _broker(broker_factory):
    return broker_factory(shards=2, overrides={"replica.lag.time.max.ms": str(LAG_MS)})


def _create(b, topic, assignment, **config):
    conf = {k.replace("_", "."): str(v) for k, v in config.items()}
    t = NewTopic(topic, len(assignment), replica_assignment=assignment, config=conf)
    a = h.admin(b)
    a.create_topics([t], request_timeout=30)[topic].result(30)
    h.wait_topic(b, topic, len(assignment))


def _isr(b, topic, p):
    return _partitions(b, topic)[p][2]


def _copies_alike(b, topic):
    """Every partition has its two replicas in sync, holding as many bytes."""
    sizes = _sizes(b, topic)
    for p, (_leader, replicas, isr) in _partitions(b, topic).items():
        got = [sizes.get((n, p)) for n in replicas]
        assert isr == replicas == [0, 1] and got[0] == got[1] and got[0], (p, isr, got)


def _read(b, topic, partitions):
    got = h.consume_all(b, topic, partitions, timeout=90)
    return [(p, o, v) for _k, v, p, o, _t in got]


def _stored(dir):
    """(offset, value) of every record in the segment files of `dir`, in
    file order (each file's batches up to its zero padding)."""
    out = []
    for seg in sorted(dir.glob("*.log")):
        data = seg.read_bytes()
        out += [(r["offset"], r["value"]) for r in kw.decode_record_batches(data[:kw.stored_batches_end(data)])]
    return out


def test_two_shards_of_one_broker_copy_each_other(broker_factory):
    b = _broker(broker_factory)
    topic = h.unique("shards")
    assignment = [[0, 1], [1, 0], [0, 1], [1, 0]]
    _create(b, topic, assignment, min_insync_replicas=2)
    records = [(f"k{i}".encode(), f"v{i}-".encode().ljust(1000, b"."), i % 4) for i in range(800)]
    acked = h.produce_records(b, topic, records, acks="all")
    h.eventually(lambda: _copies_alike(b, topic), timeout=30)
    for p, replicas in enumerate(assignment):
        first, second = b.data_dir / f"{topic}-{p}", b.data_dir / f"{topic}-{p}+{replicas[1]}"
        assert list(first.glob("*.log")) and list(second.glob("*.log")), (first, second)
    # Both copies come back after a crash, and everything acknowledged is
    # read back once, at its offset.
    b.kill9()
    b.restart()
    h.wait_topic(b, topic, 4)
    want = [(p, o, v) for _k, v, p, o, *_ in acked]
    checker.check(want, _read(b, topic, 4)).assert_clean()
    h.eventually(lambda: _copies_alike(b, topic), timeout=30)


IDEMPOTENT = {"enable.idempotence": True, "retries": 1000}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", range(ROUNDS))
@pytest.mark.parametrize("copy", ["follower", "leader"])
def test_a_replica_whose_directory_cannot_be_written_falls_behind_and_catches_up(broker_factory, tmp_path, copy, seed):
    """The follower's copy: it stalls, leaves the ISR, production goes on.
    The leader's: it hands the partition to the follower (as Kafka moves
    the partitions of a failed log directory) and follows. Either way,
    once its disk has room again the copy catches up and rejoins the ISR."""
    rng = random.Random(seed)
    b = _broker(broker_factory)
    topic = h.unique(f"unwritable{seed}")
    # Node 0 leads, node 1 follows; the failing copy lives on a small disk
    # of its own, with small segments so that no preallocated space
    # outlasts the disk.
    victim, survivor = (1, 0) if copy == "follower" else (0, 1)
    dir = f"{topic}-0+1" if copy == "follower" else f"{topic}-0"
    with loopfs.mounted(tmp_path / "fs.img", b.data_dir / dir, "128M") as mnt:
        try:
            _create(b, topic, [[0, 1]], segment_bytes=1 << 20)
            h.eventually(lambda: _isr_is(b, topic, [0, 1]), timeout=30)
            tag = f"u{seed}"
            rec = h.AckRecorder(b, topic, tag, rate=rng.choice([500, 1000, 2000]), pad=1000, **IDEMPOTENT)
            rec.start()
            time.sleep(rng.uniform(1.0, 3.0))
            disk = loopfs.Filler(mnt)
            disk.fill()
            h.eventually(lambda: _isr_is(b, topic, [survivor]), timeout=LAG_MS / 1000 + 20)
            assert _partitions(b, topic)[0][0] == survivor
            if copy == "follower":
                # (A leader that handed over may rejoin for a moment while
                # its producers move: only a follower stays out for sure.)
                assert f"Topic: {topic}\tPartition: 0" in _under_replicated(b)
            # Production goes on without the failing copy.
            before = len(rec.acked)
            h.eventually(lambda: acked_more_than(rec, before + 200), timeout=30)
            time.sleep(rng.uniform(0.5, 3.0))
            disk.free()
            h.eventually(lambda: _copies_alike(b, topic), timeout=60)
            assert f"Topic: {topic}\t" not in _under_replicated(b)
            rec.finish()
            acked = [(p, o, v) for (p, o), v in rec.acked.items()]
            sent = [rec.value(i) for i in range(rec.sent)]
            report = checker.check(acked, _read(b, topic, 1), sent=sent)
            assert report.clean, f"{report.summary()} (node {victim}'s copy was unwritable)"
            assert not rec.double_acks, rec.double_acks[:5]
            # The copy that could not write holds what the other holds,
            # record for record: no hole where a failed write was cut off
            # while a fetch was out.
            other = f"{topic}-0" if copy == "follower" else f"{topic}-0+1"
            h.eventually(lambda: _stored(b.data_dir / dir) == _stored(b.data_dir / other), timeout=30)
            offsets = [o for o, _v in _stored(b.data_dir / dir)]
            assert offsets == list(range(len(offsets))), "dense offsets from 0"
        finally:
            b.kill9()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", range(ROUNDS))
def test_a_new_copy_catching_up_onto_a_filling_disk_holds_every_record_once(broker_factory, tmp_path, seed):
    """A new copy catches up with fetches pipelined (each goes out while
    the last answer's records sync). Its disk fills part way: writes fail,
    and each cuts the log back to its durable end while a fetch is out.
    That fetch's answer starts past the new end and must be dropped, or the
    copy holds a hole that it then reports as held. Once the disk has room
    the copy joins the ISR holding exactly the leader's records."""
    rng = random.Random(seed)
    b = _broker(broker_factory)
    topic = h.unique(f"fillup{seed}")
    with loopfs.mounted(tmp_path / "fs.img", b.data_dir / f"{topic}-0+1", "128M") as mnt:
        try:
            _create(b, topic, [[0]], segment_bytes=1 << 20)
            records = [(None, f"v{i}-".encode().ljust(1000, b"."), 0) for i in range(60000)]
            h.produce_records(b, topic, records, acks="all")
            disk = loopfs.Filler(mnt, leave=rng.randint(4, 24) << 20)
            disk.fill()
            assert _reassign(b, {(topic, 0): [0, 1]}) == {(topic, 0): 0}
            time.sleep(rng.uniform(1.0, 3.0))
            disk.free()
            h.eventually(lambda: _isr_is(b, topic, [0, 1]), timeout=60)
            copy, leader = b.data_dir / f"{topic}-0+1", b.data_dir / f"{topic}-0"
            h.eventually(lambda: _stored(copy) == _stored(leader), timeout=30)
            assert [v for _o, v in _stored(copy)] == [v for _k, v, _p in records]
        finally:
            b.kill9()


def _under_replicated(b):
    """What `kafka-topics.sh --describe --under-replicated-partitions` lists."""
    from test_tools import script
    return script("kafka-topics.sh", "--bootstrap-server", b.bootstrap, "--describe",
                  "--under-replicated-partitions").stdout


def _isr_is(b, topic, want):
    assert _isr(b, topic, 0) == want, _partitions(b, topic)


def test_a_new_copy_of_a_partition_whose_start_moved_on_begins_at_the_leaders_start(broker_factory):
    """A copy added to a partition whose log start DeleteRecords moved past
    offset 0 is told OFFSET_OUT_OF_RANGE from 0: it starts afresh at the
    leader's start, copies from there, joins the ISR, and the move ends."""
    b = _broker(broker_factory)
    topic = h.unique("started")
    _create(b, topic, [[0]], segment_bytes=1 << 20)
    records = [(None, f"v{i}-".encode().ljust(1000, b"."), 0) for i in range(3000)]
    h.produce_records(b, topic, records, acks="all")
    code, low = h.delete_records_v0(h.leader_conn(b, topic), topic, 0, 2000)
    assert (code, low) == (0, 2000)
    assert _reassign(b, {(topic, 0): [0, 1]}) == {(topic, 0): 0}
    h.eventually(lambda: _isr_is(b, topic, [0, 1]), timeout=30)
    copy = b.data_dir / f"{topic}-0+1"
    stored = _stored(copy)
    # From the batch holding offset 2000 (Kafka's follower starts there too
    # when the start is inside a batch), not from 0.
    first = stored[0][0]
    assert 0 < first <= 2000 and first == min(int(f.stem) for f in copy.glob("*.log")), (first, list(copy.iterdir()))
    assert [o for o, _v in stored] == list(range(first, 3000)), (stored[:1], stored[-1:])
    assert [v for _o, v in stored] == [v for _k, v, _p in records[first:]]


def _alter(b, rtype, name, op, **configs):
    """IncrementalAlterConfigs through confluent-kafka: `op` (SET or DELETE)
    for each key (underscores for dots)."""
    entries = [ca.ConfigEntry(k.replace("_", "."), str(v), incremental_operation=op) for k, v in configs.items()]
    res = ca.ConfigResource(rtype, name, incremental_configs=entries)
    a = h.admin(b)
    a.incremental_alter_configs([res], request_timeout=10)[res].result(15)


def _copy_size(b, topic, node):
    return _sizes(b, topic).get((node, 0), 0)


RATE = 1 << 19  # bytes/s, set for each node


def _throttled_most(seconds):
    """The most a copy throttled at RATE (half a MiB/s, set for the node)
    may hold after `seconds`: a second's worth banked, and one fetch
    (replica.fetch.max.bytes, 1 MiB) may overdraw the quota. Far below the
    ~6 MiB an unthrottled loopback copy takes in a second."""
    return (seconds + 1) * RATE + (1 << 20)


@pytest.mark.parametrize("listed_on", ["topic", "broker"])
@pytest.mark.parametrize("side", ["follower", "leader"])
def test_a_throttled_new_copy_takes_no_more_than_its_rate_until_the_throttle_goes(broker_factory, side, listed_on):
    """`{side}.replication.throttled.rate` with the topic's
    `{side}.replication.throttled.replicas` naming the new copy (follower)
    or the leader's (leader), as Kafka's lists do: the copy goes at about
    the rate (set for each node) while out of the ISR; the rate removed,
    it catches up at once and joins. A list set on the throttling node
    instead (the topic's default) throttles the same way."""
    b = _broker(broker_factory)
    topic = h.unique("throttled")
    _create(b, topic, [[0]])
    records = [(None, f"v{i}-".encode().ljust(1000, b"."), 0) for i in range(6000)]
    h.produce_records(b, topic, records, acks="all")
    full = _copy_size(b, topic, 0)
    rate = {f"{side}_replication_throttled_rate": RATE}
    for node in ("0", "1"):
        _alter(b, ca.ResourceType.BROKER, node, ca.AlterConfigOpType.SET, **rate)
    listed = {f"{side}_replication_throttled_replicas": "0:1" if side == "follower" else "0:0"}
    if listed_on == "topic":
        _alter(b, ca.ResourceType.TOPIC, topic, ca.AlterConfigOpType.SET, **listed)
    else:
        throttling = "1" if side == "follower" else "0"
        _alter(b, ca.ResourceType.BROKER, throttling, ca.AlterConfigOpType.SET, **listed)
    assert _reassign(b, {(topic, 0): [0, 1]}) == {(topic, 0): 0}
    started = time.monotonic()
    time.sleep(3)
    copied, took = _copy_size(b, topic, 1), time.monotonic() - started
    assert 0 < copied <= _throttled_most(took), (copied, full, took)
    assert _isr(b, topic, 0) == [0]
    for node in ("0", "1"):
        _alter(b, ca.ResourceType.BROKER, node, ca.AlterConfigOpType.DELETE, **{k: "" for k in rate})
    h.eventually(lambda: _isr_is(b, topic, [0, 1]), timeout=30)
    assert [v for _o, v in _stored(b.data_dir / f"{topic}-0+1")] == [v for _k, v, _p in records]


def _configs(b, rtype, name):
    res = ca.ConfigResource(rtype, name)
    a = h.admin(b)
    entries = a.describe_configs([res], request_timeout=10)[res].result(15)
    return {k: e.value for k, e in entries.items() if "throttled" in k}


def test_the_reassign_tools_throttle_is_set_for_the_move_and_removed_by_verify(broker_factory):
    """kafka-reassign-partitions.sh --execute --throttle RATE sets the rates
    on the nodes involved and the topic's lists (current replicas for the
    leader, the new ones for the follower), the copy goes at the rate, and
    --verify removes all of it once the move is complete."""
    from test_tools import script
    b = _broker(broker_factory)
    topic = h.unique("toolthrottle")
    _create(b, topic, [[0]])
    records = [(None, f"v{i}-".encode().ljust(1000, b"."), 0) for i in range(6000)]
    h.produce_records(b, topic, records, acks="all")
    plan = b.workdir / "move.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [0, 1]}]}))
    common = ["--bootstrap-server", b.bootstrap, "--reassignment-json-file", str(plan)]
    started = time.monotonic()
    out = script("kafka-reassign-partitions.sh", *common, "--execute", "--throttle", str(RATE)).stdout
    assert f"The inter-broker throttle limit was set to {RATE} B/s" in out, out
    assert _configs(b, ca.ResourceType.TOPIC, topic) == {
        "leader.replication.throttled.replicas": "0:0", "follower.replication.throttled.replicas": "0:1"}
    for node in ("0", "1"):
        rates = _configs(b, ca.ResourceType.BROKER, node)
        assert rates["follower.replication.throttled.rate"] == str(RATE), rates
    time.sleep(2)
    copied, took = _copy_size(b, topic, 1), time.monotonic() - started
    assert copied <= _throttled_most(took), (copied, took)
    out = script("kafka-reassign-partitions.sh", *common, "--verify").stdout
    assert "is still in progress" in out and "Throttle was removed" not in out, out
    h.eventually(lambda: _isr_is(b, topic, [0, 1]), timeout=60)
    out = script("kafka-reassign-partitions.sh", *common, "--verify").stdout
    assert "is completed" in out and "Throttle was removed." in out, out
    assert _configs(b, ca.ResourceType.TOPIC, topic) == {
        "leader.replication.throttled.replicas": "", "follower.replication.throttled.replicas": ""}
    rates = _configs(b, ca.ResourceType.BROKER, "1")
    assert rates["follower.replication.throttled.rate"] == str(2**63 - 1), rates


def test_a_broker_restarted_with_fewer_shards_keeps_each_copys_data_with_its_node(broker_factory):
    """Node 1 leads and holds `topic-0`, node 0 follows in `topic-0+0`; the
    broker comes back with one shard: node 0, in sync, keeps its own copy,
    now named `topic-0`, leads, and every acknowledged record is there."""
    b = _broker(broker_factory)
    topic = h.unique("fewer")
    _create(b, topic, [[1, 0]], min_insync_replicas=2)
    records = [(None, f"v{i}-".encode().ljust(200, b"."), 0) for i in range(500)]
    acked = h.produce_records(b, topic, records, acks="all")
    h.eventually(lambda: _isr_is(b, topic, [0, 1]), timeout=30)
    (b.data_dir / f"{topic}-0" / "mark").write_text("node 1's copy")
    b.stop()
    b.shards = 1
    b.start()
    h.wait_topic(b, topic, 1)
    assert _partitions(b, topic)[0][:2] == (0, [0])
    assert not (b.data_dir / f"{topic}-0+0").exists()
    assert not (b.data_dir / f"{topic}-0" / "mark").exists(), "node 0 took node 1's directory"
    want = [(p, o, v) for _k, v, p, o in acked]
    checker.check(want, _read(b, topic, 1)).assert_clean()


def test_a_further_copys_directory_name_must_fit_a_file_name(broker_factory):
    """A second copy on one broker lives in `topic-p+N`: for a topic name of
    Kafka's longest (249 characters) and partition 1000 that is 256 bytes,
    past what a file system takes. CreateTopics and CreatePartitions refuse
    such a placement up front (INVALID_TOPIC_EXCEPTION) instead of placing
    a copy that could never open; first copies (`topic-p`) always fit."""
    b = _broker(broker_factory)
    a = h.admin(b)
    name = "n" * 249
    refused = a.create_topics([NewTopic(name, 1001, 2)], validate_only=True, request_timeout=30)[name]
    with pytest.raises(KafkaException) as e:
        refused.result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, e.value
    assert "255" in e.value.args[0].str(), e.value
    one_copy = a.create_topics([NewTopic(name, 1001, 1)], validate_only=True, request_timeout=30)[name]
    one_copy.result(30)
    a.create_topics([NewTopic(name, 1, 2)], request_timeout=30)[name].result(30)
    grown = a.create_partitions([NewPartitions(name, 1001)], validate_only=True, request_timeout=30)[name]
    with pytest.raises(KafkaException) as e:
        grown.result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, e.value
    a.create_partitions([NewPartitions(name, 12)], request_timeout=30)[name].result(30)
    h.wait_topic(b, name, 12)
    assert (b.data_dir / f"{name}-11").is_dir()
    assert [(b.data_dir / f"{name}-11+{n}").is_dir() for n in (0, 1)].count(True) == 1
