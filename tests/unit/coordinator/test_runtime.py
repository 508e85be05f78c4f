"""GroupRuntime, the only door to the group coordinator: every operation writes the records the
state machine decides and answers the requests it completes, with no separate apply step; a
failed write comes back in the operation's errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

from msklite.clock import ManualClock
from msklite.coordinator.coordinator import (
    CoordinatorConfig,
    GroupCoordinator,
    JoinRequest,
    LogRecord,
    OffsetCommit,
)
from msklite.coordinator.group_runtime import OFFSETS_TOPIC, GroupRuntime
from msklite.coordinator.records import OffsetKey, decode_key
from msklite.errors import ErrorCode, KafkaError
from msklite.topic_partition import TopicPartition


class MemoryTopic:
    """An in-memory internal topic: every partition led here, appends kept per partition."""

    topic = OFFSETS_TOPIC

    def __init__(self) -> None:
        self.data: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.fail: ErrorCode | None = None
        self.leader = True

    def is_leader(self, partition: int) -> bool:
        return self.leader

    def append(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        producer: tuple[int, int] | None = None,
    ) -> None:
        if self.fail is not None:
            raise KafkaError(self.fail)
        self.data.setdefault(partition, []).extend(records)

    def records(self, partition: int) -> Iterator[LogRecord]:
        return iter([(k, v, -1, -1, -1) for k, v in self.data.get(partition, [])])


def _runtime(topic: MemoryTopic, clock: ManualClock | None = None) -> GroupRuntime:
    clock = clock or ManualClock()
    return GroupRuntime(
        GroupCoordinator(CoordinatorConfig(num_partitions=4), clock.now_ms()), topic, clock
    )


def _keys(topic: MemoryTopic) -> list[object]:
    return [decode_key(k) for records in topic.data.values() for k, _ in records]


def test_a_commit_is_written_by_the_call_itself() -> None:
    topic = MemoryTopic()
    groups = _runtime(topic)
    assert groups.owns("g")
    errors = groups.commit("g", -1, "", None, [OffsetCommit("t", 0, 42), OffsetCommit("t", 1, 7)])
    assert errors == [ErrorCode.NONE, ErrorCode.NONE]
    assert _keys(topic) == [OffsetKey("g", "t", 0), OffsetKey("g", "t", 1)]
    assert [(t, p, o.offset if o else None) for t, p, o in groups.fetch_offsets("g", None)] == [
        ("t", 0, 42),
        ("t", 1, 7),
    ]
    # Replayed by a new runtime over the same topic: the commit was really written.
    again = _runtime(topic)
    assert again.owns("g")
    assert [o.offset for _, _, o in again.fetch_offsets("g", None) if o] == [42, 7]


def test_failed_writes_come_back_as_coordinator_errors() -> None:
    topic = MemoryTopic()
    groups = _runtime(topic)
    groups.owns("g")
    topic.fail = ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert groups.commit("g", -1, "", None, [OffsetCommit("t", 0, 1)]) == [
        ErrorCode.NOT_COORDINATOR
    ]
    topic.fail = ErrorCode.KAFKA_STORAGE_ERROR
    assert groups.commit("g", -1, "", None, [OffsetCommit("t", 0, 1)]) == [
        ErrorCode.COORDINATOR_NOT_AVAILABLE
    ]
    # An error of the operation itself is kept, not replaced by the write's.
    assert groups.delete_offsets("nope", [TopicPartition("t", 0)]) == (
        ErrorCode.GROUP_ID_NOT_FOUND,
        [],
    )
    assert groups.delete_group("nope") == ErrorCode.GROUP_ID_NOT_FOUND


def test_deletes_write_tombstones() -> None:
    topic = MemoryTopic()
    groups = _runtime(topic)
    groups.owns("g")
    groups.commit("g", -1, "", None, [OffsetCommit("t", 0, 1), OffsetCommit("t", 1, 2)])
    assert groups.delete_offsets("g", [TopicPartition("t", 0)]) == (
        ErrorCode.NONE,
        [ErrorCode.NONE],
    )
    assert groups.delete_group("g") == ErrorCode.NONE
    tombstones = [decode_key(k) for rs in topic.data.values() for k, v in rs if v is None]
    assert OffsetKey("g", "t", 0) in tombstones and OffsetKey("g", "t", 1) in tombstones
    assert groups.group("g") is None and groups.list_groups() == []


async def test_a_join_parks_until_the_machine_answers_it() -> None:
    groups = _runtime(MemoryTopic())
    groups.owns("g")
    req = JoinRequest("g", "", None, 10_000, 10_000, "consumer", [("range", b"")])
    response = await groups.join(req)  # v4+: the first join is answered at once
    assert response.error == ErrorCode.MEMBER_ID_REQUIRED and response.member_id
    assert not groups._waiters  # nothing parked is left behind


def test_leadership_moving_away_unloads_the_groups() -> None:
    topic = MemoryTopic()
    groups = _runtime(topic)
    groups.owns("g")
    groups.commit("g", -1, "", None, [OffsetCommit("t", 0, 1)])
    assert [g.group_id for g in groups.list_groups()] == ["g"]
    topic.leader = False
    assert not groups.owns("g")
    assert groups.group("g") is None


async def test_the_rebalance_delay_runs_on_the_injected_clock() -> None:
    clock = ManualClock()
    groups = _runtime(MemoryTopic(), clock)
    groups.owns("g")
    timers = asyncio.get_running_loop().create_task(groups.run())
    req = JoinRequest("g", "", None, 10_000, 10_000, "consumer", [("range", b"")])
    member = (await groups.join(req)).member_id
    join = asyncio.get_running_loop().create_task(
        groups.join(JoinRequest("g", member, None, 10_000, 10_000, "consumer", [("range", b"")]))
    )
    try:
        for ms in (0, 2_999):  # group.initial.rebalance.delay.ms is 3000
            clock.advance(ms)
            for _ in range(5):
                await asyncio.sleep(0)
            assert not join.done()
        clock.advance(1)
        response = await asyncio.wait_for(join, 1)  # the old real-time wait took 3 s
        assert response.error == ErrorCode.NONE and response.leader == member
    finally:
        timers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timers
