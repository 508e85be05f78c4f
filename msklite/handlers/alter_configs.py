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
- BROKER: a broker id (only the broker receiving the request: else INVALID_REQUEST
  "Unexpected broker id, expected 1, but received 2") or "" for the cluster-wide default.
  The new dynamic set (incremental: the current one with the operations applied; legacy: the
  given set, what is left out deleted) is checked as DynamicBrokerConfig checks it:
  read-only configs answer INVALID_REQUEST "Cannot update these configs dynamically:
  Set(...)" (both APIs: ConfigAdminManager turns the ConfigException into
  InvalidRequestException, KAFKA-13609), per-broker configs at the default level likewise,
  bad values INVALID_REQUEST with ConfigException's text, APPEND/SUBTRACT on a non-list
  INVALID_CONFIG. Topics whose defaults come from a changed config take the new value at
  once; a broker's own value applies to its own replicas only.
- BROKER_LOGGER (IncrementalAlterConfigs only): SET a logger's level or DELETE it (back to
  its parent's), as RuntimeLoggerManager checks: unknown logger INVALID_CONFIG, a level
  outside FATAL..TRACE INVALID_CONFIG, root's DELETE and APPEND/SUBTRACT INVALID_REQUEST.
- GROUP (IncrementalAlterConfigs only, from 3.9; KIP-848): SET or DELETE
  `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms` of a group, checked as
  Kafka's GroupConfig checks them (INVALID_CONFIG: an unknown name, a value that is not a
  positive int, outside `group.consumer.min/max.*`, a session not above the heartbeat
  interval); saved with the cluster metadata, read by the group's next heartbeat. Under 4.2
  also share groups' `share.session.timeout.ms`, `share.heartbeat.interval.ms`,
  `share.record.lock.duration.ms` (within `group.share.min/max.*`),
  `share.auto.offset.reset` (latest, earliest or by_duration:PnDTnHnMn.nS) and
  `share.isolation.level` (read_committed or read_uncommitted).
- An unknown operation: INVALID_REQUEST "Unknown operations type N".
- Every resource succeeds or fails on its own; each is all-or-nothing.
- Authorization, as Kafka's: ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED), on the
  cluster for broker and logger resources (CLUSTER_AUTHORIZATION_FAILED).

Deviations from Kafka/MSK:
- An unknown broker config name is refused (INVALID_CONFIG, with the closest known name);
  Kafka keeps custom keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from msklite.authz import ResourceType
from msklite.config import BROKER_CONFIGS, AlterOp, ConfigType, apply_ops
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers import loggers
from msklite.handlers.authorization import ALTER_CONFIGS, allowed
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

TOPIC, BROKER, BROKER_LOGGER, GROUP = 2, 4, 8, 32
DELETE = 1
LIST = ConfigType.LIST

# (name, operation, value); AlterConfigs' entries are SET operations.
Ops = list[tuple[str, int, str | None]]


def _preprocess(ctx: BrokerContext, res: _Resource, ops: Ops, incremental: bool) -> None:
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
    types = {TOPIC, BROKER}
    if incremental:
        types.add(BROKER_LOGGER)
        if ctx.controller.configs.group_configs:
            types.add(GROUP)
    if res.resource_type not in types:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown resource type {res.resource_type}")
    unknown_ops = [op for _, op, _ in ops if op not in set(AlterOp)]
    if unknown_ops:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown operations type {unknown_ops[0]}")


def _node_id(ctx: BrokerContext, name: str, what: str) -> int:
    """A broker resource names the broker that receives it, as Kafka checks."""
    try:
        node_id = int(name)
    except ValueError:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST, f"Node id must be an integer, but it is: {name}"
        ) from None
    if node_id != ctx.node_id:
        raise KafkaError(ErrorCode.INVALID_REQUEST, what.format(ctx.node_id, name))
    return node_id


def _alter_broker(
    ctx: BrokerContext, name: str, ops: Ops, incremental: bool, validate_only: bool
) -> None:
    node_id = (
        _node_id(ctx, name, "Unexpected broker id, expected {}, but received {}") if name else None
    )
    configs = ctx.controller.configs
    current = configs.dynamic_default if node_id is None else configs.dynamic.get(node_id, {})
    if incremental:
        for key, op, _ in ops:
            d = BROKER_CONFIGS.get(key)
            if op in (AlterOp.APPEND, AlterOp.SUBTRACT) and d is not None and d.type != LIST:
                raise KafkaError(
                    ErrorCode.INVALID_CONFIG,
                    f"Config value {AlterOp(op).name.lower()} is not allowed for config key: {key}",
                )
        try:
            new = apply_ops(current, ops, BROKER_CONFIGS)
        except ValueError as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from e
    else:
        new = {key: value for key, _, value in ops if value is not None}
    ctx.controller.alter_broker_configs(node_id, new, validate_only)


def _alter_group(ctx: BrokerContext, name: str, ops: Ops, validate_only: bool) -> None:
    for key, op, _ in ops:
        if op in (AlterOp.APPEND, AlterOp.SUBTRACT):
            raise KafkaError(
                ErrorCode.INVALID_CONFIG,
                f"Config value {AlterOp(op).name.lower()} is not allowed for config key: {key}",
            )
    current = ctx.controller.group_configs.get(name, {})
    new = dict(current)
    for key, op, value in ops:
        if op == AlterOp.DELETE:
            new.pop(key, None)
        elif value is not None:
            new[key] = value
    ctx.controller.alter_group_configs(name, new, validate_only)


def _alter_loggers(ctx: BrokerContext, name: str, ops: Ops, validate_only: bool) -> None:
    # Kafka's RuntimeLoggerManager prints its own id where the received one belongs.
    _node_id(ctx, name, "Unexpected node id. Expected {0}, but received {0}")
    for logger, op, level in ops:
        if op in (AlterOp.APPEND, AlterOp.SUBTRACT):
            raise KafkaError(
                ErrorCode.INVALID_REQUEST,
                f"{AlterOp(op).name} operation is not allowed for the BROKER_LOGGER resource",
            )
        loggers.check(logger, level if op == AlterOp.SET else None)
    if not validate_only:
        for logger, op, level in ops:
            loggers.set_level(logger, level if op == AlterOp.SET else None)


def _alter(
    ctx: BrokerContext, res: _Resource, ops: Ops, incremental: bool, validate_only: bool
) -> None:
    _preprocess(ctx, res, ops, incremental)
    controller = ctx.controller
    name = res.resource_name
    if res.resource_type == TOPIC:
        if incremental:
            controller.incremental_alter_topic_configs(name, ops, validate_only)
        else:
            configs = {key: value for key, _, value in ops}
            controller.alter_topic_configs(name, configs, validate_only)
    elif res.resource_type == BROKER:
        _alter_broker(ctx, name, ops, incremental, validate_only)
    elif res.resource_type == GROUP:
        _alter_group(ctx, name, ops, validate_only)
    else:
        _alter_loggers(ctx, name, ops, validate_only)


# (error, message) per resource, in the request's order
Outcome = tuple[ErrorCode, str | None]


class _Resource(Protocol):
    """A resource of AlterConfigs or IncrementalAlterConfigs."""

    @property
    def resource_type(self) -> int: ...

    @property
    def resource_name(self) -> str: ...


def _authorize(ctx: BrokerContext, header: RequestHeader, res: _Resource) -> None:
    """ALTER_CONFIGS on the topic, or on the cluster for broker and logger resources."""
    if res.resource_type == TOPIC:
        if not allowed(ctx, header, ALTER_CONFIGS, ResourceType.TOPIC, res.resource_name):
            raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    elif res.resource_type in (BROKER, BROKER_LOGGER) and not allowed(ctx, header, ALTER_CONFIGS):
        raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)


def _outcomes(
    ctx: BrokerContext,
    header: RequestHeader,
    resources: Sequence[tuple[_Resource, Ops]],
    incremental: bool,
    validate_only: bool,
) -> list[Outcome]:
    seen = Counter((res.resource_type, res.resource_name) for res, _ in resources)
    out: list[Outcome] = []
    for res, ops in resources:
        code, message = ErrorCode.NONE, None
        try:
            if seen[res.resource_type, res.resource_name] > 1:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST, "Each resource must appear at most once."
                )
            _authorize(ctx, header, res)
            _alter(ctx, res, ops, incremental, validate_only)
        except KafkaError as e:
            code, message = e.code, e.message
        out.append((code, message))
    return out


@handles(ApiKey.ALTER_CONFIGS, versions=(0, 2), flexible_from=2)
def handle_alter(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.AlterConfigsRequest, header, r)
    resources = [(res, [(c.name, 0, c.value) for c in res.configs]) for res in req.resources]
    outcomes = _outcomes(ctx, header, resources, False, req.validate_only)
    result = schemas.AlterConfigsResponse.AlterConfigsResourceResponse
    body = schemas.AlterConfigsResponse(
        throttle_time_ms=0,
        responses=[
            result(
                error_code=code,
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
            )
            for (code, message), res in zip(outcomes, req.resources, strict=True)
        ],
    )
    return spec_response(header, body)


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS, versions=(0, 1), flexible_from=1)
def handle_incremental(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.IncrementalAlterConfigsRequest, header, r)
    resources = [
        (res, [(c.name, c.config_operation, c.value) for c in res.configs]) for res in req.resources
    ]
    outcomes = _outcomes(ctx, header, resources, True, req.validate_only)
    result = schemas.IncrementalAlterConfigsResponse.AlterConfigsResourceResponse
    body = schemas.IncrementalAlterConfigsResponse(
        throttle_time_ms=0,
        responses=[
            result(
                error_code=code,
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
            )
            for (code, message), res in zip(outcomes, req.resources, strict=True)
        ],
    )
    return spec_response(header, body)
