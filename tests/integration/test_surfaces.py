"""The three ways in: the CLI, the Python API (async and sync), and the pytest fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from msklite import Cluster, ErrorCode, KafkaError
from tests.integration.helpers import printed_lines, serving, stop_cleanly
from tests.integration.rawclient import RawClient


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    with serving(
        "--port",
        "0",
        "--brokers",
        "2",
        "--data-dir",
        str(tmp_path),
        "--config",
        "auto.create.topics.enable=true",
    ) as proc:
        line = printed_lines(proc, 1)[0]
        assert line.startswith("Bootstrap servers: "), line
        bootstrap = line.split(": ", 1)[1]
        assert len(bootstrap.split(",")) == 2
        assert "b-1" in printed_lines(proc, 1)[0]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        md = admin.list_topics(timeout=10)
        assert {b.id for b in md.brokers.values()} == {1, 2}
        admin.create_topics([NewTopic("from-cli", 2, 1)])["from-cli"].result(10)
        out = stop_cleanly(proc, stop_signal)
        assert "msklite stopped" in out
    # The data directory was used and shut down cleanly.
    assert (tmp_path / "broker-1" / ".kafka_cleanshutdown").exists()
    assert (tmp_path / "cluster-metadata.json").exists()


def test_cli_rejects_unknown_config() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "msklite",
            "serve",
            "--ephemeral",
            "--port",
            "0",
            "--config",
            "no.such.config=1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "Unknown broker config name: no.such.config" in proc.stderr


async def test_async_api() -> None:
    async with Cluster(brokers=3) as cluster:
        topic = cluster.create_topic("async-topic", partitions=3)
        assert [p.leader for p in topic.partitions] == [1, 2, 3] or len(
            {p.leader for p in topic.partitions}
        ) == 3
        assert len(cluster.bootstrap_servers.split(",")) == 3
        with pytest.raises(KafkaError) as e:
            cluster.create_topic("async-topic")
        assert e.value.code == ErrorCode.TOPIC_ALREADY_EXISTS
        with pytest.raises(KafkaError) as e:
            cluster.create_topic("rf4", replication_factor=4)
        assert e.value.code == ErrorCode.INVALID_REPLICATION_FACTOR
        racks = [b.info.rack for b in cluster.brokers.values()]
        assert racks == ["use1-az1", "use1-az2", "use1-az4"]


def test_sync_api_from_another_thread_and_fixed_ports() -> None:
    with RawClient.free_port_block(3) as base, Cluster(brokers=3, port=base) as cluster:
        assert cluster.bootstrap_servers == ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        cluster.create_topic("sync-topic")
        assert cluster.topics() == {"sync-topic": 1}
        cluster.delete_topic("sync-topic")
        assert cluster.topics() == {}


def test_fixture_gives_a_running_cluster(msk_cluster: Cluster) -> None:
    assert msk_cluster.started
    with RawClient(msk_cluster.bootstrap_servers) as c:
        versions = {k.api_key: (k.min_version, k.max_version) for k in c.api_versions().api_keys}
    assert versions[18] == (0, 4) and versions[0] == (3, 11) and versions[1] == (4, 12)


def test_session_fixture_is_shared(msk_cluster_session: Cluster) -> None:
    assert msk_cluster_session.started
    msk_cluster_session.create_topic(f"session-{id(msk_cluster_session)}-{os.getpid()}-x")
    assert any(name.startswith("session-") for name in msk_cluster_session.topics())
