"""One client connection: bytes → frames → handler → response buffers → transport.

An `asyncio.Protocol` (≈3 µs a request, against ≈15 µs with streams). Requests are handled
one at a time and answered in order, as Kafka does, by one worker task per connection while
reads keep filling the queue (pipelining). Reading pauses while too many requests wait or the
transport's write buffer is full.

Closing the connection is Kafka's answer to bytes it cannot use: an oversize or negative frame,
a malformed header or body, an unknown API key, an unsupported version of any API but
ApiVersions (which gets the KIP-511 answer instead).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from typing import cast

from msklite.errors import ProtocolError
from msklite.handlers import HANDLERS
from msklite.handlers.api_versions import unsupported_version_body
from msklite.handlers.context import CLIENT_HOST, BrokerContext
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.frame import FrameDecoder
from msklite.protocol.header import parse_request_header, response_header
from msklite.protocol.primitives import Buffer

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
MAX_QUEUED_REQUESTS = 100


class KafkaConnection(asyncio.Protocol):
    def __init__(self, ctx: BrokerContext, max_frame: int, on_close: set[KafkaConnection]) -> None:
        self.ctx = ctx
        self.decoder = FrameDecoder(max_frame)
        self.queue: deque[memoryview] = deque()
        self.transport: asyncio.Transport | None = None
        self._registry = on_close
        self._wakeup = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._worker: asyncio.Task[None] | None = None
        self._reading_paused = False
        self.peer: str = "?"

    # ---- transport callbacks ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if peer:
            CLIENT_HOST.set(peer[0])  # inherited by the request task created below
        self._registry.add(self)
        self._worker = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as e:
            self._abort(f"bad frame: {e}")
            return
        if frames:
            self.queue.extend(frames)
            self._wakeup.set()
            if len(self.queue) >= MAX_QUEUED_REQUESTS and not self._reading_paused:
                assert self.transport is not None
                self.transport.pause_reading()
                self._reading_paused = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        self.queue.clear()
        if self._worker is not None:
            self._worker.cancel()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ---- request processing ----

    def _abort(self, why: str) -> None:
        log.info("closing connection from %s: %s", self.peer, why)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _run(self) -> None:
        while True:
            if not self.queue:
                if self._reading_paused and self.transport is not None:
                    self.transport.resume_reading()
                    self._reading_paused = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            frame = self.queue.popleft()
            try:
                out = await self._handle(frame)
            except ProtocolError as e:
                self._abort(str(e))
                return
            except Exception:
                log.exception("request from %s failed; closing the connection", self.peer)
                self._abort("internal error")
                return
            if out is not None and self.transport is not None:
                self.transport.writelines(out)
                if not self._writable.is_set():
                    await self._writable.wait()

    async def _handle(self, frame: memoryview) -> list[Buffer] | None:
        header, reader = parse_request_header(frame)
        stats = self.ctx.stats.requests
        stats[header.api_key] = stats.get(header.api_key, 0) + 1
        spec = HANDLERS.get(header.api_key)
        if spec is None:
            raise ProtocolError(f"unknown api key {header.api_key}")
        if not spec.min_version <= header.api_version <= spec.max_version:
            if header.api_key != ApiKey.API_VERSIONS:
                raise ProtocolError(
                    f"unsupported version {header.api_version} of api key {header.api_key}"
                )
            body: list[Buffer] = [unsupported_version_body()]
            flexible_response = False
        else:
            flexible = spec.is_flexible(header.api_version)
            if flexible:
                reader.skip_tagged_fields()
            result = await spec.handler(self.ctx, header, reader)
            if result is None:
                return None
            body = result
            # ApiVersions answers with header v0 whatever its version (KIP-511).
            flexible_response = flexible and header.api_key != ApiKey.API_VERSIONS
        head = response_header(header.correlation_id, flexible_response)
        size = len(head) + sum(len(b) for b in body)
        return [_SIZE.pack(size) + head, *body]
