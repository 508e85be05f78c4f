"""Share groups' membership (KIP-932; the share-group paths of Kafka's GroupMetadataManager): a
synchronous state machine over the groups of the `__consumer_offsets` partitions this broker
leads (a share group's coordinator is found as any group's).

A member joins with epoch 0 under the member id it chose (KIP-1082) and gets the group's epoch;
a join, a leave, a subscription change or a topic's partition count changing bumps the group
epoch and recomputes the target assignment with Kafka's simple assignor (`assign`). Share
groups do not reconcile: a member takes its new assignment on its next heartbeat, its epoch
then the group's. A member silent for `group.share.session.timeout.ms` is removed. The records
a member holds are not the coordinator's business (they live with the partition leaders): its
share sessions release them when closed, their locks when they expire, as in Kafka.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from msklite.coordinator.coordinator import LogRecord, Output, partition_for
from msklite.errors import ErrorCode

log = logging.getLogger(__name__)
ASSIGNOR = "simple"
# topic name -> (topic id, partition count), for the subscribed topics that exist
TopicLookup = Callable[[str], tuple[uuid.UUID, int] | None]
# (group id, config name) -> the group's own config (GROUP resources), None when not set
GroupConfigLookup = Callable[[str, str], str | None]
Assignment = dict[uuid.UUID, list[int]]


@dataclass(frozen=True, slots=True)
class ShareGroupConfig:
    num_partitions: int = 50
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 5000
    max_size: int = 200


@dataclass(slots=True)
class ShareMember:
    member_id: str
    client_id: str
    client_host: str
    rack_id: str | None
    subscribed: list[str]
    epoch: int = 0
    assignment: Assignment = field(default_factory=dict)
    deadline_ms: int = 0


@dataclass(slots=True)
class ShareGroup:
    group_id: str
    epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    # the topics' (id, partition count) the target assignment was computed for
    topics_seen: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "Stable" if self.members else "Empty"

    def subscribed_topics(self) -> set[str]:
        return {t for m in self.members.values() for t in m.subscribed}


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    epoch: int = -1
    assignment: Assignment | None = None
    heartbeat_interval_ms: int = 0


def assign(
    members: Mapping[str, list[str]], topics: Mapping[str, tuple[uuid.UUID, int]]
) -> dict[str, Assignment]:
    """Kafka's SimpleAssignor, per topic: with at least as many partitions as subscribers the
    partitions go round-robin over the subscribers; with more subscribers than partitions each
    subscriber gets one partition round-robin, so a partition is shared by several members.
    Members and partitions in a stable order, so every coordinator computes the same."""
    out: dict[str, Assignment] = {m: {} for m in members}
    for topic in sorted(topics):
        topic_id, count = topics[topic]
        subscribers = sorted(m for m, subs in members.items() if topic in subs)
        if not subscribers or count == 0:
            continue
        if count >= len(subscribers):
            for p in range(count):
                out[subscribers[p % len(subscribers)]].setdefault(topic_id, []).append(p)
        else:
            for i, m in enumerate(subscribers):
                out[m].setdefault(topic_id, []).append(i % count)
    return out


class ShareGroupCoordinator:
    def __init__(
        self,
        config: ShareGroupConfig,
        topics: TopicLookup,
        group_configs: GroupConfigLookup = lambda group_id, name: None,
    ) -> None:
        self.config = config
        self._topics = topics
        self._group_configs = group_configs
        self.groups: dict[str, ShareGroup] = {}
        self.loaded: set[int] = set()

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.num_partitions)

    # ---- the runtime's contract ----

    def load(self, partition: int, records: Iterable[LogRecord], now_ms: int) -> None:
        # Share-group membership is not persisted (DEVIATIONS.md): members join again.
        self.loaded.add(partition)

    def unload(self, partition: int) -> Output:
        self.loaded.discard(partition)
        for gid in [g for g in self.groups if self.partition_for(g) == partition]:
            del self.groups[gid]
        return Output()

    def next_deadline(self) -> int:
        deadlines = [m.deadline_ms for g in self.groups.values() for m in g.members.values()]
        return min(deadlines, default=1 << 62)

    def tick(self, now_ms: int) -> Output:
        for group in self.groups.values():
            expired = [m for m in group.members.values() if m.deadline_ms <= now_ms]
            for m in expired:
                self._remove(group, m.member_id)
        return Output()

    # ---- operations ----

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        rack_id: str | None,
        subscribed: list[str] | None,
        client_id: str,
        client_host: str,
        now_ms: int,
    ) -> HeartbeatResult:
        if not group_id:
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
        if not member_id:  # clients choose their member ids (KIP-1082)
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
        if epoch < -1:
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "MemberEpoch is invalid.")
        group = self.groups.get(group_id)
        if epoch == -1:
            if group is not None and member_id in group.members:
                self._remove(group, member_id)
            return HeartbeatResult(ErrorCode.NONE, None, member_id, -1)
        if epoch == 0:
            if subscribed is None or not subscribed:
                return HeartbeatResult(
                    ErrorCode.INVALID_REQUEST,
                    "SubscribedTopicNames must be set in first request.",
                )
            if group is None:
                group = self.groups[group_id] = ShareGroup(group_id)
            member = group.members.get(member_id)
            if member is None:
                if len(group.members) >= self.config.max_size:
                    return HeartbeatResult(
                        ErrorCode.GROUP_MAX_SIZE_REACHED,
                        f"The share group has reached its maximum capacity of "
                        f"{self.config.max_size} members.",
                    )
                member = group.members[member_id] = ShareMember(
                    member_id, client_id, client_host, rack_id, list(subscribed)
                )
                group.epoch += 1
        else:
            member = group.members.get(member_id) if group is not None else None
            if group is None or member is None:
                return HeartbeatResult(
                    ErrorCode.UNKNOWN_MEMBER_ID,
                    f"Member {member_id} is not a member of group {group_id}.",
                )
            if epoch != member.epoch:
                return HeartbeatResult(
                    ErrorCode.FENCED_MEMBER_EPOCH,
                    f"The share group member has a smaller member epoch ({epoch}) than the "
                    f"one known by the group coordinator ({member.epoch}).",
                )
            if subscribed is not None and sorted(subscribed) != sorted(member.subscribed):
                member.subscribed = list(subscribed)
                group.epoch += 1
        if rack_id is not None:
            member.rack_id = rack_id
        member.deadline_ms = now_ms + self._group_int(
            group.group_id, "share.session.timeout.ms", self.config.session_timeout_ms
        )
        self._refresh(group)
        changed = member.epoch != group.assignment_epoch
        member.epoch = group.assignment_epoch
        return HeartbeatResult(
            ErrorCode.NONE,
            None,
            member.member_id,
            member.epoch,
            member.assignment if changed or epoch == 0 else None,
            self._group_int(
                group.group_id, "share.heartbeat.interval.ms", self.config.heartbeat_interval_ms
            ),
        )

    # ---- internals ----

    def _group_int(self, group_id: str, name: str, default: int) -> int:
        own = self._group_configs(group_id, name)
        return int(own) if own is not None else default

    def _remove(self, group: ShareGroup, member_id: str) -> None:
        del group.members[member_id]
        group.epoch += 1
        self._refresh(group)

    def _refresh(self, group: ShareGroup) -> None:
        """Recompute the target assignment when the group epoch moved or a subscribed topic
        appeared, went or changed its partition count."""
        topics = {}
        for t in sorted(group.subscribed_topics()):
            found = self._topics(t)
            if found is not None:
                topics[t] = found
        if topics != group.topics_seen:
            group.topics_seen = topics
            group.epoch = max(group.epoch, group.assignment_epoch + 1)
        if group.assignment_epoch == group.epoch:
            return
        targets = assign({m.member_id: m.subscribed for m in group.members.values()}, topics)
        for m in group.members.values():
            m.assignment = targets[m.member_id]
        group.assignment_epoch = group.epoch
        log.info(
            "share group %s assignment: epoch %d, %d member(s), %d partition assignment(s)",
            group.group_id,
            group.epoch,
            len(group.members),
            sum(len(parts) for target in targets.values() for parts in target.values()),
        )
