"""Partition leader state: HW from the ISR, acks=all completion, ISR shrink/expand rules."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from msklite.clock import ManualClock
from msklite.config import TopicConfig
from msklite.controller import PartitionState
from msklite.errors import ErrorCode
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import encode_batch, validate_produced_batch
from msklite.replication.partition import Partition


def _leader(tmp_path: Path, isr: list[int], min_insync: int = 2) -> Partition:
    state = PartitionState(0, [1, 2, 3], 1, isr, leader_epoch=4)
    log = PartitionLog(str(tmp_path), TopicConfig(), ManualClock())
    part = Partition(
        1, "t", uuid.uuid4(), state, log, 0, TopicConfig(min_insync_replicas=min_insync)
    )
    part.become_leader(now_ms=1000)
    return part


def _append(part: Partition, n: int = 1) -> int:
    batch = memoryview(encode_batch([(None, b"v")] * n))
    info = part.log.append_as_leader(batch, validate_produced_batch(batch, 10**6), 4)
    part.maybe_advance_high_watermark()
    return info.last_offset + 1


def test_high_watermark_is_the_smallest_isr_log_end(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    _append(part, 5)
    assert part.high_watermark == 0
    part.update_follower(2, 5, 0, 1000)
    assert not part.maybe_advance_high_watermark()
    part.update_follower(3, 3, 0, 1000)
    assert part.maybe_advance_high_watermark() and part.high_watermark == 3
    assert part.log.epochs.entries == [(4, 0)]


async def test_acks_all_completes_when_the_hw_passes(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    fut = part.wait_for(_append(part, 2))
    part.update_follower(2, 2, 0, 1000)
    part.maybe_advance_high_watermark()
    assert not fut.done()
    part.update_follower(3, 2, 0, 1000)
    part.maybe_advance_high_watermark()
    assert fut.result() == ErrorCode.NONE


async def test_isr_shrinking_below_min_insync_fails_after_append(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3], min_insync=3)
    fut = part.wait_for(_append(part))
    part.state.isr = [1, 2]  # follower 3 was dropped
    part.update_follower(2, 1, 0, 1000)
    part.maybe_advance_high_watermark()
    assert fut.result() == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND


async def test_losing_leadership_fails_waiting_produces(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    fut = part.wait_for(_append(part))
    part.state.leader, part.state.leader_epoch = 2, 5
    part.become_follower()
    assert fut.result() == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert part.needs_truncation
    await asyncio.sleep(0)


def test_shrink_only_followers_behind_for_longer_than_the_lag(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    _append(part, 3)
    part.update_follower(2, 3, 0, 1100)  # caught up at 1100
    part.update_follower(3, 1, 0, 1100)  # behind since 1000 (reset at leadership)
    assert part.shrink_candidates(1500, 1000) == []
    assert part.shrink_candidates(2001, 1000) == [3]
    # A follower that is level with the leader is caught up however long ago it fetched.
    assert 2 not in part.shrink_candidates(10**6, 1000)


def test_an_idle_follower_level_with_the_leader_is_not_behind_when_data_arrives(
    tmp_path: Path,
) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    _append(part, 3)
    part.update_follower(2, 3, 0, 1100)
    part.update_follower(3, 3, 0, 1100)
    # a minute with nothing to copy, then an append the followers have not fetched yet
    part.before_append(61_100)
    _append(part)
    assert part.shrink_candidates(61_101, 1000) == []
    assert part.shrink_candidates(62_101, 1000) == [2, 3]  # still behind a lag later


def test_expand_needs_the_hw_and_the_current_epoch(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2])
    _append(part, 4)
    part.update_follower(2, 4, 0, 1000)
    part.maybe_advance_high_watermark()
    part.update_follower(3, 3, 0, 1000)
    assert not part.expand_candidate(3)
    part.update_follower(3, 4, 0, 1000)
    assert part.expand_candidate(3)
    assert not part.expand_candidate(2)  # already in the ISR


def test_low_watermark_is_the_smallest_start_of_the_live_replicas(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    end = _append(part, 10)
    part.update_follower(2, end, 0, 1000)
    part.update_follower(3, end, 0, 1000)
    part.maybe_advance_high_watermark()
    part.log.increment_log_start_offset(6, part.high_watermark)
    assert part.low_watermark(lambda _: True) == 0
    part.update_follower(2, end, 6, 1000)
    assert part.low_watermark(lambda _: True) == 0  # broker 3 still starts at 0
    assert part.low_watermark(lambda r: r != 3) == 6  # unless it is down
    part.update_follower(3, end, 6, 1000)
    assert part.low_watermark(lambda _: True) == 6


def test_a_follower_unheard_of_since_the_leadership_counts_as_unknown(tmp_path: Path) -> None:
    part = _leader(tmp_path, [1, 2, 3])
    _append(part, 3)
    # Kafka's lowWatermarkIfLeader: a live replica's start is -1 until it fetches
    assert part.low_watermark(lambda _: True) == -1
    assert part.low_watermark(lambda _: False) == 0
