"""Kafka's primitive types (the protocol guide's "Protocol Primitive Types") as a cursor-style
reader over a memoryview and an appending writer.

Used by the hand-written codecs (header, ApiVersions, Metadata, Produce, Fetch). Reading past
the end raises `ProtocolError`, which closes the connection: a truncated request is the peer's
fault, never ours.
"""

from __future__ import annotations

import base64
import struct
import uuid

from msklite.errors import ProtocolError

Buffer = bytes | bytearray | memoryview

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


VARINT_BYTES = 5  # Kafka reads a varint into an int32: at most 5 bytes
VARLONG_BYTES = 10  # and a varlong into an int64: at most 10
_MASKS = {VARINT_BYTES: 0xFFFF_FFFF, VARLONG_BYTES: 0xFFFF_FFFF_FFFF_FFFF}


def decode_uvarint(data: Buffer, pos: int, max_bytes: int = VARINT_BYTES) -> tuple[int, int]:
    """The unsigned varint (or, with `max_bytes=VARLONG_BYTES`, varlong) at `pos`, and the position
    after it. As Kafka's ByteUtils: a continuation bit on the last allowed byte is an error
    (`ProtocolError`), and bits beyond the 32 (64) the value is read into are dropped. Running off
    the end of `data` raises IndexError: callers turn that into their own error."""
    value = 0
    shift = 0
    limit = 7 * max_bytes
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & _MASKS[max_bytes], pos
        shift += 7
        if shift >= limit:
            raise ProtocolError(f"varint longer than {max_bytes} bytes")


def zigzag(v: int) -> int:
    """The signed value of a zig-zag encoded varint or varlong."""
    return (v >> 1) ^ -(v & 1)


class Reader:
    """Reads primitives from `data` starting at `pos`; `pos` advances past what was read."""

    __slots__ = ("data", "pos")

    def __init__(self, data: memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> int:
        start = self.pos
        end = start + n
        if n < 0 or end > len(self.data):
            raise ProtocolError(f"truncated: need {n} bytes at {start}, have {len(self.data)}")
        self.pos = end
        return start

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def int8(self) -> int:
        v: int = _I8.unpack_from(self.data, self._take(1))[0]
        return v

    def boolean(self) -> bool:
        return self.int8() != 0

    def int16(self) -> int:
        v: int = _I16.unpack_from(self.data, self._take(2))[0]
        return v

    def int32(self) -> int:
        v: int = _I32.unpack_from(self.data, self._take(4))[0]
        return v

    def int64(self) -> int:
        v: int = _I64.unpack_from(self.data, self._take(8))[0]
        return v

    def uvarint(self) -> int:
        try:
            value, self.pos = decode_uvarint(self.data, self.pos)
        except IndexError:
            raise ProtocolError(f"truncated varint at {self.pos}") from None
        return value

    def uuid(self) -> uuid.UUID:
        start = self._take(16)
        return uuid.UUID(bytes=bytes(self.data[start : start + 16]))

    def raw(self, n: int) -> memoryview:
        start = self._take(n)
        return self.data[start : start + n]

    def _text(self, n: int) -> str:
        try:
            return str(self.raw(n), "utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError("string is not UTF-8") from e

    def string(self) -> str:
        n = self.int16()
        if n < 0:
            raise ProtocolError("null where a string is required")
        return self._text(n)

    def nullable_string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self._text(n)

    def compact_string(self) -> str:
        n = self.uvarint() - 1
        if n < 0:
            raise ProtocolError("null where a string is required")
        return self._text(n)

    def compact_nullable_string(self) -> str | None:
        n = self.uvarint() - 1
        return None if n < 0 else self._text(n)

    def bytes_(self) -> memoryview | None:
        n = self.int32()
        return None if n < 0 else self.raw(n)

    def compact_bytes(self) -> memoryview | None:
        n = self.uvarint() - 1
        return None if n < 0 else self.raw(n)

    def array_len(self, flexible: bool) -> int:
        """Element count of an array, -1 for null."""
        n = self.uvarint() - 1 if flexible else self.int32()
        # Each element takes at least one byte: a larger count is a lie that would make us
        # loop (or allocate) far past the frame.
        if n > self.remaining():
            raise ProtocolError(f"array of {n} elements in {self.remaining()} bytes")
        return n

    def str_(self, flexible: bool) -> str:
        return self.compact_string() if flexible else self.string()

    def nullable_str(self, flexible: bool) -> str | None:
        return self.compact_nullable_string() if flexible else self.nullable_string()

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())


class Writer:
    """Appends primitives to one bytearray; `parts()` hands it on as a buffer list."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def int8(self, v: int) -> None:
        self.buf += _I8.pack(v)

    def boolean(self, v: bool) -> None:
        self.buf.append(1 if v else 0)

    def int16(self, v: int) -> None:
        self.buf += _I16.pack(v)

    def int32(self, v: int) -> None:
        self.buf += _I32.pack(v)

    def int64(self, v: int) -> None:
        self.buf += _I64.pack(v)

    def uvarint(self, v: int) -> None:
        while v >= 0x80:
            self.buf.append((v & 0x7F) | 0x80)
            v >>= 7
        self.buf.append(v)

    def uuid(self, v: uuid.UUID) -> None:
        self.buf += v.bytes

    def raw(self, b: Buffer) -> None:
        self.buf += b

    def str_(self, s: str, flexible: bool) -> None:
        b = s.encode()
        if flexible:
            self.uvarint(len(b) + 1)
        else:
            self.int16(len(b))
        self.buf += b

    def nullable_str(self, s: str | None, flexible: bool) -> None:
        if s is None:
            if flexible:
                self.buf.append(0)
            else:
                self.int16(-1)
        else:
            self.str_(s, flexible)

    def array_len(self, n: int | None, flexible: bool) -> None:
        if flexible:
            self.uvarint(0 if n is None else n + 1)
        else:
            self.int32(-1 if n is None else n)

    def bytes_len(self, n: int | None, flexible: bool) -> None:
        self.array_len(n, flexible)

    def empty_tagged_fields(self) -> None:
        self.buf.append(0)


def encode_uvarint(v: int) -> bytes:
    w = Writer()
    w.uvarint(v)
    return bytes(w.buf)


def kafka_uuid_str(u: uuid.UUID) -> str:
    """Kafka's Uuid.toString(): URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(u.bytes).decode().rstrip("=")
