"""TxnCoordinator: the transactions whose `__transaction_state` partition this broker leads
(Kafka's TransactionCoordinator and TransactionStateManager), as a synchronous state machine.

It is given the time by its caller and answers each operation with its result and a `TxnOutput`:
the `__transaction_state` records to append, and the markers to write (`MarkerJob`) once a
transaction is prepared. The runtime (`txn_runtime.py`) writes both, then reports the markers
written (`markers_written`), which completes the transaction.

States (Kafka's TransactionState, with its wire ids):
Empty → Ongoing (AddPartitions / AddOffsets) → PrepareCommit | PrepareAbort (EndTxn, or a
timeout or a fencing InitProducerId for an abort) → CompleteCommit | CompleteAbort (markers
written) → Ongoing again, or Empty after InitProducerId bumps the epoch; Dead once the
transactional id expires (a tombstone). PrepareEpochFence is Kafka's transient state while a
fencing epoch bump is written; here the bump and the PrepareAbort are one record, so it is never
held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from msklite.config import BrokerConfigs
from msklite.coordinator.coordinator import LogRecord, Output, partition_for
from msklite.coordinator.txn_records import (
    TxnLogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from msklite.errors import ErrorCode, ProtocolError
from msklite.topic_partition import TopicPartition

log = logging.getLogger(__name__)
E = ErrorCode

# Kafka bumps to a new producer id instead of past this epoch (Short.MaxValue - 1), so that
# a fencing bump (epoch + 1) still fits.
MAX_EPOCH = 32766


class TxnState(IntEnum):
    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        return "".join(w.capitalize() for w in self.name.split("_"))


PREPARED = (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)
COMPLETED = (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


@dataclass(frozen=True, slots=True)
class TxnConfig:
    num_partitions: int = 50
    max_timeout_ms: int = 900_000
    abort_check_interval_ms: int = 10_000
    id_expiration_ms: int = 604_800_000
    expiry_check_interval_ms: int = 3_600_000

    @classmethod
    def from_broker_configs(cls, c: BrokerConfigs) -> TxnConfig:
        return cls(
            num_partitions=c.get_int("transaction.state.log.num.partitions"),
            max_timeout_ms=c.get_int("transaction.max.timeout.ms"),
            abort_check_interval_ms=c.get_int(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms"
            ),
            id_expiration_ms=c.get_int("transactional.id.expiration.ms"),
            expiry_check_interval_ms=c.get_int(
                "transaction.remove.expired.transaction.cleanup.interval.ms"
            ),
        )


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    partition: int  # of __transaction_state
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    last_update_ms: int
    start_ms: int = -1
    partitions: set[TopicPartition] = field(default_factory=set)
    # The id and epoch before the last bump (KIP-360): a retried InitProducerId that names
    # them gets the current ones instead of a second bump. Not persisted (value v0 has none).
    last_producer_id: int = -1
    last_producer_epoch: int = -1

    @property
    def is_open(self) -> bool:
        """Begun and not yet complete."""
        return self.state in (TxnState.ONGOING, *PREPARED)


@dataclass(frozen=True, slots=True)
class MarkerJob:
    """Write COMMIT or ABORT markers for a prepared transaction to its partitions."""

    transactional_id: str
    txn_partition: int
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]


@dataclass(slots=True)
class TxnOutput(Output):
    markers: list[MarkerJob] = field(default_factory=list)


class TxnCoordinator:
    def __init__(
        self, config: TxnConfig, allocate_producer_id: Callable[[], int], now_ms: int
    ) -> None:
        """`allocate_producer_id` returns a new producer id or raises KafkaError."""
        self.config = config
        self._allocate = allocate_producer_id
        self.txns: dict[str, TxnMetadata] = {}
        self.loaded: set[int] = set()
        # Prepared transactions found at load: their markers are (re)written at the next tick.
        self._resend: set[str] = set()
        self._next_abort_check = now_ms + config.abort_check_interval_ms
        self._next_expiry_check = now_ms + config.expiry_check_interval_ms

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.config.num_partitions)

    # ---- loading: replay of __transaction_state ----

    def load(self, partition: int, records: Iterable[LogRecord], now_ms: int) -> None:
        self.loaded.add(partition)
        for key, value, _, _, marker in records:
            if marker != -1:
                continue  # nothing transactional is written here
            try:
                txn_id = decode_key(key)
                if value is None:
                    self.txns.pop(txn_id, None)
                    continue
                v = decode_value(value)
            except ProtocolError as e:
                log.warning("skipping a record of __transaction_state-%d: %s", partition, e)
                continue
            self.txns[txn_id] = TxnMetadata(
                txn_id,
                partition,
                v.producer_id,
                v.producer_epoch,
                v.timeout_ms,
                TxnState(v.state),
                v.last_update_ms,
                v.start_ms,
                set(v.partitions),
            )
        # A coordinator that stopped between prepare and complete: finish its work.
        self._resend.update(
            t.transactional_id
            for t in self.txns.values()
            if t.partition == partition and t.state in PREPARED
        )

    def unload(self, partition: int) -> TxnOutput:
        self.loaded.discard(partition)
        for txn_id in [t for t, m in self.txns.items() if m.partition == partition]:
            del self.txns[txn_id]
            self._resend.discard(txn_id)
        return TxnOutput()

    # ---- records ----

    def _record(self, txn: TxnMetadata, out: TxnOutput) -> None:
        value = TxnLogValue(
            txn.producer_id,
            txn.producer_epoch,
            txn.timeout_ms,
            int(txn.state),
            tuple(sorted(txn.partitions)),
            txn.last_update_ms,
            txn.start_ms,
        )
        out.records.append((txn.partition, encode_key(txn.transactional_id), encode_value(value)))

    def _prepare(self, txn: TxnMetadata, commit: bool, now_ms: int, out: TxnOutput) -> None:
        txn.state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        txn.last_update_ms = now_ms
        self._record(txn, out)
        out.markers.append(self._job(txn))

    @staticmethod
    def _job(txn: TxnMetadata) -> MarkerJob:
        return MarkerJob(
            txn.transactional_id,
            txn.partition,
            txn.producer_id,
            txn.producer_epoch,
            txn.state == TxnState.PREPARE_COMMIT,
            tuple(sorted(txn.partitions)),
        )

    def _fence_and_abort(self, txn: TxnMetadata, now_ms: int, out: TxnOutput) -> None:
        """Kafka's prepareFenceProducerEpoch + abort: the epoch moves on, so the producer
        that owned the transaction can neither add to it nor end it."""
        txn.last_producer_id, txn.last_producer_epoch = txn.producer_id, txn.producer_epoch
        if txn.producer_epoch < MAX_EPOCH + 1:
            txn.producer_epoch += 1
        self._prepare(txn, False, now_ms, out)

    @staticmethod
    def _check_producer(txn: TxnMetadata | None, producer_id: int, epoch: int) -> ErrorCode:
        if txn is None or txn.producer_id != producer_id:
            return E.INVALID_PRODUCER_ID_MAPPING
        if epoch != txn.producer_epoch:
            return E.PRODUCER_FENCED
        return E.NONE

    # ---- InitProducerId ----

    def init_producer_id(
        self,
        transactional_id: str,
        timeout_ms: int,
        expected_producer_id: int,
        expected_epoch: int,
        now_ms: int,
    ) -> tuple[tuple[ErrorCode, int, int], TxnOutput]:
        """(error, producer id, epoch). Raises KafkaError when no producer id can be had."""
        out = TxnOutput()
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            return (E.INVALID_TRANSACTION_TIMEOUT, -1, -1), out
        txn = self.txns.get(transactional_id)
        if txn is None or txn.state == TxnState.DEAD:
            if expected_producer_id != -1 and txn is None:
                # KIP-360: a producer that outlived its transactional id's expiry
                return (E.INVALID_PRODUCER_ID_MAPPING, -1, -1), out
            txn = TxnMetadata(
                transactional_id,
                self.partition_for(transactional_id),
                self._allocate(),
                0,
                timeout_ms,
                TxnState.EMPTY,
                now_ms,
            )
            self.txns[transactional_id] = txn
            self._record(txn, out)
            return (E.NONE, txn.producer_id, 0), out
        if txn.state in PREPARED:
            return (E.CONCURRENT_TRANSACTIONS, -1, -1), out
        if expected_producer_id != -1:
            if (expected_producer_id, expected_epoch) == (
                txn.last_producer_id,
                txn.last_producer_epoch,
            ) and txn.state != TxnState.ONGOING:
                return (E.NONE, txn.producer_id, txn.producer_epoch), out  # a retry
            if expected_producer_id != txn.producer_id:
                return (E.INVALID_PRODUCER_ID_MAPPING, -1, -1), out
            if expected_epoch != txn.producer_epoch:
                return (E.PRODUCER_FENCED, -1, -1), out
        if txn.state == TxnState.ONGOING:
            # The previous producer left a transaction open: abort it, fenced; the client
            # retries until the abort is complete.
            self._fence_and_abort(txn, now_ms, out)
            return (E.CONCURRENT_TRANSACTIONS, -1, -1), out
        txn.last_producer_id, txn.last_producer_epoch = txn.producer_id, txn.producer_epoch
        if txn.producer_epoch >= MAX_EPOCH:
            txn.producer_id, txn.producer_epoch = self._allocate(), 0
        else:
            txn.producer_epoch += 1
        txn.state = TxnState.EMPTY
        txn.timeout_ms = timeout_ms
        txn.partitions = set()
        txn.start_ms = -1
        txn.last_update_ms = now_ms
        self._record(txn, out)
        return (E.NONE, txn.producer_id, txn.producer_epoch), out

    # ---- AddPartitionsToTxn / AddOffsetsToTxn ----

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
    ) -> tuple[ErrorCode, TxnOutput]:
        out = TxnOutput()
        txn = self.txns.get(transactional_id)
        error = self._check_producer(txn, producer_id, epoch)
        if error != E.NONE:
            return error, out
        assert txn is not None
        if txn.state in PREPARED:
            return E.CONCURRENT_TRANSACTIONS, out
        if txn.state not in (TxnState.EMPTY, TxnState.ONGOING, *COMPLETED):
            return E.INVALID_TXN_STATE, out
        new = set(partitions)
        if txn.state == TxnState.ONGOING and new <= txn.partitions:
            return E.NONE, out
        if txn.state != TxnState.ONGOING:
            txn.partitions = set()
            txn.start_ms = now_ms
        txn.state = TxnState.ONGOING
        txn.partitions |= new
        txn.last_update_ms = now_ms
        self._record(txn, out)
        return E.NONE, out

    def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        partitions: Iterable[TopicPartition],
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """KIP-890's verify_only form: whether each partition is in the transaction
        (TRANSACTION_ABORTABLE where not, as Kafka 3.8+ answers; CONCURRENT_TRANSACTIONS while
        its markers are being written)."""
        txn = self.txns.get(transactional_id)
        error = self._check_producer(txn, producer_id, epoch)
        if error != E.NONE:
            return error, {}
        assert txn is not None
        if txn.state in PREPARED:
            return E.CONCURRENT_TRANSACTIONS, {}
        return E.NONE, {
            tp: E.NONE if tp in txn.partitions else E.TRANSACTION_ABORTABLE for tp in partitions
        }

    # ---- EndTxn ----

    def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool, now_ms: int
    ) -> tuple[ErrorCode, TxnOutput]:
        out = TxnOutput()
        txn = self.txns.get(transactional_id)
        error = self._check_producer(txn, producer_id, epoch)
        if error != E.NONE:
            return error, out
        assert txn is not None
        state = txn.state
        if state == TxnState.ONGOING:
            self._prepare(txn, commit, now_ms, out)
            return E.NONE, out
        wanted_prepare = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        wanted_complete = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if state == wanted_complete:
            return E.NONE, out  # a retry of an EndTxn that completed
        if state == wanted_prepare:
            return E.CONCURRENT_TRANSACTIONS, out
        return E.INVALID_TXN_STATE, out

    def markers_written(self, job: MarkerJob, now_ms: int) -> TxnOutput:
        """Every marker of `job` is written: the transaction completes (unless it has moved on
        or this broker no longer coordinates it)."""
        out = TxnOutput()
        txn = self.txns.get(job.transactional_id)
        if txn is None or (txn.producer_id, txn.producer_epoch) != (
            job.producer_id,
            job.producer_epoch,
        ):
            return out
        if txn.state != (TxnState.PREPARE_COMMIT if job.commit else TxnState.PREPARE_ABORT):
            return out
        txn.state = TxnState.COMPLETE_COMMIT if job.commit else TxnState.COMPLETE_ABORT
        txn.partitions = set()
        txn.last_update_ms = now_ms
        self._record(txn, out)
        return out

    # ---- timers ----

    def next_deadline(self) -> int:
        if self._resend:
            return 0
        return min(self._next_abort_check, self._next_expiry_check)

    def tick(self, now_ms: int) -> TxnOutput:
        out = TxnOutput()
        for txn_id in sorted(self._resend):
            txn = self.txns.get(txn_id)
            if txn is not None and txn.state in PREPARED:
                out.markers.append(self._job(txn))
        self._resend.clear()
        if now_ms >= self._next_abort_check:
            self._next_abort_check = now_ms + self.config.abort_check_interval_ms
            self._abort_timed_out(now_ms, out)
        if now_ms >= self._next_expiry_check:
            self._next_expiry_check = now_ms + self.config.expiry_check_interval_ms
            self._expire_ids(now_ms, out)
        return out

    def _abort_timed_out(self, now_ms: int, out: TxnOutput) -> None:
        for txn in list(self.txns.values()):
            if txn.state == TxnState.ONGOING and txn.start_ms + txn.timeout_ms <= now_ms:
                log.info(
                    "aborting transaction %r of producer %d: open longer than %d ms",
                    txn.transactional_id,
                    txn.producer_id,
                    txn.timeout_ms,
                )
                self._fence_and_abort(txn, now_ms, out)

    def _expire_ids(self, now_ms: int, out: TxnOutput) -> None:
        """transactional.id.expiration.ms: ids idle that long (no open transaction) go."""
        for txn in list(self.txns.values()):
            if (
                txn.state in (TxnState.EMPTY, *COMPLETED)
                and txn.last_update_ms + self.config.id_expiration_ms <= now_ms
            ):
                del self.txns[txn.transactional_id]
                out.records.append((txn.partition, encode_key(txn.transactional_id), None))
