"""The doors to one broker's share-group coordinators (KIP-932), over the generic runtime:
`ShareGroupRuntime` (membership, on the `__consumer_offsets` partitions the broker leads) and
`ShareStateRuntime` (the share coordinator, on the `__share_group_state` partitions it leads;
Kafka's Initialize/Read/Write/DeleteShareGroupState, called in-process by the share-partition
leaders instead of over the wire)."""

from __future__ import annotations

from msklite.clock import Clock
from msklite.controller import Controller, TopicState
from msklite.coordinator.runtime import CoordinatorRuntime, CoordinatorTopic
from msklite.coordinator.share_group import HeartbeatResult, ShareGroup, ShareGroupCoordinator
from msklite.coordinator.share_partition import StateBatch
from msklite.coordinator.share_state import (
    SHARE_STATE_TOPIC,
    ShareKey,
    ShareState,
    ShareStateCoordinator,
)
from msklite.errors import ErrorCode

# Kafka's share.coordinator.state.topic.* defaults (msklite keeps the replication factor at
# offsets.topic.replication.factor so that small clusters get the topic too)
SHARE_STATE_PARTITIONS = 50
SHARE_STATE_SEGMENT_BYTES = 100 * 1024 * 1024


def ensure_share_state_topic(controller: Controller) -> TopicState:
    """`__share_group_state`, created (internal, compacted) on first use, as Kafka creates it
    when the first share partition initialises its state."""
    topic = controller.topics.get(SHARE_STATE_TOPIC)
    if topic is None:
        topic = controller.create_topic(
            SHARE_STATE_TOPIC,
            SHARE_STATE_PARTITIONS,
            controller.configs.get_int("offsets.topic.replication.factor"),
            configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": "-1",
                "segment.bytes": str(SHARE_STATE_SEGMENT_BYTES),
            },
            internal=True,
        )
    return topic


class ShareGroupRuntime(CoordinatorRuntime[ShareGroupCoordinator]):
    def __init__(
        self,
        coordinator: ShareGroupCoordinator,
        topic: CoordinatorTopic,
        clock: Clock,
    ) -> None:
        super().__init__(coordinator, topic, clock, coordinator.config.num_partitions)

    def owns(self, group_id: str) -> bool:
        return self._owns_partition(self._machine.partition_for(group_id))

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        rack_id: str | None,
        subscribed: list[str] | None,
        client_id: str,
        client_host: str,
    ) -> HeartbeatResult:
        result, write_error = self._write(
            lambda now: self._machine.heartbeat(
                group_id, member_id, epoch, rack_id, subscribed, client_id, client_host, now
            )
        )
        if write_error != ErrorCode.NONE and result.error == ErrorCode.NONE:
            return HeartbeatResult(write_error)
        return result

    def delete_group(self, group_id: str) -> ErrorCode:
        error, write_error = self._write(lambda now: self._machine.delete_group(group_id))
        return write_error if error == ErrorCode.NONE else error

    def group(self, group_id: str) -> ShareGroup | None:
        return self._machine.groups.get(group_id)

    def list_groups(self) -> list[ShareGroup]:
        self.load_all()
        return list(self._machine.groups.values())


class ShareStateRuntime(CoordinatorRuntime[ShareStateCoordinator]):
    def __init__(self, coordinator: ShareStateCoordinator, topic: CoordinatorTopic, clock: Clock):
        super().__init__(coordinator, topic, clock, coordinator.num_partitions)

    def partition_for(self, key: ShareKey) -> int:
        return self._machine.partition_for(key)

    def owns(self, key: ShareKey) -> bool:
        return self._owns_partition(self._machine.partition_for(key))

    def initialize(self, key: ShareKey, state_epoch: int, start_offset: int) -> ErrorCode:
        error, write_error = self._write(
            lambda now: self._machine.initialize(key, state_epoch, start_offset, now)
        )
        return write_error if error == ErrorCode.NONE else error

    def read(self, key: ShareKey) -> ShareState | None:
        return self._machine.read(key)

    def write(
        self,
        key: ShareKey,
        state_epoch: int,
        leader_epoch: int,
        start_offset: int,
        batches: list[StateBatch],
    ) -> ErrorCode:
        error, write_error = self._write(
            lambda now: self._machine.write(
                key, state_epoch, leader_epoch, start_offset, batches, now
            )
        )
        return write_error if error == ErrorCode.NONE else error

    def keys_of(self, group_id: str) -> list[ShareKey]:
        self.load_all()
        return self._machine.keys_of(group_id)

    def delete(self, key: ShareKey) -> ErrorCode:
        error, write_error = self._write(lambda now: self._machine.delete(key))
        return write_error if error == ErrorCode.NONE else error
