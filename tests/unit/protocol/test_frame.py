"""FrameDecoder: whole, byte at a time, split anywhere, oversize and negative sizes."""

from __future__ import annotations

import struct

import pytest

from msklite.errors import ProtocolError
from msklite.protocol.frame import FrameDecoder


def _framed(*payloads: bytes) -> bytes:
    return b"".join(struct.pack(">i", len(p)) + p for p in payloads)


PAYLOADS = [b"hello", b"", b"x" * 1000, b"\x00\x01\x02"]


def test_whole_chunk_yields_every_frame() -> None:
    frames = FrameDecoder().feed(_framed(*PAYLOADS))
    assert [bytes(f) for f in frames] == PAYLOADS


def test_one_byte_at_a_time() -> None:
    dec = FrameDecoder()
    out: list[bytes] = []
    for b in _framed(*PAYLOADS):
        out.extend(bytes(f) for f in dec.feed(bytes([b])))
    assert out == PAYLOADS
    assert dec.buffered == 0


@pytest.mark.parametrize("cut", range(1, 30))
def test_split_anywhere(cut: int) -> None:
    data = _framed(*PAYLOADS)
    dec = FrameDecoder()
    frames = [bytes(f) for f in dec.feed(data[:cut])] + [bytes(f) for f in dec.feed(data[cut:])]
    assert frames == PAYLOADS


def test_trailing_partial_frame_is_kept() -> None:
    dec = FrameDecoder()
    data = _framed(b"abc") + struct.pack(">i", 10) + b"12"
    assert [bytes(f) for f in dec.feed(data)] == [b"abc"]
    assert dec.buffered == 2
    assert [bytes(f) for f in dec.feed(b"34567890")] == [b"1234567890"]


def test_oversize_frame_is_a_protocol_error() -> None:
    dec = FrameDecoder(max_size=100)
    with pytest.raises(ProtocolError):
        dec.feed(struct.pack(">i", 101))


def test_negative_size_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack(">i", -1) + b"xx")
