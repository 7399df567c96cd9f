"""Writes the seed corpus of the fuzz harness (src/protocol/fuzz_tests.rs):
request frames (without the 4-byte length) and record batches as real
clients build them, encoded by kafka-python's protocol classes.
Run from the repository root: .venv/bin/python fuzz/make_corpus.py"""

import pathlib

from kafka.protocol.admin.groups import DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.admin.topics import CreateTopicsRequest
from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest
from kafka.protocol.consumer.group import (HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,
                                           OffsetFetchRequest, SyncGroupRequest)
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import ProduceRequest
from kafka.record.default_records import DefaultRecordBatchBuilder

OUT = pathlib.Path("fuzz/corpus")


def batch(codec=0, n=3, headers=(), pid=-1, seq=-1):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                  producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                                  base_sequence=seq, batch_size=1 << 20)
    for i in range(n):
        b.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"value-%d" % i * 3,
                 headers=list(headers))
    return bytes(b.build())


def write(kind, name, data):
    (OUT / kind / f"{name}.bin").write_bytes(data)


def request(name, req, version):
    req.with_header(correlation_id=7, client_id="fuzz")
    # encode(framed=False, header=True): header + body, as the broker reads it.
    write("requests", name, bytes(req.encode(version=version, header=True)))


def main():
    batches = {
        "plain": batch(),
        "headers": batch(headers=[("h", b"\x00\xff"), ("e", b"")]),
        "gzip": batch(codec=1),
        "snappy": batch(codec=2),
        "lz4": batch(codec=3),
        "zstd": batch(codec=4),
        "idempotent": batch(pid=5, seq=0),
    }
    for name, data in batches.items():
        write("batches", name, data)
    P = ProduceRequest
    for v in (3, 9):
        request(f"produce_v{v}", P(acks=-1, timeout_ms=1000, topic_data=[
            P.TopicProduceData(name="t", partition_data=[
                P.TopicProduceData.PartitionProduceData(index=0, records=batches["plain"])])]), v)
    request("produce_zstd_v9", P(acks=1, timeout_ms=1000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[
            P.TopicProduceData.PartitionProduceData(index=1, records=batches["zstd"])])]), 9)
    F = FetchRequest
    for v in (4, 12):
        request(f"fetch_v{v}", F(replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, topics=[
            F.FetchTopic(topic="t", partitions=[F.FetchTopic.FetchPartition(partition=0, fetch_offset=0,
                                                                           partition_max_bytes=1 << 20)])]), v)
    request("api_versions_v3", ApiVersionsRequest(client_software_name="fuzz", client_software_version="1"), 3)
    for v in (1, 12):
        request(f"metadata_v{v}", MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="t")]), v)
    request("list_offsets_v1", ListOffsetsRequest(replica_id=-1, topics=[
        ListOffsetsRequest.ListOffsetsTopic(name="t", partitions=[
            ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, timestamp=-2)])]), 1)
    request("create_topics_v5", CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(
        name="t", num_partitions=3, replication_factor=1, assignments=[], configs=[])], timeout_ms=1000), 5)
    J = JoinGroupRequest
    request("join_group_v5", J(group_id="g", session_timeout_ms=10000, rebalance_timeout_ms=10000, member_id="",
                               protocol_type="consumer",
                               protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")]), 5)
    S = SyncGroupRequest
    request("sync_group_v3", S(group_id="g", generation_id=1, member_id="m", assignments=[
        S.SyncGroupRequestAssignment(member_id="m", assignment=b"\x00\x01")]), 3)
    request("heartbeat_v3", HeartbeatRequest(group_id="g", generation_id=1, member_id="m"), 3)
    C = OffsetCommitRequest
    request("offset_commit_v8", C(group_id="g", generation_id_or_member_epoch=1, member_id="m", topics=[
        C.OffsetCommitRequestTopic(name="t", partitions=[
            C.OffsetCommitRequestTopic.OffsetCommitRequestPartition(partition_index=0, committed_offset=5)])]), 8)
    G = OffsetFetchRequest.OffsetFetchRequestGroup
    request("offset_fetch_v8", OffsetFetchRequest(groups=[G(group_id="g", topics=None)]), 8)
    request("find_coordinator_v4", FindCoordinatorRequest(key_type=0, coordinator_keys=["g", "h"]), 4)
    request("describe_groups_v5", DescribeGroupsRequest(groups=["g"]), 5)
    request("list_groups_v4", ListGroupsRequest(states_filter=["Stable"]), 4)


if __name__ == "__main__":
    main()
