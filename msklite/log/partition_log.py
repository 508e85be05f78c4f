"""PartitionLog: the ordered segments of one partition replica.

Adds to LogSegment: offset assignment, the roll policy (`segment.bytes`, `segment.ms`),
retention (`retention.ms`, `retention.bytes`), the log start offset, recovery on open, and the
idempotent-producer state. Knows nothing of high watermarks, leaders or requests: callers
bound reads with `max_offset` (the replication layer's HW). Not thread-safe.

The log start offset is the first readable offset. Retention moves it to the new first
segment; DeleteRecords (and a follower copying its leader's) moves it inside a segment, and the
records below it are then unreadable even though their segment stays until the next
retention pass deletes every segment wholly below it (Kafka's
deleteLogStartOffsetBreachedSegments). Such a start is not implied by the files: the log
manager keeps it in `log-start-offset-checkpoint` and hands it back on open.

A new partition touches no disk until its first append (or a truncation that moves its start):
its directory and first segment's files are made then. Creating 10,000 partitions at RF 3 would
otherwise make 30,000 directories and 120,000 files up front, for partitions many of which
may never see a record. Until then there is nothing on disk to recover, size or flush.
"""

from __future__ import annotations

import contextlib
import logging
import os
from bisect import bisect_right
from collections.abc import Callable
from typing import NamedTuple

from msklite.clock import Clock
from msklite.config import TopicConfig
from msklite.errors import ErrorCode, KafkaError
from msklite.log import txn_index
from msklite.log.leader_epoch import LeaderEpochCache
from msklite.log.producer_state import AbortedTxn, ProducerStateManager
from msklite.log.segment import LogSegment
from msklite.protocol.primitives import Buffer
from msklite.protocol.records import (
    BatchHeader,
    assign,
    control_marker,
    iter_records,
    scan_valid_prefix,
)

log = logging.getLogger(__name__)

# Segments start with this much file (sparse) and double up to segment.bytes, so a partition
# that holds little costs little address space and a busy one rarely remaps.
_INITIAL_CAPACITY = 1 << 20


class AppendInfo(NamedTuple):
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the topic uses LogAppendTime
    duplicate: bool


class TimestampOffset(NamedTuple):
    offset: int
    timestamp: int
    leader_epoch: int


class PartitionLog:
    def __init__(
        self,
        directory: str,
        config: TopicConfig,
        clock: Clock,
        recovery_point: int | None = None,
        create_directory: Callable[[], None] | None = None,
        log_start_offset: int = 0,
    ) -> None:
        """Opens (and recovers) the log in `directory`; when there is none, the log starts
        empty and `create_directory` (by default a plain mkdir) makes it at the first write.
        `log_start_offset`: the checkpointed start, applied if the log is on disk."""
        self.directory = directory
        # The topic's current config: replaced whole (never mutated) when the topic changes.
        self.config = config
        self.clock = clock
        self.producer_state = ProducerStateManager()
        self.on_disk = os.path.isdir(directory)
        self.epochs = LeaderEpochCache(directory, load=self.on_disk)
        self.segments: list[LogSegment] = []
        self._bases: list[int] = []
        # Plain attributes, not properties over `segments`: the produce and replication
        # paths read them ≈ 20 times per request. Kept by `_add_segment`, `_append` and
        # `_segments_changed`.
        self.active: LogSegment
        self.log_start_offset = 0
        self.log_end_offset = 0
        self._unflushed = 0
        # The lowest offset the log was truncated to since the cleaner last looked: its
        # checkpoint must not stay above data written again (Kafka's maybeTruncateCheckpoint).
        self.truncated_to: int | None = None
        self._create_directory = create_directory or (lambda: os.makedirs(directory, exist_ok=True))
        if self.on_disk:
            self._open(recovery_point)
            if log_start_offset > self.log_end_offset:
                # Kafka's LogLoader: the records the start points past are gone (lost in a
                # crash, or deleted by hand); what is below it was deleted anyway.
                log.warning(
                    "%s: log end %d is below the checkpointed log start %d; starting empty",
                    directory,
                    self.log_end_offset,
                    log_start_offset,
                )
                self.truncate_fully_and_start_at(log_start_offset)
            else:
                self._start_at(log_start_offset)
        else:
            self._add_segment(
                LogSegment(directory, 0, config.index_interval_bytes, clock.now_ms(), create=False)
            )

    # ---- opening and recovery ----

    def _open(self, recovery_point: int | None) -> None:
        self._finish_swaps()
        for name in os.listdir(self.directory):
            if name.endswith((".deleted", ".cleaned")):
                os.unlink(os.path.join(self.directory, name))
        bases = sorted(
            int(name[:-4]) for name in os.listdir(self.directory) if name.endswith(".log")
        )
        for i, base in enumerate(bases):
            seg = LogSegment(self.directory, base, self.config.index_interval_bytes, 0)
            last = i == len(bases) - 1
            needs_recovery = (
                last
                or recovery_point is None
                or base >= recovery_point
                or (i + 1 < len(bases) and bases[i + 1] > recovery_point)
            )
            if needs_recovery or not seg.load():
                torn = seg.recover()
                if torn:
                    log.warning(
                        "%s: dropped %d bytes of torn or corrupt data after offset %d",
                        seg.path,
                        torn,
                        seg.next_offset,
                    )
                    # Everything after a corrupt batch is unreachable: drop later segments.
                    for later in bases[i + 1 :]:
                        LogSegment(self.directory, later, 1, 0).rename_for_deletion()
                    self._add_segment(seg)
                    break
            self._add_segment(seg)
        if not self.segments:
            self._add_segment(self._new_segment(0))
        self.epochs.truncate_from_end(self.log_end_offset)
        for seg in self.segments:
            seg.created_ms = self._segment_time(seg)
            aborted: list[AbortedTxn] = []
            for pos, h in seg.batches():
                if h.is_control:
                    view = seg.view(pos, pos + h.size)
                    entry = self.producer_state.update(h, *control_marker(view, h))
                else:
                    entry = self.producer_state.update(h)
                if entry is not None:
                    aborted.append(entry)
                self.epochs.assign(h.partition_leader_epoch, h.base_offset)
            # derived from the log: rebuilt whole, so a crash can never leave it behind
            txn_index.rewrite(txn_index.path_for(seg.path), aborted)
        self.active.preallocate(self._capacity_for(self.active, 0))

    def _finish_swaps(self) -> None:
        """Complete or undo a cleaner's segment swap that a crash interrupted (Kafka's
        `.cleaned` / `.swap` protocol, `replace_segments` has the order of the steps): a
        `.log.swap` means the cleaned segment was whole, so the segments it replaces go and it
        takes their place; `.swap` files beside a `.log.cleaned` belong to an unfinished one,
        which goes; `.swap` files alone are the rest of a swap whose log file was renamed."""
        names = set(os.listdir(self.directory))
        stems = sorted({n.split(".", 1)[0] for n in names if n.endswith(".swap")})
        for stem in stems:
            path = os.path.join(self.directory, stem)
            swaps = [n for n in names if n.startswith(stem + ".") and n.endswith(".swap")]
            if stem + ".log.cleaned" in names:
                for n in swaps:
                    os.unlink(os.path.join(self.directory, n))
                continue
            if stem + ".log.swap" in names:
                with open(path + ".log.swap", "rb") as f:
                    data = f.read()
                base = end = int(stem)
                for _, h in scan_valid_prefix(data, 0, len(data)):
                    end = h.last_offset + 1
                for n in names:
                    if n.endswith(".log") and base <= int(n[:-4]) < max(end, base + 1):
                        for ext in (".log", ".index", ".timeindex", ".txnindex"):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(os.path.join(self.directory, n[:-4] + ext))
            for n in sorted(swaps, key=lambda n: n.endswith(".log.swap"), reverse=True):
                os.replace(os.path.join(self.directory, n), os.path.join(self.directory, n[:-5]))

    def _make_on_disk(self) -> None:
        self._create_directory()
        for seg in self.segments:
            seg.create_files()
        self.on_disk = True

    def _segment_time(self, seg: LogSegment) -> int:
        if seg.size:
            return seg.header_at(0).max_timestamp
        return self.clock.now_ms()

    def _new_segment(self, base: int) -> LogSegment:
        return LogSegment(
            self.directory, base, self.config.index_interval_bytes, self.clock.now_ms()
        )

    def _add_segment(self, seg: LogSegment) -> None:
        self.segments.append(seg)
        self._bases.append(seg.base_offset)
        self._segments_changed()

    def _segments_changed(self) -> None:
        """Re-read the positions after segments were added, removed or truncated."""
        if self.segments:
            self.active = self.segments[-1]
            # Never backwards: the start may lie inside the first segment (DeleteRecords).
            self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
            self.log_end_offset = self.active.next_offset

    # ---- positions ----

    def size_in_bytes(self) -> int:
        return sum(seg.size for seg in self.segments)

    @property
    def start_inside_segment(self) -> bool:
        """Whether the log start lies past its first segment's base (only then has it to be
        checkpointed, as Kafka's LogManager checkpoints it)."""
        return self.log_start_offset > self.segments[0].base_offset

    def increment_log_start_offset(self, offset: int, max_offset: int) -> bool:
        """Move the log start up to `offset` (Kafka's maybeIncrementLogStartOffset); the
        records below it become unreadable. OFFSET_OUT_OF_RANGE past `max_offset` (the
        caller's high watermark). True if it moved."""
        if offset > max_offset:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"Cannot increment the log start offset to {offset} since it is larger than "
                f"the high watermark {max_offset}",
            )
        if offset <= self.log_start_offset:
            return False
        self._start_at(offset)
        return True

    def _start_at(self, offset: int) -> None:
        if offset <= self.log_start_offset:
            return
        self.log_start_offset = offset
        self.epochs.truncate_from_start(offset)
        self.producer_state.drop_aborted_below(offset)

    # ---- appending ----

    def _capacity_for(self, seg: LogSegment, extra: int) -> int:
        need = seg.size + extra
        grown = max(seg.capacity * 2, _INITIAL_CAPACITY, need)
        return max(min(grown, self.config.segment_bytes), need)

    def _maybe_roll(self, size: int) -> LogSegment:
        seg = self.active
        if seg.size and (
            seg.size + size > self.config.segment_bytes
            or self.clock.now_ms() - seg.created_ms > self.config.roll_ms
        ):
            self.roll()
            seg = self.active
        if seg.size + size > seg.capacity:
            seg.preallocate(self._capacity_for(seg, size))
        return seg

    def roll(self) -> None:
        old = self.active
        old.trim()
        self._add_segment(self._new_segment(self.log_end_offset))

    def append_as_leader(self, batch: memoryview, h: BatchHeader, leader_epoch: int) -> AppendInfo:
        """Assign offsets to a validated batch and append it, unless it is a retry of one of
        the producer's last five batches (then the original offsets are returned)."""
        dup = self.producer_state.check(h)
        if dup is not None:
            return AppendInfo(dup.first_offset, dup.last_offset, -1, True)
        base = self.log_end_offset
        append_time = self.clock.now_ms() if self.config.log_append_time else None
        parts = assign(batch, base, leader_epoch, append_time)
        stored = h._replace(
            base_offset=base,
            partition_leader_epoch=leader_epoch,
            max_timestamp=h.max_timestamp if append_time is None else append_time,
        )
        self._append(parts, stored)
        return AppendInfo(
            base, stored.last_offset, -1 if append_time is None else append_time, False
        )

    def append_raw(self, parts: list[Buffer], h: BatchHeader) -> None:
        """Append a batch that already carries its offsets (replication, tests)."""
        if h.base_offset < self.log_end_offset:
            raise ValueError(f"offset {h.base_offset} below log end {self.log_end_offset}")
        self._append(parts, h)

    def _append(self, parts: list[Buffer], h: BatchHeader) -> None:
        if not self.on_disk:
            self._make_on_disk()
        seg = self._maybe_roll(h.size)
        seg.append(parts, h)
        self.log_end_offset = seg.next_offset
        if h.is_control:
            entry = self.producer_state.update(h, *control_marker(b"".join(parts), h))
            if entry is not None:
                txn_index.append(txn_index.path_for(seg.path), entry)
        else:
            self.producer_state.update(h)
        if h.partition_leader_epoch > self.epochs.latest_epoch:
            self.epochs.assign(h.partition_leader_epoch, h.base_offset)
        self._unflushed += h.records_count
        if self._unflushed >= self.config.flush_messages:
            self.flush()

    def flush(self) -> None:
        if self.on_disk:
            self.active.flush()
            self.epochs.flush()
        self._unflushed = 0

    # ---- reading ----

    def _segment_index(self, offset: int) -> int:
        return max(bisect_right(self._bases, offset) - 1, 0)

    def read(
        self,
        offset: int,
        max_bytes: int,
        max_offset: int,
        min_one: bool,
        prefault: bool = False,
    ) -> list[memoryview]:
        """Whole batches from the one holding `offset`, at most `max_bytes` of them (but the
        first whole batch when `min_one`, KIP-74), none at or past `max_offset`. Returns
        views of the segment files, their pages mapped ahead with `prefault` (for views that
        are written to a file next, see `LogSegment.prefaulted_view`). OFFSET_OUT_OF_RANGE
        outside [log start, log end]."""
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"offset {offset} outside [{self.log_start_offset}, {self.log_end_offset}]",
            )
        if offset >= max_offset:
            return []
        for seg in self.segments[self._segment_index(offset) :]:
            start = seg.find_position(offset)
            if start >= seg.size:
                continue
            limit = seg.size if max_offset >= seg.next_offset else seg.find_position(max_offset)
            if start >= limit:
                return []
            end = min(limit, start + max_bytes)
            if end < limit:
                end = seg.boundary_at_or_before(end, start)
                if end == start:
                    if not min_one:
                        return []
                    end = start + seg.header_at(start).size
            return [seg.prefaulted_view(start, end) if prefault else seg.view(start, end)]
        return []

    def _find_record(
        self, seg: LogSegment, start_pos: int, pred_ts: int, min_offset: int = 0
    ) -> TimestampOffset | None:
        for pos, h in seg.batches(start_pos):
            if h.max_timestamp >= pred_ts and h.last_offset >= min_offset:
                for rec in iter_records(seg.view(pos, pos + h.size)):
                    if rec.timestamp >= pred_ts and rec.offset >= min_offset:
                        return TimestampOffset(rec.offset, rec.timestamp, h.partition_leader_epoch)
        return None

    def offset_for_timestamp(self, timestamp: int, max_offset: int) -> TimestampOffset | None:
        """The first record (from the log start, below `max_offset`) whose timestamp is ≥
        `timestamp`."""
        start_offset = self.log_start_offset
        for seg in self.segments:
            if seg.max_timestamp < timestamp or seg.next_offset <= start_offset:
                continue
            start = seg.find_position(max(seg.time_index.lookup(timestamp), start_offset))
            found = self._find_record(seg, start, timestamp, start_offset)
            if found is not None and found.offset < max_offset:
                return found
            return None
        return None

    def offset_of_max_timestamp(self, max_offset: int) -> TimestampOffset | None:
        """The record carrying the largest timestamp (the first one, on ties), KIP-734."""
        best: tuple[int, LogSegment] | None = None
        for seg in self.segments:
            if seg.size and (best is None or seg.max_timestamp > best[0]):
                best = (seg.max_timestamp, seg)
        if best is None:
            return None
        ts, seg = best
        found = self._find_record(seg, 0, ts)
        if found is None or found.offset >= max_offset:
            return None
        return found

    # ---- retention and truncation ----

    def enforce_retention(self, max_offset: int) -> list[LogSegment]:
        """Remove the segments that `retention.ms` / `retention.bytes` expire and that lie
        wholly below `max_offset`, and those wholly below the log start offset; returns them,
        renamed `*.deleted`, for deferred unlink."""
        now = self.clock.now_ms()
        doomed: list[LogSegment] = []
        for seg, following in zip(self.segments, self.segments[1:], strict=False):
            if following.base_offset > self.log_start_offset:
                break
            doomed.append(seg)
        # compact only: past the log start, the cleaner alone removes records
        deletes = "delete" in self.config.cleanup_policy
        if deletes and self.config.retention_ms >= 0:
            for seg in self.segments[len(doomed) :]:
                if seg.size == 0 or seg.max_timestamp >= now - self.config.retention_ms:
                    break
                if seg.next_offset > max_offset:
                    break
                doomed.append(seg)
        if deletes and self.config.retention_bytes >= 0:
            excess = self.size_in_bytes() - sum(seg.size for seg in doomed)
            excess -= self.config.retention_bytes
            for seg in self.segments[len(doomed) : -1]:
                if excess - seg.size < 0 or seg.next_offset > max_offset:
                    break
                excess -= seg.size
                doomed.append(seg)
        if not doomed:
            return []
        if doomed[-1] is self.active:
            self.roll()  # keep an (empty) active segment at the log end, as Kafka does
        for seg in doomed:
            seg.rename_for_deletion()
        del self.segments[: len(doomed)]
        del self._bases[: len(doomed)]
        self._segments_changed()
        self.producer_state.drop_aborted_below(self.log_start_offset)
        return doomed

    def replace_segments(self, old: list[LogSegment], new: LogSegment) -> None:
        """Put the cleaner's `new` segment in the place of `old` (contiguous, none active)."""
        i = self.segments.index(old[0])
        self.segments[i : i + len(old)] = [new]
        self._bases[i : i + len(old)] = [new.base_offset]
        self._segments_changed()

    def _note_truncation(self, offset: int) -> None:
        if self.truncated_to is None or offset < self.truncated_to:
            self.truncated_to = offset

    def truncate_to(self, offset: int) -> None:
        """Drop everything at or after `offset` (a batch boundary)."""
        self._note_truncation(offset)
        if offset < self.log_start_offset:
            self.truncate_fully_and_start_at(offset)  # as Kafka's UnifiedLog.truncateTo does
            return
        while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
            self.segments.pop().rename_for_deletion()
            self._bases.pop()
        if self.on_disk:
            self.segments[-1].truncate_to(offset)
        self._segments_changed()
        self.producer_state.truncate_to(offset)
        self.epochs.truncate_from_end(offset)
        if self.on_disk:
            active = self.active
            txn_index.rewrite(
                txn_index.path_for(active.path),
                [a for a in self.producer_state.aborted if a.last_offset >= active.base_offset],
            )

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and continue with an empty log at `offset` (a follower that fell
        below its leader's log start offset)."""
        self._note_truncation(offset)
        for seg in self.segments:
            seg.rename_for_deletion()
        self.segments.clear()
        self._bases.clear()
        self.producer_state = ProducerStateManager()
        self.epochs.clear()
        if not self.on_disk:
            self._make_on_disk()  # the new start offset must survive a restart
        self.log_start_offset = offset
        self._add_segment(self._new_segment(offset))
        self.active.preallocate(self._capacity_for(self.active, 0))

    def close(self) -> None:
        if self.on_disk:
            for seg in self.segments:
                seg.close()
            self.epochs.flush()

    def release(self) -> None:
        """Let go of every file without another write (the directory failed)."""
        for seg in self.segments:
            seg.release()

    def delete(self) -> None:
        for seg in self.segments:
            seg.rename_for_deletion()
        self.segments.clear()
        self._bases.clear()
