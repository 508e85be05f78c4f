"""ConsumerGroups: the KIP-848 consumer group protocol for the groups whose `__consumer_offsets`
partition this broker leads (the consumer-group half of Kafka's GroupMetadataManager, with its
TargetAssignmentBuilder and CurrentAssignmentBuilder).

Like the classic `GroupCoordinator`, which owns it and routes to it, it is a synchronous state
machine: each operation takes `now_ms` and the cluster's topics, changes the groups in memory
and returns the records that say the same in `__consumer_offsets` (`consumer_records.py`);
replaying those records (`replay`) rebuilds the groups after a restart or a coordinator move.
Committed offsets stay with the owner's offset store, shared by both group types as in Kafka.

A heartbeat (ConsumerGroupHeartbeat):
1. validates the request (INVALID_REQUEST, UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION);
2. finds the group and the member: a new member joins with epoch 0 (GROUP_MAX_SIZE_REACHED
   past group.consumer.max.size); a static member (instance id) that restarts takes over its
   predecessor's assignment once that one left with epoch -2 (UNRELEASED_INSTANCE_ID before);
   an unknown member is UNKNOWN_MEMBER_ID, another member's instance id FENCED_INSTANCE_ID, an
   epoch the member does not have FENCED_MEMBER_EPOCH (its previous epoch is accepted while it
   owns no more than it is assigned: the answer that bumped it may have been lost);
3. bumps the group epoch when the member's subscription or the subscribed topics changed;
4. recomputes the target assignment when the group epoch is ahead of it;
5. moves the member one step towards its target (`consumer_group.reconcile`);
6. answers the member's epoch, the heartbeat interval and, when the member sent a full request
   or its partitions changed, its assignment.

Members leave with epoch -1 (static members for now with -2), or are removed when their session
times out, or when they keep partitions they must revoke past their rebalance timeout.

Online migration (`group.consumer.migration.policy`, Kafka's ConsumerGroupMigrationPolicy):
a consumer-protocol member joining a classic group in use `upgrade`s it — each classic member
keeps its last assignment as its target and goes on speaking the classic protocol
(`classic_join`/`classic_sync`/`classic_heartbeat`/`classic_leave`): its JoinGroup is a
heartbeat carrying its subscription and owned partitions, answered at once with its member
epoch as the generation; its Heartbeat answers REBALANCE_IN_PROGRESS whenever it must rejoin
to move towards its target, which it must do within its rebalance timeout, and it must sync
within it after joining. When the last consumer-protocol member of such a group is removed,
the group is handed back (`downgrades`) for the classic coordinator to rebuild.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from msklite.coordinator.assignors import ASSIGNORS, MemberSpec
from msklite.coordinator.consumer_group import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    Fenced,
    MemberState,
    Owned,
    reconcile,
)
from msklite.coordinator.consumer_protocol import (
    PROTOCOL_TYPE,
    TopicPartitions,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    version,
)
from msklite.coordinator.consumer_records import (
    CURRENT_MEMBER,
    GROUP_METADATA,
    MEMBER_METADATA,
    PARTITION_METADATA,
    TARGET_MEMBER,
    TARGET_METADATA,
    Assignment,
    ClassicMemberMetadata,
    ConsumerKey,
    decode_current_member,
    decode_group_metadata,
    decode_member_metadata,
    decode_partition_metadata,
    decode_target_member,
    decode_target_metadata,
    encode_current_member,
    encode_group_metadata,
    encode_key,
    encode_member_metadata,
    encode_partition_metadata,
    encode_target_member,
    encode_target_metadata,
)
from msklite.coordinator.group import Group
from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol.consumer_group import HeartbeatRequest, HeartbeatResponse

E = ErrorCode
# (partition of __consumer_offsets, key, value or None for a tombstone)
Record = tuple[int, bytes, bytes | None]
# topic name -> (topic id, partition count): the cluster's topics as the coordinator sees them
Topics = Mapping[str, tuple[uuid.UUID, int]]

# Topics a regular expression never matches (Kafka's Topic.isInternal).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
# RE2/J (Kafka's regex engine) has no lookaround, backreferences, atomic groups or
# conditionals; Python's `re` has them all. Such patterns are refused as Kafka refuses them.
_NOT_RE2 = re.compile(r"\(\?(?:[=!>(]|<[=!]|P=)|\\[1-9]|[*+?}][+]")

log = logging.getLogger(__name__)


# group id -> its GROUP config overrides (the controller's)
GroupConfigs = Callable[[str], Mapping[str, str]]


def no_group_configs(group_id: str) -> Mapping[str, str]:
    return {}


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 5000
    max_size: int = 2147483647
    assignors: tuple[str, ...] = ("uniform", "range")
    # group.consumer.migration.policy: disabled, upgrade, downgrade or bidirectional
    migration_policy: str = "bidirectional"
    # group.max.size: a group downgraded to classic must fit in a classic group
    classic_max_size: int = 2147483647


class RemovedMember(Exception):
    """The member was fenced and removed (its records are written): FENCED_MEMBER_EPOCH."""


class HeartbeatError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


def compile_regex(pattern: str) -> re.Pattern[str]:
    """The subscription regex compiled, or HeartbeatError(INVALID_REGULAR_EXPRESSION)."""
    if _NOT_RE2.search(pattern):
        raise HeartbeatError(
            E.INVALID_REGULAR_EXPRESSION,
            f"SubscribedTopicRegex `{pattern}` is not a valid RE2J one.",
        )
    try:
        return re.compile(pattern)
    except re.error as e:
        raise HeartbeatError(
            E.INVALID_REGULAR_EXPRESSION, f"SubscribedTopicRegex `{pattern}` is not valid: {e}."
        ) from None


def _matching(pattern: str, topics: Topics) -> set[str]:
    try:
        regex = compile_regex(pattern)
    except HeartbeatError:
        return set()
    return {t for t in topics if t not in INTERNAL_TOPICS and regex.fullmatch(t)}


def member_topics(member: ConsumerMember, topics: Topics) -> set[str]:
    """The names of existing topics the member subscribes to, by name or by regex."""
    names = {t for t in member.subscribed_topic_names if t in topics}
    if member.subscribed_topic_regex is not None:
        names |= _matching(member.subscribed_topic_regex, topics)
    return names


def _by_id(partitions: TopicPartitions, ids: Mapping[str, uuid.UUID]) -> Assignment:
    """Named partitions as topic ids; topics that no longer exist are dropped."""
    out: dict[uuid.UUID, frozenset[int]] = {}
    for name, ps in partitions:
        if name in ids and ps:
            out[ids[name]] = out.get(ids[name], frozenset()) | frozenset(ps)
    return out


def _epoch_error(member: ConsumerMember, epoch: int) -> ErrorCode:
    """Kafka's validateMemberEpoch: a classic member's generation is its member epoch."""
    if epoch == member.member_epoch:
        return E.NONE
    return E.ILLEGAL_GENERATION if member.classic is not None else E.STALE_MEMBER_EPOCH


def _wire(a: Assignment) -> list[tuple[uuid.UUID, list[int]]]:
    return [(t, sorted(ps)) for t, ps in sorted(a.items()) if ps]


def _subset(owned: list[tuple[uuid.UUID, list[int]]] | None, assigned: Assignment) -> bool:
    if owned is None:
        return False
    return all(p in assigned.get(t, ()) for t, ps in owned for p in ps)


class ConsumerGroups:
    def __init__(
        self,
        config: ConsumerConfig,
        partition_for: Callable[[str], int],
        group_configs: GroupConfigs = no_group_configs,
    ) -> None:
        self.config = config
        self.groups: dict[str, ConsumerGroup] = {}
        # groups removed by a downgrade, with the member whose leaving caused it, for the
        # classic coordinator to take over (drained by it after every operation)
        self.downgrades: list[tuple[ConsumerGroup, str]] = []
        self._partition_for = partition_for
        self._group_configs = group_configs

    # ---- configs: a group's own (GROUP config resources) over the brokers' ----

    def session_timeout_ms(self, group_id: str) -> int:
        own = self._group_configs(group_id).get("consumer.session.timeout.ms")
        return int(own) if own is not None else self.config.session_timeout_ms

    def _session_timeout(self, group_id: str, member: ConsumerMember) -> int:
        if member.classic is not None:
            return member.classic.session_timeout_ms
        return self.session_timeout_ms(group_id)

    def heartbeat_interval_ms(self, group_id: str) -> int:
        own = self._group_configs(group_id).get("consumer.heartbeat.interval.ms")
        return int(own) if own is not None else self.config.heartbeat_interval_ms

    # ---- records ----

    def _key(self, record_type: int, group_id: str, member_id: str | None = None) -> bytes:
        return encode_key(ConsumerKey(record_type, group_id, member_id))

    def _member_records(self, group: ConsumerGroup, m: ConsumerMember, out: list[Record]) -> None:
        out.append(
            (
                group.partition,
                self._key(MEMBER_METADATA, group.group_id, m.member_id),
                encode_member_metadata(m.metadata()),
            )
        )

    def _current_record(self, group: ConsumerGroup, m: ConsumerMember, out: list[Record]) -> None:
        out.append(
            (
                group.partition,
                self._key(CURRENT_MEMBER, group.group_id, m.member_id),
                encode_current_member(m.current()),
            )
        )

    def _epoch_record(self, group: ConsumerGroup, out: list[Record]) -> None:
        out.append(
            (
                group.partition,
                self._key(GROUP_METADATA, group.group_id),
                encode_group_metadata(group.group_epoch),
            )
        )

    def _member_tombstones(self, group: ConsumerGroup, member_id: str, out: list[Record]) -> None:
        out.extend(
            (group.partition, self._key(record_type, group.group_id, member_id), None)
            for record_type in (CURRENT_MEMBER, TARGET_MEMBER, MEMBER_METADATA)
        )

    def group_tombstones(self, group: ConsumerGroup) -> list[Record]:
        """The records that delete the group (Kafka's order: members, then the group's own)."""
        out: list[Record] = []
        for member_id in group.members:
            self._member_tombstones(group, member_id, out)
        out.extend(
            (group.partition, self._key(record_type, group.group_id), None)
            for record_type in (TARGET_METADATA, PARTITION_METADATA, GROUP_METADATA)
        )
        return out

    # ---- ConsumerGroupHeartbeat ----

    def heartbeat(
        self,
        req: HeartbeatRequest,
        version: int,
        client_id: str,
        client_host: str,
        topics: Topics,
        now_ms: int,
    ) -> tuple[HeartbeatResponse, list[Record]]:
        out: list[Record] = []
        try:
            self._validate(req, version)
            if req.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
                return self._leave(req, topics, now_ms, out), out
            return self._heartbeat(req, client_id, client_host, topics, now_ms, out), out
        except HeartbeatError as e:
            # validation runs before any change, so nothing was decided
            return HeartbeatResponse(e.code, e.message), []
        except Fenced as e:
            return HeartbeatResponse(E.FENCED_MEMBER_EPOCH, str(e)), []

    def _validate(self, req: HeartbeatRequest, version: int) -> None:
        def invalid(message: str) -> HeartbeatError:
            return HeartbeatError(E.INVALID_REQUEST, message)

        if not req.group_id:
            raise invalid("GroupId can't be empty.")
        if req.instance_id == "":
            raise invalid("InstanceId can't be empty.")
        if req.rack_id == "":
            raise invalid("RackId can't be empty.")
        if version >= 1 and not req.member_id:
            # KIP-1082: from v1 the client generates its member id
            raise invalid("MemberId can't be empty.")
        epoch = req.member_epoch
        if epoch > 0 or epoch == LEAVE_EPOCH:
            if not req.member_id:
                raise invalid("MemberId can't be empty.")
        elif epoch == 0:
            if req.rebalance_timeout_ms == -1:
                raise invalid("RebalanceTimeoutMs must be provided in first request.")
            if req.topic_partitions is None or req.topic_partitions:
                raise invalid("TopicPartitions must be empty when (re-)joining.")
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                raise invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
                )
        elif epoch == STATIC_LEAVE_EPOCH:
            if not req.member_id:
                raise invalid("MemberId can't be empty.")
            if req.instance_id is None:
                raise invalid("InstanceId can't be null.")
        else:
            raise invalid("MemberEpoch is invalid.")
        if req.server_assignor is not None and req.server_assignor not in self.config.assignors:
            raise HeartbeatError(
                E.UNSUPPORTED_ASSIGNOR,
                f"ServerAssignor {req.server_assignor} is not supported. Supported assignors: "
                f"{', '.join(self.config.assignors)}.",
            )
        if req.subscribed_topic_regex is not None:
            compile_regex(req.subscribed_topic_regex)

    def _find_member(
        self, group: ConsumerGroup, req: HeartbeatRequest, member_id: str
    ) -> tuple[ConsumerMember, ConsumerMember | None]:
        """(the member as known before this heartbeat — a fresh one when it joins —, the
        static member it replaces, if any). Raises HeartbeatError or Fenced; changes nothing."""
        joining = req.member_epoch == 0
        if req.instance_id is None:
            member = group.members.get(member_id)
            if member is None:
                if not joining:
                    raise HeartbeatError(
                        E.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group."
                    )
                return ConsumerMember(member_id), None
            if not joining:
                self._check_epoch(member, req)
            return member, None
        existing_id = group.static_members.get(req.instance_id)
        existing = group.members.get(existing_id) if existing_id is not None else None
        if joining:
            if existing is None:
                if member_id in group.members:
                    return group.members[member_id], None
                return ConsumerMember(member_id), None
            if existing.member_id == member_id:
                return existing, None  # the same member rejoining after it was fenced
            # a classic predecessor need not have left (it cannot say so with epoch -2)
            if existing.member_epoch != STATIC_LEAVE_EPOCH and existing.classic is None:
                raise HeartbeatError(
                    E.UNRELEASED_INSTANCE_ID,
                    f"Static member {member_id} with instance id {req.instance_id} cannot join "
                    f"the group because the instance id is owned by {existing.member_id} member.",
                )
            successor = existing.copy()
            successor.member_id = member_id
            successor.member_epoch = 0
            successor.previous_member_epoch = 0
            return successor, existing
        if existing is None:
            raise HeartbeatError(E.UNKNOWN_MEMBER_ID, f"Instance id {req.instance_id} is unknown.")
        if existing.member_id != member_id:
            raise HeartbeatError(
                E.FENCED_INSTANCE_ID,
                f"Static member {member_id} with instance id {req.instance_id} was fenced by "
                f"member {existing.member_id}.",
            )
        self._check_epoch(existing, req)
        return existing, None

    @staticmethod
    def _check_epoch(member: ConsumerMember, req: HeartbeatRequest) -> None:
        epoch = req.member_epoch
        if epoch > member.member_epoch:
            raise Fenced(
                f"The consumer group member has a greater member epoch ({epoch}) than the one "
                f"known by the group coordinator ({member.member_epoch}). The member must "
                "abandon all its partitions and rejoin."
            )
        if epoch < member.member_epoch and (
            epoch != member.previous_member_epoch
            or not _subset(req.topic_partitions, member.assigned)
        ):
            raise Fenced(
                f"The consumer group member has a smaller member epoch ({epoch}) than the one "
                f"known by the group coordinator ({member.member_epoch}). The member must "
                "abandon all its partitions and rejoin."
            )

    def _heartbeat(
        self,
        req: HeartbeatRequest,
        client_id: str,
        client_host: str,
        topics: Topics,
        now_ms: int,
        out: list[Record],
    ) -> HeartbeatResponse:
        group = self.groups.get(req.group_id)
        if group is None:
            if req.member_epoch != 0:
                raise HeartbeatError(
                    E.UNKNOWN_MEMBER_ID, f"Consumer group {req.group_id} not found."
                )
            group = ConsumerGroup(
                req.group_id, self._partition_for(req.group_id), state_timestamp=now_ms
            )
        member_id = req.member_id or str(uuid.uuid4())  # v0: the coordinator names it
        if len(group.members) >= self.config.max_size and member_id not in group.members:
            raise HeartbeatError(
                E.GROUP_MAX_SIZE_REACHED,
                "The consumer group has reached its maximum capacity of "
                f"{self.config.max_size} members.",
            )
        member, replaced = self._find_member(group, req, member_id)
        updated = member.copy()
        if req.instance_id is not None:
            updated.instance_id = req.instance_id
        if req.rack_id is not None:
            updated.rack_id = req.rack_id
        if req.rebalance_timeout_ms != -1:
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.server_assignor is not None:
            updated.server_assignor = req.server_assignor
        if req.subscribed_topic_names is not None:
            updated.subscribed_topic_names = tuple(req.subscribed_topic_names)
        if req.subscribed_topic_regex is not None:
            updated.subscribed_topic_regex = req.subscribed_topic_regex or None
        updated.client_id = client_id
        updated.client_host = client_host
        # a classic member that comes back with the consumer protocol (Kafka keeps nothing
        # of its classic metadata then)
        updated.classic = None
        try:
            reconciled = self._apply(
                group, member, replaced, updated, req.topic_partitions, topics, now_ms, out
            )
        except RemovedMember as e:
            return HeartbeatResponse(E.FENCED_MEMBER_EPOCH, str(e))

        full = req.member_epoch == 0 or (
            req.rebalance_timeout_ms != -1
            and (req.subscribed_topic_names is not None or req.subscribed_topic_regex is not None)
            and req.topic_partitions is not None
        )
        changed = reconciled.assigned != member.assigned
        return HeartbeatResponse(
            E.NONE,
            member_id=member_id,
            member_epoch=reconciled.member_epoch,
            heartbeat_interval_ms=self.heartbeat_interval_ms(group.group_id),
            assignment=_wire(reconciled.assigned) if full or changed else None,
        )

    def _apply(
        self,
        group: ConsumerGroup,
        member: ConsumerMember,
        replaced: ConsumerMember | None,
        updated: ConsumerMember,
        owned: Owned | None,
        topics: Topics,
        now_ms: int,
        out: list[Record],
    ) -> ConsumerMember:
        """Steps 3-5 of a heartbeat (or of a classic member's JoinGroup): `updated` is
        `member` as the request describes it, `replaced` the static member it takes over.
        Returns the member reconciled one step; raises RemovedMember when it had to be fenced."""
        # Nothing can fail past this point: the group and its records change together.
        self.groups[group.group_id] = group
        member_id = updated.member_id
        if replaced is not None:
            self._member_tombstones(group, replaced.member_id, out)
            group.update_member(replaced, None)
            target = group.target.pop(replaced.member_id, None)
            if target is not None:
                group.target[member_id] = target
                out.append(
                    (
                        group.partition,
                        self._key(TARGET_MEMBER, group.group_id, member_id),
                        encode_target_member(target),
                    )
                )
        is_new = member.member_id not in group.members or replaced is not None
        bump = False
        if is_new or updated.metadata() != member.metadata():
            self._member_records(group, updated, out)
            if (
                updated.subscribed_topic_names != member.subscribed_topic_names
                or updated.subscribed_topic_regex != member.subscribed_topic_regex
            ):
                bump = True
        group.update_member(member if member.member_id in group.members else None, updated)
        if replaced is not None:
            self._current_record(group, updated, out)

        metadata = self._subscription_metadata(group, topics)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            out.append(
                (
                    group.partition,
                    self._key(PARTITION_METADATA, group.group_id),
                    encode_partition_metadata(metadata),
                )
            )
            bump = True
        if bump:
            group.group_epoch += 1
            self._epoch_record(group, out)
        if group.group_epoch > group.assignment_epoch:
            self._update_target(group, topics, out)

        reconciled = group.members[member_id]
        if not reconciled.is_reconciled_to(group.assignment_epoch):
            try:
                stepped = reconcile(
                    reconciled,
                    group.assignment_epoch,
                    group.target.get(member_id, {}),
                    group.partition_epoch,
                    owned,
                )
            except Fenced as e:
                # an unknown state: the member is removed with the records that say so
                self._remove(group, reconciled, topics, now_ms, out)
                raise RemovedMember(str(e)) from None
            if stepped is not reconciled:
                group.update_member(reconciled, stepped)
                self._current_record(group, stepped, out)
                reconciled = stepped
        # Classic members have join and sync timers instead of a revocation deadline.
        if reconciled.state == MemberState.UNREVOKED_PARTITIONS and reconciled.classic is None:
            if reconciled.rebalance_deadline is None:
                reconciled.rebalance_deadline = now_ms + max(reconciled.rebalance_timeout_ms, 0)
        else:
            reconciled.rebalance_deadline = None
        reconciled.session_deadline = now_ms + self._session_timeout(group.group_id, reconciled)
        return reconciled

    def _subscription_metadata(
        self, group: ConsumerGroup, topics: Topics
    ) -> dict[str, tuple[uuid.UUID, int]]:
        names: set[str] = set()
        for m in group.members.values():
            names |= member_topics(m, topics)
        return {n: topics[n] for n in sorted(names)}

    def _update_target(self, group: ConsumerGroup, topics: Topics, out: list[Record]) -> None:
        """The target assignment of the group's epoch (Kafka's TargetAssignmentBuilder): the
        preferred assignor over every member's subscription; a record for each member whose
        target changed, then the new assignment epoch."""
        assignor_name = group.preferred_assignor(self.config.assignors[0])
        assignor = ASSIGNORS[assignor_name]
        specs = {
            m.member_id: MemberSpec(
                frozenset(topics[t][0] for t in member_topics(m, topics)),
                group.target.get(m.member_id, {}),
            )
            for m in group.members.values()
        }
        counts = {topic_id: n for topic_id, n in group.subscription_metadata.values()}
        new = assignor(specs, counts)
        log.info(
            "group %s rebalanced: epoch %d, %d member(s), assignor %s, %d partition(s) assigned "
            "(consumer protocol)",
            group.group_id,
            group.group_epoch,
            len(new),
            assignor_name,
            sum(len(parts) for target in new.values() for parts in target.values()),
        )
        for member_id, target in sorted(new.items()):
            if group.target.get(member_id) != target or member_id not in group.target:
                group.target[member_id] = target
                out.append(
                    (
                        group.partition,
                        self._key(TARGET_MEMBER, group.group_id, member_id),
                        encode_target_member(target),
                    )
                )
        group.assignment_epoch = group.group_epoch
        out.append(
            (
                group.partition,
                self._key(TARGET_METADATA, group.group_id),
                encode_target_metadata(group.assignment_epoch),
            )
        )

    # ---- leaving and removal ----

    def _leave(
        self, req: HeartbeatRequest, topics: Topics, now_ms: int, out: list[Record]
    ) -> HeartbeatResponse:
        group = self.groups.get(req.group_id)
        if group is None:
            raise HeartbeatError(E.GROUP_ID_NOT_FOUND, f"Consumer group {req.group_id} not found.")
        if req.instance_id is None:
            member = group.members.get(req.member_id)
            if member is None:
                raise HeartbeatError(
                    E.UNKNOWN_MEMBER_ID, f"Member {req.member_id} is not a member of the group."
                )
        else:
            member_id = group.static_members.get(req.instance_id)
            member = group.members.get(member_id) if member_id is not None else None
            if member is None:
                raise HeartbeatError(
                    E.UNKNOWN_MEMBER_ID, f"Instance id {req.instance_id} is unknown."
                )
            if member.member_id != req.member_id:
                raise HeartbeatError(
                    E.FENCED_INSTANCE_ID,
                    f"Static member {req.member_id} with instance id {req.instance_id} was "
                    f"fenced by member {member.member_id}.",
                )
            if req.member_epoch == STATIC_LEAVE_EPOCH:
                # Gone for now: its assignment waits for its successor (same instance id)
                # until its session times out.
                left = member.copy()
                left.member_epoch = STATIC_LEAVE_EPOCH
                left.pending_revocation = {}
                left.rebalance_deadline = None
                group.update_member(member, left)
                self._current_record(group, left, out)
                return HeartbeatResponse(
                    E.NONE, member_id=member.member_id, member_epoch=STATIC_LEAVE_EPOCH
                )
        self._remove(group, member, topics, now_ms, out)
        return HeartbeatResponse(E.NONE, member_id=req.member_id, member_epoch=req.member_epoch)

    def _remove(
        self,
        group: ConsumerGroup,
        member: ConsumerMember,
        topics: Topics,
        now_ms: int,
        out: list[Record],
    ) -> None:
        """Fence a member: its records go, its partitions are free, the group epoch moves on.
        When the last consumer-protocol member of a group of classic members goes, the group
        turns classic instead if the migration policy allows it (Kafka's
        validateOnlineDowngradeWithFencedMember): its records are deleted here and the group
        is left in `downgrades` for the classic coordinator to take over."""
        if self._may_downgrade(group, member):
            out.extend(self.group_tombstones(group))
            del self.groups[group.group_id]
            self.downgrades.append((group, member.member_id))
            return
        self._remove_members(group, [member], topics, now_ms, out)

    def _may_downgrade(self, group: ConsumerGroup, leaving: ConsumerMember) -> bool:
        return (
            group.all_classic_except(leaving.member_id)
            and len(group.members) > 1
            and self.config.migration_policy in ("downgrade", "bidirectional")
            and len(group.members) - 1 <= self.config.classic_max_size
        )

    def _remove_members(
        self,
        group: ConsumerGroup,
        members: list[ConsumerMember],
        topics: Topics,
        now_ms: int,
        out: list[Record],
    ) -> None:
        for member in members:
            self._member_tombstones(group, member.member_id, out)
            group.update_member(member, None)
            group.target.pop(member.member_id, None)
        metadata = self._subscription_metadata(group, topics)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            out.append(
                (
                    group.partition,
                    self._key(PARTITION_METADATA, group.group_id),
                    encode_partition_metadata(metadata),
                )
            )
        group.group_epoch += 1
        self._epoch_record(group, out)
        if not group.members:
            group.state_timestamp = now_ms
            # no target to compute for no one: the rebalance ends here
            log.info(
                "group %s rebalanced: epoch %d, empty (consumer protocol)",
                group.group_id,
                group.group_epoch,
            )

    # ---- online upgrade: a classic group becomes a consumer group ----

    def may_upgrade(self, classic: Group) -> bool:
        """Kafka's validateOnlineUpgrade: the policy allows it, the group uses the consumer
        embedded protocol and fits in a consumer group."""
        return (
            self.config.migration_policy in ("upgrade", "bidirectional")
            and classic.protocol_type == PROTOCOL_TYPE
            and len(classic.members) <= self.config.max_size
        )

    def upgrade(self, classic: Group, topics: Topics, now_ms: int) -> list[Record]:
        """The consumer group a classic group in use becomes (Kafka's fromClassicGroup and
        createConsumerGroupRecords): its generation is the group and assignment epoch, each
        member stays with its last assignment as its target, reconciled, and keeps speaking
        the classic protocol. Registers the group and returns its records; raises
        HeartbeatError(GROUP_ID_NOT_FOUND), changing nothing, when a member's embedded
        protocol does not parse."""
        ids = {name: topic_id for name, (topic_id, _) in topics.items()}
        group = ConsumerGroup(
            classic.group_id,
            classic.partition,
            group_epoch=classic.generation,
            assignment_epoch=classic.generation,
            state_timestamp=now_ms,
        )
        for cm in classic.members.values():
            protocol = classic.protocol or (cm.protocols[0][0] if cm.protocols else "")
            try:
                subscription = decode_subscription(cm.metadata(protocol))
                assigned = _by_id(decode_assignment(cm.assignment), ids)
            except ProtocolError:
                raise HeartbeatError(
                    E.GROUP_ID_NOT_FOUND,
                    f"Cannot upgrade the classic group {classic.group_id} to consumer group "
                    "because the embedded consumer protocol is malformed.",
                ) from None
            member = ConsumerMember(
                cm.member_id,
                instance_id=cm.group_instance_id,
                rack_id=subscription.rack_id,
                client_id=cm.client_id,
                client_host=cm.client_host,
                subscribed_topic_names=subscription.topics,
                rebalance_timeout_ms=cm.rebalance_timeout_ms,
                member_epoch=classic.generation,
                previous_member_epoch=classic.generation,
                assigned=assigned,
                classic=ClassicMemberMetadata(cm.session_timeout_ms, tuple(cm.protocols)),
                session_deadline=now_ms + cm.session_timeout_ms,
            )
            group.target[member.member_id] = assigned
            group.update_member(None, member)
        # Kafka writes no subscription metadata here: the joining member's heartbeat does.
        out: list[Record] = []
        for m in group.members.values():
            self._member_records(group, m, out)
        self._epoch_record(group, out)
        out.extend(
            (
                group.partition,
                self._key(TARGET_MEMBER, group.group_id, m.member_id),
                encode_target_member(group.target[m.member_id]),
            )
            for m in group.members.values()
        )
        out.append(
            (
                group.partition,
                self._key(TARGET_METADATA, group.group_id),
                encode_target_metadata(group.assignment_epoch),
            )
        )
        for m in group.members.values():
            self._current_record(group, m, out)
        self.groups[group.group_id] = group
        return out

    # ---- classic members in a consumer group (Kafka's classicGroup*ToConsumerGroup) ----

    def _classic_member(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None
    ) -> ConsumerMember:
        """Kafka's validateConsumerGroupMember plus throwIfMemberDoesNotUseClassicProtocol."""
        if instance_id is None:
            member = group.members.get(member_id)
            if member is None:
                raise HeartbeatError(
                    E.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group."
                )
        else:
            known = group.static_members.get(instance_id)
            member = group.members.get(known) if known is not None else None
            if member is None:
                raise HeartbeatError(
                    E.UNKNOWN_MEMBER_ID,
                    f"Member with instance id {instance_id} is not a member of group "
                    f"{group.group_id}.",
                )
            if member_id and member.member_id != member_id:
                raise HeartbeatError(E.FENCED_INSTANCE_ID)
        if member.classic is None:
            raise HeartbeatError(
                E.UNKNOWN_MEMBER_ID, f"Member {member.member_id} does not use the classic protocol."
            )
        return member

    def _must_rejoin(self, group: ConsumerGroup, member: ConsumerMember, now_ms: int) -> bool:
        """Whether a classic member must JoinGroup again to move towards its target; if so
        it has its rebalance timeout to do it (Kafka's join timeout)."""
        rejoin = (
            member.member_epoch < group.group_epoch
            and member.state != MemberState.UNREVOKED_PARTITIONS
        )
        if rejoin and member.join_deadline is None:
            member.join_deadline = now_ms + max(member.rebalance_timeout_ms, 0)
        return rejoin

    def classic_join(
        self,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        protocols: list[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        client_id: str,
        client_host: str,
        topics: Topics,
        now_ms: int,
        out: list[Record],
    ) -> ConsumerMember:
        """A classic member's JoinGroup (with a member id, or a static one) to a group with
        room for it: it joins or updates its subscription and is reconciled one step at once;
        the answer is its member epoch as the generation. Raises HeartbeatError (changing
        nothing) or RemovedMember."""
        unknown = not member_id
        member_id = member_id or str(uuid.uuid4())
        try:
            subscription = decode_subscription(protocols[0][1])
        except ProtocolError:
            raise HeartbeatError(
                E.INCONSISTENT_GROUP_PROTOCOL, f"Member {member_id}'s subscription is malformed."
            ) from None
        replaced = None
        if instance_id is None:
            member = group.members.get(member_id) or ConsumerMember(member_id)
        elif unknown:
            known = group.static_members.get(instance_id)
            existing = group.members.get(known) if known is not None else None
            if existing is None:
                member = ConsumerMember(member_id)
            else:
                replaced = existing
                member = existing.copy()
                member.member_id = member_id
                member.member_epoch = member.previous_member_epoch = 0
        else:
            known = group.static_members.get(instance_id)
            if known is None:
                raise HeartbeatError(E.UNKNOWN_MEMBER_ID)
            if known != member_id:
                raise HeartbeatError(E.FENCED_INSTANCE_ID)
            member = group.members[known]
        updated = member.copy()
        updated.instance_id = instance_id if instance_id is not None else updated.instance_id
        if subscription.rack_id is not None:
            updated.rack_id = subscription.rack_id
        if rebalance_timeout_ms != -1:
            updated.rebalance_timeout_ms = rebalance_timeout_ms
        updated.subscribed_topic_names = subscription.topics
        updated.client_id = client_id
        updated.client_host = client_host
        updated.classic = ClassicMemberMetadata(session_timeout_ms, tuple(protocols))
        ids = {name: topic_id for name, (topic_id, _) in topics.items()}
        owned = [(t, sorted(ps)) for t, ps in _by_id(subscription.owned, ids).items()]
        reconciled = self._apply(group, member, replaced, updated, owned, topics, now_ms, out)
        reconciled.join_deadline = None
        reconciled.sync_deadline = now_ms + max(rebalance_timeout_ms, 0)
        return reconciled

    def classic_sync(
        self,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        generation: int,
        protocol_type: str | None,
        protocol_name: str | None,
        topics: Topics,
        now_ms: int,
    ) -> bytes:
        """A classic member's SyncGroup: its current assignment in the embedded protocol.
        Raises HeartbeatError."""
        member = self._classic_member(group, member_id, instance_id)
        if generation != member.member_epoch:
            raise HeartbeatError(E.ILLEGAL_GENERATION)
        assert member.classic is not None
        own_name, own_metadata = member.classic.protocols[0]
        if (protocol_type is not None and protocol_type != PROTOCOL_TYPE) or (
            protocol_name is not None and protocol_name != own_name
        ):
            raise HeartbeatError(E.INCONSISTENT_GROUP_PROTOCOL)
        if self._must_rejoin(group, member, now_ms):
            raise HeartbeatError(E.REBALANCE_IN_PROGRESS)
        member.sync_deadline = None
        member.session_deadline = now_ms + member.classic.session_timeout_ms
        names = {topic_id: name for name, (topic_id, _) in topics.items()}
        partitions = tuple(
            (names[t], tuple(sorted(ps)))
            for t, ps in sorted(member.assigned.items(), key=lambda kv: names.get(kv[0], ""))
            if t in names and ps
        )
        try:
            schema_version = version(own_metadata)
        except ProtocolError:
            schema_version = 0
        return encode_assignment(schema_version, partitions)

    def classic_heartbeat(
        self,
        group: ConsumerGroup,
        member_id: str,
        instance_id: str | None,
        generation: int,
        now_ms: int,
    ) -> ErrorCode:
        """A classic member's Heartbeat: REBALANCE_IN_PROGRESS when it should rejoin — the
        group epoch moved past it, it has partitions to revoke, or what it waited for is
        free."""
        try:
            member = self._classic_member(group, member_id, instance_id)
        except HeartbeatError as e:
            return e.code
        if generation != member.member_epoch:
            return E.ILLEGAL_GENERATION
        assert member.classic is not None
        member.session_deadline = now_ms + member.classic.session_timeout_ms
        rejoin = (
            member.member_epoch < group.group_epoch
            or member.state == MemberState.UNREVOKED_PARTITIONS
            or (
                member.state == MemberState.UNRELEASED_PARTITIONS
                and not group.waiting_on_unreleased(member)
            )
        )
        if rejoin and member.join_deadline is None:
            member.join_deadline = now_ms + max(member.rebalance_timeout_ms, 0)
        return E.REBALANCE_IN_PROGRESS if rejoin else E.NONE

    def classic_leave(
        self,
        group: ConsumerGroup,
        members: list[tuple[str, str | None]],
        topics: Topics,
        now_ms: int,
        out: list[Record],
    ) -> list[ErrorCode]:
        """Classic members leaving with LeaveGroup: one epoch bump for all of them (a classic
        member leaving never converts the group)."""
        errors = []
        leaving: dict[str, ConsumerMember] = {}
        for member_id, instance_id in members:
            try:
                member = self._classic_member(group, member_id, instance_id)
            except HeartbeatError as e:
                errors.append(e.code)
                continue
            leaving[member.member_id] = member
            errors.append(E.NONE)
        if leaving:
            self._remove_members(group, list(leaving.values()), topics, now_ms, out)
        return errors

    # ---- offsets (Kafka's ConsumerGroup.validateOffsetCommit / validateOffsetFetch) ----

    def validate_commit(
        self, group: ConsumerGroup, member_id: str, member_epoch: int, api_version: int | None
    ) -> ErrorCode:
        """`api_version` None: a TxnOffsetCommit."""
        if member_epoch < 0 and not group.members:
            return E.NONE
        if api_version is None and member_epoch < 0 and not member_id:
            return E.NONE
        member = group.members.get(member_id)
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        if api_version is not None and api_version < 9 and member.classic is None:
            return E.UNSUPPORTED_VERSION
        return _epoch_error(member, member_epoch)

    def validate_fetch(
        self, group: ConsumerGroup, member_id: str | None, member_epoch: int
    ) -> ErrorCode:
        if member_epoch < 0 and not member_id:
            return E.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return E.UNKNOWN_MEMBER_ID
        return _epoch_error(member, member_epoch)

    # ---- loading ----

    def replay(self, key: ConsumerKey, value: bytes | None, now_ms: int) -> None:
        """Apply one record of `__consumer_offsets`, as written above."""
        group = self.groups.get(key.group_id)
        if group is None:
            if value is None:
                return
            group = self.groups[key.group_id] = ConsumerGroup(
                key.group_id, self._partition_for(key.group_id), state_timestamp=now_ms
            )
        t = key.record_type
        if t == GROUP_METADATA:
            if value is None:
                del self.groups[key.group_id]
            else:
                group.group_epoch = decode_group_metadata(value)
        elif t == PARTITION_METADATA:
            group.subscription_metadata = decode_partition_metadata(value) if value else {}
        elif t == TARGET_METADATA:
            group.assignment_epoch = decode_target_metadata(value) if value else 0
        else:
            assert key.member_id is not None
            old = group.members.get(key.member_id)
            if t == TARGET_MEMBER:
                if value is None:
                    group.target.pop(key.member_id, None)
                else:
                    group.target[key.member_id] = decode_target_member(value)
            elif value is None:
                if t == MEMBER_METADATA and old is not None:
                    group.update_member(old, None)
                elif t == CURRENT_MEMBER and old is not None:
                    cleared = old.copy()
                    cleared.member_epoch = cleared.previous_member_epoch = 0
                    cleared.assigned, cleared.pending_revocation = {}, {}
                    group.update_member(old, cleared)
            else:
                new = old.copy() if old is not None else ConsumerMember(key.member_id)
                if t == MEMBER_METADATA:
                    new.set_metadata(decode_member_metadata(value))
                else:
                    new.set_current(decode_current_member(value))
                group.update_member(old, new)

    def loaded(self, partition: int, now_ms: int) -> None:
        """Timers of the groups just loaded: every member must heartbeat within its session
        timeout; one revoking partitions must finish within its rebalance timeout."""
        for group in self.groups.values():
            if group.partition != partition:
                continue
            for m in group.members.values():
                m.session_deadline = now_ms + self._session_timeout(group.group_id, m)
                if m.state == MemberState.UNREVOKED_PARTITIONS:
                    m.rebalance_deadline = now_ms + max(m.rebalance_timeout_ms, 0)

    def unload(self, partition: int) -> None:
        for gid in [g for g, group in self.groups.items() if group.partition == partition]:
            del self.groups[gid]

    # ---- time ----

    def next_deadline(self, t: int) -> int:
        for g in self.groups.values():
            for m in g.members.values():
                t = min(t, m.session_deadline)
                for deadline in (m.rebalance_deadline, m.join_deadline, m.sync_deadline):
                    if deadline is not None:
                        t = min(t, deadline)
        return t

    def tick(self, topics: Topics, now_ms: int) -> list[Record]:
        """Remove the members whose session expired, who kept partitions to revoke past
        their rebalance timeout, or (classic members) did not rejoin or sync within it."""
        out: list[Record] = []
        for group in list(self.groups.values()):
            for m in list(group.members.values()):
                if self.groups.get(group.group_id) is not group:
                    break  # downgraded to a classic group by the previous removal
                due = [m.session_deadline, m.rebalance_deadline, m.join_deadline, m.sync_deadline]
                if any(d is not None and d <= now_ms for d in due):
                    self._remove(group, m, topics, now_ms, out)
        return out

    def delete(self, group_ids: Iterable[str]) -> list[Record]:
        out: list[Record] = []
        for gid in group_ids:
            group = self.groups.pop(gid, None)
            if group is not None:
                out.extend(self.group_tombstones(group))
        return out
