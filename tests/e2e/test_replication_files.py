"""The files replication starts from, as Kafka keeps them: every partition's
high watermark in `replication-offset-checkpoint` (data dir), written every
`replica.high.watermark.checkpoint.interval.ms` and at a clean shutdown,
and each partition's `leader-epoch-checkpoint`."""

import time
from collections import defaultdict

from confluent_kafka.admin import ConfigResource, ResourceType

import helpers as h

PARTITIONS = 3


def _checkpoint(broker):
    """The high watermark file as {(topic, partition): offset}; checks the
    format on the way (version line, count line, then the entries)."""
    path = broker.data_dir / "replication-offset-checkpoint"
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    assert lines[0] == "0", lines[:2]
    assert int(lines[1]) == len(lines) - 2, lines[:2]
    out = {}
    for line in lines[2:]:
        topic, partition, offset = line.split(" ")
        out[(topic, int(partition))] = int(offset)
    return out


def _ends(acked):
    ends = defaultdict(int)
    for _k, _v, p, o in acked:
        ends[p] = max(ends[p], o + 1)
    return ends


def _ours(checkpoint, topic):
    return {p: o for (t, p), o in (checkpoint or {}).items() if t == topic}


def test_high_watermarks_are_checkpointed_every_interval(broker_factory):
    broker = broker_factory(overrides={"replica.high.watermark.checkpoint.interval.ms": "200"})
    topic = h.unique("hwcp")
    h.create_topic(broker, topic, PARTITIONS)
    for round_ in range(2):
        acked = h.produce_records(broker, topic, [(f"k{i}".encode(), b"v") for i in range(300 * (round_ + 1))])
        ends = _ends(acked)
        assert len(ends) == PARTITIONS
        deadline = time.time() + 10
        while _ours(_checkpoint(broker), topic) != dict(ends) and time.time() < deadline:
            time.sleep(0.1)
        assert _ours(_checkpoint(broker), topic) == dict(ends), f"round {round_}: the periodic write caught up"


def test_a_clean_shutdown_writes_the_final_high_watermarks(broker_factory):
    # An interval no test outlives: only the shutdown writes the file.
    broker = broker_factory(overrides={"replica.high.watermark.checkpoint.interval.ms": "3600000"})
    topic = h.unique("hwstop")
    h.create_topic(broker, topic, PARTITIONS)
    acked = h.produce_records(broker, topic, [(f"k{i}".encode(), b"v") for i in range(500)])
    assert _checkpoint(broker) is None
    broker.stop()
    assert _ours(_checkpoint(broker), topic) == dict(_ends(acked))
    # And it does not stop the next start.
    broker.restart()
    h.assert_healthy(broker)


def test_the_default_interval_is_kafkas(broker):
    resource = ConfigResource(ResourceType.BROKER, "0")
    admin = h.admin(broker)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    entry = configs["replica.high.watermark.checkpoint.interval.ms"]
    assert entry.value == "5000" and entry.is_read_only


def test_each_partition_keeps_its_leader_epochs(broker):
    topic = h.unique("epochs")
    h.create_topic(broker, topic, PARTITIONS)
    acked = h.produce_records(broker, topic, [(f"k{i}".encode(), b"x") for i in range(90)])
    for p in _ends(acked):
        text = (broker.data_dir / f"{topic}-{p}" / "leader-epoch-checkpoint").read_text()
        assert text == "0\n1\n0 0\n", (p, text)

    # A data dir from before the file existed: rebuilt from the batches.
    broker.stop()
    for p in range(PARTITIONS):
        (broker.data_dir / f"{topic}-{p}" / "leader-epoch-checkpoint").unlink()
    broker.restart()
    h.produce_records(broker, topic, [(f"k{i}".encode(), b"y") for i in range(60)])
    for p in range(PARTITIONS):
        text = (broker.data_dir / f"{topic}-{p}" / "leader-epoch-checkpoint").read_text()
        assert text == "0\n1\n0 0\n", (p, text)
