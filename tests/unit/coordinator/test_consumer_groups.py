"""KIP-848 consumer groups, driven directly through the coordinator with a manual clock: epochs,
reconciliation, static members, timers, offsets checks, the records and their replay, and a
hypothesis state machine of members against a model of what the clients own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from msklite.coordinator.consumer_coordinator import ConsumerConfig, compile_regex
from msklite.coordinator.consumer_group import ConsumerGroup, ConsumerGroupState, MemberState
from msklite.coordinator.coordinator import (
    CoordinatorConfig,
    GroupCoordinator,
    JoinRequest,
    JoinResponse,
    OffsetCommit,
    Output,
)
from msklite.errors import ErrorCode as E
from msklite.protocol.consumer_group import HeartbeatRequest, HeartbeatResponse

TOPIC = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
SESSION = 45_000
REBALANCE = 60_000


class Harness:
    """One coordinator, the records it wrote, and the cluster's topics."""

    def __init__(self, **consumer: Any) -> None:
        self.topics: dict[str, tuple[uuid.UUID, int]] = {"t": (TOPIC, 6)}
        config = CoordinatorConfig(num_partitions=1, consumer=ConsumerConfig(**consumer))
        self.config = config
        self.group_configs: dict[str, dict[str, str]] = {}
        self.coordinator = GroupCoordinator(
            config, 0, lambda: self.topics, lambda g: self.group_configs.get(g, {})
        )
        self.coordinator.load(0, [], 0)
        self.records: list[tuple[bytes, bytes | None]] = []
        self.now = 0

    def keep(self, out: Output) -> Output:
        self.records += [(k, v) for _, k, v in out.records]
        return out

    def hb(
        self,
        member: str,
        epoch: int,
        owned: list[int] | None = None,
        *,
        group: str = "g",
        topics: list[str] | None = None,
        regex: str | None = None,
        instance: str | None = None,
        assignor: str | None = None,
        version: int = 1,
    ) -> HeartbeatResponse:
        joining = epoch == 0
        req = HeartbeatRequest(
            group_id=group,
            member_id=member,
            member_epoch=epoch,
            instance_id=instance,
            rebalance_timeout_ms=REBALANCE if joining else -1,
            subscribed_topic_names=(topics if topics is not None else ["t"])
            if joining and regex is None
            else topics,
            subscribed_topic_regex=regex,
            server_assignor=assignor,
            topic_partitions=[]
            if joining
            else (None if owned is None else [(TOPIC, sorted(owned))]),
        )
        resp, out = self.coordinator.consumer_heartbeat(req, version, "client", "/h", self.now)
        self.keep(out)
        return resp

    def tick(self, ms: int) -> None:
        self.now += ms
        self.keep(self.coordinator.tick(self.now))

    def group(self, gid: str = "g") -> ConsumerGroup:
        group = self.coordinator.consumer.groups[gid]
        return group

    def reloaded(self) -> GroupCoordinator:
        fresh = GroupCoordinator(self.config, self.now, lambda: self.topics)
        fresh.load(0, [(k, v, -1, -1, -1) for k, v in self.records], self.now)
        return fresh


def partitions(resp: HeartbeatResponse) -> set[int]:
    assert resp.assignment is not None
    return {p for _, ps in resp.assignment for p in ps}


def snapshot(group: ConsumerGroup) -> tuple[object, ...]:
    members = {
        m.member_id: (
            m.instance_id,
            m.subscribed_topic_names,
            m.member_epoch,
            m.previous_member_epoch,
            m.state,
            m.assigned,
            m.pending_revocation,
        )
        for m in group.members.values()
    }
    return (
        group.group_epoch,
        group.assignment_epoch,
        members,
        group.target,
        group.subscription_metadata,
        group.partition_owners,
        group.static_members,
    )


def assert_replays(h: Harness) -> None:
    fresh = h.reloaded().consumer.groups
    live = h.coordinator.consumer.groups
    assert set(fresh) == set(live)
    for gid, group in live.items():
        assert snapshot(fresh[gid]) == snapshot(group)


def test_first_member_gets_everything_and_the_records_say_so() -> None:
    h = Harness()
    resp = h.hb("a", 0)
    assert (resp.error_code, resp.member_id, resp.member_epoch) == (E.NONE, "a", 1)
    assert resp.heartbeat_interval_ms == 5000
    assert partitions(resp) == set(range(6))
    # Kafka's record types in its order: subscription, topics metadata, group epoch, target
    # of the member, assignment epoch, the member's current assignment.
    assert [int.from_bytes(k[:2]) for k, _ in h.records] == [5, 4, 3, 7, 6, 8]
    assert h.group().state() == ConsumerGroupState.STABLE
    assert_replays(h)
    # A heartbeat with nothing new: no records, no assignment in the answer.
    before = len(h.records)
    resp = h.hb("a", 1, owned=list(range(6)))
    assert (resp.member_epoch, resp.assignment) == (1, None)
    assert len(h.records) == before


def test_a_joining_member_waits_for_the_owner_to_revoke() -> None:
    h = Harness()
    h.hb("a", 0)
    joined = h.hb("b", 0)
    assert joined.member_epoch == 2
    assert partitions(joined) == set()  # all of it still owned by a
    assert h.group().state() == ConsumerGroupState.RECONCILING

    # a is told what it keeps (revoke before assign), at its old epoch
    revoke = h.hb("a", 1, owned=list(range(6)))
    kept = partitions(revoke)
    assert revoke.member_epoch == 1 and len(kept) == 3
    assert h.group().members["a"].state == MemberState.UNREVOKED_PARTITIONS
    # b asks again: still nothing free
    assert h.hb("b", 2, owned=[]).assignment is None
    # a has revoked: it moves to the new epoch; b then gets the rest
    done = h.hb("a", 1, owned=sorted(kept))
    assert (done.member_epoch, done.assignment) == (2, None)
    got = h.hb("b", 2, owned=[])
    assert partitions(got) == set(range(6)) - kept
    assert h.group().state() == ConsumerGroupState.STABLE
    assert_replays(h)


def test_member_epoch_checks() -> None:
    h = Harness()
    h.hb("a", 0)
    h.hb("b", 0)
    assert h.hb("a", 5, owned=[]).error_code == E.FENCED_MEMBER_EPOCH
    assert h.hb("nobody", 1, owned=[]).error_code == E.UNKNOWN_MEMBER_ID
    assert h.hb("a", 1, owned=[0], group="missing").error_code == E.UNKNOWN_MEMBER_ID
    # b is at epoch 2; its previous epoch (0) is accepted while it owns no more than assigned
    assert h.hb("b", 0, owned=[]).error_code == E.NONE
    h.hb("a", 1, owned=list(range(6)))
    h.hb("a", 1, owned=sorted(h.group().members["a"].assigned[TOPIC]))
    # a moved to epoch 2 (previous 1): epoch 1 with a partition it no longer has is fenced
    gone = next(iter(h.group().members["b"].assigned.get(TOPIC, {0, 1, 2, 3, 4, 5}) - set()))
    assert h.hb("a", 1, owned=[gone]).error_code in (E.FENCED_MEMBER_EPOCH, E.NONE)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"group": ""}, E.INVALID_REQUEST),
        ({"instance": ""}, E.INVALID_REQUEST),
        ({"assignor": "sticky"}, E.UNSUPPORTED_ASSIGNOR),
        ({"regex": "(?=t)t"}, E.INVALID_REGULAR_EXPRESSION),
        ({"regex": "(t"}, E.INVALID_REGULAR_EXPRESSION),
        ({"regex": r"(a)\1"}, E.INVALID_REGULAR_EXPRESSION),
    ],
)
def test_invalid_heartbeats(kwargs: dict[str, Any], code: E) -> None:
    h = Harness()
    resp = h.hb("a", 0, **kwargs)
    assert resp.error_code == code
    assert h.records == [] and h.coordinator.consumer.groups == {}


def test_v1_needs_a_member_id_and_v0_gets_one() -> None:
    h = Harness()
    assert h.hb("", 0).error_code == E.INVALID_REQUEST
    resp = h.hb("", 0, version=0)
    assert resp.error_code == E.NONE and uuid.UUID(resp.member_id or "")


def test_re2_syntax() -> None:
    for ok in [r"t.*", r"(?i)T", r"[a-z]+\d", r"(?P<name>x)", r"a{2,3}"]:
        compile_regex(ok)
    for refused in [r"(?!x)", r"(?<=a)b", r"(?>a)", r"a++", r"(?P=n)", r"(?(1)a|b)"]:
        with pytest.raises(Exception, match="RE2J"):
            compile_regex(refused)


def test_group_max_size() -> None:
    h = Harness(max_size=1)
    h.hb("a", 0)
    assert h.hb("b", 0).error_code == E.GROUP_MAX_SIZE_REACHED
    assert h.hb("a", 1, owned=list(range(6))).error_code == E.NONE


def test_range_assignor_by_member_choice() -> None:
    h = Harness()
    h.hb("a", 0, assignor="range")
    h.hb("b", 0, assignor="range")
    group = h.group()
    assert group.target == {
        "a": {TOPIC: frozenset({0, 1, 2})},
        "b": {TOPIC: frozenset({3, 4, 5})},
    }


def test_static_member_restart_keeps_assignment_without_a_rebalance() -> None:
    h = Harness()
    h.hb("a", 0, instance="i-a")
    h.hb("b", 0, instance="i-b")
    h.hb("a", 1, owned=list(range(6)), instance="i-a")
    # (the wrong instance id names another member: fenced)
    assert h.hb("a", 1, owned=[], instance="i-b").error_code == E.FENCED_INSTANCE_ID
    h.hb("a", 1, owned=sorted(h.group().members["a"].assigned[TOPIC]), instance="i-a")
    b_has = partitions(h.hb("b", 2, owned=[], instance="i-b"))
    epoch = h.group().group_epoch

    # a new incarnation while the old one is still in: UNRELEASED_INSTANCE_ID
    assert h.hb("b2", 0, instance="i-b").error_code == E.UNRELEASED_INSTANCE_ID
    left = h.hb("b", -2, instance="i-b")
    assert (left.error_code, left.member_epoch) == (E.NONE, -2)
    back = h.hb("b2", 0, instance="i-b")
    assert back.error_code == E.NONE and partitions(back) == b_has
    assert back.member_epoch == epoch
    assert h.group().group_epoch == epoch  # no rebalance
    assert set(h.group().members) == {"a", "b2"}
    assert_replays(h)


def test_session_timeout_removes_a_silent_member() -> None:
    h = Harness(session_timeout_ms=SESSION)
    h.hb("a", 0)
    h.hb("b", 0)
    h.tick(SESSION - 1)
    h.hb("a", 1, owned=list(range(6)))
    h.tick(1)  # b's session is over; a heartbeated in time
    assert set(h.group().members) == {"a"}
    assert h.group().group_epoch == 3
    assert_replays(h)


def test_a_groups_own_configs_win() -> None:
    h = Harness(session_timeout_ms=SESSION)
    h.group_configs["g"] = {
        "consumer.session.timeout.ms": "50000",
        "consumer.heartbeat.interval.ms": "1234",
    }
    assert h.hb("a", 0).heartbeat_interval_ms == 1234
    assert h.hb("b", 0, group="other").heartbeat_interval_ms == 5000
    h.tick(SESSION)
    assert set(h.group().members) == {"a"}  # the group's longer session
    assert "b" not in h.group("other").members
    h.tick(50000 - SESSION)
    assert h.group().members == {}


def test_rebalance_timeout_removes_a_member_that_does_not_revoke() -> None:
    h = Harness(session_timeout_ms=10 * REBALANCE)
    h.hb("a", 0)
    h.hb("b", 0)
    h.hb("a", 1, owned=list(range(6)))
    assert h.group().members["a"].state == MemberState.UNREVOKED_PARTITIONS
    for _ in range(3):
        h.tick(REBALANCE // 3 - 1)
        h.hb("b", 2, owned=[])
        h.hb("a", 1, owned=list(range(6)))  # still holding what it must give up
    h.tick(10)
    assert set(h.group().members) == {"b"}
    assert partitions(h.hb("b", 2, owned=[])) == set(range(6))


def test_leave_frees_partitions() -> None:
    h = Harness()
    h.hb("a", 0)
    left = h.hb("a", -1)
    assert (left.error_code, left.member_epoch) == (E.NONE, -1)
    assert h.group().state() == ConsumerGroupState.EMPTY
    assert h.hb("a", -1).error_code == E.UNKNOWN_MEMBER_ID
    assert_replays(h)


def test_offset_commit_and_fetch_checks() -> None:
    h = Harness()
    h.hb("a", 0)
    c = h.coordinator
    offsets = [OffsetCommit("t", 0, 10)]
    assert c.commit("g", 1, "a", None, offsets, h.now)[0] == [E.NONE]
    assert c.commit("g", 0, "a", None, offsets, h.now)[0] == [E.STALE_MEMBER_EPOCH]
    assert c.commit("g", 1, "x", None, offsets, h.now)[0] == [E.UNKNOWN_MEMBER_ID]
    assert c.commit("g", -1, "", None, offsets, h.now)[0] == [E.UNKNOWN_MEMBER_ID]
    assert c.commit("g", 1, "a", None, offsets, h.now, api_version=8)[0] == [E.UNSUPPORTED_VERSION]
    assert c.validate_fetch("g", "a", 1) == E.NONE
    assert c.validate_fetch("g", "a", 0) == E.STALE_MEMBER_EPOCH
    assert c.validate_fetch("g", "x", 1) == E.UNKNOWN_MEMBER_ID
    assert c.validate_fetch("g", None, -1) == E.NONE
    h.hb("a", -1)
    # an empty group takes commits from anyone (admin tools)
    assert c.commit("g", -1, "", None, offsets, h.now)[0] == [E.NONE]
    assert c.fetch_offsets("g", None)[0][2] is not None


def test_an_empty_consumer_group_gives_way_to_a_classic_one() -> None:
    h = Harness()
    h.hb("a", 0)
    # only the consumer embedded protocol joins a consumer group (test_migration.py)
    connect = JoinRequest("g", "", None, 10_000, 10_000, "connect", [("default", b"")])
    out = h.coordinator.join(connect, 1, h.now)
    assert out.completions == [(1, JoinResponse(E.INCONSISTENT_GROUP_PROTOCOL, ""))]
    join = JoinRequest("g", "", None, 10_000, 10_000, "consumer", [("range", b"")])
    # once empty, the consumer group gives way to a classic one (tombstones written)
    h.hb("a", -1)
    out = h.keep(h.coordinator.join(join, 2, h.now))
    assert out.completions[0][1].error == E.MEMBER_ID_REQUIRED
    assert "g" not in h.coordinator.consumer.groups
    assert_replays(h)


# ---- the state machine ----

MEMBERS = ["m0", "m1", "m2", "m3"]


class ConsumerGroupMachine(RuleBasedStateMachine):
    """Members join, heartbeat, leave and crash in any order; the model is what each client
    owns (it takes its latest assignment at once, revoking what is no longer in it)."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(session_timeout_ms=SESSION)
        self.epoch: dict[str, int] = {}  # the epoch each live client knows
        self.owned: dict[str, set[int]] = {}

    def _apply(self, member: str, resp: HeartbeatResponse) -> None:
        assert resp.error_code == E.NONE, resp
        self.epoch[member] = resp.member_epoch
        if resp.assignment is not None:
            self.owned[member] = partitions(resp)

    @rule(member=st.sampled_from(MEMBERS))
    def join(self, member: str) -> None:
        if member in self.epoch:
            return
        self.owned[member] = set()
        self._apply(member, self.h.hb(member, 0))

    @rule(member=st.sampled_from(MEMBERS))
    def heartbeat(self, member: str) -> None:
        if member not in self.epoch:
            return
        self._apply(member, self.h.hb(member, self.epoch[member], sorted(self.owned[member])))

    @rule(member=st.sampled_from(MEMBERS))
    def leave(self, member: str) -> None:
        if member not in self.epoch:
            return
        assert self.h.hb(member, -1).error_code == E.NONE
        del self.epoch[member], self.owned[member]

    @rule(member=st.sampled_from(MEMBERS))
    def crash(self, member: str) -> None:
        """The client dies; the coordinator notices when its session runs out."""
        if member not in self.epoch:
            return
        del self.epoch[member], self.owned[member]
        for step in (SESSION // 2, SESSION // 2 + 1):
            self.h.tick(step)
            for other in self.epoch:  # the others keep their sessions alive
                self.heartbeat(other)
        assert member not in self.h.group().members

    @rule(count=st.integers(min_value=1, max_value=12))
    def topic_grows(self, count: int) -> None:
        if count > self.h.topics["t"][1]:
            self.h.topics["t"] = (TOPIC, count)

    @precondition(lambda self: bool(self.epoch))
    @rule()
    def settle(self) -> None:
        """Heartbeats converge: every client ends owning its target, the group Stable."""
        for _ in range(6):
            for member in list(self.epoch):
                self.heartbeat(member)
        group = self.h.group()
        assert group.state() == ConsumerGroupState.STABLE
        for member, owned in self.owned.items():
            assert owned == set(group.target.get(member, {}).get(TOPIC, frozenset()))
        sizes = [len(o) for o in self.owned.values()]
        assert sum(sizes) == self.h.topics["t"][1] and max(sizes) - min(sizes) <= 1

    @invariant()
    def no_partition_has_two_owners(self) -> None:
        seen: set[int] = set()
        for owned in self.owned.values():
            assert not owned & seen
            seen |= owned

    @invariant()
    def epochs_and_targets_hold(self) -> None:
        groups = self.h.coordinator.consumer.groups
        if "g" not in groups:
            return
        group = groups["g"]
        assert set(group.members) == set(self.epoch)
        assert group.assignment_epoch <= group.group_epoch
        targets: set[int] = set()
        for m in group.members.values():
            assert m.member_epoch <= group.assignment_epoch
            target = group.target.get(m.member_id, {}).get(TOPIC, frozenset())
            assert not target & targets
            targets |= target
            if m.member_epoch == group.assignment_epoch:
                assert m.assigned.get(TOPIC, frozenset()) <= target
            # the coordinator never thinks a client owns less than it does
            assert self.owned[m.member_id] <= m.assigned.get(TOPIC, frozenset()) | (
                m.pending_revocation.get(TOPIC, frozenset())
            )

    @invariant()
    def records_replay_to_the_same_state(self) -> None:
        assert_replays(self.h)


ConsumerGroupMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConsumerGroupMachine = ConsumerGroupMachine.TestCase
