"""Online conversion between classic and consumer groups (KIP-848's
`group.consumer.migration.policy`), and classic members living in a consumer group, driven
through the coordinator with a manual clock: each policy against upgrade and downgrade, the
refusals, the REBALANCE_IN_PROGRESS signalling that moves classic members towards their
target, their timers, offsets across conversions, and the records (replayed after each)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from msklite.coordinator.consumer_group import ConsumerGroupState, ConsumerMember, MemberState
from msklite.coordinator.consumer_protocol import decode_assignment, encode_assignment
from msklite.coordinator.consumer_records import (
    CURRENT_MEMBER,
    GROUP_METADATA,
    MEMBER_METADATA,
    PARTITION_METADATA,
    TARGET_MEMBER,
    TARGET_METADATA,
    ClassicMemberMetadata,
    MemberMetadata,
    decode_member_metadata,
    encode_member_metadata,
)
from msklite.coordinator.coordinator import (
    JoinRequest,
    JoinResponse,
    OffsetCommit,
    Output,
    SyncResponse,
)
from msklite.coordinator.group import GroupState
from msklite.coordinator.records import GROUP_KEY_VERSION, GroupKey, decode_group_value, decode_key
from msklite.errors import ErrorCode as E
from tests.unit.coordinator.test_consumer_groups import (
    REBALANCE,
    SESSION,
    TOPIC,
    Harness,
    assert_replays,
)

CLASSIC_SESSION = 10_000
POLICIES = ["disabled", "upgrade", "downgrade", "bidirectional"]


def subscription(owned: Sequence[int] = (), topics: tuple[str, ...] = ("t",)) -> bytes:
    """ConsumerProtocolSubscription v1: topics, no user data, owned partitions of `t`."""
    out = struct.pack(">hi", 1, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    out += struct.pack(">i", -1)
    if not owned:
        return out + struct.pack(">i", 0)
    out += struct.pack(">ih", 1, 1) + b"t" + struct.pack(">i", len(owned))
    return out + b"".join(struct.pack(">i", p) for p in owned)


def assignment(partitions: list[int]) -> bytes:
    return encode_assignment(1, (("t", tuple(partitions)),) if partitions else ())


def parts(data: bytes) -> set[int]:
    return {p for _, ps in decode_assignment(data) for p in ps}


class Mixed(Harness):
    """The consumer-group harness plus classic clients: JoinGroup/SyncGroup/Heartbeat."""

    def __init__(self, policy: str = "bidirectional", **consumer: Any) -> None:
        super().__init__(migration_policy=policy, **consumer)
        self.responses: dict[int, JoinResponse | SyncResponse] = {}
        self.waiter = 0
        self.ids: dict[str, str] = {}  # client name -> the member id the classic group gave

    def id(self, name: str) -> str:
        return self.ids.get(name, name)

    def m(self, name: str) -> ConsumerMember:
        return self.group().members[self.id(name)]

    def keep(self, out: Output) -> Output:
        super().keep(out)
        for waiter, response in out.completions:
            assert waiter not in self.responses, "a request answered twice"
            self.responses[waiter] = response
        return out

    def cjoin(
        self,
        member: str,
        owned: Sequence[int] = (),
        *,
        protocol_type: str = "consumer",
        instance: str | None = None,
        known: bool = False,
        client: str = "",
    ) -> int:
        """A classic JoinGroup; returns its waiter id."""
        self.waiter += 1
        req = JoinRequest(
            "g",
            self.id(member),
            instance,
            CLASSIC_SESSION,
            REBALANCE,
            protocol_type,
            [("range", subscription(owned))],
            client_id=client or member,
            require_known_member_id=known,
        )
        self.keep(self.coordinator.join(req, self.waiter, self.now))
        return self.waiter

    def joined(self, waiter: int) -> JoinResponse:
        resp = self.responses[waiter]
        assert isinstance(resp, JoinResponse)
        return resp

    def csync(
        self, member: str, generation: int, assignments: dict[str, bytes] | None = None
    ) -> int:
        self.waiter += 1
        out = self.coordinator.sync(
            "g",
            generation,
            self.id(member),
            None,
            "consumer",
            "range",
            assignments or {},
            self.waiter,
            self.now,
        )
        self.keep(out)
        return self.waiter

    def synced(self, waiter: int) -> SyncResponse:
        resp = self.responses[waiter]
        assert isinstance(resp, SyncResponse)
        return resp

    def chb(self, member: str, generation: int) -> E:
        return self.coordinator.heartbeat("g", generation, self.id(member), None, self.now)

    def classic_group(self, split: dict[str, list[int]]) -> int:
        """A Stable classic group of the members in `split` (each owning its partitions of
        `t`); returns its generation."""
        waiters = {m: self.cjoin("", client=m) for m in split}
        for _ in range(REBALANCE // 1_000):
            if all(w in self.responses for w in waiters.values()):
                break
            self.tick(1_000)
        for m, w in waiters.items():
            self.ids[m] = self.joined(w).member_id
        first = self.joined(waiters[next(iter(split))])
        gen = first.generation
        leader = first.leader
        syncs = {
            m: self.csync(
                m,
                gen,
                {self.id(k): assignment(v) for k, v in split.items()}
                if self.id(m) == leader
                else {},
            )
            for m in split
        }
        for m, w in syncs.items():
            assert parts(self.synced(w).assignment) == set(split[m])
        group = self.coordinator.groups["g"]
        assert group.state == GroupState.STABLE
        return gen


def test_classic_member_metadata_record_round_trip() -> None:
    classic = ClassicMemberMetadata(10_000, (("range", b"\x00\x01"), ("cooperative-sticky", b"")))
    m = MemberMetadata("i", None, "c", "/h", ("t",), None, 30_000, None, classic)
    assert decode_member_metadata(encode_member_metadata(m)) == m
    plain = MemberMetadata(None, None, "c", "/h", ("t",), None, 30_000, "uniform")
    encoded = encode_member_metadata(plain)
    assert encoded.endswith(b"\x00")  # no tagged field
    assert decode_member_metadata(encoded) == plain


@pytest.mark.parametrize("policy", POLICIES)
def test_upgrade_per_policy(policy: str) -> None:
    h = Mixed(policy)
    gen = h.classic_group({"c1": [0, 1, 2], "c2": [3, 4, 5]})
    before = len(h.records)
    resp = h.hb("a", 0)
    if policy in ("disabled", "downgrade"):
        assert resp.error_code == E.GROUP_ID_NOT_FOUND
        assert "g" not in h.coordinator.consumer.groups
        assert h.coordinator.groups["g"].state == GroupState.STABLE
        assert len(h.records) == before
        return
    assert resp.error_code == E.NONE
    assert resp.assignment == []  # every partition is still owned by a classic member
    group = h.group()
    assert group.group_epoch == gen + 1
    assert {m: h.m(m).assigned for m in ("c1", "c2")} == {
        "c1": {h.topics["t"][0]: frozenset({0, 1, 2})},
        "c2": {h.topics["t"][0]: frozenset({3, 4, 5})},
    }
    assert h.m("c1").classic is not None and h.m("a").classic is None
    # the classic group's record is deleted first, then the consumer group's are written
    written = h.records[before:]
    assert decode_key(written[0][0]) == GroupKey("g") and written[0][1] is None
    types = [struct.unpack(">h", k[:2])[0] for k, _ in written[1:]]
    assert types[:3] == [MEMBER_METADATA, MEMBER_METADATA, GROUP_METADATA]
    assert_replays(h)
    reloaded = h.reloaded()  # the classic group is gone (it had no offsets)
    assert "g" not in reloaded.groups and "g" in reloaded.consumer.groups


def test_upgrade_refused_when_the_group_does_not_use_the_consumer_protocol() -> None:
    h = Mixed()
    waiter = h.cjoin("", protocol_type="connect", client="c1")
    h.tick(REBALANCE)
    assert h.joined(waiter).error == E.NONE
    resp = h.hb("a", 0)
    assert resp.error_code == E.GROUP_ID_NOT_FOUND
    # only a joining member may convert the group
    h2 = Mixed()
    h2.classic_group({"c1": [0, 1, 2, 3, 4, 5]})
    assert h2.hb("a", 3).error_code == E.GROUP_ID_NOT_FOUND


def test_upgrade_answers_parked_classic_requests_with_rebalance_in_progress() -> None:
    h = Mixed()
    gen = h.classic_group({"c1": [0, 1, 2], "c2": [3, 4, 5]})
    waiter = h.cjoin("c1", [0, 1, 2])  # a rejoin parks while c2 has not joined yet
    assert waiter not in h.responses
    assert h.hb("a", 0).error_code == E.NONE
    assert h.joined(waiter).error == E.REBALANCE_IN_PROGRESS
    assert h.chb("c2", gen) == E.REBALANCE_IN_PROGRESS
    # the classic rebalance's timers went with it
    assert h.coordinator.next_deadline() > h.now
    assert h.coordinator.groups["g"].rebalance_deadline is None


def converge(h: Mixed, classic: dict[str, int], consumers: dict[str, int]) -> dict[str, set[int]]:
    """Run classic clients (eager: they give up everything before rejoining) and consumer
    clients until the group is Stable, checking that no partition is ever owned twice.
    `classic`/`consumers`: member -> the generation/epoch the client knows."""
    owned = {m: set(h.m(m).assigned.get(h.topics["t"][0], ())) for m in [*classic, *consumers]}
    for _ in range(40):
        for m, gen in list(classic.items()):
            if h.chb(m, gen) == E.REBALANCE_IN_PROGRESS:
                join = h.joined(h.cjoin(m, sorted(owned[m]), known=True))
                assert join.error == E.NONE, join
                assert join.leader == "" and join.members == []
                classic[m] = join.generation
                sync = h.synced(h.csync(m, join.generation))
                if sync.error == E.REBALANCE_IN_PROGRESS:
                    owned[m] = set()
                    continue
                assert sync.error == E.NONE
                owned[m] = parts(sync.assignment)
        for m, epoch in list(consumers.items()):
            resp = h.hb(m, epoch, sorted(owned[m]))
            assert resp.error_code == E.NONE, resp
            consumers[m] = resp.member_epoch
            if resp.assignment is not None:
                owned[m] = {p for _, ps in resp.assignment for p in ps}
        everything = [p for ps in owned.values() for p in ps]
        assert len(everything) == len(set(everything)), owned
        if h.group().state() == ConsumerGroupState.STABLE and all(
            h.chb(m, g) == E.NONE for m, g in classic.items()
        ):
            return owned
        h.now += 100
    raise AssertionError(f"no convergence: {owned}")


def test_rolling_upgrade_then_downgrade_keeps_every_partition_owned_once() -> None:
    h = Mixed()
    gen = h.classic_group({"c1": [0, 1, 2], "c2": [3, 4, 5]})
    offsets = [OffsetCommit("t", p, 10 + p) for p in range(6)]
    errors, out = h.coordinator.commit("g", gen, h.id("c1"), None, offsets, h.now, api_version=8)
    h.keep(out)
    assert errors == [E.NONE] * 6
    # c1 restarts as a consumer-protocol member: it leaves, and joins again
    _, _, out = h.coordinator.leave("g", [(h.id("c1"), None)], h.now)
    h.keep(out)
    resp = h.hb("n1", 0)
    assert resp.error_code == E.NONE
    owned = converge(h, {"c2": h.m("c2").member_epoch}, {"n1": resp.member_epoch})
    assert sorted(p for ps in owned.values() for p in ps) == list(range(6))
    assert owned["n1"] and owned["c2"]
    # offsets committed by the classic group are kept, and a classic member commits with
    # its generation (the member epoch) at any OffsetCommit version
    assert [o.offset for _, _, o in h.coordinator.fetch_offsets("g", None) if o] == [
        10 + p for p in range(6)
    ]
    c2 = h.m("c2")
    errors, _ = h.coordinator.commit(
        "g", c2.member_epoch, c2.member_id, None, offsets[:1], h.now, api_version=2
    )
    assert errors == [E.NONE]
    errors, _ = h.coordinator.commit(
        "g", c2.member_epoch - 1, c2.member_id, None, offsets[:1], h.now
    )
    assert errors == [E.ILLEGAL_GENERATION]
    assert h.coordinator.validate_fetch("g", c2.member_id, c2.member_epoch - 1) == (
        E.ILLEGAL_GENERATION
    )
    assert_replays(h)
    # the last consumer-protocol member leaves: the group goes back to classic
    epoch = h.group().group_epoch
    assert h.hb("n1", -1).error_code == E.NONE
    assert "g" not in h.coordinator.consumer.groups
    group = h.coordinator.groups["g"]
    assert group.state == GroupState.PREPARING_REBALANCE
    assert group.generation == epoch and list(group.members) == [h.id("c2")]
    # its assignment is its target in the consumer group
    assert parts(group.members[h.id("c2")].assignment) == owned["c2"]
    assert h.chb("c2", h.coordinator.groups["g"].generation) == E.REBALANCE_IN_PROGRESS
    assert h.reloaded().groups["g"].members.keys() == {h.id("c2")}
    assert h.reloaded().consumer.groups == {}
    assert [o.offset for _, _, o in h.coordinator.fetch_offsets("g", None) if o][1:] == [
        10 + p for p in range(1, 6)
    ]


@pytest.mark.parametrize("policy", POLICIES)
def test_downgrade_per_policy(policy: str) -> None:
    h = Mixed(policy)
    assert h.hb("a", 0).error_code == E.NONE
    # a classic member joins the consumer group whatever the policy (Kafka gates only
    # the conversions)
    join = h.joined(h.cjoin("c", known=True))
    assert join.error == E.NONE and join.protocol_type == "consumer" and join.protocol == "range"
    assert h.group().members["c"].classic is not None
    target = set(h.group().target["c"][TOPIC])
    before = len(h.records)
    assert h.hb("a", -1).error_code == E.NONE
    if policy in ("disabled", "upgrade"):
        assert list(h.group().members) == ["c"]
        assert h.group().state() != ConsumerGroupState.EMPTY
        assert_replays(h)
        return
    assert "g" not in h.coordinator.consumer.groups
    group = h.coordinator.groups["g"]
    assert group.protocol_type == "consumer" and group.protocol == "range"
    assert group.state == GroupState.PREPARING_REBALANCE
    # Kafka's records: the consumer group's tombstones (each member's, then the group's),
    # then the classic group as it was converted (Stable, the member's target assigned)
    written = h.records[before:]
    types = [struct.unpack(">h", k[:2])[0] for k, _ in written]
    assert types == [
        CURRENT_MEMBER,
        TARGET_MEMBER,
        MEMBER_METADATA,
        CURRENT_MEMBER,
        TARGET_MEMBER,
        MEMBER_METADATA,
        TARGET_METADATA,
        PARTITION_METADATA,
        GROUP_METADATA,
        GROUP_KEY_VERSION,
    ]
    assert all(v is None for _, v in written[:-1])
    value = written[-1][1]
    assert value is not None
    converted = decode_group_value(value)
    assert converted.protocol == "range" and [m.member_id for m in converted.members] == ["c"]
    assert parts(converted.members[0].assignment) == target and 0 < len(target) < 6
    # the classic member rejoins the classic group and leads it
    rejoin = h.cjoin("c", known=True)
    h.tick(1)
    resp = h.joined(rejoin)
    assert resp.error == E.NONE and resp.leader == "c"
    assert h.reloaded().consumer.groups == {}


def test_session_timeout_of_the_last_consumer_member_downgrades() -> None:
    h = Mixed()
    assert h.hb("a", 0).error_code == E.NONE
    h.joined(h.cjoin("c", known=True))
    h.synced(h.csync("c", h.group().members["c"].member_epoch))
    for _ in range(5):
        h.tick(CLASSIC_SESSION // 2)
        h.chb("c", h.group().members["c"].member_epoch)
    assert "g" in h.coordinator.consumer.groups  # 25 s < 45 s of the consumer session
    for _ in range(5):
        h.tick(CLASSIC_SESSION // 2)
        if "g" not in h.coordinator.consumer.groups:
            break
        h.chb("c", h.group().members["c"].member_epoch)
    assert h.coordinator.groups["g"].members.keys() == {"c"}


def test_classic_member_refusals() -> None:
    h = Mixed()
    assert h.hb("a", 0).error_code == E.NONE
    assert h.joined(h.cjoin("c", protocol_type="connect", known=True)).error == (
        E.INCONSISTENT_GROUP_PROTOCOL
    )
    h.waiter += 1
    req = JoinRequest(
        "g", "", None, CLASSIC_SESSION, REBALANCE, "consumer", [("range", subscription())]
    )
    h.keep(h.coordinator.join(req, h.waiter, h.now))
    assert h.joined(h.waiter).error == E.MEMBER_ID_REQUIRED
    join = h.joined(h.cjoin("c", known=True))
    gen = join.generation
    assert h.synced(h.csync("c", gen + 1)).error == E.ILLEGAL_GENERATION
    assert h.synced(h.csync("x", gen)).error == E.UNKNOWN_MEMBER_ID
    assert h.chb("x", gen) == E.UNKNOWN_MEMBER_ID
    assert h.chb("a", 1) == E.UNKNOWN_MEMBER_ID  # a consumer-protocol member
    assert h.chb("c", gen + 1) == E.ILLEGAL_GENERATION
    _, errors, _ = h.coordinator.leave("g", [("a", None), ("x", None)], h.now)
    assert errors == [E.UNKNOWN_MEMBER_ID, E.UNKNOWN_MEMBER_ID]
    # a malformed subscription
    h.waiter += 1
    bad = JoinRequest("g", "z", None, CLASSIC_SESSION, REBALANCE, "consumer", [("range", b"\x00")])
    h.keep(h.coordinator.join(bad, h.waiter, h.now))
    assert h.joined(h.waiter).error == E.INCONSISTENT_GROUP_PROTOCOL


def test_a_full_consumer_group_refuses_a_classic_member() -> None:
    h = Mixed(max_size=1)
    assert h.hb("a", 0).error_code == E.NONE
    assert h.joined(h.cjoin("")).error == E.GROUP_MAX_SIZE_REACHED
    assert h.joined(h.cjoin("c", known=True)).error == E.GROUP_MAX_SIZE_REACHED


def test_classic_member_that_does_not_sync_or_rejoin_is_removed() -> None:
    h = Mixed(session_timeout_ms=10 * REBALANCE)
    assert h.hb("a", 0).error_code == E.NONE
    c = h.joined(h.cjoin("c", known=True))

    def heartbeat_until(deadline: int, member: str, generation: int) -> None:
        # alive all along (its session never expires), yet gone at `deadline`
        while h.now < deadline:
            assert member in h.group().members
            h.chb(member, generation)
            h.tick(CLASSIC_SESSION // 2)
        assert member not in h.group().members

    heartbeat_until(h.now + REBALANCE, "c", c.generation)  # never synced
    join = h.joined(h.cjoin("d", known=True))
    assert h.synced(h.csync("d", join.generation)).error == E.NONE
    assert h.hb("b", 0).error_code == E.NONE  # the group epoch moves: d must rejoin
    assert h.chb("d", join.generation) == E.REBALANCE_IN_PROGRESS
    heartbeat_until(h.now + REBALANCE, "d", join.generation)  # never rejoined
    assert_replays(h)


def test_classic_leave_from_a_consumer_group_never_downgrades() -> None:
    h = Mixed()
    assert h.hb("a", 0).error_code == E.NONE
    h.joined(h.cjoin("c", known=True))
    epoch = h.group().group_epoch
    _, errors, out = h.coordinator.leave("g", [("c", None)], h.now)
    h.keep(out)
    assert errors == [E.NONE]
    assert list(h.group().members) == ["a"] and h.group().group_epoch == epoch + 1
    assert_replays(h)


def test_unrevoked_classic_member_keeps_its_generation_until_it_rejoins() -> None:
    h = Mixed()
    gen = h.classic_group({"c1": [0, 1, 2, 3, 4, 5]})
    assert h.hb("a", 0).error_code == E.NONE
    assert h.chb("c1", gen) == E.REBALANCE_IN_PROGRESS
    join = h.joined(h.cjoin("c1", [0, 1, 2, 3, 4, 5], known=True))
    member = h.m("c1")
    assert member.state == MemberState.UNREVOKED_PARTITIONS
    assert join.generation == gen  # its epoch moves once it gave the partitions up
    sync = h.synced(h.csync("c1", gen))
    assert sync.error == E.NONE and len(parts(sync.assignment)) == 3
    assert h.chb("c1", gen) == E.REBALANCE_IN_PROGRESS
    join = h.joined(h.cjoin("c1", sorted(parts(sync.assignment)), known=True))
    assert join.generation == h.group().group_epoch
    assert h.chb("c1", join.generation) == E.NONE


# ---- the state machine: members of both protocols in one consumer group ----

CONSUMERS = ["m0", "m1", "m2"]
CLASSICS = ["c0", "c1", "c2"]


class MixedGroupMachine(RuleBasedStateMachine):
    """Consumer-protocol and classic members join, heartbeat, leave and crash in any order
    (policy `upgrade`: the group stays a consumer group). The model is what each client owns:
    a consumer client takes its latest assignment at once; a classic client (eager) gives up
    everything when told to rejoin, and owns what its SyncGroup returns."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Mixed("upgrade", session_timeout_ms=SESSION)
        self.epoch: dict[str, int] = {}  # the epoch (generation) each live client knows
        self.owned: dict[str, set[int]] = {}

    def _consumer_hb(self, member: str) -> None:
        resp = self.h.hb(member, self.epoch[member], sorted(self.owned[member]))
        assert resp.error_code == E.NONE, resp
        self.epoch[member] = resp.member_epoch
        if resp.assignment is not None:
            self.owned[member] = {p for _, ps in resp.assignment for p in ps}

    def _classic_join(self, member: str) -> None:
        self.owned[member] = set()  # eager: everything is revoked before rejoining
        join = self.h.joined(self.h.cjoin(member, [], known=True))
        assert join.error == E.NONE, join
        self.epoch[member] = join.generation
        sync = self.h.synced(self.h.csync(member, join.generation))
        assert sync.error in (E.NONE, E.REBALANCE_IN_PROGRESS), sync
        if sync.error == E.NONE:
            self.owned[member] = parts(sync.assignment)

    def _classic_hb(self, member: str) -> None:
        error = self.h.chb(member, self.epoch[member])
        assert error in (E.NONE, E.REBALANCE_IN_PROGRESS), error
        if error == E.REBALANCE_IN_PROGRESS:
            self._classic_join(member)

    def _beat(self, member: str) -> None:
        if member in CLASSICS:
            self._classic_hb(member)
        else:
            self._consumer_hb(member)

    def _in_use(self) -> bool:
        group = self.h.coordinator.consumer.groups.get("g")
        return group is not None and bool(group.members)

    @rule(member=st.sampled_from(CONSUMERS))
    def consumer_joins(self, member: str) -> None:
        if member in self.epoch:
            return
        self.owned[member] = set()
        self.epoch[member] = 0
        self._consumer_hb(member)

    @precondition(lambda self: self._in_use())
    @rule(member=st.sampled_from(CLASSICS))
    def classic_joins(self, member: str) -> None:
        if member not in self.epoch:
            self._classic_join(member)

    @rule(member=st.sampled_from([*CONSUMERS, *CLASSICS]))
    def heartbeat(self, member: str) -> None:
        if member in self.epoch:
            self._beat(member)

    @rule(member=st.sampled_from([*CONSUMERS, *CLASSICS]))
    def leave(self, member: str) -> None:
        if member not in self.epoch:
            return
        if member in CLASSICS:
            _, errors, out = self.h.coordinator.leave("g", [(member, None)], self.h.now)
            self.h.keep(out)
            assert errors == [E.NONE]
        else:
            assert self.h.hb(member, -1).error_code == E.NONE
        del self.epoch[member], self.owned[member]

    @rule(member=st.sampled_from([*CONSUMERS, *CLASSICS]))
    def crash(self, member: str) -> None:
        """The client dies; the coordinator notices when its session runs out."""
        if member not in self.epoch:
            return
        del self.epoch[member], self.owned[member]
        for _ in range(SESSION // (CLASSIC_SESSION // 2) + 1):
            self.h.tick(CLASSIC_SESSION // 2)
            for other in list(self.epoch):  # the others keep their sessions alive
                self._beat(other)
        assert member not in self.h.group().members

    @precondition(lambda self: bool(self.epoch))
    @rule()
    def settle(self) -> None:
        """Heartbeats (and rejoins) converge: every client owns its target, the group is
        Stable, the partitions balanced."""
        for _ in range(8):
            for member in list(self.epoch):
                self._beat(member)
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
    def the_coordinator_knows_what_each_client_owns(self) -> None:
        group = self.h.coordinator.consumer.groups.get("g")
        if group is None:
            return
        assert set(group.members) == set(self.epoch)
        for m in group.members.values():
            assert (m.classic is not None) == (m.member_id in CLASSICS)
            have = m.assigned.get(TOPIC, frozenset()) | m.pending_revocation.get(TOPIC, frozenset())
            assert self.owned[m.member_id] <= have

    @invariant()
    def records_replay_to_the_same_state(self) -> None:
        assert_replays(self.h)


MixedGroupMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMixedGroupMachine = MixedGroupMachine.TestCase
