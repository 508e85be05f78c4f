"""LogCleaner: one broker's log compaction (Kafka's LogCleaner, Cleaner, LogCleanerManager).

A log whose `cleanup.policy` holds `compact` keeps, for each key, the record with the highest
offset; offsets never change, so a compacted log has gaps. Each replica compacts its own log.

Choosing (LogCleanerManager): a log's *dirty* section starts at its checkpointed first dirty
offset (`cleaner-offset-checkpoint`, Kafka's format) and ends at the first uncleanable offset:
the active segment, the last stable offset (bounded by the high watermark), and the first
segment holding a record younger than `min.compaction.lag.ms`, whichever comes first. The
dirty section is cleanable here only in whole segments. The log with the largest dirty ratio
over `min.cleanable.dirty.ratio` is cleaned first; a log whose oldest dirty record is older
than `max.compaction.lag.ms` is cleaned whatever its ratio.

Cleaning (Cleaner.doClean): a key -> last offset map of the dirty section (aborted
transactional records and control batches left out; at most `log.cleaner.dedupe.buffer.size`
* `log.cleaner.io.buffer.load.factor` / 24 bytes a key, as Kafka's map holds, a segment at a
time), then every segment from the log start to the end of the map, in groups merged up to
`segment.bytes`, rewritten into one `.cleaned` segment each: a record stays if its key's
last offset is not above its own; a tombstone also stays until the delete horizon that its
batch was stamped with when first cleaned (KIP-534: now + `delete.retention.ms`, in the base
timestamp and attribute bit 6); records of aborted transactions go, and a transaction marker
goes once the data it ends is gone and its horizon has passed. Batches keep their base and
last offsets, producer fields and codec; a batch left without records is kept empty when it
holds an active producer's last sequence or ends the cleaned range; a batch that keeps all
its records and needs no horizon is copied as it is.

Swapping (LocalLog.replaceSegments): the cleaned files are flushed, renamed `.swap` (the log
file last), the replaced segments renamed `.deleted`, the `.swap` files given their final
names (the log file first). A crash anywhere in between is repaired by PartitionLog on open.
Readers holding views of a replaced segment keep its mapping; its files are unlinked
`file.delete.delay.ms` later, as retention's are.

The cleaner runs on the event loop in slices (`run`): a clean is a generator that yields after
every batch, and a slice ends after `_SLICE_S` of CPU, so a request never waits longer for
it. Between slices appends go on (never into the segments being cleaned: the active segment
is never cleaned), and a swap is dropped if retention, truncation or deletion changed the
segments meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator
from typing import NamedTuple

from msklite.clock import Clock
from msklite.config import BrokerConfigs
from msklite.log import txn_index
from msklite.log.manager import LogManager, read_checkpoint, write_checkpoint
from msklite.log.partition_log import PartitionLog
from msklite.log.producer_state import AbortedTxn
from msklite.log.segment import LogSegment
from msklite.protocol.records import (
    ABORT_MARKER,
    DELETE_HORIZON,
    BatchHeader,
    empty_batch,
    iter_records,
    marker_type,
    read_header,
    rebuild_batch,
)
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)

CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"
# Kafka's SkimpyOffsetMap: a 16-byte MD5 of the key and an 8-byte offset per entry.
_MAP_ENTRY_BYTES = 24
_SLICE_S = 0.005
_MAX_RELATIVE_OFFSET = 2**31 - 1


class LogToClean(NamedTuple):
    tp: TopicPartition
    plog: PartitionLog
    first_dirty: int
    first_uncleanable: int
    clean_bytes: int
    cleanable_bytes: int
    needs_now: bool  # max.compaction.lag.ms passed

    @property
    def ratio(self) -> float:
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0


def cleanable_range(
    plog: PartitionLog, checkpoint: int | None, upper_bound: int, now: int
) -> tuple[int, int, bool]:
    """(first dirty offset, first uncleanable offset, whether max.compaction.lag.ms forces a
    clean) of a log, as LogCleanerManager.cleanableOffsets computes them; `upper_bound` is the
    last stable offset. The first uncleanable offset is a segment's base offset."""
    first_dirty = checkpoint if checkpoint is not None else plog.log_start_offset
    if not plog.log_start_offset <= first_dirty <= plog.log_end_offset:
        first_dirty = plog.log_start_offset  # a stale checkpoint (truncation, deletion)
    config = plog.config
    first_uncleanable = plog.active.base_offset
    oldest_dirty = None
    for seg in plog.segments[:-1]:
        if seg.next_offset <= first_dirty:
            continue
        if seg.next_offset > upper_bound or (
            config.min_compaction_lag_ms > 0
            and seg.max_timestamp > now - config.min_compaction_lag_ms
        ):
            first_uncleanable = seg.base_offset
            break
        if seg.size and oldest_dirty is None:
            oldest_dirty = seg.header_at(0).max_timestamp  # Kafka: getFirstBatchTimestamp
    needs_now = oldest_dirty is not None and now - config.max_compaction_lag_ms > oldest_dirty
    return first_dirty, max(first_uncleanable, first_dirty), needs_now


def _aborted_ranges(plog: PartitionLog) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for a in plog.producer_state.aborted:
        out.setdefault(a.producer_id, []).append((a.first_offset, a.last_offset))
    return out


def _is_aborted(ranges: dict[int, list[tuple[int, int]]], h: BatchHeader) -> bool:
    return any(lo <= h.base_offset <= hi for lo, hi in ranges.get(h.producer_id, ()))


def build_offset_map(
    plog: PartitionLog, first_dirty: int, end: int, capacity: int, key_map: dict[bytes, int]
) -> Iterator[int]:
    """Fill `key_map` with the last offset of each key in [first_dirty, end), a whole segment
    at a time until `capacity` keys are mapped; yields after each batch and finally the offset
    the map ends at (the next clean starts there)."""
    aborted = _aborted_ranges(plog)
    mapped_to = first_dirty
    for seg in plog.segments:
        if seg.next_offset <= first_dirty:
            continue
        if seg.base_offset >= end or (key_map and len(key_map) >= capacity):
            break
        for pos, h in seg.batches():
            yield -1
            if h.is_control or h.last_offset < first_dirty:
                continue
            if h.is_transactional and _is_aborted(aborted, h):
                continue
            for rec in iter_records(seg.view(pos, pos + h.size)):
                if rec.key is not None and rec.offset >= first_dirty:
                    key_map[rec.key] = rec.offset
        mapped_to = seg.next_offset
    yield mapped_to


def group_segments(segments: list[LogSegment], max_bytes: int) -> list[list[LogSegment]]:
    """Consecutive segments merged while their sizes sum to at most `max_bytes` and their
    offsets stay within a relative int32 of the first (Cleaner.groupSegmentsBySize)."""
    groups: list[list[LogSegment]] = []
    i = 0
    while i < len(segments):
        group = [segments[i]]
        size = segments[i].size
        i += 1
        while (
            i < len(segments)
            and size + segments[i].size <= max_bytes
            and segments[i].next_offset - 1 - group[0].base_offset <= _MAX_RELATIVE_OFFSET
        ):
            size += segments[i].size
            group.append(segments[i])
            i += 1
        groups.append(group)
    return groups


class _Transactions:
    """Kafka's CleanedTransactionMetadata: which transactional batches belong to aborted
    transactions, and whether a marker still ends data that the cleaned log keeps."""

    def __init__(self, aborted: list[AbortedTxn]) -> None:
        self._pending = sorted(aborted, key=lambda a: a.first_offset)
        # producer id -> (its aborted transaction, whether one of its batches was seen)
        self._aborted: dict[int, tuple[AbortedTxn, bool]] = {}
        self._committed: set[int] = set()
        self.kept_aborted: list[AbortedTxn] = []

    def _start_up_to(self, offset: int) -> None:
        while self._pending and self._pending[0].first_offset <= offset:
            a = self._pending.pop(0)
            self._aborted[a.producer_id] = (a, False)

    def data_batch(self, h: BatchHeader) -> bool:
        """True if the batch's records may all be discarded (an aborted transaction's)."""
        self._start_up_to(h.last_offset)
        if not h.is_transactional:
            return False
        entry = self._aborted.get(h.producer_id)
        if entry is None:
            self._committed.add(h.producer_id)
            return False
        self._aborted[h.producer_id] = (entry[0], True)
        return True

    def control_batch(self, h: BatchHeader, kind: int) -> bool:
        """True if the marker ends a transaction none of whose data is left."""
        self._start_up_to(h.last_offset)
        if kind == ABORT_MARKER:
            entry = self._aborted.pop(h.producer_id, None)
            if entry is not None and entry[1]:
                self.kept_aborted.append(entry[0])
                return False
            return True
        if h.producer_id in self._committed:
            self._committed.discard(h.producer_id)
            return False
        return True


def _last_batches(plog: PartitionLog) -> dict[int, tuple[int, int]]:
    """producer id -> (its epoch, the last offset of its last data batch, -1 if none): the
    batches that keep an active producer's sequence and epoch (Kafka's
    lastRecordsOfActiveProducers)."""
    return {
        pid: (e.epoch, e.batches[-1].last_offset if e.batches else -1)
        for pid, e in plog.producer_state.producers.items()
    }


def clean_batch(
    view: memoryview,
    h: BatchHeader,
    key_map: dict[bytes, int],
    map_end: int,
    txns: _Transactions,
    last_batches: dict[int, tuple[int, int]],
    round_end: int,
    now: int,
    delete_retention_ms: int,
) -> memoryview | bytes | None:
    """What the cleaned segment holds in place of one batch: the batch itself, a rebuilt
    one, an empty one, or nothing (Cleaner.cleanInto's filter)."""
    horizon = h.base_timestamp if h.attributes & DELETE_HORIZON else None
    if h.is_control:
        discardable = txns.control_batch(h, marker_type(view))
        discard_records = discardable and horizon is not None and horizon <= now
    else:
        discardable = discard_records = txns.data_batch(h)
    last = last_batches.get(h.producer_id)
    is_last_of_producer = last is not None and (
        h.last_offset == last[1] if last[1] >= 0 else h.is_control and h.producer_epoch == last[0]
    )
    retain_empty = (h.producer_id >= 0 and is_last_of_producer) or h.last_offset + 1 == round_end
    records = list(iter_records(view))
    if discard_records:
        kept = []
    elif h.is_control:
        kept = records
    else:
        kept = [
            r
            for r in records
            if r.offset >= map_end
            or (
                r.key is not None
                and r.offset >= key_map.get(r.key, -1)
                and (r.value is not None or horizon is None or now < horizon)
            )
        ]
    if not kept:
        return empty_batch(h) if retain_empty else None
    # Tombstones and the markers of emptied transactions are stamped with their horizon.
    needs_horizon = horizon is None and (
        (h.is_control and discardable) or any(r.value is None for r in kept)
    )
    if len(kept) == len(records) and not needs_horizon:
        return view
    return rebuild_batch(h, kept, now + delete_retention_ms if needs_horizon else horizon)


class LogCleaner:
    def __init__(
        self,
        logs: LogManager,
        configs: BrokerConfigs,
        clock: Clock,
        upper_bound: Callable[[TopicPartition, PartitionLog], int],
        storage_failed: Callable[[OSError], object],
    ) -> None:
        """`upper_bound`: a log's last stable offset (bounded by its high watermark)."""
        self.logs = logs
        self.configs = configs
        self.clock = clock
        self._upper_bound = upper_bound
        self._storage_failed = storage_failed
        self._path = os.path.join(logs.root, CLEANER_CHECKPOINT)
        self.checkpoints = read_checkpoint(self._path)
        self._uncleanable: set[TopicPartition] = set()
        self.current: TopicPartition | None = None  # the log being cleaned
        self.bytes_read = 0  # source bytes of the segments cleaned, for the benchmark

    # ---- choosing ----

    def filthiest(self) -> LogToClean | None:
        now = self.clock.now_ms()
        best: LogToClean | None = None
        for tp, plog in self.logs.logs.items():
            cut = plog.truncated_to
            if cut is not None:
                plog.truncated_to = None
                if self.checkpoints.get(tp, -1) > cut:
                    self.checkpoints[tp] = cut
            if "compact" not in plog.config.cleanup_policy or tp in self._uncleanable:
                continue
            first_dirty, first_uncleanable, needs_now = cleanable_range(
                plog, self.checkpoints.get(tp), self._upper_bound(tp, plog), now
            )
            clean = cleanable = 0
            for seg in plog.segments[:-1]:
                if seg.next_offset <= first_dirty:
                    clean += seg.size
                elif seg.base_offset < first_uncleanable:
                    cleanable += seg.size
            candidate = LogToClean(
                tp, plog, first_dirty, first_uncleanable, clean, cleanable, needs_now
            )
            if cleanable == 0:
                continue
            if not (needs_now or candidate.ratio > plog.config.min_cleanable_dirty_ratio):
                continue
            if best is None or candidate.ratio > best.ratio:
                best = candidate
        return best

    def _map_capacity(self) -> int:
        buffer = self.configs.get_int("log.cleaner.dedupe.buffer.size")
        threads = max(1, self.configs.get_int("log.cleaner.threads"))
        factor = float(self.configs.get("log.cleaner.io.buffer.load.factor") or 0.9)
        return max(1, int(buffer / threads / _MAP_ENTRY_BYTES * factor))

    # ---- cleaning ----

    def clean_steps(self) -> Generator[bool, None, None]:
        """Clean the filthiest log; yields False between steps, True once a log is cleaned
        (nothing if none needs it)."""
        todo = self.filthiest()
        if todo is None:
            return
        tp, plog = todo.tp, todo.plog
        self.current = tp
        now = self.clock.now_ms()
        key_map: dict[bytes, int] = {}
        map_end = todo.first_dirty
        for step in build_offset_map(
            plog, todo.first_dirty, todo.first_uncleanable, self._map_capacity(), key_map
        ):
            if step < 0:
                yield False
            else:
                map_end = step
        sources = [
            s for s in plog.segments[:-1] if s.next_offset <= map_end and s.base_offset < map_end
        ]
        txns = _Transactions(list(plog.producer_state.aborted))
        last_batches = _last_batches(plog)
        for group in group_segments(sources, plog.config.segment_bytes):
            sizes = [s.size for s in group]
            cleaned = LogSegment(
                plog.directory,
                group[0].base_offset,
                plog.config.index_interval_bytes,
                group[0].created_ms,
                suffix=".cleaned",
            )
            try:
                for seg in group:
                    for pos, h in seg.batches():
                        out = clean_batch(
                            seg.view(pos, pos + h.size),
                            h,
                            key_map,
                            map_end,
                            txns,
                            last_batches,
                            map_end,
                            now,
                            plog.config.delete_retention_ms,
                        )
                        if out is not None:
                            cleaned.append(
                                [out], h if isinstance(out, memoryview) else read_header(out)
                            )
                        self.bytes_read += h.size
                        yield False
                if self.logs.logs.get(tp) is not plog or not _unchanged(plog, group, sizes):
                    log.info("%s: segments changed while cleaning, clean dropped", tp)
                    _delete_files(cleaned)
                    return
                self._swap(plog, group, cleaned, txns.kept_aborted)
            except BaseException:
                _delete_files(cleaned)
                raise
        self.checkpoints[tp] = map_end
        self._write_checkpoint()
        yield True

    def _swap(
        self,
        plog: PartitionLog,
        group: list[LogSegment],
        cleaned: LogSegment,
        kept: list[AbortedTxn],
    ) -> None:
        end = group[-1].next_offset
        txn_index.rewrite(
            txn_index.path_for(cleaned.path[: -len(".cleaned")]) + ".cleaned",
            [a for a in kept if group[0].base_offset <= a.last_offset < end],
        )
        cleaned.trim()
        cleaned.flush()
        cleaned.release()
        stem = cleaned.path[: -len(".log.cleaned")]
        exts = (".index", ".timeindex", ".txnindex", ".log")  # the log file last
        for ext in exts:
            if ext != ".txnindex" or os.path.exists(stem + ext + ".cleaned"):
                os.replace(stem + ext + ".cleaned", stem + ext + ".swap")
        for seg in group:
            seg.rename_for_deletion()
        for ext in reversed(exts):  # the log file first
            if ext != ".txnindex" or os.path.exists(stem + ext + ".swap"):
                os.replace(stem + ext + ".swap", stem + ext)
        new = LogSegment(
            plog.directory,
            group[0].base_offset,
            plog.config.index_interval_bytes,
            group[0].created_ms,
        )
        if not new.load():
            new.recover()
        plog.replace_segments(group, new)
        self.logs.defer_unlink(group, plog.config.file_delete_delay_ms)

    def _write_checkpoint(self) -> None:
        live = {tp: o for tp, o in self.checkpoints.items() if tp in self.logs.logs}
        self.checkpoints = live
        write_checkpoint(self._path, live)

    def clean_once(self) -> bool:
        """Clean the filthiest log to the end, now (tests, the benchmark)."""
        return any(self.clean_steps())  # True comes last

    async def run(self) -> None:
        """Clean in slices of the event loop while logs need it, then wait
        `log.cleaner.backoff.ms` (Kafka's cleaner thread)."""
        while True:
            if self.configs.get_bool("log.cleaner.enable") and self.logs.offline is None:
                try:
                    if await self.clean_in_slices():
                        continue
                except OSError as e:
                    self._storage_failed(e)
                except Exception:
                    log.exception("log cleaner failed; the log is left as it is")
            await self.clock.sleep(self.configs.get_int("log.cleaner.backoff.ms"))

    async def clean_in_slices(self) -> bool:
        """One clean (of the filthiest log) in slices of the event loop, as `run` does;
        True if a log was cleaned."""
        steps = self.clean_steps()
        deadline = time.perf_counter() + _SLICE_S
        done = False
        try:
            for step in steps:
                done = step
                if time.perf_counter() >= deadline:
                    await asyncio.sleep(0)
                    deadline = time.perf_counter() + _SLICE_S
        except OSError:
            tp = self.current
            if tp is not None and tp not in self.logs.logs:
                return False  # the log was deleted under the clean: nothing is wrong
            raise
        except Exception:
            if self.current is not None:
                self._uncleanable.add(self.current)  # as Kafka marks a partition uncleanable
            raise
        finally:
            steps.close()  # a cancelled clean deletes its .cleaned files now
        return done


def _unchanged(plog: PartitionLog, group: list[LogSegment], sizes: list[int]) -> bool:
    try:
        i = plog.segments.index(group[0])
    except ValueError:
        return False
    now = plog.segments[i : i + len(group)]
    return (
        len(now) == len(group)
        and all(a is b for a, b in zip(now, group, strict=True))
        and [s.size for s in group] == sizes
        and now[-1] is not plog.active
    )


def _delete_files(seg: LogSegment) -> None:
    seg.release()
    stem = seg.path[: -len(".log.cleaned")]
    for ext in (".log", ".index", ".timeindex", ".txnindex"):
        # never the `.swap` files: once the log file is one, the swap must be completed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stem + ext + ".cleaned")
