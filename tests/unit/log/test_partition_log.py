"""PartitionLog: append/read, segment roll, index lookups, retention, recovery."""

from __future__ import annotations

import mmap
import os
import resource
import sys
import zlib
from pathlib import Path

import pytest

from msklite.clock import ManualClock
from msklite.config import TopicConfig
from msklite.errors import ErrorCode, KafkaError
from msklite.log import segment
from msklite.log.partition_log import PartitionLog, TimestampOffset
from msklite.protocol.records import encode_batch, read_header, validate_produced_batch


def _append(
    log: PartitionLog,
    n: int = 1,
    value: bytes = b"v" * 50,
    ts: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> int:
    batch = memoryview(
        encode_batch(
            [(None, value)] * n,
            timestamp=ts,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
        )
    )
    return log.append_as_leader(batch, validate_produced_batch(batch, 10**7), 0).base_offset


def _offsets(views: list[memoryview]) -> list[int]:
    out = []
    for v in views:
        pos = 0
        while pos < len(v):
            h = read_header(v, pos)
            out.append(h.base_offset)
            pos += h.size
    return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000)


def test_offsets_are_assigned_in_order(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(), clock)
    assert [_append(log, n=3), _append(log, n=2), _append(log)] == [0, 3, 5]
    assert log.log_end_offset == 6
    assert _offsets(log.read(0, 10**6, 6, True)) == [0, 3, 5]


def test_read_from_the_middle_of_a_batch_starts_at_that_batch(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(index_interval_bytes=100), clock)
    for _ in range(50):
        _append(log, n=4)
    assert _offsets(log.read(101, 10**6, 200, True))[0] == 100
    assert _offsets(log.read(103, 10**6, 200, True))[0] == 100


def test_read_respects_max_bytes_max_offset_and_min_one(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(index_interval_bytes=64), clock)
    for _ in range(10):
        _append(log)
    size = read_header(log.read(0, 10**6, 10, True)[0]).size
    assert _offsets(log.read(0, size * 3 + 5, 10, False)) == [0, 1, 2]
    assert log.read(0, size - 1, 10, False) == []
    assert _offsets(log.read(0, size - 1, 10, True)) == [0]  # KIP-74: first batch whole
    assert _offsets(log.read(0, 10**6, 4, True)) == [0, 1, 2, 3]
    assert log.read(10, 10**6, 10, True) == []
    with pytest.raises(KafkaError) as e:
        log.read(11, 100, 10, True)
    assert e.value.code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_segments_roll_by_size_and_reads_cross_them(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=1000), clock)
    for _ in range(40):
        _append(log)
    assert len(log.segments) >= 5
    assert all(seg.size <= 1000 for seg in log.segments)
    seen = []
    offset = 0
    while offset < log.log_end_offset:
        got = _offsets(log.read(offset, 10**6, log.log_end_offset, True))
        seen += got
        offset = got[-1] + 1
    assert seen == list(range(40))
    names = sorted(os.listdir(tmp_path))
    assert "00000000000000000000.log" in names and "00000000000000000000.index" in names


def test_segments_roll_by_time(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_ms=1000), clock)
    _append(log, ts=clock.now_ms())
    clock.advance(1001)
    _append(log, ts=clock.now_ms())
    assert [s.base_offset for s in log.segments] == [0, 1]


def test_offset_for_timestamp_looks_inside_batches(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(
        str(tmp_path), TopicConfig(index_interval_bytes=1, segment_bytes=2000), clock
    )
    for i in range(30):
        _append(log, ts=1000 * i)
    found = log.offset_for_timestamp(12_500, 30)
    assert found is not None and (found.offset, found.timestamp) == (13, 13_000)
    assert log.offset_for_timestamp(10**9, 30) is None
    top = log.offset_of_max_timestamp(30)
    assert top is not None and (top.offset, top.timestamp) == (29, 29_000)


def test_time_retention_deletes_old_segments_and_moves_log_start(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=500, retention_ms=10_000), clock)
    for i in range(20):
        _append(log, ts=clock.now_ms() - 20_000 if i < 10 else clock.now_ms())
    before = len(log.segments)
    removed = log.enforce_retention(log.log_end_offset)
    assert removed and len(log.segments) == before - len(removed)
    assert 0 < log.log_start_offset <= 10
    assert all(
        f.endswith(".deleted")
        for f in os.listdir(tmp_path)
        if f.startswith("00000000000000000000.")
    )
    with pytest.raises(KafkaError):
        log.read(0, 100, log.log_end_offset, True)


def test_everything_expired_leaves_an_empty_active_segment(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(retention_ms=10), clock)
    _append(log, ts=clock.now_ms())
    clock.advance(100)
    log.enforce_retention(log.log_end_offset)
    assert (log.log_start_offset, log.log_end_offset) == (1, 1)
    assert _append(log) == 1


def test_size_retention(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=500, retention_bytes=1000), clock)
    for _ in range(30):
        _append(log, ts=clock.now_ms())
    log.enforce_retention(log.log_end_offset)
    assert log.size_in_bytes() - log.active.size <= 1000
    assert log.log_start_offset > 0


def test_views_survive_segment_deletion(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=300, retention_ms=1), clock)
    _append(log, value=b"precious", ts=0)
    _append(log, ts=0)
    view = log.read(0, 10**6, 2, True)[0]
    snapshot = bytes(view)
    clock.advance(10)
    log.enforce_retention(log.log_end_offset)
    for name in os.listdir(tmp_path):
        if name.endswith(".deleted"):
            os.unlink(tmp_path / name)
    assert bytes(view) == snapshot  # the mmap pins the unlinked file


def test_reopen_restores_offsets_indexes_and_producer_state(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = TopicConfig(segment_bytes=2000, index_interval_bytes=100)
    log = PartitionLog(str(tmp_path), cfg, clock)
    for i in range(30):
        _append(log, producer_id=5, producer_epoch=0, base_sequence=i)
    log.close()
    again = PartitionLog(str(tmp_path), cfg, clock, recovery_point=30)
    assert again.log_end_offset == 30
    assert _offsets(again.read(17, 10**6, 30, True))[0] == 17
    # A retry of the last batch is recognised after the restart.
    batch = memoryview(
        encode_batch([(None, b"v" * 50)], producer_id=5, producer_epoch=0, base_sequence=29)
    )
    info = again.append_as_leader(batch, validate_produced_batch(batch, 10**6), 0)
    assert info.duplicate and info.base_offset == 29


def test_recovery_truncates_a_torn_tail(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(), clock)
    for _ in range(5):
        _append(log)
    active = log.active.path
    log.close()
    with open(active, "ab") as f:
        f.write(encode_batch([(None, b"torn")], base_offset=5)[:40])
    again = PartitionLog(str(tmp_path), TopicConfig(), clock, recovery_point=None)
    assert again.log_end_offset == 5
    assert _append(again) == 5
    assert _offsets(again.read(0, 10**6, 6, True)) == [0, 1, 2, 3, 4, 5]


def test_recovery_drops_everything_after_a_corrupt_batch(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=400), clock)
    for _ in range(12):
        _append(log)
    first = log.segments[0].path
    batch_size = log.segments[0].header_at(0).size
    log.close()
    with open(first, "r+b") as f:
        f.seek(batch_size + 30)  # inside the second batch
        f.write(b"\xff\xff\xff")
    again = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=400), clock, recovery_point=0)
    assert again.log_end_offset == 1  # only the batch before the corruption survives
    assert len(again.segments) == 1


def test_truncate_to(tmp_path: Path, clock: ManualClock) -> None:
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=400), clock)
    for _ in range(12):
        _append(log)
    log.truncate_to(7)
    assert log.log_end_offset == 7
    assert _append(log) == 7


def _found(hit: TimestampOffset | None) -> int:
    assert hit is not None
    return hit.offset


def _index_entries(log: PartitionLog) -> list[tuple[list[int], list[int], list[int]]]:
    return [
        (
            list(s.offset_index.positions),
            list(s.time_index.timestamps),
            list(s.time_index.rel_offsets),
        )
        for s in log.segments
    ]


def test_index_files_hold_every_entry_after_roll_and_close(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = TopicConfig(segment_bytes=10_000, index_interval_bytes=1)
    log = PartitionLog(str(tmp_path), cfg, clock)
    for i in range(300):
        _append(log, ts=1_000 + i)
    assert len(log.segments) > 2
    sealed = log.segments[0]
    # rolled: the sealed segment's entries are all on disk, fewer than the 4 KiB batch
    assert os.path.getsize(sealed.offset_index.path) == 8 * len(sealed.offset_index.positions)
    assert os.path.getsize(sealed.time_index.path) == 12 * len(sealed.time_index.timestamps)
    before = _index_entries(log)
    log.close()
    again = PartitionLog(str(tmp_path), cfg, clock, recovery_point=300)
    assert _index_entries(again) == before
    assert _found(again.offset_for_timestamp(1_150, 300)) == 150


def test_index_entries_lost_in_a_crash_are_rebuilt(tmp_path: Path, clock: ManualClock) -> None:
    cfg = TopicConfig(index_interval_bytes=1)
    log = PartitionLog(str(tmp_path), cfg, clock)
    for i in range(40):
        _append(log, ts=1_000 + i)
    before = _index_entries(log)
    index = log.active.offset_index.path
    assert os.path.getsize(index) < 8 * 40  # entries still waiting in memory
    # a crash: the process dies without closing; recovery starts from the last checkpoint
    again = PartitionLog(str(tmp_path), cfg, clock, recovery_point=None)
    assert _index_entries(again) == before
    assert _offsets(again.read(23, 10**6, 40, True))[0] == 23
    assert _found(again.offset_for_timestamp(1_031, 40)) == 31


def _first_batch_holds_every_offset(log: PartitionLog) -> None:
    for offset in range(log.log_start_offset, log.log_end_offset):
        first = read_header(log.read(offset, 1, log.log_end_offset, True)[0], 0)
        assert first.base_offset <= offset <= first.last_offset


def test_reads_start_at_the_batch_holding_the_offset_after_reopen_and_truncation(
    tmp_path: Path, clock: ManualClock
) -> None:
    cfg = TopicConfig(segment_bytes=1_000, index_interval_bytes=10_000)  # no index entries
    log = PartitionLog(str(tmp_path), cfg, clock)
    for _ in range(12):
        _append(log, n=2)
    assert len(log.segments) > 2
    _first_batch_holds_every_offset(log)
    log.close()
    for recovery_point in (24, None):  # sealed segments loaded from their files, or recovered
        log = PartitionLog(str(tmp_path), cfg, clock, recovery_point=recovery_point)
        _first_batch_holds_every_offset(log)
        log.close()
    log = PartitionLog(str(tmp_path), cfg, clock, recovery_point=24)
    log.truncate_to(15)  # inside a batch: drops the whole batch
    assert log.log_end_offset == 14
    _first_batch_holds_every_offset(log)


def _faults_reading(views: list[memoryview]) -> int:
    """Minor page faults this thread takes to read every byte of `views` (zlib reads them in
    place, allocating nothing that could fault on its own)."""
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for view in views:
        zlib.crc32(view)
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


@pytest.mark.skipif(sys.platform != "linux", reason="MADV_POPULATE_READ is Linux's")
def test_prefaulted_reads_are_mapped_before_they_are_read(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A follower writes what it reads into its own log: from pages of the leader's mapping
    that are not mapped into the process yet, Linux's copy comes up short and zeroes what it
    filled before retrying, so those views come with their pages mapped."""
    config = TopicConfig(segment_bytes=64 << 20)
    leader = PartitionLog(str(tmp_path / "a"), config, clock)
    for _ in range(8):
        _append(leader, n=64, value=os.urandom(4000))  # ≈ 2 MiB in all
    plain = leader.read(0, 4 << 20, leader.log_end_offset, True)
    assert _faults_reading(plain) > 0  # the mapping is fresh: reading it faults
    other = PartitionLog(str(tmp_path / "b"), config, clock)
    for _ in range(8):
        _append(other, n=64, value=os.urandom(4000))
    prefaulted = other.read(0, 4 << 20, other.log_end_offset, True, prefault=True)
    assert _faults_reading(prefaulted) == 0
    assert [bytes(v) for v in prefaulted] == [
        bytes(v) for v in other.read(0, 4 << 20, other.log_end_offset, True)
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="MADV_POPULATE_READ is Linux's")
def test_prefaulted_reads_ask_only_for_pages_not_mapped_yet(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower reads the tail again and again, often within one page: pages a prefaulted
    read mapped are not asked for again, and the pages appended after them are."""
    asked: list[tuple[int, int]] = []

    class Counting:
        def __init__(self, mapping: mmap.mmap) -> None:
            self.mapping = mapping

        def madvise(self, option: int, start: int, length: int) -> None:
            asked.append((start, start + length))
            self.mapping.madvise(option, start, length)

    monkeypatch.setattr(segment, "cast", lambda _type, obj: Counting(obj))
    log = PartitionLog(str(tmp_path), TopicConfig(segment_bytes=64 << 20), clock)
    for _ in range(4):
        _append(log, n=8, value=os.urandom(1000))  # ≈ 8 KiB a batch: pages 0-8
    end = log.log_end_offset
    log.read(0, 1 << 20, end, True, prefault=True)
    assert len(asked) == 1
    log.read(end - 8, 1 << 20, end, True, prefault=True)  # the tail again: mapped already
    assert len(asked) == 1
    mapped_to = asked[0][1]
    _append(log, n=1, value=b"x" * 10)  # in the page the tail ends in: mapped already
    log.read(end, 1 << 20, log.log_end_offset, True, prefault=True)
    assert len(asked) == 1
    for _ in range(2):
        _append(log, n=8, value=os.urandom(1000))  # new pages
    tail = log.read(end, 1 << 20, log.log_end_offset, True, prefault=True)
    assert len(asked) == 2 and asked[1][0] >= mapped_to - mapped_to % mmap.PAGESIZE
    assert _faults_reading(tail) == 0  # the new pages came mapped
