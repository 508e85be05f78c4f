"""LeaderEpochCache: Kafka's endOffsetFor answers, truncation and the checkpoint file."""

from __future__ import annotations

from pathlib import Path

from msklite.log.leader_epoch import LeaderEpochCache


def test_end_offsets(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    for epoch, start in [(0, 0), (2, 10), (5, 25)]:
        cache.assign(epoch, start)
    assert cache.end_offset_for(0, 40) == (0, 10)
    assert cache.end_offset_for(1, 40) == (0, 10)  # epoch 1 never led: largest ≤ 1 is 0
    assert cache.end_offset_for(2, 40) == (2, 25)
    assert cache.end_offset_for(5, 40) == (5, 40)  # the current epoch ends at the log end
    assert cache.end_offset_for(9, 40) == (5, 40)
    assert cache.end_offset_for(-1, 40) == (-1, -1)


def test_assign_ignores_older_epochs_and_replaces_empty_ones(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    cache.assign(3, 10)
    cache.assign(2, 20)
    cache.assign(4, 10)  # epoch 3 never got a record
    assert cache.entries == [(4, 10)]


def test_truncation_and_persistence(tmp_path: Path) -> None:
    cache = LeaderEpochCache(str(tmp_path))
    for epoch, start in [(0, 0), (1, 5), (2, 9)]:
        cache.assign(epoch, start)
    cache.truncate_from_end(6)
    assert LeaderEpochCache(str(tmp_path)).entries == []  # written on flush, not per change
    cache.flush()
    assert LeaderEpochCache(str(tmp_path)).entries == [(0, 0), (1, 5)]
    assert (tmp_path / "leader-epoch-checkpoint").read_text() == "0\n2\n0 0\n1 5\n"
