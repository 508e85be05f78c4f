"""The controller applies a change only once its metadata file is saved: a change whose save
fails leaves no trace in memory (nor on disk) and answers KAFKA_STORAGE_ERROR."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from msklite import metadata_log
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode, KafkaError
from msklite.metadata_log import MetadataLog
from msklite.msk import MSK_BROKER_DEFAULTS


def _controller(path: Path) -> Controller:
    infos = [BrokerInfo(i, f"az{i}") for i in (1, 2, 3)]
    return Controller(infos, BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), str(path))


@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Set `full[0] = True` to make every write of cluster metadata fail with ENOSPC."""
    full = [False]
    real_write = metadata_log.write_all

    def write_all(fd: int, data: bytes) -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(metadata_log, "write_all", write_all)
    return full


def _saved(path: Path) -> dict[str, object]:
    state = MetadataLog(str(path)).load()
    assert state is not None
    return state


def test_a_topic_whose_save_fails_is_not_created(tmp_path: Path, disk_full: list[bool]) -> None:
    path = tmp_path / "meta.json"
    c = _controller(path)
    seen: list[str] = []
    c.on_change(seen.append)
    disk_full[0] = True
    with pytest.raises(KafkaError) as err:
        c.create_topic("t", 3, 3)
    assert err.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert "t" not in c.topics and not c.topics_by_id and seen == []
    assert not list(tmp_path.glob("*.tmp"))

    disk_full[0] = False
    topic = c.create_topic("t", 3, 3)
    assert seen == ["t"] and [t["name"] for t in _saved(path)["topics"]] == ["t"]  # type: ignore[attr-defined]
    # The failed attempt consumed no placement: the same layout as a first attempt.
    fresh = _controller(tmp_path / "other.json").create_topic("t", 3, 3)
    assert [p.replicas for p in topic.partitions] == [p.replicas for p in fresh.partitions]


def test_failed_saves_undo_deletes_partitions_isr_and_id_blocks(
    tmp_path: Path, disk_full: list[bool]
) -> None:
    c = _controller(tmp_path / "meta.json")
    topic = c.create_topic("t", 2, 3)
    p = topic.partitions[0]
    before = (list(p.replicas), p.leader, list(p.isr), p.leader_epoch)
    disk_full[0] = True

    with pytest.raises(KafkaError):
        c.delete_topic("t")
    assert c.topics["t"] is topic and c.topics_by_id[topic.topic_id] is topic
    with pytest.raises(KafkaError):
        c.create_partitions("t", 4, None, False)
    assert len(topic.partitions) == 2
    with pytest.raises(KafkaError):
        c.alter_isr("t", 0, [p.leader])
    assert (list(p.replicas), p.leader, list(p.isr), p.leader_epoch) == before
    assert c.reassign("t", 0, [3, 2, 1]) == ErrorCode.KAFKA_STORAGE_ERROR
    assert (p.replicas, p.adding_replicas, p.removing_replicas) == (before[0], [], [])
    with pytest.raises(KafkaError):
        c.allocate_producer_id()
    disk_full[0] = False
    assert c.allocate_producer_id() == 0


def test_a_stopped_broker_is_fenced_even_when_the_save_fails(
    tmp_path: Path, disk_full: list[bool]
) -> None:
    path = tmp_path / "meta.json"
    c = _controller(path)
    p = c.create_topic("t", 1, 3).partitions[0]
    old = p.leader
    disk_full[0] = True
    c.broker_down(old)  # a fact, not a request: it holds whether saved or not
    assert p.leader != old and old not in p.isr
    disk_full[0] = False
    c.create_topic("u", 1, 2)  # the next save carries it
    saved = _saved(path)["topics"][0]["partitions"][0]  # type: ignore[index]
    assert saved["leader"] == p.leader and saved["isr"] == p.isr
