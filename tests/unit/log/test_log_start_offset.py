"""The log start offset inside a segment (DeleteRecords): bounds, reads, retention, the
`log-start-offset-checkpoint` file and reopening."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from msklite.clock import ManualClock
from msklite.config import TopicConfig
from msklite.errors import ErrorCode, KafkaError
from msklite.log.leader_epoch import LeaderEpochCache
from msklite.log.manager import (
    LOG_START_CHECKPOINT,
    LogManager,
    read_checkpoint,
    write_checkpoint,
)
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import encode_batch, validate_produced_batch
from msklite.topic_partition import TopicPartition

TP = TopicPartition("t", 0)


def _append(log: PartitionLog, n: int = 1, ts: int = 0, epoch: int = 0) -> int:
    batch = memoryview(encode_batch([(None, b"v" * 50)] * n, timestamp=ts))
    return log.append_as_leader(batch, validate_produced_batch(batch, 10**7), epoch).base_offset


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000)


def _log(tmp_path: Path, clock: ManualClock, **config: int) -> PartitionLog:
    return PartitionLog(str(tmp_path / "t-0"), TopicConfig(**config), clock)  # type: ignore[arg-type]


def test_increment_moves_the_start_inside_a_segment_and_refuses_reads_below(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = _log(tmp_path, clock)
    for _ in range(10):
        _append(log)
    assert log.increment_log_start_offset(4, max_offset=10)
    assert (log.log_start_offset, len(log.segments), log.segments[0].base_offset) == (4, 1, 0)
    assert log.start_inside_segment
    with pytest.raises(KafkaError) as e:
        log.read(3, 10**6, 10, True)
    assert e.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert log.read(4, 10**6, 10, True)
    assert not log.increment_log_start_offset(2, max_offset=10)  # never backwards
    assert log.log_start_offset == 4


def test_increment_past_the_bound_is_offset_out_of_range(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = _log(tmp_path, clock)
    for _ in range(10):
        _append(log)
    with pytest.raises(KafkaError) as e:
        log.increment_log_start_offset(8, max_offset=7)
    assert e.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert log.log_start_offset == 0
    assert log.increment_log_start_offset(7, max_offset=7)


def test_retention_deletes_whole_segments_below_the_start_only(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = _log(tmp_path, clock, segment_bytes=300)  # ≈ 3 one-record batches a segment
    for _ in range(12):
        _append(log)
    bases = [seg.base_offset for seg in log.segments]
    assert len(bases) >= 3
    size_before = log.size_in_bytes()
    start = bases[2] + 1  # inside the third segment
    log.increment_log_start_offset(start, log.log_end_offset)
    removed = log.enforce_retention(log.log_end_offset)
    assert [seg.base_offset for seg in removed] == bases[:2]
    assert log.segments[0].base_offset == bases[2]
    assert log.log_start_offset == start  # not moved back to the segment's base
    assert log.size_in_bytes() == size_before - sum(seg.size for seg in removed)
    assert log.enforce_retention(log.log_end_offset) == []


def test_start_at_the_log_end_keeps_the_active_segment(tmp_path: Path, clock: ManualClock) -> None:
    log = _log(tmp_path, clock, segment_bytes=300)
    for _ in range(7):
        _append(log)
    log.increment_log_start_offset(7, 7)
    log.enforce_retention(7)
    assert log.segments == [log.active]
    assert (log.log_start_offset, log.log_end_offset) == (7, 7)
    assert _append(log) == 7


def test_timestamp_lookup_starts_at_the_log_start(tmp_path: Path, clock: ManualClock) -> None:
    log = _log(tmp_path, clock)
    for i in range(6):
        _append(log, ts=1000 + i)
    log.increment_log_start_offset(3, 6)
    found = log.offset_for_timestamp(0, 6)
    assert found is not None and found.offset == 3


def test_truncation_below_the_start_starts_the_log_there(
    tmp_path: Path, clock: ManualClock
) -> None:
    log = _log(tmp_path, clock)
    for _ in range(6):
        _append(log)
    log.increment_log_start_offset(5, 6)
    log.truncate_to(2)
    assert (log.log_start_offset, log.log_end_offset) == (2, 2)


def test_epoch_cache_follows_the_start(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    for epoch, start in ((1, 0), (2, 5), (3, 9)):
        cache.assign(epoch, start)
    cache.truncate_from_start(7)
    assert cache.entries == [(2, 7), (3, 9)]
    cache.truncate_from_start(9)
    assert cache.entries == [(3, 9)]


def test_checkpoint_file_is_kafkas_format(tmp_path: Path) -> None:
    path = str(tmp_path / LOG_START_CHECKPOINT)
    write_checkpoint(path, {TopicPartition("b", 1): 7, TopicPartition("a-x", 0): 42})
    with open(path) as f:
        assert f.read() == "0\n2\na-x 0 42\nb 1 7\n"
    assert read_checkpoint(path) == {TopicPartition("a-x", 0): 42, TopicPartition("b", 1): 7}


def _manager(tmp_path: Path, clock: ManualClock) -> LogManager:
    return LogManager(str(tmp_path), 1, "cluster", clock)


def test_a_restart_keeps_the_start(tmp_path: Path, clock: ManualClock) -> None:
    topic_id = uuid.uuid4()
    logs = _manager(tmp_path, clock)
    log = logs.open_log(TP, topic_id, TopicConfig())
    other = logs.open_log(TopicPartition("t", 1), topic_id, TopicConfig())
    for _ in range(10):
        _append(log)
        _append(other)
    log.increment_log_start_offset(6, 10)
    logs.checkpoint_log_starts()
    # Only starts inside a first segment are written, as Kafka's LogManager does.
    assert read_checkpoint(str(tmp_path / LOG_START_CHECKPOINT)) == {TP: 6}
    logs.shutdown({})
    reopened = _manager(tmp_path, clock).open_log(TP, topic_id, TopicConfig())
    assert (reopened.log_start_offset, reopened.log_end_offset) == (6, 10)
    with pytest.raises(KafkaError):
        reopened.read(5, 10**6, 10, True)


def test_the_checkpoint_survives_a_crash(tmp_path: Path, clock: ManualClock) -> None:
    topic_id = uuid.uuid4()
    logs = _manager(tmp_path, clock)
    log = logs.open_log(TP, topic_id, TopicConfig())
    for _ in range(10):
        _append(log)
    log.flush()
    log.increment_log_start_offset(3, 10)
    logs.checkpoint_log_starts()
    # no shutdown: the next start recovers
    again = _manager(tmp_path, clock)
    # a log not yet opened again keeps its entry when another checkpoint is written
    again.checkpoint_log_starts()
    assert read_checkpoint(str(tmp_path / LOG_START_CHECKPOINT)) == {TP: 3}
    assert again.open_log(TP, topic_id, TopicConfig()).log_start_offset == 3


def test_a_start_past_the_recovered_end_starts_the_log_empty_there(
    tmp_path: Path, clock: ManualClock
) -> None:
    topic_id = uuid.uuid4()
    logs = _manager(tmp_path, clock)
    log = logs.open_log(TP, topic_id, TopicConfig())
    for _ in range(4):
        _append(log)
    logs.shutdown({})
    write_checkpoint(str(tmp_path / LOG_START_CHECKPOINT), {TP: 9})
    reopened = _manager(tmp_path, clock).open_log(TP, topic_id, TopicConfig())
    assert (reopened.log_start_offset, reopened.log_end_offset) == (9, 9)
    assert _append(reopened) == 9


def test_a_deleted_log_leaves_no_checkpoint_entry(tmp_path: Path, clock: ManualClock) -> None:
    topic_id = uuid.uuid4()
    logs = _manager(tmp_path, clock)
    log = logs.open_log(TP, topic_id, TopicConfig())
    for _ in range(4):
        _append(log)
    log.increment_log_start_offset(2, 4)
    logs.checkpoint_log_starts()
    logs.delete_log(TP)
    logs.checkpoint_log_starts()
    assert read_checkpoint(str(tmp_path / LOG_START_CHECKPOINT)) == {}
    assert not os.path.exists(logs.dir_for(TP))
