"""GROUP config resources (KIP-848, resource type 32) through confluent-kafka's admin API:
IncrementalAlterConfigs sets and deletes a group's session timeout and heartbeat interval,
checked as Kafka's GroupConfig checks them; DescribeConfigs reports them; they survive a
restart; a release before 3.9 has no such resource; the coordinator answers with the group's
heartbeat interval."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from msklite import Cluster

SESSION, HEARTBEAT = "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"


def _alter(admin: AdminClient, group: str, *entries: tuple[str, str | None]) -> None:
    ops = [
        ConfigEntry(
            name,
            value,
            incremental_operation=AlterConfigOpType.SET
            if value is not None
            else AlterConfigOpType.DELETE,
        )
        for name, value in entries
    ]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=ops)
    admin.incremental_alter_configs([resource])[resource].result(10)


def _describe(admin: AdminClient, group: str) -> dict[str, tuple[str | None, ConfigSource]]:
    resource = ConfigResource(ResourceType.GROUP, group)
    entries = admin.describe_configs([resource])[resource].result(10)
    return {name: (e.value, ConfigSource(e.source)) for name, e in entries.items()}


@pytest.mark.msk(kafka_version="4.1.x")
def test_group_configs_set_describe_delete(msk_cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    assert _describe(admin, "g") == {
        SESSION: ("45000", ConfigSource.DEFAULT_CONFIG),
        HEARTBEAT: ("5000", ConfigSource.DEFAULT_CONFIG),
    }
    _alter(admin, "g", (SESSION, "50000"), (HEARTBEAT, "6000"))
    assert _describe(admin, "g") == {
        SESSION: ("50000", ConfigSource.GROUP_CONFIG),
        HEARTBEAT: ("6000", ConfigSource.GROUP_CONFIG),
    }
    assert _describe(admin, "other")[SESSION] == ("45000", ConfigSource.DEFAULT_CONFIG)
    _alter(admin, "g", (HEARTBEAT, None))
    assert _describe(admin, "g")[HEARTBEAT] == ("5000", ConfigSource.DEFAULT_CONFIG)


@pytest.mark.msk(kafka_version="4.1.x")
@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("consumer.unknown", "1")], "Unknown group config name: consumer.unknown"),
        ([(SESSION, "soon")], "Not a number of type INT"),
        ([(SESSION, "1000")], f"{SESSION} must be greater than or equal to"),
        ([(HEARTBEAT, "100000")], f"{HEARTBEAT} must be less than or equal to"),
    ],
)
def test_bad_group_configs_are_refused(
    msk_cluster: Cluster, entries: list[tuple[str, str]], message: str
) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    with pytest.raises(KafkaException) as e:
        _alter(admin, "g", *entries)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert message in e.value.args[0].str()
    assert _describe(admin, "g")[SESSION] == ("45000", ConfigSource.DEFAULT_CONFIG)


def test_group_configs_survive_a_restart(tmp_path: Path) -> None:
    with Cluster(brokers=1, data_dir=str(tmp_path), kafka_version="4.1.x") as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        _alter(admin, "g", (SESSION, "55000"))
    with Cluster(brokers=1, data_dir=str(tmp_path), kafka_version="4.1.x") as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        assert _describe(admin, "g")[SESSION] == ("55000", ConfigSource.GROUP_CONFIG)


@pytest.mark.msk(kafka_version="3.8.x")
def test_no_group_resources_before_3_9(msk_cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    resource = ConfigResource(ResourceType.GROUP, "g")
    with pytest.raises(KafkaException) as e:
        admin.describe_configs([resource])[resource].result(10)
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST
