"""OffsetCommit (key 8) v2-9, OffsetFetch (key 9) v1-9, OffsetDelete (key 47) v0.

Behavior:
- OffsetCommit: members commit with their generation (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
  FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS while CompletingRebalance); standalone consumers
  commit with generation -1 and no member id, to a group without members. Unknown topics or
  partitions: UNKNOWN_TOPIC_OR_PARTITION; metadata over offset.metadata.max.bytes:
  OFFSET_METADATA_TOO_LARGE. Each commit is written to `__consumer_offsets` before the answer.
  retention_time_ms (v2-v4) sets an explicit expiry, as in Kafka.
- OffsetFetch: committed offset, leader epoch (v5+) and metadata; -1 where nothing is
  committed; all partitions of the group when topics is null (v2+); several groups at once
  (v8+), each with its own error.
- KIP-848 consumer groups: OffsetCommit carries the member id and member epoch (v9+; an older
  version from a consumer-protocol member is UNSUPPORTED_VERSION), UNKNOWN_MEMBER_ID for a
  stranger, STALE_MEMBER_EPOCH for another epoch; epoch -1 commits only to an empty group.
  OffsetFetch v9+ checks a named member the same way (epoch -1 without a member id: anyone).
- OffsetDelete: removes offsets of topics the group does not subscribe to
  (GROUP_SUBSCRIBED_TO_TOPIC otherwise); GROUP_ID_NOT_FOUND; NON_EMPTY_GROUP for an active
  group that is not a consumer group.
- Authorization, as Kafka's: OffsetCommit READ on the group (every partition
  GROUP_AUTHORIZATION_FAILED) and on each topic (TOPIC_AUTHORIZATION_FAILED); OffsetFetch
  DESCRIBE on the group (the group's error) and on each topic (named: TOPIC_AUTHORIZATION_FAILED,
  all: left out); OffsetDelete DELETE on the group (the top-level error), READ on each topic.
- All of them: NOT_COORDINATOR from a broker other than the group's coordinator.
- require_stable (OffsetFetch v7+): UNSTABLE_OFFSET_COMMIT for a partition with a pending
  transactional offset, as Kafka answers (clients retry until the marker lands).

Deviations from Kafka/MSK:
- OffsetCommit v10 and OffsetFetch v10 (topic ids) are not served (no Kafka release MSK
  offers advertises them).
- OffsetFetch v9's member id and epoch are checked for consumer groups only, not classic ones.

Version notes:
- OffsetCommit: v2-v4 retention_time_ms, v6 committed_leader_epoch, v7 group_instance_id,
  v8 flexible (the generation field is named generation_id_or_member_epoch).
- OffsetFetch: v1 has no group-level error (partitions carry it), v2 null topics means all and
  a group error, v5 committed_leader_epoch, v7 require_stable, v8 several groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from msklite.errors import ErrorCode
from msklite.handlers.authorization import DELETE, DESCRIBE, GROUP, READ, TOPIC, allowed, authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.groups import coordinator_error
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.topic_partition import TopicPartition


def _partition_exists(ctx: BrokerContext, topic: str, partition: int) -> bool:
    t = ctx.controller.topics.get(topic)
    return t is not None and 0 <= partition < len(t.partitions)


class _Partition(Protocol):
    @property
    def partition_index(self) -> int: ...


class _Topic(Protocol):
    """A requested topic of OffsetCommit or OffsetDelete."""

    @property
    def name(self) -> str: ...

    @property
    def partitions(self) -> Sequence[_Partition]: ...


def _partition_errors(
    topics: Sequence[_Topic], errors: dict[tuple[str, int], ErrorCode]
) -> list[tuple[str, list[tuple[int, ErrorCode]]]]:
    """Each topic's partitions with their error codes, in the request's order."""
    return [
        (t.name, [(p.partition_index, errors[(t.name, p.partition_index)]) for p in t.partitions])
        for t in topics
    ]


Committed = schemas.OffsetCommitResponse.OffsetCommitResponseTopic
Deleted = schemas.OffsetDeleteResponse.OffsetDeleteResponseTopic
Fetched = schemas.OffsetFetchResponse.OffsetFetchResponseTopic
FetchedGroup = schemas.OffsetFetchResponse.OffsetFetchResponseGroup


@handles(ApiKey.OFFSET_COMMIT, versions=(2, 9), flexible_from=8)
def offset_commit(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.coordinator import OffsetCommit  # lazily: see ctx.groups

    v = header.api_version
    req = spec_request(schemas.OffsetCommitRequest, header, r)
    errors: dict[tuple[str, int], ErrorCode] = {}
    valid: list[OffsetCommit] = []
    group_error = (
        coordinator_error(ctx, req.group_id)
        if allowed(ctx, header, READ, GROUP, req.group_id)
        else ErrorCode.GROUP_AUTHORIZATION_FAILED
    )
    readable = authorized(ctx, header, READ, TOPIC, [t.name for t in req.topics])
    for t in req.topics:
        for p in t.partitions:
            tp = (t.name, p.partition_index)
            if group_error != ErrorCode.NONE:
                errors[tp] = group_error
            elif t.name not in readable:
                errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif not _partition_exists(ctx, *tp):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                valid.append(
                    OffsetCommit(
                        t.name,
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch if v >= 6 else -1,
                        p.committed_metadata,
                    )
                )
    if valid:
        results = ctx.groups.commit(
            req.group_id,
            req.generation_id_or_member_epoch,
            req.member_id,
            req.group_instance_id if v >= 7 else None,
            valid,
            req.retention_time_ms if v <= 4 else -1,
            api_version=v,
        )
        for o, e in zip(valid, results, strict=True):
            errors[(o.topic, o.partition)] = e
    topics = [
        Committed(
            name=name,
            partitions=[
                Committed.OffsetCommitResponsePartition(partition_index=p, error_code=e)
                for p, e in parts
            ],
        )
        for name, parts in _partition_errors(req.topics, errors)
    ]
    return spec_response(header, schemas.OffsetCommitResponse(throttle_time_ms=0, topics=topics))


Row = tuple[int, int, int, str, ErrorCode]


class _FetchTopic(Protocol):
    """A requested topic of OffsetFetch (before v8, or of one group from v8)."""

    @property
    def name(self) -> str: ...

    @property
    def partition_indexes(self) -> Sequence[int]: ...


def _fetch_group(
    ctx: BrokerContext,
    header: RequestHeader,
    group_id: str,
    topics: Sequence[_FetchTopic] | None,
    require_stable: bool,
    member: tuple[str | None, int] = (None, -1),
) -> tuple[ErrorCode, list[tuple[str, list[Row]]]]:
    """(group error, [(topic, [(partition, offset, leader epoch, metadata, error)])]).
    Topics the principal may not DESCRIBE: TOPIC_AUTHORIZATION_FAILED when named, left out
    when all are asked for. `member`: the (member id, member epoch) of OffsetFetch v9+."""
    if not allowed(ctx, header, DESCRIBE, GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, []
    error = coordinator_error(ctx, group_id)
    if error == ErrorCode.NONE:
        error = ctx.groups.validate_fetch(group_id, *member)
    if error != ErrorCode.NONE:
        return error, []
    denied: set[str] = set()
    requested = topics or []
    if topics is not None:
        names = {t.name for t in topics}
        denied = names - authorized(ctx, header, DESCRIBE, TOPIC, names)
        topics = [t for t in topics if t.name not in denied]
    unstable = ctx.groups.unstable_partitions(group_id) if require_stable else set()
    wanted = (
        None
        if topics is None
        else [TopicPartition(t.name, p) for t in topics for p in t.partition_indexes]
    )
    by_topic: dict[str, list[Row]] = {}
    for topic, partition, o in ctx.groups.fetch_offsets(group_id, wanted):
        row: Row
        if (topic, partition) in unstable:
            row = (partition, -1, -1, "", ErrorCode.UNSTABLE_OFFSET_COMMIT)
        elif o is None:
            row = (partition, -1, -1, "", ErrorCode.NONE)
        else:
            row = (partition, o.offset, o.leader_epoch, o.metadata, ErrorCode.NONE)
        by_topic.setdefault(topic, []).append(row)
    if topics is None:
        visible = authorized(ctx, header, DESCRIBE, TOPIC, by_topic)
        return ErrorCode.NONE, [(t, rows) for t, rows in by_topic.items() if t in visible]
    for name in denied:
        by_topic[name] = [
            (p, -1, -1, "", ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            for t in requested
            if t.name == name
            for p in t.partition_indexes
        ]
    return ErrorCode.NONE, list(by_topic.items())


@handles(ApiKey.OFFSET_FETCH, versions=(1, 9), flexible_from=6)
def offset_fetch(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = spec_request(schemas.OffsetFetchRequest, header, r)
    if v >= 8:
        topic_cls = FetchedGroup.OffsetFetchResponseTopics
        part_cls = topic_cls.OffsetFetchResponsePartitions
        groups = []
        for g in req.groups:
            member = (g.member_id, g.member_epoch) if v >= 9 else (None, -1)
            error, rows = _fetch_group(
                ctx, header, g.group_id, g.topics, req.require_stable, member
            )
            groups.append(
                FetchedGroup(
                    group_id=g.group_id,
                    error_code=error,
                    topics=[
                        topic_cls(
                            name=topic,
                            partitions=[
                                part_cls(
                                    partition_index=p,
                                    committed_offset=off,
                                    committed_leader_epoch=epoch,
                                    metadata=meta,
                                    error_code=code,
                                )
                                for p, off, epoch, meta, code in parts
                            ],
                        )
                        for topic, parts in rows
                    ],
                )
            )
        return spec_response(header, schemas.OffsetFetchResponse(throttle_time_ms=0, groups=groups))
    error, rows = _fetch_group(ctx, header, req.group_id, req.topics, v >= 7 and req.require_stable)
    if error != ErrorCode.NONE and v < 2:
        # v1 has no group-level error: every requested partition carries it
        rows = [
            (t.name, [(p, -1, -1, "", error) for p in t.partition_indexes])
            for t in req.topics or []
        ]
    topics = [
        Fetched(
            name=topic,
            partitions=[
                Fetched.OffsetFetchResponsePartition(
                    partition_index=p,
                    committed_offset=off,
                    committed_leader_epoch=epoch,
                    metadata=meta,
                    error_code=code,
                )
                for p, off, epoch, meta, code in parts
            ],
        )
        for topic, parts in rows
    ]
    body = schemas.OffsetFetchResponse(throttle_time_ms=0, topics=topics, error_code=error)
    return spec_response(header, body)


@handles(ApiKey.OFFSET_DELETE, versions=(0, 0), flexible_from=None)
def offset_delete(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.OffsetDeleteRequest, header, r)
    requested = [
        TopicPartition(t.name, p.partition_index) for t in req.topics for p in t.partitions
    ]
    errors: dict[tuple[str, int], ErrorCode] = {}
    if not allowed(ctx, header, DELETE, GROUP, req.group_id):
        error = ErrorCode.GROUP_AUTHORIZATION_FAILED
    else:
        error = coordinator_error(ctx, req.group_id) if req.group_id else ErrorCode.NONE
    if error == ErrorCode.NONE:
        readable = authorized(ctx, header, READ, TOPIC, [t.name for t in req.topics])
        known = [tp for tp in requested if tp.topic in readable and _partition_exists(ctx, *tp)]
        errors = dict.fromkeys(requested, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        errors.update(
            (tp, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            for tp in requested
            if tp.topic not in readable
        )
        error, results = ctx.groups.delete_offsets(req.group_id, known)
        errors.update(zip(known, results, strict=False))
    topics = [
        Deleted(
            name=name,
            partitions=[
                Deleted.OffsetDeleteResponsePartition(partition_index=p, error_code=e)
                for p, e in parts
            ],
        )
        for name, parts in (
            _partition_errors(req.topics, errors) if error == ErrorCode.NONE else []
        )
    ]
    body = schemas.OffsetDeleteResponse(throttle_time_ms=0, error_code=error, topics=topics)
    return spec_response(header, body)
