"""One broker listener: binds, tracks its connections, closes them. No protocol logic.

A broker has one per listener kind it offers (msklite.security.listeners); a TLS listener
gets its server context, a SASL listener an authenticator factory, one authenticator per
connection."""

from __future__ import annotations

import asyncio
import mmap
import ssl
from collections.abc import Callable

from msklite.clock import Timer
from msklite.connection import Authenticator, KafkaConnection
from msklite.handlers.context import BrokerContext
from msklite.protocol.frame import MemoryPool


class BrokerServer:
    def __init__(
        self,
        ctx: BrokerContext,
        host: str,
        port: int,
        max_frame: int,
        queued_max_bytes: int = 0,
        *,
        listener: str = "CLIENT",
        tls: ssl.SSLContext | None = None,
        authenticator: Callable[[], Authenticator] | None = None,
        principal_of: Callable[[object], str | None] | None = None,
        max_idle_ms: int = 0,
    ) -> None:
        """`queued_max_bytes`: the request memory shared by the connections (Kafka's
        `queued.max.request.bytes`; 0 or less: unbounded). `max_idle_ms`: Kafka's
        `connections.max.idle.ms`, connections that read nothing that long are closed (0 or
        less: never); swept a tenth of it at a time on the injected clock, so a connection
        goes after between that and 1.1 times that."""
        self.ctx = ctx
        self.host = host
        self.port = port
        self.max_frame = max_frame
        self.listener = listener
        self.tls = tls
        self.authenticator = authenticator
        self.principal_of = principal_of
        self.pool = MemoryPool(queued_max_bytes, anonymous_mapping)
        self.connections: set[KafkaConnection] = set()
        self._server: asyncio.Server | None = None
        self.max_idle_ms = max_idle_ms
        self._sweep_ms = max(max_idle_ms // 10, 1)
        self._sweeper: Timer | None = None

    def _sweep(self) -> None:
        now = self.ctx.clock.now_ms()
        for conn in list(self.connections):
            conn.idle_sweep(now, self.max_idle_ms)
        self._sweeper = self.ctx.clock.call_later(self._sweep_ms, self._sweep)

    def _connection(self) -> KafkaConnection:
        make = self.authenticator
        return KafkaConnection(
            self.ctx,
            self.max_frame,
            self.connections,
            self.pool,
            self.listener,
            None if make is None else make(),
            self.principal_of,
        )

    async def start(self) -> int:
        """Bind and listen; returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection,
            self.host,
            self.port,
            reuse_address=True,
            backlog=1024,
            ssl=self.tls,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self.max_idle_ms > 0:
            self._sweeper = self.ctx.clock.call_later(self._sweep_ms, self._sweep)
        return self.port

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
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
