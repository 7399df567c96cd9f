"""Admin APIs (CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs),
ListOffsets, auto topic creation, out-of-range fetch, wrong-shard routing."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic, ResourceType

import helpers as h
import kafka_wire as kw

HOST = "127.0.0.1"


def _create(broker, topic, partitions=1, config=None, validate_only=False):
    a = h.admin(broker)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                   config=config or {})],
                         validate_only=validate_only, operation_timeout=30,
                         request_timeout=30)
    fut = fs[topic]
    fut.admin = a  # the AdminClient must outlive the future it resolves
    return fut


def _create_error(broker, topic, partitions=1, **kw_):
    fut = _create(broker, topic, partitions, **kw_)
    with pytest.raises(KafkaException) as ei:
        fut.result(30)
    return h.err_code(ei.value)


def _wait_absent(broker, topic, timeout=15):
    deadline = time.monotonic() + timeout
    while topic in h.list_topics(broker).topics:
        assert time.monotonic() < deadline, f"topic {topic} still listed after {timeout}s"
        time.sleep(0.2)


def _describe(broker, restype, name):
    res = ConfigResource(restype, name)
    a = h.admin(broker)
    fs = a.describe_configs([res], request_timeout=30)
    (fut,) = fs.values()
    return fut.result(30)


# ---------------------------------------------------------------------------
# CreateTopics
# ---------------------------------------------------------------------------


def test_create_topic_validate_only_does_not_create(broker):
    topic = h.unique("vo")
    assert _create(broker, topic, 3, validate_only=True).result(30) is None
    time.sleep(0.5)
    assert topic not in h.list_topics(broker).topics
    # and then really create it
    _create(broker, topic, 3).result(30)
    t = h.wait_topic(broker, topic, 3)
    assert len(t.partitions) == 3


def test_create_topic_with_configs(broker):
    topic = h.unique("cfg")
    _create(broker, topic, 2, config={"retention.ms": "3600000",
                                      "cleanup.policy": "delete"}).result(30)
    h.wait_topic(broker, topic, 2)
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    assert cfg["retention.ms"].value == "3600000", cfg.get("retention.ms")
    assert cfg["cleanup.policy"].value == "delete"


@pytest.mark.parametrize("name", ["bad/name", pytest.param("a" * 250, id="250-chars"), ".",
                                  "..", "has space", pytest.param("b\u00e4d", id="non-ascii")])
def test_create_topic_invalid_name(broker, name):
    assert _create_error(broker, name, 1) == KafkaError.TOPIC_EXCEPTION  # 17
    assert name not in h.list_topics(broker).topics


def test_create_topic_max_length_name_ok(broker):
    name = "a" * 249
    _create(broker, name, 1).result(30)
    h.wait_topic(broker, name, 1)


def test_create_duplicate_topic(broker):
    topic = h.unique("dup")
    _create(broker, topic, 2).result(30)
    h.wait_topic(broker, topic, 2)
    assert _create_error(broker, topic, 2) == KafkaError.TOPIC_ALREADY_EXISTS  # 36
    assert _create_error(broker, topic, 5) == KafkaError.TOPIC_ALREADY_EXISTS
    assert len(h.list_topics(broker).topics[topic].partitions) == 2


def test_create_topic_too_many_partitions(broker):
    """Partition counts are bounded (100,000 per topic) so one request cannot
    make the controller allocate and open without limit. librdkafka refuses
    such counts itself, so this goes through kafka-python."""
    from kafka.admin import KafkaAdminClient, NewPartitions as KPNewPartitions, NewTopic as KPNewTopic
    topic = h.unique("many")
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        r = a.create_topics([KPNewTopic(topic, 2_000_000_000, 1)], raise_errors=False)
        assert [t["error_code"] for t in r["topics"]] == [37], r  # INVALID_PARTITIONS
        _create(broker, topic, 1).result(30)
        r = a.create_partitions({topic: KPNewPartitions(2_000_000_000)}, raise_errors=False)
        assert [t.error_code for t in r.results] == [37], r
    finally:
        a.close()
    assert len(h.list_topics(broker).topics[topic].partitions) == 1
    h.assert_healthy(broker)


def test_create_topic_whose_log_cannot_be_opened_is_not_created(broker):
    """A partition directory that cannot be created (here a plain file sits
    where it belongs) fails the create with KAFKA_STORAGE_ERROR, and the topic
    is not left in metadata with a leader that cannot serve it."""
    topic = h.unique("blocked")
    (broker.data_dir / f"{topic}-0").write_bytes(b"in the way")
    assert _create_error(broker, topic, 1) == KafkaError.KAFKA_STORAGE_ERROR  # 56
    assert topic not in h.list_topics(broker).topics
    (broker.data_dir / f"{topic}-0").unlink()
    _create(broker, topic, 1).result(30)
    h.wait_topic(broker, topic, 1)
    broker.restart()
    h.wait_topic(broker, topic, 1)


# ---------------------------------------------------------------------------
# DeleteTopics
# ---------------------------------------------------------------------------


def test_delete_topic(broker):
    topic = h.unique("del")
    h.create_topic(broker, topic, 2)
    h.produce_records(broker, topic, [(None, b"old", p) for p in (0, 1)])
    a = h.admin(broker)
    a.delete_topics([topic], operation_timeout=30, request_timeout=30)[topic].result(30)
    _wait_absent(broker, topic)

    with pytest.raises(KafkaException) as ei:
        a.delete_topics([topic], operation_timeout=30, request_timeout=30)[topic].result(30)
    assert h.err_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART  # 3

    # re-creating the name gives an empty topic (old data is gone)
    h.create_topic(broker, topic, 1)
    c = h.consumer(broker)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                       cached=False) == (0, 0)
    finally:
        c.close()
    (_, _, p, off), = h.produce_records(broker, topic, [(None, b"new")])
    assert (p, off) == (0, 0)


def test_deleted_topic_stays_deleted_after_restart(broker):
    topic = h.unique("delr")
    h.create_topic(broker, topic, 2)
    h.produce_records(broker, topic, [(None, b"x", 0)])
    a = h.admin(broker)
    a.delete_topics([topic], operation_timeout=30)[topic].result(30)
    _wait_absent(broker, topic)
    broker.restart()
    assert topic not in h.list_topics(broker).topics


# ---------------------------------------------------------------------------
# CreatePartitions
# ---------------------------------------------------------------------------


def test_create_partitions_grow_and_produce(broker):
    topic = h.unique("grow")
    h.create_topic(broker, topic, 2)
    before = h.produce_records(broker, topic, [(None, f"p{p}".encode(), p) for p in (0, 1)])
    a = h.admin(broker)
    a.create_partitions([NewPartitions(topic, 4)], operation_timeout=30,
                        request_timeout=30)[topic].result(30)
    t = h.wait_topic(broker, topic, 4)
    assert {p.leader for p in t.partitions.values()} <= {0, 1}

    after = h.produce_records(broker, topic, [(None, f"p{p}".encode(), p) for p in range(4)])
    assert [(p, o) for _k, _v, p, o in after] == [(0, 1), (1, 1), (2, 0), (3, 0)]
    got = h.consume_all(broker, topic, range(4), expect=6)
    assert sorted((v, p, o) for _k, v, p, o, _ts in got) == sorted(
        (v, p, o) for _k, v, p, o in before + after)

    # shrinking is not allowed
    with pytest.raises(KafkaException) as ei:
        a.create_partitions([NewPartitions(topic, 3)], operation_timeout=30,
                            request_timeout=30)[topic].result(30)
    assert h.err_code(ei.value) == KafkaError.INVALID_PARTITIONS  # 37
    assert len(h.list_topics(broker).topics[topic].partitions) == 4

    # survives a restart
    broker.restart()
    h.wait_topic(broker, topic, 4)


# ---------------------------------------------------------------------------
# DescribeConfigs
# ---------------------------------------------------------------------------


def test_describe_configs_topic_and_broker(broker):
    topic = h.unique("dc")
    h.create_topic(broker, topic, 1)
    cfg = _describe(broker, ResourceType.TOPIC, topic)
    for key in ("retention.ms", "cleanup.policy"):
        assert key in cfg, f"topic config {key} missing; got {sorted(cfg)}"
    assert cfg["cleanup.policy"].value == "delete"
    int(cfg["retention.ms"].value)

    for node in ("0", "1"):
        bcfg = _describe(broker, ResourceType.BROKER, node)
        assert "num.partitions" in bcfg, f"broker {node}: got {sorted(bcfg)}"
        assert bcfg["num.partitions"].value == "1"
        assert "auto.create.topics.enable" in bcfg
        assert bcfg["auto.create.topics.enable"].value == "true"


def test_describe_configs_unknown_topic(broker):
    with pytest.raises(KafkaException) as ei:
        _describe(broker, ResourceType.TOPIC, h.unique("nope"))
    assert h.err_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


# ---------------------------------------------------------------------------
# ListOffsets
# ---------------------------------------------------------------------------


def test_list_offsets_earliest_latest_and_by_timestamp(broker):
    topic = h.unique("lo")
    h.create_topic(broker, topic, 1)
    tp = TopicPartition(topic, 0)
    c = h.consumer(broker)
    try:
        assert c.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 0)
        # empty partition: any timestamp -> no offset (-1)
        (r,) = c.offsets_for_times([TopicPartition(topic, 0, 1_000)], timeout=10)
        assert r.error is None and r.offset == -1, r

        t0 = 1_700_000_000_000
        p = h.producer(broker)
        for i in range(10):
            p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=t0 + i * 1000)
        assert p.flush(30) == 0

        assert c.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 10)
        cases = {t0 - 5000: 0, t0: 0, t0 + 1: 1, t0 + 1500: 2, t0 + 2000: 2,
                 t0 + 9000: 9, t0 + 9001: -1}
        for ts, expected in cases.items():
            (r,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert r.error is None, r.error
            assert r.offset == expected, f"offsets_for_times({ts - t0:+d}ms) = {r.offset}, " \
                                         f"expected {expected}"
    finally:
        c.close()

    got = h.consume_all(broker, topic, [0], expect=10)
    from confluent_kafka import TIMESTAMP_CREATE_TIME
    assert [ts for *_r, ts in got] == [(TIMESTAMP_CREATE_TIME, t0 + i * 1000)
                                       for i in range(10)]


# ---------------------------------------------------------------------------
# auto topic creation
# ---------------------------------------------------------------------------


def test_auto_create_on_produce(broker):
    topic = h.unique("auto")
    assert topic not in h.list_topics(broker).topics
    (_, _, p, off), = h.produce_records(broker, topic, [(b"k", b"v")])
    assert (p, off) == (0, 0)
    t = h.wait_topic(broker, topic, 1)
    assert len(t.partitions) == 1


def test_auto_create_uses_num_partitions_override(broker_factory):
    b = broker_factory(overrides={"num.partitions": 3})
    topic = h.unique("auto3")
    h.produce_records(b, topic, [(f"k{i}".encode(), b"v") for i in range(30)])
    t = h.wait_topic(b, topic, 3)
    assert len(t.partitions) == 3
    assert _describe(b, ResourceType.BROKER, "0")["num.partitions"].value == "3"


def test_auto_create_disabled(broker_factory):
    b = broker_factory(overrides={"auto.create.topics.enable": "false"})
    topic = h.unique("noauto")
    p = h.producer(b, **{"topic.metadata.propagation.max.ms": 1000,
                         "message.timeout.ms": 5000})
    errs = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errs.append(err))
    p.flush(15)
    assert len(errs) == 1 and errs[0] is not None, f"produce to missing topic: {errs}"
    assert topic not in h.list_topics(b).topics

    # raw Produce v3 to the missing topic
    with kw.WireConn(HOST, b.shard_port(0)) as c:
        resp = kw.parse_produce_v3_response(c.request(
            kw.API_PRODUCE, 3, kw.produce_v3_body(topic, 0, kw.build_record_batch([(None, b"x")]))))
    assert resp[(topic, 0)][0] == kw.UNKNOWN_TOPIC_OR_PARTITION, resp
    assert topic not in h.list_topics(b).topics

    # explicit creation still works
    h.create_topic(b, topic, 2)
    h.produce_records(b, topic, [(None, b"y", 1)])
    bcfg = _describe(b, ResourceType.BROKER, "0")
    assert bcfg["auto.create.topics.enable"].value == "false"


# ---------------------------------------------------------------------------
# Fetch out of range
# ---------------------------------------------------------------------------


def test_fetch_offset_out_of_range(broker):
    topic = h.unique("oor")
    h.create_topic(broker, topic, 1)
    h.produce_records(broker, topic, [(None, f"v{i}".encode()) for i in range(3)])
    leader = h.partition_leaders(broker, topic)[0]

    # raw Fetch v4 on the leader
    with kw.WireConn(HOST, broker.shard_port(leader)) as c:
        fr = kw.parse_fetch_v4_response(c.request(
            kw.API_FETCH, 4, kw.fetch_v4_body(topic, 0, 10**9)))
    assert fr[(topic, 0)][0] == kw.OFFSET_OUT_OF_RANGE, fr

    # librdkafka with auto.offset.reset=error surfaces it as an error event
    c = h.consumer(broker, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 10**9)])
        deadline = time.monotonic() + 30
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                err = m.error()
            elif m is not None and not m.error():
                pytest.fail(f"got a message at offset {m.offset()} from offset 10**9")
        assert err is not None, "no error event for an out-of-range fetch"
        assert err.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET), err
        if err.code() == KafkaError._AUTO_OFFSET_RESET:
            assert "out of range" in err.str().lower(), err.str()
    finally:
        c.close()


# ---------------------------------------------------------------------------
# wrong shard
# ---------------------------------------------------------------------------


def test_wrong_shard_gives_not_leader(broker):
    topic = h.unique("ws")
    h.create_topic(broker, topic, 2)
    leaders = h.partition_leaders(broker, topic)
    assert set(leaders.values()) == {0, 1}, leaders
    batch = kw.build_record_batch([(b"k", b"v")])

    for part, leader in leaders.items():
        other = 1 - leader
        with kw.WireConn(HOST, broker.shard_port(other)) as c:
            pr = kw.parse_produce_v3_response(c.request(
                kw.API_PRODUCE, 3, kw.produce_v3_body(topic, part, batch)))
            assert pr[(topic, part)][0] == kw.NOT_LEADER_OR_FOLLOWER, \
                f"produce to partition {part} on shard {other} (leader {leader}): {pr}"
            fr = kw.parse_fetch_v4_response(c.request(
                kw.API_FETCH, 4, kw.fetch_v4_body(topic, part, 0)))
            assert fr[(topic, part)][0] == kw.NOT_LEADER_OR_FOLLOWER, \
                f"fetch partition {part} on shard {other} (leader {leader}): {fr}"
        with kw.WireConn(HOST, broker.shard_port(leader)) as c:
            pr = kw.parse_produce_v3_response(c.request(
                kw.API_PRODUCE, 3, kw.produce_v3_body(topic, part, batch)))
            assert pr[(topic, part)] == (0, 0), f"produce on the leader: {pr}"
            fr = kw.parse_fetch_v4_response(c.request(
                kw.API_FETCH, 4, kw.fetch_v4_body(topic, part, 0)))
            err, hw, recs = fr[(topic, part)]
            assert (err, hw) == (0, 1)
            assert [(r["key"], r["value"]) for r in kw.decode_record_batches(recs)] == [
                (b"k", b"v")]

    # every shard answers Metadata with the same cluster view
    views = []
    for shard in range(broker.shards):
        with kw.WireConn(HOST, broker.shard_port(shard)) as c:
            md = kw.parse_metadata_v4_response(c.request(kw.API_METADATA, 4,
                                                         kw.metadata_v4_body([topic])))
        assert md["brokers"] == {0: (HOST, broker.port), 1: (HOST, broker.port + 1)}, md
        views.append({p: v["leader"] for p, v in md["topics"][topic]["partitions"].items()})
    assert views[0] == views[1] == leaders
