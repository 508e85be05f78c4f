"""AlterConfigs and IncrementalAlterConfigs over TCP: confluent-kafka, kafka-python, aiokafka
and raw requests; the changes take effect at once and survive a restart."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import cast

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioResourceType
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
)
from kafka.admin import AlterConfigOp, KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpResourceType
from kafka.protocol.admin.configs import AlterConfigsRequest, IncrementalAlterConfigsRequest

from msklite import Cluster
from tests.integration.rawclient import RawClient

TOPIC = ConfigResource.Type.TOPIC


def _admin(cluster: Cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap_servers})


def _incremental(admin: AdminClient, topic: str, *entries: ConfigEntry, **kw: bool) -> None:
    res = ConfigResource(TOPIC, topic, incremental_configs=list(entries))
    admin.incremental_alter_configs([res], **kw)[res].result(10)


def _describe(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    res = ConfigResource(TOPIC, topic)
    return admin.describe_configs([res])[res].result(10)  # type: ignore[no-any-return]


def _source(entry: ConfigEntry) -> int:
    # librdkafka's binding gives the wire number, its stubs say ConfigSource
    return cast(int, entry.source)


def _error(admin: AdminClient, topic: str, *entries: ConfigEntry) -> KafkaError:
    with pytest.raises(KafkaException) as exc:
        _incremental(admin, topic, *entries)
    err: KafkaError = exc.value.args[0]
    return err


def _set(name: str, value: str) -> ConfigEntry:
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def test_confluent_incremental_set_delete_append_subtract(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name)
    admin = _admin(msk_cluster)
    _incremental(admin, topic_name, _set("retention.ms", "3600000"))
    configs = _describe(admin, topic_name)
    assert configs["retention.ms"].value == "3600000"
    assert _source(configs["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert msk_cluster._controller().topics[topic_name].config.retention_ms == 3_600_000

    # APPEND starts from the default ("delete"), SUBTRACT removes one element.
    append = ConfigEntry(
        "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND
    )
    _incremental(admin, topic_name, append)
    assert _describe(admin, topic_name)["cleanup.policy"].value == "delete,compact"
    subtract = ConfigEntry(
        "cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT
    )
    _incremental(admin, topic_name, subtract)
    assert _describe(admin, topic_name)["cleanup.policy"].value == "compact"
    # the other overrides stay: incremental changes touch only the named configs
    assert _describe(admin, topic_name)["retention.ms"].value == "3600000"

    delete = ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
    _incremental(admin, topic_name, delete)
    configs = _describe(admin, topic_name)
    assert configs["retention.ms"].value == "604800000"
    assert _source(configs["retention.ms"]) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    _incremental(admin, topic_name, _set("retention.ms", "1000"), validate_only=True)
    assert _describe(admin, topic_name)["retention.ms"].value == "604800000"


def test_confluent_incremental_errors(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    admin = _admin(msk_cluster)
    err = _error(admin, topic_name, _set("retention.msx", "1"))
    assert err.name() == "INVALID_CONFIG"
    assert err.str() == "Unknown topic config name: retention.msx"

    err = _error(admin, topic_name, _set("retention.ms", "soon"))
    assert err.name() == "INVALID_CONFIG"
    assert err.str() == (
        "Invalid value soon for configuration retention.ms: Not a number of type LONG"
    )

    err = _error(
        admin,
        topic_name,
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND),
    )
    assert err.name() == "INVALID_CONFIG"
    assert err.str() == "Can't APPEND to key retention.ms because its type is not LIST."

    err = _error(
        admin, topic_name, _set("min.compaction.lag.ms", "10"), _set("max.compaction.lag.ms", "5")
    )
    assert err.name() == "INVALID_CONFIG"
    assert err.str() == (
        "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
    )

    err = _error(admin, topic_name + "-missing", _set("retention.ms", "1"))
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert err.str() == f"The topic '{topic_name}-missing' does not exist."
    # nothing of a refused resource was applied
    assert _describe(admin, topic_name)["min.compaction.lag.ms"].value == "0"


def test_confluent_legacy_alter_replaces_the_overrides(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, configs={"retention.ms": "1234567"})
    admin = _admin(msk_cluster)
    res = ConfigResource(TOPIC, topic_name, set_config={"segment.ms": "100000"})
    with pytest.warns(DeprecationWarning):  # librdkafka deprecates the legacy API
        futures = admin.alter_configs([res])
    futures[res].result(10)
    configs = _describe(admin, topic_name)
    assert configs["segment.ms"].value == "100000"
    assert configs["retention.ms"].value == "604800000"  # left out: back to the default


def _producer(cluster: Cluster, **extra: object) -> Producer:
    return Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0, **extra})


def _produce_error(producer: Producer, topic: str, value: bytes) -> KafkaError | None:
    result: list[KafkaError | None] = []
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: result.append(err))
    assert producer.flush(15) == 0
    return result[0]


def test_changes_take_effect_at_once(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, replication_factor=3)
    admin = _admin(msk_cluster)
    producer = _producer(msk_cluster, acks="all", retries=0, **{"message.max.bytes": 100000})
    assert _produce_error(producer, topic_name, b"x" * 5000) is None

    _incremental(admin, topic_name, _set("max.message.bytes", "2000"))
    err = _produce_error(producer, topic_name, b"x" * 5000)
    assert err is not None and err.name() == "MSG_SIZE_TOO_LARGE"

    _incremental(admin, topic_name, _set("min.insync.replicas", "4"))
    err = _produce_error(producer, topic_name, b"small")
    assert err is not None and err.name() == "NOT_ENOUGH_REPLICAS"
    _incremental(admin, topic_name, _set("min.insync.replicas", "2"))
    assert _produce_error(producer, topic_name, b"small") is None

    # segment.bytes: the next appends roll; retention.ms: the next pass deletes them
    _incremental(admin, topic_name, _set("segment.bytes", "1024"))
    for _ in range(5):
        assert _produce_error(producer, topic_name, b"y" * 600) is None
    leader = msk_cluster.partition(topic_name, 0).leader
    directory = os.path.join(msk_cluster.data_dir, f"broker-{leader}", f"{topic_name}-0")
    segments = len(glob.glob(os.path.join(directory, "*.log")))
    assert segments >= 4
    _incremental(admin, topic_name, _set("retention.ms", "0"))
    assert msk_cluster.enforce_retention() > 0
    assert len(glob.glob(os.path.join(directory, "*.log"))) < segments


def test_unclean_election_turned_on_elects_a_leaderless_partition(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(
        topic_name, replication_factor=2, configs={"unclean.leader.election.enable": "false"}
    )
    p = msk_cluster.partition(topic_name, 0)
    leader, follower = p.replicas
    # The follower stops first and leaves the ISR, then the leader: when the follower comes
    # back, no clean candidate is left.
    msk_cluster.stop_broker(follower)
    msk_cluster.stop_broker(leader)
    msk_cluster.start_broker(follower)
    assert msk_cluster.partition(topic_name, 0).leader == -1
    _incremental(_admin(msk_cluster), topic_name, _set("unclean.leader.election.enable", "true"))
    assert msk_cluster.partition(topic_name, 0).leader == follower


def test_changes_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    cluster = Cluster(brokers=3, data_dir=data).start()
    try:
        cluster.create_topic("kept")
        admin = _admin(cluster)
        _incremental(admin, "kept", _set("retention.ms", "7200000"), _set("segment.ms", "60000"))
    finally:
        cluster.stop()
    cluster = Cluster(brokers=3, data_dir=data).start()
    try:
        configs = _describe(_admin(cluster), "kept")
        assert configs["retention.ms"].value == "7200000"
        assert configs["segment.ms"].value == "60000"
        assert _source(configs["segment.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        assert cluster._controller().topics["kept"].config.segment_ms == 60000
    finally:
        cluster.stop()


def test_kafka_python_incremental_and_legacy(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    admin = KafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        res = KpConfigResource(
            KpResourceType.TOPIC,
            topic_name,
            configs={
                "retention.ms": (AlterConfigOp.SET, "5000000"),
                "cleanup.policy": (AlterConfigOp.APPEND, "compact"),
            },
        )
        out = admin.alter_configs([res], incremental=True)
        assert out == {"topic": {topic_name: "OK"}}
        configs = admin.describe_configs([KpConfigResource(KpResourceType.TOPIC, topic_name)])
        got = configs["topic"][topic_name]
        assert got["retention.ms"]["value"] == "5000000"
        assert got["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert got["cleanup.policy"]["value"] == "delete,compact"

        legacy = KpConfigResource(
            KpResourceType.TOPIC, topic_name, configs={"segment.bytes": "2000000"}
        )
        out = admin.alter_configs([legacy], incremental=False)
        assert out == {"topic": {topic_name: "OK"}}
        assert msk_cluster._controller().topics[topic_name].config.segment_bytes == 2_000_000
    finally:
        admin.close()


async def test_aiokafka_alter_configs(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    admin = AIOKafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    await admin.start()
    try:
        res = AioConfigResource(
            AioResourceType.TOPIC, topic_name, configs={"retention.bytes": "1048576"}
        )
        [resp] = await admin.alter_configs([res])
        assert [r["error_code"] for r in resp.to_object()["resources"]] == [0]
        [described] = await admin.describe_configs(
            [AioConfigResource(AioResourceType.TOPIC, topic_name)]
        )
        entries = {
            c["config_names"]: c["config_value"]
            for c in described.to_object()["resources"][0]["config_entries"]
        }
        assert entries["retention.bytes"] == "1048576"

        bad = AioConfigResource(AioResourceType.TOPIC, topic_name, configs={"retention.bytes": "x"})
        [resp] = await admin.alter_configs([bad])
        [result] = resp.to_object()["resources"]
        assert result["error_code"] == 40  # INVALID_CONFIG
    finally:
        await admin.close()


RawResource = tuple[int, str, list[tuple[str, int, str | None]]]


def _raw_incremental(
    cluster: Cluster, resources: list[RawResource]
) -> list[tuple[int, str | None]]:
    req_cls = IncrementalAlterConfigsRequest
    res_cls = req_cls.AlterConfigsResource
    req = req_cls(
        version=1,
        resources=[
            res_cls(
                resource_type=rtype,
                resource_name=name,
                configs=[
                    res_cls.AlterableConfig(name=n, config_operation=op, value=v)
                    for n, op, v in configs
                ],
            )
            for rtype, name, configs in resources
        ],
        validate_only=False,
    )
    with RawClient(cluster.bootstrap_servers) as c:
        resp = c.request(req, 1)
    return [(r.error_code, r.error_message) for r in resp.responses]


def test_raw_request_errors(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    dup: RawResource = (2, topic_name, [("retention.ms", 0, "1000")])
    assert (
        _raw_incremental(msk_cluster, [dup, dup])
        == [(42, "Each resource must appear at most once.")] * 2
    )
    keys: RawResource = (2, topic_name, [("retention.ms", 0, "1"), ("retention.ms", 0, "2")])
    assert _raw_incremental(msk_cluster, [keys]) == [(42, "Error due to duplicate config keys")]
    nulls: RawResource = (2, topic_name, [("retention.ms", 0, None), ("segment.ms", 1, None)])
    assert _raw_incremental(msk_cluster, [nulls]) == [
        (42, "Null value not supported for : retention.ms")
    ]
    assert _raw_incremental(msk_cluster, [(2, "", [("retention.ms", 0, "1")])]) == [
        (42, "Default topic resources are not allowed.")
    ]
    assert _raw_incremental(msk_cluster, [(2, "bad/name", [("retention.ms", 0, "1")])])[0][0] == 17
    assert _raw_incremental(msk_cluster, [(99, "x", [])]) == [(42, "Unknown resource type 99")]
    # the legacy API refuses null values too
    req = AlterConfigsRequest(
        version=0,
        resources=[
            AlterConfigsRequest.AlterConfigsResource(
                resource_type=2,
                resource_name=topic_name,
                configs=[
                    AlterConfigsRequest.AlterConfigsResource.AlterableConfig(
                        name="retention.ms", value=None
                    )
                ],
            )
        ],
        validate_only=False,
    )
    with RawClient(msk_cluster.bootstrap_servers) as c:
        [r] = c.request(req, 0).responses
    assert (r.error_code, r.error_message) == (42, "Null value not supported for : retention.ms")
