"""The thin runtime around one broker's GroupCoordinator: parks JoinGroup/SyncGroup requests on
futures, appends the records the state machine decides to `__consumer_offsets`, fires its
timers from the injected clock, and loads or unloads partitions as leadership says.

The coordinator package sits beside `msklite.replication` in the layering, so it reaches the
log only through the `OffsetsTopic` port; `msklite.replication.internal_topic.InternalTopic`
implements it over the broker's replica manager, and the composition root wires the two.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Protocol

from msklite.clock import Clock
from msklite.controller import Controller, TopicState
from msklite.coordinator.coordinator import (
    GroupCoordinator,
    JoinRequest,
    JoinResponse,
    Output,
    SyncResponse,
)
from msklite.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


def ensure_offsets_topic(controller: Controller) -> TopicState:
    """`__consumer_offsets`, created (internal, compacted) when missing — on the first
    FindCoordinator, as Kafka does, so that a cluster nobody uses for groups starts without
    creating its 50 partitions x offsets.topic.replication.factor replicas. Raises
    KafkaError (INVALID_REPLICATION_FACTOR) while too few brokers are alive."""
    topic = controller.topics.get(OFFSETS_TOPIC)
    if topic is None:
        configs = controller.configs
        topic = controller.create_topic(
            OFFSETS_TOPIC,
            configs.get_int("offsets.topic.num.partitions"),
            configs.get_int("offsets.topic.replication.factor"),
            configs={
                "cleanup.policy": "compact",
                "compression.type": "producer",
                "segment.bytes": str(configs.get_int("offsets.topic.segment.bytes")),
            },
            internal=True,
        )
    return topic


class OffsetsTopic(Protocol):
    """This broker's view of `__consumer_offsets`."""

    def is_leader(self, partition: int) -> bool: ...

    def append(self, partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Append as leader; raises KafkaError (NOT_LEADER_OR_FOLLOWER, …)."""

    def records(self, partition: int) -> Iterator[tuple[bytes, bytes | None]]:
        """Every (key, value) record of the partition, oldest first."""


class CoordinatorRuntime:
    def __init__(self, coordinator: GroupCoordinator, topic: OffsetsTopic, clock: Clock) -> None:
        self.coordinator = coordinator
        self.topic = topic
        self.clock = clock
        self._waiters: dict[int, asyncio.Future[JoinResponse | SyncResponse]] = {}
        self._ids = itertools.count()
        self._wakeup = asyncio.Event()

    # ---- ownership ----

    def owns(self, group_id: str) -> bool:
        """Whether this broker coordinates `group_id` now, loading or unloading its partition
        when leadership moved since the last look."""
        return self._sync_partition(self.coordinator.partition_for(group_id))

    def load_all(self) -> None:
        for p in range(self.coordinator.config.num_partitions):
            self._sync_partition(p)

    def _sync_partition(self, partition: int) -> bool:
        leader = self.topic.is_leader(partition)
        loaded = partition in self.coordinator.loaded
        if leader and not loaded:
            self.coordinator.load(partition, self.topic.records(partition), self.clock.now_ms())
            self._wakeup.set()
        elif loaded and not leader:
            self.apply(self.coordinator.unload(partition))
        return leader

    # ---- effects ----

    def apply(self, out: Output) -> ErrorCode:
        """Append the records, then answer the parked requests; the append's error, if any."""
        error = ErrorCode.NONE
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for partition, key, value in out.records:
            by_partition.setdefault(partition, []).append((key, value))
        for partition, records in by_partition.items():
            try:
                self.topic.append(partition, records)
            except KafkaError as e:
                log.warning("writing to %s-%d failed: %s", OFFSETS_TOPIC, partition, e)
                # Kafka maps a failed offsets-topic write to a coordinator error, so that
                # clients look the coordinator up again.
                error = (
                    ErrorCode.NOT_COORDINATOR
                    if e.code
                    in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                    else ErrorCode.COORDINATOR_NOT_AVAILABLE
                )
        for waiter, response in out.completions:
            fut = self._waiters.pop(waiter, None)
            if fut is not None and not fut.done():
                fut.set_result(response)
        self._wakeup.set()
        return error

    def _waiter(self) -> tuple[int, asyncio.Future[JoinResponse | SyncResponse]]:
        waiter = next(self._ids)
        fut = self._waiters[waiter] = asyncio.get_running_loop().create_future()
        return waiter, fut

    async def _park(
        self, waiter: int, fut: asyncio.Future[JoinResponse | SyncResponse]
    ) -> JoinResponse | SyncResponse:
        try:
            return await fut
        finally:
            # a cancelled request (its connection closed) must not leave its future behind
            self._waiters.pop(waiter, None)

    async def join(self, req: JoinRequest) -> JoinResponse:
        waiter, fut = self._waiter()
        self.apply(self.coordinator.join(req, waiter, self.clock.now_ms()))
        response = await self._park(waiter, fut)
        assert isinstance(response, JoinResponse)
        return response

    async def sync(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResponse:
        waiter, fut = self._waiter()
        out = self.coordinator.sync(
            group_id,
            generation,
            member_id,
            instance_id,
            protocol_type,
            protocol_name,
            assignments,
            waiter,
            self.clock.now_ms(),
        )
        self.apply(out)
        response = await self._park(waiter, fut)
        assert isinstance(response, SyncResponse)
        return response

    # ---- timers ----

    async def run(self) -> None:
        """Fire the coordinator's timers until cancelled."""
        while True:
            self._wakeup.clear()
            delay = max(self.coordinator.next_deadline() - self.clock.now_ms(), 0) / 1000
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that arrives just as the event is set, and the cluster's stop then waits forever.
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            try:
                self.apply(self.coordinator.tick(self.clock.now_ms()))
            except Exception:
                # A bug in one timer must not stop every group's timers on this broker.
                log.exception("group coordinator timers failed")
