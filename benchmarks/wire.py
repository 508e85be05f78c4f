"""A minimal stdlib-only Kafka client, framed by hand: Metadata v1 (cold start, scale),
ApiVersions v0, and the Produce v8 / Fetch v11 frames of the broker-bound load generator.

Hand-built so that the benchmark's client side costs next to nothing and depends on none of
the code under test. Only non-flexible versions are used (request header v1, response header
v0): every broker compared here supports them.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

METADATA_KEY = 3
METADATA_VERSION = 1
CLIENT_ID = b"msklite-bench"


def metadata_v1_request(correlation_id: int) -> bytes:
    """Size-prefixed Metadata v1 request for all topics (topics array = -1, i.e. null)."""
    body = struct.pack(
        f">hhih{len(CLIENT_ID)}si",
        METADATA_KEY,
        METADATA_VERSION,
        correlation_id,
        len(CLIENT_ID),
        CLIENT_ID,
        -1,
    )
    return struct.pack(">i", len(body)) + body


@dataclass(frozen=True)
class MetadataV1:
    correlation_id: int
    brokers: list[tuple[int, str, int, str | None]]  # node id, host, port, rack
    controller_id: int
    topic_count: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def int32(self) -> int:
        return self.take(">i")[0]

    def string(self) -> str | None:
        (n,) = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def parse_metadata_v1(payload: bytes) -> MetadataV1:
    """Parse a response payload (after the size prefix): header v0, then the v1 body.

    Topics are only counted, not decoded.
    """
    r = _Reader(payload)
    correlation_id, brokers, controller_id = _head(r)
    topic_count = max(r.int32(), 0)
    return MetadataV1(correlation_id, brokers, controller_id, topic_count)


def _head(r: _Reader) -> tuple[int, list[tuple[int, str, int, str | None]], int]:
    """(correlation id, brokers, controller id): what precedes the topics."""
    correlation_id = r.int32()
    brokers = []
    for _ in range(r.int32()):
        node_id = r.int32()
        host = r.string() or ""
        port = r.int32()
        rack = r.string()
        brokers.append((node_id, host, port, rack))
    return correlation_id, brokers, r.int32()


def parse_metadata_v1_full(payload: bytes) -> tuple[MetadataV1, dict[str, list[PartitionMeta]]]:
    """Like `parse_metadata_v1`, and also every topic's partitions (leader, replica count)."""
    r = _Reader(payload)
    correlation_id, brokers, controller_id = _head(r)
    topics: dict[str, list[PartitionMeta]] = {}
    for _ in range(max(r.int32(), 0)):
        (topic_error,) = r.take(">h")
        name = r.string() or ""
        r.take(">b")  # is_internal
        parts = []
        for _ in range(max(r.int32(), 0)):
            error, index, leader = r.take(">hii")
            replicas = r.int32()
            r.pos += 4 * max(replicas, 0)
            isr = r.int32()
            r.pos += 4 * max(isr, 0)
            parts.append(PartitionMeta(index, leader, error or topic_error, replicas, isr))
        topics[name] = parts
    meta = MetadataV1(correlation_id, brokers, controller_id, len(topics))
    return meta, topics


@dataclass(frozen=True)
class PartitionMeta:
    index: int
    leader: int
    error_code: int
    replicas: int
    isr: int


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    """One size-prefixed response frame's payload (correlation id first)."""
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, size)


def metadata_full(
    sock: socket.socket, correlation_id: int = 1
) -> tuple[MetadataV1, dict[str, list[PartitionMeta]]]:
    """One Metadata v1 round trip for all topics, fully parsed."""
    sock.sendall(metadata_v1_request(correlation_id))
    meta, topics = parse_metadata_v1_full(recv_frame(sock))
    if meta.correlation_id != correlation_id:
        raise ConnectionError(f"correlation id {meta.correlation_id} != {correlation_id}")
    return meta, topics


def metadata_roundtrip(sock: socket.socket, correlation_id: int = 1) -> MetadataV1:
    sock.sendall(metadata_v1_request(correlation_id))
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    meta = parse_metadata_v1(_recv_exact(sock, size))
    if meta.correlation_id != correlation_id:
        raise ConnectionError(f"correlation id {meta.correlation_id} != {correlation_id}")
    return meta


@dataclass(frozen=True)
class FirstAnswer:
    connected_at: float  # perf_counter when a TCP connection was first accepted
    answered_at: float  # perf_counter when the whole Metadata response had arrived
    attempts: int  # connect attempts, refused ones included
    metadata: MetadataV1


def first_metadata(
    host: str,
    port: int,
    timeout: float,
    retry_sleep: float = 0.0005,
    check_alive: Callable[[], None] = lambda: None,
) -> FirstAnswer:
    """Connect-retry against (host, port) until it accepts, then one Metadata v1 round trip.

    A refused connection on loopback fails at once, so the loop polls every `retry_sleep` s
    (kept short but non-zero so that the poller does not take a core from the starting server).
    `check_alive` runs after each refusal and raises if the server has already exited, so that
    a server that cannot start fails the run at once instead of after `timeout`.
    """
    deadline = time.perf_counter() + timeout
    attempts = 0
    while True:
        attempts += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(max(deadline - time.perf_counter(), 0.001))
            try:
                sock.connect((host, port))
            except (ConnectionRefusedError, ConnectionResetError):
                if time.perf_counter() >= deadline:
                    raise TimeoutError(
                        f"{host}:{port} refused connections for {timeout} s"
                    ) from None
                check_alive()
                time.sleep(retry_sleep)
                continue
            connected_at = time.perf_counter()
            meta = metadata_roundtrip(sock)
            return FirstAnswer(connected_at, time.perf_counter(), attempts, meta)
        finally:
            sock.close()


# --- Produce v8 and Fetch v11 frames for the broker-bound load generator ---

PRODUCE_KEY, PRODUCE_VERSION = 0, 8
FETCH_KEY, FETCH_VERSION = 1, 11
API_VERSIONS_KEY = 18
_REQUEST_HEADER = struct.Struct(f">ihhih{len(CLIENT_ID)}s")  # size, key, version, corr, client id


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request_header(api_key: int, version: int, correlation_id: int, body_size: int) -> bytes:
    """Size prefix and request header v1 for a body of `body_size` bytes."""
    size = _REQUEST_HEADER.size - 4 + body_size
    return _REQUEST_HEADER.pack(size, api_key, version, correlation_id, len(CLIENT_ID), CLIENT_ID)


def produce_body_prefix(topic: str, partition: int, acks: int, timeout_ms: int, size: int) -> bytes:
    """Produce v8 body up to the records of one partition (`size` bytes of records follow).

    The records go out as a separate buffer (`socket.sendmsg`), so one pre-encoded batch serves
    every request without being copied.
    """
    return (
        struct.pack(
            ">hhii", -1, acks, timeout_ms, 1
        )  # transactional_id null, acks, timeout, 1 topic
        + _str(topic)
        + struct.pack(">iii", 1, partition, size)  # 1 partition, its index, records length
    )


def parse_produce_v8(payload: bytes | memoryview) -> tuple[int, int, int]:
    """(correlation id, error code, base offset) of a 1-topic, 1-partition Produce v8 answer."""
    r = _Reader(bytes(payload))
    correlation_id = r.int32()
    if r.int32() != 1:
        raise ConnectionError("Produce answer without exactly one topic")
    r.string()
    if r.int32() != 1:
        raise ConnectionError("Produce answer without exactly one partition")
    _index, error, base_offset = r.take(">ihq")
    return correlation_id, error, base_offset


def fetch_body(
    topic: str, partition: int, offset: int, partition_max_bytes: int, max_wait_ms: int = 0
) -> bytes:
    """Fetch v11 body: one partition from `offset`, no fetch session, read_uncommitted."""
    return (
        struct.pack(">iiiibii", -1, max_wait_ms, 1, partition_max_bytes, 0, 0, -1)
        + struct.pack(">i", 1)
        + _str(topic)
        + struct.pack(">iiiqqi", 1, partition, -1, offset, -1, partition_max_bytes)
        + struct.pack(">i", 0)  # forgotten topics
        + _str("")  # rack id
    )


@dataclass(frozen=True)
class FetchAnswer:
    correlation_id: int
    error_code: int  # the top-level one, else the partition's
    high_watermark: int
    records_bytes: int
    first_offset: int  # base offset of the first batch, -1 when no records


_FETCH_HEAD = struct.Struct(">iihi")  # correlation, throttle, error, session id
_FETCH_PART = struct.Struct(">ihqqq")  # index, error, high watermark, last stable, log start


def parse_fetch_v11(payload: bytes | memoryview) -> FetchAnswer:
    """The first partition of a Fetch v11 answer; record bytes are measured, not decoded."""
    buf = memoryview(payload)
    correlation_id, _throttle, error, _session = _FETCH_HEAD.unpack_from(buf, 0)
    pos = _FETCH_HEAD.size
    (topics,) = struct.unpack_from(">i", buf, pos)
    pos += 4
    if topics < 1:
        return FetchAnswer(correlation_id, error, -1, 0, -1)
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2 + n + 4  # topic name, partition count
    _index, part_error, hw, _lso, _start = _FETCH_PART.unpack_from(buf, pos)
    pos += _FETCH_PART.size
    (aborted,) = struct.unpack_from(">i", buf, pos)
    pos += 4 + 16 * max(aborted, 0) + 4  # aborted transactions, preferred read replica
    (size,) = struct.unpack_from(">i", buf, pos)
    pos += 4
    first = struct.unpack_from(">q", buf, pos)[0] if size >= 12 else -1
    return FetchAnswer(correlation_id, error or part_error, hw, max(size, 0), first)


def api_versions(sock: socket.socket, correlation_id: int = 1) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: {api key: (min version, max version)}."""
    sock.sendall(request_header(API_VERSIONS_KEY, 0, correlation_id, 0))
    r = _Reader(recv_frame(sock))
    if r.int32() != correlation_id:
        raise ConnectionError("ApiVersions: correlation id mismatch")
    (error,) = r.take(">h")
    if error:
        raise ConnectionError(f"ApiVersions error {error}")
    out = {}
    for _ in range(r.int32()):
        key, lo, hi = r.take(">hhh")
        out[key] = (lo, hi)
    return out
