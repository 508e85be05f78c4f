"""The controller's metadata log: a change writes what it changed, not the cluster; a restart
reads the snapshot plus the changes; a torn last line is dropped; the log is folded into a new
snapshot once it outgrows the last one."""

from __future__ import annotations

from pathlib import Path

import pytest

from msklite.client_quotas import Entity, entity_of
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode
from msklite.msk import MSK_BROKER_DEFAULTS


def _controller(path: Path) -> Controller:
    infos = [BrokerInfo(i, f"az{i}") for i in (1, 2, 3)]
    return Controller(infos, BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), str(path))


def _layout(c: Controller) -> dict[str, list[tuple[list[int], int, list[int], int]]]:
    return {
        name: [(p.replicas, p.leader, p.isr, p.leader_epoch) for p in t.partitions]
        for name, t in c.topics.items()
    }


def test_a_change_costs_what_it_changed_and_a_restart_sees_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster-metadata.json"
    log = tmp_path / "cluster-metadata.log"
    c = _controller(path)
    c.create_topic("big", 5000, 3)
    snapshot = path.read_bytes()
    assert len(snapshot) > 500_000
    p = c.topics["big"].partitions[1234]
    c.alter_isr("big", 1234, [p.leader])
    assert 0 < log.stat().st_size < 1000  # one partition's line, not 5,000 partitions
    c.create_topic("small", 2, 1)
    c.create_partitions("small", 3, None, False)
    c.broker_down(2)  # this one does touch every partition
    assert path.read_bytes() == snapshot  # not rewritten
    assert _layout(_controller(path)) == _layout(c)


def test_deleted_and_recreated_topics_replay_to_the_last_state(tmp_path: Path) -> None:
    path = tmp_path / "cluster-metadata.json"
    c = _controller(path)
    c.create_topic("t", 3, 3)
    c.create_topic("u", 1, 1)
    old_id = c.topics["t"].topic_id
    c.alter_isr("t", 0, [c.topics["t"].partitions[0].leader])
    c.delete_topic("t")
    c.create_topic("t", 2, 1)
    again = _controller(path)
    assert again.topics["t"].topic_id != old_id
    assert _layout(again) == _layout(c)


def test_a_torn_last_change_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "cluster-metadata.json"
    log = tmp_path / "cluster-metadata.log"
    c = _controller(path)
    c.create_topic("t", 3, 3)
    c.create_topic("u", 1, 1)
    whole = log.read_bytes()
    with open(log, "ab") as f:
        f.write(b'{"topics": {"v": {"na')  # a crash in the middle of an append
    again = _controller(path)
    assert sorted(again.topics) == ["t", "u"]
    assert log.read_bytes() == whole  # cut back, so the next change starts a clean line
    again.create_topic("v", 1, 1)
    assert sorted(_controller(path).topics) == ["t", "u", "v"]


def test_the_log_is_folded_into_a_snapshot_once_it_outgrows_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster-metadata.json"
    log = tmp_path / "cluster-metadata.log"
    c = _controller(path)
    c.create_topic("t", 1, 3)
    first = path.stat().st_mtime_ns
    size = 0
    for i in range(20_000):  # each ISR change is a line; 1 MiB of them outgrows the snapshot
        p = c.topics["t"].partitions[0]
        c.alter_isr("t", 0, p.replicas if i % 2 else [p.leader])
        if log.stat().st_size < size:
            break
        size = log.stat().st_size
    else:
        raise AssertionError("the log was never folded into a new snapshot")
    assert 1 << 20 < size < 1 << 21 and path.stat().st_mtime_ns != first
    assert _layout(_controller(path)) == _layout(c)


def test_group_configs_changed_in_a_log_line_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    c = _controller(path)
    c.save_new_cluster()
    c.create_topic("t", 1, 1)  # the first change writes the snapshot
    c.alter_group_configs("g", {"consumer.session.timeout.ms": "50000"})  # a log line
    assert _controller(path).group_configs == {"g": {"consumer.session.timeout.ms": "50000"}}


def test_client_quotas_are_saved_replayed_and_undone_when_the_save_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cluster-metadata.json"
    log = tmp_path / "cluster-metadata.log"
    c = _controller(path)
    c.create_topic("t", 1, 1)
    alice, bob = entity_of([("user", "alice")]), entity_of([("user", "bob")])
    [out] = c.alter_client_quotas([(alice, [("producer_byte_rate", 10.0, False)])])
    assert (out.code, log.stat().st_size > 0) == (ErrorCode.NONE, True)
    assert _controller(path).client_quotas.entities == {alice: {"producer_byte_rate": 10.0}}

    told: list[dict[Entity, dict[str, float]]] = []
    c.on_quota_change(lambda table: told.append(dict(table.entities)))

    def fail(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(c._store, "append", fail)
    [out] = c.alter_client_quotas([(bob, [("producer_byte_rate", 5.0, False)])])
    assert out.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert c.client_quotas.entities == {alice: {"producer_byte_rate": 10.0}}
    assert told == [{alice: {"producer_byte_rate": 10.0}}]  # only the registration's call
    monkeypatch.undo()
    # removing the last key removes the entity, after a restart too
    [out] = c.alter_client_quotas([(alice, [("producer_byte_rate", 0.0, True)])])
    assert out.code == ErrorCode.NONE and told[-1] == {}
    assert _controller(path).client_quotas.entities == {}
