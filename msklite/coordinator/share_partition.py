"""SharePartition: the delivery state of one topic partition for one share group (KIP-932;
Kafka's `SharePartition`), a synchronous state machine given the time by its caller.

The share-partition start offset (SPSO) is the first offset not yet delivered to completion;
the end offset (SPEO) the first offset never acquired. Every offset in between is in flight:
AVAILABLE (to be delivered, again), ACQUIRED by one member until its acquisition lock expires,
ACKNOWLEDGED or ARCHIVED (done). The SPSO moves past a prefix of done offsets. Each delivery
raises the offset's delivery count; a release, an expired lock or a member leaving makes the
offset AVAILABLE again, or ARCHIVED once the count reached `group.share.delivery.count.limit`.
New records are taken while fewer than `group.share.partition.max.record.locks` offsets are in
flight, in whole log batches, as in Kafka.

The persisted form (`state_batches`) is what Kafka's persister writes to `__share_group_state`:
the SPSO and the in-flight offsets as runs of (first, last, state, delivery count), an
ACQUIRED offset written as AVAILABLE (a lock does not survive the partition's leader).
"""

from __future__ import annotations

import enum
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field

from msklite.errors import ErrorCode


class RecordState(enum.IntEnum):
    """Kafka's RecordState ids, as `__share_group_state` stores them."""

    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AckType(enum.IntEnum):
    """AcknowledgeTypes of ShareFetch/ShareAcknowledge."""

    GAP = 0
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3
    RENEW = 4


@dataclass(slots=True)
class InFlight:
    state: RecordState
    delivery_count: int
    member_id: str | None = None
    lock_deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class StateBatch:
    first_offset: int
    last_offset: int
    state: RecordState
    delivery_count: int


@dataclass(frozen=True, slots=True)
class Acquired:
    first_offset: int
    last_offset: int
    delivery_count: int


@dataclass(slots=True)
class SharePartition:
    start_offset: int
    delivery_count_limit: int
    max_in_flight: int
    lock_duration_ms: int
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    end_offset: int = -1

    def __post_init__(self) -> None:
        if self.end_offset < self.start_offset:
            self.end_offset = self.start_offset

    @classmethod
    def restore(
        cls,
        start_offset: int,
        batches: list[StateBatch],
        delivery_count_limit: int,
        max_in_flight: int,
        lock_duration_ms: int,
    ) -> SharePartition:
        """The partition as the persister last saved it."""
        sp = cls(start_offset, delivery_count_limit, max_in_flight, lock_duration_ms)
        for b in batches:
            for offset in range(max(b.first_offset, start_offset), b.last_offset + 1):
                state = RecordState.AVAILABLE if b.state == RecordState.ACQUIRED else b.state
                sp.in_flight[offset] = InFlight(state, b.delivery_count)
        if sp.in_flight:
            sp.end_offset = max(sp.in_flight) + 1
            # offsets below the SPEO that no batch names were never acquired: available
            for offset in range(start_offset, sp.end_offset):
                sp.in_flight.setdefault(offset, InFlight(RecordState.AVAILABLE, 0))
        sp._advance()
        return sp

    # ---- delivery ----

    def acquire(
        self,
        member_id: str,
        log_end: int,
        max_records: int,
        now_ms: int,
        batch_ends: Sequence[int] = (),
        record_limit: bool = False,
        aborted: Container[int] = (),
    ) -> list[Acquired]:
        """Acquire records for `member_id` below `log_end` (the last offset read + 1):
        AVAILABLE in-flight offsets first (redeliveries, up to `max_records`), then new ones
        past the SPEO in whole log batches (`batch_ends`: the last offset of each batch read;
        an offset no batch covers is a batch of its own), while fewer than `max_records` are
        chosen and fewer than the in-flight limit are in flight. Both limits are soft, as in
        Kafka's batch-optimized acquisition: a batch is never split, so no record reaches the
        client unacquired. In the record-limit mode (KIP-1206) `max_records` is strict: a
        batch is split at the limit, its rest left for a later fetch (the client drops the
        records it was sent but did not acquire). Offsets in `aborted` (an aborted
        transaction's records, for a read_committed group) are archived as they would have
        been acquired, never delivered. The runs acquired, in offset order."""
        chosen: list[int] = []
        for offset in range(self.start_offset, min(self.end_offset, log_end)):
            if len(chosen) >= max_records:
                break
            if self.in_flight[offset].state == RecordState.AVAILABLE:
                chosen.append(offset)
        offset = self.end_offset
        ends = iter(sorted(e for e in batch_ends if e >= offset))
        while (
            offset < log_end
            and len(chosen) < max_records
            and offset - self.start_offset < self.max_in_flight
        ):
            last = min(max(next(ends, offset), offset), log_end - 1)
            if record_limit:
                last = min(last, offset + max_records - len(chosen) - 1)
            for o in range(offset, last + 1):
                self.in_flight[o] = InFlight(RecordState.AVAILABLE, 0)
                chosen.append(o)
            offset = last + 1
        self.end_offset = offset
        deadline = now_ms + self.lock_duration_ms
        delivered = []
        for offset in chosen:
            rec = self.in_flight[offset]
            rec.delivery_count += 1
            if offset in aborted:
                self._finish(rec, RecordState.ARCHIVED)
                continue
            rec.state = RecordState.ACQUIRED
            rec.member_id = member_id
            rec.lock_deadline_ms = deadline
            delivered.append(offset)
        if len(delivered) < len(chosen):
            self._advance()
        return list(_runs(delivered, self.in_flight))

    def acknowledge(
        self, member_id: str, first: int, last: int, acks: list[AckType], now_ms: int
    ) -> ErrorCode:
        """Apply one acknowledgement batch to offsets first..last — one type for them all, or
        one per offset — all or nothing: every offset must be ACQUIRED by `member_id` (else
        INVALID_RECORD_STATE, as Kafka answers)."""
        if first > last or first < self.start_offset or last >= self.end_offset:
            return ErrorCode.INVALID_RECORD_STATE
        recs = [self.in_flight[o] for o in range(first, last + 1)]
        if len(acks) != 1 and len(acks) != len(recs):
            return ErrorCode.INVALID_REQUEST
        if any(r.state != RecordState.ACQUIRED or r.member_id != member_id for r in recs):
            return ErrorCode.INVALID_RECORD_STATE
        for i, rec in enumerate(recs):
            ack = acks[0] if len(acks) == 1 else acks[i]
            if ack == AckType.ACCEPT:
                self._finish(rec, RecordState.ACKNOWLEDGED)
            elif ack in (AckType.REJECT, AckType.GAP):
                self._finish(rec, RecordState.ARCHIVED)
            elif ack == AckType.RELEASE:
                self._release(rec)
            else:  # RENEW: the member keeps the record for another lock duration
                rec.lock_deadline_ms = now_ms + self.lock_duration_ms
        self._advance()
        return ErrorCode.NONE

    def release_member(self, member_id: str) -> bool:
        """Release every record `member_id` holds (it left the group or its session closed);
        whether anything changed."""
        changed = False
        for rec in self.in_flight.values():
            if rec.state == RecordState.ACQUIRED and rec.member_id == member_id:
                self._release(rec)
                changed = True
        self._advance()
        return changed

    def expire(self, now_ms: int) -> bool:
        """Release the records whose acquisition lock ran out; whether any did."""
        changed = False
        for rec in self.in_flight.values():
            if rec.state == RecordState.ACQUIRED and rec.lock_deadline_ms <= now_ms:
                self._release(rec)
                changed = True
        self._advance()
        return changed

    def next_deadline(self) -> int | None:
        deadlines = [
            r.lock_deadline_ms for r in self.in_flight.values() if r.state == RecordState.ACQUIRED
        ]
        return min(deadlines) if deadlines else None

    def move_start(self, offset: int) -> None:
        """The log start moved past the SPSO (retention, DeleteRecords) or an admin reset it:
        offsets below `offset` are gone."""
        for o in range(self.start_offset, min(offset, self.end_offset)):
            del self.in_flight[o]
        self.start_offset = offset
        self.end_offset = max(self.end_offset, offset)

    # ---- views ----

    def state_batches(self) -> list[StateBatch]:
        """The in-flight offsets as the persister stores them (ACQUIRED as AVAILABLE)."""
        out: list[StateBatch] = []
        for offset in range(self.start_offset, self.end_offset):
            rec = self.in_flight[offset]
            state = RecordState.AVAILABLE if rec.state == RecordState.ACQUIRED else rec.state
            last = out[-1] if out else None
            if (
                last is not None
                and last.last_offset == offset - 1
                and last.state == state
                and last.delivery_count == rec.delivery_count
            ):
                out[-1] = StateBatch(last.first_offset, offset, state, rec.delivery_count)
            else:
                out.append(StateBatch(offset, offset, state, rec.delivery_count))
        return out

    def acquired_count(self) -> int:
        return sum(1 for r in self.in_flight.values() if r.state == RecordState.ACQUIRED)

    # ---- internals ----

    def _release(self, rec: InFlight) -> None:
        if rec.delivery_count >= self.delivery_count_limit:
            self._finish(rec, RecordState.ARCHIVED)
        else:
            rec.state = RecordState.AVAILABLE
            rec.member_id = None

    @staticmethod
    def _finish(rec: InFlight, state: RecordState) -> None:
        rec.state = state
        rec.member_id = None

    def _advance(self) -> None:
        while self.start_offset < self.end_offset and self.in_flight[self.start_offset].state in (
            RecordState.ACKNOWLEDGED,
            RecordState.ARCHIVED,
        ):
            del self.in_flight[self.start_offset]
            self.start_offset += 1


def _runs(offsets: list[int], in_flight: dict[int, InFlight]) -> Iterator[Acquired]:
    """Consecutive offsets of equal delivery count as one run, as AcquiredRecords lists them."""
    run: Acquired | None = None
    for offset in offsets:
        count = in_flight[offset].delivery_count
        if run is not None and run.last_offset == offset - 1 and run.delivery_count == count:
            run = Acquired(run.first_offset, offset, count)
            continue
        if run is not None:
            yield run
        run = Acquired(offset, offset, count)
    if run is not None:
        yield run
