"""Size-prefixed framing (4-byte big-endian length, then the request), sans-IO.

Two ways in, one decoder:
- `get_buffer()` / `buffer_updated(n)` (asyncio.BufferedProtocol): the socket reads straight
  into the decoder's memory. Small requests land in a reused staging buffer and are copied out
  whole; a request larger than what has arrived gets a buffer of its final size and the rest of
  it is read directly into that buffer — a 1 MiB produce is copied once, by the kernel, instead
  of three times (kernel → loop buffer → bytes → frame: 198 → ≈60 µs per MiB, measured).
- `feed(data)`: the same for bytes already in hand (tests, fuzzing).

The staging buffer is one per thread, not per connection: between reads a decoder keeps at
most the first bytes (< 4) of a size prefix, so 1,000 idle connections cost 1,000 small
objects instead of 64 MiB of buffers. The event loop's get_buffer → recv → buffer_updated
sequence for one connection never interleaves with another's on the same thread.
"""

from __future__ import annotations

import struct
import threading

from msklite.errors import ProtocolError

_SIZE = struct.Struct(">i")

# Kafka's `socket.request.max.bytes` default: larger frames close the connection.
DEFAULT_MAX_FRAME = 104_857_600
STAGING_BYTES = 65_536
_local = threading.local()


def _staging() -> bytearray:
    buf: bytearray | None = getattr(_local, "staging", None)
    if buf is None:
        buf = _local.staging = bytearray(STAGING_BYTES)
    return buf


class FrameDecoder:
    __slots__ = ("_filled", "_frame", "_head", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_size = max_size
        self._head = b""  # the start (< 4 bytes) of a size prefix, kept between reads
        self._frame: bytearray | None = None  # a large frame being filled in place
        self._filled = 0

    def _check(self, size: int) -> int:
        if size < 0 or size > self.max_size:
            raise ProtocolError(f"frame size {size} outside 0..{self.max_size}")
        return size

    def get_buffer(self) -> memoryview:
        """Where the next bytes from the socket should go."""
        if self._frame is not None:
            return memoryview(self._frame)[self._filled :]
        staging = _staging()
        staging[: len(self._head)] = self._head
        return memoryview(staging)[len(self._head) :]

    def buffer_updated(self, nbytes: int) -> list[memoryview]:
        """`nbytes` were written into the last `get_buffer()`; returns completed frames."""
        frame = self._frame
        if frame is not None:
            self._filled += nbytes
            if self._filled < len(frame):
                return []
            self._frame = None
            return [memoryview(frame)]
        end = len(self._head) + nbytes
        data = memoryview(_staging())
        out: list[memoryview] = []
        pos = 0
        while end - pos >= 4:
            size = self._check(_SIZE.unpack_from(data, pos)[0])
            start = pos + 4
            if end - start >= size:
                out.append(memoryview(bytes(data[start : start + size])))
                pos = start + size
                continue
            big = bytearray(size)
            have = end - start
            big[:have] = data[start:end]
            self._frame, self._filled = big, have
            pos = end
            break
        self._head = bytes(data[pos:end])
        return out

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        out: list[memoryview] = []
        mv = memoryview(data)
        pos = 0
        while pos < len(mv):
            buf = self.get_buffer()
            n = min(len(buf), len(mv) - pos)
            buf[:n] = mv[pos : pos + n]
            pos += n
            out += self.buffer_updated(n)
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (for flow control)."""
        return len(self._head) + (self._filled if self._frame is not None else 0)
