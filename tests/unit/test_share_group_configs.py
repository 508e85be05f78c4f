"""Share groups' GROUP configs (KIP-932): which releases have them and how they are checked."""

from __future__ import annotations

import pytest

from msklite.config import BrokerConfigs, reset_duration_ms, validate_group_configs


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("by_duration:PT1H", 3_600_000),
        ("by_duration:P1DT2H3M4.5S", 93_784_500),
        ("by_duration:P2D", 172_800_000),
        ("by_duration:pt0.001s", 1),
        ("by_duration:P", None),
        ("by_duration:PT", None),
        ("by_duration:-PT1H", None),
        ("by_duration:1H", None),
        ("latest", None),
    ],
)
def test_by_duration_reads_java_durations(value: str, ms: int | None) -> None:
    assert reset_duration_ms(value) == ms


def test_share_configs_exist_where_share_groups_are_served() -> None:
    assert (
        validate_group_configs({"share.auto.offset.reset": "earliest"}, BrokerConfigs({}, "4.2.x"))
        is None
    )
    refused = validate_group_configs(
        {"share.auto.offset.reset": "earliest"}, BrokerConfigs({}, "4.1.x")
    )
    assert refused == "Unknown group config name: share.auto.offset.reset"


def test_share_configs_are_bounded_by_the_brokers() -> None:
    broker = BrokerConfigs({"group.share.min.record.lock.duration.ms": 1000}, "4.2.x")
    assert validate_group_configs({"share.record.lock.duration.ms": "1000"}, broker) is None
    assert validate_group_configs({"share.record.lock.duration.ms": "999"}, broker) == (
        "share.record.lock.duration.ms must be greater than or equal to "
        "group.share.min.record.lock.duration.ms"
    )
    assert (
        validate_group_configs(
            {"share.session.timeout.ms": "45000", "share.heartbeat.interval.ms": "45000"},
            BrokerConfigs({"group.share.max.heartbeat.interval.ms": 60000}, "4.2.x"),
        )
        == "share.session.timeout.ms must be greater than share.heartbeat.interval.ms"
    )


def test_share_isolation_level_is_a_group_config_of_two_values() -> None:
    broker = BrokerConfigs({}, "4.2.x")
    assert validate_group_configs({"share.isolation.level": "read_committed"}, broker) is None
    assert validate_group_configs({"share.isolation.level": "committed"}, broker) == (
        "Invalid value committed for configuration share.isolation.level: String must be one "
        "of: read_committed, read_uncommitted"
    )
