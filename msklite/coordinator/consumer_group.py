"""One KIP-848 consumer group (Kafka's ConsumerGroup and ConsumerGroupMember) and the
reconciliation of one member towards its target (Kafka's CurrentAssignmentBuilder). Plain data
and pure functions; every transition lives in `consumer_coordinator.py`.

Epochs: the group epoch is bumped by every change of membership or subscriptions; the target
assignment is recomputed for it (the assignment epoch catches up); each member then converges
to its target one heartbeat at a time, its member epoch reaching the assignment epoch once it
owns what it should. A member first revokes what it must give up (UNREVOKED_PARTITIONS: it keeps
its epoch and gets only what it may keep), then receives what is free; partitions still owned
by another member come later (UNRELEASED_PARTITIONS).

Group states (Kafka's names): Empty (no members), Assigning (the target lags the group epoch),
Reconciling (a member has not reached the target), Stable.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from msklite.coordinator.consumer_records import (
    Assignment,
    ClassicMemberMetadata,
    CurrentAssignment,
    MemberMetadata,
)

# The member epochs of a leaving member: -1 leaves for good, -2 (a static member) for now.
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

# (topic id, partitions) as the heartbeat carries them
Owned = list[tuple[uuid.UUID, list[int]]]


class MemberState(IntEnum):
    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


class ConsumerGroupState(StrEnum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    rebalance_timeout_ms: int = -1
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    # a member speaking the classic protocol (JoinGroup/SyncGroup/Heartbeat) in this group
    classic: ClassicMemberMetadata | None = None
    # timers on the injected clock (not persisted: set again when the group is loaded)
    session_deadline: int = 0
    rebalance_deadline: int | None = None
    # a classic member told to rejoin must JoinGroup, one that joined must SyncGroup, by then
    join_deadline: int | None = None
    sync_deadline: int | None = None

    def metadata(self) -> MemberMetadata:
        return MemberMetadata(
            self.instance_id,
            self.rack_id,
            self.client_id,
            self.client_host,
            self.subscribed_topic_names,
            self.subscribed_topic_regex,
            self.rebalance_timeout_ms,
            self.server_assignor,
            self.classic,
        )

    def set_metadata(self, m: MemberMetadata) -> None:
        self.instance_id = m.instance_id
        self.rack_id = m.rack_id
        self.client_id = m.client_id
        self.client_host = m.client_host
        self.subscribed_topic_names = m.subscribed_topic_names
        self.subscribed_topic_regex = m.subscribed_topic_regex
        self.rebalance_timeout_ms = m.rebalance_timeout_ms
        self.server_assignor = m.server_assignor
        self.classic = m.classic

    def current(self) -> CurrentAssignment:
        return CurrentAssignment(
            self.member_epoch,
            self.previous_member_epoch,
            int(self.state),
            self.assigned,
            self.pending_revocation,
        )

    def set_current(self, c: CurrentAssignment) -> None:
        self.member_epoch = c.member_epoch
        self.previous_member_epoch = c.previous_member_epoch
        known = c.state in {s.value for s in MemberState}
        self.state = MemberState(c.state) if known else MemberState.UNKNOWN
        self.assigned = c.assigned
        self.pending_revocation = c.pending_revocation

    def copy(self) -> ConsumerMember:
        return dataclasses.replace(self)

    def is_reconciled_to(self, epoch: int) -> bool:
        return self.state == MemberState.STABLE and self.member_epoch == epoch


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    partition: int  # of __consumer_offsets
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    target: dict[str, Assignment] = field(default_factory=dict)
    # subscribed topic name -> (topic id, partition count) when the group epoch was last bumped
    subscription_metadata: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    # (topic id, partition) -> (member id, member epoch) of the member that owns it (assigned
    # or being revoked)
    partition_owners: dict[tuple[uuid.UUID, int], tuple[str, int]] = field(default_factory=dict)
    # when the group last became empty (offsets retention counts from there)
    state_timestamp: int = 0

    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch != self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(not m.is_reconciled_to(self.assignment_epoch) for m in self.members.values()):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def partition_epoch(self, topic_id: uuid.UUID, partition: int) -> int:
        owner = self.partition_owners.get((topic_id, partition))
        return -1 if owner is None else owner[1]

    def update_member(self, old: ConsumerMember | None, new: ConsumerMember | None) -> None:
        """Replace `old` by `new` (either may be None), keeping the ownership map and the
        static-member index in step."""
        if old is not None:
            for a in (old.assigned, old.pending_revocation):
                for topic_id, partitions in a.items():
                    for p in partitions:
                        owner = self.partition_owners.get((topic_id, p))
                        if owner is not None and owner[0] == old.member_id:
                            del self.partition_owners[(topic_id, p)]
            self.members.pop(old.member_id, None)
            if (
                old.instance_id is not None
                and self.static_members.get(old.instance_id) == old.member_id
            ):
                del self.static_members[old.instance_id]
        if new is not None:
            for a in (new.assigned, new.pending_revocation):
                for topic_id, partitions in a.items():
                    for p in partitions:
                        self.partition_owners[(topic_id, p)] = (new.member_id, new.member_epoch)
            self.members[new.member_id] = new
            if new.instance_id is not None:
                self.static_members[new.instance_id] = new.member_id

    def classic_members(self) -> int:
        return sum(1 for m in self.members.values() if m.classic is not None)

    def all_classic_except(self, member_id: str) -> bool:
        """Whether every member but `member_id`, a consumer-protocol member, speaks the classic
        protocol (Kafka's allMembersUseClassicProtocolExcept)."""
        leaving = self.members.get(member_id)
        return (
            leaving is not None
            and leaving.classic is None
            and self.classic_members() == len(self.members) - 1
        )

    def supports_classic(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Whether a classic member may join (Kafka's supportsClassicProtocols): the consumer
        protocol type, and a protocol every classic member already supports."""
        if protocol_type != "consumer" or not protocols:
            return False
        supported = [
            {own for own, _ in m.classic.protocols}
            for m in self.members.values()
            if m.classic is not None
        ]
        return any(all(name in own for own in supported) for name, _ in protocols)

    def waiting_on_unreleased(self, member: ConsumerMember) -> bool:
        """Whether a member with unreleased partitions still waits for another to give one up
        (Kafka's waitingOnUnreleasedPartition)."""
        if member.state != MemberState.UNRELEASED_PARTITIONS:
            return False
        for topic_id, partitions in self.target.get(member.member_id, {}).items():
            have = member.assigned.get(topic_id, frozenset())
            if any(p not in have and self.partition_epoch(topic_id, p) != -1 for p in partitions):
                return True
        return False

    def preferred_assignor(self, default: str) -> str:
        """The server assignor most members ask for (ties: the first asked), else `default`."""
        votes: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor is not None:
                votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
        return max(votes, key=lambda a: votes[a]) if votes else default


def _owns_any(owned: Owned | None, partitions: Assignment) -> bool:
    """Whether the member still reports owning one of `partitions`; a member that did not
    say (owned None) is assumed to."""
    if owned is None:
        return True
    return any(p in partitions.get(topic_id, ()) for topic_id, ps in owned for p in ps)


def reconcile(
    member: ConsumerMember,
    target_epoch: int,
    target: Assignment,
    partition_epoch: Callable[[uuid.UUID, int], int],
    owned: Owned | None,
) -> ConsumerMember:
    """The member's next step towards `target` (Kafka's CurrentAssignmentBuilder.build); a
    new object when anything changed, `member` itself otherwise. Raises _Fenced for a member
    in an unknown state that still claims partitions."""
    if member.state == MemberState.STABLE:
        if member.member_epoch != target_epoch:
            return _next(member, member.member_epoch, target_epoch, target, partition_epoch, owned)
        return member
    if member.state == MemberState.UNREVOKED_PARTITIONS:
        if _owns_any(owned, member.pending_revocation):
            return member
        return _next(member, member.member_epoch + 1, target_epoch, target, partition_epoch, owned)
    if member.state == MemberState.UNRELEASED_PARTITIONS:
        return _next(member, member.member_epoch, target_epoch, target, partition_epoch, owned)
    if owned is None or owned:
        raise Fenced("the member is in an unknown state; it must abandon its partitions and rejoin")
    return _next(member, target_epoch, target_epoch, target, partition_epoch, owned)


class Fenced(Exception):
    """FENCED_MEMBER_EPOCH."""


def _next(
    member: ConsumerMember,
    member_epoch: int,
    target_epoch: int,
    target: Assignment,
    partition_epoch: Callable[[uuid.UUID, int], int],
    owned: Owned | None,
) -> ConsumerMember:
    unreleased = False
    assigned: dict[uuid.UUID, frozenset[int]] = {}
    revoking: dict[uuid.UUID, frozenset[int]] = {}
    pending: dict[uuid.UUID, frozenset[int]] = {}
    for topic_id in set(target) | set(member.assigned):
        want = target.get(topic_id, frozenset())
        have = member.assigned.get(topic_id, frozenset())
        keep = have & want
        to_assign = want - keep
        free = frozenset(p for p in to_assign if partition_epoch(topic_id, p) == -1)
        unreleased = unreleased or free != to_assign
        if keep:
            assigned[topic_id] = keep
        if have - keep:
            revoking[topic_id] = have - keep
        if free:
            pending[topic_id] = free
    new = member.copy()
    new.previous_member_epoch = member.member_epoch
    if revoking and _owns_any(owned, revoking):
        new.state = MemberState.UNREVOKED_PARTITIONS
        new.member_epoch = member_epoch
        new.assigned = assigned
        new.pending_revocation = revoking
        return new
    for topic_id, ps in pending.items():
        assigned[topic_id] = assigned.get(topic_id, frozenset()) | ps
    new.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
    new.member_epoch = target_epoch
    new.assigned = assigned
    new.pending_revocation = {}
    return new
