"""ConsumerGroupHeartbeat (key 68), versions 0-1; ConsumerGroupDescribe (key 69), versions 0-1:
KIP-848 consumer groups (`group.protocol=consumer`).

Behavior:
- ConsumerGroupHeartbeat follows Kafka's GroupMetadataManager (`msklite.coordinator.
  consumer_coordinator` says how): member and group epochs, the target assignment by the
  server-side assignor (`uniform` or `range`, `group.consumer.assignors`, the members' choice
  by majority), incremental reconciliation (revoke before assign), static members, regex
  subscriptions, session (`group.consumer.session.timeout.ms` or the group's
  `consumer.session.timeout.ms`) and rebalance timeouts, GROUP_MAX_SIZE_REACHED
  (`group.consumer.max.size`). The state is written to `__consumer_offsets` in Kafka's records
  before the answer, so it survives restarts and coordinator moves.
- Served while `group.coordinator.rebalance.protocols` lists `consumer` (Kafka 4.x's default);
  otherwise the API answers UNSUPPORTED_VERSION, as a Kafka 3.7-3.9 broker does by default
  (librdkafka reports it as a fatal consumer error instead of retrying forever).
- Mixed use (`group.consumer.migration.policy`, coordinator/consumer_coordinator.py): a
  consumer-protocol member joining a classic group in use converts it when the policy allows
  an upgrade and every member uses the consumer embedded protocol, else GROUP_ID_NOT_FOUND;
  classic members carry on inside the consumer group through JoinGroup/SyncGroup/Heartbeat
  (REBALANCE_IN_PROGRESS when they must rejoin), and the group turns classic again when its
  last consumer-protocol member leaves, if the policy allows a downgrade. Empty groups convert
  both ways whatever the policy; offsets are kept. The id of a share group is
  GROUP_ID_NOT_FOUND too.
- ConsumerGroupDescribe v1: member_type 0 for a member speaking the classic protocol.
- ConsumerGroupDescribe: epochs, the preferred assignor, each member's current and target
  assignment; GROUP_ID_NOT_FOUND for an unknown group or one that is not a consumer group,
  INVALID_GROUP_ID for an empty id, NOT_COORDINATOR from another broker.
- Authorization, as Kafka's: the heartbeat READ on the group, the describe DESCRIBE on each
  group (GROUP_AUTHORIZATION_FAILED), its authorized operations the principal's.

Deviations from Kafka/MSK:
- A static consumer-protocol member replaced by a classic one (same instance id) does not
  downgrade the group at that moment, as Kafka does: the group turns classic when its last
  consumer-protocol member is removed.
- Regular expressions are Python's `re`, refusing the constructs RE2/J lacks (lookaround,
  backreferences, atomic groups, possessive quantifiers); resolved on each heartbeat rather
  than by a background refresh, so a new matching topic shows at the next heartbeat.
- `uniform` is a sticky balanced assignment, not Kafka's exact algorithm (the same balance,
  the same stickiness, possibly other partitions); racks are ignored.

Version notes:
- ConsumerGroupHeartbeat v1 adds subscribed_topic_regex, and the client names itself (an empty
  member id is INVALID_REQUEST; v0 gets a member id from the coordinator).
- ConsumerGroupDescribe v1 adds each member's member_type (1: consumer protocol).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msklite.errors import ErrorCode
from msklite.handlers.authorization import (
    DESCRIBE,
    GROUP,
    READ,
    allowed,
    authorized_operations,
    bits,
)
from msklite.handlers.context import BrokerContext
from msklite.handlers.groups import coordinator_error, is_share_group
from msklite.handlers.registry import handles
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.consumer_group import (
    DescribedAssignment,
    DescribedGroup,
    DescribedMember,
    HeartbeatResponse,
    decode_describe_request,
    decode_heartbeat_request,
    encode_describe_response,
    encode_heartbeat_response,
)
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

if TYPE_CHECKING:
    from msklite.coordinator.consumer_records import Assignment

CONSUMER_PROTOCOL_DISABLED = (
    "The new consumer group protocol is not enabled: group.coordinator.rebalance.protocols "
    "does not list `consumer` (set group.protocol=classic, or enable it)"
)
_NO_OPERATIONS = -(1 << 31)


def consumer_protocol_enabled(ctx: BrokerContext) -> bool:
    protocols = ctx.controller.configs.get("group.coordinator.rebalance.protocols") or ""
    return "consumer" in {p.strip().lower() for p in protocols.split(",")}


@handles(ApiKey.CONSUMER_GROUP_HEARTBEAT, versions=(0, 1), flexible_from=0)
def consumer_group_heartbeat(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = decode_heartbeat_request(r, v)
    if not consumer_protocol_enabled(ctx):
        return encode_heartbeat_response(
            HeartbeatResponse(ErrorCode.UNSUPPORTED_VERSION, CONSUMER_PROTOCOL_DISABLED)
        )
    if not allowed(ctx, header, READ, GROUP, req.group_id):
        return encode_heartbeat_response(HeartbeatResponse(ErrorCode.GROUP_AUTHORIZATION_FAILED))
    error = coordinator_error(ctx, req.group_id) if req.group_id else ErrorCode.NONE
    if error != ErrorCode.NONE:
        return encode_heartbeat_response(HeartbeatResponse(error))
    if is_share_group(ctx, req.group_id):
        # one group id, one type: a share group's id is not a consumer group's
        message = f"Group {req.group_id} is not a consumer group."
        return encode_heartbeat_response(HeartbeatResponse(ErrorCode.GROUP_ID_NOT_FOUND, message))
    resp = ctx.groups.consumer_heartbeat(req, v, header.client_id, "/" + header.client_host)
    return encode_heartbeat_response(resp)


@handles(ApiKey.CONSUMER_GROUP_DESCRIBE, versions=(0, 1), flexible_from=0)
def consumer_group_describe(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = decode_describe_request(r, header.api_version)
    by_id = ctx.controller.topics_by_id

    def assignment(a: Assignment) -> DescribedAssignment:
        parts = []
        for topic_id, ps in sorted(a.items()):
            topic = by_id.get(topic_id)
            if topic is not None and ps:
                parts.append((topic.topic_id, topic.name, sorted(ps)))
        return DescribedAssignment(parts)

    out = []
    for gid in req.group_ids:
        if not gid:
            out.append(DescribedGroup(ErrorCode.INVALID_GROUP_ID, gid))
            continue
        error = coordinator_error(ctx, gid)
        if error == ErrorCode.NONE and not allowed(ctx, header, DESCRIBE, GROUP, gid):
            error = ErrorCode.GROUP_AUTHORIZATION_FAILED
        if error != ErrorCode.NONE:
            out.append(DescribedGroup(error, gid))
            continue
        ops = _NO_OPERATIONS
        if req.include_authorized_operations:
            ops = bits(authorized_operations(ctx, header, GROUP, gid))
        group = ctx.groups.consumer_group(gid)
        if group is None:
            message = (
                f"Group {gid} is not a consumer group."
                if ctx.groups.group(gid) is not None
                else f"Group {gid} not found."
            )
            out.append(DescribedGroup(ErrorCode.GROUP_ID_NOT_FOUND, gid, message))
            continue
        members = [
            DescribedMember(
                member_id=m.member_id,
                instance_id=m.instance_id,
                rack_id=m.rack_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=list(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex,
                assignment=assignment(m.assigned),
                target_assignment=assignment(group.target.get(m.member_id, {})),
                member_type=0 if m.classic is not None else 1,
            )
            for m in group.members.values()
        ]
        out.append(
            DescribedGroup(
                ErrorCode.NONE,
                gid,
                group_state=group.state().value,
                group_epoch=group.group_epoch,
                assignment_epoch=group.assignment_epoch,
                assignor_name=ctx.groups.consumer_assignor(group),
                members=members,
                authorized_operations=ops,
            )
        )
    return encode_describe_response(header.api_version, out)
