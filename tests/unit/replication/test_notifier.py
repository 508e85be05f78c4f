"""The replica manager's one injected notifier: which fetchers it wakes, and when."""

from __future__ import annotations

from pathlib import Path

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol.records import encode_batch, validate_produced_batch
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition

TP = TopicPartition("t", 0)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, TopicPartition, list[int]]] = []

    def wake(self, tp: TopicPartition, brokers: list[int]) -> None:
        self.calls.append(("wake", tp, list(brokers)))

    def replicate_now(self, tp: TopicPartition, brokers: list[int]) -> None:
        self.calls.append(("replicate_now", tp, list(brokers)))


def _broker(tmp_path: Path, node_id: int) -> tuple[Controller, ReplicaManager, Recorder]:
    clock = ManualClock()
    infos = [BrokerInfo(i, f"az{i}") for i in (1, 2, 3)]
    config = {**MSK_BROKER_DEFAULTS, "auto.leader.rebalance.enable": "false"}
    controller = Controller(infos, BrokerConfigs(config), None)
    notifier = Recorder()
    logs = LogManager(str(tmp_path), node_id, controller.cluster_id, clock)
    rm = ReplicaManager(node_id, controller, logs, clock, notifier)
    controller.on_change(rm.sync_topic)
    return controller, rm, notifier


def test_a_leader_wakes_its_followers_and_has_them_copy_at_once_for_acks_all(
    tmp_path: Path,
) -> None:
    controller, rm, notifier = _broker(tmp_path, 1)
    controller.create_topic("t", assignments={0: [1, 2, 3]})
    assert notifier.calls == []  # a new leader has nothing to hand out yet
    part = rm.partitions[TP]
    for acks in (1, -1):
        batch = memoryview(encode_batch([(None, b"v")]))
        rm.append(part, batch, validate_produced_batch(batch, 1 << 20), acks)
    assert notifier.calls == [("wake", TP, [2, 3]), ("replicate_now", TP, [2, 3])]


def test_a_broker_that_becomes_follower_wakes_its_own_fetcher(tmp_path: Path) -> None:
    controller, rm, notifier = _broker(tmp_path, 2)
    controller.create_topic("t", assignments={0: [1, 2, 3]})
    assert notifier.calls == [("wake", TP, [2])]
    controller.broker_down(1)
    assert rm.partitions[TP].is_leader  # nothing to wake until an append
    assert notifier.calls == [("wake", TP, [2])]
