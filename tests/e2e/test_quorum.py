"""DescribeQuorum and kafka-metadata-quorum.sh against the embedded
one-voter metadata quorum (issue 23): this broker's controller, node 0, is
the only voter and leads; the leader epoch is the raft term, the high
watermark the committed end of the raft log. (Three voters:
test_cluster.py.)"""

from kafka.admin import KafkaAdminClient

import helpers as h
from test_tools import script


def _quorum(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        return a.describe_metadata_quorum()
    finally:
        a.close()


def _partition(q):
    [topic] = q["topics"]
    assert topic["topic_name"] == "__cluster_metadata"
    [p] = topic["partitions"]
    assert p["error"] is None, p
    return p


def test_kafka_python_describes_the_one_voter_quorum(broker):
    p = _partition(_quorum(broker))
    assert p["leader_id"] == 0 and p["leader_epoch"] >= 1
    [voter] = p["current_voters"]
    assert voter["replica_id"] == 0 and voter["log_end_offset"] == p["high_watermark"]
    assert p["observers"] == []
    # Each commit moves it: a topic creation is one.
    h.create_topic(broker, h.unique("q"), 2)
    after = _partition(_quorum(broker))
    assert after["high_watermark"] == p["high_watermark"] + 1
    q = _quorum(broker)
    [node] = q["nodes"]
    assert node["node_id"] == 0 and node["listeners"][0]["port"] == broker.port
    # The log is replayed on a restart; the voter leads again (a lone
    # voter keeps its term) and its first entry moves the high watermark
    # on, as KRaft's leader change record does.
    broker.stop()
    broker.restart()
    again = _partition(_quorum(broker))
    assert again["high_watermark"] > after["high_watermark"]
    assert again["leader_id"] == 0 and again["leader_epoch"] >= after["leader_epoch"]


def test_the_quorum_tool_prints_kafkas_status_and_replication(broker):
    b = ("--bootstrap-server", broker.bootstrap)
    p = _partition(_quorum(broker))
    hw = p["high_watermark"]
    status = dict(
        line.split(":", 1) for line in script("kafka-metadata-quorum.sh", *b, "describe", "--status").stdout.splitlines()
    )
    assert status["LeaderId"].strip() == "0"
    assert status["LeaderEpoch"].strip() == str(p["leader_epoch"])
    assert status["HighWatermark"].strip() == str(hw)
    assert status["MaxFollowerLag"].strip() == "0"
    assert f'"id": 0' in status["CurrentVoters"] and f":{broker.port}" in status["CurrentVoters"]
    rows = script("kafka-metadata-quorum.sh", *b, "describe", "--replication").stdout.splitlines()
    assert rows[0].split("\t")[:3] == ["NodeId", "LogEndOffset", "Lag"]
    assert rows[1].split("\t")[:3] == ["0", str(hw), "0"] and rows[1].endswith("Leader")
    cluster = script("kafka-metadata-quorum.sh", *b, "describe", check=False)
    assert cluster.returncode != 0 and "--status or --replication" in cluster.stderr


def test_another_topic_is_unknown(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        q = a._manager.run(a._async_describe_quorum, "not-the-metadata-log", 0)
    finally:
        a.close()
    [p] = q["topics"][0]["partitions"]
    assert p["error"] is not None and "UnknownTopicOrPartition" in p["error"], p
