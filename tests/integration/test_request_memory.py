"""Request memory across connections (Kafka's `queued.max.request.bytes`) over raw sockets:
clients that declare 100 MB frames and send a little cost what they sent, wait their turn
for the broker's request memory, and never stop the others' small requests."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from msklite import Cluster
from msklite.protocol.frame import MemoryPool
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient
from tests.requests import produce_request

MiB = 1024 * 1024
FRAME = 100 * MiB  # socket.request.max.bytes: the largest frame a client may declare
LIMIT = 20 * MiB


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster(brokers=1, config={"queued.max.request.bytes": str(LIMIT)}) as c:
        c.create_topic("t", partitions=1)
        yield c


def _produce_frame(size: int, correlation: int) -> tuple[Any, bytes]:
    """A Produce v3 request of exactly `size` bytes, framed: one partition of zeros."""

    def encode(records: bytes) -> tuple[Any, bytes]:
        req = produce_request("t", {0: records}, version=3)
        req.with_header(correlation_id=correlation, client_id="raw")
        return req, bytes(req.encode(version=3, header=True, framed=False))

    overhead = len(encode(b"")[1])
    req, body = encode(bytes(size - overhead))
    assert len(body) == size
    return req, struct.pack(">i", size) + body


def test_big_declared_frames_wait_for_memory_and_others_are_served(cluster: Cluster) -> None:
    pool: MemoryPool = cluster.brokers[1].server.pool
    addr = cluster.bootstrap_servers
    first = RawClient(addr)
    req, request = _produce_frame(FRAME, correlation=7)
    first.send_raw(request[:1000])
    wait_until(lambda: pool.reserved >= FRAME, "the first frame to be admitted")
    trickling = [RawClient(addr) for _ in range(9)]
    try:
        for c in trickling:
            c.send_raw(struct.pack(">i", FRAME) + b"\0" * 1000)
        wait_until(lambda: pool.waiting == 9, "the other frames to wait")
        # Ten clients declared 1,000 MB: the broker holds what they sent, and only one frame's
        # reservation (a frame may overshoot the limit by its own size, never more).
        assert pool.held < 64 * 1024
        assert pool.reserved <= LIMIT + FRAME
        # Small requests from other clients are still answered.
        with RawClient(addr) as other:
            assert other.api_versions().error_code == 0

        first.send_raw(request[1000:])
        frame = first.read_frame()
        resp = req.header.get_response_class().decode(frame, version=3, header=True)
        assert resp.header.correlation_id == 7
        [topic] = resp.responses
        [part] = topic.partition_responses
        assert part.error_code != 0  # zeros are no record batch; what matters is the answer
        # Its memory went back and the next waiting frame started.
        wait_until(lambda: pool.waiting == 8, "the next frame to be admitted")
        assert pool.reserved <= LIMIT + FRAME
    finally:
        first.close()
        for c in trickling:
            c.close()
    wait_until(lambda: (pool.reserved, pool.held, pool.waiting) == (0, 0, 0), "memory back")
