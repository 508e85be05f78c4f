"""ReplicaManager: the partition replicas one broker hosts (Kafka's class of the same name).

Applies the controller's decisions to this broker — opens, deletes and re-roles replicas when a
topic changes — answers "may this broker serve this partition?" (NOT_LEADER_OR_FOLLOWER,
UNKNOWN_TOPIC_OR_PARTITION), appends as leader under the acks / min.insync.replicas rules,
takes follower fetch progress (HW, ISR expansion) and checks for ISR shrink. Wakes consumer
fetches when the HW moves and follower fetchers when the leader's log or HW moves.

Storage errors (Kafka's handleLogDirFailure): an OSError from the log directory takes it
offline — every replica of this broker goes offline and answers KAFKA_STORAGE_ERROR, the
controller moves their leaderships and shrinks their ISRs — while the broker keeps running.
`try_log_dir_online` (retried by the fetcher's recovery task) reopens the directory once it
takes writes again; the replicas come back as followers and rejoin the ISRs when caught up.
Synchronous; owned by the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from msklite.clock import Clock
from msklite.controller import Controller, PartitionState, TopicState
from msklite.errors import ErrorCode, KafkaError
from msklite.log.manager import LogManager
from msklite.log.partition_log import AppendInfo, PartitionLog
from msklite.protocol.records import BatchHeader
from msklite.replication.partition import Partition
from msklite.replication.purgatory import Purgatory
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)


class ReplicaNotifier(Protocol):
    """How a replica manager reaches the replica fetchers of the cluster's brokers, its own
    broker's included (the composition root implements it over the running brokers)."""

    def wake(self, tp: TopicPartition, brokers: list[int]) -> None:
        """Have the fetchers of `brokers` look at `tp` on their next pass."""

    def replicate_now(self, tp: TopicPartition, brokers: list[int]) -> None:
        """Have the fetchers of `brokers` copy `tp` at once."""


# How long a controller change may spend opening replicas (≈45 µs each) per turn of the event
# loop, all of a cluster's brokers together: creating 10,000 partitions at RF 3 is ≈1.4 s of
# work, which must not hold the loop in one piece. Wall time, not the injected clock: this is
# about the CPU.
SYNC_SLICE_S = 0.01


class TurnBudget:
    """The time replica opening may take in one turn of the event loop, shared by the replica
    managers of a cluster's brokers: they run on one loop, and a slice each held it once per
    broker (3 brokers: a Metadata request arriving after CreateTopics waited ≈30 ms)."""

    def __init__(self, seconds: float = SYNC_SLICE_S) -> None:
        self.seconds = seconds
        self._deadline: float | None = None

    def deadline(self) -> float:
        """The perf_counter time this turn's budget ends; its first caller starts it."""
        if self._deadline is None:
            self._deadline = time.perf_counter() + self.seconds
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop, no turns: this call's slice only
                deadline, self._deadline = self._deadline, None
                return deadline
            # runs first on the next turn: callbacks deferred during this one come after it
            loop.call_soon(self._end_turn)
        return self._deadline

    def _end_turn(self) -> None:
        self._deadline = None


class ReplicaManager:
    def __init__(
        self,
        node_id: int,
        controller: Controller,
        logs: LogManager,
        clock: Clock,
        notifier: ReplicaNotifier,
        budget: TurnBudget | None = None,
    ) -> None:
        self.node_id = node_id
        self.controller = controller
        self.logs = logs
        self.clock = clock
        self.notifier = notifier
        self.partitions: dict[TopicPartition, Partition] = {}
        self.fetch_waiters: Purgatory[TopicPartition] = Purgatory()
        # DeleteRecords requests waiting for the followers' log starts (Kafka's
        # DelayedDeleteRecords purgatory): woken when a follower's start or a role moves.
        self.delete_waiters: Purgatory[TopicPartition] = Purgatory()
        self.log_starts_moved = False  # see `checkpoint_log_starts`
        # Set while the log directory is offline: the fetcher's recovery task waits for it.
        self.log_dir_failed = asyncio.Event()
        self._deferred: dict[str, int] = {}  # topic → partition to go on opening from
        self._budget = budget or TurnBudget()
        # ISR changes this broker made as a leader (Kafka's IsrShrinksPerSec, IsrExpandsPerSec)
        self.isr_shrinks = 0
        self.isr_expands = 0
        self._closed = False
        if logs.offline is not None:  # it failed as it opened
            self._take_offline()

    # ---- the log directory failing and coming back ----

    @property
    def offline(self) -> bool:
        return self.logs.offline is not None

    def storage_failed(self, cause: OSError) -> KafkaError:
        """The log directory failed (a write or read raised `cause`): take it and every replica
        in it offline, once. Returns the error to answer the request that met it with."""
        if self.logs.fail(cause):
            self._take_offline()
        return KafkaError(
            ErrorCode.KAFKA_STORAGE_ERROR, f"log directory {self.logs.root} is offline: {cause}"
        )

    def _take_offline(self) -> None:
        parts = list(self.partitions.values())
        self.partitions.clear()
        for part in parts:
            part.fail_delayed(ErrorCode.KAFKA_STORAGE_ERROR)
            self.fetch_waiters.notify(part.tp)
            self.delete_waiters.notify(part.tp)
        self.log_dir_failed.set()
        self.controller.log_dir_offline(self.node_id)

    def try_log_dir_online(self) -> bool:
        """Reopen an offline log directory if it takes writes again (its logs are recovered)
        and tell the controller; False while it still fails."""
        if not self.offline:
            return True
        try:
            self.logs.reopen()
        except OSError as e:
            log.debug("log directory %s still offline: %s", self.logs.root, e)
            return False
        try:
            for name in list(self.controller.topics):
                self._sync_topic(name)
            self._remove_orphans()
        except OSError as e:
            self.storage_failed(e)
            return False
        self.log_dir_failed.clear()
        self.controller.log_dir_online(self.node_id)
        return True

    # ---- applying the controller's metadata ----

    def sync_topic(self, name: str) -> None:
        """Bring this broker's replicas of `name` in line with the controller's metadata (none
        while the log directory is offline: they are opened again when it comes back)."""
        if self.offline:
            return
        try:
            self._sync_topic(name)
        except OSError as e:
            self.storage_failed(e)

    def topic_changed(self, name: str) -> None:
        """The controller's observer: `sync_topic`, opening new replicas within this turn's
        budget now and the rest on later turns of the loop. Kafka's brokers, too, learn of new
        partitions after CreateTopics has answered; a client that asks a replica not open yet
        gets NOT_LEADER_OR_FOLLOWER and retries."""
        if self.offline or self._closed:
            return
        try:
            resume = self._sync_topic(name, self._budget.deadline())
        except OSError as e:
            self.storage_failed(e)
            return
        self._defer(name, resume)

    def _defer(self, name: str, resume: int | None) -> None:
        if resume is None:
            return
        pending = self._deferred.get(name)
        self._deferred[name] = resume if pending is None else min(pending, resume)
        if pending is None:
            asyncio.get_running_loop().call_soon(self._sync_more, name)

    def _sync_more(self, name: str) -> None:
        """The next slice of replicas still missing, from where the last turn stopped."""
        start = self._deferred.pop(name, None)
        topic = self.controller.topics.get(name)
        if start is None or topic is None or self.offline or self._closed:
            return
        deadline = self._budget.deadline()
        opened = False
        try:
            for state in topic.partitions[start:]:
                tp = TopicPartition(name, state.partition)
                if self.node_id not in state.replicas or tp in self.partitions:
                    continue
                if opened and time.perf_counter() > deadline:
                    self._defer(name, state.partition)
                    return
                opened = True
                self._apply_role(self._open(topic, state, tp))
        except OSError as e:
            self.storage_failed(e)

    @property
    def syncing(self) -> bool:
        """True while replicas of a controller change are still being opened."""
        return bool(self._deferred)

    def _open(self, topic: TopicState, state: PartitionState, tp: TopicPartition) -> Partition:
        config = topic.config_on(self.node_id)
        plog = self.logs.open_log(tp, topic.topic_id, config)
        self.controller.ensure_producer_ids_above(plog.producer_state.max_producer_id())
        hw = self.logs.high_watermarks.get(tp, plog.log_end_offset)
        part = Partition(self.node_id, tp.topic, topic.topic_id, state, plog, hw, config)
        self.partitions[tp] = part
        return part

    def _sync_topic(self, name: str, deadline: float | None = None) -> int | None:
        """Returns the partition to go on from when `deadline` (perf_counter) passed before
        every replica was open, else None."""
        topic = self.controller.topics.get(name)
        hosted = {tp for tp in self.partitions if tp.topic == name}
        wanted: set[TopicPartition] = set()
        resume: int | None = None
        if topic is not None:
            config = topic.config_on(self.node_id)
            for state in topic.partitions:
                if self.node_id not in state.replicas:
                    continue
                tp = TopicPartition(name, state.partition)
                wanted.add(tp)
                part = self.partitions.get(tp)
                if part is None:
                    if resume is not None or (
                        deadline is not None and time.perf_counter() > deadline
                    ):
                        if resume is None:
                            resume = state.partition
                        continue
                    part = self._open(topic, state, tp)
                elif part.config is not config:
                    part.configure(config)
                part.state = state
                self._apply_role(part)
                # a waiting DeleteRecords learns of leadership and liveness changes
                self.delete_waiters.notify(tp)
        for tp in hosted - wanted:
            part = self.partitions.pop(tp)
            part.fail_delayed(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            self.logs.delete_log(tp)
            self.fetch_waiters.notify(tp)
            self.delete_waiters.notify(tp)
        return resume

    def _apply_role(self, part: Partition) -> None:
        state = part.state
        if part.role_epoch != state.leader_epoch:
            if part.is_leader:
                part.become_leader(self.clock.now_ms())
            else:
                part.become_follower()
                self.notifier.wake(part.tp, [self.node_id])
            self.fetch_waiters.notify(part.tp)  # parked consumers learn of the change
        elif part.is_leader and part.maybe_advance_high_watermark():
            self._high_watermark_moved(part)

    def remove_orphans(self) -> None:
        """Delete partition directories the metadata no longer gives this broker (a topic
        deleted, or a replica moved, while this broker was down)."""
        if self.offline:
            return
        try:
            self._remove_orphans()
        except OSError as e:
            self.storage_failed(e)

    def _remove_orphans(self) -> None:
        for tp in self.logs.on_disk() - set(self.partitions):
            self.logs.delete_log(tp)

    def shutdown(self) -> None:
        self._closed = True
        for part in self.partitions.values():
            part.fail_delayed(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            self.fetch_waiters.notify(part.tp)
            self.delete_waiters.notify(part.tp)
        self.logs.shutdown({tp: p.high_watermark for tp, p in self.partitions.items()})
        self.partitions.clear()

    # ---- serving clients ----

    def _hosted(self, topic: str, partition: int) -> Partition:
        part = self.partitions.get(TopicPartition(topic, partition))
        if part is None:
            t = self.controller.topics.get(topic)
            if t is None or not 0 <= partition < len(t.partitions):
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            if self.offline and self.node_id in t.partitions[partition].replicas:
                raise KafkaError(
                    ErrorCode.KAFKA_STORAGE_ERROR,
                    f"partition {topic}-{partition} is in an offline log directory",
                )
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return part

    def leader_partition(self, topic: str, partition: int) -> Partition:
        part = self._hosted(topic, partition)
        if not part.is_leader:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return part

    def readable_partition(self, topic: str, partition: int, from_followers: bool) -> Partition:
        """The replica a consumer fetch may read: the leader, or — for fetches that carry
        client metadata (v11+, KIP-392) — a follower too."""
        part = self._hosted(topic, partition)
        if not part.is_leader and not from_followers:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return part

    def append(
        self, part: Partition, batch: memoryview, header: BatchHeader, acks: int
    ) -> AppendInfo:
        min_insync = part.config.min_insync_replicas
        if acks == -1 and len(part.state.isr) < min_insync:
            raise KafkaError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"ISR {part.state.isr} is smaller than min.insync.replicas={min_insync}",
            )
        part.before_append(self.clock.now_ms())
        try:
            info = part.log.append_as_leader(batch, header, part.state.leader_epoch)
        except OSError as e:
            raise self.storage_failed(e) from e
        if not info.duplicate:
            if part.maybe_advance_high_watermark():
                self._high_watermark_moved(part)
            if acks == -1:
                # The producer waits for the followers: let them fetch at once instead of on
                # the next turns of the event loop (152 -> 70 us a request, measured).
                self.notifier.replicate_now(part.tp, part.followers)
            else:
                self.notifier.wake(part.tp, part.followers)
        return info

    def _high_watermark_moved(self, part: Partition) -> None:
        self.fetch_waiters.notify(part.tp)
        self.notifier.wake(part.tp, part.followers)

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {tp: p.high_watermark for tp, p in self.partitions.items()}

    def last_stable_offset(self, tp: TopicPartition, plog: PartitionLog) -> int:
        """How far the cleaner may clean a log: its last stable offset (below the HW)."""
        part = self.partitions.get(tp)
        if part is None or part.log is not plog:
            return plog.log_start_offset
        return plog.producer_state.last_stable_offset(part.high_watermark)

    def enforce_retention(self) -> int:
        """One retention pass over this broker's logs; returns the segments removed."""
        if self.offline:
            return 0
        try:
            return self.logs.enforce_retention(self.high_watermarks())
        except OSError as e:
            self.storage_failed(e)
            return 0

    def remove_expired_producers(self, expiration_ms: int) -> int:
        """One producer.id.expiration.ms pass over this broker's replicas (leaders and
        followers alike, as Kafka's periodic check runs over every log)."""
        now = self.clock.now_ms()
        return sum(
            p.log.producer_state.remove_expired(now, expiration_ms)
            for p in self.partitions.values()
        )

    # ---- DeleteRecords ----

    def delete_records(self, topic: str, partition: int, offset: int) -> tuple[int, int]:
        """Move a led partition's log start to `offset` (-1: the HW), as Kafka's
        deleteRecordsOnLeader; returns (the offset asked for, the low watermark now).
        The followers are made to copy at once, so that they take the new start."""
        t = self.controller.topics.get(topic)
        if t is not None and t.internal and 0 <= partition < len(t.partitions):
            raise KafkaError(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"Cannot delete records of internal topic {topic}",
            )
        part = self.leader_partition(topic, partition)
        if "delete" not in part.config.cleanup_policy:
            raise KafkaError(
                ErrorCode.POLICY_VIOLATION,
                f"Records of partition {part.tp} can not be deleted due to the configured policy",
            )
        required = part.high_watermark if offset == -1 else offset
        if required < 0:
            raise KafkaError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"The offset {required} for partition {part.tp} is not valid",
            )
        if part.log.increment_log_start_offset(required, part.high_watermark):
            self.log_starts_moved = True
            self.notifier.replicate_now(part.tp, part.followers)
        return required, self.low_watermark(topic, partition)

    def low_watermark(self, topic: str, partition: int) -> int:
        """The low watermark of a partition this broker leads (errors as Kafka's
        DelayedDeleteRecords gives them when it looks again)."""
        return self.leader_partition(topic, partition).low_watermark(self._alive)

    def _alive(self, broker_id: int) -> bool:
        state = self.controller.brokers.get(broker_id)
        return state is not None and state.alive

    def checkpoint_log_starts(self) -> None:
        """Checkpoint the log starts if some moved (`log_starts_moved`) since the last time:
        once per DeleteRecords request or follower pass, however many partitions it moved."""
        if not self.log_starts_moved or self.offline:
            return
        self.log_starts_moved = False
        try:
            self.logs.checkpoint_log_starts()
        except OSError as e:
            self.storage_failed(e)

    # ---- replication: leader side ----

    def follower_fetched(
        self, tp: TopicPartition, replica_id: int, log_end_offset: int, log_start_offset: int
    ) -> None:
        """A follower's fetcher copied up to `log_end_offset`, its log starting at
        `log_start_offset` (Kafka: updateFollowerFetchState)."""
        part = self.partitions.get(tp)
        if part is None or not part.is_leader:
            return
        starts = part.follower_log_start
        # (no call on this per-fetch path: python -m benchmarks.cpu counts them)
        if replica_id not in starts or starts[replica_id] != log_start_offset:
            self.delete_waiters.notify(tp)
        part.update_follower(replica_id, log_end_offset, log_start_offset, self.clock.now_ms())
        if part.maybe_advance_high_watermark():
            self._high_watermark_moved(part)
        if part.expand_candidate(replica_id) and self._alter_isr(
            part, [*part.state.isr, replica_id]
        ):
            self.isr_expands += 1

    def check_isr(self, max_lag_ms: int) -> None:
        """Shrink the ISR of led partitions whose followers fell behind (Kafka's
        isr-expiration task)."""
        now = self.clock.now_ms()
        for part in list(self.partitions.values()):
            if not part.is_leader:
                continue
            out = part.shrink_candidates(now, max_lag_ms)
            if out and self._alter_isr(part, [r for r in part.state.isr if r not in out]):
                self.isr_shrinks += 1

    def _alter_isr(self, part: Partition, isr: list[int]) -> bool:
        """Ask the controller for an ISR change; one it could not save (False) is asked again
        at the next fetch or ISR check (the controller logs why)."""
        try:
            self.controller.alter_isr(part.topic, part.state.partition, isr)
        except KafkaError:
            return False
        return True
