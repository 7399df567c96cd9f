"""Operator tools (issue 6): `sluice topics|produce|consume|groups` and the
kafka-*.sh wrappers, run as processes against a real broker."""

import os
import re
import signal
import subprocess
import time

import pytest
from confluent_kafka.admin import NewTopic

import helpers as h
from conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"


def sluice_bin():
    return os.environ.get("SLUICE_BIN", str(REPO_ROOT / "target" / "release" / "sluice"))


def run(args, stdin=None, timeout=60, check=True):
    r = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{args} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def sluice(*args, **kw):
    return run([sluice_bin(), *args], **kw)


def script(name, *args, **kw):
    return run([str(SCRIPTS / name), *args], **kw)


def lags(describe_out):
    """partition -> lag from a describe table."""
    out = {}
    for line in describe_out.splitlines()[1:]:
        f = line.split()
        out[int(f[2])] = int(f[5])
    return out


def test_seed_steps_with_the_kafka_wrappers(broker):
    """The seeds' four steps: create a topic, produce lines, consume them from
    the beginning with a group, and watch the group's lag fall to 0."""
    b = ("--bootstrap-server", broker.bootstrap)
    topic, group = h.unique("seed"), h.unique("grp")
    r = script("kafka-topics.sh", *b, "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1")
    assert f"Created topic {topic}." in r.stdout
    assert topic in script("kafka-topics.sh", *b, "--list").stdout.split()
    lines = "".join(f"key{i}:line {i}\n" for i in range(30))
    script("kafka-console-producer.sh", *b, "--topic", topic, "--property", "parse.key=true",
           "--property", "key.separator=:", stdin=lines)
    # Read half as the group, then look at its lag.
    r = script("kafka-console-consumer.sh", *b, "--topic", topic, "--from-beginning", "--group", group,
               "--max-messages", "12")
    assert len(r.stdout.splitlines()) == 12
    d = script("kafka-consumer-groups.sh", *b, "--describe", "--group", group).stdout
    assert sum(lags(d).values()) == 18 and set(lags(d)) == {0, 1, 2}
    r = script("kafka-console-consumer.sh", *b, "--topic", topic, "--from-beginning", "--group", group,
               "--timeout-ms", "3000", "--property", "print.key=true", "--property", "key.separator=:")
    got = r.stdout.splitlines()
    assert len(got) == 18 and all(re.fullmatch(r"key(\d+):line \1", ln) for ln in got), got
    d = script("kafka-consumer-groups.sh", *b, "--describe", "--group", group).stdout
    assert lags(d) == {0: 0, 1: 0, 2: 0}
    assert group in script("kafka-consumer-groups.sh", *b, "--list").stdout.split()


def test_topics_subcommands(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    topic = h.unique("tt")
    sluice("topics", *b, "create", topic, "--partitions", "2", "--config", "retention.ms=3600000",
           "--config", "cleanup.policy=compact")
    d = sluice("topics", *b, "describe", topic).stdout.splitlines()
    assert d[0].startswith(f"Topic: {topic}\tTopicId: ") and "PartitionCount: 2" in d[0]
    assert "Configs: cleanup.policy=compact,retention.ms=3600000" in d[0]
    leaders = h.partition_leaders(broker, topic)
    for p in (0, 1):
        assert f"\tTopic: {topic}\tPartition: {p}\tLeader: {leaders[p]}\tReplicas: {leaders[p]}\tIsr: {leaders[p]}" \
            in d[p + 1]
    sluice("topics", *b, "alter", topic, "--partitions", "4")
    assert "PartitionCount: 4" in sluice("topics", *b, "describe", topic).stdout
    r = sluice("topics", *b, "create", topic, check=False)
    assert r.returncode != 0 and "TOPIC_ALREADY_EXISTS" in r.stderr
    sluice("topics", *b, "create", topic, "--if-not-exists")
    sluice("topics", *b, "delete", topic)
    assert topic not in sluice("topics", *b, "list").stdout.split()


def test_produce_and_consume_formats(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    topic = h.unique("fmt")
    sluice("topics", *b, "create", topic, "--partitions", "3")
    sluice("produce", *b, "--topic", topic, "--partition", "2", "--header", "h1=v1", "--header", "empty=",
           "--compression", "zstd", stdin="one\ntwo\n")
    r = sluice("consume", *b, "--topic", topic, "--from-beginning", "--max-messages", "2", "--print-partition",
               "--print-offset", "--print-headers", "--print-timestamp", "--print-key")
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for i, ln in enumerate(lines):
        f = ln.split("\t")
        assert re.fullmatch(r"CreateTime:\d{13}", f[0]) and f[1:] == [
            "Partition:2", f"Offset:{i}", "h1:v1,empty:", "null", ["one", "two"][i]], f
    assert "Processed a total of 2 messages" in r.stderr
    # --partition / --offset
    r = sluice("consume", *b, "--topic", topic, "--partition", "2", "--offset", "1", "--max-messages", "1")
    assert r.stdout == "two\n"
    # Keyed records land where the Java client would put them (murmur2).
    sluice("produce", *b, "--topic", topic, "--key-separator", "=", stdin="alpha=1\nbeta=2\n")
    got = h.consume_all(broker, topic, range(3), expect=4)
    where = {k: p for k, _v, p, *_ in got if k}
    # kafka-python's murmur2: an independent implementation of Kafka's.
    from kafka.partitioner.default import murmur2
    assert where == {k: (murmur2(k) & 0x7FFFFFFF) % 3 for k in (b"alpha", b"beta")}, where
    # A line without the separator is reported and the exit is non-zero.
    r = sluice("produce", *b, "--topic", topic, "--key-separator", "=", stdin="ok=1\nbroken\n", check=False)
    assert r.returncode != 0 and "line 2: no key separator" in r.stderr


def test_consume_with_group_commits_on_ctrl_c(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    topic, group = h.unique("cc"), h.unique("g")
    sluice("topics", *b, "create", topic, "--partitions", "1")
    sluice("produce", *b, "--topic", topic, stdin="".join(f"m{i}\n" for i in range(5)))
    p = subprocess.Popen([sluice_bin(), "consume", *b, "--topic", topic, "--group", group, "--from-beginning"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 5 and time.monotonic() < deadline:
        seen.append(p.stdout.readline().strip())
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert seen == [f"m{i}" for i in range(5)]
    assert "Processed a total of 5 messages" in err
    d = sluice("groups", *b, "describe", group).stdout
    assert lags(d) == {0: 0} and " 5 " in d.splitlines()[1]


def test_groups_reset_offsets_and_delete(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    topic, group = h.unique("rs"), h.unique("g")
    sluice("topics", *b, "create", topic, "--partitions", "2")
    sluice("produce", *b, "--topic", topic, stdin="".join(f"r{i}\n" for i in range(10)))
    time.sleep(0.5)
    mid = int(time.time() * 1000)
    time.sleep(0.5)
    sluice("produce", *b, "--topic", topic, stdin="".join(f"s{i}\n" for i in range(10)))
    sluice("consume", *b, "--topic", topic, "--group", group, "--from-beginning", "--timeout-ms", "2500")
    assert lags(sluice("groups", *b, "describe", group).stdout) == {0: 0, 1: 0}
    # Dry run by default: nothing moves.
    r = sluice("groups", *b, "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert "dry run" in r.stderr and lags(sluice("groups", *b, "describe", group).stdout) == {0: 0, 1: 0}
    sluice("groups", *b, "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    assert lags(sluice("groups", *b, "describe", group).stdout) == {0: 10, 1: 10}
    sluice("groups", *b, "reset-offsets", group, "--topic", topic, "--shift-by", "3", "--execute")
    assert lags(sluice("groups", *b, "describe", group).stdout) == {0: 7, 1: 7}
    sluice("groups", *b, "reset-offsets", group, "--topic", topic, "--to-timestamp", str(mid), "--execute")
    assert lags(sluice("groups", *b, "describe", group).stdout) == {0: 5, 1: 5}
    sluice("groups", *b, "reset-offsets", group, "--topic", topic, "--to-latest", "--execute")
    assert lags(sluice("groups", *b, "describe", group).stdout) == {0: 0, 1: 0}
    sluice("groups", *b, "reset-offsets", group, "--topic", topic, "--to-offset", "1", "--execute")
    assert lags(sluice("groups", *b, "describe", group).stdout) == {0: 9, 1: 9}
    assert group in sluice("groups", *b, "list").stdout.split()
    sluice("groups", *b, "delete", group)
    assert group not in sluice("groups", *b, "list").stdout.split()
    r = script("kafka-consumer-groups.sh", *b, "--reset-offsets", "--group", group, "--topic", topic,
               "--to-earliest", "--execute")
    assert "NEW-OFFSET" in r.stdout


@pytest.mark.parametrize("cmd", [
    ["topics", "list"],
    ["produce", "--topic", "x"],
    ["consume", "--topic", "x", "--max-messages", "1"],
    ["groups", "list"],
])
def test_unreachable_bootstrap_is_one_clear_line(cmd):
    r = sluice(*cmd[:1], "--bootstrap-server", "127.0.0.1:1", *cmd[1:], stdin="", check=False)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        "sluice: error: cannot reach any bootstrap server (127.0.0.1:1): Connection refused (os error 111)"]


def test_unknown_topic_and_group_are_one_line_errors(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    for cmd in (["topics", *b, "describe", "nope"], ["produce", *b, "--topic", "nope"],
                ["consume", *b, "--topic", "nope"], ["topics", *b, "delete", "nope"]):
        r = sluice(*cmd, stdin="x\n", check=False)
        assert r.returncode != 0 and r.stderr.strip() == 'sluice: error: topic "nope" does not exist', r.stderr
    r = sluice("groups", *b, "describe", "no-such-group", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_flags_and_help():
    for name in ("kafka-topics.sh", "kafka-console-producer.sh", "kafka-console-consumer.sh",
                 "kafka-consumer-groups.sh"):
        r = script(name, "--no-such-flag", check=False)
        assert r.returncode != 0 and r.stderr.strip() == f"{name}: unknown option --no-such-flag (see --help)"
        r = script(name, "--help")
        assert "Example:" in r.stdout
    r = sluice("topics", "create", "--bogus", check=False)
    assert r.returncode != 0 and "unexpected argument '--bogus'" in r.stderr
    for cmd in (["topics", "create"], ["topics", "list"], ["topics", "describe"], ["topics", "delete"],
                ["topics", "alter"], ["produce"], ["consume"], ["groups", "list"], ["groups", "describe"],
                ["groups", "delete"], ["groups", "reset-offsets"]):
        r = sluice(*cmd, "--help")
        assert "Example:" in r.stdout, cmd


def test_cluster_shows_nodes_controller_and_api_versions(broker):
    r = sluice("cluster", "--bootstrap-server", broker.bootstrap, "--api-versions")
    out = r.stdout
    assert "Controller: node 0" in out
    for k in (0, 1):
        assert f"Node {k}: 127.0.0.1:{broker.shard_port(k)}, alive" in out
    assert "Metadata quorum: leader node 0, epoch 1" in out
    assert "Partitions without a live leader: none" in out
    assert "\tJoinGroup(11): 0 to 9" in out and "\tProduce(0): 0 to 12" in out
    # Piped into a reader that stops early: no panic, no trace.
    p = subprocess.run(f"{sluice_bin()} cluster --bootstrap-server {broker.bootstrap} --api-versions | head -1",
                       shell=True, capture_output=True, text=True, timeout=30)
    assert p.stdout.startswith("Bootstrap:") and "panicked" not in p.stderr


def test_cluster_counts_leaders_and_replicas_per_node(broker):
    topic = h.unique("load")
    a = h.admin(broker)
    a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=2)])[topic].result(timeout=30)
    out = sluice("cluster", "--bootstrap-server", broker.bootstrap).stdout
    for k in (0, 1):
        [line] = [line for line in out.splitlines() if line.startswith(f"  Node {k}:")]
        assert line.endswith("leads 2 partitions, holds 4 replicas"), out
    # The broker, its two shards summed.
    assert "Broker 0: 127.0.0.1, alive, 2 shard(s), leads 4 partitions, holds 8 replicas" in out, out


def test_alter_topic_configs_persist(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    topic = h.unique("cfg")
    sluice("topics", *b, "create", topic, "--config", "segment.ms=600000")
    r = sluice("topics", *b, "alter", topic, "--config", "retention.ms=7200000", "--delete-config", "segment.ms")
    assert f"Updated the configs of topic {topic}." in r.stdout
    line = sluice("topics", *b, "describe", topic).stdout.splitlines()[0]
    assert line.endswith("Configs: retention.ms=7200000"), line
    r = sluice("topics", *b, "alter", topic, "--config", "compression.type=brotli", check=False)
    assert r.returncode != 0 and "INVALID_CONFIG" in r.stderr
    r = script("kafka-topics.sh", *b, "--alter", "--topic", topic, "--config", "cleanup.policy=compact")
    broker.restart()
    line = sluice("topics", *b, "describe", topic).stdout.splitlines()[0]
    assert line.endswith("Configs: cleanup.policy=compact,retention.ms=7200000"), line
    # A Kafka client's IncrementalAlterConfigs works the same way.
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource)
    a = h.admin(broker)
    res = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    for f in a.incremental_alter_configs([res]).values():
        f.result()
    assert "retention.ms=60000" in sluice("topics", *b, "describe", topic).stdout


def test_groups_describe_shows_the_active_member(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    topic, group = h.unique("act"), h.unique("g")
    sluice("topics", *b, "create", topic, "--partitions", "2")
    sluice("produce", *b, "--topic", topic, stdin="a\nb\nc\n")
    p = subprocess.Popen([sluice_bin(), "consume", *b, "--topic", topic, "--group", group, "--from-beginning"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            p.stdout.readline()
        rows = [ln.split() for ln in sluice("groups", *b, "describe", group).stdout.splitlines()[1:]]
        assert len(rows) == 2
        for r in rows:
            assert r[6].startswith("sluice-cli-") and r[7] == "/127.0.0.1" and r[8] == "sluice-cli", r
        r = sluice("groups", *b, "delete", group, check=False)
        assert r.returncode != 0 and "NON_EMPTY_GROUP" in r.stderr
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=20)
