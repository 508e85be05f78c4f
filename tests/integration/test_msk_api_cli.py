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


class Serve:
    """`msklite serve` in a process of its own: its printed lines until the AWS endpoint."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*SERVE, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert self.proc.stdout is not None
        self.lines = [self.proc.stdout.readline()]
        while not self.lines[-1].startswith("AWS endpoint: "):
            assert self.lines[-1], self.proc.communicate(timeout=30)
            self.lines.append(self.proc.stdout.readline())
        self.endpoint = self.lines[-1].split(": ", 1)[1].strip()

    def line(self, prefix: str) -> str:
        return (
            next(line for line in self.lines if line.startswith(prefix)).split(": ", 1)[1].strip()
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                _, err = self.proc.communicate(timeout=60)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
            assert self.proc.returncode == 0, err


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    server = Serve("--data-dir", str(tmp_path / "data"))
    try:
        yield server.endpoint
    finally:
        server.stop()


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


def test_serve_plays_secrets_manager_for_scram_secrets(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"AmazonMSK_alice": {"username": "alice", "password": "pw-1"}}))
    server = Serve("--ephemeral", "--auth", "plaintext,scram", "--scram-secrets", str(secrets))
    try:
        endpoint = server.endpoint
        (cluster,) = aws(endpoint, "list-clusters-v2")["ClusterInfoList"]
        secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:AmazonMSK_alice-a1B2c3"
        result = aws(
            endpoint, "batch-associate-scram-secret", "--cluster-arn", cluster["ClusterArn"],
            "--secret-arn-list", secret,
        )  # fmt: skip
        assert result["UnprocessedScramSecrets"] == []
        brokers = aws(endpoint, "get-bootstrap-brokers", "--cluster-arn", cluster["ClusterArn"])
        admin = AdminClient(
            {
                "bootstrap.servers": brokers["BootstrapBrokerStringSaslScram"],
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "alice",
                "sasl.password": "pw-1",
                "ssl.ca.location": server.line("CA certificate"),
            }
        )
        assert admin.list_topics(timeout=20).brokers
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "Expecting value"),
        ("[1]", "not a JSON object"),
        ('{"AmazonMSK_x": 1}', "is not"),
    ],
)
def test_serve_refuses_a_bad_secrets_file(tmp_path: Path, content: str, message: str) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(content)
    out = subprocess.run(
        [*SERVE, "--ephemeral", "--scram-secrets", str(secrets)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode != 0 and message in out.stderr
