"""One classic consumer group: its members, generation, selected protocol and committed offsets
(Kafka's GroupMetadata). Plain data plus the small queries the coordinator asks of it; every
transition lives in `coordinator.py`, which owns all groups of the partitions it leads.

States (Kafka's names, as DescribeGroups and ListGroups report them):
Empty → PreparingRebalance → CompletingRebalance → Stable, back to PreparingRebalance on any
membership or protocol change, Empty when the last member goes; Dead once deleted (a Dead
group is removed from the coordinator at once, so it is only ever seen transiently).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from msklite.coordinator.offsets import CommittedOffset
from msklite.errors import ProtocolError
from msklite.protocol.primitives import Reader
from msklite.topic_partition import TopicPartition


class GroupState(StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    # Opaque ids of the JoinGroup / SyncGroup requests parked until the rebalance moves on;
    # the runtime maps them to futures.
    join_waiter: int | None = None
    sync_waiter: int | None = None
    # When the member is removed unless it heartbeats, joins or syncs again.
    session_deadline: int = 0
    # Joined the current rebalance (reset when a rebalance starts).
    joined: bool = False

    def metadata(self, protocol: str) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among `candidates` (Kafka's MemberMetadata.vote)."""
        return next(name for name, _ in self.protocols if name in candidates)

    def same_protocols(self, protocols: list[tuple[str, bytes]]) -> bool:
        return self.protocols == protocols


@dataclass(slots=True)
class Group:
    group_id: str
    partition: int  # of __consumer_offsets
    state: GroupState
    state_timestamp: int
    generation: int = 0
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    # KIP-394: member ids handed out with MEMBER_ID_REQUIRED, not yet joined -> expiry
    pending_members: dict[str, int] = field(default_factory=dict)
    # PreparingRebalance: when the join phase ends; CompletingRebalance: when members that
    # have not synced are dropped. None otherwise.
    rebalance_deadline: int | None = None
    # group.initial.rebalance.delay.ms (Kafka's InitialDelayedJoin): how much longer the first
    # join phase of an empty group may still be extended, and whether anyone joined since.
    initial_delay_remaining: int | None = None
    joined_during_delay: bool = False
    offsets: dict[TopicPartition, CommittedOffset] = field(default_factory=dict)
    # TxnOffsetCommit: producer id -> (its epoch, offsets that become committed when its
    # transaction commits, and vanish when it aborts)
    pending_txn: dict[int, tuple[int, dict[TopicPartition, CommittedOffset]]] = field(
        default_factory=dict
    )

    def is_empty(self) -> bool:
        return not self.members

    def transition(self, state: GroupState, now_ms: int) -> None:
        self.state = state
        self.state_timestamp = now_ms

    def candidate_protocols(self) -> set[str]:
        names: set[str] | None = None
        for m in self.members.values():
            own = set(m.protocol_names())
            names = own if names is None else names & own
        return names or set()

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]]) -> bool:
        """Whether a member with these protocols may join (Kafka's supportsProtocols)."""
        if not protocols:
            return False
        if self.is_empty():
            return bool(protocol_type)
        own = {name for name, _ in protocols}
        return self.protocol_type == protocol_type and bool(self.candidate_protocols() & own)

    def select_protocol(self) -> str:
        """The candidate protocol most members prefer (Kafka's GroupMetadata.selectProtocol);
        ties go to the protocol listed first by the earliest member."""
        candidates = self.candidate_protocols()
        votes = Counter(m.vote(candidates) for m in self.members.values())
        best = max(votes.values())
        return next(
            p for p in (m.vote(candidates) for m in self.members.values()) if votes[p] == best
        )

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.joined for m in self.members.values())

    def max_rebalance_timeout(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to, from their ConsumerProtocolSubscription metadata;
        None when the group is not a consumer group or a subscription does not parse."""
        if self.protocol_type != "consumer" or self.protocol is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            try:
                r = Reader(memoryview(m.metadata(self.protocol)))
                r.int16()  # ConsumerProtocolSubscription version
                topics.update(r.string() for _ in range(r.int32()))
            except ProtocolError:
                return None
        return topics
