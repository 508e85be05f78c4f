"""A minimal stdlib-only Kafka client: one Metadata v1 request, framed by hand."""

from __future__ import annotations

import socket
import struct
import time
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
    correlation_id = r.int32()
    brokers = []
    for _ in range(r.int32()):
        node_id = r.int32()
        host = r.string() or ""
        port = r.int32()
        rack = r.string()
        brokers.append((node_id, host, port, rack))
    controller_id = r.int32()
    topic_count = max(r.int32(), 0)
    return MetadataV1(correlation_id, brokers, controller_id, topic_count)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    return bytes(buf)


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
    host: str, port: int, timeout: float, retry_sleep: float = 0.0005
) -> FirstAnswer:
    """Connect-retry against (host, port) until it accepts, then one Metadata v1 round trip.

    A refused connection on loopback fails at once, so the loop polls every `retry_sleep` s
    (kept short but non-zero so that the poller does not take a core from the starting server).
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
                time.sleep(retry_sleep)
                continue
            connected_at = time.perf_counter()
            meta = metadata_roundtrip(sock)
            return FirstAnswer(connected_at, time.perf_counter(), attempts, meta)
        finally:
            sock.close()
