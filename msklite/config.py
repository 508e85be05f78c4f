"""Configuration: the registry of broker and topic configs (type, Kafka default, the broker
config a topic config falls back to, validation) and the cluster's own settings.

One registry serves validation (CreateTopics), effective values (the log, the handlers) and
DescribeConfigs (values, sources, synonyms). MSK's overrides of Kafka's defaults live in
`msklite.msk`; they count as the brokers' static configuration (MSK writes them to
server.properties), so DescribeConfigs reports them as STATIC_BROKER_CONFIG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

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


class AlterOp(IntEnum):
    """IncrementalAlterConfigs' config_operation."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


_INT_RANGE = {ConfigType.INT: (-(2**31), 2**31 - 1), ConfigType.LONG: (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: str | None
    synonym: str | None = None  # the broker config a topic config defaults to
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    sensitive: bool = False
    check: Callable[[str], bool] | None = field(default=None, compare=False)

    def validate(self, value: str | None) -> str | None:
        """None if `value` is acceptable, else why not (Kafka's ConfigException text, roughly)."""
        if value is None:
            return (
                None
                if self.type in (ConfigType.PASSWORD, ConfigType.STRING)
                else (f"Invalid value null for configuration {self.name}")
            )
        bad = f"Invalid value {value} for configuration {self.name}"
        if self.type in (ConfigType.INT, ConfigType.LONG, ConfigType.SHORT):
            try:
                n = int(value.strip())
            except ValueError:
                return f"{bad}: Not a number of type {self.type.name}"
            lo, hi = _INT_RANGE.get(self.type, (-(2**15), 2**15 - 1))
            if not lo <= n <= hi:
                return f"{bad}: Not a number of type {self.type.name}"
            if self.minimum is not None and n < self.minimum:
                return f"{bad}: Value must be at least {int(self.minimum)}"
        elif self.type == ConfigType.DOUBLE:
            try:
                d = float(value)
            except ValueError:
                return f"{bad}: Not a number of type DOUBLE"
            if self.minimum is not None and d < self.minimum:
                return f"{bad}: Value must be at least {self.minimum}"
        elif self.type == ConfigType.BOOLEAN and value.strip().lower() not in ("true", "false"):
            return f"{bad}: Expected value to be either true or false"
        if self.choices is not None:
            items = (
                [v.strip() for v in value.split(",")] if self.type == ConfigType.LIST else [value]
            )
            for item in items:
                if item not in self.choices:
                    return f"{bad}: String must be one of: {', '.join(self.choices)}"
        if self.check is not None and not self.check(value):
            return bad
        return None


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


def _defs(*defs: ConfigDef) -> dict[str, ConfigDef]:
    return {d.name: d for d in defs}


T = ConfigType
COMPRESSION_TYPES = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

TOPIC_CONFIGS: dict[str, ConfigDef] = _defs(
    ConfigDef(
        "cleanup.policy", T.LIST, "delete", "log.cleanup.policy", choices=("compact", "delete")
    ),
    ConfigDef(
        "compression.type", T.STRING, "producer", "compression.type", choices=COMPRESSION_TYPES
    ),
    ConfigDef("delete.retention.ms", T.LONG, "86400000", "log.cleaner.delete.retention.ms", 0),
    ConfigDef("file.delete.delay.ms", T.LONG, "60000", "log.segment.delete.delay.ms", 0),
    ConfigDef("flush.messages", T.LONG, LONG_MAX, "log.flush.interval.messages", 1),
    ConfigDef("flush.ms", T.LONG, LONG_MAX, "log.flush.interval.ms", 0),
    ConfigDef(
        "follower.replication.throttled.replicas",
        T.LIST,
        "",
        "follower.replication.throttled.replicas",
    ),
    ConfigDef("index.interval.bytes", T.INT, "4096", "log.index.interval.bytes", 0),
    ConfigDef(
        "leader.replication.throttled.replicas", T.LIST, "", "leader.replication.throttled.replicas"
    ),
    ConfigDef("local.retention.bytes", T.LONG, "-2", "log.local.retention.bytes", -2),
    ConfigDef("local.retention.ms", T.LONG, "-2", "log.local.retention.ms", -2),
    ConfigDef("max.compaction.lag.ms", T.LONG, LONG_MAX, "log.cleaner.max.compaction.lag.ms", 1),
    ConfigDef("max.message.bytes", T.INT, "1048588", "message.max.bytes", 0),
    ConfigDef(
        "message.timestamp.after.max.ms", T.LONG, LONG_MAX, "log.message.timestamp.after.max.ms", 0
    ),
    ConfigDef(
        "message.timestamp.before.max.ms",
        T.LONG,
        LONG_MAX,
        "log.message.timestamp.before.max.ms",
        0,
    ),
    ConfigDef(
        "message.timestamp.type",
        T.STRING,
        "CreateTime",
        "log.message.timestamp.type",
        choices=("CreateTime", "LogAppendTime"),
    ),
    ConfigDef("min.cleanable.dirty.ratio", T.DOUBLE, "0.5", "log.cleaner.min.cleanable.ratio", 0),
    ConfigDef("min.compaction.lag.ms", T.LONG, "0", "log.cleaner.min.compaction.lag.ms", 0),
    ConfigDef("min.insync.replicas", T.INT, "1", "min.insync.replicas", 1),
    ConfigDef("preallocate", T.BOOLEAN, "false", "log.preallocate"),
    ConfigDef("remote.storage.enable", T.BOOLEAN, "false", None),
    ConfigDef("retention.bytes", T.LONG, "-1", "log.retention.bytes"),
    ConfigDef("retention.ms", T.LONG, "604800000", "log.retention.ms", -1),
    ConfigDef("segment.bytes", T.INT, "1073741824", "log.segment.bytes", 14),
    ConfigDef("segment.index.bytes", T.INT, "10485760", "log.index.size.max.bytes", 4),
    ConfigDef("segment.jitter.ms", T.LONG, "0", "log.roll.jitter.ms", 0),
    ConfigDef("segment.ms", T.LONG, "604800000", "log.roll.ms", 1),
    ConfigDef(
        "unclean.leader.election.enable", T.BOOLEAN, "false", "unclean.leader.election.enable"
    ),
)

BROKER_CONFIGS: dict[str, ConfigDef] = _defs(
    ConfigDef("allow.everyone.if.no.acl.found", T.BOOLEAN, "false"),
    ConfigDef("auto.create.topics.enable", T.BOOLEAN, "true"),
    ConfigDef("auto.leader.rebalance.enable", T.BOOLEAN, "true"),
    ConfigDef("broker.id", T.INT, "-1"),
    ConfigDef("broker.rack", T.STRING, None),
    ConfigDef("compression.type", T.STRING, "producer", choices=COMPRESSION_TYPES),
    ConfigDef("default.replication.factor", T.INT, "1", minimum=1),
    ConfigDef("delete.topic.enable", T.BOOLEAN, "true"),
    ConfigDef("follower.replication.throttled.replicas", T.LIST, ""),
    ConfigDef("group.initial.rebalance.delay.ms", T.INT, "3000", minimum=0),
    ConfigDef("group.max.session.timeout.ms", T.INT, "1800000", minimum=0),
    ConfigDef("group.min.session.timeout.ms", T.INT, "6000", minimum=0),
    ConfigDef("leader.replication.throttled.replicas", T.LIST, ""),
    ConfigDef("log.cleaner.delete.retention.ms", T.LONG, "86400000", minimum=0),
    ConfigDef("log.cleaner.max.compaction.lag.ms", T.LONG, LONG_MAX, minimum=1),
    ConfigDef("log.cleaner.min.cleanable.ratio", T.DOUBLE, "0.5", minimum=0),
    ConfigDef("log.cleaner.min.compaction.lag.ms", T.LONG, "0", minimum=0),
    ConfigDef("log.cleanup.policy", T.LIST, "delete", choices=("compact", "delete")),
    ConfigDef("log.flush.interval.messages", T.LONG, LONG_MAX, minimum=1),
    ConfigDef("log.flush.interval.ms", T.LONG, LONG_MAX, minimum=0),
    ConfigDef("log.index.interval.bytes", T.INT, "4096", minimum=0),
    ConfigDef("log.index.size.max.bytes", T.INT, "10485760", minimum=4),
    ConfigDef("log.local.retention.bytes", T.LONG, "-2", minimum=-2),
    ConfigDef("log.local.retention.ms", T.LONG, "-2", minimum=-2),
    ConfigDef("log.message.timestamp.after.max.ms", T.LONG, LONG_MAX, minimum=0),
    ConfigDef("log.message.timestamp.before.max.ms", T.LONG, LONG_MAX, minimum=0),
    ConfigDef(
        "log.message.timestamp.type",
        T.STRING,
        "CreateTime",
        choices=("CreateTime", "LogAppendTime"),
    ),
    ConfigDef("log.preallocate", T.BOOLEAN, "false"),
    ConfigDef("log.retention.bytes", T.LONG, "-1"),
    ConfigDef("log.retention.check.interval.ms", T.LONG, "300000", minimum=1),
    ConfigDef("log.retention.ms", T.LONG, "604800000", minimum=-1),
    ConfigDef("log.roll.jitter.ms", T.LONG, "0", minimum=0),
    ConfigDef("log.roll.ms", T.LONG, "604800000", minimum=1),
    ConfigDef("log.segment.bytes", T.INT, "1073741824", minimum=14),
    ConfigDef("log.segment.delete.delay.ms", T.LONG, "60000", minimum=0),
    ConfigDef("message.max.bytes", T.INT, "1048588", minimum=0),
    ConfigDef("min.insync.replicas", T.INT, "1", minimum=1),
    ConfigDef("num.io.threads", T.INT, "8", minimum=1),
    ConfigDef("num.network.threads", T.INT, "3", minimum=1),
    ConfigDef("num.partitions", T.INT, "1", minimum=1),
    ConfigDef("num.replica.fetchers", T.INT, "1"),
    ConfigDef("offset.metadata.max.bytes", T.INT, "4096", minimum=0),
    ConfigDef("offsets.retention.minutes", T.INT, "10080", minimum=1),
    ConfigDef("offsets.retention.check.interval.ms", T.LONG, "600000", minimum=1),
    ConfigDef("offsets.topic.num.partitions", T.INT, "50", minimum=1),
    ConfigDef("offsets.topic.replication.factor", T.SHORT, "3", minimum=1),
    ConfigDef("offsets.topic.segment.bytes", T.INT, "104857600", minimum=1),
    # Kafka's default is -1 (unbounded); msklite bounds it (DEVIATIONS.md).
    ConfigDef("queued.max.request.bytes", T.LONG, "268435456"),
    ConfigDef("replica.fetch.backoff.ms", T.INT, "1000", minimum=0),
    ConfigDef("replica.fetch.max.bytes", T.INT, "1048576", minimum=0),
    ConfigDef("replica.lag.time.max.ms", T.LONG, "30000"),
    ConfigDef("replica.selector.class", T.CLASS, None),
    ConfigDef("socket.receive.buffer.bytes", T.INT, "102400"),
    ConfigDef("socket.request.max.bytes", T.INT, "104857600", minimum=1),
    ConfigDef("socket.send.buffer.bytes", T.INT, "102400"),
    ConfigDef("transaction.state.log.min.isr", T.INT, "2", minimum=1),
    ConfigDef("transaction.state.log.replication.factor", T.SHORT, "3", minimum=1),
    ConfigDef("unclean.leader.election.enable", T.BOOLEAN, "false"),
    ConfigDef("zookeeper.set.acl", T.BOOLEAN, "false"),
)

# Kafka accepts these coarser broker settings and derives the *.ms ones from them.
_HOURS_ALIASES = {"log.retention.ms": "log.retention.hours", "log.roll.ms": "log.roll.hours"}


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
    """Effective broker configuration: static settings (MSK's defaults plus the user's
    `--config`) over Kafka's defaults."""

    def __init__(self, static: Mapping[str, object]) -> None:
        unknown = [
            k for k in static if k not in BROKER_CONFIGS and k not in _HOURS_ALIASES.values()
        ]
        if unknown:
            raise ValueError(f"unknown broker config(s): {', '.join(sorted(unknown))}")
        self.static = {k: config_text(k, v) for k, v in static.items()}
        for ms_name, hours_name in _HOURS_ALIASES.items():
            if hours_name in self.static and ms_name not in self.static:
                self.static[ms_name] = str(int(self.static.pop(hours_name)) * 3_600_000)
        for name, value in self.static.items():
            err = BROKER_CONFIGS[name].validate(value)
            if err:
                raise ValueError(err)

    def get(self, name: str) -> str | None:
        if name in self.static:
            return self.static[name]
        return BROKER_CONFIGS[name].default

    def get_int(self, name: str) -> int:
        return int(self.get(name) or 0)

    def get_bool(self, name: str) -> bool:
        return (self.get(name) or "").lower() == "true"

    def source(self, name: str) -> ConfigSource:
        return (
            ConfigSource.STATIC_BROKER_CONFIG
            if name in self.static
            else ConfigSource.DEFAULT_CONFIG
        )

    def topic_default(self, name: str) -> tuple[str | None, ConfigSource, str | None]:
        """(value, source, broker synonym) of topic config `name` when the topic sets none."""
        d = TOPIC_CONFIGS[name]
        if d.synonym is not None and d.synonym in BROKER_CONFIGS:
            return self.get(d.synonym), self.source(d.synonym), d.synonym
        return d.default, ConfigSource.DEFAULT_CONFIG, None


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
    compression_type: str = "producer"
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
    message_timestamp_after_max_ms: int = 2**63 - 1
    message_timestamp_before_max_ms: int = 2**63 - 1
    message_timestamp_type: str = "CreateTime"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
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
    checks_timestamps: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        log_append_time = self.message_timestamp_type == "LogAppendTime"
        object.__setattr__(self, "log_append_time", log_append_time)
        object.__setattr__(
            self,
            "checks_timestamps",
            not log_append_time
            and (
                self.message_timestamp_before_max_ms < 2**63 - 1
                or self.message_timestamp_after_max_ms < 2**63 - 1
            ),
        )

    @classmethod
    def build(cls, broker: BrokerConfigs, overrides: Mapping[str, str]) -> TopicConfig:
        """The topic's overrides (validated) over the brokers' defaults for topic configs."""
        kwargs: dict[str, Any] = {}
        for name, d in TOPIC_CONFIGS.items():
            value = overrides[name] if name in overrides else broker.topic_default(name)[0]
            if value is not None:
                kwargs[name.replace(".", "_")] = _typed(d, value)
        return cls(**kwargs)
