"""TxnRuntime: the only door to one broker's TxnCoordinator. Each operation runs through the
generic runtime, which appends its records to `__transaction_state`; a prepared transaction's
markers are then written by a task per transaction, through the `MarkerWriter` port (the
composition root's in-process equivalent of Kafka's WriteTxnMarkers), retried until they are
all written, and the transaction is completed.

A write of `__transaction_state` that fails leaves the machine's memory ahead of the log: the
partition is unloaded, so the next request reloads it from the log, as Kafka reverts a pending
transition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Protocol

from msklite.clock import Clock
from msklite.controller import Controller, TopicState
from msklite.coordinator.coordinator import Output
from msklite.coordinator.runtime import CoordinatorRuntime, CoordinatorTopic
from msklite.coordinator.transaction import MarkerJob, TxnCoordinator, TxnMetadata, TxnOutput
from msklite.errors import ErrorCode
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)

TXN_TOPIC = "__transaction_state"
# Between rounds of markers that could not all be written (a leader moving, too few ISR).
MARKER_RETRY_MS = 100
LEADERSHIP_CHECK_MS = 1000
# How long a request that finds the transaction's markers still being written waits for them
# before it is answered anyway (see `markers_pending`).
MARKERS_WAIT_MS = 1000
# Marker outcomes not worth retrying: written; superseded by a newer epoch on the partition;
# the topic deleted.
_FINAL = (
    ErrorCode.NONE,
    ErrorCode.INVALID_PRODUCER_EPOCH,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
)


def ensure_txn_topic(controller: Controller) -> TopicState:
    """`__transaction_state`, created (internal, compacted) on first use, as Kafka does.
    Raises KafkaError (INVALID_REPLICATION_FACTOR) while too few brokers are alive."""
    topic = controller.topics.get(TXN_TOPIC)
    if topic is None:
        configs = controller.configs
        topic = controller.create_topic(
            TXN_TOPIC,
            configs.get_int("transaction.state.log.num.partitions"),
            configs.get_int("transaction.state.log.replication.factor"),
            configs={
                "cleanup.policy": "compact",
                "compression.type": "uncompressed",
                "min.insync.replicas": str(configs.get_int("transaction.state.log.min.isr")),
                "segment.bytes": str(configs.get_int("transaction.state.log.segment.bytes")),
                "unclean.leader.election.enable": "false",
            },
            internal=True,
        )
    return topic


class MarkerWriter(Protocol):
    """Where markers go: data partitions get a control batch through their leader's
    replicated append; `__consumer_offsets` partitions complete the group coordinator's
    pending transactional offsets. The outcome at once when the marker is written within
    the call (its followers copied it), else an awaitable of it."""

    def write_marker(
        self,
        tp: TopicPartition,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        txn_partition: int,
    ) -> ErrorCode | Awaitable[ErrorCode]: ...


class TxnRuntime(CoordinatorRuntime[TxnCoordinator]):
    def __init__(
        self,
        coordinator: TxnCoordinator,
        topic: CoordinatorTopic,
        clock: Clock,
        markers: MarkerWriter,
    ) -> None:
        super().__init__(coordinator, topic, clock, coordinator.config.num_partitions)
        self._markers = markers
        self._jobs: dict[str, asyncio.Task[None]] = {}

    def partition_for(self, transactional_id: str) -> int:
        return self._machine.partition_for(transactional_id)

    def owns(self, transactional_id: str) -> bool:
        return self._owns_partition(self._machine.partition_for(transactional_id))

    # ---- operations ----

    def init_producer_id(
        self, transactional_id: str, timeout_ms: int, producer_id: int, epoch: int
    ) -> tuple[ErrorCode, int, int]:
        (error, pid, new_epoch), write_error = self._write(
            lambda now: self._machine.init_producer_id(
                transactional_id, timeout_ms, producer_id, epoch, now
            )
        )
        if write_error != ErrorCode.NONE and error in (
            ErrorCode.NONE,
            ErrorCode.CONCURRENT_TRANSACTIONS,
        ):
            return write_error, -1, -1
        return error, pid, new_epoch

    def add_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: list[TopicPartition]
    ) -> ErrorCode:
        error, write_error = self._write(
            lambda now: self._machine.add_partitions(
                transactional_id, producer_id, epoch, partitions, now
            )
        )
        return write_error if error == ErrorCode.NONE else error

    def verify_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        return self._machine.verify_partitions(transactional_id, producer_id, epoch, partitions)

    def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool
    ) -> ErrorCode:
        error, write_error = self._write(
            lambda now: self._machine.end_txn(transactional_id, producer_id, epoch, commit, now)
        )
        return write_error if error == ErrorCode.NONE else error

    def markers_pending(self, transactional_id: str) -> Awaitable[None] | None:
        """While the transaction's markers are being written: an awaitable that ends when
        they all are (the transaction complete) or MARKERS_WAIT_MS later, whichever comes
        first. EndTxn answers once the prepare record is written, as Kafka's does, and the
        markers follow; a request that meets them (the producer's next AddPartitionsToTxn
        racing the commit's markers) waits for them and is answered as the transaction then
        stands, instead of CONCURRENT_TRANSACTIONS and a client backoff (20-100 ms)."""
        task = self._jobs.get(transactional_id)
        if task is None or task.done():
            return None
        return self._bounded_wait(task)

    async def _bounded_wait(self, task: asyncio.Task[None]) -> None:
        done = asyncio.get_running_loop().create_future()

        def finish(*_: object) -> None:
            if not done.done():
                done.set_result(None)

        timer = self.clock.call_later(MARKERS_WAIT_MS, finish)
        task.add_done_callback(finish)
        try:
            await done
        finally:
            timer.cancel()
            task.remove_done_callback(finish)

    # ---- admin ----

    def transactions(self) -> list[TxnMetadata]:
        """Every transaction of every partition this broker leads."""
        self.load_all()
        return list(self._machine.txns.values())

    def transaction(self, transactional_id: str) -> TxnMetadata | None:
        return self._machine.txns.get(transactional_id)

    # ---- effects ----

    def _apply(self, out: Output) -> ErrorCode:
        error = super()._apply(out)
        if error != ErrorCode.NONE:
            # Memory is ahead of the log: forget it, the log is the truth.
            for partition in {p for p, _, _ in out.records}:
                self._machine.unload(partition)
            return error
        if isinstance(out, TxnOutput):
            for job in out.markers:
                running = self._jobs.get(job.transactional_id)
                if running is None or running.done():
                    task = asyncio.get_running_loop().create_task(self._write_markers(job))
                    self._jobs[job.transactional_id] = task
        return error

    def _timers_moved(self) -> bool:
        # The machine's deadlines (its periodic checks, markers to resend after a load) move
        # only in `tick` and `load`, not with each request: no timer-loop pass per request.
        return self._armed_ms == -1 or self._machine.next_deadline() < self._armed_ms

    async def _write_markers(self, job: MarkerJob) -> None:
        """Every marker of `job`, then the transaction's completion: in the task's first step
        when each marker is written within its call (no turn of the event loop per marker)."""
        pending = list(job.partitions)
        while pending:
            results = [
                self._markers.write_marker(
                    tp, job.producer_id, job.producer_epoch, job.commit, job.txn_partition
                )
                for tp in pending
            ]
            waiting = [r for r in results if not isinstance(r, ErrorCode)]
            done = iter(await asyncio.gather(*waiting) if waiting else ())
            errors = [r if isinstance(r, ErrorCode) else next(done) for r in results]
            failed = [tp for tp, e in zip(pending, errors, strict=True) if e not in _FINAL]
            if failed:
                log.info(
                    "markers of %r not yet written to %s: %s",
                    job.transactional_id,
                    failed,
                    [e.name for e in errors if e not in _FINAL],
                )
                await self.clock.sleep(MARKER_RETRY_MS)
                if job.txn_partition not in self._machine.loaded:
                    return  # another broker coordinates it now, and writes them
            pending = failed
        self._apply(self._machine.markers_written(job, self.clock.now_ms()))

    async def run(self) -> None:
        watcher = asyncio.get_running_loop().create_task(self._watch_leadership())
        try:
            await super().run()
        finally:
            watcher.cancel()
            for task in self._jobs.values():
                task.cancel()

    async def _watch_leadership(self) -> None:
        """Take up partitions this broker came to lead (and drop the others) without waiting
        for a client: their prepared transactions complete, their open ones time out."""
        while True:
            await self.clock.sleep(LEADERSHIP_CHECK_MS)
            self.load_all()
