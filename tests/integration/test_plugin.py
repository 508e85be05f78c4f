"""The pytest plugin as users get it: the marker, the factory, unique topics, and the
out-of-process modes run by an inner pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from msklite import Cluster, ErrorCode, KafkaError
from msklite.testing.external import ExternalCluster


@pytest.mark.msk(brokers=1, config={"auto.create.topics.enable": True}, kafka_version="3.6")
def test_the_marker_shapes_the_cluster(
    msk_cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    assert set(msk_cluster.brokers) == {1}
    assert msk_cluster.broker_configs.get("auto.create.topics.enable") == "true"
    assert msk_cluster.broker_configs.get("group.initial.rebalance.delay.ms") == "100"
    assert msk_cluster.kafka_version == "3.6.0"
    assert ("msk_kafka_version", "3.6") in request.node.user_properties


def test_the_factory_starts_clusters_of_any_shape(
    msk_cluster_factory: Callable[..., Cluster],
) -> None:
    one = msk_cluster_factory(brokers=1)
    two = msk_cluster_factory(brokers=2, config={"num.partitions": 4})
    assert (len(one.brokers), len(two.brokers)) == (1, 2)
    assert one.bootstrap_servers != two.bootstrap_servers
    assert two.broker_configs.get("num.partitions") == "4"


def test_unique_topics_on_the_session_cluster(
    msk_topic: Callable[..., str], msk_cluster_session: Cluster
) -> None:
    first, second = msk_topic(), msk_topic(partitions=3)
    assert first != second and first.startswith("test_unique_topics_on_the_session_cluster")
    assert msk_cluster_session.topics()[second] == 3


INNER_TEST = """
import pytest
from confluent_kafka import Producer


def produce(bootstrap, topic):
    producer = Producer({"bootstrap.servers": bootstrap})
    reports = []
    producer.produce(topic, b"v", on_delivery=lambda err, msg: reports.append(err))
    producer.flush(15)
    assert reports == [None]


@pytest.mark.msk(brokers=1)
def test_produce(msk_cluster, msk_cluster_session, msk_topic):
    produce(msk_cluster_session.bootstrap_servers, msk_topic(partitions=2))
    msk_cluster.create_topic("mine", partitions=1, replication_factor=1)
    produce(msk_cluster.bootstrap_servers, "mine")
"""

# The application's environment: msklite's own dependencies cannot be imported there.
INNER_CONFTEST = """
import sys

BLOCKED = ("kafka", "crc32c", "cramjam")
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], "the plugin imported them"


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed in this environment")
        return None


sys.meta_path.insert(0, Blocker())
"""


def _inner_pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path), *options],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_clusters_from_another_interpreter(tmp_path: Path) -> None:
    out = _inner_pytest(tmp_path, "--msklite-python", sys.executable)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_a_running_cluster_by_its_bootstrap(tmp_path: Path) -> None:
    with Cluster(brokers=1) as cluster:
        out = _inner_pytest(tmp_path, "--msklite-bootstrap", cluster.bootstrap_servers)
        assert out.returncode == 0, out.stdout + out.stderr
        topics = (
            AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
            .list_topics(timeout=10)
            .topics
        )
        assert "mine" in topics and any(t.startswith("test_produce-") for t in topics)
        with pytest.raises(KafkaError) as e:
            ExternalCluster(cluster.bootstrap_servers).create_topic("mine")
        assert e.value.code == ErrorCode.TOPIC_ALREADY_EXISTS


def test_marker_arguments_are_checked(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text(
        "import pytest\n\n@pytest.mark.msk(nodes=3)\ndef test_x(msk_cluster):\n    pass\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "unknown msk marker argument(s) ['nodes']" in out.stdout + out.stderr


@pytest.mark.msk(brokers=1, auth="plaintext,iam", iam_permissive=False)
def test_the_marker_chooses_listeners(msk_cluster: Cluster) -> None:
    assert [label for label, _ in msk_cluster.bootstrap_lines] == ["", "IAM"]
    assert msk_cluster.security.iam.permissive is False
    assert msk_cluster.ca_certificate is not None
