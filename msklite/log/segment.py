"""LogSegment: one `<20-digit base offset>.log` with its `.index` and `.timeindex`.

Writes go through `os.pwritev` into the page cache. Reads are memoryviews over one read-only
mmap of the file, which goes to the socket without a copy. To keep that mmap valid as the
segment grows, the active segment's file is extended (sparsely) to `capacity` when created —
Kafka's `preallocate` — and trimmed to its real size when it rolls or closes; recovery treats
the zero tail of a crashed preallocated file as the end of the log.

Nothing ever reads a mapped page that was never written: on tmpfs such a read allocates the
page, and on a full file system that allocation fails with SIGBUS. Appends and reads stay
below `size`; recovery scans only up to the file's first hole (`SEEK_HOLE`), where the sparse
tail begins.

Lifetime rule: views handed out may sit in transport buffers after the segment is rolled,
truncated or deleted, so the mmap is never `close()`d — dropping the last reference unmaps it
once the last view is gone (and an unlinked file's pages stay readable until then).

Not thread-safe; owned by its PartitionLog.
"""

from __future__ import annotations

import errno
import mmap
import os
import resource
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from msklite.log.index import OffsetIndex, TimeIndex
from msklite.protocol.primitives import Buffer
from msklite.protocol.records import (
    HEADER_SIZE,
    BatchHeader,
    read_header,
    scan_valid_prefix,
)


class _Lru:
    """Segments holding a scarce resource, least recently used released first.

    Two resources are scarce: write descriptors, and read mmaps (CPython's mmap keeps a
    duplicate descriptor of its own). 10,000 partitions at RF 3 would otherwise need 60,000
    descriptors against this machine's limit of 20,000; a segment that lost its descriptor or
    mapping gets it back on its next use (≈10 µs)."""

    def __init__(self, release: Callable[[LogSegment], None]) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limit = max(32, soft // 3)
        self._release = release
        self._held: OrderedDict[LogSegment, None] = OrderedDict()

    def touch(self, seg: LogSegment) -> None:
        if seg in self._held:
            self._held.move_to_end(seg)
            return
        self._held[seg] = None
        while len(self._held) > self.limit:
            old, _ = self._held.popitem(last=False)
            self._release(old)

    def drop(self, seg: LogSegment) -> None:
        if self._held.pop(seg, 0) is None:
            self._release(seg)


def _close_descriptor(seg: LogSegment) -> None:
    if seg._fd is not None:
        os.close(seg._fd)
        seg._fd = None


def _unmap(seg: LogSegment) -> None:
    # Views already handed out keep the mapping alive until they are released.
    seg._view = None
    seg._populated_to = 0


class _Held(threading.local):
    """The two LRUs of the calling thread. Segments live on one event loop's thread; two
    clusters in two threads must not evict (and close) each other's descriptors mid-write."""

    def __init__(self) -> None:
        self.descriptors = _Lru(_close_descriptor)
        self.mappings = _Lru(_unmap)


_HELD = _Held()

# madvise(MADV_POPULATE_READ) (Linux 5.14+; Python 3.11 has no name for it): maps a range's
# page-cache pages into the process at once. None where it is not known to exist.
_POPULATE_READ: int | None = 22 if sys.platform == "linux" else None
_PAGE = mmap.PAGESIZE


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class LogSegment:
    def __init__(
        self,
        directory: str,
        base_offset: int,
        index_interval_bytes: int,
        created_ms: int,
        create: bool = True,
        suffix: str = "",
    ) -> None:
        """`create=False`: no file is made until `create_files` (the first segment of a new
        partition, PartitionLog says why). `suffix` follows every file name (the cleaner's
        `.cleaned` segments)."""
        self.base_offset = base_offset
        stem = os.path.join(directory, segment_name(base_offset))
        self.path = stem + ".log" + suffix
        self.index_interval_bytes = index_interval_bytes
        self._fd: int | None = None
        if create:
            self._descriptor()  # creates the file
        self.offset_index = OffsetIndex(stem + ".index" + suffix, base_offset, create)
        self.time_index = TimeIndex(stem + ".timeindex" + suffix, base_offset, create)
        self.size = 0
        self.capacity = 0
        self._view: memoryview | None = None  # of the current mmap
        # where the pages of the current mmap that `prefaulted_view` mapped in end
        self._populated_to = 0
        self.next_offset = base_offset  # one past the last offset stored here
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.created_ms = created_ms
        self._bytes_since_index = 0
        # (base offset, position) of the last batch: followers and consumers mostly read the
        # tail, and finding it must not scan the batches after the last index entry
        self._tail: tuple[int, int] | None = None

    def _descriptor(self) -> int:
        fd = self._fd
        if fd is None:
            fd = self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        _HELD.descriptors.touch(self)
        return fd

    def _mapped(self) -> memoryview:
        """The read view over the file's first max(capacity, size) bytes, mapped (again) when
        missing or too short; a replaced mapping lives on while views of it exist."""
        view = self._view
        need = max(self.capacity, self.size)
        if view is None or len(view) < need:
            if need == 0:
                return memoryview(b"")
            view = self._view = memoryview(mmap.mmap(self._descriptor(), need, prot=mmap.PROT_READ))
            self._populated_to = 0
        _HELD.mappings.touch(self)
        return view

    # ---- opening ----

    def create_files(self) -> None:
        self._descriptor()
        self.offset_index.file.create()
        self.time_index.file.create()

    def file_size(self) -> int:
        return os.fstat(self._descriptor()).st_size

    def _written_end(self, end: int) -> int:
        """Where the sparse (never written) tail of the file's first `end` bytes begins."""
        try:
            return min(os.lseek(self._descriptor(), 0, os.SEEK_HOLE), end)
        except OSError:  # no SEEK_HOLE on this file system: holes read as zeros there
            return end

    def recover(self) -> int:
        """Rebuild the indexes from the data file, keeping the longest valid prefix of
        CRC-checked batches, and cut off the rest; returns how many of the bytes cut had been
        written (torn or corrupt data, not the zeros of the preallocated tail)."""
        end = self.file_size()
        self.capacity = end
        self.offset_index.reset()
        self.time_index.reset()
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self._bytes_since_index = 0
        self._tail = None
        written = self._written_end(end) if end else 0
        if written:
            for pos, h in scan_valid_prefix(self._mapped(), 0, written):
                self._track(pos, h)
                self.size = pos + h.size
        # Up to the last non-zero byte: zeros after it are the preallocated tail.
        torn = len(bytes(self._mapped()[self.size : written]).rstrip(b"\0"))
        if end > self.size:
            os.ftruncate(self._descriptor(), self.size)
            self.capacity = self.size
        return torn

    def load(self) -> bool:
        """Open a sealed segment from its indexes without reading the data; False when the
        indexes are unusable (the caller recovers instead)."""
        self.size = self.capacity = self.file_size()
        if self._written_end(self.size) < self.size:
            return False  # not trimmed: a crash before the roll finished
        if not (self.offset_index.load() and self.time_index.load()):
            return False
        if self.size == 0:
            return True
        # The last batch bounds the segment: scan from the last index entry to find it.
        pos = self.offset_index.positions[-1] if self.offset_index.positions else 0
        last: BatchHeader | None = None
        while pos + HEADER_SIZE <= self.size:
            last = self.header_at(pos)
            pos += last.size
        if last is None or pos != self.size:
            return False
        self._tail = (last.base_offset, pos - last.size)
        self.next_offset = last.last_offset + 1
        if self.time_index.timestamps:
            self.max_timestamp = self.time_index.timestamps[-1]
            self.offset_of_max_timestamp = self.base_offset + self.time_index.rel_offsets[-1]
        # Batches after the last time-index entry may still carry a larger timestamp.
        if last.max_timestamp > self.max_timestamp:
            self.max_timestamp = last.max_timestamp
            self.offset_of_max_timestamp = last.last_offset
        return True

    def preallocate(self, capacity: int) -> None:
        """Extend the file (sparsely) so appends up to `capacity` need no remap."""
        if capacity > self.file_size():
            os.ftruncate(self._descriptor(), capacity)
        self.capacity = max(capacity, self.size)

    # ---- appending ----

    def _track(self, pos: int, h: BatchHeader) -> None:
        if h.max_timestamp > self.max_timestamp:
            self.max_timestamp = h.max_timestamp
            self.offset_of_max_timestamp = h.last_offset
        if self._bytes_since_index >= self.index_interval_bytes:
            self.offset_index.append(h.base_offset, pos)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index = 0
        self._bytes_since_index += h.size
        self.next_offset = h.last_offset + 1
        self._tail = (h.base_offset, pos)

    def append(self, parts: list[Buffer], h: BatchHeader) -> int:
        """Write one batch (already carrying its final offsets) at the end; returns its
        position. The caller has checked that it fits or accepts growing the file."""
        pos = self.size
        end = pos + h.size
        fd = self._descriptor()
        written = os.pwritev(fd, parts, pos)
        if written != h.size:
            # A short write (the file system filled up mid-batch): writing the rest meets the
            # error that stopped it, which is the cause worth reporting.
            rest = b"".join(parts)[written:]
            while rest:
                n = os.pwrite(fd, rest, pos + h.size - len(rest))
                if n == 0:
                    raise OSError(errno.EIO, f"short write to {self.path}")
                rest = rest[n:]
        if end > self.capacity:
            self.capacity = end
        self._track(pos, h)
        self.size = end
        return pos

    # ---- reading ----

    def header_at(self, pos: int) -> BatchHeader:
        view = self._view
        if view is None or pos + HEADER_SIZE > len(view):
            view = self._mapped()
        return read_header(view, pos)

    def view(self, start: int, end: int) -> memoryview:
        return self._mapped()[start:end]

    def prefaulted_view(self, start: int, end: int) -> memoryview:
        """`view`, its pages mapped ahead, for a view about to be written to another file (a
        follower's copy). Linux copies a write's source without taking page faults: from
        pages of the mapping not yet mapped into the process, the copy comes up short, the
        new page-cache pages it filled are zeroed, and the copy starts over once the pages
        are faulted in; RF 3 produce spent ≈ a fifth of the broker's CPU on that zeroing."""
        global _POPULATE_READ
        view = self._mapped()
        if _POPULATE_READ is not None and end > self._populated_to:
            # Pages mapped once stay mapped (the tail page too: appends land in the same
            # page-cache page), so only the pages past the last call's are asked for: a
            # follower reading small batches otherwise paid a madvise per fetch (≈ 1/8 of the
            # broker's CPU for one-record produces at RF 3). Should the kernel unmap a page
            # meanwhile, the copy is slower, never wrong.
            first = max(start, self._populated_to)
            first -= first % _PAGE
            try:
                cast(mmap.mmap, view.obj).madvise(_POPULATE_READ, first, end - first)
            except OSError:
                _POPULATE_READ = None  # a kernel before 5.14: the copy faults them in itself
            else:
                self._populated_to = min(end + -end % _PAGE, len(view))
        return view[start:end]

    def find_position(self, offset: int) -> int:
        """Position of the first batch holding an offset ≥ `offset` (`size` if none)."""
        tail = self._tail
        if tail is not None and offset >= tail[0]:
            return tail[1] if offset < self.next_offset else self.size
        pos = self.offset_index.lookup(offset)
        while pos < self.size:
            h = self.header_at(pos)
            if h.last_offset >= offset:
                return pos
            pos += h.size
        return self.size

    def boundary_at_or_before(self, limit: int, start: int) -> int:
        """The end of the last whole batch that starts at or after `start` and ends at or
        before `limit` (`start` if even the first batch does not fit)."""
        pos = max(start, self.offset_index.floor_position(limit))
        while pos < self.size:
            nxt = pos + self.header_at(pos).size
            if nxt > limit:
                break
            pos = nxt
        return pos

    def batches(self, start: int = 0, end: int | None = None) -> list[tuple[int, BatchHeader]]:
        out = []
        pos = start
        stop = self.size if end is None else end
        while pos < stop:
            h = self.header_at(pos)
            out.append((pos, h))
            pos += h.size
        return out

    # ---- shrinking and closing ----

    def truncate_to(self, offset: int) -> None:
        """Drop every batch holding an offset at or after `offset`."""
        pos = self.find_position(offset)
        os.ftruncate(self._descriptor(), pos)
        self.size = pos
        self.capacity = pos
        self.offset_index.truncate_to_position(pos)
        self.time_index.truncate_to_offset(offset)
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self._tail = None
        for batch_pos, h in self.batches():
            self._tail = (h.base_offset, batch_pos)
            self.next_offset = h.last_offset + 1
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp = h.max_timestamp
                self.offset_of_max_timestamp = h.last_offset

    def trim(self) -> None:
        """Give back the preallocated tail and write out waiting index entries (on roll and
        close)."""
        self.offset_index.file.flush()
        self.time_index.file.flush()
        if self.file_size() != self.size:
            os.ftruncate(self._descriptor(), self.size)
        self.capacity = self.size

    def flush(self) -> None:
        self.offset_index.file.flush()
        self.time_index.file.flush()
        os.fsync(self._descriptor())

    def close(self) -> None:
        self.trim()
        self.release()

    def release(self) -> None:
        """Let go of the descriptor and mapping without writing (the directory failed)."""
        _HELD.descriptors.drop(self)
        _HELD.mappings.drop(self)  # unmapped when the last outstanding view is released

    def rename_for_deletion(self) -> list[str]:
        """Close and rename the files to `*.deleted`; returns the new paths."""
        _HELD.descriptors.drop(self)
        _HELD.mappings.drop(self)
        out = []
        txn_index = self.path[: -len(".log")] + ".txnindex"
        for path in (self.path, self.offset_index.path, self.time_index.path, txn_index):
            if os.path.exists(path):
                os.rename(path, path + ".deleted")
                out.append(path + ".deleted")
        return out
