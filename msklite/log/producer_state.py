"""Idempotent-producer state of one partition: per producer id, its epoch and the metadata of
its last five batches (Kafka's ProducerStateManager, `max.in.flight.requests` ≤ 5).

Rules, from Kafka's ProducerAppendInfo:
- an epoch older than the one we know → INVALID_PRODUCER_EPOCH;
- a newer epoch must start at sequence 0, unless we knew no epoch at all;
- within an epoch, a batch equal to one of the last five (same first and last sequence) is a
  retry: it is answered with the original offsets and not appended again;
- otherwise its first sequence must follow the last one (wrapping at 2^31 - 1), or
  OUT_OF_ORDER_SEQUENCE_NUMBER;
- a producer we know nothing about (new, its batches deleted, or expired) may start anywhere.
A producer idle for producer.id.expiration.ms (since its last batch's max timestamp, as Kafka
counts) with no transaction open here is forgotten (`remove_expired`, run by the cluster every
producer.id.expiration.check.interval.ms, Kafka's default 10 minutes).
It reads batch headers only (and a marker's type), so it is rebuilt at start-up by scanning
the log's headers.

Transactions (Kafka's ProducerStateManager / TxnMetadata on the partition side): a producer's
first transactional batch opens its transaction here; a control batch (COMMIT or ABORT marker)
closes it. The first offset of the earliest open transaction — or of a completed one whose marker
is not yet under the high watermark — is the first unstable offset, which bounds the last stable
offset (LSO) that read_committed consumers may read up to. An aborted transaction becomes an
entry of the aborted-transaction index (what `.txnindex` files hold), which read_committed
fetches return so that clients drop its records.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from msklite.errors import ErrorCode, KafkaError
from msklite.protocol.records import COMMIT_MARKER, NO_PRODUCER_ID, BatchHeader

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
    # the max timestamp of its last batch or marker (Kafka's lastTimestamp), which
    # producer.id.expiration.ms counts from
    last_timestamp: int = -1
    # the coordinator epoch of its last marker: a marker from an older coordinator is fenced
    coordinator_epoch: int = -1


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == 0x7FFFFFFF)


class AbortedTxn(NamedTuple):
    """One entry of the aborted-transaction index (Kafka's AbortedTxn)."""

    producer_id: int
    first_offset: int
    last_offset: int  # the ABORT marker's offset
    last_stable_offset: int  # the LSO once this transaction was complete


class CompletedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    marker_offset: int
    aborted: bool


class ProducerStateManager:
    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        # producer id -> first offset of its open transaction
        self.ongoing: dict[int, int] = {}
        # completed transactions whose marker may still be above the high watermark
        self._completed: list[CompletedTxn] = []
        self.aborted: list[AbortedTxn] = []

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
        if h.is_control:
            return None
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

    def update(
        self, h: BatchHeader, marker: int = -1, coordinator_epoch: int = -1
    ) -> AbortedTxn | None:
        """Record a batch that is now in the log (at its final offsets); `marker` is a control
        batch's type (records.COMMIT_MARKER / ABORT_MARKER) and `coordinator_epoch` the one it
        carries. Returns the aborted-index entry an ABORT marker makes."""
        if h.producer_id == NO_PRODUCER_ID:
            return None
        entry = self.producers.get(h.producer_id)
        if entry is None or h.producer_epoch > entry.epoch:
            entry = self.producers[h.producer_id] = ProducerEntry(h.producer_epoch)
        entry.last_timestamp = max(entry.last_timestamp, h.max_timestamp)
        if h.is_control:
            entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
            return self._end_txn(h, marker)
        if h.is_transactional:
            self.ongoing.setdefault(h.producer_id, h.base_offset)
        entry.batches.append(
            BatchMetadata(
                h.base_sequence, h.last_sequence, h.base_offset, h.last_offset, h.max_timestamp
            )
        )
        return None

    def _end_txn(self, h: BatchHeader, marker: int) -> AbortedTxn | None:
        first = self.ongoing.pop(h.producer_id, None)
        if first is None:
            return None  # a marker for a transaction with nothing here (a retried write)
        aborted = marker != COMMIT_MARKER
        self._completed.append(CompletedTxn(h.producer_id, first, h.base_offset, aborted))
        if not aborted:
            return None
        entry = AbortedTxn(
            h.producer_id,
            first,
            h.base_offset,
            min(self.ongoing.values(), default=h.base_offset + 1),
        )
        self.aborted.append(entry)
        return entry

    def check_coordinator_epoch(self, producer_id: int, coordinator_epoch: int) -> None:
        """A marker's coordinator epoch must not be older than the last one this partition
        took for the producer (Kafka's checkCoordinatorEpoch): TRANSACTION_COORDINATOR_FENCED,
        a coordinator that lost its partition writing late."""
        entry = self.producers.get(producer_id)
        if entry is not None and coordinator_epoch < entry.coordinator_epoch:
            raise KafkaError(
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                f"coordinator epoch {coordinator_epoch} is older than "
                f"{entry.coordinator_epoch} for producer {producer_id}",
            )

    def last_stable_offset(self, high_watermark: int) -> int:
        """The LSO: the high watermark, or the first unstable offset below it."""
        completed = self._completed
        if completed and completed[0].marker_offset < high_watermark:
            # markers under the HW are stable for good (the HW never moves back)
            self._completed = completed = [
                c for c in completed if c.marker_offset >= high_watermark
            ]
        lso = high_watermark
        if self.ongoing:
            lso = min(lso, min(self.ongoing.values()))
        if completed:
            lso = min(lso, min(c.first_offset for c in completed))
        return lso

    def aborted_between(self, start: int, end: int) -> list[AbortedTxn]:
        """Aborted transactions that overlap [start, end): what a read_committed fetch from
        `start` up to `end` must be told about."""
        return [a for a in self.aborted if a.last_offset >= start and a.first_offset < end]

    def truncate_to(self, offset: int) -> None:
        """Forget batches at or past `offset` (the log was truncated there)."""
        for pid in list(self.producers):
            entry = self.producers[pid]
            while entry.batches and entry.batches[-1].last_offset >= offset:
                entry.batches.pop()
            if not entry.batches:
                del self.producers[pid]
        self.ongoing = {pid: first for pid, first in self.ongoing.items() if first < offset}
        for c in self._completed:
            if c.marker_offset >= offset and c.first_offset < offset:
                self.ongoing[c.producer_id] = c.first_offset  # its marker is gone: open again
        self._completed = [c for c in self._completed if c.marker_offset < offset]
        self.aborted = [a for a in self.aborted if a.last_offset < offset]

    def drop_aborted_below(self, offset: int) -> None:
        """Retention removed everything below `offset`."""
        self.aborted = [a for a in self.aborted if a.last_offset >= offset]

    def remove_expired(self, now_ms: int, expiration_ms: int) -> int:
        """producer.id.expiration.ms (Kafka's removeExpiredProducers): forget producers idle
        that long without a transaction open here. Their next batch is taken as a new
        producer's (any sequence). Returns how many went."""
        expired = [
            pid
            for pid, entry in self.producers.items()
            if now_ms - entry.last_timestamp >= expiration_ms and pid not in self.ongoing
        ]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    def max_producer_id(self) -> int:
        return max(self.producers, default=-1)
