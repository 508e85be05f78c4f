"""Which Kafka release the cluster emulates (`--kafka-version`, `Cluster(kafka_version=...)`):
MSK's version names, their ApiVersions answers (msklite.kafka_releases) and the default.

The default is 3.9.x: msklite's configs and their defaults are Kafka 3.9's (msklite.config),
and every API version msklite serves up to 3.9's maximum behaves as 3.9 answers it. 4.0,
4.1 and 4.2 are emulated on request only because part of what makes them 4.x is not served:
transactions v2 (EndTxn/TxnOffsetCommit v5), DescribeTopicPartitions, KIP-848's online group
conversion; and 4.0 changed config defaults msklite keeps at 3.9's (KIP-1030). KIP-848
consumer groups are served, on by default from 4.0 as in Kafka; share groups (KIP-932) where
the release had them enabled: 4.2 (GA)."""

from __future__ import annotations

from collections.abc import Mapping

from msklite.kafka_releases import RELEASES

DEFAULT_KAFKA_VERSION = "3.9.x"
# MSK names KRaft-mode releases `3.7.x.kraft` …; for the versions a client sees they are the
# same release.
_KRAFT_SUFFIX = ".kraft"


def kafka_version(name: str) -> str:
    """MSK's name of the release `name` means ('3.7.1', '3.7' or '3.7.x.kraft' -> '3.7.x');
    a ValueError naming the allowed versions if there is none."""
    if not isinstance(name, str):
        raise ValueError(f"kafka_version must be a string such as '3.9.x', got {name!r}")
    plain = name.strip().lower().removesuffix(_KRAFT_SUFFIX)
    if plain in RELEASES:
        return plain
    parts = plain.split(".")
    if len(parts) == 3 and parts[2].isdigit() and f"{parts[0]}.{parts[1]}.x" in RELEASES:
        return f"{parts[0]}.{parts[1]}.x"
    if len(parts) == 2:  # a release line: '3.6' -> '3.6.0', '3.9' -> '3.9.x'
        line = [r for r in RELEASES if r.split(".")[:2] == parts]
        if line:
            return line[0]
    raise ValueError(
        f"unknown Kafka version {name!r}: msklite emulates the versions MSK offers, "
        f"{', '.join(RELEASES)} (default {DEFAULT_KAFKA_VERSION})"
    )


def release_versions(name: str) -> Mapping[int, tuple[int, int]]:
    """api key -> (min, max) the release advertises."""
    return RELEASES[kafka_version(name)]


# The configs msklite applies whose presence or default differs between the releases above
# (Kafka's upgrade notes): KIP-937 (3.6) replaced the timestamp difference bound by a
# before/after pair and 4.0 removed the old one; KIP-1030 (4.0) bounds future timestamps to an
# hour by default. Configs msklite only stores (DEVIATIONS.md) are left as Kafka 3.9 has them.
_ADDED_IN_3_6 = (
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
)
_REMOVED_IN_4_0 = (
    "log.message.timestamp.difference.max.ms",
    "message.timestamp.difference.max.ms",
)
_DEFAULTS_FROM_4_0 = {
    "log.message.timestamp.after.max.ms": "3600000",
    # KIP-848 is generally available from 4.0: the consumer protocol is on by default, and a
    # group may move between the protocols (both only on request in 3.7-3.9)
    "group.coordinator.rebalance.protocols": "classic,consumer",
    "group.consumer.migration.policy": "bidirectional",
}


def _line(name: str) -> tuple[int, int]:
    major, minor = name.split(".")[:2]
    return int(major), int(minor)


def absent_configs(name: str) -> dict[str, str]:
    """Config name -> why the release does not have it (its configs that Kafka 3.9 has)."""
    line = _line(kafka_version(name))
    if line < (3, 6):
        return {n: "added in Kafka 3.6 (KIP-937)" for n in _ADDED_IN_3_6}
    if line >= (4, 0):
        return {n: "removed in Kafka 4.0 (KIP-937)" for n in _REMOVED_IN_4_0}
    return {}


def share_groups_enabled(name: str) -> bool:
    """Whether the release serves share groups (KIP-932) as installed: Kafka 4.2 made them
    generally available (its `share.version` feature finalized at 1 by default); 4.1 advertised
    the APIs as a preview with `share.version` at 0, so that share requests fail until an
    operator raises the feature (which msklite's emulation of 4.1 offers no way to do)."""
    return _line(kafka_version(name)) >= (4, 2)


def has_group_configs(name: str) -> bool:
    """Whether the release describes and alters GROUP config resources (Kafka 3.9+)."""
    return _line(kafka_version(name)) >= (3, 9)


def release_defaults(name: str) -> dict[str, str]:
    """Broker config defaults of the release that differ from Kafka 3.9's."""
    return dict(_DEFAULTS_FROM_4_0) if _line(kafka_version(name)) >= (4, 0) else {}
