"""AlterConfigs (key 33, v0-2) and IncrementalAlterConfigs (key 44, v0-1).

Behavior (Kafka 3.9 in KRaft mode: the broker's preprocessing, then the controller's):
- A resource named twice in one request: INVALID_REQUEST "Each resource must appear at most
  once." for both; a key twice in one resource: INVALID_REQUEST "Error due to duplicate config
  keys"; a null value (other than for DELETE): INVALID_REQUEST "Null value not supported for :
  <names>"; an unknown resource type: INVALID_REQUEST.
- TOPIC: AlterConfigs replaces the topic's overrides with the given set; IncrementalAlterConfigs
  applies SET, DELETE, APPEND and SUBTRACT (the last two on LIST configs only, starting from the
  default when unset). Empty name: INVALID_REQUEST; an illegal name: INVALID_TOPIC_EXCEPTION;
  unknown or invalid configs: INVALID_CONFIG with Kafka's message; a missing topic:
  UNKNOWN_TOPIC_OR_PARTITION. The change is saved before it applies, and takes effect at once
  on the topic's open logs, replicas and produce path. validate_only checks without changing.
- Every resource succeeds or fails on its own; each is all-or-nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request
from msklite.protocol import messages
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
DELETE = 1

# (name, operation, value); AlterConfigs' entries are SET operations.
Ops = list[tuple[str, int, str | None]]


def _preprocess(res: Any, ops: Ops, incremental: bool) -> None:
    """The checks Kafka's broker makes before it forwards a resource to the controller."""
    if any(n > 1 for n in Counter(name for name, _, _ in ops).values()):
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
    nulls = [
        name for name, op, value in ops if value is None and not (incremental and op == DELETE)
    ]
    if nulls:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST, "Null value not supported for : " + ", ".join(nulls)
        )
    if res.resource_type not in (TOPIC, BROKER, BROKER_LOGGER):
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown resource type {res.resource_type}")


def _alter(ctx: BrokerContext, res: Any, ops: Ops, incremental: bool, validate_only: bool) -> None:
    _preprocess(res, ops, incremental)
    controller = ctx.controller
    if res.resource_type == TOPIC:
        if incremental:
            controller.incremental_alter_topic_configs(res.resource_name, ops, validate_only)
        else:
            configs = {name: value for name, _, value in ops}
            controller.alter_topic_configs(res.resource_name, configs, validate_only)
    else:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown resource type {res.resource_type}")


def _respond(ctx: BrokerContext, header: RequestHeader, r: Reader, api_key: int) -> list[Buffer]:
    incremental = api_key == ApiKey.INCREMENTAL_ALTER_CONFIGS
    v, req, resp = spec_request(api_key, header, r)
    seen = Counter((res.resource_type, res.resource_name) for res in req.resources)
    results = []
    for res in req.resources:
        ops: Ops = [
            (c.name, c.config_operation if incremental else 0, c.value) for c in res.configs
        ]
        code, message = ErrorCode.NONE, None
        try:
            if seen[res.resource_type, res.resource_name] > 1:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST, "Each resource must appear at most once."
                )
            _alter(ctx, res, ops, incremental, req.validate_only)
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(
            resp.AlterConfigsResourceResponse(
                error_code=code,
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
            )
        )
    return [messages.encode(resp(version=v, throttle_time_ms=0, responses=results), v)]


@handles(ApiKey.ALTER_CONFIGS, versions=(0, 2), flexible_from=2)
def handle_alter(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    return _respond(ctx, header, r, ApiKey.ALTER_CONFIGS)


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS, versions=(0, 1), flexible_from=1)
def handle_incremental(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    return _respond(ctx, header, r, ApiKey.INCREMENTAL_ALTER_CONFIGS)
