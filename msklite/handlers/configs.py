"""DescribeConfigs (key 32), versions 1-4.

Behavior:
- TOPIC (2) resources: every topic config with its effective value and source —
  TOPIC_CONFIG for the topic's own settings, STATIC_BROKER_CONFIG for values from the brokers'
  static configuration (MSK's defaults and `--config`), DEFAULT_CONFIG for Kafka's defaults —
  and, with include_synonyms, the chain of broker configs behind it. Unknown topic:
  UNKNOWN_TOPIC_OR_PARTITION.
- BROKER (4) resources: a broker id of this cluster, or "" for the cluster-wide defaults;
  other names: INVALID_REQUEST. broker.id and broker.rack are per broker.
- configuration_keys filters by name; config_type (v3+) from the registry.
- Any other resource type: INVALID_REQUEST.

Deviations from Kafka/MSK:
- The broker list covers the configs msklite knows, not all of Kafka's ~250.
"""

from __future__ import annotations

from typing import Any

from msklite.config import BROKER_CONFIGS, TOPIC_CONFIGS, ConfigDef, ConfigSource
from msklite.errors import ErrorCode
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request
from msklite.protocol import messages
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

TOPIC, BROKER = 2, 4


def _entry(
    cls: Any,
    d: ConfigDef,
    value: str | None,
    source: ConfigSource,
    read_only: bool,
    synonyms: list[tuple[str, str | None, ConfigSource]],
) -> Any:
    return cls(
        name=d.name,
        value=value,
        read_only=read_only,
        config_source=int(source),
        is_default=source == ConfigSource.DEFAULT_CONFIG,
        is_sensitive=d.sensitive,
        synonyms=[
            cls.DescribeConfigsSynonym(name=n, value=val, source=int(s)) for n, val, s in synonyms
        ],
        config_type=int(d.type),
        documentation=None,
    )


def _topic_configs(ctx: BrokerContext, name: str, cls: Any, synonyms: bool) -> list[Any]:
    topic = ctx.controller.topics[name]
    broker = ctx.controller.configs
    out = []
    for d in TOPIC_CONFIGS.values():
        chain: list[tuple[str, str | None, ConfigSource]] = []
        if d.name in topic.configs:
            chain.append((d.name, topic.configs[d.name], ConfigSource.TOPIC_CONFIG))
        if d.synonym in BROKER_CONFIGS:
            assert d.synonym is not None
            if d.synonym in broker.static:
                chain.append(
                    (d.synonym, broker.static[d.synonym], ConfigSource.STATIC_BROKER_CONFIG)
                )
            chain.append(
                (d.synonym, BROKER_CONFIGS[d.synonym].default, ConfigSource.DEFAULT_CONFIG)
            )
        else:
            chain.append((d.name, d.default, ConfigSource.DEFAULT_CONFIG))
        _, value, source = chain[0]
        out.append(_entry(cls, d, value, source, False, chain if synonyms else []))
    return out


def _broker_configs(ctx: BrokerContext, node_id: int | None, cls: Any, synonyms: bool) -> list[Any]:
    broker = ctx.controller.configs
    info = ctx.controller.brokers.get(node_id) if node_id is not None else None
    per_broker = {
        "broker.id": str(node_id) if node_id is not None else None,
        "broker.rack": info.rack if info is not None else None,
    }
    out = []
    for d in BROKER_CONFIGS.values():
        if d.name in per_broker:
            if node_id is None:
                continue
            value, source = per_broker[d.name], ConfigSource.STATIC_BROKER_CONFIG
        else:
            value, source = broker.get(d.name), broker.source(d.name)
        chain = [(d.name, value, source)]
        if source != ConfigSource.DEFAULT_CONFIG and d.name not in per_broker:
            chain.append((d.name, d.default, ConfigSource.DEFAULT_CONFIG))
        out.append(_entry(cls, d, value, source, True, chain if synonyms else []))
    return out


@handles(ApiKey.DESCRIBE_CONFIGS, versions=(1, 4), flexible_from=4)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v, req, resp = spec_request(ApiKey.DESCRIBE_CONFIGS, header, r)
    result_cls = resp.DescribeConfigsResult
    entry_cls = result_cls.DescribeConfigsResourceResult
    results = []
    for res in req.resources:
        code, message, configs = ErrorCode.NONE, None, []
        if res.resource_type == TOPIC:
            if res.resource_name in ctx.controller.topics:
                configs = _topic_configs(ctx, res.resource_name, entry_cls, req.include_synonyms)
            else:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                message = f"Topic {res.resource_name} does not exist"
        elif res.resource_type == BROKER:
            name = res.resource_name
            if name == "":
                configs = _broker_configs(ctx, None, entry_cls, req.include_synonyms)
            elif name.isdigit() and int(name) in ctx.controller.brokers:
                configs = _broker_configs(ctx, int(name), entry_cls, req.include_synonyms)
            else:
                code = ErrorCode.INVALID_REQUEST
                message = f"Unexpected broker id, expected one of the cluster's ids, got {name}"
        else:
            code = ErrorCode.INVALID_REQUEST
            message = f"Unsupported resource type {res.resource_type}"
        if res.configuration_keys is not None and configs:
            keys = set(res.configuration_keys)
            configs = [c for c in configs if c.name in keys]
        results.append(
            result_cls(
                error_code=code,
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
                configs=configs,
            )
        )
    return [messages.encode(resp(version=v, throttle_time_ms=0, results=results), v)]
