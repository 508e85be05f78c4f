"""ReplicaFetcher: one broker's follower side — copies batches from each leader's log into its
own replicas, in-process, through the same `PartitionLog.read` a consumer Fetch uses.

Woken, never polling: a leader's append or HW change marks the partition dirty for each of its
followers. A pass copies at most `replica.fetch.max.bytes` per partition and re-marks
partitions that have more, yielding to the event loop between passes so catch-up after a
restart cannot starve clients.

Before the first fetch in a new leader epoch the follower truncates to where its log and the
leader's agree (KIP-101/279: the leader's end offset for the follower's latest epoch), so an
old leader that comes back drops the records the new leader never had.

A write that fails in the follower's log directory takes the directory offline (the replica
manager's storage-error model) and never ends the task; neither does an unexpected error,
which is logged and retried after `replica.fetch.backoff.ms`. A second task,
`recover_log_dir`, retries an offline directory at that interval and brings it back once it
takes writes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from msklite.errors import KafkaError
from msklite.log.leader_epoch import UNDEFINED_EPOCH
from msklite.protocol.records import read_header
from msklite.replication.partition import Partition
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)


class ReplicaFetcher:
    def __init__(
        self,
        manager: ReplicaManager,
        peers: Mapping[int, ReplicaManager],
        max_bytes: int = 1_048_576,
        backoff_ms: int = 1000,
    ) -> None:
        self.manager = manager
        self.peers = peers  # live brokers' replica managers, by node id
        self.max_bytes = max_bytes
        self.backoff_ms = backoff_ms
        self.dirty: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.paused_all = False
        self._parked: set[TopicPartition] = set()
        self._event = asyncio.Event()
        self._reporting: TopicPartition | None = None  # see `_fetch`

    def wake(self, tp: TopicPartition) -> None:
        if tp == self._reporting:
            # The leader's HW moved as this very fetch reported its progress: the fetch takes
            # the new HW next, and marks tp again if more is left to copy. (At RF 3 with
            # acks=all one task pass less per request: a set event schedules the task even
            # if the flag is withdrawn before it runs.)
            return
        if self._take_high_watermark(tp):
            return
        self.dirty.add(tp)
        self._event.set()

    def _take_high_watermark(self, tp: TopicPartition) -> bool:
        """A wake for a partition this follower already holds all of carries only the leader's
        new HW: take it at once, not on a later pass of the fetcher task. (At RF 3 with acks=all
        the follower that copied before the other one moved the HW: one task pass less per
        request, and consumers reading this follower see the records as soon as the leader's.)
        Its progress needs no new report: the leader counted it when it copied."""
        if self.paused_all or tp in self.paused or tp in self.dirty:
            return False
        part = self.manager.partitions.get(tp)
        if part is None or part.is_leader or part.needs_truncation:
            return False
        leader_manager = self.peers.get(part.state.leader)
        leader = leader_manager.partitions.get(tp) if leader_manager else None
        own_end = part.log.log_end_offset
        if (
            leader is None
            or not leader.is_leader
            or own_end != leader.log.log_end_offset
            or part.log.log_start_offset != leader.log.log_start_offset
        ):
            return False
        part.high_watermark = min(leader.high_watermark, own_end)
        self.manager.fetch_waiters.notify(tp)
        return True

    def pause(self, tp: TopicPartition | None = None) -> None:
        if tp is None:
            self.paused_all = True
        else:
            self.paused.add(tp)

    def resume(self, tp: TopicPartition | None = None) -> None:
        if tp is None:
            self.paused_all = False
            self.paused.clear()
        else:
            self.paused.discard(tp)
        self.dirty |= self._parked
        self._parked.clear()
        self._event.set()

    def fetch_now(self, tp: TopicPartition) -> None:
        """Copy `tp` from its leader synchronously (acks=all producers wait for it); a paused
        or unavailable follower is left to its task."""
        if self.paused_all or tp in self.paused:
            self.wake(tp)
            return
        self.dirty.discard(tp)
        if self._step({tp}):
            self.wake(tp)

    async def run(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            try:
                self.step()
            except Exception:
                log.exception(
                    "replica fetcher of broker %d failed; retrying in %d ms",
                    self.manager.node_id,
                    self.backoff_ms,
                )
                await self.manager.clock.sleep(self.backoff_ms)
                self._event.set()
                continue
            if self.dirty:
                self._event.set()
                await asyncio.sleep(0)

    async def recover_log_dir(self) -> None:
        """While the broker's log directory is offline, try it again every backoff."""
        while True:
            await self.manager.log_dir_failed.wait()
            await self.manager.clock.sleep(self.backoff_ms)
            try:
                self.manager.try_log_dir_online()
            except Exception:
                log.exception(
                    "reopening the log directory of broker %d failed", self.manager.node_id
                )

    def step(self) -> None:
        work, self.dirty = self.dirty, set()
        try:
            self.dirty |= self._step(work)
        except Exception:
            self.dirty |= work  # copied again on the next pass
            raise

    def _step(self, work: set[TopicPartition]) -> set[TopicPartition]:
        """Fetch each partition of `work` once; returns those with more to copy."""
        more: set[TopicPartition] = set()
        for tp in work:
            if self.paused_all or tp in self.paused:
                self._parked.add(tp)
                continue
            part = self.manager.partitions.get(tp)
            if part is None or part.is_leader:
                continue
            leader_manager = self.peers.get(part.state.leader)
            leader = leader_manager.partitions.get(tp) if leader_manager else None
            if leader_manager is None or leader is None or not leader.is_leader:
                continue  # woken again when the leadership settles
            try:
                if self._fetch(part, leader, leader_manager):
                    more.add(tp)
            except KafkaError as e:
                log.warning("replicating %s-%d failed: %s", *tp, e)
            except OSError as e:
                # This broker's own log directory failed: its replicas are offline from now on.
                self.manager.storage_failed(e)
        if self.manager.log_starts_moved:
            self.manager.checkpoint_log_starts()
        return more

    def _truncate(self, part: Partition, leader: Partition) -> None:
        flog, llog = part.log, leader.log
        epoch = flog.epochs.latest_epoch
        if epoch == UNDEFINED_EPOCH:
            target = flog.log_end_offset
        else:
            leader_epoch, leader_end = llog.epochs.end_offset_for(epoch, llog.log_end_offset)
            if leader_epoch == UNDEFINED_EPOCH:
                target = part.high_watermark
            else:
                _, own_end = flog.epochs.end_offset_for(leader_epoch, flog.log_end_offset)
                target = min(leader_end, own_end)
        if target < flog.log_end_offset:
            log.info(
                "broker %d truncates %s-%d from %d to %d",
                part.broker_id,
                *part.tp,
                flog.log_end_offset,
                target,
            )
            flog.truncate_to(target)
            part.high_watermark = min(part.high_watermark, flog.log_end_offset)

    def _fetch(self, part: Partition, leader: Partition, leader_manager: ReplicaManager) -> bool:
        """Copy one slice from the leader; True if more is waiting."""
        if part.needs_truncation:
            self._truncate(part, leader)
            part.needs_truncation = False
        flog, llog = part.log, leader.log
        leader_end = llog.log_end_offset
        own_end = flog.log_end_offset
        if own_end < llog.log_start_offset:
            flog.truncate_fully_and_start_at(llog.log_start_offset)
            own_end = flog.log_end_offset
        elif own_end > leader_end:
            flog.truncate_to(leader_end)
            own_end = flog.log_end_offset
        if own_end < leader_end:  # else this fetch only carries the leader's HW over
            try:
                views = llog.read(own_end, self.max_bytes, leader_end, True, prefault=True)
            except OSError as e:
                raise leader_manager.storage_failed(e) from e
            for view in views:
                pos = 0
                while pos < len(view):
                    h = read_header(view, pos)
                    flog.append_raw([view[pos : pos + h.size]], h)
                    pos += h.size
            own_end = flog.log_end_offset
        # Kafka's followers take the leader's log start from each fetch response.
        if llog.log_start_offset > flog.log_start_offset and flog.increment_log_start_offset(
            min(llog.log_start_offset, own_end), own_end
        ):
            self.manager.log_starts_moved = True
        # The leader first counts what this fetch copied (its HW may move), then the follower
        # takes the HW: the last follower of an acks=all append learns the new HW at once.
        self._reporting = part.tp
        try:
            leader_manager.follower_fetched(part.tp, part.broker_id, own_end, flog.log_start_offset)
        finally:
            self._reporting = None
        part.high_watermark = min(leader.high_watermark, own_end)
        # Consumers reading this follower (KIP-392) see up to its HW.
        self.manager.fetch_waiters.notify(part.tp)
        return own_end < leader_end
