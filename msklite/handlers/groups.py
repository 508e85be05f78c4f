"""FindCoordinator (key 10) v0-6, JoinGroup (key 11) v0-9, Heartbeat (key 12) v0-4,
LeaveGroup (key 13) v0-5, SyncGroup (key 14) v0-5, DescribeGroups (key 15) v0-6,
ListGroups (key 16) v0-5, DeleteGroups (key 42) v0-2.

Behavior:
- FindCoordinator: a GROUP key's coordinator is the leader of `__consumer_offsets` partition
  abs(Java hashCode(group id)) % partitions, a TRANSACTION key's the leader of
  `__transaction_state`'s (each topic created on its first lookup), as in Kafka; v4+ answers
  each batched key.
- Every group request sent to another broker than the group's coordinator gets
  NOT_COORDINATOR (per group for DescribeGroups and DeleteGroups).
- Join/Sync/Heartbeat/Leave follow Kafka's classic GroupCoordinator (`msklite.coordinator`):
  MEMBER_ID_REQUIRED on a first join from v4 (KIP-394), static members (KIP-345,
  FENCED_INSTANCE_ID), group.initial.rebalance.delay.ms, session and rebalance timeouts,
  INVALID_SESSION_TIMEOUT outside group.min/max.session.timeout.ms, protocol selection by vote;
  member metadata and assignments are relayed byte for byte. JoinGroup and SyncGroup answer
  when the rebalance gets there, which may be long after the request.
- JoinGroup v9 sets skip_assignment for a static leader rejoining a Stable group; a share
  group's id gets INCONSISTENT_GROUP_PROTOCOL.
- DescribeGroups: Kafka's state names; protocol, metadata and assignments only when Stable;
  an unknown group is "Dead" (v6+: GROUP_ID_NOT_FOUND, KIP-1043), and so are a KIP-848
  consumer group and a share group (v6+: "is not a classic group"; ConsumerGroupDescribe and
  ShareGroupDescribe describe them).
- ListGroups: the groups this broker coordinates, with states_filter (v4+, case-insensitive)
  and types_filter (v5+): classic groups, KIP-848 consumer groups (protocol type and group type
  "consumer", states Empty/Assigning/Reconciling/Stable), and share groups (protocol type and
  group type "share", states Stable/Empty).
- DeleteGroups: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP while members remain; otherwise writes
  tombstones for the group and its offsets. A share group (KIP-932) is deleted with its
  share-partition state in `__share_group_state`.

- Authorization, as Kafka's: FindCoordinator DESCRIBE on the group or transactional id
  (GROUP_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED); Join/Sync/Heartbeat/Leave READ on the group;
  DescribeGroups DESCRIBE on each group (its authorized operations the principal's);
  ListGroups all groups with DESCRIBE on the cluster, else those it may DESCRIBE;
  DeleteGroups DELETE on each group (GROUP_AUTHORIZATION_FAILED).

Deviations from Kafka/MSK:
- FindCoordinator for SHARE keys (KIP-932) gets INVALID_REQUEST.
- JoinGroup to a KIP-848 consumer group with members gets INCONSISTENT_GROUP_PROTOCOL (Kafka
  4.x lets the classic member join it); an empty one becomes a classic group.

Version notes:
- FindCoordinator: v1 key_type, v3 flexible, v4 batched coordinator_keys.
- JoinGroup: v0 has no rebalance timeout (the session timeout stands in), v4 MEMBER_ID_REQUIRED,
  v5 group_instance_id, v6 flexible, v7 protocol_type in the response (protocol_name nullable),
  v9 skip_assignment.
- SyncGroup: v3 group_instance_id, v5 protocol_type/name checked (INCONSISTENT_GROUP_PROTOCOL).
- LeaveGroup: v0-v2 one member, its error is the response's; v3+ a batch, errors per member.
- DescribeGroups: v3 authorized operations, v4 group_instance_id, v6 GROUP_ID_NOT_FOUND.
- ListGroups: v4 states_filter, v5 types_filter and group_type.
"""

from __future__ import annotations

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import (
    DELETE,
    DESCRIBE,
    GROUP,
    READ,
    TRANSACTIONAL_ID,
    allowed,
    authorized,
    authorized_operations,
)
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.kafka_version import share_groups_enabled
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

GROUP_KEY, TRANSACTION_KEY = 0, 1


def coordinator_error(ctx: BrokerContext, group_id: str) -> ErrorCode:
    """NOT_COORDINATOR unless this broker coordinates `group_id`."""
    return ErrorCode.NONE if ctx.groups.owns(group_id) else ErrorCode.NOT_COORDINATOR


# ---- FindCoordinator ----


def _find(
    ctx: BrokerContext, header: RequestHeader, key: str, key_type: int
) -> tuple[ErrorCode, str | None, int, str, int]:
    """(error, message, node id, host, port) of the coordinator for one key."""
    from msklite.coordinator.group_runtime import ensure_offsets_topic  # lazily: see ctx.groups
    from msklite.coordinator.txn_runtime import ensure_txn_topic

    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        return ErrorCode.INVALID_REQUEST, f"unsupported key type {key_type}", -1, "", -1
    if key_type == TRANSACTION_KEY and not key:
        return ErrorCode.INVALID_REQUEST, "empty transactional id", -1, "", -1
    if key_type == GROUP_KEY and not allowed(ctx, header, DESCRIBE, GROUP, key):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED, None, -1, "", -1
    if key_type == TRANSACTION_KEY and not allowed(ctx, header, DESCRIBE, TRANSACTIONAL_ID, key):
        return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None, -1, "", -1
    try:
        if key_type == GROUP_KEY:
            topic = ensure_offsets_topic(ctx.controller)
            partition = ctx.groups.partition_for(key)
        else:
            topic = ensure_txn_topic(ctx.controller)
            partition = ctx.txn.partition_for(key)
    except KafkaError as e:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, e.message, -1, "", -1
    leader = topic.partitions[partition].leader
    broker = ctx.controller.brokers.get(leader)
    if broker is None or not broker.alive:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, None, -1, "", -1
    return ErrorCode.NONE, None, broker.node_id, broker.host, broker.port_for(header.listener)


@handles(ApiKey.FIND_COORDINATOR, versions=(0, 6), flexible_from=3)
def find_coordinator(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.FindCoordinatorRequest, header, r)
    key_type = req.key_type if header.api_version >= 1 else GROUP_KEY
    if header.api_version < 4:
        error, message, node, host, port = _find(ctx, header, req.key, key_type)
        body = schemas.FindCoordinatorResponse(
            error_code=error, error_message=message, node_id=node, host=host, port=port
        )
        return spec_response(header, body)
    coordinators = []
    for key in req.coordinator_keys:
        error, message, node, host, port = _find(ctx, header, key, key_type)
        coordinators.append(
            schemas.FindCoordinatorResponse.Coordinator(
                key=key, node_id=node, host=host, port=port, error_code=error, error_message=message
            )
        )
    return spec_response(header, schemas.FindCoordinatorResponse(coordinators=coordinators))


# ---- JoinGroup, SyncGroup, Heartbeat, LeaveGroup ----


def _group_error(ctx: BrokerContext, header: RequestHeader, group_id: str) -> ErrorCode:
    """READ on the group (GROUP_AUTHORIZATION_FAILED), then the coordinator check."""
    if not allowed(ctx, header, READ, GROUP, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    return coordinator_error(ctx, group_id) if group_id else ErrorCode.NONE


@handles(ApiKey.JOIN_GROUP, versions=(0, 9), flexible_from=6)
async def join_group(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.coordinator import JoinRequest  # lazily: see ctx.groups

    v = header.api_version
    req = spec_request(schemas.JoinGroupRequest, header, r)

    def failed(error: ErrorCode, member_id: str) -> list[Buffer]:
        body = schemas.JoinGroupResponse(
            throttle_time_ms=0,
            error_code=error,
            generation_id=-1,
            protocol_name="" if v < 7 else None,
            leader="",
            member_id=member_id,
            members=[],
        )
        return spec_response(header, body)

    error = _group_error(ctx, header, req.group_id)
    if error != ErrorCode.NONE:
        return failed(error, req.member_id)
    if is_share_group(ctx, req.group_id):
        # a share group's id, as Kafka's classicGroupJoin answers a group of another type
        return failed(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "")
    resp = await ctx.groups.join(
        JoinRequest(
            group_id=req.group_id,
            member_id=req.member_id,
            group_instance_id=req.group_instance_id if v >= 5 else None,
            session_timeout_ms=req.session_timeout_ms,
            # v0 has no rebalance timeout: Kafka uses the session timeout
            rebalance_timeout_ms=req.rebalance_timeout_ms if v >= 1 else req.session_timeout_ms,
            protocol_type=req.protocol_type,
            protocols=[(p.name, bytes(p.metadata)) for p in req.protocols],
            client_id=header.client_id,
            client_host="/" + header.client_host,  # Kafka's "/1.2.3.4" form
            require_known_member_id=v >= 4,
        )
    )
    joined = schemas.JoinGroupResponse(
        throttle_time_ms=0,
        error_code=resp.error,
        generation_id=resp.generation,
        protocol_type=resp.protocol_type,
        # a non-nullable string before v7
        protocol_name=resp.protocol if resp.protocol is not None or v >= 7 else "",
        leader=resp.leader,
        skip_assignment=resp.skip_assignment,
        member_id=resp.member_id,
        members=[
            schemas.JoinGroupResponse.JoinGroupResponseMember(
                member_id=m.member_id, group_instance_id=m.group_instance_id, metadata=m.metadata
            )
            for m in resp.members
        ],
    )
    return spec_response(header, joined)


@handles(ApiKey.SYNC_GROUP, versions=(0, 5), flexible_from=4)
async def sync_group(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = spec_request(schemas.SyncGroupRequest, header, r)
    error = _group_error(ctx, header, req.group_id)
    if error != ErrorCode.NONE:
        return spec_response(
            header, schemas.SyncGroupResponse(throttle_time_ms=0, error_code=error, assignment=b"")
        )
    resp = await ctx.groups.sync(
        req.group_id,
        req.generation_id,
        req.member_id,
        req.group_instance_id if v >= 3 else None,
        req.protocol_type if v >= 5 else None,
        req.protocol_name if v >= 5 else None,
        {a.member_id: bytes(a.assignment) for a in req.assignments},
    )
    synced = schemas.SyncGroupResponse(
        throttle_time_ms=0,
        error_code=resp.error,
        protocol_type=resp.protocol_type,
        protocol_name=resp.protocol,
        assignment=resp.assignment,
    )
    return spec_response(header, synced)


@handles(ApiKey.HEARTBEAT, versions=(0, 4), flexible_from=4)
def heartbeat(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.HeartbeatRequest, header, r)
    error = _group_error(ctx, header, req.group_id)
    if error == ErrorCode.NONE:
        error = ctx.groups.heartbeat(
            req.group_id,
            req.generation_id,
            req.member_id,
            req.group_instance_id if header.api_version >= 3 else None,
        )
    return spec_response(header, schemas.HeartbeatResponse(throttle_time_ms=0, error_code=error))


@handles(ApiKey.LEAVE_GROUP, versions=(0, 5), flexible_from=4)
def leave_group(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = spec_request(schemas.LeaveGroupRequest, header, r)
    leaving: list[tuple[str, str | None]] = (
        [(req.member_id, None)]
        if v < 3
        else [(m.member_id, m.group_instance_id) for m in req.members]
    )
    error = _group_error(ctx, header, req.group_id)
    member_errors: list[ErrorCode] = []
    if error == ErrorCode.NONE:
        error, member_errors = ctx.groups.leave(req.group_id, leaving)
    if v < 3:
        # one member: its error is the response's (Kafka's LeaveGroupResponse does the same)
        if error == ErrorCode.NONE and member_errors:
            error = member_errors[0]
        return spec_response(
            header, schemas.LeaveGroupResponse(throttle_time_ms=0, error_code=error)
        )
    left = schemas.LeaveGroupResponse(
        throttle_time_ms=0,
        error_code=error,
        members=[
            schemas.LeaveGroupResponse.MemberResponse(
                member_id=m, group_instance_id=i, error_code=e
            )
            for (m, i), e in zip(leaving, member_errors, strict=False)
        ],
    )
    return spec_response(header, left)


# ---- DescribeGroups, ListGroups, DeleteGroups ----


@handles(ApiKey.DESCRIBE_GROUPS, versions=(0, 6), flexible_from=5)
def describe_groups(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.group import GroupState  # lazily: see ctx.groups

    v = header.api_version
    req = spec_request(schemas.DescribeGroupsRequest, header, r)
    group_cls = schemas.DescribeGroupsResponse.DescribedGroup
    member_cls = group_cls.DescribedGroupMember
    with_ops = v >= 3 and req.include_authorized_operations
    described = authorized(ctx, header, DESCRIBE, GROUP, req.groups)
    out = []
    for gid in req.groups:
        if gid not in described:
            out.append(
                group_cls(
                    error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED,
                    group_id=gid,
                    group_state="",
                    protocol_type="",
                    protocol_data="",
                    members=[],
                    authorized_operations=None,
                )
            )
            continue
        ops = authorized_operations(ctx, header, GROUP, gid) if with_ops else None
        error = coordinator_error(ctx, gid)
        group = ctx.groups.group(gid) if error == ErrorCode.NONE else None
        if group is None:
            message = None
            if error == ErrorCode.NONE and v >= 6:
                message = (
                    f"Group {gid} is not a classic group."
                    if ctx.groups.consumer_group(gid) is not None or is_share_group(ctx, gid)
                    else f"Group {gid} not found."
                )
                error = ErrorCode.GROUP_ID_NOT_FOUND
            out.append(
                group_cls(
                    error_code=error,
                    error_message=message,
                    group_id=gid,
                    group_state=GroupState.DEAD.value if error != ErrorCode.NOT_COORDINATOR else "",
                    protocol_type="",
                    protocol_data="",
                    members=[],
                    authorized_operations=ops,
                )
            )
            continue
        stable = group.state == GroupState.STABLE
        protocol = group.protocol or ""
        out.append(
            group_cls(
                error_code=ErrorCode.NONE,
                group_id=gid,
                group_state=group.state.value,
                protocol_type=group.protocol_type or "",
                protocol_data=protocol if stable else "",
                members=[
                    member_cls(
                        member_id=m.member_id,
                        group_instance_id=m.group_instance_id,
                        client_id=m.client_id,
                        client_host=m.client_host,
                        member_metadata=m.metadata(protocol) if stable else b"",
                        member_assignment=m.assignment if stable else b"",
                    )
                    for m in group.members.values()
                ],
                authorized_operations=ops,
            )
        )
    return spec_response(header, schemas.DescribeGroupsResponse(throttle_time_ms=0, groups=out))


@handles(ApiKey.LIST_GROUPS, versions=(0, 5), flexible_from=3)
def list_groups(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.group import Group  # lazily: see ctx.groups

    v = header.api_version
    req = spec_request(schemas.ListGroupsRequest, header, r)
    states = {s.lower() for s in req.states_filter} if v >= 4 else set()
    types = {t.lower() for t in req.types_filter} if v >= 5 else set()
    listed = []
    for g in ctx.groups.list_groups():
        if isinstance(g, Group):
            protocol_type, state, group_type = g.protocol_type or "", g.state.value, "classic"
        else:
            protocol_type, state, group_type = "consumer", g.state().value, "consumer"
        if (states and state.lower() not in states) or (types and group_type not in types):
            continue
        listed.append(
            schemas.ListGroupsResponse.ListedGroup(
                group_id=g.group_id,
                protocol_type=protocol_type,
                group_state=state,
                group_type=group_type,
            )
        )
    # share groups (KIP-932), where the emulated release serves them
    share = ctx.share if share_groups_enabled(ctx.controller.configs.kafka_version) else None
    if share is not None and (not types or "share" in types):
        listed.extend(
            schemas.ListGroupsResponse.ListedGroup(
                group_id=g.group_id, protocol_type="share", group_state=g.state, group_type="share"
            )
            for g in share.groups.list_groups()
            if not states or g.state.lower() in states
        )
    if not allowed(ctx, header, DESCRIBE):
        described = authorized(ctx, header, DESCRIBE, GROUP, [g.group_id for g in listed])
        listed = [g for g in listed if g.group_id in described]
    body = schemas.ListGroupsResponse(throttle_time_ms=0, error_code=ErrorCode.NONE, groups=listed)
    return spec_response(header, body)


def is_share_group(ctx: BrokerContext, group_id: str) -> bool:
    """Whether `group_id` is a share group's (KIP-932; one group id, one type)."""
    if not share_groups_enabled(ctx.controller.configs.kafka_version):
        return False
    from msklite.handlers.share_groups import share_group

    return share_group(ctx, group_id) is not None


@handles(ApiKey.DELETE_GROUPS, versions=(0, 2), flexible_from=2)
def delete_groups(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DeleteGroupsRequest, header, r)
    results = []
    deletable = authorized(ctx, header, DELETE, GROUP, req.groups_names)
    for gid in req.groups_names:
        error = (
            coordinator_error(ctx, gid)
            if gid in deletable
            else ErrorCode.GROUP_AUTHORIZATION_FAILED
        )
        if error == ErrorCode.NONE:
            error = ctx.groups.delete_group(gid)
        if error == ErrorCode.GROUP_ID_NOT_FOUND and share_groups_enabled(
            ctx.controller.configs.kafka_version
        ):
            from msklite.handlers.share_groups import delete_share_group

            error = delete_share_group(ctx, gid)
        results.append(
            schemas.DeleteGroupsResponse.DeletableGroupResult(group_id=gid, error_code=error)
        )
    return spec_response(header, schemas.DeleteGroupsResponse(throttle_time_ms=0, results=results))
