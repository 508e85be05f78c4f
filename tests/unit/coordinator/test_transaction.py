"""The transaction coordinator's state machine: Kafka's transitions and error codes, its
records in Kafka's TransactionLog formats, reload, timeouts on the caller's clock, and a
hypothesis state machine against a model."""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from msklite.coordinator.coordinator import LogRecord
from msklite.coordinator.transaction import (
    MarkerJob,
    TxnConfig,
    TxnCoordinator,
    TxnOutput,
    TxnState,
)
from msklite.coordinator.txn_records import TxnLogValue, decode_key, decode_value, encode_value
from msklite.errors import ErrorCode as E
from msklite.topic_partition import TopicPartition

T0 = 1_000_000
TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


def _machine(**config: int) -> TxnCoordinator:
    ids = itertools.count(1000)
    return TxnCoordinator(TxnConfig(**config), lambda: next(ids), T0)


def _init(
    m: TxnCoordinator, txn_id: str = "tx", pid: int = -1, epoch: int = -1
) -> tuple[E, int, int, TxnOutput]:
    (error, new_pid, new_epoch), out = m.init_producer_id(txn_id, 60_000, pid, epoch, T0)
    return error, new_pid, new_epoch, out


def _replay(m: TxnCoordinator, outs: list[TxnOutput]) -> TxnCoordinator:
    """A new coordinator loading what `m` wrote."""
    fresh = _machine()
    records = [(k, v, -1, -1, -1) for out in outs for _, k, v in out.records]
    partition = m.partition_for("tx")
    fresh.load(partition, records, T0)
    return fresh


def _state(m: TxnCoordinator) -> TxnState:
    return m.txns["tx"].state


def test_first_init_gets_a_new_producer_id_at_epoch_0_and_writes_kafkas_record() -> None:
    m = _machine()
    error, pid, epoch, out = _init(m)
    assert (error, pid, epoch) == (E.NONE, 1000, 0)
    [(partition, key, value)] = out.records
    assert partition == m.partition_for("tx") and decode_key(key) == "tx"
    assert value is not None
    assert value.hex() == encode_value(TxnLogValue(1000, 0, 60_000, 0, (), T0, -1)).hex()
    # Kafka's TransactionLogValue v0 layout, byte for byte
    assert value[:2] == b"\x00\x00" and len(value) == 2 + 8 + 2 + 4 + 1 + 4 + 8 + 8


def test_second_init_bumps_the_epoch_and_fences_the_first_producer() -> None:
    m = _machine()
    _, pid, _, _ = _init(m)
    assert _init(m)[:3] == (E.NONE, pid, 1)
    assert m.add_partitions("tx", pid, 0, [TP0], T0)[0] == E.PRODUCER_FENCED
    assert m.end_txn("tx", pid, 0, True, T0)[0] == E.PRODUCER_FENCED
    assert m.add_partitions("tx", pid + 1, 1, [TP0], T0)[0] == E.INVALID_PRODUCER_ID_MAPPING
    assert m.add_partitions("other", pid, 1, [TP0], T0)[0] == E.INVALID_PRODUCER_ID_MAPPING


def test_invalid_timeout() -> None:
    m = _machine(max_timeout_ms=1000)
    (error, _, _), out = m.init_producer_id("tx", 1001, -1, -1, T0)
    assert error == E.INVALID_TRANSACTION_TIMEOUT and not out.records
    assert m.init_producer_id("tx", 0, -1, -1, T0)[0][0] == E.INVALID_TRANSACTION_TIMEOUT


def test_commit_writes_prepare_then_markers_then_complete() -> None:
    m = _machine()
    _, pid, epoch, _ = _init(m)
    error, out = m.add_partitions("tx", pid, epoch, [TP0, TP1], T0)
    assert error == E.NONE and decode_value(out.records[0][2] or b"").state == TxnState.ONGOING
    # adding what is already there writes nothing
    assert m.add_partitions("tx", pid, epoch, [TP0], T0)[1].records == []
    error, out = m.end_txn("tx", pid, epoch, True, T0 + 5)
    assert error == E.NONE
    assert decode_value(out.records[0][2] or b"").state == TxnState.PREPARE_COMMIT
    assert out.markers == [MarkerJob("tx", m.partition_for("tx"), pid, epoch, True, (TP0, TP1))]
    # while the markers are written, the producer must wait
    assert m.add_partitions("tx", pid, epoch, [TP0], T0)[0] == E.CONCURRENT_TRANSACTIONS
    assert m.end_txn("tx", pid, epoch, True, T0)[0] == E.CONCURRENT_TRANSACTIONS
    assert m.end_txn("tx", pid, epoch, False, T0)[0] == E.INVALID_TXN_STATE
    done = m.markers_written(out.markers[0], T0 + 6)
    value = decode_value(done.records[0][2] or b"")
    assert (value.state, value.partitions) == (TxnState.COMPLETE_COMMIT, ())
    # a retried EndTxn succeeds; the other outcome is refused
    assert m.end_txn("tx", pid, epoch, True, T0)[0] == E.NONE
    assert m.end_txn("tx", pid, epoch, False, T0)[0] == E.INVALID_TXN_STATE
    # the next transaction starts from the completed one
    assert m.add_partitions("tx", pid, epoch, [TP1], T0)[0] == E.NONE
    assert m.txns["tx"].partitions == {TP1}


def test_end_without_a_transaction_is_invalid_txn_state() -> None:
    m = _machine()
    _, pid, epoch, _ = _init(m)
    assert m.end_txn("tx", pid, epoch, True, T0)[0] == E.INVALID_TXN_STATE


def test_init_with_an_open_transaction_aborts_it_fenced_then_bumps() -> None:
    m = _machine()
    _, pid, epoch, _ = _init(m)
    m.add_partitions("tx", pid, epoch, [TP0], T0)
    error, _, _, out = _init(m)
    assert error == E.CONCURRENT_TRANSACTIONS
    [job] = out.markers
    assert (job.commit, job.producer_epoch) == (False, epoch + 1)
    assert _init(m)[0] == E.CONCURRENT_TRANSACTIONS  # until the markers are written
    m.markers_written(job, T0)
    assert _init(m)[:3] == (E.NONE, pid, epoch + 2)


def test_kip_360_recovery_and_retry() -> None:
    m = _machine()
    _, pid, epoch, _ = _init(m)
    assert _init(m, pid=pid, epoch=epoch)[:3] == (E.NONE, pid, epoch + 1)
    # the answer was lost: the same request again gets the same answer, not a second bump
    assert _init(m, pid=pid, epoch=epoch)[:3] == (E.NONE, pid, epoch + 1)
    assert _init(m, pid=pid, epoch=epoch + 5)[0] == E.PRODUCER_FENCED
    assert _init(m, pid=pid + 7, epoch=epoch)[0] == E.INVALID_PRODUCER_ID_MAPPING


def test_epoch_exhaustion_moves_to_a_new_producer_id() -> None:
    m = _machine()
    _, pid, _, _ = _init(m)
    m.txns["tx"].producer_epoch = 32766
    error, new_pid, epoch, _ = _init(m)
    assert (error, epoch) == (E.NONE, 0) and new_pid != pid


def test_a_new_coordinator_finishes_a_prepared_transaction() -> None:
    m = _machine()
    outs = []
    _, pid, epoch, out = _init(m)
    outs.append(out)
    outs.append(m.add_partitions("tx", pid, epoch, [TP0], T0)[1])
    outs.append(m.end_txn("tx", pid, epoch, False, T0)[1])
    fresh = _replay(m, outs)
    assert fresh.txns["tx"].state == TxnState.PREPARE_ABORT
    assert fresh.next_deadline() == 0
    out = fresh.tick(T0)
    assert out.markers == [MarkerJob("tx", fresh.partition_for("tx"), pid, epoch, False, (TP0,))]
    fresh.markers_written(out.markers[0], T0)
    assert _state(fresh) == TxnState.COMPLETE_ABORT


def test_unload_forgets_the_partition() -> None:
    m = _machine()
    _init(m)
    partition = m.partition_for("tx")
    m.load(partition, [], T0)
    m.unload(partition)
    assert "tx" not in m.txns and partition not in m.loaded


def test_a_transaction_open_past_its_timeout_is_aborted_and_fenced() -> None:
    m = _machine(abort_check_interval_ms=10_000)
    (_, pid, epoch), _ = m.init_producer_id("tx", 30_000, -1, -1, T0)
    m.add_partitions("tx", pid, epoch, [TP0], T0)
    assert m.next_deadline() == T0 + 10_000
    assert m.tick(T0 + 29_999).markers == []  # not yet expired at the second check
    out = m.tick(T0 + 40_000)
    [job] = out.markers
    assert (job.commit, job.producer_epoch) == (False, epoch + 1)
    assert m.end_txn("tx", pid, epoch, True, T0)[0] == E.PRODUCER_FENCED


def test_idle_transactional_ids_expire_with_a_tombstone() -> None:
    m = _machine(id_expiration_ms=1000, expiry_check_interval_ms=500)
    _init(m)
    out = m.tick(T0 + 1000)
    assert [(k, v) for _, k, v in out.records] == [(out.records[0][1], None)]
    assert "tx" not in m.txns


def test_verify_only() -> None:
    m = _machine()
    _, pid, epoch, _ = _init(m)
    m.add_partitions("tx", pid, epoch, [TP0], T0)
    assert m.verify_partitions("tx", pid, epoch, [TP0, TP1]) == (
        E.NONE,
        {TP0: E.NONE, TP1: E.TRANSACTION_ABORTABLE},
    )
    assert m.txns["tx"].partitions == {TP0}


# ---- a model-based state machine ----


class TxnModel(RuleBasedStateMachine):
    """Random Init / AddPartitions / End / markers / timeout / failover sequences: the
    coordinator agrees with a small model of Kafka's rules, and a coordinator that reloads
    the records written so far always has the same state."""

    def __init__(self) -> None:
        super().__init__()
        self.m = _machine(abort_check_interval_ms=1000)
        self.now = T0
        self.records: list[LogRecord] = []
        self.jobs: list[MarkerJob] = []
        # the model
        self.pid = -1
        self.epoch = -1
        self.state: TxnState | None = None
        self.parts: set[TopicPartition] = set()
        self.started = -1

    def _take(self, out: TxnOutput) -> None:
        self.records += [(k, v, -1, -1, -1) for _, k, v in out.records]
        self.jobs += out.markers

    @rule()
    def init(self) -> None:
        (error, pid, epoch), out = self.m.init_producer_id("tx", 5000, -1, -1, self.now)
        self._take(out)
        if self.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            assert error == E.CONCURRENT_TRANSACTIONS
        elif self.state == TxnState.ONGOING:
            assert error == E.CONCURRENT_TRANSACTIONS
            self.epoch += 1
            self.state = TxnState.PREPARE_ABORT
        else:
            assert error == E.NONE
            if self.state is None:
                self.pid = pid
            assert pid == self.pid
            self.epoch += 1
            assert epoch == self.epoch
            self.state, self.parts = TxnState.EMPTY, set()

    @rule(parts=st.sets(st.sampled_from([TP0, TP1]), min_size=1), stale=st.booleans())
    def add(self, parts: set[TopicPartition], stale: bool) -> None:
        epoch = self.epoch - 1 if stale else self.epoch
        error, out = self.m.add_partitions("tx", self.pid, epoch, parts, self.now)
        self._take(out)
        if self.state is None:
            assert error == E.INVALID_PRODUCER_ID_MAPPING
        elif stale:
            assert error == E.PRODUCER_FENCED
        elif self.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            assert error == E.CONCURRENT_TRANSACTIONS
        else:
            assert error == E.NONE
            if self.state != TxnState.ONGOING:
                self.parts, self.started = set(), self.now
            self.state = TxnState.ONGOING
            self.parts |= parts

    @rule(commit=st.booleans())
    def end(self, commit: bool) -> None:
        error, out = self.m.end_txn("tx", self.pid, self.epoch, commit, self.now)
        self._take(out)
        if self.state is None:
            assert error == E.INVALID_PRODUCER_ID_MAPPING
        elif self.state == TxnState.ONGOING:
            assert error == E.NONE
            self.state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        elif self.state == (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT):
            assert error == E.NONE
        elif self.state == (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT):
            assert error == E.CONCURRENT_TRANSACTIONS
        else:
            assert error == E.INVALID_TXN_STATE

    @precondition(lambda self: bool(self.jobs))
    @rule()
    def markers_written(self) -> None:
        job = self.jobs.pop(0)
        self._take(self.m.markers_written(job, self.now))
        current = (job.producer_id, job.producer_epoch) == (self.pid, self.epoch)
        if current and self.state == (
            TxnState.PREPARE_COMMIT if job.commit else TxnState.PREPARE_ABORT
        ):
            assert job.partitions == tuple(sorted(self.parts))
            self.state = TxnState.COMPLETE_COMMIT if job.commit else TxnState.COMPLETE_ABORT
            self.parts = set()

    @rule(ms=st.integers(0, 7000))
    def time_passes(self, ms: int) -> None:
        self.now += ms
        if self.now < self.m.next_deadline():
            return
        self._take(self.m.tick(self.now))
        if self.state == TxnState.ONGOING and self.started + 5000 <= self.now:
            self.epoch += 1
            self.state = TxnState.PREPARE_ABORT

    @rule()
    def failover(self) -> None:
        """Another broker takes over: it loads the records and resends pending markers."""
        fresh = _machine(abort_check_interval_ms=1000)
        fresh.load(fresh.partition_for("tx"), self.records, self.now)
        self.m = fresh
        self.jobs = self.m.tick(self.now).markers if self.m.next_deadline() == 0 else []

    @invariant()
    def agrees_with_the_model(self) -> None:
        txn = self.m.txns.get("tx")
        if self.state is None:
            assert txn is None
            return
        assert txn is not None
        assert (txn.producer_id, txn.producer_epoch, txn.state) == (
            self.pid,
            self.epoch,
            self.state,
        )
        assert txn.partitions == self.parts
        # the log says the same as memory
        reloaded = _machine()
        reloaded.load(reloaded.partition_for("tx"), self.records, self.now)
        again = reloaded.txns["tx"]
        assert (again.producer_id, again.producer_epoch, again.state, again.partitions) == (
            txn.producer_id,
            txn.producer_epoch,
            txn.state,
            txn.partitions,
        )

    @invariant()
    def pending_markers_exist_for_prepared_transactions(self) -> None:
        if self.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            assert any(
                (j.producer_id, j.producer_epoch) == (self.pid, self.epoch) for j in self.jobs
            )


TestTxnModel = TxnModel.TestCase
TestTxnModel.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
