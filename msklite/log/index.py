"""Sparse offset and time indexes of one segment (`.index`, `.timeindex`), in Kafka's
fixed-width big-endian entry formats.

Entries live in memory as two arrays each (lookups bisect them) and reach the file in batches
(`_IndexFile`); the file is the persistent copy that a restart reads back instead of
rescanning the segment. One entry is made every `index.interval.bytes` of log.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right

_OFFSET_ENTRY = struct.Struct(">ii")  # relative offset, position
_TIME_ENTRY = struct.Struct(">qi")  # timestamp, relative offset
_PENDING_BYTES = 4096


class _IndexFile:
    """An index's file, appended to in batches.

    Entries wait in memory until 4 KiB of them have gathered, the segment rolls or closes, or
    the log is flushed: one entry is made every `index.interval.bytes` of log, and writing each
    on its own cost an open/write/close per batch of ≥ 4 KiB (ext4 stalled some of them for
    milliseconds). Entries lost in a crash are harmless: recovery rebuilds the indexes of the
    active segment and of every segment after the recovery point, which the flush bounds.
    No descriptor is kept: 10,000 partitions would otherwise hold 60,000 index files open.
    """

    __slots__ = ("_pending", "path")

    def __init__(self, path: str, create: bool = True) -> None:
        self.path = path
        self._pending = bytearray()
        if create:
            self.create()

    def create(self) -> None:
        open(self.path, "ab").close()  # exists from now on, as Kafka's index files do

    def read(self) -> bytes:
        self.flush()
        with open(self.path, "rb") as f:
            return f.read()

    def append(self, entry: bytes) -> None:
        self._pending += entry
        if len(self._pending) >= _PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, self._pending)
            finally:
                os.close(fd)
            self._pending.clear()

    def truncate(self, size: int) -> None:
        self.flush()
        with open(self.path, "ab") as f:
            f.truncate(size)


class OffsetIndex:
    """Maps relative base offsets of indexed batches to their file positions."""

    def __init__(self, path: str, base_offset: int, create: bool = True) -> None:
        self.file = _IndexFile(path, create)
        self.base_offset = base_offset
        self.rel_offsets = array("i")
        self.positions = array("i")

    @property
    def path(self) -> str:
        return self.file.path

    def load(self) -> bool:
        """Read the file back; False if it is not a valid index (the caller rebuilds)."""
        data = self.file.read()
        if len(data) % _OFFSET_ENTRY.size:
            return False
        for rel, pos in _OFFSET_ENTRY.iter_unpack(data):
            if (self.positions and pos <= self.positions[-1]) or rel < 0:
                return False
            self.rel_offsets.append(rel)
            self.positions.append(pos)
        return True

    def reset(self) -> None:
        self.rel_offsets = array("i")
        self.positions = array("i")
        self.file.truncate(0)

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        self.rel_offsets.append(rel)
        self.positions.append(position)
        self.file.append(_OFFSET_ENTRY.pack(rel, position))

    def lookup(self, offset: int) -> int:
        """Position of the last indexed batch starting at or before `offset` (0 if none)."""
        i = bisect_right(self.rel_offsets, offset - self.base_offset)
        return self.positions[i - 1] if i else 0

    def floor_position(self, position: int) -> int:
        """The largest indexed batch position at or before `position` (0 if none)."""
        i = bisect_right(self.positions, position)
        return self.positions[i - 1] if i else 0

    def truncate_to_position(self, position: int) -> None:
        """Drop entries at or beyond `position` (the segment was truncated there)."""
        i = bisect_right(self.positions, position - 1)
        del self.rel_offsets[i:]
        del self.positions[i:]
        self.file.truncate(i * _OFFSET_ENTRY.size)


class TimeIndex:
    """Maps the largest timestamp seen so far to the offset that carried it."""

    def __init__(self, path: str, base_offset: int, create: bool = True) -> None:
        self.file = _IndexFile(path, create)
        self.base_offset = base_offset
        self.timestamps = array("q")
        self.rel_offsets = array("i")

    @property
    def path(self) -> str:
        return self.file.path

    def load(self) -> bool:
        data = self.file.read()
        if len(data) % _TIME_ENTRY.size:
            return False
        for ts, rel in _TIME_ENTRY.iter_unpack(data):
            if self.timestamps and ts < self.timestamps[-1]:
                return False
            self.timestamps.append(ts)
            self.rel_offsets.append(rel)
        return True

    def reset(self) -> None:
        self.timestamps = array("q")
        self.rel_offsets = array("i")
        self.file.truncate(0)

    def maybe_append(self, timestamp: int, offset: int) -> None:
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        rel = offset - self.base_offset
        self.timestamps.append(timestamp)
        self.rel_offsets.append(rel)
        self.file.append(_TIME_ENTRY.pack(timestamp, rel))

    def lookup(self, timestamp: int) -> int:
        """An offset from which a scan finds the first record with a timestamp ≥ `timestamp`:
        the offset of the last entry whose timestamp is below it (the base offset if none)."""
        i = bisect_right(self.timestamps, timestamp - 1)
        return self.base_offset + self.rel_offsets[i - 1] if i else self.base_offset

    def truncate_to_offset(self, offset: int) -> None:
        rel = offset - self.base_offset
        keep = len(self.rel_offsets)
        while keep and self.rel_offsets[keep - 1] >= rel:
            keep -= 1
        del self.timestamps[keep:]
        del self.rel_offsets[keep:]
        self.file.truncate(keep * _TIME_ENTRY.size)
