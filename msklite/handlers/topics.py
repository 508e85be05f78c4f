"""CreateTopics (key 19) v2-7, DeleteTopics (key 20) v1-6, CreatePartitions (key 37) v0-3.

Behavior:
- CreateTopics: name rules and '.'/'_' collisions (INVALID_TOPIC_EXCEPTION),
  TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, manual assignments
  (INVALID_REPLICA_ASSIGNMENT; INVALID_REQUEST with counts as well), configs checked against
  the registry (INVALID_CONFIG), a name twice in one request (INVALID_REQUEST), validate_only.
  v5+ returns the topic's effective configs with their sources; v7+ its topic id.
- DeleteTopics: by name, or by id (v6+: UNKNOWN_TOPIC_ID); TOPIC_DELETION_DISABLED when
  delete.topic.enable=false. The partitions' logs are removed at once.
- CreatePartitions: INVALID_PARTITIONS when not growing, assignments checked, validate_only.
- One request creates at most 10,000 partitions, as in KRaft (Controller.create_topics,
  create_partitions): a larger CreateTopics fails as a whole with POLICY_VIOLATION, a
  CreatePartitions topic past the limit with UNKNOWN_SERVER_ERROR, validate_only included;
  DeleteTopics removes at most 10,000 topics, the rest answer UNKNOWN_SERVER_ERROR.
- Authorization, as Kafka's: CreateTopics needs CREATE on the cluster or on the topic
  (TOPIC_AUTHORIZATION_FAILED) and reports a created topic's configs only with
  DESCRIBE_CONFIGS on it (else topic_config_error_code TOPIC_AUTHORIZATION_FAILED);
  DeleteTopics DELETE on the topic (by id: DESCRIBE too); CreatePartitions ALTER on it.
- The controller answers synchronously, so timeout_ms never expires.

Deviations from Kafka/MSK:
- Replication factor above 1 is refused (INVALID_REPLICATION_FACTOR) until replication lands.
"""

from __future__ import annotations

import uuid
from collections import Counter

from msklite.config import TOPIC_CONFIGS, ConfigSource
from msklite.controller import MAX_RECORDS_PER_USER_OP, NewTopic, TopicState
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import (
    ALTER,
    CREATE,
    DELETE,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    TOPIC,
    allowed,
    authorized,
)
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

_NO_ID = uuid.UUID(int=0)
Created = schemas.CreateTopicsResponse.CreatableTopicResult


def _config_results(ctx: BrokerContext, topic: TopicState) -> list[Created.CreatableTopicConfigs]:
    out = []
    for name in TOPIC_CONFIGS:
        value: str | None
        if name in topic.configs:
            value, source = topic.configs[name], ConfigSource.TOPIC_CONFIG
        else:
            value, source, _ = ctx.controller.configs.topic_default(name)
        out.append(
            Created.CreatableTopicConfigs(
                name=name,
                value=value,
                read_only=False,
                config_source=int(source),
                is_sensitive=False,
            )
        )
    return out


@handles(ApiKey.CREATE_TOPICS, versions=(2, 7), flexible_from=5)
def create_topics(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.CreateTopicsRequest, header, r)
    counts = Counter(t.name for t in req.topics)
    names = [t.name for t in req.topics if counts[t.name] == 1]
    may_create = (
        set(names)
        if allowed(ctx, header, CREATE)
        else authorized(ctx, header, CREATE, TOPIC, names)
    )
    may_describe_configs = authorized(ctx, header, DESCRIBE_CONFIGS, TOPIC, names)
    # Kafka leaves a name asked for twice out of the controller's request (and its counts).
    wanted = [
        NewTopic(
            t.name,
            t.num_partitions,
            t.replication_factor,
            {a.partition_index: list(a.broker_ids) for a in t.assignments or []} or None,
            {c.name: c.value for c in t.configs or []},
        )
        for t in req.topics
        if counts[t.name] == 1 and t.name in may_create
    ]
    outcomes: dict[str, TopicState | KafkaError]
    try:
        created = ctx.controller.create_topics(wanted, bool(req.validate_only))
        outcomes = {t.name: o for t, o in zip(wanted, created, strict=True)}
    except KafkaError as e:  # the request as a whole (too large, or its save failed)
        outcomes = dict.fromkeys(counts, e)
    for name in names:
        if name not in may_create:
            outcomes[name] = KafkaError(
                ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."
            )
    results = []
    for t in req.topics:
        res = Created(
            name=t.name,
            topic_id=_NO_ID,
            error_code=0,
            error_message=None,
            num_partitions=-1,
            replication_factor=-1,
            configs=None,
        )
        outcome = outcomes.get(t.name) or KafkaError(
            ErrorCode.INVALID_REQUEST,
            f"Create topics request contains multiple entries for the topic {t.name}",
        )
        if isinstance(outcome, KafkaError):
            res.error_code = outcome.code
            res.error_message = outcome.message
        else:
            res.topic_id = outcome.topic_id
            res.num_partitions = len(outcome.partitions)
            res.replication_factor = (
                len(outcome.partitions[0].replicas)
                if outcome.partitions[0].replicas
                else ctx.controller.configs.get_int("default.replication.factor")
                if t.replication_factor == -1
                else t.replication_factor
            )
            if t.name in may_describe_configs:
                res.configs = _config_results(ctx, outcome)
            else:
                res.topic_config_error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        results.append(res)
    return spec_response(header, schemas.CreateTopicsResponse(throttle_time_ms=0, topics=results))


@handles(ApiKey.DELETE_TOPICS, versions=(1, 6), flexible_from=4)
def delete_topics(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DeleteTopicsRequest, header, r)
    wanted: list[tuple[str | None, uuid.UUID]] = (
        [(t.name, t.topic_id) for t in req.topics]
        if header.api_version >= 6
        else [(name, _NO_ID) for name in req.topic_names]
    )
    results = []
    room = MAX_RECORDS_PER_USER_OP  # topics the request may still remove
    by_ids = {i: ctx.controller.topics_by_id.get(i) for n, i in wanted if n is None}
    known = [n for n, _ in wanted if n is not None]
    known += [t.name for t in by_ids.values() if t is not None]
    may_delete = authorized(ctx, header, DELETE, TOPIC, known)
    may_describe = authorized(ctx, header, DESCRIBE, TOPIC, [t.name for t in by_ids.values() if t])
    for name, topic_id in wanted:
        code, message = ErrorCode.NONE, None
        try:
            if name is None:
                by_id = by_ids[topic_id]
                if by_id is None:
                    raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID)
                if by_id.name not in may_describe:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                name = by_id.name
            if name not in may_delete:
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            topic_id = ctx.controller.delete_topic(name, room).topic_id
            room -= 1
        except KafkaError as e:
            code, message = e.code, e.message
        results.append(
            schemas.DeleteTopicsResponse.DeletableTopicResult(
                name=name, topic_id=topic_id, error_code=code, error_message=message
            )
        )
    return spec_response(
        header, schemas.DeleteTopicsResponse(throttle_time_ms=0, responses=results)
    )


@handles(ApiKey.CREATE_PARTITIONS, versions=(0, 3), flexible_from=2)
def create_partitions(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.CreatePartitionsRequest, header, r)
    counts = Counter(t.name for t in req.topics)
    room = MAX_RECORDS_PER_USER_OP  # partition records the request may still add
    may_alter = authorized(ctx, header, ALTER, TOPIC, counts)
    results = []
    for t in req.topics:
        code, message = ErrorCode.NONE, None
        try:
            if counts[t.name] > 1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"Duplicate topic {t.name} in request")
            if t.name not in may_alter:
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            assignments = (
                None if t.assignments is None else [list(a.broker_ids) for a in t.assignments]
            )
            room -= ctx.controller.create_partitions(
                t.name, t.count, assignments, bool(req.validate_only), room
            )
        except KafkaError as e:
            code, message = e.code, e.message
            if code == ErrorCode.UNKNOWN_SERVER_ERROR:
                room = 0  # Kafka's record list stays full: every later topic fails too
        results.append(
            schemas.CreatePartitionsResponse.CreatePartitionsTopicResult(
                name=t.name, error_code=code, error_message=message
            )
        )
    return spec_response(
        header, schemas.CreatePartitionsResponse(throttle_time_ms=0, results=results)
    )
