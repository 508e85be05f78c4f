"""The partition side of transactions: open transactions and the LSO, the aborted-transaction
index (`.txnindex` files in Kafka's format, rebuilt by recovery), truncation, and a
hypothesis property over the bookkeeping against a model."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.clock import ManualClock
from msklite.config import TopicConfig
from msklite.errors import ErrorCode, KafkaError
from msklite.log.partition_log import PartitionLog
from msklite.log.producer_state import AbortedTxn
from msklite.protocol.records import (
    TRANSACTIONAL,
    control_batch,
    encode_batch,
    read_header,
)

CLOCK = ManualClock()


def _open(path: Path) -> PartitionLog:
    return PartitionLog(str(path), TopicConfig(), CLOCK)


def _data(log: PartitionLog, pid: int, n: int = 1, seq: int = 0, epoch: int = 0) -> int:
    """A transactional batch of `n` records; its base offset."""
    batch = encode_batch(
        [(None, b"v")] * n,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        attributes=TRANSACTIONAL,
    )
    return log.append_as_leader(memoryview(batch), read_header(batch), 0).base_offset


def _plain(log: PartitionLog) -> int:
    batch = encode_batch([(None, b"p")])
    return log.append_as_leader(memoryview(batch), read_header(batch), 0).base_offset


def _marker(log: PartitionLog, pid: int, commit: bool, epoch: int = 0) -> int:
    batch = control_batch(pid, epoch, commit, 3, 0)
    return log.append_as_leader(memoryview(batch), read_header(batch), 0).base_offset


def test_lso_stops_at_the_first_open_transaction(tmp_path: Path) -> None:
    log = _open(tmp_path / "p")
    state = log.producer_state
    _plain(log)  # 0
    first = _data(log, pid=7)  # 1
    _plain(log)  # 2
    _data(log, pid=8)  # 3
    assert state.last_stable_offset(log.log_end_offset) == first
    marker = _marker(log, 7, commit=True)  # 4
    # the marker is not yet under the HW: still unstable
    assert state.last_stable_offset(marker) == first
    assert state.last_stable_offset(marker + 1) == 3  # pid 8 still open
    _marker(log, 8, commit=False)  # 5
    assert state.last_stable_offset(6) == 6
    assert state.aborted == [AbortedTxn(8, 3, 5, 6)]
    assert state.aborted_between(0, 6) == [AbortedTxn(8, 3, 5, 6)]
    assert state.aborted_between(6, 10) == []


def test_txnindex_files_in_kafkas_format_rebuilt_by_recovery(tmp_path: Path) -> None:
    path = tmp_path / "p"
    log = _open(path)
    _data(log, pid=5, n=2)
    _marker(log, 5, commit=False)
    _data(log, pid=6, seq=0)
    _marker(log, 6, commit=True)
    log.flush()
    index = path / "00000000000000000000.txnindex"
    raw = index.read_bytes()
    # version 0, producer id, first offset, last offset (the marker), last stable offset
    assert raw == struct.pack(">hqqqq", 0, 5, 0, 2, 3)
    log.close()
    index.unlink()  # lost in a crash: recovery rebuilds it from the markers
    again = _open(path)
    assert index.read_bytes() == raw
    assert again.producer_state.aborted == [AbortedTxn(5, 0, 2, 3)]
    assert again.producer_state.last_stable_offset(again.log_end_offset) == 5
    again.close()


def test_an_open_transaction_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "p"
    log = _open(path)
    _plain(log)
    _data(log, pid=9)
    log.close()
    again = _open(path)
    assert again.producer_state.last_stable_offset(again.log_end_offset) == 1
    again.close()


def test_idle_producers_expire_but_not_with_a_transaction_open(tmp_path: Path) -> None:
    """producer.id.expiration.ms, counted from each producer's last batch timestamp; a
    producer with a transaction open here stays whatever its age."""
    log = _open(tmp_path / "p")
    for pid, ts in ((1, 1_000), (2, 5_000)):
        batch = encode_batch(
            [(None, b"v")], producer_id=pid, producer_epoch=0, base_sequence=0, timestamp=ts
        )
        log.append_as_leader(memoryview(batch), read_header(batch), 0)
    _data(log, pid=3)  # timestamp 0, open
    state = log.producer_state
    assert state.remove_expired(now_ms=3_999, expiration_ms=3_000) == 0
    assert state.remove_expired(now_ms=4_000, expiration_ms=3_000) == 1
    assert set(state.producers) == {2, 3}
    # the expired producer is new again: any sequence goes
    batch = encode_batch([(None, b"v")], producer_id=1, producer_epoch=0, base_sequence=7)
    assert not log.append_as_leader(memoryview(batch), read_header(batch), 0).duplicate
    _marker(log, pid=3, commit=True)  # its marker's timestamp (0) counts once it is closed
    assert state.remove_expired(now_ms=8_000, expiration_ms=3_000) == 3
    log.close()


def test_truncating_a_marker_reopens_its_transaction(tmp_path: Path) -> None:
    log = _open(tmp_path / "p")
    _data(log, pid=4)  # 0
    marker = _marker(log, 4, commit=False)  # 1
    assert log.producer_state.aborted
    log.truncate_to(marker)
    assert log.producer_state.aborted == []
    assert log.producer_state.last_stable_offset(log.log_end_offset) == 0
    assert not (tmp_path / "p" / "00000000000000000000.txnindex").exists()


def test_a_fenced_epoch_is_refused_after_a_marker_bumped_it(tmp_path: Path) -> None:
    log = _open(tmp_path / "p")
    _data(log, pid=4, epoch=0)
    _marker(log, 4, commit=False, epoch=1)  # a fencing abort
    try:
        _data(log, pid=4, epoch=0, seq=1)
    except KafkaError as e:
        assert e.code == ErrorCode.INVALID_PRODUCER_EPOCH
    else:
        raise AssertionError("a zombie's batch was accepted")
    # the new epoch starts its own transaction
    assert _data(log, pid=4, epoch=1, seq=0) == 2


# ---- property: the bookkeeping against a model ----

Op = tuple[str, int]  # ("data" | "plain" | "commit" | "abort", producer)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["data", "plain", "commit", "abort"]), st.integers(1, 3)),
        max_size=30,
    ),
    st.data(),
)
def test_lso_and_aborted_index_agree_with_a_model(ops: list[Op], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as root:
        log = _open(Path(root) / "p")
        seqs: dict[int, int] = {}
        open_first: dict[int, int] = {}
        aborted: list[tuple[int, int, int]] = []
        completed: list[tuple[int, int]] = []  # (first offset, marker offset)
        for kind, pid in ops:
            if kind == "plain":
                _plain(log)
            elif kind == "data":
                offset = _data(log, pid, seq=seqs.get(pid, 0))
                seqs[pid] = seqs.get(pid, 0) + 1
                open_first.setdefault(pid, offset)
            else:
                offset = _marker(log, pid, commit=kind == "commit")
                first = open_first.pop(pid, None)
                if first is not None:
                    completed.append((first, offset))
                    if kind == "abort":
                        aborted.append((pid, first, offset))
        end = log.log_end_offset
        hw = data.draw(st.integers(0, end))
        state = log.producer_state
        assert [(a.producer_id, a.first_offset, a.last_offset) for a in state.aborted] == aborted
        # a completed transaction stays unstable until its marker is under the HW
        unstable = [first for first, marker in completed if marker >= hw]
        assert state.last_stable_offset(hw) == min([hw, *open_first.values(), *unstable])
        expected = min([end, *open_first.values()])
        assert state.last_stable_offset(end) == expected
        # recovery rebuilds the same
        log.close()
        again = _open(Path(root) / "p")
        assert again.producer_state.aborted == state.aborted
        assert again.producer_state.last_stable_offset(end) == expected
        again.close()


def test_a_markers_coordinator_epoch_fences_older_ones_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "p"
    log = _open(path)
    _data(log, pid=4)
    _marker(log, pid=4, commit=True)  # coordinator epoch 3
    log.close()
    again = _open(path)
    state = again.producer_state
    assert state.producers[4].coordinator_epoch == 3
    state.check_coordinator_epoch(4, 3)
    with pytest.raises(KafkaError) as fenced:
        state.check_coordinator_epoch(4, 2)
    assert fenced.value.code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    again.close()
