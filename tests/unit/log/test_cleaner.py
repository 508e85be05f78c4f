"""LogCleaner: dedup by key, tombstones and their horizon, the lag and ratio rules, the
checkpoint, transactions, and a crash at every step of a swap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs, TopicConfig
from msklite.log import cleaner as cleaner_module
from msklite.log.cleaner import CLEANER_CHECKPOINT, LogCleaner
from msklite.log.manager import LogManager, read_checkpoint
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import (
    DELETE_HORIZON,
    control_batch,
    encode_batch,
    iter_records,
    read_header,
    scan_valid_prefix,
    validate_produced_batch,
)
from msklite.topic_partition import TopicPartition

TP = TopicPartition("t", 0)
DAY = 86_400_000


def compacted(**overrides: object) -> TopicConfig:
    fields: dict[str, object] = {
        "cleanup_policy": ("compact",),
        "segment_bytes": 1024,
        "min_cleanable_dirty_ratio": 0.01,
    }
    fields.update(overrides)
    return TopicConfig(**fields)  # type: ignore[arg-type]


class Harness:
    def __init__(self, root: Path, clock: ManualClock, config: TopicConfig) -> None:
        self.root = root
        self.clock = clock
        self.manager = LogManager(str(root), 1, "c", clock)
        self.log = self.manager.open_log(TP, uuid.uuid4(), config)
        self.hw: int | None = None  # None: the log end
        self.cleaner = LogCleaner(
            self.manager,
            BrokerConfigs({}),
            clock,
            lambda tp, plog: plog.log_end_offset if self.hw is None else self.hw,
            lambda e: None,
        )

    def put(self, key: bytes, value: bytes | None, pid: int = -1, seq: int = -1) -> int:
        batch = memoryview(
            encode_batch(
                [(key, value)],
                timestamp=self.clock.now_ms(),
                producer_id=pid,
                producer_epoch=0 if pid >= 0 else -1,
                base_sequence=seq,
            )
        )
        h = validate_produced_batch(batch, 10**7)
        return self.log.append_as_leader(batch, h, 0).base_offset

    def records(self) -> list[tuple[int, bytes | None, bytes | None]]:
        out: list[tuple[int, bytes | None, bytes | None]] = []
        offset = self.log.log_start_offset
        while offset < self.log.log_end_offset:
            for view in self.log.read(offset, 10**9, 2**62, True):
                for pos, h in scan_valid_prefix(view, 0, len(view)):
                    batch = view[pos : pos + h.size]
                    out += [(r.offset, r.key, r.value) for r in iter_records(batch)]
                    offset = h.last_offset + 1
        return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000_000)


def test_last_value_per_key_survives_with_its_offset(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(tmp_path, clock, compacted())
    for i in range(60):
        h.put(b"k%d" % (i % 5), b"v%d" % i)
    assert h.cleaner.clean_once()
    end = h.cleaner.checkpoints[TP]
    assert end == h.log.active.base_offset  # everything but the active segment
    last = {i % 5: i for i in range(end)}
    expected = sorted(last.values()) + list(range(end, 60))
    got = h.records()
    assert [o for o, _, _ in got] == expected
    assert all(v == b"v%d" % o for o, _, v in got)  # offsets never change
    assert read_checkpoint(str(tmp_path / CLEANER_CHECKPOINT)) == {TP: end}


def test_cleaned_segments_are_merged_up_to_segment_bytes(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = Harness(tmp_path, clock, compacted())
    for i in range(60):
        h.put(b"k%d" % (i % 5), b"v%d" % i)
    h.cleaner.clean_once()
    before = len(h.log.segments)
    for i in range(60):
        h.put(b"k%d" % (i % 5), b"w%d" % i)
    h.cleaner.clean_once()
    sizes = [s.size for s in h.log.segments]
    assert len(h.log.segments) < before + 4
    assert all(size <= 1024 for size in sizes)


def test_the_dirty_ratio_counts_the_clean_section(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(tmp_path, clock, compacted(min_cleanable_dirty_ratio=0.5))
    for i in range(60):
        h.put(b"u%d" % i, b"x" * 40)  # unique keys: cleaning removes nothing
    assert h.cleaner.clean_once()  # all dirty: ratio 1.0
    clean = sum(s.size for s in h.log.segments[:-1])
    while sum(s.size for s in h.log.segments[:-1]) - clean < clean * 0.9:
        h.put(b"k", b"x" * 40)
    assert h.cleaner.filthiest() is None  # dirty / (clean + dirty) < 0.5
    assert not h.cleaner.clean_once()
    while sum(s.size for s in h.log.segments[:-1]) - clean <= clean * 1.1:
        h.put(b"k", b"x" * 40)
    todo = h.cleaner.filthiest()
    assert todo is not None and todo.ratio > 0.5
    assert h.cleaner.clean_once()


def test_min_compaction_lag_keeps_young_segments_dirty(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(tmp_path, clock, compacted(min_compaction_lag_ms=60_000))
    for i in range(40):
        h.put(b"k", b"v%d" % i)
    assert not h.cleaner.clean_once()
    clock.advance(60_001)
    h.put(b"k", b"last")
    assert h.cleaner.clean_once()
    assert len(h.records()) < 41


def test_max_compaction_lag_cleans_whatever_the_ratio(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(
        tmp_path, clock, compacted(min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=60_000)
    )
    for i in range(40):
        h.put(b"k", b"v%d" % i)
    assert not h.cleaner.clean_once()  # a ratio of 1.0 is never exceeded
    clock.advance(60_001)
    assert h.cleaner.clean_once()


def test_max_compaction_lag_rolls_the_active_segment(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(tmp_path, clock, compacted(segment_bytes=10**6, max_compaction_lag_ms=60_000))
    h.put(b"k", b"a")
    clock.advance(60_001)
    h.put(b"k", b"b")
    assert len(h.log.segments) == 2


def test_the_high_watermark_bounds_the_clean(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(tmp_path, clock, compacted())
    for i in range(60):
        h.put(b"k", b"v%d" % i)
    h.hw = 0
    assert not h.cleaner.clean_once()
    h.hw = None
    assert h.cleaner.clean_once()


def test_tombstones_expire_after_the_delete_horizon(tmp_path: Path, clock: ManualClock) -> None:
    h = Harness(tmp_path, clock, compacted(delete_retention_ms=DAY))
    for i in range(30):
        h.put(b"k%d" % (i % 3), b"v")
    h.put(b"k0", None)
    for i in range(30):
        h.put(b"other%d" % i, b"v")
    assert h.cleaner.clean_once()
    assert (30, b"k0", None) in h.records()  # kept, its batch stamped with a horizon
    stamped = [v for v in h.log.read(30, 10**6, 2**62, True)]
    assert read_header(stamped[0]).attributes & DELETE_HORIZON
    clock.advance(DAY + 1)
    for i in range(30):
        h.put(b"more%d" % i, b"v")
    assert h.cleaner.clean_once()
    assert all(k != b"k0" for _, k, _ in h.records())


def test_aborted_data_goes_and_markers_stay_while_needed(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = Harness(tmp_path, clock, compacted())
    marker = control_batch(7, 0, False, 0, clock.now_ms())

    def txn_put(key: bytes, seq: int) -> None:
        batch = memoryview(
            encode_batch(
                [(key, b"aborted")],
                timestamp=clock.now_ms(),
                producer_id=7,
                producer_epoch=0,
                base_sequence=seq,
                attributes=0x10,
            )
        )
        h.log.append_as_leader(batch, validate_produced_batch(batch, 10**7), 0)

    h.put(b"a", b"committed")
    txn_put(b"a", 0)
    txn_put(b"b", 1)
    mb = memoryview(marker)
    h.log.append_as_leader(mb, read_header(mb), 0)
    for i in range(40):
        h.put(b"x%d" % i, b"v")
    assert h.cleaner.clean_once()
    got = h.records()
    assert (0, b"a", b"committed") in got  # the aborted write did not shadow it
    assert not [r for r in got if r[2] == b"aborted"]
    batches = {
        hd.base_offset: hd
        for seg in h.log.segments
        for _, hd in seg.batches()
        if hd.base_offset < 4
    }
    # offset 1 gone; 2, the producer's last batch, kept empty for its sequence (as Kafka);
    # the ABORT marker kept, with its transaction's data seen in this pass
    assert sorted(batches) == [0, 2, 3]
    assert batches[2].records_count == 0 and batches[2].last_sequence == 1
    assert batches[3].is_control


@pytest.mark.parametrize("crash_at", range(1, 10))
def test_a_crash_during_a_swap_leaves_a_consistent_log(
    tmp_path: Path, clock: ManualClock, crash_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path, clock, compacted())
    for i in range(60):
        h.put(b"k%d" % (i % 4), b"v%d" % i)
    before = h.records()
    latest = {k: (o, v) for o, k, v in before}
    calls = 0
    real_replace, real_rename = os.replace, os.rename

    class Crash(Exception):
        pass

    def counting(real: Callable[[str, str], None]) -> Callable[[str, str], None]:
        def f(a: str, b: str) -> None:
            nonlocal calls
            calls += 1
            if calls == crash_at:
                raise Crash
            real(a, b)

        return f

    monkeypatch.setattr(os, "replace", counting(real_replace))
    monkeypatch.setattr(os, "rename", counting(real_rename))
    with pytest.raises(Crash):
        h.cleaner.clean_once()
    monkeypatch.undo()
    # the process died: open the directory again without a clean shutdown
    reopened = PartitionLog(str(tmp_path / str(TP)), compacted(), clock)
    h.log = reopened
    after = h.records()
    assert [o for o, _, _ in after] == sorted({o for o, _, _ in after})
    assert {k: (o, v) for o, k, v in after} == latest  # last value per key, same offset
    assert set(after) <= set(before)
    assert not [n for n in os.listdir(tmp_path / str(TP)) if n.endswith((".swap", ".cleaned"))]


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 7), st.booleans()),
        st.tuples(st.just("advance"), st.integers(0, 2 * 60_000), st.just(False)),
        st.tuples(st.just("clean"), st.just(0), st.just(False)),
    ),
    max_size=120,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_model_last_value_per_key_offsets_order_tombstones(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, bool]]
) -> None:
    """Against a model of what was written: every record read back is one written, at its
    offset, in order; each key's last write survives (a tombstone only until its delete
    horizon); and once the horizon passed and the log is cleaned again, no tombstone is left
    in what the earlier clean covered."""
    clock = ManualClock(1_000_000_000)
    retention = 60_000
    h = Harness(
        tmp_path_factory.mktemp("model"),
        clock,
        compacted(segment_bytes=400, delete_retention_ms=retention),
    )
    written: dict[int, tuple[bytes, bytes | None]] = {}
    written_at: dict[int, int] = {}
    n = 0

    def check() -> None:
        got = h.records()
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets))
        for o, k, v in got:
            assert written[o] == (k, v)
        present = set(offsets)
        last: dict[bytes, int] = {}
        for o, (k, _) in written.items():
            last[k] = o
        for k, o in last.items():
            if written[o][1] is not None:
                assert o in present, (k, o)
            elif o not in present:
                assert clock.now_ms() - written_at[o] >= retention
        # what the cleaner covered holds one record per key at most
        covered = [k for o, k, _ in got if o < h.cleaner.checkpoints.get(TP, 0)]
        assert len(covered) == len(set(covered))

    for op, arg, tombstone in ops:
        if op == "put":
            key = b"k%d" % arg
            value = None if tombstone else b"v%d" % n + b"." * 30
            offset = h.put(key, value)
            written[offset], written_at[offset] = (key, value), clock.now_ms()
            n += 1
        elif op == "advance":
            clock.advance(arg)
        else:
            h.cleaner.clean_once()
        check()
    h.cleaner.clean_once()
    covered = h.cleaner.checkpoints.get(TP, 0)
    clock.advance(retention + 1)
    for i in range(40):
        offset = h.put(b"filler%d" % i, b"f" * 30)
        written[offset], written_at[offset] = (b"filler%d" % i, b"f" * 30), clock.now_ms()
    h.cleaner.clean_once()
    check()
    assert not [o for o, _, v in h.records() if v is None and o < covered]


async def test_the_cleaner_task_works_in_slices_then_waits_its_backoff(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cleaner_module, "_SLICE_S", 0.0)  # give the loop back after every step
    h = Harness(tmp_path, clock, compacted())
    for i in range(60):
        h.put(b"k%d" % (i % 5), b"v%d" % i)
    task = asyncio.create_task(h.cleaner.run())
    turns = 0
    try:
        while TP not in h.cleaner.checkpoints:
            await asyncio.sleep(0)
            turns += 1
            h.put(b"during", b"%d" % turns)  # appends go on between slices
        assert turns > 10
        latest = {k: (o, v) for o, k, v in h.records()}
        assert latest[b"during"][1] == b"%d" % turns
        first = h.cleaner.checkpoints[TP]
        for i in range(60):
            h.put(b"k%d" % (i % 5), b"w%d" % i)
        for _ in range(50):
            await asyncio.sleep(0)
        assert h.cleaner.checkpoints[TP] == first  # waiting log.cleaner.backoff.ms (15 s)
        clock.advance(15_000)
        for _ in range(10_000):  # turns of the loop, not time
            if h.cleaner.checkpoints[TP] != first:
                break
            await asyncio.sleep(0)
        assert h.cleaner.checkpoints[TP] > first
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_a_truncation_below_the_checkpoint_moves_it_back(
    tmp_path: Path, clock: ManualClock
) -> None:
    h = Harness(tmp_path, clock, compacted())
    for i in range(60):
        h.put(b"k%d" % (i % 5), b"v%d" % i)
    h.cleaner.clean_once()
    end = h.cleaner.checkpoints[TP]
    h.log.truncate_to(end)  # a follower truncating a diverged tail keeps what is clean
    assert h.cleaner.filthiest() is None and h.cleaner.checkpoints[TP] == end
    h.log.truncate_fully_and_start_at(end - 1)
    h.cleaner.filthiest()
    assert h.cleaner.checkpoints[TP] == end - 1


def test_compact_only_topics_lose_nothing_to_retention(tmp_path: Path, clock: ManualClock) -> None:
    for policy, removed in ((("compact",), False), (("compact", "delete"), True)):
        h = Harness(
            tmp_path / "-".join(policy), clock, compacted(cleanup_policy=policy, retention_ms=1000)
        )
        for i in range(60):
            h.put(b"k%d" % i, b"v")
        clock.advance(2000)
        assert bool(h.log.enforce_retention(h.log.log_end_offset)) == removed


def test_views_read_before_a_swap_stay_valid(tmp_path: Path, clock: ManualClock) -> None:
    """A fetch answer may still sit in a transport buffer when its segment is replaced: the
    replaced segment's mapping lives as long as those views, and its files are unlinked only
    file.delete.delay.ms later."""
    h = Harness(tmp_path, clock, compacted(file_delete_delay_ms=1000))
    for i in range(60):
        h.put(b"k%d" % (i % 5), b"v%d" % i)
    views = h.log.read(0, 10**6, 2**62, True)
    copies = [bytes(v) for v in views]
    assert h.cleaner.clean_once()
    assert [bytes(v) for v in views] == copies
    deleted = [n for n in os.listdir(tmp_path / str(TP)) if n.endswith(".deleted")]
    assert deleted
    clock.advance(1001)
    h.manager.enforce_retention({})
    assert not [n for n in os.listdir(tmp_path / str(TP)) if n.endswith(".deleted")]
