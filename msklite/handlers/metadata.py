"""Metadata (key 3), versions 0-12; DescribeCluster (key 60), versions 0-1.

Behavior:
- All topics when the request's topic list is null (v0: empty), internal ones included.
- Unknown topics: UNKNOWN_TOPIC_OR_PARTITION, or — when `auto.create.topics.enable` (false on
  MSK) and the request allows it (v4+ flag; always before v4) — created with the defaults.
  Topics requested by id (v10+) that do not exist: UNKNOWN_TOPIC_ID.
- Brokers: live brokers only; a partition whose leader is down reports leader -1 and
  LEADER_NOT_AVAILABLE; replicas on stopped brokers or in an offline log directory are listed
  in offline_replicas (v5+).
- Authorization (msklite.authz), as Kafka's: all topics lists only those the principal may
  DESCRIBE; a named topic it may not describe is TOPIC_AUTHORIZATION_FAILED whether or not
  it exists (by id: the id is answered, not the name); auto-creation needs CREATE on the
  cluster or on the topic (TOPIC_AUTHORIZATION_FAILED, nothing created). Authorized
  operations (v8+), when asked for, are the principal's (the cluster's only if it may
  DESCRIBE the cluster, else none); DescribeCluster reports them likewise.
- Encoded from cached per-topic fragments, invalidated when the controller changes the topic.

Deviations from Kafka/MSK:
- An auto-created topic is answered with its partitions at once, not LEADER_NOT_AVAILABLE
  first: its leaders exist as soon as it is created.
"""

from __future__ import annotations

import uuid

from msklite.authz import CLUSTER_NAME, AclOperation, ResourceType
from msklite.controller import NewTopic, TopicState, validate_topic_name
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import allowed, authorized, authorized_operations, bits
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import metadata as codec
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

TOPIC = ResourceType.TOPIC
DESCRIBE, CREATE = AclOperation.DESCRIBE, AclOperation.CREATE
_NO_ID = uuid.UUID(int=0)


def _error_fragment(version: int, code: ErrorCode, name: str, topic_id: uuid.UUID) -> bytes:
    return codec.encode_topic(version, code, name, topic_id, False, [])


def controller_id(ctx: BrokerContext) -> int:
    alive = [b.node_id for b in ctx.controller.brokers.values() if b.alive]
    return min(alive) if alive else -1


def _auto_create(ctx: BrokerContext, names: list[str | None]) -> dict[str, TopicState | KafkaError]:
    """Create the unknown topics of one Metadata request as one CreateTopics, as Kafka's
    AutoTopicCreationManager does: one request too large for a metadata batch (10,000
    partitions) creates none of them, and they stay LEADER_NOT_AVAILABLE, Kafka's answer for a
    topic being created."""
    controller = ctx.controller
    out: dict[str, TopicState | KafkaError] = {}
    missing: list[NewTopic] = []
    for name in dict.fromkeys(names):
        if name is None or name in controller.topics:
            continue
        try:
            validate_topic_name(name)
        except KafkaError as e:
            out[name] = e
            continue
        missing.append(NewTopic(name))
    if not missing:
        return out
    try:
        results = controller.create_topics(missing)
    except KafkaError as e:
        too_large = e.code == ErrorCode.POLICY_VIOLATION
        results = [KafkaError(ErrorCode.LEADER_NOT_AVAILABLE) if too_large else e] * len(missing)
    out.update(zip((t.name for t in missing), results, strict=True))
    return out


@handles(ApiKey.METADATA, versions=(0, 12), flexible_from=codec.FLEXIBLE_FROM)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = codec.decode_request(r, v)
    controller = ctx.controller
    cache = ctx.metadata_cache
    with_ops = req.include_topic_authorized_operations

    def fragment(topic: TopicState) -> bytes:
        if not with_ops:
            return cache.fragment(topic, v)
        return cache.fragment(topic, v, bits(authorized_operations(ctx, header, TOPIC, topic.name)))

    fragments: list[bytes] = []
    if req.topics is None:
        # all topics: those the principal may not describe are left out
        topics = controller.topics.values()
        if ctx.authorizer.allows_everything(header):
            fragments = [fragment(t) for t in topics]
        else:
            visible = authorized(ctx, header, DESCRIBE, TOPIC, controller.topics)
            fragments = [fragment(t) for t in topics if t.name in visible]
    else:
        names = [w.name for w in req.topics if w.name is not None]
        ids = [w.topic_id for w in req.topics if w.name is None]
        by_id = {i: controller.topics_by_id.get(i or _NO_ID) for i in ids}
        describable = authorized(
            ctx, header, DESCRIBE, TOPIC, [*names, *(t.name for t in by_id.values() if t)]
        )
        auto_create = controller.configs.get_bool("auto.create.topics.enable") and (
            req.allow_auto_topic_creation or v < 4
        )
        denied_create: set[str] = set()
        created: dict[str, TopicState | KafkaError] = {}
        if auto_create:
            missing = [n for n in names if n in describable and n not in controller.topics]
            if missing and not allowed(ctx, header, CREATE):
                denied_create = set(missing) - authorized(ctx, header, CREATE, TOPIC, missing)
            created = _auto_create(ctx, [n for n in missing if n not in denied_create])
        for wanted in req.topics:
            if wanted.name is None:
                topic_id = wanted.topic_id or _NO_ID
                found = by_id[wanted.topic_id]
                if found is None:
                    fragments.append(_error_fragment(v, ErrorCode.UNKNOWN_TOPIC_ID, "", topic_id))
                elif found.name not in describable:
                    # topic ids are not secret: the id is answered, the name is not
                    fragments.append(
                        _error_fragment(v, ErrorCode.TOPIC_AUTHORIZATION_FAILED, "", topic_id)
                    )
                else:
                    fragments.append(fragment(found))
                continue
            if wanted.name not in describable or wanted.name in denied_create:
                # whether it exists is not disclosed
                fragments.append(
                    _error_fragment(v, ErrorCode.TOPIC_AUTHORIZATION_FAILED, wanted.name, _NO_ID)
                )
                continue
            topic = controller.topics.get(wanted.name)
            outcome = created.get(wanted.name)
            if isinstance(outcome, KafkaError):
                fragments.append(_error_fragment(v, outcome.code, wanted.name, _NO_ID))
                continue
            if topic is None:
                fragments.append(
                    _error_fragment(v, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, wanted.name, _NO_ID)
                )
            else:
                fragments.append(fragment(topic))
    brokers = [
        codec.BrokerMetadata(b.node_id, b.host, b.port_for(header.listener), b.rack)
        for b in controller.brokers.values()
        if b.alive
    ]
    cluster_ops = (
        bits(_cluster_operations(ctx, header))
        if req.include_cluster_authorized_operations
        else codec.AUTHORIZED_OPERATIONS_OMITTED
    )
    return list(
        codec.encode_response(
            v, brokers, controller.cluster_id, controller_id(ctx), fragments, cluster_ops
        )
    )


def _cluster_operations(ctx: BrokerContext, header: RequestHeader) -> set[int]:
    """What the principal may do to the cluster; nothing unless it may describe it."""
    if not allowed(ctx, header, DESCRIBE):
        return set()
    return authorized_operations(ctx, header, ResourceType.CLUSTER, CLUSTER_NAME)


@handles(ApiKey.DESCRIBE_CLUSTER, versions=(0, 1), flexible_from=0)
def describe_cluster(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeClusterRequest, header, r)
    endpoint_type = req.endpoint_type  # v1+; 1 (brokers) before
    if endpoint_type != 1:  # 1 = brokers; 2 = controllers, which KRaft clients ask controllers for
        body = schemas.DescribeClusterResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message="The endpoint type is not supported by brokers",
            endpoint_type=endpoint_type,
            cluster_id=ctx.controller.cluster_id,
            controller_id=-1,
            brokers=[],
        )
        return spec_response(header, body)
    body = schemas.DescribeClusterResponse(
        throttle_time_ms=0,
        error_code=0,
        error_message=None,
        endpoint_type=1,
        cluster_id=ctx.controller.cluster_id,
        controller_id=controller_id(ctx),
        brokers=[
            schemas.DescribeClusterResponse.DescribeClusterBroker(
                broker_id=b.node_id,
                host=b.host,
                port=b.port_for(header.listener),
                rack=b.rack,
            )
            for b in ctx.controller.brokers.values()
            if b.alive
        ],
        # kafka-python encodes this bitfield from a set of operation codes; None is Kafka's
        # "not requested" (INT32_MIN).
        authorized_operations=(
            _cluster_operations(ctx, header) if req.include_cluster_authorized_operations else None
        ),
    )
    return spec_response(header, body)
