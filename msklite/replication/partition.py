"""Partition: one broker's replica of one partition, in the role the controller gave it.

As leader it owns the high watermark (HW = the smallest log end offset in the ISR), tracks each
follower's log end and start offsets and when it last caught up, decides ISR shrink/expand
candidates (Kafka's `Replica.isCaughtUp`), and holds the produce requests waiting for acks=all. As
follower it knows its leader's HW as of its last fetch and whether it must truncate before
fetching again (after a leader change).

Synchronous; owned by the event loop. Futures are resolved here; nothing awaits here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from msklite.config import TopicConfig
from msklite.controller import PartitionState
from msklite.errors import ErrorCode, KafkaError
from msklite.log.partition_log import PartitionLog
from msklite.topic_partition import TopicPartition


@dataclass(eq=False, slots=True)
class DelayedProduce:
    """An acks=all produce waiting for the HW to pass `required_offset`."""

    required_offset: int
    future: asyncio.Future[ErrorCode]


class Partition:
    def __init__(
        self,
        broker_id: int,
        topic: str,
        topic_id: uuid.UUID,
        state: PartitionState,
        log: PartitionLog,
        high_watermark: int,
        config: TopicConfig,
    ) -> None:
        self.broker_id = broker_id
        self.topic = topic
        self.topic_id = topic_id
        self.state = state
        self.tp = TopicPartition(topic, state.partition)
        self.log = log
        self.high_watermark = max(min(high_watermark, log.log_end_offset), log.log_start_offset)
        self.configure(config)
        self.follower_leo: dict[int, int] = {}
        self.follower_log_start: dict[int, int] = {}
        self.caught_up_ms: dict[int, int] = {}
        self.delayed: list[DelayedProduce] = []
        self.role_epoch: int | None = None  # the leader epoch of the role last taken
        self.needs_truncation = False

    @property
    def is_leader(self) -> bool:
        return self.state.leader == self.broker_id

    @property
    def followers(self) -> list[int]:
        """The other replicas (of a partition this broker leads)."""
        return [r for r in self.state.replicas if r != self.broker_id]

    def check_leader_epoch(self, current_leader_epoch: int) -> None:
        """KIP-320 fencing of requests that name the leader epoch they expect (-1: none)."""
        if current_leader_epoch == -1:
            return
        if current_leader_epoch < self.state.leader_epoch:
            raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH)
        if current_leader_epoch > self.state.leader_epoch:
            raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH)

    def configure(self, config: TopicConfig) -> None:
        """Take the topic's new config (a dynamic config change): the log follows it too."""
        self.config = config
        self.log.config = config

    # ---- role changes ----

    def become_leader(self, now_ms: int) -> None:
        self.role_epoch = self.state.leader_epoch
        self.needs_truncation = False
        self.log.epochs.assign(self.state.leader_epoch, self.log.log_end_offset)
        others = [r for r in self.state.replicas if r != self.broker_id]
        # Unknown until they fetch; ISR members count as caught up now (Kafka resets their
        # lastCaughtUpTime when it becomes leader) so they are not shrunk straight away.
        self.follower_leo = {r: -1 for r in others}
        self.follower_log_start = {r: -1 for r in others}
        self.caught_up_ms = {r: now_ms for r in others}
        self.maybe_advance_high_watermark()

    def become_follower(self) -> None:
        self.role_epoch = self.state.leader_epoch
        self.needs_truncation = True
        self.follower_leo.clear()
        self.follower_log_start.clear()
        self.caught_up_ms.clear()
        self.fail_delayed(ErrorCode.NOT_LEADER_OR_FOLLOWER)

    # ---- leader: followers, HW, ISR ----

    def update_follower(
        self, replica_id: int, log_end_offset: int, log_start_offset: int, now_ms: int
    ) -> None:
        self.follower_leo[replica_id] = log_end_offset
        self.follower_log_start[replica_id] = log_start_offset
        if log_end_offset >= self.log.log_end_offset:
            self.caught_up_ms[replica_id] = now_ms

    def before_append(self, now_ms: int) -> None:
        """Followers level with the log end count as caught up until an append moves it: Kafka's
        followers fetch all the time and refresh their caught-up time at the end of the log,
        ours are only woken by new data, so an idle minute must not read as a minute behind."""
        end = self.log.log_end_offset
        for replica_id, leo in self.follower_leo.items():
            if leo >= end:
                self.caught_up_ms[replica_id] = now_ms

    def maybe_advance_high_watermark(self) -> bool:
        """Recompute the HW from the ISR; complete waiting produces it satisfies. True if it
        moved."""
        hw = self.log.log_end_offset
        for r in self.state.isr:
            if r != self.broker_id:
                hw = min(hw, self.follower_leo.get(r, -1))
        moved = hw > self.high_watermark
        if moved:
            self.high_watermark = hw
        self.complete_delayed()
        return moved

    def low_watermark(self, alive: Callable[[int], bool]) -> int:
        """The smallest log start offset among this leader and its live followers (Kafka's
        lowWatermarkIfLeader: a live follower that has not fetched since this broker became
        leader counts as -1). DeleteRecords waits for it to reach the requested offset."""
        low = self.log.log_start_offset
        for replica_id, start in self.follower_log_start.items():
            if start < low and alive(replica_id):
                low = start
        return low

    def shrink_candidates(self, now_ms: int, max_lag_ms: int) -> list[int]:
        """ISR followers that are behind and have not caught up for `max_lag_ms`."""
        leo = self.log.log_end_offset
        return [
            r
            for r in self.state.isr
            if r != self.broker_id
            and self.follower_leo.get(r, -1) < leo
            and now_ms - self.caught_up_ms.get(r, 0) > max_lag_ms
        ]

    def expand_candidate(self, replica_id: int) -> bool:
        """Whether a follower outside the ISR may join it: caught up to the HW and into the
        current leader epoch (Kafka's isFollowerInSync)."""
        if replica_id in self.state.isr or replica_id not in self.state.replicas:
            return False
        leo = self.follower_leo.get(replica_id, -1)
        epoch_start = self.log.epochs.entries[-1][1] if self.log.epochs.entries else 0
        return leo >= self.high_watermark and leo >= epoch_start

    # ---- leader: acks=all ----

    def wait_for(self, required_offset: int) -> asyncio.Future[ErrorCode]:
        fut: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        self.delayed.append(DelayedProduce(required_offset, fut))
        self.complete_delayed()
        return fut

    def complete_delayed(self) -> None:
        """Kafka's checkEnoughReplicasReachOffset: once the HW passes a produce, it succeeds if
        the ISR still has min.insync.replicas members, else NOT_ENOUGH_REPLICAS_AFTER_APPEND."""
        if not self.delayed:
            return
        enough = len(self.state.isr) >= self.config.min_insync_replicas
        waiting = []
        for d in self.delayed:
            if d.future.done():
                continue
            if self.high_watermark >= d.required_offset:
                d.future.set_result(
                    ErrorCode.NONE if enough else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
                )
            else:
                waiting.append(d)
        self.delayed = waiting

    def fail_delayed(self, code: ErrorCode) -> None:
        for d in self.delayed:
            if not d.future.done():
                d.future.set_result(code)
        self.delayed = []
