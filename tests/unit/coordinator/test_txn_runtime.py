"""TxnRuntime: EndTxn's prepare record is written by the call itself; the markers and the
transaction's completion follow in the marker task's first step when every marker is written
within its call, and wait for the ones that need their followers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable

from msklite.clock import ManualClock
from msklite.coordinator.transaction import TxnConfig, TxnCoordinator, TxnOutput, TxnState
from msklite.coordinator.txn_runtime import TxnRuntime
from msklite.errors import ErrorCode
from msklite.topic_partition import TopicPartition
from tests.unit.coordinator.test_runtime import MemoryTopic

TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


class Markers:
    """Writes every marker within the call, except those of `slow` partitions: an awaitable
    the test completes."""

    def __init__(self) -> None:
        self.written: list[TopicPartition] = []
        self.slow: dict[TopicPartition, asyncio.Future[ErrorCode]] = {}

    def write_marker(
        self, tp: TopicPartition, producer_id: int, epoch: int, commit: bool, txn_partition: int
    ) -> ErrorCode | Awaitable[ErrorCode]:
        self.written.append(tp)
        return self.slow.get(tp, ErrorCode.NONE)


class CountingCoordinator(TxnCoordinator):
    def __init__(self, now_ms: int) -> None:
        ids = itertools.count(1000)
        super().__init__(TxnConfig(num_partitions=4), lambda: next(ids), now_ms)
        self.ticks = 0

    def tick(self, now_ms: int) -> TxnOutput:
        self.ticks += 1
        return super().tick(now_ms)


def _runtime(markers: Markers, machine: TxnCoordinator | None = None) -> TxnRuntime:
    clock = ManualClock()
    machine = machine or CountingCoordinator(clock.now_ms())
    return TxnRuntime(machine, MemoryTopic(), clock, markers)


def _state(txn: TxnRuntime) -> TxnState | None:
    meta = txn.transaction("tx")
    return None if meta is None else meta.state


def _commit(txn: TxnRuntime) -> None:
    assert txn.owns("tx")
    error, pid, epoch = txn.init_producer_id("tx", 60000, -1, -1)
    assert error == ErrorCode.NONE
    assert txn.add_partitions("tx", pid, epoch, [TP0, TP1]) == ErrorCode.NONE
    assert txn.end_txn("tx", pid, epoch, True) == ErrorCode.NONE
    assert _state(txn) == TxnState.PREPARE_COMMIT  # EndTxn is answered here, as Kafka's


async def test_markers_and_completion_take_one_step_of_the_event_loop() -> None:
    markers = Markers()
    txn = _runtime(markers)
    _commit(txn)
    assert markers.written == []  # after EndTxn's answer, not inside it
    await asyncio.sleep(0)
    assert markers.written == [TP0, TP1]
    assert _state(txn) == TxnState.COMPLETE_COMMIT
    assert txn.markers_pending("tx") is None


async def test_a_marker_that_needs_its_followers_is_awaited() -> None:
    markers = Markers()
    markers.slow[TP1] = asyncio.get_running_loop().create_future()
    txn = _runtime(markers)
    _commit(txn)
    await asyncio.sleep(0)
    assert _state(txn) == TxnState.PREPARE_COMMIT
    pending = txn.markers_pending("tx")
    assert pending is not None
    markers.slow[TP1].set_result(ErrorCode.NONE)
    await pending
    assert _state(txn) == TxnState.COMPLETE_COMMIT


async def test_requests_do_not_wake_the_timer_loop() -> None:
    """The machine's deadlines move only with its own checks and with loads: a transaction's
    requests run no pass of the timer loop (one per request before)."""
    machine = CountingCoordinator(ManualClock().now_ms())
    txn = _runtime(Markers(), machine)
    assert txn.owns("tx")  # the load wakes it once: markers to resend are looked for
    timers = asyncio.get_running_loop().create_task(txn.run())
    try:
        for _ in range(3):
            await asyncio.sleep(0)
        loaded = machine.ticks
        _commit(txn)
        for _ in range(3):
            await asyncio.sleep(0)
        assert _state(txn) == TxnState.COMPLETE_COMMIT
        assert machine.ticks == loaded
    finally:
        timers.cancel()
