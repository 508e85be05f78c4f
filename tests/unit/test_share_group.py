"""Share-group membership (KIP-932): epochs, the simple assignor, fencing and session expiry."""

from __future__ import annotations

import logging
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.coordinator.coordinator import CoordinatorConfig, GroupCoordinator
from msklite.coordinator.share_group import (
    HeartbeatResult,
    ShareGroupConfig,
    ShareGroupCoordinator,
    assign,
)
from msklite.errors import ErrorCode

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)
TOPICS = {"one": (T1, 1), "six": (T2, 6)}


def _coordinator(max_size: int = 200) -> ShareGroupCoordinator:
    return ShareGroupCoordinator(
        ShareGroupConfig(num_partitions=50, session_timeout_ms=1000, max_size=max_size),
        TOPICS.get,
    )


def _join(
    c: ShareGroupCoordinator, member: str, topics: list[str], now: int = 0
) -> HeartbeatResult:
    return c.heartbeat("g", member, 0, None, topics, "client", "/127.0.0.1", now)[0]


def _beat(c: ShareGroupCoordinator, member: str, epoch: int, now: int) -> HeartbeatResult:
    return c.heartbeat("g", member, epoch, None, None, "client", "/h", now)[0]


def test_simple_assignor_shares_a_partition_between_more_members() -> None:
    got = assign({"a": ["one"], "b": ["one"], "c": ["one"]}, {"one": (T1, 1)})
    assert got == {"a": {T1: [0]}, "b": {T1: [0]}, "c": {T1: [0]}}
    got = assign({"a": ["six"], "b": ["six"]}, {"six": (T2, 6)})
    assert got == {"a": {T2: [0, 2, 4]}, "b": {T2: [1, 3, 5]}}


def test_join_heartbeat_and_epochs() -> None:
    c = _coordinator()
    a = _join(c, "a", ["one"])
    assert (a.error, a.member_id, a.epoch, a.assignment) == (ErrorCode.NONE, "a", 1, {T1: [0]})
    b = _join(c, "b", ["one"])
    assert (b.epoch, b.assignment) == (2, {T1: [0]})
    # a's next heartbeat at its own epoch moves it to the group's, with its assignment again
    again = _beat(c, "a", 1, 10)
    assert (again.error, again.epoch, again.assignment) == (ErrorCode.NONE, 2, {T1: [0]})
    # nothing changed: no assignment sent
    assert _beat(c, "a", 2, 20).assignment is None
    stale = _beat(c, "a", 1, 30)
    assert stale.error == ErrorCode.FENCED_MEMBER_EPOCH
    unknown = _beat(c, "zz", 2, 30)
    assert unknown.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert _beat(c, "b", -1, 40).epoch == -1
    assert list(c.groups["g"].members) == ["a"]
    assert c.groups["g"].epoch == 3


def test_first_heartbeat_must_subscribe_and_group_size_is_bounded() -> None:
    c = _coordinator(max_size=1)
    assert _join(c, "a", []).error == ErrorCode.INVALID_REQUEST
    assert _join(c, "a", ["six"]).error == ErrorCode.NONE
    assert _join(c, "b", ["six"]).error == ErrorCode.GROUP_MAX_SIZE_REACHED
    # clients choose their member ids (KIP-1082)
    assert _join(_coordinator(), "", ["six"]).error == ErrorCode.INVALID_REQUEST


def test_silent_member_is_removed_after_the_session_timeout() -> None:
    c = _coordinator()
    _join(c, "a", ["six"], now=0)
    _join(c, "b", ["six"], now=500)
    assert c.next_deadline() == 1000
    c.tick(1000)
    assert list(c.groups["g"].members) == ["b"]
    b = _beat(c, "b", 2, 1100)
    assert b.assignment == {T2: [0, 1, 2, 3, 4, 5]}


# ---- persistence: the ShareGroup* records of __consumer_offsets ----


def test_epoch_record_layout_is_kafkas() -> None:
    c = _coordinator()
    result, out = c.heartbeat("g", "a", 0, "r1", ["one"], "cid", "/1.2.3.4", 0)
    assert result.error == ErrorCode.NONE
    keys = [k for _, k, _ in out.records]
    # member subscription, epoch, target member, target epoch, current assignment
    assert [int.from_bytes(k[:2], "big") for k in keys] == [10, 11, 13, 12, 14]
    partition, key, value = out.records[1]
    assert partition == c.partition_for("g")
    assert key == b"\x00\x0b\x00\x01g"  # type 11, GroupId as a non-flexible string
    group = c.groups["g"]
    assert value == (
        b"\x00\x00"  # value version 0
        + group.epoch.to_bytes(4, "big")
        + group.metadata_hash.to_bytes(8, "big", signed=True)
        + b"\x00"  # no tagged fields
    )
    assert group.metadata_hash != 0
    member_key, member_value = out.records[0][1:]
    assert member_key == b"\x00\x0a\x00\x01g\x00\x01a"
    # RackId, ClientId, ClientHost (compact strings), SubscribedTopicNames, tagged fields
    assert member_value == b"\x00\x00\x03r1\x04cid\t/1.2.3.4\x02\x04one\x00"


def _replayed(
    c: ShareGroupCoordinator, records: list[tuple[int, bytes, bytes | None]]
) -> dict[str, object]:
    fresh = _coordinator()
    partition = c.partition_for("g")
    fresh.load(partition, [(k, v, -1, -1, -1) for p, k, v in records if p == partition], 0)
    return _comparable(fresh)


def _comparable(c: ShareGroupCoordinator) -> dict[str, object]:
    return {
        gid: (
            g.epoch,
            g.assignment_epoch,
            g.metadata_hash,
            {
                m.member_id: (
                    m.client_id,
                    m.client_host,
                    m.rack_id,
                    sorted(m.subscribed),
                    m.epoch,
                    m.assignment,
                )
                for m in g.members.values()
            },
        )
        for gid, g in c.groups.items()
    }


OPS = st.lists(
    st.tuples(
        st.sampled_from(["join", "beat", "resubscribe", "leave", "tick", "grow", "delete"]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([["one"], ["six"], ["one", "six"], ["none"]]),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_replaying_the_records_rebuilds_the_live_groups(
    ops: list[tuple[str, str, list[str]]],
) -> None:
    """Whatever happened to the group, a coordinator loading its records (a restart, a
    failover) has the same epochs, members, subscriptions and assignments."""
    topics = dict(TOPICS)
    c = ShareGroupCoordinator(
        ShareGroupConfig(num_partitions=50, session_timeout_ms=1000), topics.get
    )
    records: list[tuple[int, bytes, bytes | None]] = []
    now = 0
    for op, member, subs in ops:
        now += 400
        group = c.groups.get("g")
        known = group.members.get(member) if group is not None else None
        if op == "join":
            _, out = c.heartbeat("g", member, 0, None, subs, "client", "/h", now)
        elif op == "beat" and known is not None:
            _, out = c.heartbeat("g", member, known.epoch, None, None, "client", "/h", now)
        elif op == "resubscribe" and known is not None:
            _, out = c.heartbeat("g", member, known.epoch, "rack", subs, "client", "/h", now)
        elif op == "leave":
            _, out = c.heartbeat("g", member, -1, None, None, "client", "/h", now)
        elif op == "tick":
            out = c.tick(now)
        elif op == "grow":
            tid, count = topics["six"]
            topics["six"] = (tid, count + 1)
            continue
        elif op == "delete":
            _, out = c.delete_group("g")
        else:
            continue
        records.extend(out.records)
        assert _replayed(c, records) == _comparable(c)


def test_deleting_a_share_group() -> None:
    c = _coordinator()
    _join(c, "a", ["one"])
    assert c.delete_group("g")[0] == ErrorCode.NON_EMPTY_GROUP
    assert c.delete_group("nope")[0] == ErrorCode.GROUP_ID_NOT_FOUND
    _beat(c, "a", -1, 10)
    error, out = c.delete_group("g")
    assert error == ErrorCode.NONE and "g" not in c.groups
    assert all(v is None for _, _, v in out.records)
    assert {int.from_bytes(k[:2], "big") for _, k, _ in out.records} == {11, 12, 15}


def test_the_group_coordinator_leaves_share_records_to_the_share_coordinator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both coordinators load the same `__consumer_offsets` partitions: the classic one skips
    the share-group record types quietly (no warning per record, no group of its own)."""
    c = _coordinator()
    _, out = c.heartbeat("g", "a", 0, None, ["six"], "client", "/h", 0)
    classic = GroupCoordinator(CoordinatorConfig(num_partitions=50), 0)
    partition = c.partition_for("g")
    with caplog.at_level(logging.WARNING):
        classic.load(partition, [(k, v, -1, -1, -1) for _, k, v in out.records], 0)
    assert classic.groups == {} and classic.consumer_group("g") is None
    assert not caplog.records
