"""The MSK API through the aws CLI (`aws kafka ... --endpoint-url`), as shell scripts and
infrastructure pipelines call it, against `msklite serve` in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.helpers import wait_until

ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PYTHONUNBUFFERED": "1",
}
SERVE = [sys.executable, "-m", "msklite", "serve", "--port", "0", "--brokers", "1"]
AWS = [sys.executable, "-m", "awscli", "kafka"]


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [*SERVE, "--data-dir", str(tmp_path / "data")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while not line.startswith("AWS endpoint: "):
            assert line, proc.stderr.read() if proc.stderr else ""
            line = proc.stdout.readline()
        yield line.split(": ", 1)[1].strip()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def aws(endpoint: str, *args: str) -> Any:
    out = subprocess.run(
        [*AWS, *args, "--endpoint-url", endpoint, "--output", "json"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else None


def test_the_aws_cli_creates_uses_and_deletes_a_cluster(endpoint: str, tmp_path: Path) -> None:
    properties = tmp_path / "server.properties"
    properties.write_text("auto.create.topics.enable=false\nnum.partitions=3\n")
    config = aws(
        endpoint,
        "create-configuration",
        "--name",
        "cli-config",
        "--server-properties",
        f"fileb://{properties}",
    )
    spec = {
        "BrokerNodeGroupInfo": {
            "ClientSubnets": ["subnet-1", "subnet-2"],
            "InstanceType": "kafka.m5.large",
        },
        "KafkaVersion": "3.9.x",
        "NumberOfBrokerNodes": 2,
        "EncryptionInfo": {"EncryptionInTransit": {"ClientBroker": "PLAINTEXT"}},
        "ConfigurationInfo": {"Arn": config["Arn"], "Revision": 1},
    }
    created = aws(
        endpoint, "create-cluster-v2", "--cluster-name", "cli", "--provisioned", json.dumps(spec)
    )
    arn = created["ClusterArn"]
    wait_until(
        lambda: (
            aws(endpoint, "describe-cluster-v2", "--cluster-arn", arn)["ClusterInfo"]["State"]
            == "ACTIVE"
        ),
        "the cluster ACTIVE",
        60,
    )
    bootstrap = aws(endpoint, "get-bootstrap-brokers", "--cluster-arn", arn)[
        "BootstrapBrokerString"
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("cli-topic", replication_factor=2)])["cli-topic"].result(30)
    md = admin.list_topics("cli-topic", timeout=10)
    assert len(md.topics["cli-topic"].partitions) == 3  # the configuration's num.partitions
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce("cli-topic", b"from the cli")
    assert producer.flush(30) == 0
    names = [c["ClusterName"] for c in aws(endpoint, "list-clusters-v2")["ClusterInfoList"]]
    assert names == ["msklite", "cli"]
    nodes = aws(endpoint, "list-nodes", "--cluster-arn", arn)["NodeInfoList"]
    assert len(nodes) == 2
    assert aws(endpoint, "delete-cluster", "--cluster-arn", arn)["State"] == "DELETING"
    wait_until(
        lambda: (
            [c["ClusterName"] for c in aws(endpoint, "list-clusters-v2")["ClusterInfoList"]]
            == ["msklite"]
        ),
        "the cluster deleted",
        60,
    )
    bad = subprocess.run(
        [*AWS, "describe-cluster", "--cluster-arn", arn, "--endpoint-url", endpoint],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert bad.returncode != 0 and "NotFoundException" in bad.stderr
