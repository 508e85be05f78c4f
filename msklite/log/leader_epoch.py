"""LeaderEpochCache: which leader epoch began at which offset, for one partition replica,
persisted as Kafka's `leader-epoch-checkpoint` (version line, count line, `epoch offset` lines).

It answers OffsetsForLeaderEpoch (KIP-101/279): the end offset of an epoch is the start offset
of the next larger epoch, or the log end offset for the latest one. Followers use that answer
to truncate exactly the records a new leader never had. Not thread-safe.

Changes reach the file when the log flushes or closes, not at each change: a replica's first
append in a new epoch would otherwise cost a file write and rename (30,000 of them for one
record to each of 10,000 partitions at RF 3). Losing the file in a crash loses nothing: the
log's batches carry their epochs and rebuild the cache when the log is opened.
"""

from __future__ import annotations

import os
from bisect import bisect_right

FILE_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, directory: str, load: bool = True) -> None:
        self.path = os.path.join(directory, FILE_NAME)
        self.entries: list[tuple[int, int]] = []  # (epoch, start offset), both increasing
        self._dirty = False
        if load:
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        try:
            if lines[0] != "0":
                return
            for line in lines[2 : 2 + int(lines[1])]:
                epoch, offset = line.split()
                self.entries.append((int(epoch), int(offset)))
        except (IndexError, ValueError):
            self.entries = []  # a damaged cache is rebuilt from the batches' epochs

    def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        lines = ["0", str(len(self.entries))] + [f"{e} {o}" for e, o in self.entries]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset` (no-op unless it is a newer epoch)."""
        if epoch < 0 or (self.entries and epoch <= self.entries[-1][0]):
            return
        # A newer epoch starting at or below an older one's start replaces it (the older one
        # never got a record).
        while self.entries and self.entries[-1][1] >= start_offset:
            self.entries.pop()
        self.entries.append((epoch, start_offset))
        self._dirty = True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest known epoch ≤ `epoch`, its end offset), Kafka's endOffsetFor."""
        if not self.entries or epoch < self.entries[0][0]:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch >= self.entries[-1][0]:
            return self.entries[-1][0], log_end_offset
        i = bisect_right([e for e, _ in self.entries], epoch)
        return self.entries[i - 1][0], self.entries[i][1]

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after `end_offset` (the log was truncated)."""
        keep = [(e, o) for e, o in self.entries if o < end_offset]
        if keep != self.entries:
            self.entries = keep
            self._dirty = True

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at `start_offset`: epochs that began below it begin there, the
        latest of them kept (Kafka's truncateFromStart)."""
        below = [i for i, (_, o) in enumerate(self.entries) if o <= start_offset]
        if not below:
            return
        last = below[-1]
        kept = [(self.entries[last][0], start_offset), *self.entries[last + 1 :]]
        if kept != self.entries:
            self.entries = kept
            self._dirty = True

    def clear(self) -> None:
        self.entries = []
        self._dirty = True
