"""CoordinatorRuntime: the thin, generic runtime around a coordinator's state machine (Kafka's
CoordinatorRuntime). It performs the effects the machine decides — appends its records to the
internal topic, answers requests parked on futures — fires its timers from the injected clock,
and loads or unloads partitions of the internal topic as leadership moves.

Subclasses (`group_runtime.GroupRuntime`; the transaction coordinator later) are the only door
to their state machine: each operation runs through `_write` or `_wait`, which apply the
machine's output, so a caller cannot forget to.

The coordinator package sits beside `msklite.replication` in the layering, so it reaches the
log only through the `CoordinatorTopic` port; `msklite.replication.internal_topic.InternalTopic`
implements it over the broker's replica manager, and the composition root wires the two.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from msklite.clock import Clock
from msklite.coordinator.coordinator import LogRecord, Output
from msklite.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)


class CoordinatorTopic(Protocol):
    """This broker's view of a coordinator's internal topic (`__consumer_offsets`, …)."""

    topic: str

    def is_leader(self, partition: int) -> bool: ...

    def append(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        producer: tuple[int, int] | None = None,
    ) -> None:
        """Append as leader, as one batch — a transactional one of `producer` (id, epoch) if
        given; raises KafkaError (NOT_LEADER_OR_FOLLOWER, INVALID_PRODUCER_EPOCH, …)."""

    def records(self, partition: int) -> Iterator[LogRecord]:
        """Every record of the partition up to its high watermark, oldest first."""


class StateMachine(Protocol):
    """A coordinator's state, sharded by the partitions of its internal topic: synchronous,
    given the time by its caller, and answering every change with an `Output`."""

    @property
    def loaded(self) -> Container[int]: ...

    def load(self, partition: int, records: Iterable[LogRecord], now_ms: int) -> None: ...

    def unload(self, partition: int) -> Output: ...

    def next_deadline(self) -> int: ...

    def tick(self, now_ms: int) -> Output: ...


M = TypeVar("M", bound=StateMachine)
R = TypeVar("R")


class CoordinatorRuntime(Generic[M]):
    def __init__(
        self, machine: M, topic: CoordinatorTopic, clock: Clock, num_partitions: int
    ) -> None:
        self._machine = machine
        self.topic = topic
        self.clock = clock
        self._num_partitions = num_partitions
        self._waiters: dict[int, asyncio.Future[object]] = {}
        self._ids = itertools.count()
        self._wakeup = asyncio.Event()
        # When the timer loop wakes up next (`run`); -1 while it is not waiting.
        self._armed_ms = -1

    # ---- ownership ----

    def _owns_partition(self, partition: int) -> bool:
        """Whether this broker coordinates `partition` now, loading or unloading it when
        leadership moved since the last look."""
        leader = self.topic.is_leader(partition)
        loaded = partition in self._machine.loaded
        if leader and not loaded:
            self._machine.load(partition, self.topic.records(partition), self.clock.now_ms())
            self._wakeup.set()
        elif loaded and not leader:
            self._apply(self._machine.unload(partition))
        return leader

    def load_all(self) -> None:
        for p in range(self._num_partitions):
            self._owns_partition(p)

    # ---- the door: every operation applies its output ----

    def _write(self, op: Callable[[int], tuple[R, Output]]) -> tuple[R, ErrorCode]:
        """Run `op(now_ms)` on the machine and apply its output: (its result, the error of
        writing its records, if any)."""
        result, out = op(self.clock.now_ms())
        return result, self._apply(out)

    async def _wait(self, op: Callable[[int, int], Output]) -> object:
        """Run `op(waiter, now_ms)` and park until the machine completes `waiter` (a later
        operation or timer may be the one that does)."""
        waiter = next(self._ids)
        fut = self._waiters[waiter] = asyncio.get_running_loop().create_future()
        try:
            self._apply(op(waiter, self.clock.now_ms()))
            return await fut
        finally:
            # a cancelled request (its connection closed) must not leave its future behind
            self._waiters.pop(waiter, None)

    def _apply(self, out: Output) -> ErrorCode:
        """Append the records, then answer the parked requests; the append's error, if any."""
        error = ErrorCode.NONE
        batches: dict[tuple[int, tuple[int, int] | None], list[tuple[bytes, bytes | None]]] = {}
        for partition, key, value in out.records:
            batches.setdefault((partition, None), []).append((key, value))
        for partition, producer_id, epoch, key, txn_value in out.txn_records:
            batches.setdefault((partition, (producer_id, epoch)), []).append((key, txn_value))
        for (partition, producer), records in batches.items():
            try:
                self.topic.append(partition, records, producer)
            except KafkaError as e:
                log.warning("writing to %s-%d failed: %s", self.topic.topic, partition, e)
                # Kafka maps a failed internal-topic write to a coordinator error, so that
                # clients look the coordinator up again.
                if e.code in (
                    ErrorCode.NOT_LEADER_OR_FOLLOWER,
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                ):
                    error = ErrorCode.NOT_COORDINATOR
                elif e.code == ErrorCode.INVALID_PRODUCER_EPOCH:
                    error = e.code  # a transactional write of a fenced producer
                else:
                    error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        for waiter, response in out.completions:
            fut = self._waiters.pop(waiter, None)
            if fut is not None and not fut.done():
                fut.set_result(response)
        if self._timers_moved():
            self._wakeup.set()
        return error

    def _timers_moved(self) -> bool:
        """Whether an operation may have brought the machine's next deadline before the one
        the timer loop waits for: always, unless a subclass's machine knows cheaply."""
        return True

    # ---- timers ----

    async def run(self) -> None:
        """Fire the machine's timers until cancelled."""
        while True:
            self._wakeup.clear()
            self._armed_ms = self._machine.next_deadline()
            delay = max(self._armed_ms - self.clock.now_ms(), 0)
            timer = self.clock.call_later(delay, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                timer.cancel()
                self._armed_ms = -1
            try:
                self._apply(self._machine.tick(self.clock.now_ms()))
            except Exception:
                # A bug in one timer must not stop every other timer on this broker.
                log.exception("%s coordinator timers failed", self.topic.topic)
