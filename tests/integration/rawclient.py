"""A minimal blocking Kafka client for tests that must send what real clients never would:
raw frames, built with kafka-python's spec-generated request classes or by hand."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Iterator
from typing import Any

from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 5.0) -> None:
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation = 0

    @classmethod
    def tls(cls, bootstrap: str | None, ca: str | None) -> RawClient:
        """A raw client on the first broker of a TLS or SASL_SSL listener's bootstrap string,
        its TLS handshake done (the cluster's CA, the broker's host name checked)."""
        assert bootstrap is not None and ca is not None
        raw = cls(bootstrap)
        host = bootstrap.split(",")[0].rsplit(":", 1)[0]
        ctx = ssl.create_default_context(cafile=ca)
        raw.sock = ctx.wrap_socket(raw.sock, server_hostname=host)
        return raw

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.send_raw(struct.pack(">i", len(payload)) + payload)

    def _read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed by the broker")
            buf += chunk
        return bytes(buf)

    def read_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._read_exact(4))
        return self._read_exact(size)

    def is_closed_by_peer(self) -> bool:
        """True when the broker closed the connection (EOF or reset) within the timeout."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def request(self, req: Any, version: int) -> Any:
        """Send a kafka-python request object and decode the response at the same version."""
        self.correlation += 1
        req.with_header(correlation_id=self.correlation, client_id="raw")
        self.send_raw(bytes(req.encode(version=version, header=True, framed=True)))
        frame = self.read_frame()
        resp_cls = req.header.get_response_class()
        resp = resp_cls.decode(frame, version=version, header=True)
        assert resp.header.correlation_id == self.correlation
        return resp

    def send_only(self, req: Any, version: int) -> None:
        self.correlation += 1
        req.with_header(correlation_id=self.correlation, client_id="raw")
        self.send_raw(bytes(req.encode(version=version, header=True, framed=True)))

    @staticmethod
    @contextlib.contextmanager
    def free_port_block(n: int) -> Iterator[int]:
        """A base port P such that P..P+n-1 were all free a moment ago on 127.0.0.1."""
        for _ in range(50):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                base = probe.getsockname()[1]
            if base + n > 65535:
                continue
            try:
                held = []
                for i in range(n):
                    s = socket.socket()
                    held.append(s)
                    s.bind(("127.0.0.1", base + i))
            except OSError:
                continue
            finally:
                for s in held:
                    s.close()
            yield base
            return
        raise RuntimeError("no block of free ports found")

    def api_versions(self) -> Any:
        resp = self.request(ApiVersionsRequest(version=0), 0)
        assert isinstance(resp, ApiVersionsResponse)
        return resp


def header(api_key: int, version: int, correlation: int, client_id: bytes = b"raw") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation, len(client_id)) + client_id
