"""Client-side helpers (confluent-kafka / librdkafka) shared by the e2e tests."""

import gc
import re
import threading
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw


def unique(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def quiet_conf():
    # librdkafka logs connection errors to stderr; keep them but at warning level.
    return {"log_level": 4}


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, **quiet_conf()})


def producer(broker, **conf):
    c = {"bootstrap.servers": broker.bootstrap, "acks": "all", **quiet_conf()}
    c.update(conf)
    return Producer(c)


def consumer(broker, **conf):
    c = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": unique("g"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        **quiet_conf(),
    }
    c.update(conf)
    return Consumer(c)


def err_code(exc):
    """KafkaError code from a KafkaException (or KafkaError)."""
    if isinstance(exc, KafkaError):
        return exc.code()
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    raise AssertionError(f"expected a KafkaException, got {exc!r}")


def list_topics(broker, timeout=10):
    """All-topic metadata (never triggers auto-creation)."""
    return admin(broker).list_topics(timeout=timeout)


def settled(read, interval=0.5):
    """``read()``'s value once two reads ``interval`` seconds apart agree
    (e.g. watermarks once retention has stopped moving the log start)."""
    last = read()
    while True:
        time.sleep(interval)
        now = read()
        if now == last:
            return now
        last = now


def eventually(read, timeout=20, interval=0.2):
    """``read()``'s value once it returns without raising (an assertion
    or a client error); the last failure if ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


def wait_topic(broker, topic, partitions, timeout=15):
    """Wait until metadata shows ``topic`` with ``partitions`` partitions that
    all have a leader. Returns the TopicMetadata."""
    a = admin(broker)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        md = a.list_topics(timeout=10)
        t = md.topics.get(topic)
        last = t
        if (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader >= 0 and p.error is None for p in t.partitions.values())):
            return t
        if time.monotonic() > deadline:
            raise AssertionError(
                f"topic {topic} not ready with {partitions} partitions after {timeout}s; "
                f"last metadata: {describe_topic_md(last)}")
        time.sleep(0.2)


def describe_topic_md(t):
    if t is None:
        return "<absent>"
    parts = {p.id: (p.leader, str(p.error) if p.error else None)
             for p in t.partitions.values()}
    return f"error={t.error} partitions={parts}"


def create_topic(broker, topic, partitions=1, config=None, timeout=30):
    a = admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions,
                                   replication_factor=1, config=config or {})],
                         operation_timeout=timeout, request_timeout=timeout)
    fs[topic].result(timeout)
    return wait_topic(broker, topic, partitions)


def partition_leaders(broker, topic):
    t = list_topics(broker).topics[topic]
    return {p.id: p.leader for p in t.partitions.values()}


def create_topic_on_both_shards(broker, topic, partitions, **kw):
    """Creates `topic` and checks that its partitions' leaders are spread
    over both shards (node ids 0 and 1), as the crash tests need."""
    create_topic(broker, topic, partitions, **kw)
    leaders = partition_leaders(broker, topic)
    assert set(leaders.values()) == {0, 1}, f"partitions not spread over both shards: {leaders}"


def produce_records(broker, topic, records, timeout=120, **conf):
    """Produce [(key, value, partition_or_None), ...]; return list of
    (key, value, partition, offset) in input order. Fails on any error."""
    p = producer(broker, **conf)
    results = [None] * len(records)
    errors = []

    def make_cb(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = (msg.key(), msg.value(), msg.partition(), msg.offset())
        return cb

    for i, rec in enumerate(records):
        key, value = rec[0], rec[1]
        part = rec[2] if len(rec) > 2 else None
        kwargs = {"key": key, "value": value, "on_delivery": make_cb(i)}
        if part is not None:
            kwargs["partition"] = part
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after {timeout}s"
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:5]}"
    assert all(r is not None for r in results)
    return results


def consume_all(broker, topic, partitions, timeout=60, start=OFFSET_BEGINNING,
                expect=None, **conf):
    """Assign all ``partitions`` from ``start`` and read until every partition
    reports EOF (and, if given, at least ``expect`` messages were read).
    Returns list of (key, value, partition, offset, timestamp)."""
    c = consumer(broker, **conf)
    try:
        parts = list(partitions) if not isinstance(partitions, int) else list(range(partitions))
        c.assign([TopicPartition(topic, p, start) for p in parts])
        out = []
        eof = set()
        deadline = time.monotonic() + timeout
        while True:
            if len(eof) == len(parts) and (expect is None or len(out) >= expect):
                return out
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"consume of {topic} timed out after {timeout}s: got {len(out)} "
                    f"messages (expected {expect}), EOF on partitions {sorted(eof)} of {parts}")
            msgs = c.consume(num_messages=10000, timeout=0.5)
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                eof.discard(m.partition())
                out.append((m.key(), m.value(), m.partition(), m.offset(), m.timestamp()))
    finally:
        c.close()


def assert_healthy(broker, topic="health-check"):
    """Broker process alive, answers ApiVersions, and a fresh client can
    produce and consume one record."""
    broker.assert_alive()
    for port in broker.ports:
        with kw.WireConn("127.0.0.1", port) as c:
            err, apis = kw.parse_api_versions_v0_response(
                c.request(kw.API_API_VERSIONS, 0, b""))
            assert err == 0, f"ApiVersions v0 on port {port} returned error {err}"
    value = unique("hc").encode()
    (_, _, part, off), = produce_records(broker, topic, [(None, value)], timeout=30)
    got = consume_all(broker, topic, [part], start=off, timeout=30, expect=1)
    assert got and got[0][1] == value, f"health-check record not read back: {got[:3]}"
    broker.assert_alive()


class AckRecorder(threading.Thread):
    """Produce continuously with acks=all; record every acknowledged record.

    Values are ``f"{tag}-{i}"`` (unique if tags are), padded with dots to
    ``pad`` bytes (see ``value``), keys ``str(i % 64)``.
    ``acked`` maps (partition, offset) -> value; an offset acknowledged twice
    within this producer is kept in ``double_acks``; ``error_codes`` counts
    failed deliveries by KafkaError code. ``rate`` caps records per second;
    ``conf`` overrides producer settings.
    """

    def __init__(self, broker, topic, tag, rate=None, pad=0, **conf):
        super().__init__(daemon=True)
        self.rate = rate  # records per second at most (None: as fast as possible)
        self.pad = pad
        c = {
            "linger.ms": 2,
            "retries": 0,  # no silent re-sends of records after the crash
            "message.timeout.ms": 60000,
            "socket.timeout.ms": 10000,
            "reconnect.backoff.max.ms": 500,
            "queue.buffering.max.messages": 20000,
        }
        c.update(conf)
        self.producer = producer(broker, acks="all", **c)
        self.topic = topic
        self.tag = tag
        self.acked = {}
        self.double_acks = []
        self.errors = 0
        self.error_codes = {}
        self.stop_flag = threading.Event()
        self.exc = None
        self.sent = 0

    def _cb(self, err, msg):
        if err is None:
            po = (msg.partition(), msg.offset())
            if po in self.acked:
                self.double_acks.append((po, self.acked[po], msg.value()))
            self.acked[po] = msg.value()
        else:
            self.errors += 1
            self.error_codes[err.code()] = self.error_codes.get(err.code(), 0) + 1

    def run(self):
        try:
            i = 0
            t0 = time.monotonic()
            while not self.stop_flag.is_set():
                if self.rate is not None and i >= self.rate * (time.monotonic() - t0):
                    self.producer.poll(0.005)
                    continue
                value = self.value(i)
                try:
                    self.producer.produce(self.topic, key=str(i % 64).encode(), value=value,
                                          on_delivery=self._cb)
                    i += 1
                    self.sent = i
                except BufferError:
                    self.producer.poll(0.01)
                    continue
                self.producer.poll(0)
                if i % 200 == 0:
                    time.sleep(0.001)  # let the main thread run
        except Exception as e:  # noqa: BLE001
            self.exc = e

    def value(self, i):
        """The value of the `i`-th record sent."""
        v = f"{self.tag}-{i}".encode()
        return v + b"." * (self.pad - len(v))

    def finish(self):
        """Stop producing; drain delivery reports that already arrived and
        fail everything still in flight."""
        self.stop_flag.set()
        self.join(10)
        assert not self.is_alive(), "producer thread did not stop"
        self.producer.poll(0.5)
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self.producer.flush(5)
        # Destroy the client now: a purged request that was never sent stays
        # in librdkafka's output queue and would otherwise be sent to the
        # restarted broker (records the test saw fail appearing later).
        self.producer = None
        gc.collect()
        if self.exc:
            raise self.exc


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def broker_log_since_last_start(broker):
    """The broker's log (ANSI colours stripped) since its most recent start."""
    text = _ANSI.sub("", broker.log_path.read_bytes().decode("utf-8", "replace"))
    marker = text.rfind("===== [harness] start #")
    return text[marker:] if marker >= 0 else text


def assert_acked_readable(acked, stored, context, detail=""):
    """Every acknowledged (partition, offset) -> value is stored identically."""
    missing = sorted(po for po in acked if po not in stored)
    wrong = sorted((po, acked[po], stored[po]) for po in acked if po in stored and stored[po] != acked[po])
    assert not missing and not wrong, (
        f"{context}: {len(missing)} acknowledged records missing (first: "
        f"{[(po, acked[po]) for po in missing[:5]]}), {len(wrong)} with different bytes "
        f"(first (offset, acked, stored): {wrong[:5]}); acked={len(acked)} stored={len(stored)} {detail}")


def leader_conn(broker, topic):
    """A raw wire connection to the shard leading partition 0 of `topic`."""
    return kw.WireConn("127.0.0.1", broker.shard_port(partition_leaders(broker, topic)[0]))


def produce_raw(c, topic, batch):
    """Produce v3 of `batch` to partition 0 with acks=all over `c`:
    (error, base offset, ...)."""
    pr = kw.parse_produce_v3_response(c.request(kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, batch, acks=-1)))
    return pr[(topic, 0)]


def idem_batch(pid, epoch, seq, n=3, tag="r"):
    """`n` records of idempotent producer `pid` from sequence `seq`."""
    return kw.build_record_batch([(None, f"{tag}{seq + i}".encode()) for i in range(n)],
                                 producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def delete_records_v0(conn, topic, partition, offset):
    """DeleteRecords v0 for one partition over a raw connection: (error
    code, low watermark)."""
    body = kw.i32(1) + kw.string(topic) + kw.i32(1) + kw.i32(partition) + kw.i64(offset) + kw.i32(10000)
    r = kw.Reader(conn.request(21, 0, body))
    r.i32()  # throttle
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    assert r.i32() == partition
    low = r.i64()
    return r.i16(), low


def rss(broker):
    """The broker process's resident memory, in bytes."""
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def commit_one(broker, group, topic):
    """Commits offset 1 of `topic`-0 for `group` (this creates
    __consumer_offsets)."""
    c = consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        c.close()


def committed_offset(broker, group, topic):
    """The offset `group` has committed for `topic`-0."""
    c = consumer(broker, **{"group.id": group})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=30)
        return tp.offset
    finally:
        c.close()
