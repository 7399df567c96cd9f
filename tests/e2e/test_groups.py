"""Consumer groups (issue 4) with real clients against a real broker:
kafka-python's seed consumers, confluent-kafka groups that share a topic,
lose a member, rebalance cooperatively or statically, and keep committed
offsets across a broker restart and group deletion."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions

from helpers import admin, consumer, create_topic, produce_records, unique

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER = os.path.join(HERE, "group_member.py")

# Rebalances in these tests should not wait Kafka's 3 s for more members.
FAST = {"group.initial.rebalance.delay.ms": "300"}


class Member:
    """A group_member.py process and the events it printed."""

    def __init__(self, broker, topic, group, *extra):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", MEMBER, broker.bootstrap, topic, group, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.lock:
                self.lines.append(raw.decode().rstrip("\n"))

    def events(self, kind):
        with self.lock:
            return [ln.split(" ", 1)[1] if " " in ln else "" for ln in self.lines if ln.split(" ")[0] == kind]

    def assigned(self):
        """Partitions held now, replaying ASSIGN/REVOKE (eager and incremental alike)."""
        held = set()
        with self.lock:
            lines = list(self.lines)
        for ln in lines:
            kind, _, rest = ln.partition(" ")
            if kind not in ("ASSIGN", "REVOKE"):
                continue
            parts = {int(p) for p in rest.split(",") if p}
            if kind == "ASSIGN":
                held |= parts
            elif kind == "REVOKE":
                held -= parts
        return held

    def consumed(self):
        return [tuple(map(int, e.split())) for e in self.events("MSG")]

    def committed(self):
        """partition -> highest committed next offset."""
        out = {}
        for e in self.events("COMMIT"):
            p, o = map(int, e.split())
            out[p] = max(out.get(p, 0), o)
        return out

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_snippet(src, broker, timeout=60):
    src = src.replace("localhost:9092", broker.bootstrap)
    return subprocess.run([sys.executable, "-c", src], capture_output=True, timeout=timeout)


def group_ids(broker):
    # Keep the client referenced until the result is in: a collected
    # AdminClient fails its pending requests.
    a = admin(broker)
    res = a.list_consumer_groups(request_timeout=10).result()
    assert not res.errors, res.errors
    return {g.group_id for g in res.valid}


SEED_GROUP_CONSUMER = """\
from kafka import KafkaConsumer

consumer = KafkaConsumer('test_topic', group_id='test_group', bootstrap_servers=['localhost:9092'])
consumer.poll()
"""


SEED_GROUP_CONSUMER_POLLING = SEED_GROUP_CONSUMER.replace("consumer.poll()\n", """\
import time
got = []
deadline = time.time() + 40
while not got and time.time() < deadline:
    for tp, msgs in consumer.poll(timeout_ms=1000).items():
        got += [m.value for m in msgs]
consumer.commit()
print(got)
""")


def test_seed_group_consumer_verbatim(broker):
    """Seed 000: the group consumer as written (its single poll() returns at
    once), then the same consumer polling until it gets records."""
    r = run_snippet(SEED_GROUP_CONSUMER, broker)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    assert b"Traceback" not in r.stderr

    done = []
    polling = threading.Thread(target=lambda: done.append(run_snippet(SEED_GROUP_CONSUMER_POLLING, broker, 60)))
    polling.start()
    # The group starts at 'latest': keep producing until the member reads.
    while polling.is_alive():
        produce_records(broker, "test_topic", [(None, b"seed")])
        polling.join(1)
    r = done[0]
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    assert b"b'seed'" in r.stdout, r.stdout
    assert "test_group" in group_ids(broker)
    a = admin(broker)
    offs = a.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("test_group")], request_timeout=15)["test_group"].result()
    assert [tp.offset for tp in offs.topic_partitions if tp.topic == "test_topic"][0] > 0


SEED_ITERATING_GROUP_CONSUMER = """\
from kafka import KafkaConsumer
consumer = KafkaConsumer('my_topic', bootstrap_servers='localhost:9092', group_id='my_group')
for message in consumer:
    print(message.value)
"""


def test_seed_iterating_group_consumer(broker):
    """Seed 003's consumer (its producer line sends a str, which kafka-python
    rejects on the client, so records come from a bytes producer here). The
    group starts at 'latest': produce until the consumer prints a record."""
    src = SEED_ITERATING_GROUP_CONSUMER.replace("localhost:9092", broker.bootstrap)
    proc = subprocess.Popen([sys.executable, "-u", "-c", src], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    t = threading.Thread(target=lambda: lines.extend(raw.decode().strip() for raw in proc.stdout), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 60
        while not lines and time.monotonic() < deadline and proc.poll() is None:
            produce_records(broker, "my_topic", [(None, b"Hello, Kafka!")])
            time.sleep(1)
    finally:
        proc.kill()
        proc.wait()
        t.join(5)
    assert lines and all(ln == "b'Hello, Kafka!'" for ln in lines), (lines, proc.stderr.read()[-3000:])
    assert "my_group" in group_ids(broker)


def test_three_members_share_then_survive_a_kill(broker_factory):
    """Three confluent-kafka members split 6 partitions without overlap; one
    is SIGKILLed and the other two take its partitions within the session
    timeout; every record is consumed, duplicates only from the window the
    dead member had not committed."""
    broker = broker_factory(overrides=FAST)
    topic, group = unique("share"), unique("g")
    create_topic(broker, topic, partitions=6)
    first = [(None, f"a{i}".encode(), i % 6) for i in range(1200)]
    produce_records(broker, topic, first)
    members = [Member(broker, topic, group, "--session-ms", "6000") for _ in range(3)]
    try:
        def split_evenly():
            held = [m.assigned() for m in members]
            return all(len(h) == 2 for h in held) and set().union(*held) == set(range(6))
        wait_for(split_evenly, 60, "three members holding two partitions each")
        held = [m.assigned() for m in members]
        for i in range(3):
            for j in range(i + 1, 3):
                assert not held[i] & held[j], f"members {i} and {j} overlap: {held}"
        wait_for(lambda: sum(len(m.consumed()) for m in members) >= 1200, 60, "first 1200 records")

        victim, survivors = members[0], members[1:]
        lost = victim.assigned()
        killed_at = time.monotonic()
        victim.kill()
        wait_for(lambda: lost <= survivors[0].assigned() | survivors[1].assigned(), 30,
                 f"survivors taking partitions {lost}")
        took = time.monotonic() - killed_at
        # Session timeout (6 s) plus one rebalance.
        assert took < 6 + 8, f"partitions moved {took:.1f}s after the kill"
        assert survivors[0].assigned() | survivors[1].assigned() == set(range(6))

        second = [(None, f"b{i}".encode(), i % 6) for i in range(1200)]
        produce_records(broker, topic, second)
        wait_for(lambda: {(p, o) for m in members for p, o in m.consumed()} >=
                 {(p, o) for p in range(6) for o in range(400)}, 60, "all 2400 records")
    finally:
        for m in members:
            m.stop()

    seen = Counter(r for m in members for r in m.consumed())
    assert set(seen) == {(p, o) for p in range(6) for o in range(400)}, "records lost"
    # A duplicate is a record the victim consumed past its last commit.
    victim_commits = victim.committed()
    for (p, o), n in seen.items():
        if n > 1:
            assert n == 2 and (p, o) in set(victim.consumed()) and o >= victim_commits.get(p, 0), \
                f"record {p}/{o} consumed {n} times outside the uncommitted window"
    broker.assert_alive()


def test_cooperative_sticky_moves_only_what_it_must(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic, group = unique("coop"), unique("g")
    create_topic(broker, topic, partitions=6)
    produce_records(broker, topic, [(None, b"x", i % 6) for i in range(60)])
    a = Member(broker, topic, group, "--strategy", "cooperative-sticky")
    b = None
    try:
        wait_for(lambda: a.assigned() == set(range(6)), 60, "first member holding all partitions")
        b = Member(broker, topic, group, "--strategy", "cooperative-sticky")
        wait_for(lambda: len(a.assigned()) == 3 and len(b.assigned()) == 3, 60, "a 3/3 split")
        assert not a.assigned() & b.assigned()
        # Incremental: the first member only gave up the three that moved,
        # never its whole assignment.
        revoked = [set(map(int, e.split(","))) for e in a.events("REVOKE") if e]
        assert revoked and all(len(r) <= 3 for r in revoked), revoked
        assert revoked[-1] == b.assigned()
    finally:
        a.stop()
        if b:
            b.stop()
    broker.assert_alive()


def test_static_member_restart_keeps_assignment_without_rebalance(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic, group = unique("static"), unique("g")
    create_topic(broker, topic, partitions=4)
    produce_records(broker, topic, [(None, b"x", i % 4) for i in range(40)])
    a = Member(broker, topic, group, "--instance", "inst-a", "--session-ms", "30000")
    b = Member(broker, topic, group, "--instance", "inst-b", "--session-ms", "30000")
    try:
        wait_for(lambda: len(a.assigned()) == 2 and len(b.assigned()) == 2, 60, "a 2/2 split")
        held_a, b_events = a.assigned(), len(b.lines)
        # A static member's close does not leave the group; it comes back
        # under the same instance id well within its session.
        a.stop()
        a2 = Member(broker, topic, group, "--instance", "inst-a", "--session-ms", "30000")
        try:
            wait_for(lambda: a2.assigned(), 30, "the restarted static member's assignment")
            assert a2.assigned() == held_a
            time.sleep(2)
            later = [ln for ln in b.lines[b_events:] if ln.startswith(("ASSIGN", "REVOKE"))]
            assert not later, f"the other member was rebalanced: {later}"
        finally:
            a2.stop()
    finally:
        b.stop()
    broker.assert_alive()


def commit_sync(c, topic, offsets):
    c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)


def test_committed_offsets_survive_restart_and_go_with_the_group(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic, group = unique("commit"), unique("g")
    create_topic(broker, topic, partitions=2)
    produce_records(broker, topic, [(None, f"v{i}".encode(), i % 2) for i in range(20)])

    c = consumer(broker, **{"group.id": group})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < 20 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    assert got == 20
    commit_sync(c, topic, {0: 4, 1: 7})
    c.close()

    broker.restart()
    # Every committed offset is back after the coordinator replays its partition.
    c = consumer(broker, **{"group.id": group})
    committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=20)
    assert [tp.offset for tp in committed] == [4, 7]
    # Lag from the broker's answers: log end offset minus committed offset.
    lag = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] - tp.offset
           for p, tp in enumerate(committed)]
    assert lag == [6, 3]
    c.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 9 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append((m.partition(), m.offset()))
    c.close()
    assert sorted(seen) == [(0, o) for o in range(4, 10)] + [(1, o) for o in range(7, 10)]

    # Delete the (now empty) group: a new member starts from auto.offset.reset.
    a = admin(broker)
    a.delete_consumer_groups([group], request_timeout=15)[group].result()
    assert group not in group_ids(broker)
    c = consumer(broker, **{"group.id": group})
    committed = c.committed([TopicPartition(topic, 0)], timeout=20)
    assert committed[0].offset < 0, "offsets outlived their group"
    c.subscribe([topic])
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            first = m.offset()
    c.close()
    assert first == 0
    broker.assert_alive()


def _read_n(c, n, timeout=30):
    """(topic, partition, offset) of the first `n` records `c` polls."""
    seen = []
    deadline = time.monotonic() + timeout
    while len(seen) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append((m.topic(), m.partition(), m.offset()))
    return seen


def test_offsets_of_a_deleted_topic_go_with_it(broker_factory):
    """As in Kafka, deleting a topic drops the offsets groups committed for
    it: a topic created again under its name is read from
    auto.offset.reset, not from the old topic's offsets (which would skip
    its first records). A group left with no offsets goes too; offsets of
    other topics stay. The removal survives a restart."""
    broker = broker_factory(overrides=FAST)
    topic, other, group, only = unique("gone"), unique("kept"), unique("g"), unique("only")
    create_topic(broker, topic, partitions=1)
    create_topic(broker, other, partitions=1)
    produce_records(broker, topic, [(None, f"v{i}".encode(), 0) for i in range(10)])
    produce_records(broker, other, [(None, f"o{i}".encode(), 0) for i in range(10)])
    c = consumer(broker, **{"group.id": group})
    c.subscribe([topic, other])
    assert len(_read_n(c, 20)) == 20
    c.commit(offsets=[TopicPartition(topic, 0, 10), TopicPartition(other, 0, 7)], asynchronous=False)
    c.close()
    c = consumer(broker, **{"group.id": only})
    c.subscribe([topic])
    assert len(_read_n(c, 10)) == 10
    commit_sync(c, topic, {0: 10})
    c.close()
    assert {group, only} <= group_ids(broker)
    # Restarted, the coordinator loads a group's offsets when the group is
    # first asked for: the deletion must load them to drop them.
    broker.restart()

    a = admin(broker)
    a.delete_topics([topic], operation_timeout=30)[topic].result(30)
    create_topic(broker, topic, partitions=1)
    produce_records(broker, topic, [(None, f"new{i}".encode(), 0) for i in range(20)])
    broker.restart()

    c = consumer(broker, **{"group.id": group})
    committed = c.committed([TopicPartition(topic, 0), TopicPartition(other, 0)], timeout=20)
    assert [tp.offset for tp in committed][1] == 7, "the other topic's offset stays"
    assert committed[0].offset < 0, f"the deleted topic's offset outlived it: {committed[0].offset}"
    c.subscribe([topic])
    seen = _read_n(c, 20)
    c.close()
    assert [o for _t, _p, o in seen] == list(range(20)), "the new topic is read from its start"
    assert only not in group_ids(broker), "a group whose only offsets were of the deleted topic goes"
    broker.assert_alive()


def test_deleting_a_group_with_members_is_refused(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic, group = unique("busy"), unique("g")
    create_topic(broker, topic, partitions=1)
    m = Member(broker, topic, group)
    try:
        wait_for(lambda: m.assigned() == {0}, 60, "assignment")
        a = admin(broker)
        with pytest.raises(Exception) as e:
            a.delete_consumer_groups([group], request_timeout=15)[group].result()
        assert "NON_EMPTY_GROUP" in str(e.value)
        desc = a.describe_consumer_groups([group], request_timeout=15)[group].result()
        assert str(desc.state).endswith("STABLE") and len(desc.members) == 1
        assert desc.members[0].host == "/127.0.0.1"
        assert [tp.partition for tp in desc.members[0].assignment.topic_partitions] == [0]
    finally:
        m.stop()
    broker.assert_alive()


KAFKA_PYTHON_GROUP = """\
import sys
from kafka import KafkaConsumer
c = KafkaConsumer(sys.argv[1], group_id=sys.argv[2], bootstrap_servers=[sys.argv[3]],
                  auto_offset_reset='earliest', consumer_timeout_ms=8000)
n = 0
for m in c:
    n += 1
    if n == int(sys.argv[4]):
        break
c.commit()
c.close()
print(n)
"""


def test_kafka_python_and_confluent_groups_each_see_everything(broker_factory):
    broker = broker_factory(overrides=FAST)
    topic = unique("both")
    create_topic(broker, topic, partitions=3)
    records = [(None, f"r{i}".encode(), i % 3) for i in range(300)]
    produce_records(broker, topic, records)
    kp = subprocess.Popen([sys.executable, "-c", KAFKA_PYTHON_GROUP, topic, unique("kp"), broker.bootstrap, "300"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cg = Member(broker, topic, unique("ck"))
    try:
        wait_for(lambda: len(set(cg.consumed())) >= 300, 60, "confluent group consuming 300")
        out, err = kp.communicate(timeout=90)
        assert kp.returncode == 0, err.decode(errors="replace")[-3000:]
        assert out.decode().strip() == "300"
    finally:
        cg.stop()
        if kp.poll() is None:
            kp.kill()
    assert set(cg.consumed()) == {(p, o) for p in range(3) for o in range(100)}
    broker.assert_alive()


def test_the_offsets_topic_cannot_be_deleted(broker):
    """`__consumer_offsets` holds every group and committed offset: deleting
    it is refused (the coordinators' state would outlive it), and the
    offsets stay."""
    topic, group = unique("keep"), unique("g")
    create_topic(broker, topic, partitions=1)
    c = consumer(broker, **{"group.id": group})
    commit_sync(c, topic, {0: 3})
    c.close()
    a = admin(broker)
    with pytest.raises(Exception) as e:
        a.delete_topics(["__consumer_offsets"], operation_timeout=30)["__consumer_offsets"].result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, e.value
    c = consumer(broker, **{"group.id": group})
    assert c.committed([TopicPartition(topic, 0)], timeout=20)[0].offset == 3
    c.close()
