"""The classic group state machine with a manual clock: every transition and every error code
the coordinator answers, timers included, without sockets or sleeps."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest

from msklite.clock import ManualClock
from msklite.coordinator.coordinator import (
    CoordinatorConfig,
    GroupCoordinator,
    JoinRequest,
    JoinResponse,
    LogRecord,
    OffsetCommit,
    Output,
    SyncResponse,
    java_string_hash,
    partition_for,
)
from msklite.coordinator.group import GroupState
from msklite.coordinator.records import (
    GroupKey,
    OffsetKey,
    decode_group_value,
    decode_key,
    decode_offset_value,
)
from msklite.errors import ErrorCode as E
from msklite.topic_partition import TopicPartition

SESSION = 10_000
REBALANCE = 30_000
DELAY = 100


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, user data."""
    out = struct.pack(">hi", 0, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


class Harness:
    def __init__(self, **config: Any) -> None:
        self.clock = ManualClock()
        self.config = CoordinatorConfig(initial_rebalance_delay_ms=DELAY, **config)
        self.gc = GroupCoordinator(self.config, self.clock.now_ms())
        self.responses: dict[int, JoinResponse | SyncResponse] = {}
        self.records: list[tuple[int, bytes, bytes | None]] = []
        self._ids = itertools.count()

    def run(self, out: Output) -> Output:
        self.records.extend(out.records)
        for waiter, response in out.completions:
            assert waiter not in self.responses, "a request answered twice"
            self.responses[waiter] = response
        return out

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self.run(self.gc.tick(self.now))

    def join(
        self,
        member_id: str = "",
        group: str = "g",
        instance: str | None = None,
        protocols: list[tuple[str, bytes]] | None = None,
        protocol_type: str = "consumer",
        session: int = SESSION,
        rebalance: int = REBALANCE,
        v4: bool = True,
    ) -> int:
        waiter = next(self._ids)
        req = JoinRequest(
            group,
            member_id,
            instance,
            session,
            rebalance,
            protocol_type,
            protocols if protocols is not None else [("range", subscription("t"))],
            "client",
            "/127.0.0.1",
            v4,
        )
        self.run(self.gc.join(req, waiter, self.now))
        return waiter

    def join_new(self, **kw: Any) -> tuple[str, int]:
        """A dynamic member's first join: MEMBER_ID_REQUIRED, then the join with that id."""
        first = self.join(**kw)
        r = self.join_response(first)
        assert r.error == E.MEMBER_ID_REQUIRED and r.member_id
        return r.member_id, self.join(member_id=r.member_id, **kw)

    def sync(
        self,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        group: str = "g",
        instance: str | None = None,
    ) -> int:
        waiter = next(self._ids)
        self.run(
            self.gc.sync(
                group,
                generation,
                member_id,
                instance,
                "consumer",
                None,
                assignments or {},
                waiter,
                self.now,
            )
        )
        return waiter

    def join_response(self, waiter: int) -> JoinResponse:
        r = self.responses[waiter]
        assert isinstance(r, JoinResponse)
        return r

    def sync_response(self, waiter: int) -> SyncResponse:
        r = self.responses[waiter]
        assert isinstance(r, SyncResponse)
        return r

    def state(self, group: str = "g") -> GroupState:
        g = self.gc.groups.get(group)
        return GroupState.DEAD if g is None else g.state

    def stable_group(self, n: int) -> list[str]:
        """n dynamic members through the initial delay and the leader's sync."""
        joins = [self.join_new() for _ in range(n)]
        self.advance(DELAY)  # first delay: the later joins extend it once
        self.advance(DELAY)
        responses = [self.join_response(w) for _, w in joins]
        assert all(r.error == E.NONE for r in responses)
        leader = responses[0].leader
        gen = responses[0].generation
        ids = [m for m, _ in joins]
        self.sync(leader, gen, {m: m.encode() for m in ids})
        assert self.state() == GroupState.STABLE
        return ids


# ---- coordinator placement ----


@pytest.mark.parametrize(
    ("key", "java_hash"),
    [
        ("", 0),
        ("a", 97),
        ("hello", 99162322),
        ("polygenelubricants", -(2**31)),  # Integer.MIN_VALUE: Utils.abs gives 0
        ("\U0001f600", 1772899),  # hashed as two UTF-16 code units
    ],
)
def test_java_string_hash(key: str, java_hash: int) -> None:
    assert java_string_hash(key) == java_hash


def test_partition_for_matches_kafka() -> None:
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("hello", 50) == 99162322 % 50
    assert java_string_hash("my-group") < 0
    assert partition_for("my-group", 50) == abs(java_string_hash("my-group")) % 50


# ---- join ----


def test_first_join_needs_a_member_id_then_waits_out_the_initial_delay() -> None:
    h = Harness()
    member, waiter = h.join_new()
    assert member.startswith("client-")
    assert waiter not in h.responses
    assert h.state() == GroupState.PREPARING_REBALANCE
    h.advance(DELAY - 1)
    assert waiter not in h.responses
    h.advance(1)
    r = h.join_response(waiter)
    assert (r.error, r.generation, r.leader, r.member_id) == (E.NONE, 1, member, member)
    assert r.protocol == "range" and r.protocol_type == "consumer"
    assert [(m.member_id, m.metadata) for m in r.members] == [(member, subscription("t"))]
    assert h.state() == GroupState.COMPLETING_REBALANCE


def test_join_before_v4_gets_no_member_id_required() -> None:
    h = Harness()
    waiter = h.join(v4=False)
    h.advance(DELAY)
    assert h.join_response(waiter).error == E.NONE


def test_members_joining_during_the_delay_extend_it() -> None:
    h = Harness()
    _, first = h.join_new()
    h.advance(DELAY - 10)
    _, second = h.join_new()
    h.advance(10)  # the first delay ends; a member arrived during it: one more delay
    assert first not in h.responses
    h.advance(DELAY)
    assert h.join_response(first).generation == h.join_response(second).generation == 1


@pytest.mark.parametrize("session", [5999, 1_800_001])
def test_invalid_session_timeout(session: int) -> None:
    h = Harness()
    assert h.join_response(h.join(session=session)).error == E.INVALID_SESSION_TIMEOUT
    assert h.state() == GroupState.DEAD


def test_join_errors() -> None:
    h = Harness()
    assert h.join_response(h.join(group="")).error == E.INVALID_GROUP_ID
    assert h.join_response(h.join(member_id="nobody")).error == E.UNKNOWN_MEMBER_ID
    assert h.join_response(h.join(protocols=[])).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.join_response(h.join(protocol_type="")).error == E.INCONSISTENT_GROUP_PROTOCOL
    h.stable_group(1)
    other = h.join(protocol_type="connect")
    assert h.join_response(other).error == E.INCONSISTENT_GROUP_PROTOCOL
    no_common = h.join(protocols=[("sticky", b"")])
    assert h.join_response(no_common).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.join_response(h.join(member_id="stranger")).error == E.UNKNOWN_MEMBER_ID


def test_protocol_selected_by_vote_and_metadata_relayed_byte_exact() -> None:
    h = Harness()
    prefs = [
        [("roundrobin", b"\x00a"), ("range", b"\x01a")],
        [("range", b"\x01b"), ("roundrobin", b"\x00b")],
        [("range", b"\x01c"), ("roundrobin", b"\x00c")],
    ]
    joins = [h.join_new(protocols=p) for p in prefs]
    h.advance(DELAY)
    h.advance(DELAY)
    responses = [h.join_response(w) for _, w in joins]
    assert {r.protocol for r in responses} == {"range"}
    leader = next(r for r in responses if r.members)
    assert leader.member_id == joins[0][0]
    assert sorted(m.metadata for m in leader.members) == [b"\x01a", b"\x01b", b"\x01c"]
    assert all(not r.members for r in responses if r is not leader)


# ---- sync, heartbeat, rebalance ----


def test_sync_delivers_the_leaders_assignments() -> None:
    h = Harness()
    (a, wa), (b, _) = h.join_new(), h.join_new()
    h.advance(DELAY)
    h.advance(DELAY)
    gen = h.join_response(wa).generation
    leader = h.join_response(wa).leader
    follower = b if leader == a else a
    early = h.sync(follower, gen)
    assert early not in h.responses  # parked until the leader's assignment arrives
    done = h.sync(leader, gen, {a: b"A", b: b"B"})
    assert h.state() == GroupState.STABLE
    expected = {a: b"A", b: b"B"}
    assert h.sync_response(early).assignment == expected[follower]
    assert h.sync_response(done).assignment == expected[leader]
    again = h.sync(follower, gen)  # in Stable: answered at once
    assert h.sync_response(again).assignment == expected[follower]
    key, value = h.records[-1][1:]
    assert decode_key(key) == GroupKey("g")
    assert value is not None
    stored = decode_group_value(value)
    assert stored.generation == gen and stored.protocol == "range"
    assert {m.member_id: m.assignment for m in stored.members} == expected


def test_sync_errors() -> None:
    h = Harness()
    assert h.sync_response(h.sync("m", 1, group="")).error == E.INVALID_GROUP_ID
    assert h.sync_response(h.sync("m", 1, group="none")).error == E.UNKNOWN_MEMBER_ID
    (a,) = h.stable_group(1)
    assert h.sync_response(h.sync("stranger", 1)).error == E.UNKNOWN_MEMBER_ID
    assert h.sync_response(h.sync(a, 7)).error == E.ILLEGAL_GENERATION
    waiter = next(h._ids)
    h.run(h.gc.sync("g", 1, a, None, "connect", None, {}, waiter, h.now))
    assert h.sync_response(waiter).error == E.INCONSISTENT_GROUP_PROTOCOL
    h.join_new()  # a new member: PreparingRebalance
    assert h.sync_response(h.sync(a, 1)).error == E.REBALANCE_IN_PROGRESS


def test_new_member_triggers_a_rebalance_the_others_learn_by_heartbeat() -> None:
    h = Harness()
    (a,) = h.stable_group(1)
    assert h.gc.heartbeat("g", 1, a, None, h.now) == E.NONE
    _, wb = h.join_new()
    assert h.state() == GroupState.PREPARING_REBALANCE
    assert h.gc.heartbeat("g", 1, a, None, h.now) == E.REBALANCE_IN_PROGRESS
    wa = h.join(member_id=a)  # all members joined: completes at once, no delay this time
    assert h.join_response(wa).generation == h.join_response(wb).generation == 2
    assert h.gc.heartbeat("g", 1, a, None, h.now) == E.ILLEGAL_GENERATION
    assert h.gc.heartbeat("g", 2, a, None, h.now) == E.NONE  # CompletingRebalance
    assert h.gc.heartbeat("g", 2, "stranger", None, h.now) == E.UNKNOWN_MEMBER_ID
    assert h.gc.heartbeat("none", 2, a, None, h.now) == E.UNKNOWN_MEMBER_ID
    assert h.gc.heartbeat("", 2, a, None, h.now) == E.INVALID_GROUP_ID


def test_stable_follower_rejoining_unchanged_gets_the_current_generation() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    leader = h.gc.groups["g"].leader
    assert leader is not None
    follower = b if leader == a else a
    r = h.join_response(h.join(member_id=follower))
    assert (r.error, r.generation) == (E.NONE, 1)
    assert h.state() == GroupState.STABLE
    h.join(member_id=leader)  # the leader rejoining means a new assignment: rebalance
    assert h.state() == GroupState.PREPARING_REBALANCE


def test_session_expiry_removes_the_member_and_rebalances() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    h.advance(SESSION - 1)
    assert h.gc.heartbeat("g", 1, a, None, h.now) == E.NONE
    h.advance(1)  # b's session ran out
    assert set(h.gc.groups["g"].members) == {a}
    assert h.state() == GroupState.PREPARING_REBALANCE
    assert h.gc.heartbeat("g", 1, b, None, h.now) == E.UNKNOWN_MEMBER_ID
    w = h.join(member_id=a)
    assert h.join_response(w).generation == 2


def test_members_not_rejoining_within_the_rebalance_timeout_are_removed() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    wa = h.join(member_id=a, protocols=[("range", subscription("t", "u"))])  # changed: rebalance
    for _ in range(REBALANCE // 1000):
        h.advance(1000)
        h.gc.heartbeat("g", 1, b, None, h.now)  # heartbeats do not replace rejoining
    r = h.join_response(wa)
    assert (r.error, r.generation, r.leader) == (E.NONE, 2, a)
    assert set(h.gc.groups["g"].members) == {a}


def test_members_not_syncing_within_the_rebalance_timeout_are_removed() -> None:
    h = Harness()
    _, w = h.join_new()
    h.advance(DELAY)
    member = h.join_response(w).member_id
    h.advance(REBALANCE)  # the leader never sent SyncGroup
    assert member not in h.gc.groups["g"].members
    assert h.state() == GroupState.EMPTY


def test_pending_member_blocks_the_join_until_it_expires() -> None:
    h = Harness()
    (a,) = h.stable_group(1)
    pending = h.join_response(h.join()).member_id  # MEMBER_ID_REQUIRED, never follows up
    assert pending
    w = h.join(member_id=a, protocols=[("range", subscription("u"))])
    assert w not in h.responses
    h.advance(SESSION)
    assert h.join_response(w).generation == 2


# ---- leave ----


def test_leave_errors_and_last_member_leaving_empties_the_group() -> None:
    h = Harness()
    assert h.gc.leave("", [("m", None)], h.now)[0] == E.INVALID_GROUP_ID
    assert h.gc.leave("none", [("m", None)], h.now)[1] == [E.UNKNOWN_MEMBER_ID]
    (a,) = h.stable_group(1)
    error, errors, out = h.gc.leave("g", [("stranger", None), (a, None)], h.now)
    h.run(out)
    assert (error, errors) == (E.NONE, [E.UNKNOWN_MEMBER_ID, E.NONE])
    group = h.gc.groups["g"]
    assert (group.state, group.generation, group.protocol) == (GroupState.EMPTY, 2, None)
    value = h.records[-1][2]
    assert value is not None and decode_group_value(value).members == []
    assert h.gc.heartbeat("g", 2, a, None, h.now) == E.UNKNOWN_MEMBER_ID


def test_leave_wakes_a_parked_join() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    w = h.join(member_id=a, protocols=[("range", subscription("u"))])
    h.run(h.gc.leave("g", [(b, None)], h.now)[2])
    assert h.join_response(w).generation == 2


# ---- static membership (KIP-345) ----


def test_static_member_restart_keeps_its_assignment_without_rebalance() -> None:
    h = Harness()
    first = h.join(instance="i-1")  # static: no MEMBER_ID_REQUIRED
    _, other = h.join_new()
    h.advance(DELAY)
    h.advance(DELAY)
    old_id = h.join_response(first).member_id
    assert old_id.startswith("i-1-")
    leader = h.join_response(first).leader
    h.sync(leader, 1, {old_id: b"mine", h.join_response(other).member_id: b"theirs"})
    rejoin = h.join(instance="i-1")
    r = h.join_response(rejoin)
    assert r.error == E.NONE and r.member_id != old_id
    assert (r.generation, h.state()) == (1, GroupState.STABLE)
    assert r.skip_assignment == (leader == old_id)
    assert h.sync_response(h.sync(r.member_id, 1, instance="i-1")).assignment == b"mine"
    assert h.gc.heartbeat("g", 1, old_id, "i-1", h.now) == E.FENCED_INSTANCE_ID
    assert h.sync_response(h.sync(old_id, 1, instance="i-1")).error == E.FENCED_INSTANCE_ID
    assert h.join_response(h.join(member_id=old_id, instance="i-1")).error == E.FENCED_INSTANCE_ID
    _, errors, _ = h.gc.leave("g", [(old_id, "i-1")], h.now)
    assert errors == [E.FENCED_INSTANCE_ID]
    assert h.gc.leave("g", [("", "unknown")], h.now)[1] == [E.UNKNOWN_MEMBER_ID]
    h.run(h.gc.leave("g", [("", "i-1")], h.now)[2])
    assert r.member_id not in h.gc.groups["g"].members


def test_static_member_rejoining_with_other_protocols_rebalances() -> None:
    h = Harness()
    w = h.join(instance="i-1")
    h.advance(DELAY)
    h.sync(h.join_response(w).member_id, 1)
    again = h.join(instance="i-1", protocols=[("range", subscription("u"))])
    # the only member rejoined at once, so the new generation is complete
    assert h.join_response(again).generation == 2
    assert h.state() == GroupState.COMPLETING_REBALANCE


# ---- offsets ----


def commit(
    h: Harness, *offsets: OffsetCommit, gen: int = -1, member: str = "", **kw: Any
) -> list[E]:
    errors, out = h.gc.commit(kw.pop("group", "g"), gen, member, None, list(offsets), h.now, **kw)
    h.run(out)
    return errors


def test_standalone_commit_creates_a_group_and_writes_records() -> None:
    h = Harness()
    assert commit(h, OffsetCommit("t", 0, 5, 3, "meta")) == [E.NONE]
    assert h.state() == GroupState.EMPTY and h.gc.groups["g"].protocol_type is None
    (_, key, value) = h.records[-1]
    assert decode_key(key) == OffsetKey("g", "t", 0)
    assert value is not None
    v = decode_offset_value(value)
    assert (v.offset, v.leader_epoch, v.metadata, v.commit_timestamp) == (5, 3, "meta", h.now)
    fetched = h.gc.fetch_offsets("g", [TopicPartition("t", 0), TopicPartition("t", 1)])
    assert [(t, p, o.offset if o else None) for t, p, o in fetched] == [("t", 0, 5), ("t", 1, None)]
    assert [(t, p) for t, p, _ in h.gc.fetch_offsets("g", None)] == [("t", 0)]
    assert h.gc.fetch_offsets("none", None) == []


def test_commit_errors() -> None:
    h = Harness(offset_metadata_max_bytes=4)
    one = OffsetCommit("t", 0, 1)
    assert commit(h, one, gen=1, member="m") == [E.ILLEGAL_GENERATION]
    assert "g" not in h.gc.groups
    assert commit(h, OffsetCommit("t", 0, 1, metadata="12345")) == [E.OFFSET_METADATA_TOO_LARGE]
    (a,) = h.stable_group(1)
    assert commit(h, one) == [E.UNKNOWN_MEMBER_ID]  # simple commit to an active group
    assert commit(h, one, gen=1, member="stranger") == [E.UNKNOWN_MEMBER_ID]
    assert commit(h, one, gen=2, member=a) == [E.ILLEGAL_GENERATION]
    assert commit(h, one, gen=1, member=a) == [E.NONE]
    h.join_new()  # PreparingRebalance: commits of the current generation still go through
    assert commit(h, one, gen=1, member=a) == [E.NONE]
    h.join(member_id=a)  # everyone rejoined: CompletingRebalance
    assert commit(h, one, gen=2, member=a) == [E.REBALANCE_IN_PROGRESS]


def test_offset_delete() -> None:
    h = Harness()
    assert h.gc.delete_offsets("", [])[0] == E.INVALID_GROUP_ID
    assert h.gc.delete_offsets("g", [])[0] == E.GROUP_ID_NOT_FOUND
    (a,) = h.stable_group(1)  # subscribed to "t"
    commit(h, OffsetCommit("t", 0, 1), OffsetCommit("u", 0, 2), gen=1, member=a)
    error, errors, out = h.gc.delete_offsets(
        "g", [TopicPartition("t", 0), TopicPartition("u", 0), TopicPartition("u", 1)]
    )
    h.run(out)
    assert (error, errors) == (E.NONE, [E.GROUP_SUBSCRIBED_TO_TOPIC, E.NONE, E.NONE])
    assert [r[2] for r in out.records] == [None]
    assert [(t, p) for t, p, _ in h.gc.fetch_offsets("g", None)] == [("t", 0)]

    other = Harness()
    w = other.join(protocol_type="connect", protocols=[("v1", b"")], v4=False)
    other.advance(DELAY)
    other.sync(other.join_response(w).member_id, 1)
    assert other.gc.delete_offsets("g", [TopicPartition("t", 0)])[0] == E.NON_EMPTY_GROUP


def test_delete_groups() -> None:
    h = Harness()
    (a,) = h.stable_group(1)
    commit(h, OffsetCommit("t", 0, 1), OffsetCommit("t", 1, 1), gen=1, member=a)
    errors, _ = h.gc.delete_groups(["g", "none"])
    assert errors == [E.NON_EMPTY_GROUP, E.GROUP_ID_NOT_FOUND]
    h.run(h.gc.leave("g", [(a, None)], h.now)[2])
    errors, out = h.gc.delete_groups(["g"])
    assert errors == [E.NONE] and "g" not in h.gc.groups
    assert [decode_key(k) for _, k, v in out.records if v is None] == [
        OffsetKey("g", "t", 0),
        OffsetKey("g", "t", 1),
        GroupKey("g"),
    ]


# ---- retention ----

RETENTION = 60_000
CHECK = 1_000


def test_standalone_offsets_expire_from_their_commit_time() -> None:
    h = Harness(offsets_retention_ms=RETENTION, offsets_retention_check_interval_ms=CHECK)
    commit(h, OffsetCommit("t", 0, 1))
    h.advance(RETENTION // 2)
    commit(h, OffsetCommit("t", 1, 1))
    h.advance(RETENTION // 2)
    assert [(t, p) for t, p, _ in h.gc.fetch_offsets("g", None)] == [("t", 1)]
    h.advance(RETENTION // 2)
    assert "g" not in h.gc.groups  # no offsets left, no members: the group goes too
    assert decode_key(h.records[-1][1]) == GroupKey("g") and h.records[-1][2] is None


def test_offsets_of_an_active_group_never_expire_and_an_empty_groups_do() -> None:
    h = Harness(
        offsets_retention_ms=RETENTION,
        offsets_retention_check_interval_ms=CHECK,
        max_session_timeout_ms=10 * RETENTION,
    )
    w = h.join(v4=False, session=5 * RETENTION)
    h.advance(DELAY)
    a = h.join_response(w).member_id
    h.sync(a, 1)
    commit(h, OffsetCommit("t", 0, 1), gen=1, member=a)
    h.advance(2 * RETENTION)
    assert h.gc.fetch_offsets("g", [TopicPartition("t", 0)])[0][2] is not None
    h.run(h.gc.leave("g", [(a, None)], h.now)[2])
    h.advance(RETENTION - CHECK)
    assert h.gc.fetch_offsets("g", [TopicPartition("t", 0)])[0][2] is not None
    h.advance(CHECK)
    assert "g" not in h.gc.groups


def test_explicit_retention_time_wins() -> None:
    h = Harness(offsets_retention_ms=RETENTION, offsets_retention_check_interval_ms=CHECK)
    commit(h, OffsetCommit("t", 0, 1), retention_ms=5 * CHECK)
    (_, _, value) = h.records[-1]
    assert value is not None and decode_offset_value(value).expire_timestamp == h.now + 5 * CHECK
    h.advance(5 * CHECK)
    assert "g" not in h.gc.groups


# ---- persistence ----


def test_replay_restores_offsets_and_groups() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    commit(h, OffsetCommit("t", 0, 7, 2, "x"), gen=1, member=a)
    commit(h, OffsetCommit("s", 0, 1), group="simple")
    commit(h, OffsetCommit("s", 1, 1), group="simple")
    h.run(h.gc.delete_offsets("simple", [TopicPartition("s", 1)])[2])
    commit(h, OffsetCommit("d", 0, 1), group="deleted")
    h.run(h.gc.delete_groups(["deleted"])[1])

    restored = GroupCoordinator(h.config, h.now)
    partitions = {p for p, _, _ in h.records}
    for p in partitions:
        restored.load(p, [(k, v, -1, -1, -1) for q, k, v in h.records if q == p], h.now)
    assert set(restored.groups) == {"g", "simple"}
    g = restored.groups["g"]
    assert (g.state, g.generation, g.protocol, g.leader) == (
        GroupState.STABLE,
        1,
        "range",
        h.gc.groups["g"].leader,
    )
    assert {m.member_id: m.assignment for m in g.members.values()} == {
        a: a.encode(),
        b: b.encode(),
    }
    assert (
        restored.fetch_offsets("g", [TopicPartition("t", 0)])[0][2]
        == h.gc.groups["g"].offsets[TopicPartition("t", 0)]
    )
    assert [(t, p) for t, p, _ in restored.fetch_offsets("simple", None)] == [("s", 0)]
    # restored members keep heartbeating, and expire like any member when they stop
    assert restored.heartbeat("g", 1, a, None, h.now) == E.NONE


def test_unload_answers_parked_requests_with_not_coordinator() -> None:
    h = Harness()
    _, w = h.join_new()
    partition = h.gc.partition_for("g")
    h.gc.loaded.add(partition)
    h.run(h.gc.unload(partition))
    assert h.join_response(w).error == E.NOT_COORDINATOR
    assert "g" not in h.gc.groups and partition not in h.gc.loaded


def test_load_skips_records_it_cannot_read() -> None:
    h = Harness()
    commit(h, OffsetCommit("t", 0, 3))
    (partition, key, value) = h.records[-1]
    # a KIP-848 ConsumerGroupMetadata key (version 3) and a truncated offset value
    foreign: list[LogRecord] = [
        (b"\x00\x03\x00\x01g", b"\x00\x00", -1, -1, -1),
        (key, b"\x00\x03\x00", -1, -1, -1),
        (key, value, -1, -1, -1),
    ]
    restored = GroupCoordinator(h.config, h.now)
    restored.load(partition, foreign, h.now)
    assert (
        restored.fetch_offsets("g", [TopicPartition("t", 0)])[0][2]
        == h.gc.groups["g"].offsets[TopicPartition("t", 0)]
    )


def test_transactional_offsets_are_written_pending_and_replayed_with_their_marker() -> None:
    h = Harness()
    tp = TopicPartition("t", 0)
    errors, out = h.gc.txn_commit("g", 7, 2, -1, "", None, [OffsetCommit("t", 0, 5)], h.now)
    assert errors == [E.NONE] and not out.records
    [(partition, pid, epoch, key, value)] = out.txn_records
    assert (pid, epoch) == (7, 2)
    assert h.gc.unstable_partitions("g") == {tp}
    assert h.gc.fetch_offsets("g", [tp])[0][2] is None
    logged: list[LogRecord] = [(key, value, pid, epoch, -1)]

    def replayed(*markers: LogRecord) -> GroupCoordinator:
        fresh = GroupCoordinator(h.config, h.now)
        fresh.load(partition, [*logged, *markers], h.now)
        return fresh

    pending = replayed()
    assert pending.unstable_partitions("g") == {tp}
    committed = replayed((b"", None, 7, 2, 1))
    assert not committed.unstable_partitions("g")
    offset = committed.fetch_offsets("g", [tp])[0][2]
    assert offset is not None and offset.offset == 5
    aborted = replayed((b"", None, 7, 2, 0))
    assert not aborted.unstable_partitions("g")
    assert aborted.fetch_offsets("g", [tp])[0][2] is None
    # another producer's marker leaves them pending
    assert replayed((b"", None, 8, 0, 1)).unstable_partitions("g") == {tp}
    h.gc.complete_txn(partition, 7, True)
    assert h.gc.fetch_offsets("g", [tp])[0][2] == offset
