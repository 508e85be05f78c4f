"""pytest plugin (registered through the `pytest11` entry point).

Fixtures:
- `msk_cluster`: a started cluster for one test (3 brokers on free loopback ports, a temporary
  data directory), stopped after it; shaped by the `msk` marker:
  `@pytest.mark.msk(brokers=1, config={"auto.create.topics.enable": True})`.
- `msk_cluster_session`: one such cluster shared by the whole session (not shaped by markers).
- `msk_cluster_factory`: `msk_cluster_factory(brokers=1, config={...})` starts more clusters in
  a test; all of them stop after it.
- `msk_topic`: `msk_topic(partitions=3)` creates a topic on the session cluster under a name no
  other test uses (it starts with the test's name) and returns the name.
All of them run the cluster on its own event loop in a background thread, so they serve
synchronous tests and asyncio tests (any loop) alike.

Out of process (the application's environment then needs none of msklite's dependencies:
`pip install --no-deps msklite` is enough for the plugin):
- `--msklite-python PATH`: each cluster is `PATH -m msklite serve` in a process of its own,
  e.g. the python of a venv that holds msklite and its dependencies.
- `--msklite-bootstrap HOST:PORT`: every fixture hands out the cluster already running there;
  nothing is started. Markers cannot reshape it.
In both modes the fixtures give an `ExternalCluster`: `bootstrap_servers` and `create_topic`.

Marker arguments: `brokers`, `config`, `azs` (in-process only), and `kafka_version`: the MSK
Kafka version the cluster emulates (`--kafka-version`; also recorded in the test's
user_properties). In process, also the listeners and their credentials, as `Cluster` takes
them: `auth="plaintext,tls,scram,iam"`, `scram_users`, `tls_client_auth`, `iam_credentials`,
`iam_permissive`, `iam_policies`, `layout`, `msk_hostnames`.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from msklite.cluster import Cluster
    from msklite.testing.external import ExternalCluster

# A short initial rebalance delay (Kafka's default is 3000 ms) keeps group tests quick, and
# retention checks stay out of the way.
DEFAULT_CONFIG: dict[str, object] = {
    "log.retention.check.interval.ms": 300000,
    "group.initial.rebalance.delay.ms": 100,
}
# Cluster's own arguments the marker passes through to an in-process cluster.
_IN_PROCESS_ARGS = {
    "azs",
    "auth",
    "scram_users",
    "tls_client_auth",
    "iam_credentials",
    "iam_permissive",
    "iam_policies",
    "layout",
    "msk_hostnames",
}
_MARKER_ARGS = {"brokers", "config", "kafka_version", *_IN_PROCESS_ARGS}


class AnyCluster(Protocol):
    """What every fixture's cluster offers, in process or not."""

    @property
    def bootstrap_servers(self) -> str: ...

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, Any] | None = None,
    ) -> object: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("msklite")
    group.addoption(
        "--msklite-bootstrap",
        metavar="HOST:PORT",
        default=None,
        help="use the msklite (or Kafka) cluster running there instead of starting one",
    )
    group.addoption(
        "--msklite-python",
        metavar="PATH",
        default=None,
        help="start each cluster as `PATH -m msklite serve` in its own process "
        "(e.g. the python of a venv holding msklite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "msk(brokers=3, config=None, azs=None, kafka_version=None): the shape of the "
        "msk_cluster fixture's cluster for this test (msklite)",
    )
    if config.getoption("--msklite-bootstrap") and config.getoption("--msklite-python"):
        raise pytest.UsageError("--msklite-bootstrap and --msklite-python exclude each other")


class _Clusters:
    """Starts clusters the way the options say, and stops what it started."""

    def __init__(self, config: pytest.Config) -> None:
        self.bootstrap: str | None = config.getoption("--msklite-bootstrap")
        self.python: str | None = config.getoption("--msklite-python")
        self.started: list[Cluster | ExternalCluster] = []

    def start(
        self,
        brokers: int = 3,
        config: Mapping[str, object] | None = None,
        kafka_version: str | None = None,
        **in_process: Any,
    ) -> Any:
        merged = {**DEFAULT_CONFIG, **(config or {})}
        unknown = set(in_process) - _IN_PROCESS_ARGS
        if unknown:
            raise TypeError(f"unknown cluster argument(s) {sorted(unknown)}")
        if self.bootstrap is not None:
            from msklite.testing.external import ExternalCluster

            return ExternalCluster(self.bootstrap)
        if self.python is not None:
            from msklite.testing.external import ExternalCluster

            if in_process:
                names = ", ".join(sorted(in_process))
                raise pytest.UsageError(f"the msk marker's {names} need(s) an in-process cluster")

            external = ExternalCluster.start(self.python, brokers, merged, kafka_version)
            self.started.append(external)
            return external
        from msklite.cluster import Cluster

        kwargs: dict[str, Any] = {k: v for k, v in in_process.items() if v is not None}
        if kafka_version is not None:
            kwargs["kafka_version"] = kafka_version
        cluster = Cluster(brokers=brokers, config=merged, **kwargs).start()  # type: ignore[arg-type]
        self.started.append(cluster)
        return cluster

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


def _shape(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("msk")
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError("the msk marker takes keyword arguments only")
    unknown = set(marker.kwargs) - _MARKER_ARGS
    if unknown:
        raise pytest.UsageError(
            f"unknown msk marker argument(s) {sorted(unknown)}; allowed: {sorted(_MARKER_ARGS)}"
        )
    shape = dict(marker.kwargs)
    version = shape.get("kafka_version")
    if version is not None:
        request.node.user_properties.append(("msk_kafka_version", str(version)))
    return shape


@pytest.fixture
def msk_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    clusters = _Clusters(request.config)
    try:
        yield clusters.start(**_shape(request))
    finally:
        clusters.stop_all()


@pytest.fixture(scope="session")
def msk_cluster_session(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    clusters = _Clusters(request.config)
    try:
        yield clusters.start()
    finally:
        clusters.stop_all()


@pytest.fixture
def msk_cluster_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Cluster]]:
    clusters = _Clusters(request.config)
    try:
        yield clusters.start
    finally:
        clusters.stop_all()


_topic_numbers = itertools.count()
# Runs against one --msklite-bootstrap cluster must not reuse each other's names.
_RUN = uuid.uuid4().hex[:6]


@pytest.fixture
def msk_topic(
    msk_cluster_session: AnyCluster, request: pytest.FixtureRequest
) -> Callable[..., str]:
    """Creates a topic on the session cluster, named after the test and unique in the session
    (also across pytest-xdist workers' clusters, each of which is its own)."""

    def create(
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, object] | None = None,
    ) -> str:
        stem = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:180]
        name = f"{stem}-{_RUN}-{next(_topic_numbers)}"
        msk_cluster_session.create_topic(name, partitions, replication_factor, configs)
        return name

    return create
