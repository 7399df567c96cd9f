"""Group-protocol requests at exact versions, encoded and decoded by
kafka-python's schema-driven protocol classes (an independent codec), over a
plain socket: the tests pick versions and send what normal clients would not
(stale generations, fenced instance ids, wrong coordinators)."""

import socket
import struct
import threading

from kafka.protocol.consumer.group import (HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
                                           OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
                                           SyncGroupRequest)
from kafka.protocol.admin.groups import DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.metadata import FindCoordinatorRequest

__all__ = ["Conn", "HeartbeatRequest", "JoinGroupRequest", "LeaveGroupRequest", "OffsetCommitRequest",
           "OffsetDeleteRequest", "OffsetFetchRequest", "SyncGroupRequest", "DeleteGroupsRequest",
           "DescribeGroupsRequest", "ListGroupsRequest", "FindCoordinatorRequest"]

NONE = 0
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86


class Conn:
    """One connection; `call` sends a request and returns the decoded response."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.correlation = 0
        self.lock = threading.Lock()

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed")
            out += chunk
        return out

    def call(self, request, version):
        with self.lock:
            self.correlation += 1
            request.with_header(correlation_id=self.correlation, client_id="sluice-e2e")
            self.sock.sendall(bytes(request.encode(version=version, header=True, framed=True)))
            (size,) = struct.unpack(">i", self._read(4))
            data = self._read(size)
        response_class = type(request).__name__.replace("Request", "Response")
        module = __import__(type(request).__module__, fromlist=[response_class])
        return getattr(module, response_class).decode(data, version=version, header=True)

    def close(self):
        self.sock.close()
