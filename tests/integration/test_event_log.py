"""`msklite serve --log-level INFO`: one readable line per topic created, leader elected, ISR
changed and group rebalanced."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer

from msklite import Cluster
from tests.integration.helpers import wait_until


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
