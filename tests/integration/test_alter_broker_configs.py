"""Dynamic broker configs over TCP: one broker's, the cluster-wide default (empty name) and
BROKER_LOGGER, with the sources DescribeConfigs reports, their effect on topics, their
persistence and Kafka's refusals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioResourceType
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from kafka.admin import AlterConfigOp, KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpResourceType
from kafka.protocol.admin.configs import (
    AlterConfigsRequest,
    DescribeConfigsRequest,
    IncrementalAlterConfigsRequest,
)

from msklite import Cluster
from msklite.topic_partition import TopicPartition
from tests.integration.rawclient import RawClient

BROKER, TOPIC = ConfigResource.Type.BROKER, ConfigResource.Type.TOPIC
TOPIC_TYPE = 2  # the wire id of TOPIC


def _set(name: str, value: str) -> ConfigEntry:
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def _alter(admin: AdminClient, rtype: ResourceType, name: str, *entries: ConfigEntry) -> None:
    res = ConfigResource(rtype, name, incremental_configs=list(entries))
    admin.incremental_alter_configs([res])[res].result(10)


def _alter_default(
    cluster: Cluster, ops: Sequence[tuple[str, int, str | None]]
) -> tuple[int, str | None]:
    """Alter the cluster-wide default (raw: librdkafka and kafka-python refuse an empty
    broker name)."""
    req_cls = IncrementalAlterConfigsRequest
    res_cls = req_cls.AlterConfigsResource
    configs = [res_cls.AlterableConfig(name=n, config_operation=o, value=v) for n, o, v in ops]
    req = req_cls(
        version=1,
        resources=[res_cls(resource_type=4, resource_name="", configs=configs)],
        validate_only=False,
    )
    with RawClient(cluster.bootstrap_servers) as c:
        [r] = c.request(req, 1).responses
    return r.error_code, r.error_message


def _raw_describe(cluster: Cluster, rtype: int, name: str) -> dict[str, Any]:
    """name -> entry (librdkafka keys synonyms by name, losing repeated names)."""
    return _raw_describe_at(cluster.bootstrap_servers, rtype, name)


def _raw_describe_at(address: str, rtype: int, name: str) -> dict[str, Any]:
    """As `_raw_describe`, asking the broker at `address`."""
    req_cls = DescribeConfigsRequest
    res = req_cls.DescribeConfigsResource(
        resource_type=rtype, resource_name=name, configuration_keys=None
    )
    req = req_cls(version=4, resources=[res], include_synonyms=True, include_documentation=False)
    with RawClient(address) as c:
        [r] = c.request(req, 4).results
    assert r.error_code == 0
    return {c.name: c for c in r.configs}


def _describe_default(cluster: Cluster) -> dict[str, int]:
    """name -> config_source of the cluster-wide default's entries."""
    return {name: c.config_source for name, c in _raw_describe(cluster, 4, "").items()}


def _error(admin: AdminClient, name: str, *entries: ConfigEntry) -> KafkaError:
    with pytest.raises(KafkaException) as exc:
        _alter(admin, BROKER, name, *entries)
    err: KafkaError = exc.value.args[0]
    return err


def _describe(admin: AdminClient, rtype: ResourceType, name: str) -> dict[str, ConfigEntry]:
    res = ConfigResource(rtype, name)
    return admin.describe_configs([res])[res].result(10)  # type: ignore[no-any-return]


def _source(entry: ConfigEntry) -> int:
    return cast(int, entry.source)


def _synonyms(entry: ConfigEntry) -> list[tuple[str, str | None, int]]:
    return [(s.name, s.value, cast(int, s.source)) for s in entry.synonyms.values()]


def test_cluster_default_reaches_every_topic(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    ops = [("log.retention.ms", 0, "3600000"), ("log.segment.bytes", 0, "2000000")]
    assert _alter_default(msk_cluster, ops) == (0, None)
    config = msk_cluster._controller().topics[topic_name].config
    assert (config.retention_ms, config.segment_bytes) == (3_600_000, 2_000_000)

    topic = _describe(admin, TOPIC, topic_name)
    assert topic["retention.ms"].value == "3600000"
    assert _source(topic["retention.ms"]) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert _synonyms(topic["retention.ms"]) == [
        ("log.retention.ms", "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value),
        ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG.value),
    ]
    defaults = _describe_default(msk_cluster)
    assert set(defaults) == {"log.retention.ms", "log.segment.bytes"}
    assert defaults["log.segment.bytes"] == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value

    # one broker's own setting wins on that broker
    _alter(admin, BROKER, "2", _set("log.retention.ms", "60000"))
    broker = _describe(admin, BROKER, "2")
    assert broker["log.retention.ms"].value == "60000"
    assert _source(broker["log.retention.ms"]) == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    raw = _raw_describe(msk_cluster, 4, "2")["log.retention.ms"]
    assert [(s.name, s.value, s.source) for s in raw.synonyms] == [
        ("log.retention.ms", "60000", ConfigSource.DYNAMIC_BROKER_CONFIG.value),
        ("log.retention.ms", "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value),
        ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG.value),
    ]
    assert broker["broker.id"].is_read_only and not broker["log.retention.ms"].is_read_only
    other = _describe(admin, BROKER, "1")
    assert _source(other["log.retention.ms"]) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value

    assert _alter_default(msk_cluster, [("log.retention.ms", 1, None)]) == (0, None)
    assert msk_cluster._controller().topics[topic_name].config.retention_ms == 604_800_000


def test_refusals(msk_cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    err = _error(admin, "1", _set("num.partitions", "3"), _set("broker.id", "7"))
    assert err.name() == "INVALID_REQUEST"
    assert err.str() == "Cannot update these configs dynamically: Set(broker.id, num.partitions)"
    err = _error(admin, "2", _set("log.retention.msx", "1"))
    assert err.name() == "INVALID_CONFIG"
    assert err.str() == (
        "Unknown broker config name: log.retention.msx (did you mean log.retention.ms?)"
    )
    err = _error(admin, "2", _set("log.segment.bytes", "10"))
    assert err.name() == "INVALID_REQUEST"
    assert err.str() == (
        "Invalid value 10 for configuration log.segment.bytes: Value must be at least 14"
    )
    err = _error(
        admin,
        "2",
        ConfigEntry("log.segment.bytes", "5", incremental_operation=AlterConfigOpType.APPEND),
    )
    assert (err.name(), err.str()) == (
        "INVALID_CONFIG",
        "Config value append is not allowed for config key: log.segment.bytes",
    )
    assert _alter_default(msk_cluster, [("advertised.listeners", 0, "PLAINTEXT://x:1")]) == (
        42,
        "Cannot update these configs at default cluster level, broker id must be specified: "
        "Set(advertised.listeners)",
    )
    # nothing refused was kept
    assert _describe_default(msk_cluster) == {}
    assert msk_cluster._controller().configs.dynamic == {}


def test_broker_configs_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with Cluster(brokers=3, data_dir=data) as cluster:
        cluster.create_topic("kept")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        assert _alter_default(cluster, [("log.retention.bytes", 0, "1048576")]) == (0, None)
        _alter(admin, BROKER, "3", _set("log.cleaner.threads", "2"))
    with Cluster(brokers=3, data_dir=data) as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        assert cluster._controller().topics["kept"].config.retention_bytes == 1_048_576
        broker = _describe(admin, BROKER, "3")
        assert broker["log.cleaner.threads"].value == "2"
        assert _source(broker["log.cleaner.threads"]) == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert cluster._controller().configs.dynamic_default == {"log.retention.bytes": "1048576"}
        assert "log.retention.bytes" in _describe_default(cluster)


def test_kafka_python_broker_and_logger(msk_cluster: Cluster) -> None:
    admin = KafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    logger = logging.getLogger("msklite.controller")
    before = logger.level
    try:
        res = KpConfigResource(
            KpResourceType.BROKER, "2", configs={"log.cleaner.threads": (AlterConfigOp.SET, "3")}
        )
        assert admin.alter_configs([res], incremental=True) == {"broker": {"2": "OK"}}
        got = admin.describe_configs([KpConfigResource(KpResourceType.BROKER, "2")])
        assert got["broker"]["2"]["log.cleaner.threads"]["value"] == "3"

        loggers = KpConfigResource(
            KpResourceType.BROKER_LOGGER,
            "1",
            configs={"msklite.controller": (AlterConfigOp.SET, "DEBUG")},
        )
        assert admin.alter_configs([loggers], incremental=True, raise_on_unknown=False) == {
            "broker_logger": {"1": "OK"}
        }
        assert logger.level == logging.DEBUG
        described = admin.describe_configs(
            [KpConfigResource(KpResourceType.BROKER_LOGGER, "1")], config_filter="all"
        )["broker_logger"]["1"]
        assert described["msklite.controller"]["value"] == "DEBUG"
        assert described["root"]["config_source"] == "DYNAMIC_BROKER_LOGGER_CONFIG"

        bad = KpConfigResource(
            KpResourceType.BROKER_LOGGER, "1", configs={"root": (AlterConfigOp.DELETE, None)}
        )
        out = admin.alter_configs([bad], incremental=True, raise_on_unknown=False)
        assert (
            "Removing the log level of the root logger is not allowed" in out["broker_logger"]["1"]
        )
        level = KpConfigResource(
            KpResourceType.BROKER_LOGGER,
            "1",
            configs={"msklite.controller": (AlterConfigOp.SET, "LOUD")},
        )
        out = admin.alter_configs([level], incremental=True, raise_on_unknown=False)
        assert (
            "Cannot set the log level of msklite.controller to LOUD as it is not a supported log "
            "level. Valid log levels are DEBUG, ERROR, FATAL, INFO, TRACE, WARN"
        ) in out["broker_logger"]["1"]
        missing = KpConfigResource(
            KpResourceType.BROKER_LOGGER, "1", configs={"nope.nothing": (AlterConfigOp.SET, "INFO")}
        )
        out = admin.alter_configs([missing], incremental=True, raise_on_unknown=False)
        assert "Logger nope.nothing does not exist!" in out["broker_logger"]["1"]
    finally:
        logger.setLevel(before)
        admin.close()


async def test_aiokafka_legacy_broker_alter(msk_cluster: Cluster) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    await admin.start()
    try:
        res = AioConfigResource(
            AioResourceType.BROKER, "1", configs={"log.cleaner.io.max.bytes.per.second": "1e6"}
        )
        responses = await admin.alter_configs([res])
        assert [r["error_code"] for x in responses for r in x.to_object()["resources"]] == [0]
        assert msk_cluster._controller().configs.dynamic[1] == {
            "log.cleaner.io.max.bytes.per.second": "1e6"
        }
        # the legacy API replaces the whole set: what is left out is deleted
        res = AioConfigResource(AioResourceType.BROKER, "1", configs={"log.cleaner.threads": "2"})
        responses = await admin.alter_configs([res])
        assert [r["error_code"] for x in responses for r in x.to_object()["resources"]] == [0]
        assert msk_cluster._controller().configs.dynamic[1] == {"log.cleaner.threads": "2"}
    finally:
        await admin.close()


def test_unclean_election_turned_on_cluster_wide_elects_at_once() -> None:
    with Cluster(brokers=3, config={"unclean.leader.election.enable": False}) as cluster:
        cluster.create_topic("stranded", replication_factor=2)
        leader, follower = cluster.partition("stranded", 0).replicas
        # the follower leaves the ISR first; once the leader is gone no clean candidate is left
        cluster.stop_broker(follower)
        cluster.stop_broker(leader)
        cluster.start_broker(follower)
        assert cluster.partition("stranded", 0).leader == -1
        assert _alter_default(cluster, [("unclean.leader.election.enable", 0, "true")]) == (0, None)
        assert cluster.partition("stranded", 0).leader == follower


def test_describe_configs_documentation(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    req_cls = DescribeConfigsRequest
    resources = [
        req_cls.DescribeConfigsResource(resource_type=t, resource_name=n, configuration_keys=[key])
        for t, n, key in [(2, topic_name, "retention.ms"), (4, "1", "log.retention.hours")]
    ]
    req = req_cls(
        version=4, resources=resources, include_synonyms=False, include_documentation=True
    )
    with RawClient(msk_cluster.bootstrap_servers) as c:
        topic, broker = c.request(req, 4).results
    [retention] = topic.configs
    assert retention.documentation.startswith(
        "This configuration controls the maximum time we will retain a log"
    )
    [hours] = broker.configs
    assert hours.documentation.startswith("The number of hours to keep a log file")
    req = req_cls(
        version=4, resources=resources, include_synonyms=False, include_documentation=False
    )
    with RawClient(msk_cluster.bootstrap_servers) as c:
        topic, _ = c.request(req, 4).results
    assert topic.configs[0].documentation is None


def test_a_brokers_own_topic_default_applies_to_its_logs(tmp_path: Path) -> None:
    """Kafka applies a broker's own dynamic log config to that broker's LogManager: its
    replicas take it, the other brokers' keep the cluster-wide default, and the broker
    describes the topic with it."""
    data = str(tmp_path / "data")
    with Cluster(brokers=3, data_dir=data) as cluster:
        cluster.create_topic("own", partitions=1, replication_factor=3)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        _alter(admin, BROKER, "2", _set("log.retention.ms", "60000"))
        cluster.create_topic("later", partitions=1, replication_factor=3)

        def retention(node_id: int, topic: str) -> tuple[int, int]:
            part = cluster.brokers[node_id].replicas.partitions[TopicPartition(topic, 0)]
            return part.config.retention_ms, part.log.config.retention_ms

        for topic in ("own", "later"):
            assert retention(2, topic) == (60_000, 60_000)
            assert retention(1, topic) == retention(3, topic) == (604_800_000, 604_800_000)
        info = cluster.brokers[2].info
        on_two = _raw_describe_at(f"{info.host}:{info.port}", TOPIC_TYPE, "own")
        assert on_two["retention.ms"].value == "60000"
        assert on_two["retention.ms"].config_source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        # the topic's own override still wins over the broker's
        _alter(admin, TOPIC, "own", _set("retention.ms", "90000"))
        assert retention(2, "own") == (90_000, 90_000)
    with Cluster(brokers=3, data_dir=data) as cluster:
        part = cluster.brokers[2].replicas.partitions[TopicPartition("later", 0)]
        assert part.log.config.retention_ms == 60_000
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        ops = [
            ConfigEntry("log.retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
        ]
        _alter(admin, BROKER, "2", *ops)
        assert part.log.config.retention_ms == 604_800_000


@pytest.mark.parametrize("incremental", [True, False])
def test_read_only_configs_answer_invalid_request_as_kafka_does(
    msk_cluster: Cluster, incremental: bool
) -> None:
    """Kafka 3.9 (KRaft): ConfigAdminManager.preprocess turns DynamicBrokerConfig's
    ConfigException into INVALID_REQUEST for both APIs (KAFKA-13609 keeps it so), not the
    INVALID_CONFIG one might expect."""
    configs = [("log.dirs", "/elsewhere"), ("broker.id", "9")]
    version = 1 if incremental else 2
    if incremental:
        inc = IncrementalAlterConfigsRequest.AlterConfigsResource
        req: Any = IncrementalAlterConfigsRequest(
            version=1,
            resources=[
                inc(
                    resource_type=4,
                    resource_name="1",
                    configs=[
                        inc.AlterableConfig(name=n, config_operation=0, value=v) for n, v in configs
                    ],
                )
            ],
            validate_only=False,
        )
    else:
        leg = AlterConfigsRequest.AlterConfigsResource
        req = AlterConfigsRequest(
            version=2,
            resources=[
                leg(
                    resource_type=4,
                    resource_name="1",
                    configs=[leg.AlterableConfig(name=n, value=v) for n, v in configs],
                )
            ],
            validate_only=False,
        )
    info = msk_cluster.brokers[1].info
    with RawClient(f"{info.host}:{info.port}") as c:
        [r] = c.request(req, version).responses
    assert (r.error_code, r.error_message) == (
        42,
        "Cannot update these configs dynamically: Set(broker.id, log.dirs)",
    )
    assert msk_cluster._controller().configs.dynamic == {}
