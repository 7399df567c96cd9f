"""Configs as Kafka reports and changes them: types, sources, synonyms and
read-only flags through kafka-python's and confluent-kafka's admin clients;
APPEND and SUBTRACT on list configs; dynamic broker configs (cluster default
and per node) that apply to a running broker and survive a restart; the
legacy AlterConfigs' whole-resource replace."""

import subprocess
import time

import confluent_kafka.admin as ca
import pytest
from confluent_kafka import TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType
from kafka.protocol.admin import AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest

from conftest import REPO_ROOT

import helpers as h

TOPIC, BROKER, GROUP = ConfigResourceType.TOPIC, ConfigResourceType.BROKER, ConfigResourceType.GROUP
KAFKA_CONFIGS = REPO_ROOT / "scripts" / "kafka-configs.sh"


@pytest.fixture
def kadmin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    yield a
    a.close()


def describe(kadmin, rtype, name, filt="all"):
    r = kadmin.describe_configs([ConfigResource(rtype, name)], include_synonyms=True, config_filter=filt)
    return r[rtype.name.lower()][name]


def raw_describe(kadmin, rtype, name, node=None):
    """DescribeConfigs as sent on the wire (kafka-python's admin cannot name
    the cluster default, ""), with documentation."""
    R = DescribeConfigsRequest
    req = R(resources=[R.DescribeConfigsResource(resource_type=int(rtype), resource_name=name, configuration_keys=None)],
            include_synonyms=True, include_documentation=True)
    (res,) = kadmin._manager.run(kadmin._manager.send, req, node).results
    assert res.error_code == 0, res.error_message
    return {c.name: c for c in res.configs}


def raw_alter(kadmin, rtype, name, ops, node=None):
    """IncrementalAlterConfigs [(key, op, value)] on one resource; its error code."""
    R = IncrementalAlterConfigsRequest
    req = R(resources=[(int(rtype), name, ops)], validate_only=False)
    (res,) = kadmin._manager.run(kadmin._manager.send, req, node).responses
    return res.error_code, res.error_message


def configs_tool(broker, *args):
    r = subprocess.run([str(KAFKA_CONFIGS), "--bootstrap-server", broker.bootstrap, *args],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def test_topic_and_broker_configs_as_kafka_reports_them(broker_factory):
    broker = broker_factory(overrides={"log.retention.bytes": "123456789"})
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        topic = h.unique("cfg")
        h.create_topic(broker, topic, 1, config={"retention.ms": "5000"})
        t = describe(kadmin, TOPIC, topic)
        rb = t["retention.bytes"]
        assert (rb["value"], rb["config_type"], rb["config_source"]) == ("123456789", "LONG", "STATIC_BROKER_CONFIG")
        assert [(s["name"], s["value"], s["source"]) for s in rb["synonyms"]] == [
            ("log.retention.bytes", "123456789", "STATIC_BROKER_CONFIG"), ("log.retention.bytes", "-1", "DEFAULT_CONFIG")]
        rm = t["retention.ms"]
        assert (rm["value"], rm["config_source"], rm["read_only"]) == ("5000", "DYNAMIC_TOPIC_CONFIG", False)
        assert [s["name"] for s in rm["synonyms"]] == ["retention.ms", "log.retention.ms"]
        types = {k: v["config_type"] for k, v in t.items()}
        assert types["cleanup.policy"] == "LIST" and types["preallocate"] == "BOOLEAN"
        assert types["segment.bytes"] == "INT" and types["compression.type"] == "STRING"
        assert "UNKNOWN" not in types.values(), types

        b = describe(kadmin, BROKER, "1")
        assert b["listeners"]["value"] == f"PLAINTEXT://127.0.0.1:{broker.port + 1}"
        assert b["advertised.listeners"]["value"] == f"PLAINTEXT://127.0.0.1:{broker.port + 1}"
        assert b["log.dirs"]["value"] == str(broker.data_dir.resolve())
        assert b["node.id"]["value"] == "1"
        assert all(b[k]["read_only"] for k in ("listeners", "num.partitions", "log.dirs"))
        assert not b["log.retention.ms"]["read_only"] and b["log.retention.ms"]["config_type"] == "LONG"
        assert not any(v["is_sensitive"] for v in b.values())
        docs = raw_describe(kadmin, BROKER, "0", node=0)
        assert "segment" in docs["log.retention.ms"].documentation
        assert all(c.documentation for c in docs.values()), [k for k, c in docs.items() if not c.documentation]

        # confluent-kafka reads the same.
        c = h.admin(broker)
        res = ca.ConfigResource(ca.ResourceType.TOPIC, topic)
        entries = c.describe_configs([res], request_timeout=10)[res].result(15)
        assert entries["retention.bytes"].source == ca.ConfigSource.STATIC_BROKER_CONFIG.value
        assert entries["retention.ms"].source == ca.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        res = ca.ConfigResource(ca.ResourceType.BROKER, "0")
        entries = c.describe_configs([res], request_timeout=10)[res].result(15)
        assert entries["listeners"].is_read_only and not entries["log.retention.ms"].is_read_only

        # A group resource answers (no group config applies to classic groups).
        assert describe(kadmin, GROUP, "some-group") == {}
    finally:
        kadmin.close()


def produce_keyless(broker, topic):
    p = h.producer(broker, **{"retries": 0})
    errors = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    return errors[0]


def test_append_compact_to_cleanup_policy_makes_the_topic_compacted(broker, kadmin):
    topic = h.unique("append")
    h.create_topic(broker, topic, 1)
    assert produce_keyless(broker, topic) is None
    r = kadmin.alter_configs([ConfigResource(TOPIC, topic, configs={"cleanup.policy": (AlterConfigOp.APPEND, "compact")})])
    assert r == {"topic": {topic: "OK"}}
    assert describe(kadmin, TOPIC, topic)["cleanup.policy"]["value"] == "delete,compact"
    err = produce_keyless(broker, topic)
    assert err is not None and err.name() == "INVALID_RECORD", err
    h.produce_records(broker, topic, [(b"k", b"keyed", 0)])
    # SUBTRACT through confluent-kafka leaves compact alone.
    c = h.admin(broker)
    res = ca.ConfigResource(ca.ResourceType.TOPIC, topic, incremental_configs=[
        ca.ConfigEntry("cleanup.policy", "delete", incremental_operation=ca.AlterConfigOpType.SUBTRACT)])
    c.incremental_alter_configs([res], request_timeout=10)[res].result(15)
    assert describe(kadmin, TOPIC, topic)["cleanup.policy"]["value"] == "compact"
    # APPEND to a number, and emptying the list, are refused.
    r = kadmin.alter_configs([ConfigResource(TOPIC, topic, configs={"retention.ms": (AlterConfigOp.APPEND, "5")})])
    assert "InvalidConfiguration" in r["topic"][topic]
    r = kadmin.alter_configs([ConfigResource(TOPIC, topic, configs={"cleanup.policy": (AlterConfigOp.SUBTRACT, "compact")})])
    assert "InvalidConfiguration" in r["topic"][topic]
    assert describe(kadmin, TOPIC, topic)["cleanup.policy"]["value"] == "compact"


def log_start(broker, topic):
    c = h.consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[0]
    finally:
        c.close()


def old_records(broker, topic, n):
    """n records of 1 KiB stamped an hour ago: segments that a retention of
    ten minutes no longer keeps."""
    ts = int(time.time() * 1000) - 3_600_000
    p = h.producer(broker, **{"linger.ms": 0, "batch.num.messages": 1})
    for i in range(n):
        p.produce(topic, value=b"x" * 1024, partition=0, timestamp=ts + i)
        assert p.flush(30) == 0


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_dynamic_broker_retention_applies_without_restart_and_survives_one(broker_factory):
    broker = broker_factory(overrides={"log.retention.check.interval.ms": "300000"})
    topic = h.unique("dynret")
    h.create_topic(broker, topic, 1, config={"segment.bytes": "8192"})
    old_records(broker, topic, 40)
    assert log_start(broker, topic) == 0, "seven days' retention keeps an hour-old segment"

    rc, out = configs_tool(broker, "--entity-type", "brokers", "--entity-default", "--alter",
                           "--add-config", "log.retention.ms=600000")
    assert rc == 0, out
    # The change reaches the running shards, and retention runs at once
    # (the timed pass is five minutes away).
    wait_for(lambda: log_start(broker, topic) > 0, 15, "the old segments outlived the new retention")
    rc, out = configs_tool(broker, "--entity-type", "brokers", "--entity-default", "--describe")
    assert "log.retention.ms=600000" in out and "DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=600000" in out, out

    broker.restart()
    kadmin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        b = describe(kadmin, BROKER, "0")
        assert (b["log.retention.ms"]["value"], b["log.retention.ms"]["config_source"]) == (
            "600000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        t = describe(kadmin, TOPIC, topic)["retention.ms"]
        assert (t["value"], t["config_source"]) == ("600000", "DYNAMIC_DEFAULT_BROKER_CONFIG")
        # After the restart the dynamic value still rules: a new topic's old
        # records go too.
        second = h.unique("dynret2")
        h.create_topic(broker, second, 1, config={"segment.bytes": "8192"})
        old_records(broker, second, 40)
        rc, out = configs_tool(broker, "--broker", "0", "--alter", "--add-config", "log.retention.ms=700000")
        assert rc == 0, out
        # Every shard runs retention when dynamic configs change.
        wait_for(lambda: log_start(broker, second) > 0, 15, "retention did not run after a per-node change")
        b0, b1 = describe(kadmin, BROKER, "0"), describe(kadmin, BROKER, "1")
        assert [(s["value"], s["source"]) for s in b0["log.retention.ms"]["synonyms"]] == [
            ("700000", "DYNAMIC_BROKER_CONFIG"), ("600000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
            ("604800000", "DEFAULT_CONFIG")]
        assert b1["log.retention.ms"]["value"] == "600000"

        # Read-only keys and unknown nodes are refused, as Kafka refuses them.
        code, msg = raw_alter(kadmin, BROKER, "", [("num.partitions", 0, "3")])
        assert code == 40 and "num.partitions" in msg  # INVALID_CONFIG
        code, _ = raw_alter(kadmin, BROKER, "7", [("log.retention.ms", 0, "1")])
        assert code == 42  # INVALID_REQUEST
        rc, out = configs_tool(broker, "--broker", "0", "--alter", "--add-config", "listeners=PLAINTEXT://x:1")
        assert rc != 0 and "Cannot update these configs dynamically" in out, out

        # DELETE makes the node inherit the cluster default again.
        assert raw_alter(kadmin, BROKER, "0", [("log.retention.ms", 1, None)], node=0)[0] == 0
        assert describe(kadmin, BROKER, "0")["log.retention.ms"]["value"] == "600000"
    finally:
        kadmin.close()


def test_legacy_alter_configs_replaces_the_whole_resource(broker, kadmin):
    topic = h.unique("legacy")
    h.create_topic(broker, topic, 1, config={"retention.ms": "5000", "segment.bytes": "65536"})
    r = kadmin.alter_configs([ConfigResource(TOPIC, topic, configs={"retention.ms": "7000"})],
                             incremental=False, raise_on_unknown=False)
    assert r == {"topic": {topic: "OK"}}
    t = describe(kadmin, TOPIC, topic)
    assert (t["retention.ms"]["value"], t["retention.ms"]["config_source"]) == ("7000", "DYNAMIC_TOPIC_CONFIG")
    # kafka-python re-sends the other modified keys itself (AlterConfigs
    # would reset them); on the wire the request names both. Remove one.
    req = AlterConfigsRequest(resources=[(int(TOPIC), topic, [("retention.ms", "9000")])], validate_only=False)
    (res,) = kadmin._manager.run(kadmin._manager.send, req).responses
    assert res.error_code == 0, res.error_message
    t = describe(kadmin, TOPIC, topic)
    assert t["retention.ms"]["value"] == "9000"
    assert t["segment.bytes"]["config_source"] == "DEFAULT_CONFIG", "AlterConfigs removes what it does not name"
    # On the broker resource too.
    req = AlterConfigsRequest(resources=[(int(BROKER), "1", [("log.retention.ms", "800000")])], validate_only=False)
    assert kadmin._manager.run(kadmin._manager.send, req, 1).responses[0].error_code == 0
    assert describe(kadmin, BROKER, "1")["log.retention.ms"]["config_source"] == "DYNAMIC_BROKER_CONFIG"
    req = AlterConfigsRequest(resources=[(int(BROKER), "1", [])], validate_only=False)
    assert kadmin._manager.run(kadmin._manager.send, req, 1).responses[0].error_code == 0
    assert describe(kadmin, BROKER, "1")["log.retention.ms"]["config_source"] == "DEFAULT_CONFIG"


def produce_one(broker, topic, acks):
    p = h.producer(broker, **{"acks": acks, "retries": 0, "enable.idempotence": False})
    errors = []
    p.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    return errors[0]


def test_min_insync_replicas_is_honoured_not_ignored(broker, kadmin):
    """One replica per partition: acks=all to a topic that wants two in sync
    fails with NOT_ENOUGH_REPLICAS before anything is appended, as on Kafka;
    acks=1 is not held to it. The cluster default applies the same way."""
    topic = h.unique("minisr")
    h.create_topic(broker, topic, 1, config={"min.insync.replicas": "2"})
    err = produce_one(broker, topic, "all")
    assert err is not None and err.name() == "NOT_ENOUGH_REPLICAS", err
    assert produce_one(broker, topic, "1") is None
    assert log_start_and_end(broker, topic) == (0, 1), "the refused write was not appended"

    other = h.unique("minisr2")
    h.create_topic(broker, other, 1)
    assert produce_one(broker, other, "all") is None
    code, msg = raw_alter(kadmin, BROKER, "", [("min.insync.replicas", 0, "2")])
    assert code == 0, msg
    err = produce_one(broker, other, "all")
    assert err is not None and err.name() == "NOT_ENOUGH_REPLICAS", err
    assert raw_alter(kadmin, BROKER, "", [("min.insync.replicas", 1, None)])[0] == 0
    assert produce_one(broker, other, "all") is None


def log_start_and_end(broker, topic):
    c = h.consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()


def test_bad_dynamic_values_are_refused_or_cleaned_never_fatal(broker, kadmin):
    """A value with spaces around it (legacy AlterConfigs sends it as is)
    is stored trimmed: read back as a number, it used to abort every shard,
    at once and again on each restart. Values outside Kafka's bounds and
    malformed requests are refused."""
    req = AlterConfigsRequest(resources=[(int(BROKER), "", [("log.retention.ms", " 3600000 ")])], validate_only=False)
    assert kadmin._manager.run(kadmin._manager.send, req).responses[0].error_code == 0
    assert raw_describe(kadmin, BROKER, "")["log.retention.ms"].value == "3600000"
    h.assert_healthy(broker)
    broker.restart()
    h.assert_healthy(broker)
    k2 = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert describe(k2, BROKER, "0")["log.retention.ms"]["value"] == "3600000"
        code, msg = raw_alter(k2, BROKER, "", [("producer.id.expiration.ms", 0, "0")])
        assert code == 40 and "from 1 to" in msg, msg  # INVALID_CONFIG
        code, _ = raw_alter(k2, BROKER, "", [("message.max.bytes", 0, "-1")])
        assert code == 40
        code, msg = raw_alter(k2, BROKER, "", [("log.retention.ms", 0, "1"), ("log.retention.ms", 1, None)])
        assert code == 42 and "duplicate" in msg, msg  # INVALID_REQUEST
        code, _ = raw_alter(k2, BROKER, "", [("log.retention.ms", 0, None)])
        assert code == 42
    finally:
        k2.close()
