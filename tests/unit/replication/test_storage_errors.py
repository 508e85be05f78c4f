"""Kafka's storage-error model with injected faults: a write that fails in a broker's log
directory takes it offline (KAFKA_STORAGE_ERROR, leadership moved, ISRs shrunk, logged once),
a follower's failed write never ends its fetcher, and the directory comes back once it takes
writes again."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from msklite.errors import ErrorCode, KafkaError
from msklite.log import manager as manager_module
from msklite.log.segment import LogSegment
from msklite.protocol.primitives import Buffer
from msklite.protocol.records import BatchHeader
from msklite.replication.follower import ReplicaFetcher
from msklite.topic_partition import TopicPartition

from .test_follower import Rig


class DiskFull:
    """Makes segment appends and small-file writes under one broker's directory fail with
    ENOSPC while `full`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.full = True
        real_append = LogSegment.append
        real_write = manager_module._write_atomically

        def fail_under_root(path: str) -> None:
            if self.full and path.startswith(str(root)):
                raise OSError(errno.ENOSPC, "No space left on device")

        def append(seg: LogSegment, parts: list[Buffer], h: BatchHeader) -> int:
            fail_under_root(seg.path)
            return real_append(seg, parts, h)

        def write_atomically(path: str, text: str) -> None:
            fail_under_root(path)
            real_write(path, text)

        monkeypatch.setattr(LogSegment, "append", append)
        monkeypatch.setattr(manager_module, "_write_atomically", write_atomically)


def _rig(tmp_path: Path) -> Rig:
    rig = Rig(tmp_path)
    rig.controller.create_topic("t", 1, 3)
    rig.produce(b"before")
    rig.pump()
    return rig


def _storage_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "No space left" in r.getMessage()]


def test_a_leader_whose_disk_is_full_answers_storage_error_and_hands_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rig = _rig(tmp_path)
    p = rig.controller.topics["t"].partitions[0]
    old = p.leader
    disk = DiskFull(monkeypatch, tmp_path / f"b{old}")

    with pytest.raises(KafkaError) as err:
        rig.produce(b"lost")
    assert err.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert p.leader != old and old not in p.isr and len(p.isr) == 2
    assert rig.controller.offline_replicas(p) == [old]
    manager = rig.managers[old]
    assert manager.offline and manager.log_dir_failed.is_set()
    for call in (
        lambda: manager.leader_partition("t", 0),
        lambda: manager.readable_partition("t", 0, from_followers=True),
    ):
        with pytest.raises(KafkaError) as err:
            call()
        assert err.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    # Logged once, at ERROR, with its cause; not once per request.
    rig.produce(b"after")  # to the new leader
    with pytest.raises(KafkaError):
        manager.leader_partition("t", 0)
    [logged] = _storage_errors(caplog)
    assert logged.levelno == logging.ERROR

    assert not manager.try_log_dir_online()  # still full
    disk.full = False
    assert manager.try_log_dir_online()
    assert not manager.offline and not rig.controller.offline_dirs
    rig.pump()
    assert sorted(p.isr) == [1, 2, 3]
    assert rig.values(old) == [b"before", b"after"] == rig.values(p.leader)


def test_a_follower_whose_disk_is_full_leaves_the_isr_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rig = _rig(tmp_path)
    p = rig.controller.topics["t"].partitions[0]
    follower = p.replicas[1]
    disk = DiskFull(monkeypatch, tmp_path / f"b{follower}")

    rig.produce(b"x")
    rig.pump()  # the follower's write fails inside its fetcher: no exception escapes
    assert follower not in p.isr and p.leader != follower
    assert rig.managers[follower].offline and len(_storage_errors(caplog)) == 1
    rig.produce(b"y")  # acks=1 to the leader; the ISR has two members left
    rig.pump()

    disk.full = False
    assert rig.managers[follower].try_log_dir_online()
    rig.pump()
    assert sorted(p.isr) == [1, 2, 3]
    assert rig.values(follower) == [b"before", b"x", b"y"]


def test_a_broker_restarted_with_an_offline_directory_opens_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path)
    p = rig.controller.topics["t"].partitions[0]
    old = p.leader
    disk = DiskFull(monkeypatch, tmp_path / f"b{old}")
    with pytest.raises(KafkaError):
        rig.produce(b"lost")
    rig.stop(old)  # an unclean stop: nothing more is written
    disk.full = False
    rig.start(old)
    rig.pump()
    assert not rig.managers[old].offline and sorted(p.isr) == [1, 2, 3]
    assert rig.values(old) == [b"before"]


async def test_the_fetcher_task_logs_an_unexpected_error_and_retries_after_a_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = _rig(tmp_path)
    p = rig.controller.topics["t"].partitions[0]
    follower = p.replicas[1]
    fetcher = rig.fetchers[follower]
    real: Callable[..., bool] = ReplicaFetcher._fetch
    failures = [RuntimeError("a bug")]

    def flaky(self: ReplicaFetcher, *args: object) -> bool:
        if failures:
            raise failures.pop()
        return real(self, *args)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(ReplicaFetcher, "_fetch", flaky)
        task = asyncio.get_running_loop().create_task(fetcher.run())
        rig.produce(b"z")
        follower_log = rig.managers[follower].partitions[TopicPartition("t", 0)].log
        while follower_log.log_end_offset < 2:
            assert not task.done()
            await asyncio.sleep(0)
            rig.clock.advance(fetcher.backoff_ms)  # the retry waits on the injected clock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not failures
    [logged] = [r for r in caplog.records if "replica fetcher" in r.getMessage()]
    assert logged.levelno == logging.ERROR and logged.exc_info is not None


async def test_the_recovery_task_survives_an_unexpected_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path)
    p = rig.controller.topics["t"].partitions[0]
    old = p.leader
    manager = rig.managers[old]
    disk = DiskFull(monkeypatch, tmp_path / f"b{old}")
    with pytest.raises(KafkaError):
        rig.produce(b"lost")
    disk.full = False
    real = manager.try_log_dir_online
    attempts: list[int] = []

    def flaky() -> bool:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("a bug")
        return real()

    monkeypatch.setattr(manager, "try_log_dir_online", flaky)
    task = asyncio.get_running_loop().create_task(rig.fetchers[old].recover_log_dir())
    while manager.offline:
        assert not task.done()
        await asyncio.sleep(0)
        rig.clock.advance(rig.fetchers[old].backoff_ms)
    assert len(attempts) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
