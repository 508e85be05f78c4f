"""The config registry: every config Kafka 3.9 documents, Kafka's validation, unit families
resolved as Kafka resolves them, and synonym chains in Kafka's order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from msklite.config import (
    BROKER_CONFIGS,
    TOPIC_CONFIGS,
    BrokerConfigs,
    ConfigSource,
    ConfigType,
    TopicConfig,
    apply_ops,
)

S = ConfigSource


def test_every_documented_config_is_known_with_its_type_default_and_mode() -> None:
    assert len(BROKER_CONFIGS) >= 300 and len(TOPIC_CONFIGS) == 36
    d = BROKER_CONFIGS["transaction.max.timeout.ms"]
    assert (d.type, d.default, d.mode, d.applied) == (ConfigType.INT, "900000", "read-only", True)
    d = BROKER_CONFIGS["transaction.state.log.load.buffer.size"]
    assert (d.type, d.default, d.mode, d.applied) == (ConfigType.INT, "5242880", "read-only", False)
    assert BROKER_CONFIGS["log.retention.ms"].mode == "cluster-wide"
    assert BROKER_CONFIGS["listeners"].mode == "per-broker"
    assert BROKER_CONFIGS["ssl.keystore.password"].sensitive
    assert TOPIC_CONFIGS["retention.ms"].applied
    assert TOPIC_CONFIGS["min.cleanable.dirty.ratio"].applied
    assert not TOPIC_CONFIGS["segment.jitter.ms"].applied
    for name in ("group.max.size", "connections.max.idle.ms", "log.cleaner.enable"):
        assert name in BROKER_CONFIGS


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("min.cleanable.dirty.ratio", "1.5", "Value must be no more than 1"),
        ("segment.bytes", "13", "Value must be at least 14"),
        ("compression.type", "brotli", "String must be one of: uncompressed, zstd, lz4"),
        ("compression.gzip.level", "10", "Value must be between 1 and 9"),
        ("retention.ms", "x", "Not a number of type LONG"),
        ("preallocate", "yes", "Expected value to be either true or false"),
        ("cleanup.policy", "compact,erase", "String must be one of: compact, delete"),
    ],
)
def test_values_are_checked_as_kafka_checks_them(name: str, value: str, error: str) -> None:
    why = TOPIC_CONFIGS[name].validate(value)
    assert why is not None and why.startswith(f"Invalid value {value} for configuration {name}: ")
    assert error in why
    assert TOPIC_CONFIGS["compression.gzip.level"].validate("-1") is None


def test_unknown_keys_are_refused_with_the_closest_valid_key() -> None:
    with pytest.raises(
        ValueError, match=r"log\.retention\.minute \(did you mean log\.retention\.minutes\?\)"
    ):
        BrokerConfigs({"log.retention.minute": "5"})
    with pytest.raises(ValueError, match="Not a number of type INT"):
        BrokerConfigs({"log.retention.hours": "a week"})


@pytest.mark.parametrize(
    ("static", "retention_ms"),
    [
        ({}, 604_800_000),
        ({"log.retention.hours": "24"}, 86_400_000),
        ({"log.retention.hours": "24", "log.retention.minutes": "5"}, 300_000),
        ({"log.retention.minutes": "5", "log.retention.ms": "1234"}, 1234),
    ],
)
def test_unit_families_resolve_as_kafka_resolves_them(
    static: dict[str, str], retention_ms: int
) -> None:
    broker = BrokerConfigs(static)
    assert broker.get("log.retention.ms") == str(retention_ms)
    assert TopicConfig.build(broker, {}).retention_ms == retention_ms


def test_a_dynamic_layer_overrides_the_family_everywhere_below() -> None:
    broker = BrokerConfigs({"log.retention.ms": "1000", "log.roll.hours": "2"})
    broker.dynamic_default = {"log.retention.minutes": "3"}
    # log.retention.ms is set statically, and .ms wins over .minutes whatever the layer
    assert broker.get("log.retention.ms") == "1000"
    assert broker.get("log.roll.ms") == "7200000"
    broker.dynamic[1] = {"log.roll.ms": "5"}
    assert broker.get("log.roll.ms", 1) == "5"
    assert broker.get("log.roll.ms") == "7200000"


def test_synonyms_in_kafkas_order() -> None:
    broker = BrokerConfigs({"log.retention.hours": "24", "log.retention.ms": "1000"})
    broker.dynamic_default = {"log.retention.minutes": "3"}
    broker.dynamic[1] = {"log.retention.ms": "7"}
    # per source (dynamic broker, dynamic default, static, default), the family in order
    assert broker.synonyms("log.retention.ms", 1) == [
        ("log.retention.ms", "7", S.DYNAMIC_BROKER_CONFIG),
        ("log.retention.minutes", "3", S.DYNAMIC_DEFAULT_BROKER_CONFIG),
        ("log.retention.ms", "1000", S.STATIC_BROKER_CONFIG),
        ("log.retention.hours", "24", S.STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", S.DEFAULT_CONFIG),
    ]
    # entries before the first of the name asked for are dropped (ConfigHelper's dropWhile)
    assert broker.synonyms("log.retention.hours", 2) == [
        ("log.retention.hours", "24", S.STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", S.DEFAULT_CONFIG),
    ]
    assert broker.topic_synonyms("retention.ms", 2)[0] == (
        "log.retention.ms",
        "1000",
        S.STATIC_BROKER_CONFIG,
    )
    assert broker.synonyms("ssl.key.password", 1) == []


def test_incremental_ops() -> None:
    defs = TOPIC_CONFIGS
    assert apply_ops({}, [("cleanup.policy", 2, "compact")], defs) == {
        "cleanup.policy": "delete,compact"
    }
    assert apply_ops(
        {"cleanup.policy": "delete,compact"}, [("cleanup.policy", 3, "delete")], defs
    ) == {"cleanup.policy": "compact"}
    assert apply_ops({"retention.ms": "1"}, [("retention.ms", 1, None)], defs) == {}
    with pytest.raises(
        ValueError, match=r"Can't SUBTRACT to key retention\.ms because its type is not LIST\."
    ):
        apply_ops({}, [("retention.ms", 3, "1")], defs)


def test_deviations_lists_exactly_the_configs_msklite_does_not_apply() -> None:
    text = (Path(__file__).parents[2] / "DEVIATIONS.md").read_text()
    section = text.split("## Configs accepted, stored and reported, not applied", 1)[1]
    listed = set(re.findall(r"`([A-Za-z0-9.]+)`", section.split("\n## ", 1)[0]))
    stored_only = {n for n, d in {**BROKER_CONFIGS, **TOPIC_CONFIGS}.items() if not d.applied}
    assert listed - {"APPLIED_TOPIC_CONFIGS", "APPLIED_BROKER_CONFIGS"} == stored_only
