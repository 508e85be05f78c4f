"""Idempotent producer rules (Kafka's ProducerAppendInfo.checkSequence)."""

from __future__ import annotations

import pytest

from msklite.errors import ErrorCode, KafkaError
from msklite.log.producer_state import ProducerStateManager
from msklite.protocol.records import BatchHeader, read_header
from msklite.protocol.records import encode_batch as enc


def _h(pid: int, epoch: int, seq: int, n: int = 1, offset: int = 0) -> BatchHeader:
    h = read_header(
        enc([(None, b"x")] * n, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    )
    return h._replace(base_offset=offset)


def _append(state: ProducerStateManager, h: BatchHeader) -> None:
    assert state.check(h) is None
    state.update(h)


def _code(state: ProducerStateManager, h: BatchHeader) -> ErrorCode:
    with pytest.raises(KafkaError) as e:
        state.check(h)
    return e.value.code


def test_in_sequence_batches_are_accepted() -> None:
    s = ProducerStateManager()
    _append(s, _h(1, 0, 0, n=3, offset=0))
    _append(s, _h(1, 0, 3, n=2, offset=3))
    assert s.producers[1].batches[-1].last_seq == 4


def test_gap_is_out_of_order() -> None:
    s = ProducerStateManager()
    _append(s, _h(1, 0, 0, n=3))
    assert _code(s, _h(1, 0, 5)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_retry_of_any_of_the_last_five_is_a_duplicate() -> None:
    s = ProducerStateManager()
    for i in range(6):
        _append(s, _h(1, 0, i, offset=10 + i))
    dup = s.check(_h(1, 0, 1))
    assert dup is not None and dup.first_offset == 11
    # The first batch fell out of the five-batch window: no longer recognised.
    assert _code(s, _h(1, 0, 0)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_old_epoch_is_fenced_and_new_epoch_restarts_at_zero() -> None:
    s = ProducerStateManager()
    _append(s, _h(1, 2, 0, n=5))
    assert _code(s, _h(1, 1, 5)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert _code(s, _h(1, 3, 7)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    _append(s, _h(1, 3, 0))


def test_unknown_producer_may_start_anywhere_and_sequences_wrap() -> None:
    s = ProducerStateManager()
    _append(s, _h(9, 0, 2**31 - 1))
    _append(s, _h(9, 0, 0))


def test_non_idempotent_batches_are_not_tracked() -> None:
    s = ProducerStateManager()
    _append(s, _h(-1, -1, -1))
    assert s.producers == {}


def test_truncation_forgets_later_batches() -> None:
    s = ProducerStateManager()
    _append(s, _h(1, 0, 0, offset=0))
    _append(s, _h(1, 0, 1, offset=1))
    s.truncate_to(1)
    assert [b.first_seq for b in s.producers[1].batches] == [0]
    s.truncate_to(0)
    assert 1 not in s.producers
