"""What the metrics and the web console show, read from a running cluster when asked (on its
event loop, so nothing is locked): brokers with their partition counts, topics with their
partitions' replication and log positions, consumer groups with their lag.

Everything here is computed from state the brokers keep anyway (the controller's metadata, the
replicas' high watermarks and logs, the group coordinators' committed offsets, the counters of
`BrokerStats`): nothing is added to the produce or fetch path for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msklite.errors import KafkaError, ProtocolError
from msklite.protocol.records import read_header
from msklite.topic_partition import TopicPartition

if TYPE_CHECKING:
    from msklite.brokers import Broker
    from msklite.cluster import Cluster
    from msklite.coordinator.consumer_group import ConsumerGroup
    from msklite.coordinator.group import Group
    from msklite.replication.partition import Partition

OFFSETS_TOPIC = "__consumer_offsets"


@dataclass(slots=True)
class BrokerView:
    node_id: int
    az: str | None
    host: str
    port: int
    up: bool
    controller: bool  # the active controller (the one Metadata names)
    leaders: int = 0  # partitions it leads (Kafka's LeaderCount)
    partitions: int = 0  # replicas it hosts (PartitionCount)
    under_replicated: int = 0  # of the partitions it leads
    under_min_isr: int = 0
    at_min_isr: int = 0


@dataclass(slots=True)
class PartitionView:
    topic: str
    partition: int
    leader: int  # -1: offline
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    min_isr: int
    high_watermark: int = -1  # the leader's (-1: no live leader)
    log_start: int = -1
    log_end: int = -1
    size: int = 0  # the leader's log, in bytes
    segments: int = 0

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(slots=True)
class TopicView:
    name: str
    internal: bool
    partitions: list[PartitionView]
    configs: dict[str, str]  # the topic's own overrides


@dataclass(slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int
    end: int  # the leader's high watermark: what a consumer can read up to
    lag: int
    time_lag_ms: int  # age of the first record not yet consumed (0 when caught up)


@dataclass(slots=True)
class MemberView:
    member_id: str
    client_id: str
    client_host: str
    assignment: list[tuple[str, int]]


@dataclass(slots=True)
class GroupView:
    group_id: str
    coordinator: int
    state: str
    protocol_type: str
    protocol: str
    generation: int
    members: list[MemberView]
    lags: list[PartitionLag] = field(default_factory=list)


def controller_id(cluster: Cluster) -> int:
    """The broker Metadata names as the controller: the lowest live id."""
    alive = [i.node_id for i in cluster.infos if i.node_id in cluster.brokers]
    return min(alive) if alive else -1


def leader_replica(cluster: Cluster, tp: TopicPartition, leader: int) -> Partition | None:
    broker = cluster.brokers.get(leader)
    if broker is None:
        return None
    part = broker.replicas.partitions.get(tp)
    return part if part is not None and part.is_leader else None


def brokers(cluster: Cluster) -> list[BrokerView]:
    """Every broker of the cluster, stopped ones included (up=False)."""
    controller = cluster.controller
    assert controller is not None
    active = controller_id(cluster)
    views = {
        i.node_id: BrokerView(
            i.node_id,
            i.rack,
            i.host,
            i.port,
            i.node_id in cluster.brokers,
            i.node_id == active,
        )
        for i in cluster.infos
    }
    for topic in controller.topics.values():
        min_isr = topic.config.min_insync_replicas
        for p in topic.partitions:
            for r in p.replicas:
                view = views.get(r)
                if view is not None and view.up:
                    view.partitions += 1
            view = views.get(p.leader)
            if view is None:
                continue
            view.leaders += 1
            isr = len(p.isr)
            view.under_replicated += isr < len(p.replicas)
            view.under_min_isr += isr < min_isr
            view.at_min_isr += isr == min_isr
    return list(views.values())


def topics(cluster: Cluster, internal: bool = True) -> list[TopicView]:
    controller = cluster.controller
    assert controller is not None
    out = []
    for topic in sorted(controller.topics.values(), key=lambda t: t.name):
        if topic.internal and not internal:
            continue
        parts = []
        for p in topic.partitions:
            view = PartitionView(
                topic.name,
                p.partition,
                p.leader,
                p.leader_epoch,
                list(p.replicas),
                list(p.isr),
                topic.config.min_insync_replicas,
            )
            replica = leader_replica(cluster, TopicPartition(topic.name, p.partition), p.leader)
            if replica is not None:
                log = replica.log
                view.high_watermark = replica.high_watermark
                view.log_start = log.log_start_offset
                view.log_end = log.log_end_offset
                view.size = log.size_in_bytes()
                view.segments = len(log.segments)
            parts.append(view)
        out.append(TopicView(topic.name, topic.internal, parts, dict(topic.configs)))
    return out


def _coordinators(cluster: Cluster) -> list[Broker]:
    """The running brokers' group coordinators, started where `__consumer_offsets` exists
    (after a restart a coordinator otherwise starts on a client's first request; Kafka loads
    the groups when it takes leadership of the partitions)."""
    controller = cluster.controller
    if controller is None or OFFSETS_TOPIC not in controller.topics:
        return []
    return list(cluster.brokers.values())


def groups(cluster: Cluster, now_ms: int | None = None) -> list[GroupView]:
    """Every consumer group of the running coordinators, with the lag of every partition it
    committed an offset for, sorted by group id."""
    now = cluster.clock.now_ms() if now_ms is None else now_ms
    out = [
        _group_view(cluster, broker, group, now)
        for broker in _coordinators(cluster)
        for group in broker.ctx.groups.list_groups()
    ]
    return sorted(out, key=lambda g: g.group_id)


def _group_view(
    cluster: Cluster, broker: Broker, group: Group | ConsumerGroup, now: int
) -> GroupView:
    from msklite.coordinator.group import Group  # lazily, as the coordinator is

    controller = cluster.controller
    assert controller is not None
    runtime = broker.ctx.groups
    if isinstance(group, Group):
        members = [
            MemberView(m.member_id, m.client_id, m.client_host, consumer_assignment(m.assignment))
            for m in group.members.values()
        ]
        view = GroupView(
            group.group_id,
            broker.info.node_id,
            str(group.state),
            group.protocol_type or "",
            group.protocol or "",
            group.generation,
            sorted(members, key=lambda m: m.member_id),
        )
    else:  # a KIP-848 consumer group: its assignment names topics by id
        by_id = controller.topics_by_id
        members = [
            MemberView(
                m.member_id,
                m.client_id,
                m.client_host,
                sorted(
                    (by_id[t].name, p) for t, ps in m.assigned.items() if t in by_id for p in ps
                ),
            )
            for m in group.members.values()
        ]
        view = GroupView(
            group.group_id,
            broker.info.node_id,
            group.state().value,
            "consumer",
            runtime.consumer_assignor(group),
            group.group_epoch,
            sorted(members, key=lambda m: m.member_id),
        )
    for tp, committed in sorted(runtime.committed_offsets(group.group_id).items()):
        topic = controller.topics.get(tp.topic)
        if topic is None or tp.partition >= len(topic.partitions):
            continue
        replica = leader_replica(cluster, tp, topic.partitions[tp.partition].leader)
        if replica is None:
            continue  # offline: no end to measure the lag against
        end = replica.high_watermark
        lag = max(end - committed.offset, 0)
        view.lags.append(
            PartitionLag(
                tp.topic,
                tp.partition,
                committed.offset,
                end,
                lag,
                _time_lag(replica, committed.offset, end, now) if lag else 0,
            )
        )
    return view


def _time_lag(replica: Partition, offset: int, end: int, now: int) -> int:
    """How old the first record not yet consumed is: now minus the first timestamp of its batch
    (0 when it cannot be read, e.g. deleted by retention)."""
    try:
        views = replica.log.read(max(offset, replica.log.log_start_offset), 1, end, True)
    except (KafkaError, OSError):  # out of range: truncated or deleted under the group
        return 0
    if not views:
        return 0
    return max(now - read_header(views[0]).base_timestamp, 0)


def consumer_assignment(data: bytes) -> list[tuple[str, int]]:
    """The partitions of a consumer-protocol assignment, sorted; [] when it is not one
    (another protocol type, or bytes that do not parse)."""
    # lazily, as the coordinator is
    from msklite.coordinator.consumer_protocol import decode_assignment

    try:
        topics = decode_assignment(data)
    except ProtocolError:
        return []
    return sorted((topic, p) for topic, partitions in topics for p in partitions)
