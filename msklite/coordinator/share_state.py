"""The share coordinator (KIP-932; Kafka's ShareCoordinatorShard): the persisted state of every
share partition, sharded over `__share_group_state`, and its records in Kafka's schemas.

A share partition is keyed "groupId:topicId:partition"; its `__share_group_state` partition is
Kafka's `abs(key.hashCode()) % share.coordinator.state.topic.num.partitions`. Its state is
the SPSO, the state epoch, the leader epoch and the in-flight batches
(`share_partition.StateBatch`). Records: key = int16 record type (0 ShareSnapshot, 1
ShareUpdate) + GroupId, TopicId, Partition (non-flexible); value = int16 version 0 +
ShareSnapshotValue (SnapshotEpoch, StateEpoch, LeaderEpoch, StartOffset, CreateTimestamp,
WriteTimestamp, StateBatches; flexible) or ShareUpdateValue (SnapshotEpoch, LeaderEpoch,
StartOffset, StateBatches; flexible). A null value (tombstone) deletes the state.

A partition's first write is a ShareSnapshot; later ones are ShareUpdate records carrying only
the offsets whose state or delivery count changed (and the new SPSO and leader epoch), under
the last snapshot's epoch, until `share.coordinator.snapshot.update.records.per.snapshot`
updates followed it: then the next write is a ShareSnapshot of the whole state again, its
snapshot epoch one higher, as Kafka's ShareCoordinatorShard writes. An update is merged over
the state as Kafka's PersisterStateBatchCombiner merges it: its batches replace the offsets
they name, batches below the new SPSO go. The live state is that merge too, so that replaying
the records rebuilds it exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from msklite.coordinator.coordinator import LogRecord, Output, partition_for
from msklite.coordinator.share_partition import RecordState, StateBatch
from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol.primitives import Reader, Writer, kafka_uuid_str

SHARE_STATE_TOPIC = "__share_group_state"
SNAPSHOT_TYPE = 0
UPDATE_TYPE = 1
# Kafka's share.coordinator.snapshot.update.records.per.snapshot default
UPDATES_PER_SNAPSHOT = 500


@dataclass(frozen=True, slots=True)
class ShareKey:
    group_id: str
    topic_id: uuid.UUID
    partition: int

    def coordinator_key(self) -> str:
        """Kafka's SharePartitionKey.asCoordinatorKey (a topic id prints as Kafka's Uuid
        does: URL-safe base64, unpadded)."""
        return f"{self.group_id}:{kafka_uuid_str(self.topic_id)}:{self.partition}"


@dataclass(frozen=True, slots=True)
class ShareState:
    state_epoch: int
    leader_epoch: int
    start_offset: int
    batches: tuple[StateBatch, ...] = ()
    snapshot_epoch: int = 0
    create_ms: int = 0
    write_ms: int = 0


# ---- records ----


def encode_key(record_type: int, key: ShareKey) -> bytes:
    w = Writer()
    w.int16(record_type)
    w.str_(key.group_id, False)
    w.uuid(key.topic_id)
    w.int32(key.partition)
    return bytes(w.buf)


def _batches(w: Writer, batches: Iterable[StateBatch]) -> None:
    items = list(batches)
    w.array_len(len(items), True)
    for b in items:
        w.int64(b.first_offset)
        w.int64(b.last_offset)
        w.int8(b.state)
        w.int16(b.delivery_count)
        w.empty_tagged_fields()


def encode_snapshot(state: ShareState) -> bytes:
    w = Writer()
    w.int16(0)
    w.int32(state.snapshot_epoch)
    w.int32(state.state_epoch)
    w.int32(state.leader_epoch)
    w.int64(state.start_offset)
    w.int64(state.create_ms)
    w.int64(state.write_ms)
    _batches(w, state.batches)
    w.empty_tagged_fields()
    return bytes(w.buf)


def _read_batches(r: Reader) -> tuple[StateBatch, ...]:
    out = []
    for _ in range(r.array_len(True)):
        first, last, state, count = r.int64(), r.int64(), r.int8(), r.int16()
        r.skip_tagged_fields()
        out.append(StateBatch(first, last, RecordState(state), count))
    return tuple(out)


def decode(key: bytes, value: bytes | None) -> tuple[int, ShareKey, ShareState | None]:
    """(record type, key, state) of a `__share_group_state` record; for an update the state
    carries only its fields (state epoch -1). ProtocolError on anything else."""
    try:
        r = Reader(memoryview(key))
        record_type = r.int16()
        if record_type not in (SNAPSHOT_TYPE, UPDATE_TYPE):
            raise ProtocolError(f"unknown share state record type {record_type}")
        k = ShareKey(r.string(), r.uuid(), r.int32())
        if value is None:
            return record_type, k, None
        v = Reader(memoryview(value))
        v.int16()  # value version 0
        if record_type == SNAPSHOT_TYPE:
            snapshot_epoch, state_epoch, leader_epoch = v.int32(), v.int32(), v.int32()
            start, create_ms, write_ms = v.int64(), v.int64(), v.int64()
            batches = _read_batches(v)
            return (
                record_type,
                k,
                ShareState(
                    state_epoch, leader_epoch, start, batches, snapshot_epoch, create_ms, write_ms
                ),
            )
        snapshot_epoch, leader_epoch, start = v.int32(), v.int32(), v.int64()
        batches = _read_batches(v)
        return record_type, k, ShareState(-1, leader_epoch, start, batches, snapshot_epoch)
    except (ValueError, IndexError) as e:
        raise ProtocolError(f"malformed share state record: {e!r}") from e


# offset -> (state, delivery count)
PerOffset = dict[int, tuple[RecordState, int]]


def _per_offset(batches: Iterable[StateBatch]) -> PerOffset:
    """Later batches win where batches overlap."""
    return {
        o: (b.state, b.delivery_count)
        for b in batches
        for o in range(b.first_offset, b.last_offset + 1)
    }


def _runs(per_offset: PerOffset, start: int = -1) -> tuple[StateBatch, ...]:
    """The offsets from `start` on as batches: runs of consecutive offsets alike."""
    batches: list[StateBatch] = []
    for o in sorted(per_offset):
        if o < start:
            continue
        state, count = per_offset[o]
        last = batches[-1] if batches else None
        if (
            last is not None
            and last.last_offset == o - 1
            and (last.state, last.delivery_count) == (state, count)
        ):
            batches[-1] = replace(last, last_offset=o)
        else:
            batches.append(StateBatch(o, o, state, count))
    return tuple(batches)


def merge(base: ShareState, update: ShareState) -> ShareState:
    """A ShareUpdate applied over the state: the update's batches replace the offsets they
    name, batches below the new start offset go; a -1 start offset or leader epoch keeps the
    state's (Kafka's ShareCoordinatorShard.merge)."""
    start = update.start_offset if update.start_offset >= 0 else base.start_offset
    leader_epoch = update.leader_epoch if update.leader_epoch >= 0 else base.leader_epoch
    per_offset = _per_offset((*base.batches, *update.batches))
    return replace(
        base, leader_epoch=leader_epoch, start_offset=start, batches=_runs(per_offset, start)
    )


def encode_update(update: ShareState) -> bytes:
    w = Writer()
    w.int16(0)
    w.int32(update.snapshot_epoch)
    w.int32(update.leader_epoch)
    w.int64(update.start_offset)
    _batches(w, update.batches)
    w.empty_tagged_fields()
    return bytes(w.buf)


# ---- the state machine ----


@dataclass(slots=True)
class ShareStateCoordinator:
    num_partitions: int
    updates_per_snapshot: int = UPDATES_PER_SNAPSHOT
    states: dict[ShareKey, ShareState] = field(default_factory=dict)
    loaded: set[int] = field(default_factory=set)
    # the ShareUpdate records written (or replayed) since each partition's last ShareSnapshot
    updates: dict[ShareKey, int] = field(default_factory=dict)

    def partition_for(self, key: ShareKey) -> int:
        return partition_for(key.coordinator_key(), self.num_partitions)

    def load(self, partition: int, records: Iterable[LogRecord], now_ms: int) -> None:
        self.loaded.add(partition)
        for key, value, _, _, marker in records:
            if marker != -1:
                continue  # nothing transactional is written here
            try:
                record_type, k, state = decode(key, value)
            except ProtocolError:
                continue  # another version's records: skipped, as Kafka skips unknown keys
            if state is None:
                self.states.pop(k, None)
                self.updates.pop(k, None)
            elif record_type == SNAPSHOT_TYPE:
                self.states[k] = state
                self.updates[k] = 0
            elif k in self.states:
                self.states[k] = merge(self.states[k], state)
                self.updates[k] = self.updates.get(k, 0) + 1

    def unload(self, partition: int) -> Output:
        self.loaded.discard(partition)
        for k in [k for k in self.states if self.partition_for(k) == partition]:
            del self.states[k]
            self.updates.pop(k, None)
        return Output()

    def next_deadline(self) -> int:
        return 1 << 62

    def tick(self, now_ms: int) -> Output:
        return Output()

    # ---- operations (Kafka's Initialize/Read/Write/DeleteShareGroupState) ----

    def initialize(
        self, key: ShareKey, state_epoch: int, start_offset: int, now_ms: int
    ) -> tuple[ErrorCode, Output]:
        state = ShareState(state_epoch, -1, start_offset, (), 0, now_ms, now_ms)
        return self._save(key, state)

    def read(self, key: ShareKey) -> ShareState | None:
        return self.states.get(key)

    def write(
        self,
        key: ShareKey,
        state_epoch: int,
        leader_epoch: int,
        start_offset: int,
        batches: list[StateBatch],
        now_ms: int,
    ) -> tuple[ErrorCode, Output]:
        """Replace the share partition's state; FENCED_STATE_EPOCH for a writer of an older
        state epoch, FENCED_LEADER_EPOCH for one of an older leader epoch, as Kafka answers."""
        old = self.states.get(key)
        if old is not None:
            if state_epoch < old.state_epoch:
                return ErrorCode.FENCED_STATE_EPOCH, Output()
            if leader_epoch < old.leader_epoch:
                return ErrorCode.FENCED_LEADER_EPOCH, Output()
        if old is None or state_epoch != old.state_epoch:
            snapshot_epoch = old.snapshot_epoch + 1 if old is not None else 0
            created = old.create_ms if old is not None else now_ms
            state = ShareState(
                state_epoch, leader_epoch, start_offset, (), snapshot_epoch, created, now_ms
            )
            return self._save(
                key, replace(state, batches=_runs(_per_offset(batches), start_offset))
            )
        new = _per_offset(batches)
        before = _per_offset(old.batches)
        if self.updates.get(key, 0) >= self.updates_per_snapshot or any(
            o >= start_offset and o not in new for o in before
        ):
            # time for a snapshot, or an offset left the state above the SPSO, which an
            # update (that only overlays) cannot say
            state = replace(
                old,
                leader_epoch=leader_epoch,
                start_offset=start_offset,
                batches=_runs(new, start_offset),
                snapshot_epoch=old.snapshot_epoch + 1,
                write_ms=now_ms,
            )
            return self._save(key, state)
        changed = {o: v for o, v in new.items() if o >= start_offset and before.get(o) != v}
        update = ShareState(-1, leader_epoch, start_offset, _runs(changed), old.snapshot_epoch)
        self.states[key] = merge(old, update)
        self.updates[key] = self.updates.get(key, 0) + 1
        record = (self.partition_for(key), encode_key(UPDATE_TYPE, key), encode_update(update))
        return ErrorCode.NONE, Output(records=[record])

    def delete(self, key: ShareKey) -> tuple[ErrorCode, Output]:
        self.updates.pop(key, None)
        if self.states.pop(key, None) is None:
            return ErrorCode.NONE, Output()
        return ErrorCode.NONE, Output(
            records=[(self.partition_for(key), encode_key(SNAPSHOT_TYPE, key), None)]
        )

    def keys_of(self, group_id: str) -> list[ShareKey]:
        return [k for k in self.states if k.group_id == group_id]

    def _save(self, key: ShareKey, state: ShareState) -> tuple[ErrorCode, Output]:
        self.states[key] = state
        self.updates[key] = 0
        record = (self.partition_for(key), encode_key(SNAPSHOT_TYPE, key), encode_snapshot(state))
        return ErrorCode.NONE, Output(records=[record])
