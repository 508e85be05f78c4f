"""ShareGroupHeartbeat (key 76) v1, ShareGroupDescribe (key 77) v1,
DescribeShareGroupOffsets (key 90) v0-1, AlterShareGroupOffsets (key 91) v0,
DeleteShareGroupOffsets (key 92) v0: share groups' membership and their admin (KIP-932).

Behavior:
- Served where the emulated release had share groups enabled (`--kafka-version` 4.2.x, GA);
  4.1.x advertises the APIs as its brokers did, with `share.version` at 0, and answers
  UNSUPPORTED_VERSION as such a broker does.
- ShareGroupHeartbeat: the group's coordinator is found as any group's (FindCoordinator, GROUP
  key); elsewhere NOT_COORDINATOR. Epoch 0 joins (a member id the client chose, or one made
  here), -1 leaves; any other epoch must be the member's (FENCED_MEMBER_EPOCH, or
  UNKNOWN_MEMBER_ID for a member the group does not know). The assignment comes from Kafka's
  simple assignor: with more members than partitions, a partition goes to several members.
  A member silent for group.share.session.timeout.ms is removed; the records it holds are
  released. GROUP_MAX_SIZE_REACHED past group.share.max.size; the id of a classic or KIP-848
  consumer group answers GROUP_ID_NOT_FOUND, as Kafka does for a group of another type.
- ShareGroupDescribe: state Stable/Empty (Dead and GROUP_ID_NOT_FOUND for an unknown group),
  epochs, the "simple" assignor, members with their subscriptions and assignments.
- DescribeShareGroupOffsets: per partition the share-partition start offset as the share
  coordinator persisted it (-1 for a partition with no state, or of a topic that does not
  exist), its leader epoch and (v1) its lag: the records below the high watermark not yet
  delivered to completion (KIP-1226); topics null means every partition with state
  (GROUP_ID_NOT_FOUND for a group with neither members nor state).
- AlterShareGroupOffsets: only while the group has no members (NON_EMPTY_GROUP); each
  partition's state starts again at the given offset under the next state epoch, nothing in
  flight (UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist, INVALID_REQUEST for
  a negative offset). DeleteShareGroupOffsets: likewise only for an empty group (and
  GROUP_ID_NOT_FOUND for one with neither members nor state); a topic's every partition loses
  its state, so that the next fetch starts at `share.auto.offset.reset`.
- Authorization, as Kafka's: DESCRIBE on every topic a ShareGroupHeartbeat subscribes to
  (TOPIC_AUTHORIZATION_FAILED); READ on the group for ShareGroupHeartbeat and
  AlterShareGroupOffsets, DESCRIBE for ShareGroupDescribe (its authorized operations when
  asked for) and DescribeShareGroupOffsets, DELETE for DeleteShareGroupOffsets
  (GROUP_AUTHORIZATION_FAILED); READ on each topic an offset admin API changes, DESCRIBE on
  each it describes (TOPIC_AUTHORIZATION_FAILED).

- Membership is persisted as Kafka 4.2 persists it (the ShareGroup* records of
  `__consumer_offsets`): after a restart or a coordinator failover members carry on at their
  epochs. DescribeGroups answers a share group "Dead" (v6+: GROUP_ID_NOT_FOUND, "is not a
  classic group"); DeleteGroups deletes an empty one with its share-partition state
  (NON_EMPTY_GROUP while it has members); ListGroups lists them (type "share").

Deviations from Kafka/MSK:
- ShareGroupMetadata's MetadataHash is msklite's own hash of the subscribed topics (Kafka's is
  XXH3 over the topics and their racks); ShareGroupStatePartitionMetadata is written only as
  the tombstone of a deleted group, since share-partition leaders initialise their own state.

Version notes:
- v0 of the share APIs was Kafka 4.0's early access, removed in 4.1; v1 is the first stable.
- DescribeShareGroupOffsets v1 (Kafka 4.2): the partition's lag.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from msklite.authz import AclOperation
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import (
    DELETE,
    DESCRIBE,
    GROUP,
    READ,
    TOPIC,
    allowed,
    authorized,
    authorized_operations,
    bits,
)
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.kafka_version import share_groups_enabled
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

if TYPE_CHECKING:  # loaded with the first share request (ctx.share)
    from msklite.coordinator.share_group import ShareGroup
    from msklite.coordinator.share_runtime import ShareGroupRuntime
    from msklite.coordinator.share_state import ShareState

DISABLED = "Share groups are not enabled on this cluster (share.version is 0)."
NOT_REQUESTED = -(1 << 31)


def share_enabled(ctx: BrokerContext) -> bool:
    return share_groups_enabled(ctx.controller.configs.kafka_version)


def _coordinator(ctx: BrokerContext, group_id: str) -> ShareGroupRuntime | None:
    """This broker's share-group runtime if it coordinates `group_id`."""
    runtime = ctx.share.groups
    return runtime if runtime.owns(group_id) else None


@handles(ApiKey.SHARE_GROUP_HEARTBEAT, versions=(1, 1), flexible_from=0)
def share_group_heartbeat(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.ShareGroupHeartbeatRequest, header, r)

    def failed(error: ErrorCode, message: str | None = None) -> list[Buffer]:
        body = schemas.ShareGroupHeartbeatResponse(
            throttle_time_ms=0,
            error_code=error,
            error_message=message,
            member_epoch=-1,
            heartbeat_interval_ms=0,
        )
        return spec_response(header, body)

    if not share_enabled(ctx):
        return failed(ErrorCode.UNSUPPORTED_VERSION, DISABLED)
    if not allowed(ctx, header, READ, GROUP, req.group_id):
        return failed(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    subscribed = set(req.subscribed_topic_names or ())
    if len(authorized(ctx, header, DESCRIBE, TOPIC, subscribed)) < len(subscribed):
        return failed(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    runtime = _coordinator(ctx, req.group_id) if req.group_id else ctx.share.groups
    if runtime is None:
        return failed(ErrorCode.NOT_COORDINATOR)
    if req.group_id and (
        ctx.groups.group(req.group_id) is not None
        or ctx.groups.consumer_group(req.group_id) is not None
    ):
        # one group id, one type: a classic or consumer group's id is not a share group's
        return failed(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {req.group_id} is not a share group.")
    from msklite.coordinator.share_runtime import ensure_share_state_topic

    with contextlib.suppress(KafkaError):  # too few brokers: the first fetch says so
        # made now, as Kafka makes it when a share group starts, so that its leaders are
        # there by the first share fetch
        ensure_share_state_topic(ctx.controller)
    result = runtime.heartbeat(
        req.group_id,
        req.member_id,
        req.member_epoch,
        req.rack_id,
        req.subscribed_topic_names,
        header.client_id or "",
        "/" + header.client_host,
    )
    if result.error != ErrorCode.NONE:
        return failed(result.error, result.message)
    assignment = None
    if result.assignment is not None:
        topic_partitions = schemas.ShareGroupHeartbeatResponse.Assignment.TopicPartitions
        assignment = schemas.ShareGroupHeartbeatResponse.Assignment(
            topic_partitions=[
                topic_partitions(topic_id=tid, partitions=sorted(parts))
                for tid, parts in sorted(result.assignment.items())
            ]
        )
    body = schemas.ShareGroupHeartbeatResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        member_id=result.member_id,
        member_epoch=result.epoch,
        heartbeat_interval_ms=result.heartbeat_interval_ms,
        assignment=assignment,
    )
    return spec_response(header, body)


@handles(ApiKey.SHARE_GROUP_DESCRIBE, versions=(1, 1), flexible_from=0)
def share_group_describe(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.ShareGroupDescribeRequest, header, r)
    described = schemas.ShareGroupDescribeResponse.DescribedGroup
    member_t = described.Member
    topics_by_id = ctx.controller.topics_by_id
    groups = []
    for group_id in req.group_ids:

        def empty(error: ErrorCode, message: str | None, state: str = "") -> None:
            groups.append(
                described(
                    error_code=error,
                    error_message=message,
                    group_id=group_id,  # noqa: B023 - used at once
                    group_state=state,
                    group_epoch=-1,
                    assignment_epoch=-1,
                    assignor_name="",
                    members=[],
                    authorized_operations=NOT_REQUESTED,
                )
            )

        if not share_enabled(ctx):
            empty(ErrorCode.UNSUPPORTED_VERSION, DISABLED)
            continue
        if not group_id:
            empty(ErrorCode.INVALID_GROUP_ID, "The group id must not be empty.")
            continue
        if not allowed(ctx, header, DESCRIBE, GROUP, group_id):
            empty(ErrorCode.GROUP_AUTHORIZATION_FAILED, None)
            continue
        runtime = _coordinator(ctx, group_id)
        if runtime is None:
            empty(ErrorCode.NOT_COORDINATOR, None)
            continue
        group = runtime.group(group_id)
        if group is None:
            empty(ErrorCode.GROUP_ID_NOT_FOUND, f"Group {group_id} not found.", "Dead")
            continue
        members = []
        for m in group.members.values():
            tps = [
                member_t.Assignment.TopicPartitions(
                    topic_id=tid,
                    topic_name=topics_by_id[tid].name if tid in topics_by_id else "",
                    partitions=sorted(parts),
                )
                for tid, parts in sorted(m.assignment.items())
            ]
            members.append(
                member_t(
                    member_id=m.member_id,
                    rack_id=m.rack_id,
                    member_epoch=m.epoch,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    subscribed_topic_names=sorted(m.subscribed),
                    assignment=member_t.Assignment(topic_partitions=tps),
                )
            )
        groups.append(
            described(
                error_code=ErrorCode.NONE,
                error_message=None,
                group_id=group_id,
                group_state=group.state,
                group_epoch=group.epoch,
                assignment_epoch=group.assignment_epoch,
                assignor_name="simple",
                members=members,
                authorized_operations=bits(authorized_operations(ctx, header, GROUP, group_id))
                if req.include_authorized_operations
                else NOT_REQUESTED,
            )
        )
    return spec_response(
        header, schemas.ShareGroupDescribeResponse(throttle_time_ms=0, groups=groups)
    )


@handles(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS, versions=(0, 1), flexible_from=0)
def describe_share_group_offsets(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer]:
    from msklite.coordinator.share_state import ShareKey

    req = spec_request(schemas.DescribeShareGroupOffsetsRequest, header, r)
    resp_t = schemas.DescribeShareGroupOffsetsResponse
    group_t = resp_t.DescribeShareGroupOffsetsResponseGroup
    topic_t = group_t.DescribeShareGroupOffsetsResponseTopic
    part_t = topic_t.DescribeShareGroupOffsetsResponsePartition
    controller = ctx.controller
    groups = []
    for g in req.groups:
        error = _group_error(ctx, header, g.group_id, DESCRIBE)
        # every partition of the group is asked for: the group must exist (named partitions
        # of an unknown group are answered -1, as Kafka answers them)
        if (
            error == ErrorCode.NONE
            and g.topics is None
            and not _share_group_exists(ctx, g.group_id)
        ):
            error = ErrorCode.GROUP_ID_NOT_FOUND
        if error != ErrorCode.NONE:
            groups.append(group_t(group_id=g.group_id, topics=[], error_code=error))
            continue
        persister = ctx.share.persister
        wanted: dict[str, list[int]] = {}
        if g.topics is None:
            for key in persister.keys_of(g.group_id):
                topic = controller.topics_by_id.get(key.topic_id)
                if topic is not None:
                    wanted.setdefault(topic.name, []).append(key.partition)
        else:
            for t in g.topics:
                wanted.setdefault(t.topic_name, []).extend(t.partitions)
        topics = []
        visible = authorized(ctx, header, DESCRIBE, TOPIC, wanted)
        for name, parts in wanted.items():
            topic = controller.topics.get(name)
            out = []
            for p in sorted(parts):
                state = None
                hw = None
                if name not in visible:
                    out.append(
                        part_t(
                            partition_index=p,
                            start_offset=-1,
                            leader_epoch=-1,
                            error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                        )
                    )
                    continue
                if topic is not None and 0 <= p < len(topic.partitions):
                    state = persister.read(ShareKey(g.group_id, topic.topic_id, p))
                    hw = persister.high_watermark(name, p)
                # a topic or partition that does not exist has no state: -1, as in Kafka
                out.append(
                    part_t(
                        partition_index=p,
                        start_offset=state.start_offset if state is not None else -1,
                        leader_epoch=state.leader_epoch if state is not None else -1,
                        lag=_lag(state, hw),
                        error_code=ErrorCode.NONE,
                    )
                )
            topics.append(
                topic_t(
                    topic_name=name,
                    topic_id=topic.topic_id if topic is not None else schemas.ZERO_UUID,
                    partitions=out,
                )
            )
        groups.append(group_t(group_id=g.group_id, topics=topics, error_code=ErrorCode.NONE))
    return spec_response(header, resp_t(throttle_time_ms=0, groups=groups))


def _lag(state: ShareState | None, high_watermark: int | None) -> int:
    """KIP-1226's share-partition lag: the records below the high watermark from the SPSO on
    that are not yet delivered to completion (-1 without state or a live leader)."""
    from msklite.coordinator.share_partition import RecordState

    if state is None or high_watermark is None:
        return -1
    start = state.start_offset
    done = sum(
        min(b.last_offset, high_watermark - 1) - max(b.first_offset, start) + 1
        for b in state.batches
        if b.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)
        and b.last_offset >= start
        and b.first_offset < high_watermark
    )
    return max(high_watermark - start - done, 0)


def _group_error(
    ctx: BrokerContext, header: RequestHeader, group_id: str, operation: AclOperation
) -> ErrorCode:
    """The group-level answer of the admin APIs: authorization comes first, as in Kafka (the
    broker asks before it forwards to the coordinator)."""
    if not share_enabled(ctx):
        return ErrorCode.UNSUPPORTED_VERSION
    if not group_id:
        return ErrorCode.INVALID_GROUP_ID
    if not allowed(ctx, header, operation, GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    if _coordinator(ctx, group_id) is None:
        return ErrorCode.NOT_COORDINATOR
    return ErrorCode.NONE


def share_group(ctx: BrokerContext, group_id: str) -> ShareGroup | None:
    """The share group `group_id`, where share groups are served and this broker coordinates
    it (for the classic group APIs, which see every type of group)."""
    if not share_enabled(ctx):
        return None
    runtime = _coordinator(ctx, group_id)
    return runtime.group(group_id) if runtime is not None else None


def delete_share_group(ctx: BrokerContext, group_id: str) -> ErrorCode:
    """DeleteGroups of a share group, as Kafka's group coordinator deletes one: only while it
    has no members (NON_EMPTY_GROUP); its share-partition state first (Kafka's
    DeleteShareGroupState), then the group's records."""
    group = share_group(ctx, group_id)
    if group is None:
        return ErrorCode.GROUP_ID_NOT_FOUND
    if group.members:
        return ErrorCode.NON_EMPTY_GROUP
    persister = ctx.share.persister
    for key in persister.keys_of(group_id):
        error = persister.reset(key, None)
        if error != ErrorCode.NONE:
            return error
    return ctx.share.groups.delete_group(group_id)


def _share_group_exists(ctx: BrokerContext, group_id: str) -> bool:
    """A group the coordinator knows, or one with persisted share-partition state (the state
    of a group deleted while a coordinator was away may outlive it)."""
    return ctx.share.groups.group(group_id) is not None or bool(
        ctx.share.persister.keys_of(group_id)
    )


def _admin_error(
    ctx: BrokerContext, header: RequestHeader, group_id: str, operation: AclOperation
) -> ErrorCode:
    """The group-level answer of the offset admin APIs: they change only empty groups
    (DeleteShareGroupOffsets, asking DELETE, only groups that exist)."""
    error = _group_error(ctx, header, group_id, operation)
    if error != ErrorCode.NONE:
        return error
    group = ctx.share.groups.group(group_id)
    if group is not None and group.members:
        return ErrorCode.NON_EMPTY_GROUP
    if operation == DELETE and not _share_group_exists(ctx, group_id):
        return ErrorCode.GROUP_ID_NOT_FOUND
    return ErrorCode.NONE


@handles(ApiKey.ALTER_SHARE_GROUP_OFFSETS, versions=(0, 0), flexible_from=0)
def alter_share_group_offsets(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.share_state import ShareKey

    req = spec_request(schemas.AlterShareGroupOffsetsRequest, header, r)
    resp_t = schemas.AlterShareGroupOffsetsResponse
    topic_t = resp_t.AlterShareGroupOffsetsResponseTopic
    part_t = topic_t.AlterShareGroupOffsetsResponsePartition
    error = _admin_error(ctx, header, req.group_id, READ)
    if error != ErrorCode.NONE:
        return spec_response(header, resp_t(throttle_time_ms=0, error_code=error, responses=[]))
    persister = ctx.share.persister
    readable = authorized(ctx, header, READ, TOPIC, (t.topic_name for t in req.topics))
    topics = []
    for t in req.topics:
        topic = ctx.controller.topics.get(t.topic_name)
        parts = []
        for p in t.partitions:
            if t.topic_name not in readable:
                code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif (
                topic is None
                or topic.internal
                or not 0 <= p.partition_index < len(topic.partitions)
            ):
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif p.start_offset < 0:
                code = ErrorCode.INVALID_REQUEST
            else:
                key = ShareKey(req.group_id, topic.topic_id, p.partition_index)
                code = persister.reset(key, p.start_offset)
            parts.append(part_t(partition_index=p.partition_index, error_code=code))
        topics.append(
            topic_t(
                topic_name=t.topic_name,
                topic_id=topic.topic_id if topic is not None else schemas.ZERO_UUID,
                partitions=parts,
            )
        )
    return spec_response(
        header, resp_t(throttle_time_ms=0, error_code=ErrorCode.NONE, responses=topics)
    )


@handles(ApiKey.DELETE_SHARE_GROUP_OFFSETS, versions=(0, 0), flexible_from=0)
def delete_share_group_offsets(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer]:
    from msklite.coordinator.share_state import ShareKey

    req = spec_request(schemas.DeleteShareGroupOffsetsRequest, header, r)
    resp_t = schemas.DeleteShareGroupOffsetsResponse
    topic_t = resp_t.DeleteShareGroupOffsetsResponseTopic
    error = _admin_error(ctx, header, req.group_id, DELETE)
    if error != ErrorCode.NONE:
        return spec_response(header, resp_t(throttle_time_ms=0, error_code=error, responses=[]))
    persister = ctx.share.persister
    readable = authorized(ctx, header, READ, TOPIC, (t.topic_name for t in req.topics))
    topics = []
    for t in req.topics:
        topic = ctx.controller.topics.get(t.topic_name)
        if t.topic_name not in readable:
            topics.append(
                topic_t(
                    topic_name=t.topic_name,
                    topic_id=schemas.ZERO_UUID,
                    error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                )
            )
            continue
        if topic is None or topic.internal:
            topics.append(
                topic_t(
                    topic_name=t.topic_name,
                    topic_id=schemas.ZERO_UUID,
                    error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                )
            )
            continue
        code = ErrorCode.NONE
        for index in range(len(topic.partitions)):
            key = ShareKey(req.group_id, topic.topic_id, index)
            code = persister.reset(key, None) or code
        topics.append(topic_t(topic_name=t.topic_name, topic_id=topic.topic_id, error_code=code))
    return spec_response(
        header, resp_t(throttle_time_ms=0, error_code=ErrorCode.NONE, responses=topics)
    )
