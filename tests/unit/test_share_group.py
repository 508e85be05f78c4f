"""Share-group membership (KIP-932): epochs, the simple assignor, fencing and session expiry."""

from __future__ import annotations

import uuid

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
    return c.heartbeat("g", member, 0, None, topics, "client", "/127.0.0.1", now)


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
    again = c.heartbeat("g", "a", 1, None, None, "client", "/h", 10)
    assert (again.error, again.epoch, again.assignment) == (ErrorCode.NONE, 2, {T1: [0]})
    # nothing changed: no assignment sent
    assert c.heartbeat("g", "a", 2, None, None, "client", "/h", 20).assignment is None
    stale = c.heartbeat("g", "a", 1, None, None, "client", "/h", 30)
    assert stale.error == ErrorCode.FENCED_MEMBER_EPOCH
    unknown = c.heartbeat("g", "zz", 2, None, None, "client", "/h", 30)
    assert unknown.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert c.heartbeat("g", "b", -1, None, None, "client", "/h", 40).epoch == -1
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
    b = c.heartbeat("g", "b", 2, None, None, "client", "/h", 1100)
    assert b.assignment == {T2: [0, 1, 2, 3, 4, 5]}
