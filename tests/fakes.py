"""Stand-ins for the parts the composition root wires, for tests that build one piece."""

from __future__ import annotations

import uuid

from msklite.clock import Clock
from msklite.controller import Controller
from msklite.coordinator.group_runtime import OFFSETS_TOPIC
from msklite.coordinator.share_group import ShareGroupConfig, ShareGroupCoordinator, TopicLookup
from msklite.coordinator.share_runtime import (
    SHARE_STATE_PARTITIONS,
    ShareGroupRuntime,
    ShareStateRuntime,
    ensure_share_state_topic,
)
from msklite.coordinator.share_state import (
    SHARE_STATE_TOPIC,
    ShareKey,
    ShareState,
    ShareStateCoordinator,
)
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.share_manager import SharePartitionManager, ShareServices
from msklite.replication.internal_topic import InternalTopic
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition


class NoFetchers:
    """A ReplicaNotifier for a broker with no replica fetchers to wake (one broker, RF 1)."""

    def wake(self, tp: TopicPartition, brokers: list[int]) -> None:
        pass

    def replicate_now(self, tp: TopicPartition, brokers: list[int]) -> None:
        pass


def one_broker_share(
    controller: Controller, replicas: ReplicaManager, clock: Clock
) -> ShareServices:
    """A single broker's share-group machinery, wired as the composition root wires it, its
    Persister being that broker's own share coordinator."""
    groups = ShareGroupRuntime(
        ShareGroupCoordinator(ShareGroupConfig(), controller_topic_lookup(controller)),
        InternalTopic(replicas, OFFSETS_TOPIC, clock),
        clock,
    )
    state = ShareStateRuntime(
        ShareStateCoordinator(SHARE_STATE_PARTITIONS),
        InternalTopic(replicas, SHARE_STATE_TOPIC, clock),
        clock,
    )
    persister = OneBrokerPersister(controller, replicas, state)
    partitions = SharePartitionManager(replicas, controller, clock, persister, lambda g, n: None)
    persister.managers.append(partitions)
    return ShareServices(groups, state, partitions, persister)


def controller_topic_lookup(controller: Controller) -> TopicLookup:
    def lookup(name: str) -> tuple[uuid.UUID, int] | None:
        topic = controller.topics.get(name)
        return None if topic is None or topic.internal else (topic.topic_id, len(topic.partitions))

    return lookup


class OneBrokerPersister:
    """The Persister of a one-broker cluster: its own share coordinator."""

    def __init__(
        self, controller: Controller, replicas: ReplicaManager, state: ShareStateRuntime
    ) -> None:
        self.controller = controller
        self.replicas = replicas
        self.state = state
        self.managers: list[SharePartitionManager] = []

    def __call__(self, key: ShareKey) -> ShareStateRuntime | None:
        try:
            ensure_share_state_topic(self.controller)
        except KafkaError:
            return None
        return self.state if self.state.owns(key) else None

    def read(self, key: ShareKey) -> ShareState | None:
        runtime = self(key)
        return runtime.read(key) if runtime is not None else None

    def keys_of(self, group_id: str) -> list[ShareKey]:
        if SHARE_STATE_TOPIC not in self.controller.topics:
            return []
        return self.state.keys_of(group_id)

    def high_watermark(self, topic: str, partition: int) -> int | None:
        try:
            return self.replicas.leader_partition(topic, partition).high_watermark
        except KafkaError:
            return None

    def reset(self, key: ShareKey, start_offset: int | None) -> ErrorCode:
        runtime = self(key)
        if runtime is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = (
            runtime.delete(key)
            if start_offset is None
            else runtime.initialize(key, 0, start_offset)
        )
        for manager in self.managers:
            manager.forget(key)
        return error
