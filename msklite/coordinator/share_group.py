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

Every change is written to the group's `__consumer_offsets` partition as Kafka 4.2 writes it
(`share_records`): a member's subscription, the group epoch with the subscribed topics'
metadata hash, the target assignment and its epoch, a member's current assignment; leaving
members and deleted groups leave tombstones. `load` replays them, so that after a restart or
a coordinator failover the members keep their epochs (each gets a new session timeout, as
Kafka schedules one for every member it loads).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from msklite.coordinator import share_records as rec
from msklite.coordinator.coordinator import LogRecord, Output, Record, partition_for
from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol.primitives import Reader

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
    previous_epoch: int = -1
    assignment: Assignment = field(default_factory=dict)
    deadline_ms: int = 0

    def metadata(self) -> rec.MemberMetadata:
        return rec.MemberMetadata(
            self.rack_id, self.client_id, self.client_host, tuple(sorted(self.subscribed))
        )


@dataclass(slots=True)
class ShareGroup:
    group_id: str
    epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)
    # the hash of the subscribed topics' (name, id, partition count) the group epoch was
    # bumped for (Kafka 4.2's MetadataHash, KIP-1101)
    metadata_hash: int = 0
    # the (epoch, metadata hash) of the group's last ShareGroupMetadata record
    written: tuple[int, int] = (0, 0)

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


def metadata_hash(topics: Mapping[str, tuple[uuid.UUID, int]]) -> int:
    """A signed 64-bit hash of the topics' names, ids and partition counts, 0 for none (as
    Kafka's). Kafka hashes with XXH3 and the partitions' racks too; only equality matters."""
    if not topics:
        return 0
    text = ";".join(f"{name}:{tid}:{count}" for name, (tid, count) in sorted(topics.items()))
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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
        """Replay the share-group records of `partition` (the group coordinator reads the
        others); records it cannot read are skipped, as Kafka skips unknown keys."""
        self.loaded.add(partition)
        for key, value, _, _, marker in records:
            if marker != -1:
                continue
            r = Reader(memoryview(key))
            try:
                record_type = r.int16()
                if record_type in rec.RECORD_TYPES:
                    self._replay(rec.decode_key(r, record_type), value)
            except (ProtocolError, ValueError, IndexError) as e:
                log.warning("skipping a share-group record of partition %d: %r", partition, e)
        for group in self.groups.values():
            if self.partition_for(group.group_id) == partition:
                for m in group.members.values():
                    m.deadline_ms = now_ms + self._session_timeout(group.group_id)

    def _replay(self, key: rec.ShareRecordKey, value: bytes | None) -> None:
        group = self.groups.get(key.group_id)
        if key.record_type == rec.GROUP_METADATA:
            if value is None:
                self.groups.pop(key.group_id, None)
                return
            if group is None:
                group = self.groups[key.group_id] = ShareGroup(key.group_id)
            group.epoch, group.metadata_hash = group.written = rec.decode_group_metadata(value)
            return
        if key.record_type == rec.STATE_PARTITION_METADATA:
            return  # written only as a tombstone (share_records)
        if group is None:
            if value is None:
                return
            group = self.groups[key.group_id] = ShareGroup(key.group_id)
        if key.record_type == rec.TARGET_METADATA:
            if value is not None:
                group.assignment_epoch = rec.decode_target_metadata(value)
            return
        assert key.member_id is not None
        member = group.members.get(key.member_id)
        if value is None:
            if key.record_type == rec.MEMBER_METADATA:
                group.members.pop(key.member_id, None)
            return
        if member is None:
            member = group.members[key.member_id] = ShareMember(key.member_id, "", "", None, [])
        if key.record_type == rec.MEMBER_METADATA:
            m = rec.decode_member_metadata(value)
            member.rack_id, member.client_id, member.client_host = (
                m.rack_id,
                m.client_id,
                m.client_host,
            )
            member.subscribed = list(m.subscribed_topic_names)
        elif key.record_type == rec.TARGET_MEMBER:
            member.assignment = _assignment(rec.decode_target_member(value))
        else:
            current = rec.decode_current_member(value)
            member.epoch, member.previous_epoch = (
                current.member_epoch,
                current.previous_member_epoch,
            )

    def unload(self, partition: int) -> Output:
        self.loaded.discard(partition)
        for gid in [g for g in self.groups if self.partition_for(g) == partition]:
            del self.groups[gid]
        return Output()

    def next_deadline(self) -> int:
        deadlines = [m.deadline_ms for g in self.groups.values() for m in g.members.values()]
        return min(deadlines, default=1 << 62)

    def tick(self, now_ms: int) -> Output:
        out = Output()
        for group in self.groups.values():
            expired = [m for m in group.members.values() if m.deadline_ms <= now_ms]
            for m in expired:
                self._remove(group, m.member_id, out.records)
        return out

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
    ) -> tuple[HeartbeatResult, Output]:
        out = Output()
        return self._heartbeat(
            group_id, member_id, epoch, rack_id, subscribed, client_id, client_host, now_ms, out
        ), out

    def delete_group(self, group_id: str) -> tuple[ErrorCode, Output]:
        """DeleteGroups of a share group: only an empty one (NON_EMPTY_GROUP), its records
        tombstoned as Kafka's ShareGroup.createGroupTombstoneRecords does."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, Output()
        if group.members:
            return ErrorCode.NON_EMPTY_GROUP, Output()
        del self.groups[group_id]
        tombstones = (rec.TARGET_METADATA, rec.GROUP_METADATA, rec.STATE_PARTITION_METADATA)
        return ErrorCode.NONE, Output(records=[self._record(group, t, None) for t in tombstones])

    def _heartbeat(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        rack_id: str | None,
        subscribed: list[str] | None,
        client_id: str,
        client_host: str,
        now_ms: int,
        out: Output,
    ) -> HeartbeatResult:
        records = out.records
        if not group_id:
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
        if not member_id:  # clients choose their member ids (KIP-1082)
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
        if epoch < -1:
            return HeartbeatResult(ErrorCode.INVALID_REQUEST, "MemberEpoch is invalid.")
        group = self.groups.get(group_id)
        if epoch == -1:
            if group is not None and member_id in group.members:
                self._remove(group, member_id, records)
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
                    if not group.members and group.epoch == 0:
                        del self.groups[group_id]  # nothing was written for it
                    return HeartbeatResult(
                        ErrorCode.GROUP_MAX_SIZE_REACHED,
                        f"The share group has reached its maximum capacity of "
                        f"{self.config.max_size} members.",
                    )
                member = group.members[member_id] = ShareMember(
                    member_id, client_id, client_host, rack_id, list(subscribed)
                )
                group.epoch += 1
                records.append(self._member_record(group, member))
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
                records.append(self._member_record(group, member))
        if rack_id is not None and rack_id != member.rack_id:
            member.rack_id = rack_id
            records.append(self._member_record(group, member))
        member.deadline_ms = now_ms + self._session_timeout(group.group_id)
        self._refresh(group, records)
        changed = member.epoch != group.assignment_epoch
        if changed:
            member.previous_epoch, member.epoch = member.epoch, group.assignment_epoch
            current = rec.CurrentAssignment(
                member.epoch, member.previous_epoch, rec.STABLE, _frozen(member.assignment)
            )
            records.append(
                self._record(
                    group, rec.CURRENT_MEMBER, rec.encode_current_member(current), member_id
                )
            )
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

    def _session_timeout(self, group_id: str) -> int:
        return self._group_int(group_id, "share.session.timeout.ms", self.config.session_timeout_ms)

    def _group_int(self, group_id: str, name: str, default: int) -> int:
        own = self._group_configs(group_id, name)
        return int(own) if own is not None else default

    def _record(
        self, group: ShareGroup, record_type: int, value: bytes | None, member_id: str | None = None
    ) -> Record:
        key = rec.encode_key(rec.ShareRecordKey(record_type, group.group_id, member_id))
        return self.partition_for(group.group_id), key, value

    def _member_record(self, group: ShareGroup, member: ShareMember) -> Record:
        value = rec.encode_member_metadata(member.metadata())
        return self._record(group, rec.MEMBER_METADATA, value, member.member_id)

    def _epoch_record(self, group: ShareGroup) -> Record:
        value = rec.encode_group_metadata(group.epoch, group.metadata_hash)
        return self._record(group, rec.GROUP_METADATA, value)

    def _remove(self, group: ShareGroup, member_id: str, records: list[Record]) -> None:
        del group.members[member_id]
        records.extend(
            self._record(group, record_type, None, member_id)
            for record_type in (rec.CURRENT_MEMBER, rec.TARGET_MEMBER, rec.MEMBER_METADATA)
        )
        group.epoch += 1
        self._refresh(group, records)

    def _refresh(self, group: ShareGroup, records: list[Record]) -> None:
        """Recompute the target assignment when the group epoch moved or a subscribed topic
        appeared, went or changed its partition count."""
        topics = {}
        for t in sorted(group.subscribed_topics()):
            found = self._topics(t)
            if found is not None:
                topics[t] = found
        hashed = metadata_hash(topics)
        if hashed != group.metadata_hash:
            group.metadata_hash = hashed
            group.epoch = max(group.epoch, group.assignment_epoch + 1)
        if group.written != (group.epoch, group.metadata_hash):
            group.written = (group.epoch, group.metadata_hash)
            records.append(self._epoch_record(group))
        if group.assignment_epoch == group.epoch:
            return
        targets = assign({m.member_id: m.subscribed for m in group.members.values()}, topics)
        for m in group.members.values():
            if targets[m.member_id] != m.assignment:
                m.assignment = targets[m.member_id]
                value = rec.encode_target_member(_frozen(m.assignment))
                records.append(self._record(group, rec.TARGET_MEMBER, value, m.member_id))
        group.assignment_epoch = group.epoch
        value = rec.encode_target_metadata(group.assignment_epoch)
        records.append(self._record(group, rec.TARGET_METADATA, value))
        log.info(
            "share group %s assignment: epoch %d, %d member(s), %d partition assignment(s)",
            group.group_id,
            group.epoch,
            len(group.members),
            sum(len(parts) for target in targets.values() for parts in target.values()),
        )


def _frozen(a: Assignment) -> rec.Assignment:
    return {tid: frozenset(parts) for tid, parts in a.items()}


def _assignment(a: rec.Assignment) -> Assignment:
    return {tid: sorted(parts) for tid, parts in a.items()}
