"""Configuration: the registry of every broker and topic config Kafka 3.9 documents (type,
Kafka default, validation, update mode, whether msklite applies it) and the brokers' layered
configuration (static, dynamic cluster default, dynamic per broker).

One registry serves validation (CreateTopics, AlterConfigs, `--config`), effective values
(the log, the handlers) and DescribeConfigs (values, sources, synonyms in Kafka's order). The
table itself is data (`msklite.config_table`). MSK's overrides of Kafka's defaults live in
`msklite.msk`; they count as the brokers' static configuration (MSK writes them to
server.properties), so DescribeConfigs reports them as STATIC_BROKER_CONFIG.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from msklite import config_table
from msklite.kafka_version import (
    DEFAULT_KAFKA_VERSION,
    absent_configs,
    has_group_configs,
    release_defaults,
    share_groups_enabled,
)

LONG_MAX = "9223372036854775807"


class ConfigType(IntEnum):
    """DescribeConfigs' config_type (v3+)."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(IntEnum):
    UNKNOWN = 0
    TOPIC_CONFIG = 1  # clients call it DYNAMIC_TOPIC_CONFIG
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    GROUP_CONFIG = 8


class AlterOp(IntEnum):
    """IncrementalAlterConfigs' config_operation."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


READ_ONLY, PER_BROKER, CLUSTER_WIDE = "read-only", "per-broker", "cluster-wide"
_INT_RANGE = {
    ConfigType.SHORT: (-(2**15), 2**15 - 1),
    ConfigType.INT: (-(2**31), 2**31 - 1),
    ConfigType.LONG: (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: str | None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[str], str | None] | None = field(default=None, compare=False)
    mode: str | None = None  # a broker config's update mode; None for topic configs
    applied: bool = True  # False: accepted, stored and reported, but nothing acts on it

    @property
    def sensitive(self) -> bool:
        return self.type == ConfigType.PASSWORD

    @property
    def read_only(self) -> bool:
        return self.mode == READ_ONLY

    def validate(self, value: str | None) -> str | None:
        """None if `value` is acceptable, else why not (Kafka's ConfigException text)."""
        if value is None:
            return (
                None
                if self.type in (ConfigType.PASSWORD, ConfigType.STRING, ConfigType.CLASS)
                else (f"Invalid value null for configuration {self.name}")
            )
        bad = f"Invalid value {value} for configuration {self.name}"
        number: float | None = None
        if self.type in _INT_RANGE:
            try:
                number = int(value.strip())
            except ValueError:
                return f"{bad}: Not a number of type {self.type.name}"
            lo, hi = _INT_RANGE[self.type]
            if not lo <= number <= hi:
                return f"{bad}: Not a number of type {self.type.name}"
        elif self.type == ConfigType.DOUBLE:
            try:
                number = float(value.strip())
            except ValueError:
                return f"{bad}: Not a number of type DOUBLE"
        elif self.type == ConfigType.BOOLEAN and value.strip().lower() not in ("true", "false"):
            return f"{bad}: Expected value to be either true or false"
        if number is not None:
            if self.minimum is not None and number < self.minimum:
                return f"{bad}: Value must be at least {_num(self.minimum)}"
            if self.maximum is not None and number > self.maximum:
                return f"{bad}: Value must be no more than {_num(self.maximum)}"
        if self.choices is not None:
            items = (
                [v.strip() for v in value.split(",") if v.strip()]
                if self.type == ConfigType.LIST
                else [value.strip()]
            )
            for item in items:
                if item not in self.choices:
                    return f"{bad}: String must be one of: {', '.join(self.choices)}"
        if self.check is not None:
            why = self.check(value)
            if why is not None:
                return f"{bad}: {why}"
        return None


def _num(n: float) -> str:
    return str(int(n)) if n == int(n) else str(n)


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "String must be non-empty"


def _non_empty_list(value: str) -> str | None:
    return None if [v for v in value.split(",") if v.strip()] else "Empty list"


def _gzip_level(value: str) -> str | None:
    return None if int(value) == -1 or 1 <= int(value) <= 9 else "Value must be between 1 and 9"


_CHECKS: dict[str, Callable[[str], str | None]] = {
    "non-empty string": _non_empty,
    "non-null string": lambda _: None,
    "non-empty list": _non_empty_list,
    "[1,...,9] or -1": _gzip_level,
}
_RANGE = re.compile(r"^\[(-?[\d.]+),\.\.\.(?:,(-?[\d.]+))?\]$")
_TYPES = {t.name.lower(): t for t in ConfigType}


def _from_row(row: config_table.Row, applied: frozenset[str]) -> ConfigDef:
    name, type_name, default, valid, mode = row
    minimum = maximum = None
    choices = None
    check = _CHECKS.get(valid)
    if m := _RANGE.match(valid):
        minimum = float(m.group(1))
        maximum = float(m.group(2)) if m.group(2) is not None else None
    elif valid.startswith("[") and valid.endswith("]") and ":" not in valid:
        choices = tuple(v.strip() for v in valid[1:-1].split(","))
    return ConfigDef(
        name,
        _TYPES[type_name],
        default,
        minimum,
        maximum,
        choices,
        check,
        mode,
        name in applied,
    )


# The configs msklite acts on; every other one is accepted, stored and reported only
# (DEVIATIONS.md).
APPLIED_TOPIC_CONFIGS = frozenset(
    {
        "cleanup.policy",
        "compression.gzip.level",
        "compression.zstd.level",
        "compression.type",
        "min.compaction.lag.ms",
        "min.cleanable.dirty.ratio",
        "max.compaction.lag.ms",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "index.interval.bytes",
        "max.message.bytes",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.difference.max.ms",
        "message.timestamp.type",
        "min.insync.replicas",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.ms",
        "unclean.leader.election.enable",
    }
)

# Topic config -> the broker configs its default comes from, in Kafka's order
# (ServerTopicConfigSynonyms), each with the factor that turns its unit into the topic's.
TOPIC_SYNONYMS: dict[str, tuple[tuple[str, int], ...]] = {
    "segment.bytes": (("log.segment.bytes", 1),),
    "segment.ms": (("log.roll.ms", 1), ("log.roll.hours", 3_600_000)),
    "segment.jitter.ms": (("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", 3_600_000)),
    "segment.index.bytes": (("log.index.size.max.bytes", 1),),
    "flush.messages": (("log.flush.interval.messages", 1),),
    "flush.ms": (("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)),
    "retention.bytes": (("log.retention.bytes", 1),),
    "retention.ms": (
        ("log.retention.ms", 1),
        ("log.retention.minutes", 60_000),
        ("log.retention.hours", 3_600_000),
    ),
    "max.message.bytes": (("message.max.bytes", 1),),
    "index.interval.bytes": (("log.index.interval.bytes", 1),),
    "delete.retention.ms": (("log.cleaner.delete.retention.ms", 1),),
    "min.compaction.lag.ms": (("log.cleaner.min.compaction.lag.ms", 1),),
    "max.compaction.lag.ms": (("log.cleaner.max.compaction.lag.ms", 1),),
    "file.delete.delay.ms": (("log.segment.delete.delay.ms", 1),),
    "min.cleanable.dirty.ratio": (("log.cleaner.min.cleanable.ratio", 1),),
    "cleanup.policy": (("log.cleanup.policy", 1),),
    "unclean.leader.election.enable": (("unclean.leader.election.enable", 1),),
    "min.insync.replicas": (("min.insync.replicas", 1),),
    "compression.type": (("compression.type", 1),),
    "compression.gzip.level": (("compression.gzip.level", 1),),
    "compression.lz4.level": (("compression.lz4.level", 1),),
    "compression.zstd.level": (("compression.zstd.level", 1),),
    "preallocate": (("log.preallocate", 1),),
    "message.format.version": (("log.message.format.version", 1),),
    "message.timestamp.type": (("log.message.timestamp.type", 1),),
    "message.timestamp.difference.max.ms": (("log.message.timestamp.difference.max.ms", 1),),
    "message.timestamp.before.max.ms": (("log.message.timestamp.before.max.ms", 1),),
    "message.timestamp.after.max.ms": (("log.message.timestamp.after.max.ms", 1),),
    "message.downconversion.enable": (("log.message.downconversion.enable", 1),),
    "local.retention.ms": (("log.local.retention.ms", 1),),
    "local.retention.bytes": (("log.local.retention.bytes", 1),),
}

# Broker configs that are one setting in several units (DynamicBrokerConfig's
# brokerConfigSynonyms): the first one set wins, in this order.
_FAMILIES = [
    [name for name, _ in TOPIC_SYNONYMS[t]]
    for t in ("segment.ms", "segment.jitter.ms", "flush.ms", "retention.ms")
]
BROKER_SYNONYMS: dict[str, list[str]] = {name: f for f in _FAMILIES for name in f}
_FACTORS = {name: factor for chain in TOPIC_SYNONYMS.values() for name, factor in chain}

# Broker configs msklite acts on, besides the topic defaults of applied topic configs.
_APPLIED_BROKER = {
    "auto.create.topics.enable",
    "auto.leader.rebalance.enable",
    "broker.id",
    "broker.rack",
    "connection.failed.authentication.delay.ms",
    "connections.max.idle.ms",
    "connections.max.reauth.ms",
    "default.replication.factor",
    "delete.topic.enable",
    "group.consumer.assignors",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.max.size",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.session.timeout.ms",
    "group.coordinator.rebalance.protocols",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.min.session.timeout.ms",
    "group.share.delivery.count.limit",
    "group.share.heartbeat.interval.ms",
    "group.share.max.size",
    "group.share.partition.max.record.locks",
    "group.share.record.lock.duration.ms",
    "group.share.session.timeout.ms",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.enable",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.threads",
    "log.retention.check.interval.ms",
    "num.partitions",
    "offset.metadata.max.bytes",
    "offsets.retention.check.interval.ms",
    "offsets.retention.minutes",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "offsets.topic.segment.bytes",
    "queued.max.request.bytes",
    "quota.window.num",
    "quota.window.size.seconds",
    "replica.fetch.backoff.ms",
    "replica.fetch.max.bytes",
    "replica.lag.time.max.ms",
    "replica.selector.class",
    "socket.request.max.bytes",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.max.timeout.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.segment.bytes",
    "transactional.id.expiration.ms",
    "transaction.partition.verification.enable",
    "producer.id.expiration.ms",
}
APPLIED_BROKER_CONFIGS = frozenset(
    _APPLIED_BROKER | {name for t in APPLIED_TOPIC_CONFIGS for name, _ in TOPIC_SYNONYMS.get(t, ())}
)

TOPIC_CONFIGS: dict[str, ConfigDef] = {
    row[0]: _from_row(row, APPLIED_TOPIC_CONFIGS) for row in config_table.TOPIC
}
BROKER_CONFIGS: dict[str, ConfigDef] = {
    row[0]: _from_row(row, APPLIED_BROKER_CONFIGS) for row in config_table.BROKER
}
# Read by Kafka's authorizer (StandardAuthorizer), so absent from KafkaConfig's table; MSK
# sets and lets you set them.
for _extra in (
    ConfigDef("allow.everyone.if.no.acl.found", ConfigType.BOOLEAN, "false", mode=READ_ONLY),
    ConfigDef("super.users", ConfigType.STRING, None, mode=READ_ONLY),
):
    BROKER_CONFIGS[_extra.name] = _extra
# Kafka's default is -1 (unbounded); msklite bounds it (DEVIATIONS.md).
BROKER_CONFIGS["queued.max.request.bytes"] = ConfigDef(
    "queued.max.request.bytes", ConfigType.LONG, "268435456", mode=READ_ONLY
)
COMPRESSION_TYPES = TOPIC_CONFIGS["compression.type"].choices


def suggest(name: str, known: Iterable[str]) -> str:
    """` (did you mean x?)` for the closest known name, or nothing."""
    import difflib  # only for a name nobody knows: off the start path

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_broker_config(name: str) -> str:
    return f"Unknown broker config name: {name}{suggest(name, BROKER_CONFIGS)}"


def apply_ops(
    current: Mapping[str, str],
    ops: Iterable[tuple[str, int, str | None]],
    defs: Mapping[str, ConfigDef],
) -> dict[str, str]:
    """`current` overrides after IncrementalAlterConfigs' (name, operation, value) `ops`, as
    Kafka's controller applies them: APPEND and SUBTRACT start from the config's default when
    it is not set and only apply to LIST configs. Raises ValueError with Kafka's message."""
    out = dict(current)
    for name, op, value in ops:
        if op == AlterOp.SET:
            assert value is not None  # the handler refuses null values first, as Kafka does
            out[name] = value
        elif op == AlterOp.DELETE:
            out.pop(name, None)
        else:
            d = defs.get(name)
            verb = AlterOp(op).name
            if d is None or d.type != ConfigType.LIST:
                raise ValueError(f"Can't {verb} to key {name} because its type is not LIST.")
            old = out.get(name, d.default) or ""
            parts = [v for v in old.split(",") if v]
            for v in (value or "").split(","):
                if op == AlterOp.APPEND and v not in parts:
                    parts.append(v)
                elif op == AlterOp.SUBTRACT and v in parts:
                    parts.remove(v)
            out[name] = ",".join(parts)
    return out


Synonym = tuple[str, str | None, ConfigSource]

# compression.type -> the codec id of a batch's attributes ("producer": none to impose).
_CODEC_IDS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


# What the Python API takes as a config value (Kafka's configs are text on the wire).
ConfigValue = str | int | float | bool | list[str] | tuple[str, ...]


def config_text(name: str, value: object) -> str:
    """A config value given from Python as Kafka writes it: booleans as true/false, numbers in
    decimal, lists comma-separated; the registry then validates the text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    raise TypeError(
        f"config {name}: {value!r} ({type(value).__name__}) is not a config value; "
        "use a str, int, float, bool or a list of str"
    )


class BrokerConfigs:
    """The brokers' configuration in Kafka's layers: per-broker dynamic configs over the
    dynamic cluster-wide default over the static settings (MSK's defaults plus the user's
    `--config`) over Kafka's defaults. The dynamic layers change through AlterConfigs (the
    controller keeps and saves them)."""

    def __init__(
        self, static: Mapping[str, object], kafka_version: str = DEFAULT_KAFKA_VERSION
    ) -> None:
        self._release(kafka_version)
        texts = {k: config_text(k, v) for k, v in static.items()}
        for name, value in texts.items():
            d = BROKER_CONFIGS.get(name)
            if d is None:
                raise ValueError(unknown_broker_config(name))
            if name in self.absent:
                raise ValueError(
                    f"{name} is not a config of Kafka {kafka_version}: {self.absent[name]}"
                )
            err = d.validate(value)
            if err:
                raise ValueError(err)
        self.static = texts
        self.dynamic_default: dict[str, str] = {}
        self.dynamic: dict[int, dict[str, str]] = {}

    def _release(self, kafka_version: str) -> None:
        self.kafka_version = kafka_version
        # the emulated release's differences from Kafka 3.9 (msklite.kafka_version)
        self.absent = absent_configs(kafka_version)
        self.group_configs = has_group_configs(kafka_version)
        # share groups' group configs, where msklite serves share groups (Kafka has them from
        # 4.0, when share groups came as early access)
        self.share_group_configs = share_groups_enabled(kafka_version)
        self._defaults = {n: d.default for n, d in BROKER_CONFIGS.items()}
        self._defaults.update(release_defaults(kafka_version))

    def upgrade_check(self, kafka_version: str) -> None:
        """A ValueError if a static setting is not a config of the release `kafka_version`
        (an upgrade to it would not start)."""
        gone = absent_configs(kafka_version)
        for name in self.static:
            if name in gone:
                raise ValueError(f"{name} is not a config of Kafka {kafka_version}: {gone[name]}")

    def set_kafka_version(self, kafka_version: str) -> None:
        """Switch to the release `kafka_version` (the end of a rolling upgrade): its configs
        and defaults from now on."""
        self.upgrade_check(kafka_version)
        self._release(kafka_version)

    def _layers(self, node_id: int | None) -> list[tuple[Mapping[str, str], ConfigSource]]:
        layers: list[tuple[Mapping[str, str], ConfigSource]] = []
        if node_id is not None:
            layers.append((self.dynamic.get(node_id, {}), ConfigSource.DYNAMIC_BROKER_CONFIG))
        layers.append((self.dynamic_default, ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
        layers.append((self.static, ConfigSource.STATIC_BROKER_CONFIG))
        return layers

    def topic_default_nodes(self) -> list[int]:
        """The brokers with a dynamic value of their own for a config that backs a topic
        default: their logs take that value (Kafka applies it to their LogManager)."""
        return [n for n, own in self.dynamic.items() if any(k in _FACTORS for k in own)]

    def value(self, name: str, node_id: int | None) -> str | None:
        """The value as set in the layers (no unit family resolved), as Kafka describes it."""
        for layer, _ in self._layers(node_id):
            if name in layer:
                return layer[name]
        return self._defaults[name]

    def get(self, name: str, node_id: int | None = None) -> str | None:
        """The effective value (on broker `node_id`, or cluster-wide), with the unit
        families resolved as Kafka resolves them: `log.retention.ms` comes from the first of
        `.ms`, `.minutes`, `.hours` that is set anywhere, else from the first with a
        default."""
        family = BROKER_SYNONYMS.get(name)
        if family is None or family[0] != name:
            return self.value(name, node_id)
        for source in (True, False):
            for member in family:
                value = (
                    next((lay[member] for lay, _ in self._layers(node_id) if member in lay), None)
                    if source
                    else self._defaults[member]
                )
                if value is not None:
                    return str(int(value.strip()) * _FACTORS[member])
        return None

    def get_int(self, name: str) -> int:
        return int(self.get(name) or 0)

    def get_bool(self, name: str) -> bool:
        return (self.get(name) or "").lower() == "true"

    def synonyms(self, name: str, node_id: int | None) -> list[Synonym]:
        """Kafka's synonym chain of broker config `name` (ConfigHelper.configSynonyms): per
        source in precedence order, each of its unit family that the source sets, then
        Kafka's defaults; entries before the first of `name` itself are dropped."""
        family = BROKER_SYNONYMS.get(name, [name])
        chain: list[Synonym] = []
        for layer, source in self._layers(node_id):
            chain += [(n, layer[n], source) for n in family if n in layer]
        chain += [
            (n, self._defaults[n], ConfigSource.DEFAULT_CONFIG)
            for n in family
            if self._defaults[n] is not None
        ]
        while chain and chain[0][0] != name:
            chain.pop(0)
        if BROKER_CONFIGS[name].sensitive:
            chain = [(n, None, s) for n, _, s in chain]
        return chain

    def topic_synonyms(self, name: str, node_id: int | None = None) -> list[Synonym]:
        """The broker side of topic config `name`'s chain (empty when no broker config
        backs it)."""
        chain = TOPIC_SYNONYMS.get(name)
        return self.synonyms(chain[0][0], node_id) if chain else []

    def topic_default(
        self, name: str, node_id: int | None = None
    ) -> tuple[str | None, ConfigSource, str | None]:
        """(value, source, broker synonym) of topic config `name` when the topic sets none, on
        broker `node_id` (its own dynamic value first) or cluster-wide."""
        chain = TOPIC_SYNONYMS.get(name)
        if chain is None:
            return TOPIC_CONFIGS[name].default, ConfigSource.DEFAULT_CONFIG, None
        head = chain[0][0]
        synonyms = self.synonyms(head, node_id)
        source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
        value = self.get(head, node_id)
        return (value if value is not None else TOPIC_CONFIGS[name].default), source, head


def _typed(d: ConfigDef, value: str) -> Any:  # the type of TopicConfig's field
    if d.type in (ConfigType.INT, ConfigType.LONG, ConfigType.SHORT):
        return int(value.strip())
    if d.type == ConfigType.DOUBLE:
        return float(value)
    if d.type == ConfigType.BOOLEAN:
        return value.strip().lower() == "true"
    if d.type == ConfigType.LIST:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The effective configuration of one topic, typed: one field per topic config (its name
    with `_` for `.`), Kafka's defaults as field defaults.

    Built once per topic change (`build`) by the controller and pushed to the topic's open
    logs and replicas, so that the produce and append paths read attributes, never strings.
    Frozen: a config change builds a new one."""

    cleanup_policy: tuple[str, ...] = ("delete",)
    compression_gzip_level: int = -1
    compression_lz4_level: int = 9
    compression_type: str = "producer"
    compression_zstd_level: int = 3
    delete_retention_ms: int = 86_400_000
    file_delete_delay_ms: int = 60_000
    flush_messages: int = 2**63 - 1
    flush_ms: int = 2**63 - 1
    follower_replication_throttled_replicas: tuple[str, ...] = ()
    index_interval_bytes: int = 4096
    leader_replication_throttled_replicas: tuple[str, ...] = ()
    local_retention_bytes: int = -2
    local_retention_ms: int = -2
    max_compaction_lag_ms: int = 2**63 - 1
    max_message_bytes: int = 1_048_588
    message_downconversion_enable: bool = True
    message_format_version: str = "3.0-IV1"
    message_timestamp_after_max_ms: int = 2**63 - 1
    message_timestamp_before_max_ms: int = 2**63 - 1
    message_timestamp_difference_max_ms: int = 2**63 - 1
    message_timestamp_type: str = "CreateTime"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
    remote_log_copy_disable: bool = False
    remote_log_delete_on_disable: bool = False
    remote_storage_enable: bool = False
    retention_bytes: int = -1
    retention_ms: int = 604_800_000
    segment_bytes: int = 1_073_741_824
    segment_index_bytes: int = 10_485_760
    segment_jitter_ms: int = 0
    segment_ms: int = 604_800_000
    unclean_leader_election_enable: bool = False
    # Derived once, for the append and produce paths.
    log_append_time: bool = field(init=False, repr=False, compare=False)
    # The codec batches are stored with (a wire id; None: as the producer sent them), and the
    # level to compress with (None: the codec's default).
    target_codec: int | None = field(init=False, repr=False, compare=False)
    target_level: int | None = field(init=False, repr=False, compare=False)
    checks_timestamps: bool = field(init=False, repr=False, compare=False)
    # How far before and after the broker's clock a CreateTime record may be: the
    # .before/.after.max.ms configs, else the deprecated .difference.max.ms (Kafka's LogConfig).
    timestamp_before_ms: int = field(init=False, repr=False, compare=False)
    timestamp_after_ms: int = field(init=False, repr=False, compare=False)
    # How old the active segment may grow before it rolls: segment.ms, or on a compacted
    # topic max.compaction.lag.ms if smaller (Kafka's LogConfig.maxSegmentMs), so that the
    # cleaner can reach its records in time.
    roll_ms: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        log_append_time = self.message_timestamp_type == "LogAppendTime"
        object.__setattr__(self, "log_append_time", log_append_time)
        codec = _CODEC_IDS.get(self.compression_type)
        object.__setattr__(self, "target_codec", codec)
        levels = {1: self.compression_gzip_level, 4: self.compression_zstd_level}
        level = levels.get(codec or 0)
        object.__setattr__(self, "target_level", None if level == -1 else level)
        unset, difference = 2**63 - 1, self.message_timestamp_difference_max_ms
        before, after = self.message_timestamp_before_max_ms, self.message_timestamp_after_max_ms
        before = difference if before == unset else before
        after = difference if after == unset else after
        object.__setattr__(self, "timestamp_before_ms", before)
        object.__setattr__(self, "timestamp_after_ms", after)
        roll_ms = self.segment_ms
        if "compact" in self.cleanup_policy and self.max_compaction_lag_ms > 0:
            roll_ms = min(roll_ms, self.max_compaction_lag_ms)
        object.__setattr__(self, "roll_ms", roll_ms)
        object.__setattr__(
            self, "checks_timestamps", not log_append_time and (before < unset or after < unset)
        )

    @classmethod
    def build(
        cls, broker: BrokerConfigs, overrides: Mapping[str, str], node_id: int | None = None
    ) -> TopicConfig:
        """The topic's overrides (validated) over the brokers' defaults for topic configs
        (broker `node_id`'s own, else the cluster-wide ones)."""
        kwargs: dict[str, Any] = {}
        for name, d in TOPIC_CONFIGS.items():
            value = overrides[name] if name in overrides else broker.topic_default(name, node_id)[0]
            if value is not None:
                kwargs[name.replace(".", "_")] = _typed(d, value)
        return cls(**kwargs)


# KIP-848's group-level configs (GROUP config resources, type 32, Kafka 3.9+; Kafka's
# GroupConfig): name -> (the broker config giving its default, the broker configs bounding it).
GROUP_CONFIGS: dict[str, tuple[str, str, str]] = {
    "consumer.session.timeout.ms": (
        "group.consumer.session.timeout.ms",
        "group.consumer.min.session.timeout.ms",
        "group.consumer.max.session.timeout.ms",
    ),
    "consumer.heartbeat.interval.ms": (
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms",
    ),
}


# KIP-932's group-level configs of share groups, bounded alike.
SHARE_GROUP_CONFIGS: dict[str, tuple[str, str, str]] = {
    "share.session.timeout.ms": (
        "group.share.session.timeout.ms",
        "group.share.min.session.timeout.ms",
        "group.share.max.session.timeout.ms",
    ),
    "share.heartbeat.interval.ms": (
        "group.share.heartbeat.interval.ms",
        "group.share.min.heartbeat.interval.ms",
        "group.share.max.heartbeat.interval.ms",
    ),
    "share.record.lock.duration.ms": (
        "group.share.record.lock.duration.ms",
        "group.share.min.record.lock.duration.ms",
        "group.share.max.record.lock.duration.ms",
    ),
}
# Where a share partition new to its group starts: latest, earliest, or by_duration:<an
# ISO-8601 duration> back from now. No broker config gives its default.
SHARE_AUTO_OFFSET_RESET = "share.auto.offset.reset"
SHARE_AUTO_OFFSET_RESET_DEFAULT = "latest"
# read_committed: a share group acquires nothing past the last stable offset and archives
# aborted transactions' records. No broker config gives its default either.
SHARE_ISOLATION_LEVEL = "share.isolation.level"
SHARE_ISOLATION_LEVEL_DEFAULT = "read_uncommitted"
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")
# the share groups' string group configs and their defaults
SHARE_STRING_CONFIGS = {
    SHARE_AUTO_OFFSET_RESET: SHARE_AUTO_OFFSET_RESET_DEFAULT,
    SHARE_ISOLATION_LEVEL: SHARE_ISOLATION_LEVEL_DEFAULT,
}
_DURATION = re.compile(
    r"P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d{1,9})?)S)?)?", re.IGNORECASE
)


def int_group_configs(broker: BrokerConfigs) -> dict[str, tuple[str, str, str]]:
    """The release's int group configs: KIP-848's, and KIP-932's where share groups are."""
    return {**GROUP_CONFIGS, **SHARE_GROUP_CONFIGS} if broker.share_group_configs else GROUP_CONFIGS


def group_config_defaults(broker: BrokerConfigs) -> dict[str, str]:
    defaults = {
        name: broker.get(default) or ""
        for name, (default, _, _) in int_group_configs(broker).items()
    }
    if broker.share_group_configs:
        defaults.update(SHARE_STRING_CONFIGS)
    return defaults


def reset_duration_ms(value: str) -> int | None:
    """The milliseconds of `by_duration:<duration>` (Java's Duration.parse forms PnDTnHnMn.nS,
    not negative), None when `value` is not one."""
    prefix, _, duration = value.partition(":")
    if prefix != "by_duration":
        return None
    m = _DURATION.fullmatch(duration.strip())
    if m is None or duration.strip().upper() in ("P", "PT"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return int((((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000)


def validate_group_configs(configs: Mapping[str, str], broker: BrokerConfigs) -> str | None:
    """Kafka's GroupConfig.validate: the reason `configs` (a group's whole override set) is
    refused, None when it is not."""
    bounded = int_group_configs(broker)
    known = set(bounded) | (set(SHARE_STRING_CONFIGS) if broker.share_group_configs else set())
    for name in configs:
        if name not in known:
            return f"Unknown group config name: {name}"
    reset = configs.get(SHARE_AUTO_OFFSET_RESET)
    if (
        reset is not None
        and reset.strip() not in ("latest", "earliest")
        and reset_duration_ms(reset.strip()) is None
    ):
        return (
            f"Invalid value {reset} for configuration {SHARE_AUTO_OFFSET_RESET}: the value "
            "must be latest, earliest or by_duration:PnDTnHnMn.nS"
        )
    isolation = configs.get(SHARE_ISOLATION_LEVEL)
    if isolation is not None and isolation not in ISOLATION_LEVELS:
        return (
            f"Invalid value {isolation} for configuration {SHARE_ISOLATION_LEVEL}: "
            f"String must be one of: {', '.join(ISOLATION_LEVELS)}"
        )
    values: dict[str, int] = {}
    for name, value in {**group_config_defaults(broker), **configs}.items():
        if name not in bounded:
            continue
        try:
            values[name] = int(value.strip())
        except ValueError:
            return f"Invalid value {value} for configuration {name}: Not a number of type INT"
        if values[name] < 1:
            return f"Invalid value {value} for configuration {name}: Value must be at least 1"
    for name, (_, low, high) in bounded.items():
        if values[name] < broker.get_int(low):
            return f"{name} must be greater than or equal to {low}"
        if values[name] > broker.get_int(high):
            return f"{name} must be less than or equal to {high}"
    for kind in ("consumer", "share") if broker.share_group_configs else ("consumer",):
        if values[f"{kind}.session.timeout.ms"] <= values[f"{kind}.heartbeat.interval.ms"]:
            return f"{kind}.session.timeout.ms must be greater than {kind}.heartbeat.interval.ms"
    return None
