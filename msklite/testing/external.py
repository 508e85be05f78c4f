"""A cluster in another process, for the pytest plugin's out-of-process modes: one started
from another interpreter (`--msklite-python`, e.g. the python of a venv that holds msklite and
its dependencies) or one already running (`--msklite-bootstrap`).

Standard library only (plus msklite.config and msklite.errors), so that the plugin runs in an
application's environment that has msklite installed without its dependencies
(`pip install --no-deps msklite`).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
from collections.abc import Mapping

from msklite.config import config_text
from msklite.errors import ErrorCode, KafkaError

_CREATE_TOPICS = 19
_CREATE_TOPICS_VERSION = 4  # the last version before flexible encoding (v5)


class ExternalCluster:
    """What the fixtures hand out in the out-of-process modes: the bootstrap string and the
    admin calls that work over the wire."""

    def __init__(self, bootstrap_servers: str, process: subprocess.Popen[str] | None = None):
        self.bootstrap_servers = bootstrap_servers
        self._process = process

    @classmethod
    def start(
        cls,
        python: str,
        brokers: int = 3,
        config: Mapping[str, object] | None = None,
        kafka_version: str | None = None,
        timeout: float = 60.0,
    ) -> ExternalCluster:
        """`python -m msklite serve` on free loopback ports with a temporary data directory;
        returns once it prints its bootstrap string."""
        args = [python, "-m", "msklite", "serve", "--ephemeral", "--port", "0"]
        args += ["--brokers", str(brokers)]
        if kafka_version is not None:
            args += ["--kafka-version", kafka_version]
        for key, value in (config or {}).items():
            args += ["--config", f"{key}={config_text(key, value)}"]
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("Bootstrap servers: "):
            process.kill()
            _, err = process.communicate(timeout=timeout)
            raise RuntimeError(f"{' '.join(args)} did not start: {line}{err}")
        return cls(line.split(": ", 1)[1].strip(), process)

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, object] | None = None,
    ) -> None:
        """CreateTopics over the wire; raises KafkaError as the Python API would."""
        body = struct.pack(">i", 1) + _string(name)
        body += struct.pack(
            ">ih", partitions, -1 if replication_factor is None else replication_factor
        )
        body += struct.pack(">i", 0)  # no manual assignment
        items = [(k, config_text(k, v)) for k, v in (configs or {}).items()]
        body += struct.pack(">i", len(items))
        for key, value in items:
            body += _string(key) + _string(value)
        body += struct.pack(">i?", 30_000, False)  # timeout_ms, validate_only
        response = self._request(_CREATE_TOPICS, _CREATE_TOPICS_VERSION, body)
        # throttle_time_ms, [name, error_code, error_message]
        pos = 8
        (length,) = struct.unpack_from(">h", response, pos)
        pos += 2 + length
        code, msg_len = struct.unpack_from(">hh", response, pos)
        pos += 4
        message = None if msg_len < 0 else response[pos : pos + msg_len].decode()
        if code != ErrorCode.NONE:
            raise KafkaError(ErrorCode(code), message)

    def _request(self, api_key: int, version: int, body: bytes) -> bytes:
        host, _, port = self.bootstrap_servers.split(",")[0].rpartition(":")
        header = struct.pack(">hhi", api_key, version, 1) + _string("msklite-plugin")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=30) as sock:
            frame = header + body
            sock.sendall(struct.pack(">i", len(frame)) + frame)
            (size,) = struct.unpack(">i", _read(sock, 4))
            return _read(sock, size)[4:]  # past the correlation id


def _string(s: str) -> bytes:
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def _read(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        buf += chunk
    return bytes(buf)
