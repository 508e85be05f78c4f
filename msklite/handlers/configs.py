"""DescribeConfigs (key 32), versions 1-4.

Behavior:
- TOPIC (2) resources: every topic config with its effective value and source, and with
  include_synonyms the chain behind it in Kafka's order (ConfigHelper): the topic's own
  setting (DYNAMIC_TOPIC_CONFIG), then per source (DYNAMIC_BROKER_CONFIG,
  DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG — MSK's defaults and `--config` —,
  DEFAULT_CONFIG) each broker config of its unit family (`log.retention.ms`, `.minutes`,
  `.hours`), dropping those before the first of the family's head, as Kafka does. Unknown
  topic: UNKNOWN_TOPIC_OR_PARTITION.
- BROKER (4) resources: a broker id of this cluster — every broker config Kafka 3.9
  documents, its value as set (unit families unresolved), read_only from its update mode,
  passwords null — or "" for the cluster-wide dynamic defaults, only those set (synonyms of
  that source only). Other names: INVALID_REQUEST. broker.id and broker.rack are per broker.
- BROKER_LOGGER (8) resources: `root` and msklite's loggers with log4j level names
  (DYNAMIC_BROKER_LOGGER_CONFIG); an empty name: INVALID_REQUEST.
- configuration_keys filters by name; config_type (v3+) from the registry; with
  include_documentation (v3+), Kafka 3.9's description of each topic and broker config.
- GROUP (32) resources (KIP-848, from 3.9): `consumer.session.timeout.ms` and
  `consumer.heartbeat.interval.ms`, the group's own (GROUP_CONFIG) or the brokers'
  `group.consumer.*` default (DEFAULT_CONFIG), for any group id; under 4.2 also share
  groups' (KIP-932) `share.session.timeout.ms`, `share.heartbeat.interval.ms`,
  `share.record.lock.duration.ms` (defaults `group.share.*`), `share.auto.offset.reset`
  (default latest) and `share.isolation.level` (default read_uncommitted).
- Any other resource type: INVALID_REQUEST.
- Authorization, as Kafka's: DESCRIBE_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED), on
  the cluster for broker and logger resources (CLUSTER_AUTHORIZATION_FAILED).

Deviations from Kafka/MSK:
- A broker resource may name any broker of the cluster, not only the one asked (one process
  holds them all).
"""

from __future__ import annotations

from msklite.authz import ResourceType
from msklite.config import (
    BROKER_CONFIGS,
    SHARE_STRING_CONFIGS,
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigSource,
    ConfigType,
    group_config_defaults,
    int_group_configs,
)
from msklite.errors import ErrorCode
from msklite.handlers import loggers
from msklite.handlers.authorization import DESCRIBE_CONFIGS, allowed, authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

TOPIC, BROKER, BROKER_LOGGER, GROUP = 2, 4, 8, 32

Result = schemas.DescribeConfigsResponse.DescribeConfigsResult
Entry = Result.DescribeConfigsResourceResult


def _entry(
    d: ConfigDef,
    value: str | None,
    source: ConfigSource,
    read_only: bool,
    synonyms: list[tuple[str, str | None, ConfigSource]],
) -> Entry:
    return Entry(
        name=d.name,
        value=value,
        read_only=read_only,
        config_source=int(source),
        is_sensitive=d.sensitive,
        synonyms=[
            Entry.DescribeConfigsSynonym(name=n, value=val, source=int(s)) for n, val, s in synonyms
        ],
        config_type=int(d.type),
        documentation=None,
    )


def _topic_configs(ctx: BrokerContext, name: str, synonyms: bool) -> list[Entry]:
    topic = ctx.controller.topics[name]
    broker = ctx.controller.configs
    out = []
    for d in TOPIC_CONFIGS.values():
        if d.name in broker.absent:
            continue
        chain = broker.topic_synonyms(d.name, ctx.node_id)
        if d.name in topic.configs:
            value: str | None = topic.configs[d.name]
            chain.insert(0, (d.name, value, ConfigSource.TOPIC_CONFIG))
        else:
            value = broker.topic_default(d.name, ctx.node_id)[0]
        source = chain[0][2] if chain else ConfigSource.DEFAULT_CONFIG
        out.append(_entry(d, value, source, False, chain if synonyms else []))
    return out


def _broker_configs(ctx: BrokerContext, node_id: int, synonyms: bool) -> list[Entry]:
    broker = ctx.controller.configs
    info = ctx.controller.brokers.get(node_id)
    per_broker = {
        "broker.id": str(node_id),
        "broker.rack": info.rack if info is not None else None,
    }
    out = []
    for d in BROKER_CONFIGS.values():
        if d.name in broker.absent:
            continue
        if d.name in per_broker:
            value = per_broker[d.name]
            chain = [(d.name, value, ConfigSource.STATIC_BROKER_CONFIG)]
        else:
            value = broker.value(d.name, node_id)
            chain = broker.synonyms(d.name, node_id)
        source = chain[0][2] if chain else ConfigSource.DEFAULT_CONFIG
        value = None if d.sensitive else value
        out.append(_entry(d, value, source, d.read_only, chain if synonyms else []))
    return out


def _default_configs(ctx: BrokerContext, synonyms: bool) -> list[Entry]:
    """The cluster-wide dynamic defaults: only those set, as Kafka lists them."""
    broker = ctx.controller.configs
    out = []
    for name, set_value in broker.dynamic_default.items():
        d = BROKER_CONFIGS[name]
        chain = [
            s
            for s in broker.synonyms(name, None)
            if s[2] == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
        ]
        source = chain[0][2] if chain else ConfigSource.DEFAULT_CONFIG
        value = None if d.sensitive else set_value
        out.append(_entry(d, value, source, d.read_only, chain if synonyms else []))
    return out


def _logger_configs() -> list[Entry]:
    return [
        Entry(
            name=name,
            value=level,
            read_only=False,
            config_source=int(ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG),
            is_sensitive=False,
            synonyms=[],
            config_type=int(ConfigType.STRING),
            documentation=None,
        )
        for name, level in loggers.current().items()
    ]


def _group_configs(ctx: BrokerContext, group_id: str, synonyms: bool) -> list[Entry]:
    """A group's configs: its own (GROUP_CONFIG) or the brokers' default (DEFAULT_CONFIG, as
    Kafka's ConfigHelper reports it), with the broker config behind each as its synonym."""
    broker = ctx.controller.configs
    own = ctx.controller.group_configs.get(group_id, {})
    defaults = group_config_defaults(broker)
    out = []
    entries: list[tuple[str, str | None, ConfigType]] = [
        (name, default_name, ConfigType.INT)
        for name, (default_name, _, _) in int_group_configs(broker).items()
    ]
    if broker.share_group_configs:
        # no broker config behind them: the default is the group config's own
        entries.extend((name, None, ConfigType.STRING) for name in SHARE_STRING_CONFIGS)
    for name, default_name, config_type in entries:
        chain = [(default_name or name, defaults[name], ConfigSource.DEFAULT_CONFIG)]
        if name in own:
            chain.insert(0, (name, own[name], ConfigSource.GROUP_CONFIG))
        out.append(
            Entry(
                name=name,
                value=chain[0][1],
                read_only=False,
                config_source=int(chain[0][2]),
                is_sensitive=False,
                synonyms=[
                    Entry.DescribeConfigsSynonym(name=n, value=v, source=int(s))
                    for n, v, s in (chain if synonyms else [])
                ],
                config_type=int(config_type),
                documentation=None,
            )
        )
    return out


def _docs(resource_type: int) -> dict[str, str]:
    # Imported on demand: 90 KB of text nobody needs unless a client asks for it.
    from msklite import config_docs

    return config_docs.TOPIC if resource_type == TOPIC else config_docs.BROKER


@handles(ApiKey.DESCRIBE_CONFIGS, versions=(1, 4), flexible_from=4)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeConfigsRequest, header, r)
    results = []
    may_topics = authorized(
        ctx,
        header,
        DESCRIBE_CONFIGS,
        ResourceType.TOPIC,
        [res.resource_name for res in req.resources if res.resource_type == TOPIC],
    )
    may_cluster = any(
        res.resource_type in (BROKER, BROKER_LOGGER) for res in req.resources
    ) and allowed(ctx, header, DESCRIBE_CONFIGS)
    for res in req.resources:
        code, message, configs = ErrorCode.NONE, None, list[Entry]()
        if res.resource_type == TOPIC and res.resource_name not in may_topics:
            code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            message = f"Authorization failed for topic {res.resource_name}"
        elif res.resource_type in (BROKER, BROKER_LOGGER) and not may_cluster:
            code, message = ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed"
        elif res.resource_type == TOPIC:
            if res.resource_name in ctx.controller.topics:
                configs = _topic_configs(ctx, res.resource_name, req.include_synonyms)
            else:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                message = f"Topic {res.resource_name} does not exist"
        elif res.resource_type == BROKER:
            name = res.resource_name
            if name == "":
                configs = _default_configs(ctx, req.include_synonyms)
            elif name.isdigit() and int(name) in ctx.controller.brokers:
                configs = _broker_configs(ctx, int(name), req.include_synonyms)
            else:
                code = ErrorCode.INVALID_REQUEST
                message = f"Unexpected broker id, expected one of the cluster's ids, got {name}"
        elif res.resource_type == BROKER_LOGGER:
            name = res.resource_name
            if name == "":
                code, message = ErrorCode.INVALID_REQUEST, "Broker id must not be empty"
            elif name.isdigit() and int(name) in ctx.controller.brokers:
                configs = _logger_configs()
            else:
                code = ErrorCode.INVALID_REQUEST
                message = f"Unexpected broker id, expected one of the cluster's ids, got {name}"
        elif res.resource_type == GROUP and ctx.controller.configs.group_configs:
            configs = _group_configs(ctx, res.resource_name, req.include_synonyms)
        else:
            code = ErrorCode.INVALID_REQUEST
            message = f"Unsupported resource type {res.resource_type}"
        if res.configuration_keys is not None and configs:
            keys = set(res.configuration_keys)
            configs = [c for c in configs if c.name in keys]
        if (
            header.api_version >= 3
            and req.include_documentation
            and res.resource_type in (TOPIC, BROKER)
        ):
            docs = _docs(res.resource_type)
            for c in configs:
                c.documentation = docs.get(c.name)
        results.append(
            Result(
                error_code=code,
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
                configs=configs,
            )
        )
    return spec_response(
        header, schemas.DescribeConfigsResponse(throttle_time_ms=0, results=results)
    )
