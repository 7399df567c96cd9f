"""Idempotent producers (issue 5): a retried batch is answered with its
original offset and stored once, sequence gaps and stale epochs get Kafka's
errors, and the state survives a restart."""

import os
import signal
import time

from confluent_kafka import Producer, TopicPartition

import helpers as h
import kafka_wire as kw

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


def test_sequence_rules_on_the_wire(broker):
    topic = h.unique("seq")
    h.create_topic(broker, topic, partitions=1)
    pid = 4242
    with h.leader_conn(broker, topic) as c:
        assert h.produce_raw(c, topic, h.idem_batch(pid, 0, 0))[:2] == (0, 0)
        assert h.produce_raw(c, topic, h.idem_batch(pid, 0, 3))[:2] == (0, 3)
        # A resent batch gets its original offset and is not stored again.
        assert h.produce_raw(c, topic, h.idem_batch(pid, 0, 0))[:2] == (0, 0)
        assert h.produce_raw(c, topic, h.idem_batch(pid, 0, 3))[:2] == (0, 3)
        # A gap is refused.
        assert h.produce_raw(c, topic, h.idem_batch(pid, 0, 9))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        # A new epoch starts at 0; the old epoch is then fenced.
        assert h.produce_raw(c, topic, h.idem_batch(pid, 1, 5))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert h.produce_raw(c, topic, h.idem_batch(pid, 1, 0))[:2] == (0, 6)
        assert h.produce_raw(c, topic, h.idem_batch(pid, 0, 6))[0] == INVALID_PRODUCER_EPOCH
        # Another producer is independent; a non-idempotent batch is never checked.
        assert h.produce_raw(c, topic, h.idem_batch(77, 0, 100))[:2] == (0, 9)
        assert h.produce_raw(c, topic, kw.build_record_batch([(None, b"plain")]))[:2] == (0, 12)
    got = h.consume_all(broker, topic, [0], expect=13)
    assert len(got) == 13 and [o for *_x, o, _t in got] == list(range(13))


def test_dedup_state_survives_restart(broker):
    topic = h.unique("seqr")
    h.create_topic(broker, topic, partitions=1)
    with h.leader_conn(broker, topic) as c:
        for seq in (0, 3, 6):
            assert h.produce_raw(c, topic, h.idem_batch(9, 0, seq))[0] == 0
    for how in ("kill", "stop"):
        if how == "kill":
            broker.kill9()
            broker.start()
        else:
            broker.restart()
        with h.leader_conn(broker, topic) as c:
            # The retry of the last batch after a restart: still deduplicated.
            assert h.produce_raw(c, topic, h.idem_batch(9, 0, 6))[:2] == (0, 6)
            assert h.produce_raw(c, topic, h.idem_batch(9, 0, 2))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    with h.leader_conn(broker, topic) as c:
        assert h.produce_raw(c, topic, h.idem_batch(9, 0, 9))[:2] == (0, 9)
    assert len(h.consume_all(broker, topic, [0], expect=12)) == 12


def test_confluent_idempotent_producer_retry_stores_each_record_once(broker):
    """enable.idempotence=true with a short socket.timeout.ms (librdkafka's client-side
    request timeout); the broker is
    paused (SIGSTOP) while requests are in its socket, so the client times
    out and resends batches the broker then also reads from before: exactly
    one copy of each record must be stored."""
    topic = h.unique("idem")
    h.create_topic(broker, topic, partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "acks": "all",
                  "socket.timeout.ms": 1500, "message.timeout.ms": 120000, "linger.ms": 5,
                  "retry.backoff.ms": 100, **h.quiet_conf()})
    errors = []
    n = 3000
    sent = [0]

    def send_one():
        i = sent[0]
        p.produce(topic, value=f"m{i}".encode(), key=f"k{i % 50}".encode(),
                  on_delivery=lambda err, msg: err and errors.append(err))
        sent[0] += 1
        p.poll(0)

    # Warm up: producer id acquired, connections open.
    while sent[0] < 200:
        send_one()
    assert p.flush(30) == 0
    for _pause in range(2):
        for _ in range(300):
            send_one()
            time.sleep(0.001)
        # Stop the broker with requests on their way and keep producing into
        # its sockets: the client times them out and sends them again.
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                if sent[0] < n - 200:
                    send_one()
                time.sleep(0.005)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
    while sent[0] < n:
        send_one()
    assert p.flush(120) == 0
    assert not errors, errors[:5]
    got = h.consume_all(broker, topic, range(2), expect=n)
    values = [v for _k, v, *_ in got]
    assert len(values) == n and sorted(values) == sorted(f"m{i}".encode() for i in range(n)), \
        f"{len(values)} stored for {n} produced ({len(values) - len(set(values))} duplicates)"
    # The retry path was really taken: the broker answered a resent batch.
    assert "duplicate batch from an idempotent producer" in h.broker_log_since_last_start(broker)


def test_producer_state_survives_retention_past_a_snapshot_that_could_not_be_written(broker_factory):
    """The producer snapshot is written at each roll; a start replays
    producers from it only if it ends inside the log. When that write fails
    (here: `producer.snapshot.tmp` is a directory), retention must not delete
    the segments holding a producer's last batches until a snapshot as of
    the new start is on disk: else a kill -9 forgets the producer, and its
    retried batch is stored twice."""
    broker = broker_factory(overrides={"log.retention.check.interval.ms": "100"})
    topic = h.unique("snapret")
    segment = 65536
    h.create_topic(broker, topic, 1, config={"segment.bytes": str(segment), "retention.bytes": str(3 * segment)})
    with h.leader_conn(broker, topic) as c:
        for seq in (0, 3, 6):
            assert h.produce_raw(c, topic, h.idem_batch(9, 0, seq))[:2] == (0, seq)
    pdir = broker.data_dir / f"{topic}-0"
    blocker = pdir / "producer.snapshot.tmp"
    blocker.mkdir()
    # ~600 KiB of plain records: about ten 64 KiB segments, whose rolls
    # cannot write their snapshots.
    acked = h.produce_records(broker, topic, [(None, f"{i:06d}".encode() * 170, 0) for i in range(600)],
                              **{"linger.ms": 0, "batch.num.messages": 20})
    assert len(acked) == 600
    time.sleep(1)  # ten retention passes
    segments = sorted(pdir.glob("*.log"))
    assert segments[0].name == f"{0:020d}.log", \
        f"retention deleted the segment with the producer's batches without a snapshot: {segments[0].name}"
    assert "cannot write the sealed segment's index files or the producer snapshot" in \
        h.broker_log_since_last_start(broker)
    blocker.rmdir()
    deadline = time.monotonic() + 15
    while sorted(pdir.glob("*.log"))[0].name == f"{0:020d}.log":
        assert time.monotonic() < deadline, "retention resumes once the snapshot can be written"
        time.sleep(0.1)
    broker.kill9()
    broker.start()
    with h.leader_conn(broker, topic) as c:
        # The retry of the producer's last batch: still deduplicated.
        assert h.produce_raw(c, topic, h.idem_batch(9, 0, 6))[:2] == (0, 6)
        assert h.produce_raw(c, topic, h.idem_batch(9, 0, 9))[:2] == (0, 609)
