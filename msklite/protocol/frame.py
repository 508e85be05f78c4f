"""Size-prefixed framing (4-byte big-endian length, then the request), sans-IO.

Feed whatever the socket delivered; get back each complete frame. A frame that arrives whole
inside one chunk is returned as a view of that chunk (no copy); one that straddles chunks is
assembled into a buffer allocated once at its final size, so a 1 MiB produce costs one copy
however the kernel split it.
"""

from __future__ import annotations

import struct

from msklite.errors import ProtocolError

_SIZE = struct.Struct(">i")

# Kafka's `socket.request.max.bytes` default: larger frames close the connection.
DEFAULT_MAX_FRAME = 104_857_600


class FrameDecoder:
    __slots__ = ("_filled", "_frame", "_head", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_size = max_size
        self._head = bytearray()
        self._frame: bytearray | None = None
        self._filled = 0

    def _check(self, size: int) -> int:
        if size < 0 or size > self.max_size:
            raise ProtocolError(f"frame size {size} outside 0..{self.max_size}")
        return size

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        out: list[memoryview] = []
        mv = memoryview(data)
        pos = 0
        n = len(mv)
        while pos < n:
            frame = self._frame
            if frame is None:
                if not self._head and n - pos >= 4:
                    size = self._check(_SIZE.unpack_from(mv, pos)[0])
                    pos += 4
                else:
                    take = min(4 - len(self._head), n - pos)
                    self._head += mv[pos : pos + take]
                    pos += take
                    if len(self._head) < 4:
                        break
                    size = self._check(_SIZE.unpack(self._head)[0])
                    self._head.clear()
                if n - pos >= size:
                    out.append(mv[pos : pos + size])
                    pos += size
                    continue
                frame = self._frame = bytearray(size)
                self._filled = 0
            take = min(len(frame) - self._filled, n - pos)
            frame[self._filled : self._filled + take] = mv[pos : pos + take]
            self._filled += take
            pos += take
            if self._filled == len(frame):
                out.append(memoryview(frame))
                self._frame = None
        return out

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (for flow control)."""
        return len(self._head) + (self._filled if self._frame is not None else 0)
