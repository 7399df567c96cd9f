"""Leader epochs (issue 24's first slice): each partition's leader epoch is
in the metadata, 0 when placed and one more at every change of leader. The
leader stamps its appends with it, Metadata reports it, and
OffsetForLeaderEpoch says where an epoch ended, fencing a stale or unknown
current epoch as Kafka does. A broker restarted with fewer shards moves
the gone shard's partitions to another shard: a change of leader."""

from confluent_kafka import KafkaError, TopicPartition as CTP
from kafka import KafkaAdminClient
from kafka.protocol.consumer import OffsetForLeaderEpochRequest
from kafka.protocol.metadata import MetadataRequest

import helpers as h

FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75


def _poll_n(c, n, timeout=30):
    """The next n records (end-of-partition events skipped)."""
    import time
    deadline = time.monotonic() + timeout
    got = []
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} records"
        m = c.poll(0.5)
        if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
            continue
        assert m.error() is None, m.error()
        got.append(m)
    return got


def _leader_epochs(broker, topic):
    """{partition: (leader, leader_epoch)} from Metadata (v7+ carries it)."""
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        resp = ka._manager.run(ka._manager.send, MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic)]))
    finally:
        ka.close()
    [t] = resp.topics
    return {p.partition_index: (p.leader_id, p.leader_epoch) for p in t.partitions}


def _epoch_end(broker, node, topic, partition, epoch, current=-1):
    """OffsetForLeaderEpoch sent to node `node`: (error, leader_epoch, end_offset)."""
    R = OffsetForLeaderEpochRequest
    req = R(replica_id=-1, topics=[R.OffsetForLeaderTopic(topic=topic, partitions=[
        R.OffsetForLeaderTopic.OffsetForLeaderPartition(partition=partition, current_leader_epoch=current,
                                                         leader_epoch=epoch)])])
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        resp = ka._manager.run(ka._manager.send, req, node)
    finally:
        ka.close()
    [t] = resp.topics
    [p] = t.partitions
    return p.error_code, p.leader_epoch, p.end_offset


def _list_offset(broker, node, topic, partition, timestamp, current=-1):
    """ListOffsets sent to node `node`: (error, offset, leader_epoch)."""
    from kafka.protocol.consumer import ListOffsetsRequest as R
    req = R(replica_id=-1, isolation_level=0, topics=[R.ListOffsetsTopic(name=topic, partitions=[
        R.ListOffsetsTopic.ListOffsetsPartition(partition_index=partition, current_leader_epoch=current,
                                                 timestamp=timestamp)])])
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        resp = ka._manager.run(ka._manager.send, req, node)
    finally:
        ka.close()
    [t] = resp.topics
    [p] = t.partitions
    return p.error_code, p.offset, p.leader_epoch


def _fetch_error(broker, node, topic, partition, current):
    """A Fetch from offset 0 naming `current` as the leader epoch, sent to
    node `node`: the partition's error code."""
    from kafka.protocol.consumer import FetchRequest as R
    req = R(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, isolation_level=0, session_id=0,
            session_epoch=-1, forgotten_topics_data=[], rack_id="",
            topics=[R.FetchTopic(topic=topic, partitions=[R.FetchTopic.FetchPartition(
                partition=partition, current_leader_epoch=current, fetch_offset=0, log_start_offset=-1,
                partition_max_bytes=1 << 20)])])
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # Fetch v13+ names topics by id.
        md = ka._manager.run(ka._manager.send, MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic)]))
        req.topics[0].topic_id = md.topics[0].topic_id
        resp = ka._manager.run(ka._manager.send, req, node)
    finally:
        ka.close()
    [t] = resp.responses
    [p] = t.partitions
    return p.error_code


def test_a_new_leader_starts_a_new_epoch_that_clients_see_and_ask_about(broker_factory):
    broker = broker_factory(shards=2)
    topic = h.unique("epochs")
    h.create_topic(broker, topic, 2)
    before = _leader_epochs(broker, topic)
    assert {e for _, e in before.values()} == {0}, before
    moved = next(p for p, (leader, _) in before.items() if leader == 1)
    p = h.producer(broker)
    for i in range(5):
        p.produce(topic, value=f"a{i}".encode(), partition=moved)
    assert p.flush(30) == 0
    # A consumer that read the first epoch's records goes on reading after
    # the change of leader (librdkafka validates its position with
    # OffsetForLeaderEpoch when it sees the new epoch).
    c = h.consumer(broker)
    c.assign([CTP(topic, moved, 0)])
    first = _poll_n(c, 5)
    assert [m.value() for m in first] == [f"a{i}".encode() for i in range(5)]
    assert {m.leader_epoch() for m in first} == {0}

    broker.stop()
    broker.shards = 1
    broker.start()
    after = _leader_epochs(broker, topic)
    assert after[moved] == (0, 1), after
    assert after[1 - moved] == (0, 0), after
    p = h.producer(broker)
    for i in range(5):
        p.produce(topic, value=f"b{i}".encode(), partition=moved)
    assert p.flush(30) == 0
    second = _poll_n(c, 5, timeout=60)
    c.close()
    assert [m.value() for m in second] == [f"b{i}".encode() for i in range(5)]
    assert [m.offset() for m in second] == list(range(5, 10))
    assert {m.leader_epoch() for m in second} == {1}, "the new leader stamps its epoch"
    # Epoch 0 ended where epoch 1 began; the current epoch ends at the log
    # end; a stale or unknown current epoch is refused.
    assert _epoch_end(broker, 0, topic, moved, 0) == (0, 0, 5)
    assert _epoch_end(broker, 0, topic, moved, 1, current=1) == (0, 1, 10)
    assert _epoch_end(broker, 0, topic, moved, 0, current=0)[0] == FENCED_LEADER_EPOCH
    assert _epoch_end(broker, 0, topic, moved, 0, current=7)[0] == UNKNOWN_LEADER_EPOCH
    # ListOffsets names the epoch that wrote the offset it finds (the
    # newest for the latest offset), and fences a stale current epoch.
    assert _list_offset(broker, 0, topic, moved, -2) == (0, 0, 0)
    assert _list_offset(broker, 0, topic, moved, -1, current=1) == (0, 10, 1)
    assert _list_offset(broker, 0, topic, moved, -1, current=0)[0] == FENCED_LEADER_EPOCH
    # So does Fetch.
    assert _fetch_error(broker, 0, topic, moved, 1) == 0
    assert _fetch_error(broker, 0, topic, moved, 0) == FENCED_LEADER_EPOCH
    assert _fetch_error(broker, 0, topic, moved, 2) == UNKNOWN_LEADER_EPOCH
    # The epochs survive a restart (they are in the metadata log, and in a
    # snapshot of it).
    broker.restart()
    assert _leader_epochs(broker, topic)[moved] == (0, 1)
