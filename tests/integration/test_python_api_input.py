"""The Python API names the bad value and what is allowed, instead of failing deep inside
(KeyError, IndexError) or doing nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msklite import Cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(brokers=3).start()
    c.create_topic("ok", partitions=2)
    yield c
    c.stop()


def test_broker_id_of_the_wrong_type_is_named(cluster: Cluster) -> None:
    with pytest.raises(TypeError, match=r"a broker id is an int, got '1' \(str\)"):
        cluster.stop_broker("1")  # type: ignore[arg-type]
    assert set(cluster.brokers) == {1, 2, 3}


def test_unknown_broker_is_named_with_the_known_ones(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="no broker 99: the cluster's brokers are 1, 2, 3"):
        cluster.pause_replication(99)
    with pytest.raises(ValueError, match="no broker 7"):
        cluster.stop_broker(7)


def test_unknown_topic_and_partition_are_named(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="no topic 'nope'"):
        cluster.partition("nope", 0)
    with pytest.raises(ValueError, match="no partition 99 in topic 'ok': it has partitions 0-1"):
        cluster.partition("ok", 99)
    with pytest.raises(ValueError, match="no partition 5"):
        cluster.pause_replication(2, "ok", 5)


def test_unknown_az_is_an_error_not_a_no_op(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="no AZ 'nope': the cluster's AZs are use1-az1, use1-az2"):
        cluster.stop_az("nope")
    with pytest.raises(ValueError, match="no AZ 'nope'"):
        cluster.add_broker("nope")
    assert set(cluster.brokers) == {1, 2, 3}
