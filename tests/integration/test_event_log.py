"""`msklite serve --log-level INFO`: one readable line per topic created, leader elected, ISR
changed, group rebalanced (classic generations, KIP-848 target assignments) and share group
assignment changed."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from msklite import Cluster
from msklite.protocol.share_messages import ShareGroupHeartbeatRequest
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient


def _messages(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == logging.INFO]


def test_topic_creation_election_and_isr_changes_are_logged(
    msk_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="msklite.controller")
    msk_cluster.create_topic("logged", 1, 3)
    assert "created topic logged: 1 partition(s), replication factor 3" in _messages(
        caplog, "msklite.controller"
    )
    assert msk_cluster.controller is not None
    leader = msk_cluster.controller.topics["logged"].partitions[0].leader
    msk_cluster.stop_broker(leader)
    lines = _messages(caplog, "msklite.controller")
    elected = [m for m in lines if m.startswith("leader of logged-0: ")]
    assert len(elected) == 1, lines
    new_leader = msk_cluster.controller.topics["logged"].partitions[0].leader
    assert elected[0].startswith(f"leader of logged-0: {leader} -> {new_leader} (epoch 1), ISR ")
    follower = next(r for r in (1, 2, 3) if r not in (leader, new_leader))
    msk_cluster.stop_broker(follower)
    shrank = [m for m in _messages(caplog, "msklite.controller") if m.startswith("ISR of logged-0")]
    assert shrank == [f"ISR of logged-0 shrank: [{new_leader}, {follower}] -> [{new_leader}]"] or (
        shrank == [f"ISR of logged-0 shrank: [{follower}, {new_leader}] -> [{new_leader}]"]
    ), shrank
    assert all("\n" not in m for m in _messages(caplog, "msklite.controller"))


def test_group_rebalance_is_logged(msk_cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="msklite.coordinator.coordinator")
    msk_cluster.create_topic("rebalanced", 1)
    consumer = Consumer(
        {"bootstrap.servers": msk_cluster.bootstrap_servers, "group.id": "logged-group"}
    )
    try:
        consumer.subscribe(["rebalanced"])
        wait_until(lambda: bool(consumer.poll(0.2) or consumer.assignment()), "an assignment")
    finally:
        consumer.close()
    lines = _messages(caplog, "msklite.coordinator.coordinator")
    rebalanced = [m for m in lines if m.startswith("group logged-group rebalanced: ")]
    assert rebalanced[0].startswith(
        "group logged-group rebalanced: generation 1, 1 member(s), protocol range, leader rdkafka-"
    ), lines


@pytest.mark.msk(kafka_version="4.1.x", config={"group.consumer.heartbeat.interval.ms": 300})
def test_consumer_protocol_rebalances_are_logged(
    msk_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="msklite.coordinator.consumer_coordinator")
    msk_cluster.create_topic("kip848", 4)
    config = {
        "bootstrap.servers": msk_cluster.bootstrap_servers,
        "group.id": "kip848-group",
        "group.protocol": "consumer",
    }
    first, second = Consumer(config), Consumer(config)
    try:
        first.subscribe(["kip848"])
        wait_until(lambda: bool(first.poll(0.1) or first.assignment()), "the first assignment")
        second.subscribe(["kip848"])
        wait_until(
            lambda: bool(first.poll(0.1) or True) and bool(second.poll(0.1) or second.assignment()),
            "the second member's assignment",
            30,
        )
    finally:
        second.close()
        first.close()
    lines = _messages(caplog, "msklite.coordinator.consumer_coordinator")
    rebalanced = [m for m in lines if m.startswith("group kip848-group rebalanced: ")]
    assert rebalanced[:2] == [
        "group kip848-group rebalanced: epoch 1, 1 member(s), assignor uniform, "
        "4 partition(s) assigned (consumer protocol)",
        "group kip848-group rebalanced: epoch 2, 2 member(s), assignor uniform, "
        "4 partition(s) assigned (consumer protocol)",
    ], lines
    # both left: the group is empty at its last epoch
    assert rebalanced[-1].endswith(", empty (consumer protocol)"), lines
    assert all("\n" not in m for m in lines)


@pytest.mark.msk(kafka_version="4.2.x")
def test_share_group_assignment_changes_are_logged(
    msk_cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="msklite.coordinator.share_group")
    msk_cluster.create_topic("shared", 2)

    def beat(member: str, epoch: int, topics: list[str] | None) -> ShareGroupHeartbeatRequest:
        return ShareGroupHeartbeatRequest(
            group_id="sg", member_id=member, member_epoch=epoch, subscribed_topic_names=topics
        )

    with RawClient(msk_cluster.bootstrap_servers) as raw:
        found = raw.request(FindCoordinatorRequest(key="sg", key_type=0), version=3)
    assert found.error_code == 0
    with RawClient(f"{found.host}:{found.port}") as raw:
        assert raw.request(beat("a", 0, ["shared"]), 1).error_code == 0
        assert raw.request(beat("b", 0, ["shared"]), 1).error_code == 0
    lines = _messages(caplog, "msklite.coordinator.share_group")
    assert lines == [
        "share group sg assignment: epoch 1, 1 member(s), 2 partition assignment(s)",
        "share group sg assignment: epoch 2, 2 member(s), 2 partition assignment(s)",
    ], lines
