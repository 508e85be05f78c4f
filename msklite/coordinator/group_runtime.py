"""GroupRuntime: the only door to one broker's GroupCoordinator. Each group operation the
handlers need runs through the generic runtime, which appends the records it decides to
`__consumer_offsets` and answers the requests it completes; a failed append comes back folded
into the operation's errors, as Kafka reports it (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
"""

from __future__ import annotations

from typing import TypeVar

from msklite.clock import Clock
from msklite.controller import Controller, TopicState
from msklite.coordinator.consumer_coordinator import Topics
from msklite.coordinator.consumer_group import ConsumerGroup
from msklite.coordinator.coordinator import (
    GroupCoordinator,
    JoinRequest,
    JoinResponse,
    OffsetCommit,
    Output,
    SyncResponse,
)
from msklite.coordinator.group import Group
from msklite.coordinator.offsets import CommittedOffset
from msklite.coordinator.runtime import CoordinatorRuntime, CoordinatorTopic
from msklite.errors import ErrorCode
from msklite.protocol.consumer_group import HeartbeatRequest, HeartbeatResponse
from msklite.topic_partition import TopicPartition

OFFSETS_TOPIC = "__consumer_offsets"
A = TypeVar("A")
B = TypeVar("B")


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


def cluster_topics(controller: Controller) -> Topics:
    """What consumer groups see of the cluster's topics: name -> (topic id, partitions)."""
    return {name: (t.topic_id, len(t.partitions)) for name, t in controller.topics.items()}


def _fold(errors: list[ErrorCode], write_error: ErrorCode) -> list[ErrorCode]:
    """What succeeded in memory failed if its records could not be written."""
    return [write_error if e == ErrorCode.NONE else e for e in errors]


def _split3(result: tuple[A, B, Output]) -> tuple[tuple[A, B], Output]:
    a, b, out = result
    return (a, b), out


class GroupRuntime(CoordinatorRuntime[GroupCoordinator]):
    def __init__(
        self, coordinator: GroupCoordinator, topic: CoordinatorTopic, clock: Clock
    ) -> None:
        super().__init__(coordinator, topic, clock, coordinator.config.num_partitions)

    # ---- where groups live ----

    def partition_for(self, group_id: str) -> int:
        return self._machine.partition_for(group_id)

    def owns(self, group_id: str) -> bool:
        """Whether this broker coordinates `group_id` now (loading or unloading its partition
        when leadership moved since the last look)."""
        return self._owns_partition(self._machine.partition_for(group_id))

    # ---- membership ----

    async def join(self, req: JoinRequest) -> JoinResponse:
        response = await self._wait(lambda waiter, now: self._machine.join(req, waiter, now))
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
        response = await self._wait(
            lambda waiter, now: self._machine.sync(
                group_id,
                generation,
                member_id,
                instance_id,
                protocol_type,
                protocol_name,
                assignments,
                waiter,
                now,
            )
        )
        assert isinstance(response, SyncResponse)
        return response

    def consumer_heartbeat(
        self, req: HeartbeatRequest, version: int, client_id: str, client_host: str
    ) -> HeartbeatResponse:
        """A KIP-848 ConsumerGroupHeartbeat; a failed write of its records answers the
        coordinator error instead (the member retries; its state here already moved on, as
        in Kafka when an append fails after the in-memory change)."""
        response, write_error = self._write(
            lambda now: self._machine.consumer_heartbeat(req, version, client_id, client_host, now)
        )
        if write_error != ErrorCode.NONE and response.error_code == ErrorCode.NONE:
            return HeartbeatResponse(write_error)
        return response

    def consumer_group(self, group_id: str) -> ConsumerGroup | None:
        """A consumer group this broker coordinates, to describe (not to change)."""
        return self._machine.consumer_group(group_id)

    def consumer_assignor(self, group: ConsumerGroup) -> str:
        """The server assignor the group's target comes from."""
        return group.preferred_assignor(self._machine.config.consumer.assignors[0])

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        error = self._machine.heartbeat(
            group_id, generation, member_id, instance_id, self.clock.now_ms()
        )
        # a classic member of a consumer group told to rejoin now has a join deadline
        self._wakeup.set()
        return error

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """(group error, per-member errors). The members are gone whether or not the
        rebalance's records could be written, as in Kafka."""
        (error, member_errors), _ = self._write(
            lambda now: _split3(self._machine.leave(group_id, members, now))
        )
        return error, member_errors

    # ---- offsets ----

    def commit(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        offsets: list[OffsetCommit],
        retention_ms: int = -1,
        api_version: int = 9,
    ) -> list[ErrorCode]:
        errors, write_error = self._write(
            lambda now: self._machine.commit(
                group_id,
                generation,
                member_id,
                instance_id,
                offsets,
                now,
                retention_ms,
                api_version,
            )
        )
        return _fold(errors, write_error)

    def txn_commit(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation: int,
        member_id: str,
        instance_id: str | None,
        offsets: list[OffsetCommit],
    ) -> list[ErrorCode]:
        errors, write_error = self._write(
            lambda now: self._machine.txn_commit(
                group_id,
                producer_id,
                producer_epoch,
                generation,
                member_id,
                instance_id,
                offsets,
                now,
            )
        )
        return _fold(errors, write_error)

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> None:
        """`producer_id`'s transaction marker is on `__consumer_offsets` partition
        `partition` (up to the high watermark). A broker that no longer leads the partition
        has nothing to do: its new leader replays the marker when it loads the partition."""
        if self._owns_partition(partition):
            self._machine.complete_txn(partition, producer_id, commit)

    def unstable_partitions(self, group_id: str) -> set[TopicPartition]:
        return self._machine.unstable_partitions(group_id)

    def validate_fetch(self, group_id: str, member_id: str | None, member_epoch: int) -> ErrorCode:
        return self._machine.validate_fetch(group_id, member_id, member_epoch)

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> list[tuple[str, int, CommittedOffset | None]]:
        return self._machine.fetch_offsets(group_id, partitions)

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        (error, errors), write_error = self._write(
            lambda now: _split3(self._machine.delete_offsets(group_id, partitions))
        )
        return error, _fold(errors, write_error)

    # ---- admin ----

    def group(self, group_id: str) -> Group | None:
        """A classic group this broker coordinates, to describe (not to change)."""
        if group_id in self._machine.consumer.groups:
            return None
        return self._machine.groups.get(group_id)

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, CommittedOffset]:
        """Every committed offset of a group of either type (to read, not to change)."""
        entry = self._machine.groups.get(group_id)
        return dict(entry.offsets) if entry is not None else {}

    def list_groups(self) -> list[Group | ConsumerGroup]:
        """Every group of every partition this broker leads, classic and consumer (a
        consumer group's offsets entry is not a group of its own)."""
        self.load_all()
        modern = self._machine.consumer.groups
        classic = [g for g in self._machine.groups.values() if g.group_id not in modern]
        return [*classic, *modern.values()]

    def delete_group(self, group_id: str) -> ErrorCode:
        errors, write_error = self._write(lambda now: self._machine.delete_groups([group_id]))
        return _fold(errors, write_error)[0]
