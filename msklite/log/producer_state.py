"""Idempotent-producer state of one partition: per producer id, its epoch and the metadata of
its last five batches (Kafka's ProducerStateManager, `max.in.flight.requests` ≤ 5).

Rules, from Kafka's ProducerAppendInfo:
- an epoch older than the one we know → INVALID_PRODUCER_EPOCH;
- a newer epoch must start at sequence 0, unless we knew no epoch at all;
- within an epoch, a batch equal to one of the last five (same first and last sequence) is a
  retry: it is answered with the original offsets and not appended again;
- otherwise its first sequence must follow the last one (wrapping at 2^31 - 1), or
  OUT_OF_ORDER_SEQUENCE_NUMBER;
- a producer we know nothing about (new, or its batches were deleted) may start anywhere.
It reads batch headers only, so it is rebuilt at start-up by scanning the log's headers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from msklite.errors import ErrorCode, KafkaError
from msklite.protocol.records import NO_PRODUCER_ID, BatchHeader

MAX_CACHED_BATCHES = 5


class BatchMetadata(NamedTuple):
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == 0x7FFFFFFF)


class ProducerStateManager:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}

    def check(self, h: BatchHeader) -> BatchMetadata | None:
        """Validate an incoming batch; returns the original metadata if it is a duplicate."""
        if h.producer_id == NO_PRODUCER_ID:
            return None
        entry = self.producers.get(h.producer_id)
        if entry is None:
            return None
        if h.producer_epoch < entry.epoch:
            raise KafkaError(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                f"epoch {h.producer_epoch} is older than the current {entry.epoch}",
            )
        if h.producer_epoch > entry.epoch:
            if h.base_sequence != 0:
                raise KafkaError(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"new epoch {h.producer_epoch} must start at sequence 0",
                )
            return None
        for b in entry.batches:
            if b.first_seq == h.base_sequence and b.last_seq == h.last_sequence:
                return b
        if entry.batches and not _in_sequence(entry.batches[-1].last_seq, h.base_sequence):
            raise KafkaError(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"expected sequence {entry.batches[-1].last_seq + 1}, got {h.base_sequence}",
            )
        return None

    def update(self, h: BatchHeader) -> None:
        """Record a batch that is now in the log (at its final offsets)."""
        if h.producer_id == NO_PRODUCER_ID:
            return
        entry = self.producers.get(h.producer_id)
        if entry is None or h.producer_epoch > entry.epoch:
            entry = self.producers[h.producer_id] = ProducerEntry(h.producer_epoch)
        entry.batches.append(
            BatchMetadata(
                h.base_sequence, h.last_sequence, h.base_offset, h.last_offset, h.max_timestamp
            )
        )

    def truncate_to(self, offset: int) -> None:
        """Forget batches at or past `offset` (the log was truncated there)."""
        for pid in list(self.producers):
            entry = self.producers[pid]
            while entry.batches and entry.batches[-1].last_offset >= offset:
                entry.batches.pop()
            if not entry.batches:
                del self.producers[pid]

    def max_producer_id(self) -> int:
        return max(self.producers, default=-1)
