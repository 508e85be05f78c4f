"""SharePartitionManager: one broker's share partitions and share sessions (KIP-932; Kafka's
SharePartitionManager and ShareSessionCache), used by ShareFetch and ShareAcknowledge.

A share partition lives on the leader of its topic partition. It is built on first use from
the state the share coordinator persisted (`ShareStateRuntime.read`, in-process instead of
ReadShareGroupState), or, for a new one, initialised at `share.auto.offset.reset` (latest by
default) and persisted (InitializeShareGroupState). Every change of its delivery state
(acknowledgements, releases, expired locks) is written back (WriteShareGroupState), so a new
leader carries on where the last write left it; a leader-epoch change rebuilds it from there.

A share session (group, member) lists the partitions the member fetches from, with an epoch
each request must match: 0 opens it, -1 closes it (and releases what the member still holds),
anything else must be the session's current epoch, which then moves on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from msklite.clock import Clock, Timer
from msklite.config import (
    SHARE_AUTO_OFFSET_RESET,
    SHARE_AUTO_OFFSET_RESET_DEFAULT,
    SHARE_ISOLATION_LEVEL,
    reset_duration_ms,
)
from msklite.controller import Controller
from msklite.coordinator.share_partition import AckType, Acquired, SharePartition
from msklite.coordinator.share_runtime import ShareGroupRuntime, ShareStateRuntime
from msklite.coordinator.share_state import ShareKey, ShareState
from msklite.errors import ErrorCode, KafkaError
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import read_header
from msklite.replication.partition import Partition
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition


class Persister(Protocol):
    """The share coordinators, wherever they run (Kafka's Persister, in-process)."""

    def __call__(self, key: ShareKey) -> ShareStateRuntime | None:
        """The share coordinator of `key`; None while its `__share_group_state` partition
        has no live leader."""

    def read(self, key: ShareKey) -> ShareState | None: ...

    def keys_of(self, group_id: str) -> list[ShareKey]:
        """Every share partition of the group that has persisted state."""

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's high watermark at its running leader (for lag); None without."""

    def reset(self, key: ShareKey, start_offset: int | None) -> ErrorCode:
        """Replace the share partition's state by a fresh one at `start_offset` (None:
        delete it), under the next state epoch; the partition's leader drops what it holds."""


# (group id, config name) -> the group's config value, None when not set
GroupConfigs = Callable[[str, str], str | None]

_MAX_EPOCH = (1 << 31) - 1


@dataclass(slots=True)
class ShareSession:
    epoch: int
    partitions: dict[tuple[uuid.UUID, int], None] = field(default_factory=dict)


@dataclass(slots=True)
class Held:
    sp: SharePartition
    leader_epoch: int
    state_epoch: int


@dataclass(slots=True)
class Fetched:
    error: ErrorCode = ErrorCode.NONE
    records: list[memoryview] = field(default_factory=list)
    acquired: list[Acquired] = field(default_factory=list)


@dataclass(slots=True)
class ShareServices:
    """One broker's share-group machinery, started on the first share request."""

    groups: ShareGroupRuntime
    state: ShareStateRuntime
    partitions: SharePartitionManager
    persister: Persister


def next_epoch(epoch: int) -> int:
    return 1 if epoch >= _MAX_EPOCH else epoch + 1


class SharePartitionManager:
    def __init__(
        self,
        replicas: ReplicaManager,
        controller: Controller,
        clock: Clock,
        persister: Persister,
        group_configs: GroupConfigs,
    ) -> None:
        self._replicas = replicas
        self._controller = controller
        self._clock = clock
        self._persister = persister
        self._group_configs = group_configs
        self.partitions: dict[ShareKey, Held] = {}
        self.sessions: dict[tuple[str, str], ShareSession] = {}
        self._timer: Timer | None = None
        self._timer_at = 0

    def close(self) -> None:
        """The broker stops: no lock expires here any more (a new leader takes over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def lock_duration_ms(self, group_id: str) -> int:
        """The group's `share.record.lock.duration.ms`, else the brokers' default."""
        own = self._group_configs(group_id, "share.record.lock.duration.ms")
        if own is not None:
            return int(own)
        return self._controller.configs.get_int("group.share.record.lock.duration.ms")

    def _initial_offset(self, group_id: str, part: Partition) -> int:
        """Where a share partition new to its group starts: its `share.auto.offset.reset`
        (latest, Kafka's default: the high watermark; earliest: the log start; by_duration:
        the first record stamped at or after that long ago, else the high watermark)."""
        reset = self._group_configs(group_id, SHARE_AUTO_OFFSET_RESET)
        reset = (reset or SHARE_AUTO_OFFSET_RESET_DEFAULT).strip()
        log = part.log
        if reset == "earliest":
            return log.log_start_offset
        duration = reset_duration_ms(reset)
        if duration is not None:
            found = log.offset_for_timestamp(self._clock.now_ms() - duration, part.high_watermark)
            if found is not None:
                return found.offset
        return part.high_watermark

    # ---- sessions ----

    def session(
        self, group_id: str, member_id: str, epoch: int, acknowledging_only: bool
    ) -> ShareSession:
        """The request's session, opened, checked or closed by its epoch; KafkaError
        (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH) when it does not match."""
        key = (group_id, member_id)
        if epoch == 0:
            if acknowledging_only:
                raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
            session = self.sessions[key] = ShareSession(1)
            return session
        session_ = self.sessions.get(key)
        if session_ is None:
            raise KafkaError(ErrorCode.SHARE_SESSION_NOT_FOUND)
        if epoch == -1:
            return session_
        if epoch != session_.epoch:
            raise KafkaError(ErrorCode.INVALID_SHARE_SESSION_EPOCH)
        session_.epoch = next_epoch(epoch)
        return session_

    def close_session(self, group_id: str, member_id: str) -> None:
        """The member is done (epoch -1): what it still holds here goes back to the others
        (Kafka's releaseSession)."""
        if self.sessions.pop((group_id, member_id), None) is None:
            return
        for key, held in list(self.partitions.items()):
            if key.group_id == group_id and held.sp.release_member(member_id):
                self._persist(key, held)
                self._wake(key)

    def forget(self, key: ShareKey) -> None:
        """An admin reset the share partition's state: read it again on next use."""
        self.partitions.pop(key, None)

    # ---- share partitions ----

    def partition(self, group_id: str, topic_id: uuid.UUID, index: int) -> tuple[Held, Partition]:
        """The share partition, loaded or initialised; KafkaError when this broker does not
        lead the topic partition or its state cannot be read."""
        topic = self._controller.topics_by_id.get(topic_id)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
        part = self._replicas.leader_partition(topic.name, index)
        key = ShareKey(group_id, topic_id, index)
        held = self.partitions.get(key)
        if held is not None and held.leader_epoch == part.state.leader_epoch:
            return held, part
        coordinator = self._persister(key)
        if coordinator is None:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        configs = self._controller.configs
        limit = configs.get_int("group.share.delivery.count.limit")
        max_locks = configs.get_int("group.share.partition.max.record.locks")
        state = coordinator.read(key)
        log = part.log
        lock_ms = self.lock_duration_ms(group_id)
        if state is None:
            start = self._initial_offset(group_id, part)
            error = coordinator.initialize(key, 0, start)
            if error != ErrorCode.NONE:
                raise KafkaError(error)
            sp = SharePartition(start, limit, max_locks, lock_ms)
            state_epoch = 0
        else:
            sp = SharePartition.restore(
                state.start_offset, list(state.batches), limit, max_locks, lock_ms
            )
            state_epoch = state.state_epoch
        if sp.start_offset < log.log_start_offset:
            sp.move_start(log.log_start_offset)
        held = self.partitions[key] = Held(sp, part.state.leader_epoch, state_epoch)
        return held, part

    def fetch(
        self,
        member_id: str,
        key: ShareKey,
        held: Held,
        part: Partition,
        max_bytes: int,
        max_records: int,
        record_limit: bool = False,
    ) -> Fetched:
        """Acquire for `member_id` what the log has from the share partition's first available
        offset on, at most `max_bytes` of batches (at least one) and about `max_records`
        records (whole batches; exactly at most in the record-limit mode); the batches holding
        an acquired record are the answer."""
        sp = held.sp
        sp.lock_duration_ms = self.lock_duration_ms(key.group_id)  # the group's, as it is now
        log = part.log
        read_committed = self._group_configs(key.group_id, SHARE_ISOLATION_LEVEL) == (
            "read_committed"
        )
        # read_committed: nothing past the last stable offset
        hw = (
            log.producer_state.last_stable_offset(part.high_watermark)
            if read_committed
            else part.high_watermark
        )
        if sp.start_offset < log.log_start_offset:
            sp.move_start(log.log_start_offset)
        first = next(
            (o for o in range(sp.start_offset, sp.end_offset) if sp.in_flight[o].state == 0),
            sp.end_offset,
        )
        if first >= hw or max_records <= 0:
            return Fetched()
        # whole batches, as many as could be acquired: the read's views hold many each
        enough = max(sp.end_offset, first) + max_records
        room_end = sp.start_offset + sp.max_in_flight
        batches: list[tuple[memoryview, int, int]] = []
        for view in log.read(first, max_bytes, hw, True):
            pos = 0
            while pos < len(view):
                h = read_header(view, pos)
                batches.append((view[pos : pos + h.size], h.base_offset, h.last_offset))
                pos += h.size
                if h.last_offset + 1 >= enough or h.last_offset >= room_end:
                    break
            else:
                continue
            break
        if not batches:
            return Fetched()
        ends = [last for _, _, last in batches]
        aborted = _aborted_offsets(log, batches) if read_committed else set()
        acquired = sp.acquire(
            member_id,
            min(hw, ends[-1] + 1),
            max_records,
            self._clock.now_ms(),
            ends,
            record_limit,
            aborted,
        )
        if aborted:
            self._persist(key, held)  # archived records, as an acknowledgement would
        if not acquired:
            return Fetched()
        self._schedule(sp)
        return Fetched(ErrorCode.NONE, _holding(batches, acquired), acquired)

    def acknowledge(
        self, member_id: str, key: ShareKey, batches: list[tuple[int, int, list[int]]]
    ) -> ErrorCode:
        """Apply a partition's acknowledgement batches (first, last, types: one type for the
        whole range or one per offset) and persist; the first error, if any."""
        try:
            held, _ = self.partition(key.group_id, key.topic_id, key.partition)
        except KafkaError as e:
            return e.code
        now = self._clock.now_ms()
        error = ErrorCode.NONE
        for first, last, types in batches:
            try:
                acks = [AckType(t) for t in types]
            except ValueError:
                acks = []
            if not acks:
                error = error or ErrorCode.INVALID_REQUEST
                continue
            error = error or held.sp.acknowledge(member_id, first, last, acks, now)
        write_error = self._persist(key, held)
        self._wake(key)
        self._schedule(held.sp)
        return error or write_error

    def start_offset(self, key: ShareKey) -> int | None:
        held = self.partitions.get(key)
        return held.sp.start_offset if held is not None else None

    # ---- internals ----

    def _still_leads(self, key: ShareKey, held: Held) -> bool:
        topic = self._controller.topics_by_id.get(key.topic_id)
        if topic is None:
            return False
        try:
            part = self._replicas.leader_partition(topic.name, key.partition)
        except KafkaError:
            return False
        return part.state.leader_epoch == held.leader_epoch

    def _persist(self, key: ShareKey, held: Held) -> ErrorCode:
        coordinator = self._persister(key)
        if coordinator is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        sp = held.sp
        return coordinator.write(
            key, held.state_epoch, held.leader_epoch, sp.start_offset, sp.state_batches()
        )

    def _wake(self, key: ShareKey) -> None:
        topic = self._controller.topics_by_id.get(key.topic_id)
        if topic is not None:
            self._replicas.fetch_waiters.notify(TopicPartition(topic.name, key.partition))

    def _schedule(self, sp: SharePartition) -> None:
        deadline = sp.next_deadline()
        if deadline is None or (self._timer is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._clock.call_later(max(deadline - self._clock.now_ms(), 0), self._expire)

    def _expire(self) -> None:
        """Acquisition locks ran out: their records are available again (or archived at the
        delivery count limit), persisted, and waiting fetches woken to take them."""
        self._timer = None
        now = self._clock.now_ms()
        for key, held in list(self.partitions.items()):
            if not self._still_leads(key, held):
                # the leadership moved on: the new leader took over from the persisted state
                del self.partitions[key]
                continue
            if held.sp.expire(now):
                self._persist(key, held)
                self._wake(key)
        for held in self.partitions.values():
            self._schedule(held.sp)


def _aborted_offsets(log: PartitionLog, batches: list[tuple[memoryview, int, int]]) -> set[int]:
    """The offsets of the read batches that hold an aborted transaction's records (Kafka's
    maybeFilterAbortedTransactionalAcquiredRecords, from the aborted-transaction index)."""
    if not batches:
        return set()
    txns = log.producer_state.aborted_between(batches[0][1], batches[-1][2] + 1)
    out: set[int] = set()
    for view, base, last in batches:
        h = read_header(view, 0)
        if not h.is_transactional or h.is_control:
            continue
        if any(
            a.producer_id == h.producer_id and a.first_offset <= base <= a.last_offset for a in txns
        ):
            out.update(range(base, last + 1))
    return out


def _holding(
    batches: list[tuple[memoryview, int, int]], acquired: list[Acquired]
) -> list[memoryview]:
    """The batches that hold an acquired offset (both lists in offset order)."""
    out = []
    runs = iter(acquired)
    run = next(runs, None)
    for view, base, last in batches:
        while run is not None and run.last_offset < base:
            run = next(runs, None)
        if run is None:
            break
        if run.first_offset <= last:
            out.append(view)
    return out
