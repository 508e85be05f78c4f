"""A new partition touches no disk until its first write; once written it restarts as any
other log, and the files it gets are Kafka's."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from msklite.clock import ManualClock
from msklite.config import TopicConfig
from msklite.log.manager import LogManager
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import encode_batch, validate_produced_batch
from msklite.topic_partition import TopicPartition

TOPIC_ID = uuid.UUID(int=7)


def _manager(root: Path) -> LogManager:
    return LogManager(str(root), 1, "cluster", ManualClock(1_000_000))


def _append(log: PartitionLog, value: bytes) -> int:
    batch = memoryview(encode_batch([(None, value)]))
    return log.append_as_leader(batch, validate_produced_batch(batch, 10**7), 0).base_offset


def test_a_new_partition_has_no_files_until_its_first_append(tmp_path: Path) -> None:
    logs = _manager(tmp_path)
    plog = logs.open_log(TopicPartition("t", 0), TOPIC_ID, TopicConfig())
    directory = tmp_path / "t-0"
    assert not directory.exists()
    assert plog.read(0, 1000, 0, True) == [] and plog.size_in_bytes() == 0
    plog.epochs.assign(0, 0)  # what becoming leader does
    plog.truncate_to(0)  # what becoming follower may do
    plog.flush()
    logs.shutdown({TopicPartition("t", 0): 0})
    assert not directory.exists()

    logs = _manager(tmp_path)
    plog = logs.open_log(TopicPartition("t", 0), TOPIC_ID, TopicConfig())
    assert not directory.exists() and plog.log_end_offset == 0
    assert _append(plog, b"first") == 0
    assert sorted(os.listdir(directory)) == [
        "00000000000000000000.index",
        "00000000000000000000.log",
        "00000000000000000000.timeindex",
        "partition.metadata",
    ]
    assert "topic_id: AAAAAAAAAAAAAAAAAAAABw" in (directory / "partition.metadata").read_text()
    logs.shutdown({TopicPartition("t", 0): 1})

    logs = _manager(tmp_path)
    plog = logs.open_log(TopicPartition("t", 0), TOPIC_ID, TopicConfig())
    assert plog.log_end_offset == 1 and plog.size_in_bytes() > 0
    assert _append(plog, b"second") == 1


def test_a_new_follower_that_starts_past_zero_keeps_its_start_offset(tmp_path: Path) -> None:
    logs = _manager(tmp_path)
    plog = logs.open_log(TopicPartition("t", 0), TOPIC_ID, TopicConfig())
    plog.truncate_fully_and_start_at(5)  # the leader's log start had moved past 0
    assert (tmp_path / "t-0" / "00000000000000000005.log").exists()
    logs.shutdown({TopicPartition("t", 0): 5})

    plog = _manager(tmp_path).open_log(TopicPartition("t", 0), TOPIC_ID, TopicConfig())
    assert plog.log_start_offset == plog.log_end_offset == 5


def test_a_partition_deleted_before_any_write_leaves_nothing(tmp_path: Path) -> None:
    logs = _manager(tmp_path)
    logs.open_log(TopicPartition("t", 0), TOPIC_ID, TopicConfig())
    logs.delete_log(TopicPartition("t", 0))
    assert logs.on_disk() == set() and ("t", 0) not in logs.logs
