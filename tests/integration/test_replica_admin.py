"""Replica administration through real admin clients: elections, reassignment to a broker
added at run time, log dirs, and the serve console."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from confluent_kafka import ElectionType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.protocol.consumer.offsets import OffsetForLeaderEpochRequest

from msklite import Cluster
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster(
        brokers=3,
        config={"replica.lag.time.max.ms": "300", "auto.leader.rebalance.enable": "false"},
    ) as c:
        yield c


def _fill(cluster: Cluster, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for i in range(n):
        p.produce(topic, value=b"x" * 100 + b"%d" % i)
    assert p.flush(10) == 0


def test_preferred_election_with_the_confluent_admin_client(cluster: Cluster) -> None:
    cluster.create_topic("elect")
    preferred = cluster.partition("elect", 0).replicas[0]
    cluster.stop_broker(preferred)
    cluster.start_broker(preferred)
    wait_until(lambda: preferred in cluster.partition("elect", 0).isr, "the ISR")
    assert cluster.partition("elect", 0).leader != preferred  # no auto rebalance here
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("elect", 0)]).result(10)
    assert result[TopicPartition("elect", 0)] is None
    assert cluster.partition("elect", 0).leader == preferred


def test_reassignment_to_an_added_broker(cluster: Cluster) -> None:
    cluster.create_topic("move")
    _fill(cluster, "move", 100)
    new_id = cluster.add_broker("use1-az2")
    assert new_id == 4 and cluster.brokers[4].info.rack == "use1-az2"
    old = cluster.partition("move", 0).replicas
    target = [r for r in old if cluster.brokers[r].info.rack != "use1-az2"] + [4]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        admin.alter_partition_reassignments({TopicPartition("move", 0): target})
        wait_until(lambda: sorted(cluster.partition("move", 0).replicas) == sorted(target), "move")
        assert admin.list_partition_reassignments() == {}
        view = cluster.partition("move", 0)
        assert view.log_end_offsets[4] == 100 and sorted(view.isr) == sorted(target)
        moved_away = next(r for r in old if r not in target)
        assert not os.path.exists(os.path.join(cluster.data_dir, f"broker-{moved_away}", "move-0"))
        dirs = admin.describe_log_dirs()
        assert dirs  # every broker answers with its directory
    finally:
        admin.close()


def test_offset_for_leader_epoch_after_a_leader_change(cluster: Cluster) -> None:
    cluster.create_topic("epochs")
    _fill(cluster, "epochs", 10)
    wait_until(
        lambda: len(set(cluster.partition("epochs", 0).log_end_offsets.values())) == 1, "copy"
    )
    cluster.stop_broker(cluster.partition("epochs", 0).leader)
    _fill(cluster, "epochs", 5)
    view = cluster.partition("epochs", 0)
    info = cluster.brokers[view.leader].info
    req_cls = OffsetForLeaderEpochRequest
    topic = req_cls.OffsetForLeaderTopic(
        topic="epochs",
        partitions=[
            req_cls.OffsetForLeaderTopic.OffsetForLeaderPartition(
                partition=0, current_leader_epoch=view.leader_epoch, leader_epoch=epoch
            )
            for epoch in (0, view.leader_epoch)
        ],
    )
    with RawClient(f"{info.host}:{info.port}") as c:
        resp = c.request(req_cls(version=4, replica_id=-1, topics=[topic]), 4)
    old, new = resp.topics[0].partitions
    assert (old.error_code, old.leader_epoch, old.end_offset) == (0, 0, 10)
    assert (new.error_code, new.leader_epoch, new.end_offset) == (0, view.leader_epoch, 15)


def test_serve_console_stops_and_starts_brokers(tmp_path: object) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "msklite", "serve", "--port", "0", "--ephemeral"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().startswith("Bootstrap servers:")
        proc.stdin.write("stop-broker 2\nstart-broker 2\nstop-az use1-az4\n")
        proc.stdin.close()  # the console ends; the cluster keeps serving
        seen: list[str] = []
        while not any("use1-az4  DOWN" in line for line in seen):
            line = proc.stdout.readline()
            assert line, "the server exited early"
            seen.append(line)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        rest = proc.stdout.read()
        out = "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "use1-az2  DOWN" in out  # after stop-broker 2
    assert "use1-az4  DOWN" in out
    assert proc.returncode == 0 and "msklite stopped" in out
