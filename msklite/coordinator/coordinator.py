"""GroupCoordinator: the classic group protocol and committed offsets for the groups whose
`__consumer_offsets` partition this broker leads (Kafka's GroupCoordinator and
GroupMetadataManager, minus threads and purgatories).

Synchronous and deterministic: every operation takes `now_ms` and returns what must happen —
records to append to `__consumer_offsets` and responses to parked requests (`Output`). It
never sleeps, schedules or touches a log; `runtime.py` performs the effects, and tests drive
it directly with a manual clock. Requests that wait for a rebalance (JoinGroup, SyncGroup)
are identified by opaque waiter ids the caller chooses; their responses come back as
completions, possibly from a later call (another member's join, `tick`).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from msklite.config import BrokerConfigs
from msklite.coordinator.assignors import ASSIGNORS, assignor_name
from msklite.coordinator.consumer_coordinator import (
    ConsumerConfig,
    ConsumerGroups,
    GroupConfigs,
    HeartbeatError,
    RemovedMember,
    Topics,
    no_group_configs,
)
from msklite.coordinator.consumer_group import ConsumerGroup
from msklite.coordinator.consumer_protocol import PROTOCOL_TYPE as CONSUMER_PROTOCOL
from msklite.coordinator.consumer_protocol import encode_assignment
from msklite.coordinator.consumer_protocol import version as protocol_version
from msklite.coordinator.consumer_records import RECORD_TYPES
from msklite.coordinator.consumer_records import decode_key as decode_consumer_key
from msklite.coordinator.group import Group, GroupState, Member
from msklite.coordinator.offsets import CommittedOffset, expired
from msklite.coordinator.records import (
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from msklite.coordinator.share_records import RECORD_TYPES as SHARE_RECORD_TYPES
from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol.consumer_group import HeartbeatRequest, HeartbeatResponse
from msklite.protocol.primitives import Reader
from msklite.protocol.records import COMMIT_MARKER
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)
E = ErrorCode
# (partition of __consumer_offsets, key, value or None for a tombstone)
Record = tuple[int, bytes, bytes | None]
# (partition, producer id, producer epoch, key, value): a record of a producer's transaction
# (TxnOffsetCommit), which its marker commits or aborts
TxnRecord = tuple[int, int, int, bytes, bytes]
# One record of an internal topic as a coordinator replays it: (key, value, producer id,
# producer epoch, marker). The producer id and epoch are a transactional batch's (-1 for
# others); a control batch is one entry with an empty key, a None value and its marker type
# (0 abort, 1 commit), -1 for every data record.
LogRecord = tuple[bytes, bytes | None, int, int, int]


def java_string_hash(s: str) -> int:
    """Java's String.hashCode: 31-polynomial over UTF-16 code units, wrapping at 32 bits."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


@functools.lru_cache(maxsize=4096)
def partition_for(group_id: str, num_partitions: int) -> int:
    """Kafka's `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`, where
    Utils.abs maps Integer.MIN_VALUE to 0. Remembered: a transactional producer's every
    request and first batch on each partition asks for its id's (≈ 2 µs each)."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    initial_rebalance_delay_ms: int = 3000
    offsets_retention_ms: int = 10080 * 60_000
    offsets_retention_check_interval_ms: int = 600000
    offset_metadata_max_bytes: int = 4096
    num_partitions: int = 50
    consumer: ConsumerConfig = field(default_factory=ConsumerConfig)

    @classmethod
    def from_broker_configs(cls, c: BrokerConfigs) -> CoordinatorConfig:
        configured = [
            assignor_name(a) for a in (c.get("group.consumer.assignors") or "").split(",")
        ]
        return cls(
            consumer=ConsumerConfig(
                session_timeout_ms=c.get_int("group.consumer.session.timeout.ms"),
                heartbeat_interval_ms=c.get_int("group.consumer.heartbeat.interval.ms"),
                max_size=c.get_int("group.consumer.max.size"),
                assignors=tuple(a for a in configured if a in ASSIGNORS) or ("uniform",),
                migration_policy=(c.get("group.consumer.migration.policy") or "").lower(),
                classic_max_size=c.get_int("group.max.size"),
            ),
            min_session_timeout_ms=c.get_int("group.min.session.timeout.ms"),
            max_session_timeout_ms=c.get_int("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms=c.get_int("group.initial.rebalance.delay.ms"),
            offsets_retention_ms=c.get_int("offsets.retention.minutes") * 60_000,
            offsets_retention_check_interval_ms=c.get_int("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes=c.get_int("offset.metadata.max.bytes"),
            num_partitions=c.get_int("offsets.topic.num.partitions"),
        )


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    client_id: str = ""
    client_host: str = ""
    # JoinGroup v4+ (KIP-394): an unknown dynamic member first gets MEMBER_ID_REQUIRED
    require_known_member_id: bool = True


@dataclass(frozen=True, slots=True)
class JoinMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResponse:
    error: ErrorCode
    member_id: str = ""
    generation: int = -1
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: list[JoinMember] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SyncResponse:
    error: ErrorCode
    protocol_type: str | None = None
    protocol: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""


@dataclass(slots=True)
class Output:
    records: list[Record] = field(default_factory=list)
    txn_records: list[TxnRecord] = field(default_factory=list)
    completions: list[tuple[int, JoinResponse | SyncResponse]] = field(default_factory=list)


def _no_topics() -> Topics:
    return {}


class GroupCoordinator:
    """Classic groups and every group's committed offsets live here (a `Group` per group id:
    a KIP-848 consumer group's entry holds only its offsets, as Kafka keeps offsets apart from
    membership); KIP-848 consumer groups' membership lives in `self.consumer`."""

    def __init__(
        self,
        config: CoordinatorConfig,
        now_ms: int,
        topics: Callable[[], Topics] = _no_topics,
        group_configs: GroupConfigs = no_group_configs,
    ) -> None:
        self.config = config
        self.groups: dict[str, Group] = {}
        self.loaded: set[int] = set()
        self._next_expiry_check = now_ms + config.offsets_retention_check_interval_ms
        self._topics = topics
        self.consumer = ConsumerGroups(config.consumer, self.partition_for, group_configs)

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.num_partitions)

    # ---- loading: replay of __consumer_offsets (Kafka's GroupMetadataManager.loadGroups) ----

    def load(self, partition: int, records: Iterable[LogRecord], now_ms: int) -> None:
        """Rebuild the groups of `partition` from its records, oldest first. Records it cannot
        read (another version's record types) are skipped, as Kafka skips unknown keys.
        Transactional offsets stay pending until their producer's marker: a COMMIT makes them
        committed offsets, an ABORT drops them (Kafka's loadGroupsAndOffsets)."""
        self.loaded.add(partition)
        for key, value, producer_id, epoch, marker in records:
            if marker != -1:
                self.complete_txn(partition, producer_id, marker == COMMIT_MARKER)
                continue
            try:
                self._replay(key, value, producer_id, epoch, now_ms)
            except ProtocolError as e:
                log.warning("skipping a record of __consumer_offsets-%d: %s", partition, e)
        self.consumer.loaded(partition, now_ms)

    def _replay(
        self, key_bytes: bytes, value: bytes | None, producer_id: int, epoch: int, now_ms: int
    ) -> None:
        r = Reader(memoryview(key_bytes))
        record_type = r.int16()
        if record_type in RECORD_TYPES:
            self.consumer.replay(decode_consumer_key(r, record_type), value, now_ms)
            return
        if record_type in SHARE_RECORD_TYPES:
            return  # the share-group coordinator's (share_group.py), on the same partitions
        key = decode_key(key_bytes)
        if isinstance(key, OffsetKey):
            group = self._get_or_create(key.group_id, now_ms)
            tp = TopicPartition(key.topic, key.partition)
            if value is None:
                group.offsets.pop(tp, None)
                return
            v = decode_offset_value(value)
            offset = CommittedOffset(
                v.offset, v.leader_epoch, v.metadata, v.commit_timestamp, v.expire_timestamp
            )
            if producer_id == -1:
                group.offsets[tp] = offset
            else:
                self._pending(group, producer_id, epoch)[tp] = offset
        elif value is None:
            known = self.groups.get(key.group_id)
            if known is not None:
                if known.offsets:
                    self._reset_to_standalone(known)
                else:
                    del self.groups[key.group_id]
        else:
            self._restore(
                self._get_or_create(key.group_id, now_ms), decode_group_value(value), now_ms
            )

    def _reset_to_standalone(self, group: Group) -> None:
        group.members.clear()
        group.static_members.clear()
        # an upgrade may catch the group mid-rebalance: its timers go with its members
        group.pending_members.clear()
        group.rebalance_deadline = group.initial_delay_remaining = None
        group.state = GroupState.EMPTY
        group.protocol_type = group.protocol = group.leader = None
        group.generation = 0

    def _restore(self, group: Group, v: GroupValue, now_ms: int) -> None:
        group.protocol_type = v.protocol_type or None
        group.generation = v.generation
        group.protocol = v.protocol
        group.leader = v.leader
        group.members.clear()
        group.static_members.clear()
        for m in v.members:
            group.members[m.member_id] = Member(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
                [(v.protocol or "", m.subscription)],
                m.assignment,
                session_deadline=now_ms + m.session_timeout_ms,
            )
            if m.group_instance_id is not None:
                group.static_members[m.group_instance_id] = m.member_id
        # As Kafka loads them: members keep their assignment and must heartbeat within their
        # session timeout, so clients that outlive a coordinator move carry on unaffected.
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY
        group.state_timestamp = (
            v.current_state_timestamp if v.current_state_timestamp >= 0 else now_ms
        )

    def unload(self, partition: int) -> Output:
        """Forget the groups of a partition this broker no longer leads; parked requests get
        NOT_COORDINATOR so that clients look the coordinator up again."""
        out = Output()
        self.loaded.discard(partition)
        self.consumer.unload(partition)
        for gid in [g for g, group in self.groups.items() if group.partition == partition]:
            for m in self.groups.pop(gid).members.values():
                self._fail_waiters(m, E.NOT_COORDINATOR, out)
        return out

    def _get_or_create(self, group_id: str, now_ms: int) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = Group(group_id, self.partition_for(group_id), GroupState.EMPTY, now_ms)
            self.groups[group_id] = group
        return group

    # ---- records ----

    def _group_record(self, group: Group) -> Record:
        protocol = group.protocol or ""
        value = GroupValue(
            group.protocol_type or "",
            group.generation,
            group.protocol,
            group.leader,
            group.state_timestamp,
            [
                MemberValue(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.metadata(protocol),
                    m.assignment,
                )
                for m in group.members.values()
            ],
        )
        return (
            group.partition,
            encode_group_key(GroupKey(group.group_id)),
            encode_group_value(value),
        )

    def _offset_tombstone(self, group: Group, tp: TopicPartition) -> Record:
        return (group.partition, encode_offset_key(OffsetKey(group.group_id, *tp)), None)

    # ---- membership helpers ----

    @staticmethod
    def _fail_waiters(member: Member, code: ErrorCode, out: Output) -> None:
        if member.join_waiter is not None:
            out.completions.append((member.join_waiter, JoinResponse(code, member.member_id)))
            member.join_waiter = None
        if member.sync_waiter is not None:
            out.completions.append((member.sync_waiter, SyncResponse(code)))
            member.sync_waiter = None

    @staticmethod
    def _is_fenced(group: Group, member_id: str, instance_id: str | None) -> bool:
        if instance_id is None:
            return False
        known = group.static_members.get(instance_id)
        return known is not None and known != member_id

    def _member_of(
        self, group: Group, generation: int, member_id: str, instance_id: str | None
    ) -> Member | ErrorCode:
        """The member a Sync/Heartbeat/OffsetCommit names, or why it is not one (Kafka checks
        fencing first, then membership, then the generation)."""
        if self._is_fenced(group, member_id, instance_id):
            return E.FENCED_INSTANCE_ID
        member = group.members.get(member_id)
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return E.ILLEGAL_GENERATION
        return member

    def _join_response(
        self, group: Group, member: Member, skip_assignment: bool = False
    ) -> JoinResponse:
        is_leader = member.member_id == group.leader
        members = (
            [
                JoinMember(m.member_id, m.group_instance_id, m.metadata(group.protocol or ""))
                for m in group.members.values()
            ]
            if is_leader
            else []
        )
        return JoinResponse(
            E.NONE,
            member.member_id,
            group.generation,
            group.protocol_type,
            group.protocol,
            group.leader or "",
            skip_assignment and is_leader,
            members,
        )

    def _add_member(
        self, group: Group, member_id: str, req: JoinRequest, waiter: int, now_ms: int, out: Output
    ) -> None:
        if group.is_empty():
            group.protocol_type = req.protocol_type
        # Kafka's newMemberAdded: a member arriving during the first, delayed join phase
        # extends that phase (group.initial.rebalance.delay.ms).
        if group.state == GroupState.PREPARING_REBALANCE and group.generation == 0:
            group.joined_during_delay = True
        group.members[member_id] = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            list(req.protocols),
            join_waiter=waiter,
            session_deadline=now_ms + req.session_timeout_ms,
            joined=True,
        )
        if req.group_instance_id is not None:
            group.static_members[req.group_instance_id] = member_id
        if group.leader is None:
            group.leader = member_id
        self._rebalance(group, now_ms, out)

    def _update_member(
        self, group: Group, member: Member, req: JoinRequest, waiter: int, now_ms: int, out: Output
    ) -> None:
        if member.join_waiter is not None and member.join_waiter != waiter:
            out.completions.append(
                (member.join_waiter, JoinResponse(E.REBALANCE_IN_PROGRESS, member.member_id))
            )
        member.protocols = list(req.protocols)
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.join_waiter = waiter
        member.joined = True
        member.session_deadline = now_ms + req.session_timeout_ms
        self._rebalance(group, now_ms, out)

    def _rebalance(self, group: Group, now_ms: int, out: Output) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, now_ms, out)
        self._try_complete_join(group, now_ms, out)

    def _prepare_rebalance(self, group: Group, now_ms: int, out: Output) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            # Kafka's resetAndPropagateAssignmentError: members parked in SyncGroup rejoin.
            for m in group.members.values():
                m.assignment = b""
                if m.sync_waiter is not None:
                    out.completions.append((m.sync_waiter, SyncResponse(E.REBALANCE_IN_PROGRESS)))
                    m.sync_waiter = None
        delay = self.config.initial_rebalance_delay_ms
        if group.state == GroupState.EMPTY:
            group.rebalance_deadline = now_ms + delay
            group.initial_delay_remaining = max(group.max_rebalance_timeout() - delay, 0)
            group.joined_during_delay = False
        else:
            group.rebalance_deadline = now_ms + group.max_rebalance_timeout()
            group.initial_delay_remaining = None
        for m in group.members.values():
            m.joined = m.join_waiter is not None
        group.transition(GroupState.PREPARING_REBALANCE, now_ms)

    def _try_complete_join(self, group: Group, now_ms: int, out: Output) -> None:
        # The initial delayed join never completes early: waiting is its point.
        if (
            group.state == GroupState.PREPARING_REBALANCE
            and group.initial_delay_remaining is None
            and group.all_joined()
        ):
            self._complete_join(group, now_ms, out)

    def _complete_join(self, group: Group, now_ms: int, out: Output) -> None:
        for m in [m for m in group.members.values() if not m.joined]:
            self._remove(group, m)
        group.rebalance_deadline = None
        group.initial_delay_remaining = None
        group.generation += 1
        if group.is_empty():
            group.protocol = group.leader = None
            group.transition(GroupState.EMPTY, now_ms)
            log.info("group %s rebalanced: generation %d, empty", group.group_id, group.generation)
            out.records.append(self._group_record(group))
            return
        group.protocol = group.select_protocol()
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        group.transition(GroupState.COMPLETING_REBALANCE, now_ms)
        log.info(
            "group %s rebalanced: generation %d, %d member(s), protocol %s, leader %s",
            group.group_id,
            group.generation,
            len(group.members),
            group.protocol,
            group.leader,
        )
        # Members that do not sync within the rebalance timeout are dropped, so a leader that
        # died after joining cannot stall the group (Kafka's pendingSyncMembers, 2.8+).
        group.rebalance_deadline = now_ms + group.max_rebalance_timeout()
        for m in group.members.values():
            m.joined = False
            m.session_deadline = now_ms + m.session_timeout_ms
            if m.join_waiter is not None:
                out.completions.append((m.join_waiter, self._join_response(group, m)))
                m.join_waiter = None

    def _remove(self, group: Group, member: Member) -> None:
        del group.members[member.member_id]
        if member.group_instance_id is not None:
            group.static_members.pop(member.group_instance_id, None)
        if group.leader == member.member_id:
            group.leader = next(iter(group.members), None)

    def _remove_and_rebalance(
        self, group: Group, member: Member, code: ErrorCode, now_ms: int, out: Output
    ) -> None:
        self._fail_waiters(member, code, out)
        self._remove(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms, out)
        self._try_complete_join(group, now_ms, out)

    # ---- JoinGroup ----

    def join(self, req: JoinRequest, waiter: int, now_ms: int) -> Output:
        out = Output()

        def fail(code: ErrorCode, member_id: str = req.member_id) -> Output:
            out.completions.append((waiter, JoinResponse(code, member_id)))
            return out

        if not req.group_id:
            return fail(E.INVALID_GROUP_ID)
        if (
            not self.config.min_session_timeout_ms
            <= req.session_timeout_ms
            <= self.config.max_session_timeout_ms
        ):
            return fail(E.INVALID_SESSION_TIMEOUT)
        modern = self.consumer.groups.get(req.group_id)
        if modern is not None:
            if modern.members:
                # whatever the migration policy: it only governs conversions
                return self._join_consumer_group(modern, req, waiter, now_ms, out)
            # An empty consumer group becomes a classic one; its offsets stay.
            out.records.extend(self.consumer.delete([req.group_id]))
        group = self.groups.get(req.group_id)
        if group is None and req.member_id:
            return fail(E.UNKNOWN_MEMBER_ID)
        created = group is None
        group = self._get_or_create(req.group_id, now_ms)
        if not group.supports(req.protocol_type, req.protocols):
            if created:
                del self.groups[req.group_id]
            return fail(E.INCONSISTENT_GROUP_PROTOCOL)
        if not req.member_id:
            return self._join_unknown(group, req, waiter, now_ms, out)
        if req.member_id in group.pending_members:
            del group.pending_members[req.member_id]
            self._add_member(group, req.member_id, req, waiter, now_ms, out)
            return out
        if self._is_fenced(group, req.member_id, req.group_instance_id):
            return fail(E.FENCED_INSTANCE_ID)
        member = group.members.get(req.member_id)
        if member is None:
            return fail(E.UNKNOWN_MEMBER_ID)
        if group.state == GroupState.COMPLETING_REBALANCE and member.same_protocols(req.protocols):
            # A retried join of this generation: answer it again rather than start over.
            out.completions.append((waiter, self._join_response(group, member)))
            member.session_deadline = now_ms + member.session_timeout_ms
            return out
        if (
            group.state == GroupState.STABLE
            and member.member_id != group.leader
            and member.same_protocols(req.protocols)
        ):
            out.completions.append((waiter, self._join_response(group, member)))
            member.session_deadline = now_ms + member.session_timeout_ms
            return out
        self._update_member(group, member, req, waiter, now_ms, out)
        return out

    def _join_consumer_group(
        self, group: ConsumerGroup, req: JoinRequest, waiter: int, now_ms: int, out: Output
    ) -> Output:
        """A classic member's JoinGroup to a consumer group with members (Kafka's
        classicGroupJoinToConsumerGroup): it becomes (or stays) a member speaking the classic
        protocol, answered at once with its member epoch as the generation and no leader —
        the coordinator assigns, the member only syncs to learn its partitions."""
        # Kafka's order: the group's size, the protocols, then the member id
        full = len(group.members) >= self.config.consumer.max_size
        if full and req.member_id not in group.members:
            out.completions.append((waiter, JoinResponse(E.GROUP_MAX_SIZE_REACHED, req.member_id)))
            return out
        if not group.supports_classic(req.protocol_type, req.protocols):
            out.completions.append(
                (waiter, JoinResponse(E.INCONSISTENT_GROUP_PROTOCOL, req.member_id))
            )
            return out
        if not req.member_id and req.group_instance_id is None and req.require_known_member_id:
            new_id = str(uuid.uuid4())
            out.completions.append((waiter, JoinResponse(E.MEMBER_ID_REQUIRED, new_id)))
            return out
        try:
            member = self.consumer.classic_join(
                group,
                req.member_id,
                req.group_instance_id,
                req.protocols,
                req.session_timeout_ms,
                req.rebalance_timeout_ms,
                req.client_id,
                req.client_host,
                self._topics(),
                now_ms,
                out.records,
            )
        except HeartbeatError as e:
            out.completions.append((waiter, JoinResponse(e.code, req.member_id)))
            return out
        except RemovedMember:
            out.completions.append((waiter, JoinResponse(E.FENCED_MEMBER_EPOCH, req.member_id)))
            return out
        assert member.classic is not None
        out.completions.append(
            (
                waiter,
                JoinResponse(
                    E.NONE,
                    member.member_id,
                    member.member_epoch,
                    CONSUMER_PROTOCOL,
                    member.classic.protocols[0][0],
                ),
            )
        )
        return out

    def _join_unknown(
        self, group: Group, req: JoinRequest, waiter: int, now_ms: int, out: Output
    ) -> Output:
        instance = req.group_instance_id
        new_id = f"{instance if instance is not None else req.client_id}-{uuid.uuid4()}"
        if instance is not None:
            old_id = group.static_members.get(instance)
            if old_id is not None and old_id in group.members:
                self._replace_static_member(
                    group, group.members[old_id], new_id, req, waiter, now_ms, out
                )
                return out
        elif req.require_known_member_id:
            group.pending_members[new_id] = now_ms + req.session_timeout_ms
            out.completions.append((waiter, JoinResponse(E.MEMBER_ID_REQUIRED, new_id)))
            return out
        self._add_member(group, new_id, req, waiter, now_ms, out)
        return out

    def _replace_static_member(
        self,
        group: Group,
        old: Member,
        new_id: str,
        req: JoinRequest,
        waiter: int,
        now_ms: int,
        out: Output,
    ) -> None:
        """A static member restarted (KIP-345): it takes over its old identity under a new
        member id; the old id is fenced. In a Stable group with unchanged protocols no
        rebalance happens and the member keeps its assignment."""
        self._fail_waiters(old, E.FENCED_INSTANCE_ID, out)
        del group.members[old.member_id]
        old.member_id = new_id
        old.client_id = req.client_id
        old.client_host = req.client_host
        group.members[new_id] = old
        assert req.group_instance_id is not None
        group.static_members[req.group_instance_id] = new_id
        if group.leader not in group.members:
            group.leader = new_id
        if group.state == GroupState.STABLE and old.same_protocols(req.protocols):
            old.rebalance_timeout_ms = req.rebalance_timeout_ms
            old.session_timeout_ms = req.session_timeout_ms
            old.session_deadline = now_ms + req.session_timeout_ms
            out.records.append(self._group_record(group))
            out.completions.append((waiter, self._join_response(group, old, skip_assignment=True)))
            return
        self._update_member(group, old, req, waiter, now_ms, out)

    # ---- SyncGroup ----

    def sync(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
        waiter: int,
        now_ms: int,
    ) -> Output:
        out = Output()

        def fail(code: ErrorCode) -> Output:
            out.completions.append((waiter, SyncResponse(code)))
            return out

        if not group_id:
            return fail(E.INVALID_GROUP_ID)
        modern = self.consumer.groups.get(group_id)
        if modern is not None:
            try:
                assignment = self.consumer.classic_sync(
                    modern,
                    member_id,
                    instance_id,
                    generation,
                    protocol_type,
                    protocol_name,
                    self._topics(),
                    now_ms,
                )
            except HeartbeatError as e:
                return fail(e.code)
            out.completions.append(
                (waiter, SyncResponse(E.NONE, protocol_type, protocol_name, assignment))
            )
            return out
        group = self.groups.get(group_id)
        if group is None:
            return fail(E.UNKNOWN_MEMBER_ID)
        member = self._member_of(group, generation, member_id, instance_id)
        if isinstance(member, ErrorCode):
            return fail(member)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol
        ):
            return fail(E.INCONSISTENT_GROUP_PROTOCOL)
        if group.state == GroupState.PREPARING_REBALANCE:
            return fail(E.REBALANCE_IN_PROGRESS)
        member.session_deadline = now_ms + member.session_timeout_ms
        if group.state == GroupState.STABLE:
            out.completions.append(
                (
                    waiter,
                    SyncResponse(E.NONE, group.protocol_type, group.protocol, member.assignment),
                )
            )
            return out
        # CompletingRebalance: park until the leader's assignment arrives.
        if member.sync_waiter is not None:
            out.completions.append((member.sync_waiter, SyncResponse(E.REBALANCE_IN_PROGRESS)))
        member.sync_waiter = waiter
        if member_id == group.leader:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            group.rebalance_deadline = None
            group.transition(GroupState.STABLE, now_ms)
            out.records.append(self._group_record(group))
            for m in group.members.values():
                if m.sync_waiter is not None:
                    out.completions.append(
                        (
                            m.sync_waiter,
                            SyncResponse(E.NONE, group.protocol_type, group.protocol, m.assignment),
                        )
                    )
                    m.sync_waiter = None
        return out

    # ---- ConsumerGroupHeartbeat (KIP-848) ----

    def consumer_heartbeat(
        self, req: HeartbeatRequest, version: int, client_id: str, client_host: str, now_ms: int
    ) -> tuple[HeartbeatResponse, Output]:
        out = Output()
        classic = self.groups.get(req.group_id)
        in_use = classic is not None and classic.protocol_type is not None
        upgrading = False
        if classic is not None and in_use and classic.members:
            if req.member_epoch != 0 or not self.consumer.may_upgrade(classic):
                message = f"Group {req.group_id} is not a consumer group."
                return HeartbeatResponse(E.GROUP_ID_NOT_FOUND, message), out
            # Kafka's convertToConsumerGroup, undone below if the heartbeat itself fails
            try:
                conversion = self.consumer.upgrade(classic, self._topics(), now_ms)
            except HeartbeatError as e:
                return HeartbeatResponse(e.code, e.message), out
            upgrading = True
        response, records = self.consumer.heartbeat(
            req, version, client_id, client_host, self._topics(), now_ms
        )
        if upgrading and response.error_code != E.NONE:
            del self.consumer.groups[req.group_id]
            return response, out
        if classic is not None and in_use and response.error_code == E.NONE:
            # The classic group is gone (a consumer group now, or an empty one became one);
            # its offsets stay. Members parked in a rebalance rejoin the consumer group.
            assert classic is not None
            for m in classic.members.values():
                self._fail_waiters(m, E.REBALANCE_IN_PROGRESS, out)
            self._reset_to_standalone(classic)
            out.records.append(
                (classic.partition, encode_group_key(GroupKey(classic.group_id)), None)
            )
            if upgrading:
                out.records.extend(conversion)
                log.info("group %s upgraded from classic to consumer", req.group_id)
        out.records.extend(records)
        self._take_downgrades(now_ms, out)
        return response, out

    def _take_downgrades(self, now_ms: int, out: Output) -> None:
        """Turn the consumer groups that just lost their last consumer-protocol member into
        classic groups (Kafka's convertToClassicGroup): Stable at the group epoch with each
        member's target as its assignment, written, then rebalanced at once so that the
        classic members rejoin."""
        if not self.consumer.downgrades:
            return
        names = {topic_id: name for name, (topic_id, _) in self._topics().items()}
        while self.consumer.downgrades:
            modern, leaving_id = self.consumer.downgrades.pop(0)
            group = self._get_or_create(modern.group_id, now_ms)
            group.members.clear()
            group.static_members.clear()
            group.pending_members.clear()
            group.protocol_type = CONSUMER_PROTOCOL
            group.generation = modern.group_epoch
            group.leader = None
            group.state = GroupState.STABLE
            group.state_timestamp = now_ms
            for m in modern.members.values():
                if m.member_id == leaving_id or m.classic is None:
                    continue
                group.members[m.member_id] = Member(
                    m.member_id,
                    m.instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.classic.session_timeout_ms,
                    list(m.classic.protocols),
                    session_deadline=now_ms + m.classic.session_timeout_ms,
                )
                if m.instance_id is not None:
                    group.static_members[m.instance_id] = m.member_id
                if group.leader is None:
                    group.leader = m.member_id
            group.protocol = group.select_protocol()
            for member in group.members.values():
                target = modern.target.get(member.member_id, {})
                partitions = tuple(
                    sorted((names[t], tuple(sorted(ps))) for t, ps in target.items() if t in names)
                )
                try:
                    schema_version = protocol_version(member.metadata(group.protocol))
                except ProtocolError:
                    schema_version = 0
                member.assignment = encode_assignment(schema_version, partitions)
            out.records.append(self._group_record(group))
            log.info("group %s downgraded from consumer to classic", group.group_id)
            self._prepare_rebalance(group, now_ms, out)

    def consumer_group(self, group_id: str) -> ConsumerGroup | None:
        return self.consumer.groups.get(group_id)

    # ---- Heartbeat, LeaveGroup ----

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None, now_ms: int
    ) -> ErrorCode:
        if not group_id:
            return E.INVALID_GROUP_ID
        modern = self.consumer.groups.get(group_id)
        if modern is not None:
            return self.consumer.classic_heartbeat(
                modern, member_id, instance_id, generation, now_ms
            )
        group = self.groups.get(group_id)
        if group is None:
            return E.UNKNOWN_MEMBER_ID
        member = self._member_of(group, generation, member_id, instance_id)
        if isinstance(member, ErrorCode):
            return member
        member.session_deadline = now_ms + member.session_timeout_ms
        if group.state == GroupState.PREPARING_REBALANCE:
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    def leave(
        self, group_id: str, members: list[tuple[str, str | None]], now_ms: int
    ) -> tuple[ErrorCode, list[ErrorCode], Output]:
        """(group error, per-member errors, output) for a batch of leaving members (KIP-345)."""
        out = Output()
        if not group_id:
            return E.INVALID_GROUP_ID, [], out
        modern = self.consumer.groups.get(group_id)
        if modern is not None:
            errors = self.consumer.classic_leave(
                modern, members, self._topics(), now_ms, out.records
            )
            return E.NONE, errors, out
        group = self.groups.get(group_id)
        if group is None:
            return E.NONE, [E.UNKNOWN_MEMBER_ID] * len(members), out
        errors = []
        for member_id, instance_id in members:
            if instance_id is not None:
                known = group.static_members.get(instance_id)
                if known is None:
                    errors.append(E.UNKNOWN_MEMBER_ID)
                    continue
                if member_id and known != member_id:
                    errors.append(E.FENCED_INSTANCE_ID)
                    continue
                member_id = known
            if member_id in group.pending_members:
                del group.pending_members[member_id]
                self._try_complete_join(group, now_ms, out)
                errors.append(E.NONE)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(E.UNKNOWN_MEMBER_ID)
                continue
            self._remove_and_rebalance(group, member, E.UNKNOWN_MEMBER_ID, now_ms, out)
            errors.append(E.NONE)
        return E.NONE, errors, out

    # ---- offsets ----

    def commit(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        offsets: list[OffsetCommit],
        now_ms: int,
        retention_ms: int = -1,
        api_version: int = 9,
    ) -> tuple[list[ErrorCode], Output]:
        out = Output()
        error = self._validate_commit(
            group_id, generation, member_id, instance_id, now_ms, api_version
        )
        if error != E.NONE:
            return [error] * len(offsets), out
        group = self.groups[group_id]
        errors = []
        for o in offsets:
            metadata = o.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors.append(E.OFFSET_METADATA_TOO_LARGE)
                continue
            expire = now_ms + retention_ms if retention_ms >= 0 else None
            group.offsets[TopicPartition(o.topic, o.partition)] = CommittedOffset(
                o.offset, o.leader_epoch, metadata, now_ms, expire
            )
            out.records.append(
                (
                    group.partition,
                    encode_offset_key(OffsetKey(group_id, o.topic, o.partition)),
                    encode_offset_value(
                        OffsetValue(o.offset, o.leader_epoch, metadata, now_ms, expire)
                    ),
                )
            )
            errors.append(E.NONE)
        return errors, out

    def txn_commit(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation: int,
        member_id: str,
        instance_id: str | None,
        offsets: list[OffsetCommit],
        now_ms: int,
    ) -> tuple[list[ErrorCode], Output]:
        """TxnOffsetCommit: the offsets are written at once as records of the producer's
        transaction (so that a coordinator taking the partition over replays them) and stay
        pending until its marker. An epoch older than one already seen is a fenced
        producer."""
        out = Output()
        known = self.groups.get(group_id)
        pending_before = known.pending_txn.get(producer_id) if known is not None else None
        if pending_before is not None and producer_epoch < pending_before[0]:
            return [E.PRODUCER_FENCED] * len(offsets), out
        error = self._validate_commit(group_id, generation, member_id, instance_id, now_ms, None)
        if error != E.NONE:
            return [error] * len(offsets), out
        group = self.groups[group_id]
        pending = self._pending(group, producer_id, producer_epoch)
        errors = []
        for o in offsets:
            metadata = o.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                errors.append(E.OFFSET_METADATA_TOO_LARGE)
                continue
            pending[TopicPartition(o.topic, o.partition)] = CommittedOffset(
                o.offset, o.leader_epoch, metadata, now_ms
            )
            out.txn_records.append(
                (
                    group.partition,
                    producer_id,
                    producer_epoch,
                    encode_offset_key(OffsetKey(group_id, o.topic, o.partition)),
                    encode_offset_value(OffsetValue(o.offset, o.leader_epoch, metadata, now_ms)),
                )
            )
            errors.append(E.NONE)
        return errors, out

    @staticmethod
    def _pending(
        group: Group, producer_id: int, epoch: int
    ) -> dict[TopicPartition, CommittedOffset]:
        """The offsets pending in `producer_id`'s transaction at `epoch`; a newer epoch means
        the older transaction was aborted."""
        known = group.pending_txn.get(producer_id)
        if known is not None and known[0] == epoch:
            return known[1]
        pending: dict[TopicPartition, CommittedOffset] = {}
        group.pending_txn[producer_id] = (epoch, pending)
        return pending

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> None:
        """The transaction marker of `producer_id` is on this `__consumer_offsets` partition:
        its pending offsets become committed offsets or vanish (nothing more is written: a
        reload replays the marker)."""
        for group in self.groups.values():
            if group.partition != partition:
                continue
            pending = group.pending_txn.pop(producer_id, None)
            if pending is not None and commit:
                group.offsets.update(pending[1])

    def unstable_partitions(self, group_id: str) -> set[TopicPartition]:
        """Partitions with transactional offsets not yet committed or aborted."""
        group = self.groups.get(group_id)
        if group is None:
            return set()
        return {tp for _, pending in group.pending_txn.values() for tp in pending}

    def _validate_commit(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        now_ms: int,
        api_version: int | None,
    ) -> ErrorCode:
        """`api_version`: of OffsetCommit; None for TxnOffsetCommit."""
        modern = self.consumer.groups.get(group_id)
        if modern is not None:
            # `generation` is the member epoch (OffsetCommit v9+ names it so)
            error = self.consumer.validate_commit(modern, member_id, generation, api_version)
            if error == E.NONE:
                self._get_or_create(group_id, now_ms)
            return error
        # An empty group id is valid here: Kafka keeps accepting it for offset storage.
        group = self.groups.get(group_id)
        if group is None:
            if generation >= 0:
                return E.ILLEGAL_GENERATION
            # A standalone consumer (assign + commit) uses the coordinator as an offset store.
            self._get_or_create(group_id, now_ms)
            return E.NONE
        if generation >= 0 or member_id or instance_id is not None:
            member = self._member_of(group, generation, member_id, instance_id)
            if isinstance(member, ErrorCode):
                return member
            if group.state == GroupState.COMPLETING_REBALANCE:
                return E.REBALANCE_IN_PROGRESS
            member.session_deadline = now_ms + member.session_timeout_ms
            return E.NONE
        if not group.is_empty():
            return E.UNKNOWN_MEMBER_ID
        return E.NONE

    def validate_fetch(self, group_id: str, member_id: str | None, member_epoch: int) -> ErrorCode:
        """OffsetFetch v9+ names the member: a consumer group checks it and its epoch (classic
        groups are not checked, DEVIATIONS.md)."""
        modern = self.consumer.groups.get(group_id)
        if modern is None:
            return E.NONE
        return self.consumer.validate_fetch(modern, member_id, member_epoch)

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> list[tuple[str, int, CommittedOffset | None]]:
        """Committed offsets of the given partitions (None: every partition with one)."""
        group = self.groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if partitions is None:
            return [(t, p, o) for (t, p), o in sorted(offsets.items())]
        return [(t, p, offsets.get(TopicPartition(t, p))) for t, p in partitions]

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, list[ErrorCode], Output]:
        """OffsetDelete (KIP-496): offsets of topics the group does not subscribe to."""
        out = Output()
        if not group_id:
            return E.INVALID_GROUP_ID, [], out
        group = self.groups.get(group_id)
        modern = self.consumer.groups.get(group_id)
        if group is None:
            return (E.GROUP_ID_NOT_FOUND if modern is None else E.NONE), [], out
        subscribed: set[str] = set()
        if modern is not None:
            if modern.members:
                subscribed = set(modern.subscription_metadata)
        elif not group.is_empty():
            topics = group.subscribed_topics()
            if topics is None:
                return E.NON_EMPTY_GROUP, [], out
            subscribed = topics
        errors = []
        for tp in partitions:
            if tp.topic in subscribed:
                errors.append(E.GROUP_SUBSCRIBED_TO_TOPIC)
                continue
            if group.offsets.pop(tp, None) is not None:
                out.records.append(self._offset_tombstone(group, tp))
            errors.append(E.NONE)
        return E.NONE, errors, out

    # ---- admin ----

    def delete_groups(self, group_ids: list[str]) -> tuple[list[ErrorCode], Output]:
        out = Output()
        errors = []
        for gid in group_ids:
            group = self.groups.get(gid)
            modern = self.consumer.groups.get(gid)
            if modern is not None:
                if modern.members:
                    errors.append(E.NON_EMPTY_GROUP)
                    continue
                out.records.extend(self.consumer.delete([gid]))
                if group is None:
                    errors.append(E.NONE)
                    continue
            if group is None:
                errors.append(E.GROUP_ID_NOT_FOUND)
                continue
            if not group.is_empty():
                errors.append(E.NON_EMPTY_GROUP)
                continue
            self._delete(group, out)
            errors.append(E.NONE)
        return errors, out

    def _delete(self, group: Group, out: Output) -> None:
        out.records.extend(self._offset_tombstone(group, tp) for tp in group.offsets)
        out.records.append((group.partition, encode_group_key(GroupKey(group.group_id)), None))
        group.state = GroupState.DEAD
        del self.groups[group.group_id]

    # ---- time ----

    def next_deadline(self) -> int:
        """The earliest time at which `tick` has something to do."""
        t = self.consumer.next_deadline(self._next_expiry_check)
        for g in self.groups.values():
            if g.rebalance_deadline is not None:
                t = min(t, g.rebalance_deadline)
            for deadline in g.pending_members.values():
                t = min(t, deadline)
            for m in g.members.values():
                if m.join_waiter is None and m.sync_waiter is None:
                    t = min(t, m.session_deadline)
        return t

    def tick(self, now_ms: int) -> Output:
        """Fire every timer due at `now_ms`: pending-member and session expiry, the end of a
        join phase (extended while new members keep arriving during the initial delay), the
        sync timeout, and offsets retention."""
        out = Output()
        if self.consumer.next_deadline(now_ms + 1) <= now_ms:
            out.records.extend(self.consumer.tick(self._topics(), now_ms))
            self._take_downgrades(now_ms, out)
        for group in list(self.groups.values()):
            for member_id, deadline in list(group.pending_members.items()):
                if deadline <= now_ms:
                    del group.pending_members[member_id]
                    self._try_complete_join(group, now_ms, out)
            for m in list(group.members.values()):
                if m.join_waiter is None and m.sync_waiter is None and m.session_deadline <= now_ms:
                    self._remove_and_rebalance(group, m, E.UNKNOWN_MEMBER_ID, now_ms, out)
            if group.rebalance_deadline is not None and group.rebalance_deadline <= now_ms:
                self._rebalance_timeout(group, now_ms, out)
        if now_ms >= self._next_expiry_check:
            self._next_expiry_check = now_ms + self.config.offsets_retention_check_interval_ms
            self._expire_offsets(now_ms, out)
        return out

    def _rebalance_timeout(self, group: Group, now_ms: int, out: Output) -> None:
        if group.state == GroupState.PREPARING_REBALANCE:
            remaining = group.initial_delay_remaining
            if remaining is not None and group.joined_during_delay and remaining > 0:
                step = min(self.config.initial_rebalance_delay_ms, remaining)
                group.initial_delay_remaining = remaining - step
                group.rebalance_deadline = now_ms + step
                group.joined_during_delay = False
                return
            self._complete_join(group, now_ms, out)
        elif group.state == GroupState.COMPLETING_REBALANCE:
            for m in [m for m in group.members.values() if m.sync_waiter is None]:
                self._remove(group, m)
            self._prepare_rebalance(group, now_ms, out)
            self._try_complete_join(group, now_ms, out)

    def _expire_offsets(self, now_ms: int, out: Output) -> None:
        for group in list(self.groups.values()):
            modern = self.consumer.groups.get(group.group_id)
            if not group.is_empty() or (modern is not None and modern.members):
                continue
            empty_since = group.state_timestamp if group.protocol_type is not None else None
            if modern is not None:
                empty_since = modern.state_timestamp
            for tp in expired(
                group.offsets,
                now_ms=now_ms,
                retention_ms=self.config.offsets_retention_ms,
                empty_since=empty_since,
            ):
                del group.offsets[tp]
                out.records.append(self._offset_tombstone(group, tp))
            if group.state == GroupState.EMPTY and not group.offsets:
                out.records.extend(self.consumer.delete([group.group_id]))
                self._delete(group, out)
