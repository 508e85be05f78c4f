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


def test_config_values_may_be_ints_bools_floats_and_lists(tmp_path) -> None:
    c = Cluster(
        brokers=1,
        data_dir=str(tmp_path),
        config={
            "replica.lag.time.max.ms": 2000,
            "auto.create.topics.enable": True,
            "log.cleaner.min.cleanable.ratio": 0.25,
        },
    )
    assert c.broker_configs.get("replica.lag.time.max.ms") == "2000"
    assert c.broker_configs.get("auto.create.topics.enable") == "true"
    assert c.broker_configs.get("log.cleaner.min.cleanable.ratio") == "0.25"
    with c:
        topic = c.create_topic(
            "typed",
            configs={"retention.ms": 1000, "preallocate": False, "cleanup.policy": ["delete"]},
        )
        assert topic.configs == {
            "retention.ms": "1000",
            "preallocate": "false",
            "cleanup.policy": "delete",
        }
        with pytest.raises(TypeError, match=r"config retention.ms: None \(NoneType\)"):
            c.create_topic("untyped", configs={"retention.ms": None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"Invalid value true for configuration replica\.lag"):
        Cluster(config={"replica.lag.time.max.ms": True})


def test_constructor_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match=r"brokers is an int, got '3' \(str\)"):
        Cluster(brokers="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one broker, got brokers=0"):
        Cluster(brokers=0)
    with pytest.raises(ValueError, match=r"port 65535 does not fit 3 broker\(s\).*1-65533"):
        Cluster(port=65535)
    with pytest.raises(ValueError, match="port 99999 does not fit"):
        Cluster(brokers=1, port=99999)
    with pytest.raises(ValueError, match="names an AZ twice"):
        Cluster(azs=["use1-az1", "use1-az1"])
    assert Cluster(azs="use1-az1").azs == ("use1-az1",)
    assert Cluster(azs="use1-az1, use1-az2").azs == ("use1-az1", "use1-az2")
    assert {i.rack for i in Cluster(azs="use1-az1").infos} == {"use1-az1"}


def test_bootstrap_brackets_ipv6_hosts() -> None:
    from msklite.msk import bootstrap_string

    assert bootstrap_string([("::1", 9092, "a"), ("127.0.0.1", 9093, "b")]) == (
        "[::1]:9092,127.0.0.1:9093"
    )


def test_cluster_id_is_kept_across_restarts_before_any_topic(tmp_path) -> None:
    with Cluster(brokers=1, data_dir=str(tmp_path)) as c:
        assert c.controller is not None
        first = c.controller.cluster_id
    with Cluster(brokers=1, data_dir=str(tmp_path)) as c:
        assert c.controller is not None and c.controller.cluster_id == first


def test_a_saved_cluster_does_not_silently_shrink(tmp_path) -> None:
    from msklite.cluster import stored_brokers

    assert stored_brokers(str(tmp_path)) is None
    Cluster(brokers=3, data_dir=str(tmp_path)).start().stop()
    assert stored_brokers(str(tmp_path)) == 3
    with pytest.raises(ValueError, match="holds a cluster of 3 brokers; brokers=1 would leave out"):
        Cluster(brokers=1, data_dir=str(tmp_path)).start()
    with Cluster(brokers=3, data_dir=str(tmp_path)) as c:
        assert set(c.brokers) == {1, 2, 3}


def test_a_client_reaches_a_cluster_on_ipv6_loopback() -> None:
    import socket

    from confluent_kafka.admin import AdminClient

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with Cluster(brokers=1, host="::1") as c:
        assert c.bootstrap_servers.startswith("[::1]:")
        md = AdminClient({"bootstrap.servers": c.bootstrap_servers}).list_topics(timeout=10)
        assert set(md.brokers) == {1}
