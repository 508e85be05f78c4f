"""TopicConfig: one typed config per topic, built by the controller and pushed, in one call,
to the topic's open logs and replicas (the produce path reads it from the replica)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from msklite.clock import ManualClock
from msklite.config import TOPIC_CONFIGS, BrokerConfigs, TopicConfig
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode, KafkaError
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol.records import encode_batch, validate_produced_batch
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition
from tests.fakes import NoFetchers


def test_one_typed_field_per_topic_config_with_kafkas_default() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(TopicConfig) if f.init}
    assert set(fields) == {name.replace(".", "_") for name in TOPIC_CONFIGS}
    # The field defaults are Kafka's: building with no broker overrides changes nothing.
    assert TopicConfig.build(BrokerConfigs({}), {}) == TopicConfig()


def test_build_types_values_and_layers_topic_over_broker() -> None:
    broker = BrokerConfigs({"min.insync.replicas": "2", "log.retention.ms": "1000"})
    config = TopicConfig.build(
        broker,
        {
            "retention.ms": "5000",
            "cleanup.policy": "compact, delete",
            "preallocate": "TRUE",
            "min.cleanable.dirty.ratio": "0.25",
        },
    )
    assert config.retention_ms == 5000  # the topic's own value wins
    assert config.min_insync_replicas == 2  # the broker's synonym, over Kafka's default
    assert config.cleanup_policy == ("compact", "delete")
    assert config.preallocate is True
    assert config.min_cleanable_dirty_ratio == 0.25
    assert config.max_message_bytes == 1_048_588


def test_derived_produce_flags() -> None:
    assert not TopicConfig().checks_timestamps and not TopicConfig().log_append_time
    assert TopicConfig(message_timestamp_after_max_ms=10).checks_timestamps
    append_time = TopicConfig(
        message_timestamp_type="LogAppendTime", message_timestamp_after_max_ms=10
    )
    assert append_time.log_append_time and not append_time.checks_timestamps
    with pytest.raises(dataclasses.FrozenInstanceError):
        TopicConfig().retention_ms = 1  # type: ignore[misc]


def _rig(tmp_path: Path) -> tuple[Controller, ReplicaManager]:
    clock = ManualClock()
    controller = Controller(
        [BrokerInfo(1, "az1")],
        BrokerConfigs(dict(MSK_BROKER_DEFAULTS)),
        str(tmp_path / "meta.json"),
    )
    logs = LogManager(str(tmp_path / "b1"), 1, "c", clock)
    rm = ReplicaManager(1, controller, logs, clock, NoFetchers())
    controller.on_change(rm.sync_topic)
    return controller, rm


def test_alter_topic_configs_pushes_one_new_config_to_logs_and_replicas(tmp_path: Path) -> None:
    controller, rm = _rig(tmp_path)
    topic = controller.create_topic("t", 2, 1)
    parts = [rm.partitions[TopicPartition("t", p)] for p in (0, 1)]
    assert all(p.config is topic.config and p.log.config is topic.config for p in parts)

    controller.alter_topic_configs("t", {"segment.bytes": "2000", "min.insync.replicas": "2"})
    new = controller.topics["t"].config
    assert new.segment_bytes == 2000 and new.min_insync_replicas == 2
    assert all(p.config is new and p.log.config is new for p in parts)
    batch = memoryview(encode_batch([(None, b"v")]))
    with pytest.raises(KafkaError) as e:  # the append path sees the new min.insync.replicas
        rm.append(parts[0], batch, validate_produced_batch(batch, new.max_message_bytes), -1)
    assert e.value.code == ErrorCode.NOT_ENOUGH_REPLICAS

    # A config left out returns to its default; the change survives a controller restart.
    controller.alter_topic_configs("t", {"segment.bytes": "2000"})
    assert parts[0].config.min_insync_replicas == 1
    again = Controller([BrokerInfo(1, "az1")], controller.configs, str(tmp_path / "meta.json"))
    assert again.topics["t"].configs == {"segment.bytes": "2000"}
    assert again.topics["t"].config == parts[0].config


def test_alter_topic_configs_refuses_bad_input_and_changes_nothing(tmp_path: Path) -> None:
    controller, rm = _rig(tmp_path)
    before = controller.create_topic("t", 1, 1).config
    cases: list[tuple[str, dict[str, str | None], ErrorCode]] = [
        ("nope", {}, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", {"no.such.config": "1"}, ErrorCode.INVALID_CONFIG),
        ("t", {"retention.ms": "soon"}, ErrorCode.INVALID_CONFIG),
        ("t", {"retention.ms": None}, ErrorCode.INVALID_CONFIG),
    ]
    for name, configs, code in cases:
        with pytest.raises(KafkaError) as e:
            controller.alter_topic_configs(name, configs)
        assert e.value.code == code
    controller.alter_topic_configs("t", {"retention.ms": "1"}, validate_only=True)
    assert controller.topics["t"].config is before and controller.topics["t"].configs == {}
    assert rm.partitions[TopicPartition("t", 0)].config is before
