"""FrameDecoder: whole, byte at a time, split anywhere, oversize and negative sizes."""

from __future__ import annotations

import struct
import threading

import pytest

from msklite.errors import ProtocolError
from msklite.protocol import frame as frame_module
from msklite.protocol.frame import FrameDecoder, MemoryPool
from msklite.server import anonymous_mapping


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


# ---- the request memory pool (queued.max.request.bytes) ----

MiB = 1024 * 1024
BIG = 3 * MiB  # above EAGER_BYTES: received into a lazily backed mapping


def _prefix(size: int, body: bytes = b"") -> bytes:
    return struct.pack(">i", size) + body


def _grant(grants: list[str], name: str, dec: FrameDecoder) -> None:
    grants.append(name)
    assert dec.admit() == []


def test_a_big_declared_frame_holds_only_what_arrived() -> None:
    pool = MemoryPool(0, anonymous_mapping)
    dec = FrameDecoder(pool=pool)
    assert dec.feed(_prefix(100 * MiB, b"x" * 10)) == []
    assert (pool.reserved, pool.held) == (100 * MiB, 10)
    dec.feed(b"y" * 1000)
    assert pool.held == 1010
    dec.discard()
    assert (pool.reserved, pool.held) == (0, 0)


def test_frames_wait_in_order_and_one_may_overshoot() -> None:
    pool = MemoryPool(4 * MiB)
    a, b, c = (FrameDecoder(pool=pool) for _ in range(3))
    grants: list[str] = []
    a.feed(_prefix(BIG, b"a"))  # admitted: the pool was empty
    b.feed(_prefix(BIG, b"b"))  # admitted: 3 MiB < 4 MiB, even though it overshoots
    c.feed(_prefix(BIG, b"c"))
    assert (a.waiting, b.waiting, c.waiting) == (False, False, True)
    assert pool.reserved == 2 * BIG
    pool.wait(lambda: _grant(grants, "c", c))
    # A small frame never waits, even now, but it is counted.
    small = FrameDecoder(pool=pool)
    [frame] = small.feed(_prefix(5, b"hello"))
    assert bytes(frame) == b"hello"
    assert pool.reserved == 2 * BIG + 5
    pool.release(5, 5)
    assert grants == []
    # A new big frame queues behind c even when memory comes back in between.
    d = FrameDecoder(pool=pool)
    d.feed(_prefix(BIG, b"d"))
    assert d.waiting
    pool.wait(lambda: _grant(grants, "d", d))
    [done] = a.feed(b"a" * (BIG - 1))
    assert bytes(done[:2]) == b"aa"
    pool.release(len(done), len(done))  # the request was handled
    assert grants == ["c"]  # 3 MiB reserved: below the limit, c starts, d still waits
    assert not c.waiting and pool.reserved == 2 * BIG
    [done_c] = c.feed(b"c" * (BIG - 1))
    assert bytes(done_c[:1]) == b"c"
    pool.release(BIG, BIG)
    assert grants == ["c", "d"]


def test_a_frame_larger_than_the_whole_pool_still_goes_through() -> None:
    pool = MemoryPool(MiB)
    dec = FrameDecoder(pool=pool)
    [frame] = dec.feed(_prefix(BIG, b"z" * BIG))
    assert len(frame) == BIG and pool.reserved == BIG
    pool.release(BIG, BIG)
    assert (pool.reserved, pool.held) == (0, 0)


def test_bytes_fed_while_waiting_are_kept_with_the_frame() -> None:
    pool = MemoryPool(MiB)
    first = FrameDecoder(pool=pool)
    first.feed(_prefix(BIG, b"1"))
    dec = FrameDecoder(pool=pool)
    body = bytes(range(256)) * (BIG // 256)
    assert dec.feed(_prefix(BIG, body[:100])) == []
    assert dec.feed(body[100:] + _prefix(3, b"abc")) == []
    assert dec.waiting and pool.held == 1 + 4 + BIG + 4 + 3
    first.discard()  # the first connection went away: its memory comes back
    frames = dec.admit()
    assert [bytes(f) for f in frames] == [body, b"abc"]
    assert (pool.reserved, pool.held) == (BIG + 3, BIG + 3)


def test_a_large_frame_reuses_a_buffer_only_once_nothing_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(frame_module, "_local", threading.local())
    size = frame_module.STAGING_BYTES + 1000  # received in place, not from the staging buffer
    dec = FrameDecoder()
    (a,) = dec.feed(_framed(b"a" * size))
    (b,) = dec.feed(_framed(b"b" * size))
    assert b.obj is not a.obj  # a is still being read: its bytes must stay
    assert bytes(a) == b"a" * size
    buffers = [a.obj, b.obj]  # kept, but no view of them is
    del a, b
    (c,) = dec.feed(_framed(b"c" * (size - 10)))
    assert any(c.obj is buf for buf in buffers)
    assert bytes(c) == b"c" * (size - 10)
