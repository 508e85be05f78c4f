"""MSK custom configurations: `msklite serve --config-file FILE` takes serverProperties text,
MSK's rules apply, and the settings show as static broker configs over TCP."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from msklite.msk import msk_configuration, parse_server_properties
from tests.integration.helpers import printed_lines, serving, stop_cleanly

SERVER_PROPERTIES = """\
# an MSK custom configuration, as its serverProperties holds it
auto.create.topics.enable = true
log.retention.hours=24
transaction.max.timeout.ms=600000
connections.max.idle.ms: 300000
log.cleanup.policy=delete,\\
  compact
num.partitions=2
"""


def test_serve_with_an_msk_configuration(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text(SERVER_PROPERTIES)
    args = ("--config-file", str(path), "--config", "num.partitions=3")
    with serving("--port", "0", "--ephemeral", *args) as proc:
        line = printed_lines(proc, 1)[0]
        assert line.startswith("Bootstrap servers: "), line + (
            proc.stderr.read() if proc.stderr else ""
        )
        admin = AdminClient({"bootstrap.servers": line.split(": ", 1)[1]})
        admin.create_topics([NewTopic("configured")])["configured"].result(10)
        # --config wins over the file
        assert len(admin.list_topics(timeout=10).topics["configured"].partitions) == 3
        res = ConfigResource(ConfigResource.Type.TOPIC, "configured")
        topic = admin.describe_configs([res])[res].result(10)
        assert topic["retention.ms"].value == "86400000"  # from log.retention.hours
        assert topic["cleanup.policy"].value == "delete,compact"
        broker = ConfigResource(ConfigResource.Type.BROKER, "1")
        configs = admin.describe_configs([broker])[broker].result(10)
        assert configs["transaction.max.timeout.ms"].value == "600000"
        assert configs["connections.max.idle.ms"].value == "300000"
        assert configs["log.retention.hours"].value == "24"
        stop_cleanly(proc)


def test_keys_msk_does_not_let_you_set_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    path.write_text("listeners=PLAINTEXT://0.0.0.0:9092\nauto.leader.rebalance.enable=true\n")
    with serving("--port", "0", "--ephemeral", "--config-file", str(path)) as proc:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert (
        "Key 'listeners' is not supported by at least one Apache Kafka version. "
        "Key checked against versions: [3.9.x]"
    ) in err
    assert "Key 'auto.leader.rebalance.enable' is not supported" in err


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("replica.lag.time.max.ms=5000", "MinValue = 10000, MaxValue (inclusive) = 30000"),
        ("zookeeper.session.timeout.ms=60000", "MinValue = 6000, MaxValue (inclusive) = 18000"),
    ],
)
def test_msk_bounds(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        msk_configuration(text)


def test_properties_syntax() -> None:
    assert parse_server_properties("a=1\n  b : 2\nc 3\n! note\n# note\nd=x\\\n  y\n") == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "xy",
    }
