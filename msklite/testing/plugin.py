"""pytest plugin (registered through the `pytest11` entry point).

Fixtures:
- `msk_cluster`: a started 3-broker `Cluster` on free loopback ports with a temporary data
  directory, stopped after the test.
- `msk_cluster_session`: the same, shared by a whole test session.
Both run the cluster on its own event loop in a background thread, so they serve synchronous
tests and asyncio tests (any loop) alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msklite.cluster import Cluster


def _cluster() -> Cluster:
    # A short initial rebalance delay (Kafka's default is 3000 ms) keeps group tests quick.
    return Cluster(
        brokers=3,
        config={
            "log.retention.check.interval.ms": "300000",
            "group.initial.rebalance.delay.ms": "100",
        },
    )


@pytest.fixture
def msk_cluster() -> Iterator[Cluster]:
    cluster = _cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def msk_cluster_session() -> Iterator[Cluster]:
    cluster = _cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
