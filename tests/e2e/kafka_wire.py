"""Minimal hand-written Kafka wire-protocol encoder/decoder for the e2e tests.

Everything here is built with ``struct`` on purpose: the tests that use it send
malformed or hand-crafted requests that real client libraries refuse to build.
``test_wire_selfcheck.py`` cross-checks these encoders against kafka-python's
independent implementation, so a failure against the broker is not a bug here.
"""

import socket
import struct
import time

# ---------------------------------------------------------------------------
# Error codes / API keys used by the tests
# ---------------------------------------------------------------------------
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
INVALID_RECORD = 87
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_METADATA = 3
API_API_VERSIONS = 18

# ---------------------------------------------------------------------------
# CRC-32C (Castagnoli)
# ---------------------------------------------------------------------------


def _make_crc32c_table():
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c_pure(data, crc=0):
    """Pure-Python CRC-32C; slow but dependency-free reference."""
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # fast C implementation from PyPI if present
    import crc32c as _crc32c_mod

    def crc32c(data):
        return _crc32c_mod.crc32c(bytes(data))
except ImportError:  # pragma: no cover
    crc32c = crc32c_pure


# ---------------------------------------------------------------------------
# Primitive encoders
# ---------------------------------------------------------------------------


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def u32(v):
    return struct.pack(">I", v)


def string(s):
    """Kafka STRING / NULLABLE_STRING (int16 length)."""
    if s is None:
        return i16(-1)
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return i16(len(b)) + b


def nbytes(b):
    """Kafka BYTES / NULLABLE_BYTES / RECORDS (int32 length)."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + bytes(b)


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    """Zig-zag signed varint/varlong as used in record v2."""
    return uvarint((n << 1) ^ (n >> 63))


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode("utf-8")
    return uvarint(len(b) + 1) + b


# ---------------------------------------------------------------------------
# Record batch v2 (magic 2)
# ---------------------------------------------------------------------------


def encode_record(offset_delta, timestamp_delta, key, value, headers=()):
    body = bytearray()
    body += i8(0)  # attributes
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    if key is None:
        body += varint(-1)
    else:
        body += varint(len(key)) + bytes(key)
    if value is None:
        body += varint(-1)
    else:
        body += varint(len(value)) + bytes(value)
    body += varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode("utf-8")
        body += varint(len(hkb)) + hkb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + bytes(hv)
    return varint(len(body)) + bytes(body)


def build_record_batch(records, base_timestamp=None, base_offset=0,
                       partition_leader_epoch=-1, producer_id=-1,
                       producer_epoch=-1, base_sequence=-1,
                       crc_override=None, timestamp_step=0):
    """Build an uncompressed v2 RecordBatch.

    ``records`` is a list of (key, value) or (key, value, headers) tuples.
    ``crc_override`` replaces the correct CRC (used to build corrupt batches).
    """
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    recs = bytearray()
    for i, r in enumerate(records):
        key, value = r[0], r[1]
        headers = r[2] if len(r) > 2 else ()
        recs += encode_record(i, i * timestamp_step, key, value, headers)
    n = len(records)
    return frame_batch(recs, n, base_timestamp=base_timestamp,
                       max_timestamp=base_timestamp + (n - 1) * timestamp_step,
                       base_offset=base_offset, partition_leader_epoch=partition_leader_epoch,
                       producer_id=producer_id, producer_epoch=producer_epoch,
                       base_sequence=base_sequence, crc_override=crc_override)


def frame_batch(records_blob, count, attributes=0, base_timestamp=None, max_timestamp=None,
                base_offset=0, partition_leader_epoch=-1, producer_id=-1, producer_epoch=-1,
                base_sequence=-1, crc_override=None):
    """A v2 RecordBatch around ``records_blob`` (``count`` encoded records, or
    their compressed form when ``attributes`` names a codec), with a correct
    CRC unless ``crc_override`` replaces it."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    if max_timestamp is None:
        max_timestamp = base_timestamp
    after_crc = (
        i16(attributes)  # codec in the low 3 bits; CreateTime, not transactional
        + i32(count - 1)  # lastOffsetDelta
        + i64(base_timestamp)
        + i64(max_timestamp)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(count)
        + bytes(records_blob)
    )
    crc = crc32c(after_crc) if crc_override is None else crc_override
    after_len = i32(partition_leader_epoch) + i8(2) + u32(crc) + after_crc
    return i64(base_offset) + i32(len(after_len)) + after_len


def decode_record_batches(data):
    """Decode a RECORDS blob (v2 batches only) into a list of dicts.

    Returns [{'offset', 'timestamp', 'key', 'value', 'headers'}]. A trailing
    partial batch (allowed by Kafka in fetch responses) is ignored.
    """
    out = []
    pos = 0
    data = bytes(data)
    while pos + 12 <= len(data):
        base_offset, batch_len = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + batch_len
        if end > len(data):
            break
        magic = data[pos + 16]
        if magic != 2:
            raise ValueError(f"unsupported magic {magic} at {pos}")
        (crc,) = struct.unpack_from(">I", data, pos + 17)
        body = data[pos + 21:end]
        if crc32c(body) != crc:
            raise ValueError(f"bad CRC in fetched batch at offset {base_offset}")
        (attributes, _last_delta, base_ts, _max_ts, _pid, _pepoch, _bseq,
         count) = struct.unpack_from(">hiqqqhii", body, 0)
        if attributes & 0x07:
            raise ValueError("compressed batches not supported by test decoder")
        rpos = struct.calcsize(">hiqqqhii")
        for _ in range(count):
            length, rpos = _read_varint(body, rpos)
            rend = rpos + length
            rpos += 1  # attributes
            ts_delta, rpos = _read_varint(body, rpos)
            off_delta, rpos = _read_varint(body, rpos)
            klen, rpos = _read_varint(body, rpos)
            key = None if klen < 0 else body[rpos:rpos + klen]
            rpos += max(klen, 0)
            vlen, rpos = _read_varint(body, rpos)
            value = None if vlen < 0 else body[rpos:rpos + vlen]
            rpos += max(vlen, 0)
            nh, rpos = _read_varint(body, rpos)
            headers = []
            for _h in range(nh):
                hkl, rpos = _read_varint(body, rpos)
                hk = body[rpos:rpos + hkl].decode()
                rpos += hkl
                hvl, rpos = _read_varint(body, rpos)
                hv = None if hvl < 0 else body[rpos:rpos + hvl]
                rpos += max(hvl, 0)
                headers.append((hk, hv))
            if rpos != rend:
                raise ValueError("record length mismatch")
            out.append({"offset": base_offset + off_delta,
                        "timestamp": base_ts + ts_delta,
                        "key": key, "value": value, "headers": headers})
        pos = end
    return out


def stored_batches_end(data):
    """Where the batches of a segment file's bytes end: the first zero
    length (the file's padding) or a batch cut short stops the walk."""
    pos = 0
    while pos + 12 <= len(data):
        _base, length = struct.unpack_from(">qi", data, pos)
        if length == 0 or pos + 12 + length > len(data):
            break
        pos += 12 + length
    return pos


def _read_varint(buf, pos):
    shift = 0
    result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


# ---------------------------------------------------------------------------
# Request framing
# ---------------------------------------------------------------------------


def request_header(api_key, api_version, correlation_id, client_id="sluice-e2e",
                   flexible=False):
    h = i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)
    if flexible:
        h += uvarint(0)  # empty tagged fields
    return h


def frame(payload):
    return i32(len(payload)) + payload


def request_frame(api_key, api_version, correlation_id, body, client_id="sluice-e2e",
                  flexible=False):
    return frame(request_header(api_key, api_version, correlation_id, client_id,
                                flexible) + body)


# --- Produce v3 -------------------------------------------------------------


def produce_v3_body(topic, partition, records, acks=1, timeout_ms=10000,
                    transactional_id=None):
    return (string(transactional_id) + i16(acks) + i32(timeout_ms)
            + i32(1) + string(topic)
            + i32(1) + i32(partition) + nbytes(records))


def parse_produce_v3_response(body):
    """Returns {(topic, partition): (error_code, base_offset)}."""
    r = Reader(body)
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            part = r.i32()
            err = r.i16()
            base_offset = r.i64()
            r.i64()  # log_append_time_ms
            out[(topic, part)] = (err, base_offset)
    r.i32()  # throttle_time_ms
    r.expect_end()
    return out


# --- Fetch v4 ---------------------------------------------------------------


def fetch_v4_body(topic, partition, offset, max_wait_ms=100, min_bytes=1,
                  max_bytes=1 << 20, partition_max_bytes=1 << 20):
    return (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + i32(1) + string(topic)
            + i32(1) + i32(partition) + i64(offset) + i32(partition_max_bytes))


def parse_fetch_v4_response(body):
    """Returns {(topic, partition): (error_code, high_watermark, records_bytes)}."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            part = r.i32()
            err = r.i16()
            hw = r.i64()
            r.i64()  # last_stable_offset
            n_aborted = r.i32()
            for _ in range(max(n_aborted, 0)):
                r.i64()
                r.i64()
            records = r.nbytes()
            out[(topic, part)] = (err, hw, records)
    r.expect_end()
    return out


# --- Metadata v1 ------------------------------------------------------------


def metadata_v1_body(topics=None):
    return array(topics, string)


def metadata_v4_body(topics=None, allow_auto_topic_creation=False):
    return array(topics, string) + i8(1 if allow_auto_topic_creation else 0)


def parse_metadata_v1_response(body):
    return _parse_metadata_response(body, 1)


def parse_metadata_v4_response(body):
    return _parse_metadata_response(body, 4)


def _parse_metadata_response(body, version):
    r = Reader(body)
    if version >= 3:
        r.i32()  # throttle_time_ms
    brokers = {}
    for _ in range(r.i32()):
        node = r.i32()
        host = r.string()
        port = r.i32()
        r.string()  # rack
        brokers[node] = (host, port)
    if version >= 2:
        r.string()  # cluster_id
    controller = r.i32()
    topics = {}
    for _ in range(r.i32()):
        terr = r.i16()
        name = r.string()
        r.i8()  # is_internal
        parts = {}
        for _ in range(r.i32()):
            perr = r.i16()
            idx = r.i32()
            leader = r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            parts[idx] = {"error": perr, "leader": leader, "replicas": replicas,
                          "isr": isr}
        topics[name] = {"error": terr, "partitions": parts}
    r.expect_end()
    return {"brokers": brokers, "controller": controller, "topics": topics}


# --- ApiVersions ------------------------------------------------------------


def api_versions_v3_body(software_name="sluice-e2e", software_version="1.0"):
    return compact_string(software_name) + compact_string(software_version) + uvarint(0)


def parse_api_versions_v0_response(body):
    """Returns (error_code, {api_key: (min, max)})."""
    r = Reader(body)
    err = r.i16()
    apis = {}
    for _ in range(r.i32()):
        k = r.i16()
        apis[k] = (r.i16(), r.i16())
    r.expect_end()
    return err, apis


# ---------------------------------------------------------------------------
# Decoding helpers
# ---------------------------------------------------------------------------


class Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def i8(self):
        return self._take(">b")

    def i16(self):
        return self._take(">h")

    def i32(self):
        return self._take(">i")

    def i64(self):
        return self._take(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n]
        if len(s) != n:
            raise ValueError("truncated string")
        self.pos += n
        return s.decode("utf-8")

    def nbytes(self):
        n = self.i32()
        if n < 0:
            return None
        b = self.data[self.pos:self.pos + n]
        if len(b) != n:
            raise ValueError("truncated bytes")
        self.pos += n
        return b

    def expect_end(self):
        if self.pos != len(self.data):
            raise ValueError(
                f"{len(self.data) - self.pos} unexpected trailing bytes in response "
                f"(parsed {self.pos} of {len(self.data)})")


# ---------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------


class ConnectionClosed(Exception):
    pass


class WireConn:
    """A blocking raw TCP connection to one broker port."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._corr = 0
        self.closed_during_send = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_correlation_id(self):
        self._corr += 1
        return self._corr

    def send(self, data, tolerate_close=True):
        """Send bytes. A broker that rejects the input may close (or reset)
        the connection while we are still sending; that is remembered and
        reported as "closed" by closed_or_response()/wait_closed()."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not tolerate_close:
                raise
            self.closed_during_send = True

    def _recv_exact(self, n, timeout):
        self.sock.settimeout(timeout)
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout=None):
        """Read one size-prefixed response frame; returns the payload."""
        timeout = self.timeout if timeout is None else timeout
        (n,) = struct.unpack(">i", self._recv_exact(4, timeout))
        if n < 4 or n > 200 * 1024 * 1024:
            raise ValueError(f"implausible response frame length {n}")
        return self._recv_exact(n, timeout)

    def request(self, api_key, api_version, body, flexible_header=False,
                timeout=None):
        """Send a request and return the response body (after correlation id).

        Assumes response header v0 (non-flexible), which holds for every
        request the tests send (and for ApiVersions at any version).
        """
        corr = self.next_correlation_id()
        self.send(request_frame(api_key, api_version, corr, body,
                                flexible=flexible_header), tolerate_close=False)
        payload = self.recv_frame(timeout)
        (got_corr,) = struct.unpack_from(">i", payload, 0)
        if got_corr != corr:
            raise AssertionError(
                f"correlation id mismatch: sent {corr}, got {got_corr}")
        return payload[4:]

    def closed_or_response(self, timeout=10.0):
        """Wait for the broker to either close the connection or send a frame.

        Returns ("closed", None) or ("response", payload). Raises
        AssertionError if neither happens within ``timeout`` seconds.
        """
        if self.closed_during_send:
            return "closed", None
        try:
            payload = self.recv_frame(timeout)
            return "response", payload
        except ConnectionClosed:
            return "closed", None
        except socket.timeout:
            raise AssertionError(
                f"broker neither answered nor closed the connection within "
                f"{timeout}s") from None

    def wait_closed(self, timeout=10.0):
        """Assert the broker closes the connection (any bytes before EOF are
        drained and returned)."""
        if self.closed_during_send:
            return b""
        deadline = time.monotonic() + timeout
        got = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"broker did not close the connection within {timeout}s "
                    f"(received {len(got)} bytes)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return bytes(got)
            except socket.timeout:
                continue
            if not chunk:
                return bytes(got)
            got += chunk
