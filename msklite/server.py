"""One broker's listener: binds, tracks its connections, closes them. No protocol logic."""

from __future__ import annotations

import asyncio
import mmap

from msklite.connection import KafkaConnection
from msklite.handlers.context import BrokerContext
from msklite.protocol.frame import MemoryPool


class BrokerServer:
    def __init__(
        self, ctx: BrokerContext, host: str, port: int, max_frame: int, queued_max_bytes: int = 0
    ) -> None:
        """`queued_max_bytes`: the request memory shared by the connections (Kafka's
        `queued.max.request.bytes`; 0 or less: unbounded)."""
        self.ctx = ctx
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.pool = MemoryPool(queued_max_bytes, anonymous_mapping)
        self.connections: set[KafkaConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Bind and listen; returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: KafkaConnection(self.ctx, self.max_frame, self.connections, self.pool),
            self.host,
            self.port,
            reuse_address=True,
            backlog=1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            conn.close()
        await self._server.wait_closed()
        self._server = None


def anonymous_mapping(size: int) -> memoryview:
    """Zeroed memory whose pages are taken only when first written: a frame's buffer costs
    what its client has sent so far (unlike bytearray(size), which writes every page)."""
    return memoryview(mmap.mmap(-1, size))
