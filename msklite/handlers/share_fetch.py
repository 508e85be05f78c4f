"""ShareFetch (key 78) v1-2, ShareAcknowledge (key 79) v1-2: share consumers fetch records
acquired for them and acknowledge them (KIP-932; Kafka's SharePartitionManager paths).

Behavior:
- Served where the emulated release had share groups enabled (4.2.x); elsewhere
  UNSUPPORTED_VERSION, as a broker with `share.version` 0 answers.
- The share session (`handlers/share_manager.py`): epoch 0 opens it (no acknowledgements
  allowed then: INVALID_REQUEST), -1 closes it after its acknowledgements (and fetches
  nothing), any other epoch must be the session's (INVALID_SHARE_SESSION_EPOCH;
  SHARE_SESSION_NOT_FOUND without one). ShareAcknowledge cannot open a session.
- Acknowledgements (ACCEPT, RELEASE, REJECT, GAP; RENEW from v2) apply first, per partition,
  all-or-nothing per batch: an offset not acquired by the member is INVALID_RECORD_STATE.
- Each session partition led here gets its available records acquired for the member:
  redeliveries first, then new records in whole log batches while fewer than max_records
  are taken and fewer than group.share.partition.max.record.locks are in flight, within
  max_bytes (at least one batch). Only the batches holding acquired records are sent;
  AcquiredRecords lists the acquired offsets with their delivery counts, locked for
  group.share.record.lock.duration.ms (AcquisitionLockTimeoutMs).
- v2's ShareAcquireMode (KIP-1206): batch-optimized (0) rounds max_records up to whole log
  batches; record-limit (1) acquires at most max_records records over all partitions,
  splitting a log batch at the limit (the whole batch is sent; the client keeps only what it
  acquired). Another mode id: INVALID_REQUEST.
  An expired lock, a release or a member leaving makes them available again, archived once
  the delivery count reaches group.share.delivery.count.limit.
- With nothing acquired the request waits up to max_wait_ms for an append or a release.
- A partition led elsewhere: NOT_LEADER_OR_FOLLOWER with the current leader and its endpoint.
- Authorization, as Kafka's: READ on the group (GROUP_AUTHORIZATION_FAILED), READ on each
  topic fetched from or acknowledged (TOPIC_AUTHORIZATION_FAILED for its partitions).

Deviations from Kafka/MSK:
- In-flight records are tracked per offset (Kafka tracks whole in-flight batches and splits
  them on demand); what a client sees is the same.
- BatchSize is not used to split AcquiredRecords.
- A waiting fetch answers as soon as anything is acquired (min_bytes is not weighed).

Version notes:
- v2: ShareAcquireMode (KIP-1206), acknowledge type RENEW and IsRenewAck (KIP-1222).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import GROUP, READ, TOPIC, allowed, authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.handlers.share_groups import DISABLED, share_enabled
from msklite.protocol import schemas
from msklite.protocol import share_fetch as codec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.topic_partition import TopicPartition

if TYPE_CHECKING:  # the share machinery loads with the first share request (ctx.share)
    from msklite.coordinator.share_state import ShareKey
    from msklite.handlers.share_manager import Fetched, ShareSession

AckResp = schemas.ShareAcknowledgeResponse
AckPart = AckResp.ShareAcknowledgeTopicResponse.PartitionData
RENEW = 4
# ShareFetch v2's ShareAcquireMode (KIP-1206)
BATCH_OPTIMIZED = 0
RECORD_LIMIT = 1

Acks = dict[tuple[uuid.UUID, int], list[tuple[int, int, list[int]]]]


def _acks_of(topics: list[schemas.Struct]) -> Acks:
    out: Acks = {}
    for t in topics:
        for p in t.partitions:  # type: ignore[attr-defined]
            if p.acknowledgement_batches:
                out[(t.topic_id, p.partition_index)] = [  # type: ignore[attr-defined]
                    (b.first_offset, b.last_offset, list(b.acknowledge_types))
                    for b in p.acknowledgement_batches
                ]
    return out


def _leader(ctx: BrokerContext, key: ShareKey) -> tuple[int, int]:
    topic = ctx.controller.topics_by_id.get(key.topic_id)
    if topic is None or not 0 <= key.partition < len(topic.partitions):
        return -1, -1
    state = topic.partitions[key.partition]
    return state.leader, state.leader_epoch


def _readable(
    ctx: BrokerContext, header: RequestHeader, topic_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """The topics (by id) the principal may READ; an unknown id counts as readable, to be
    answered UNKNOWN_TOPIC_ID."""
    by_id = ctx.controller.topics_by_id
    names = {tid: by_id[tid].name for tid in topic_ids if tid in by_id}
    allowed_names = authorized(ctx, header, READ, TOPIC, names.values())
    return {tid for tid in topic_ids if tid not in names or names[tid] in allowed_names}


def _acknowledge(
    ctx: BrokerContext,
    header: RequestHeader,
    group_id: str,
    member_id: str,
    acks: Acks,
) -> dict[ShareKey, ErrorCode]:
    from msklite.coordinator.share_state import ShareKey

    manager = ctx.share.partitions
    readable = _readable(ctx, header, {tid for tid, _ in acks})
    out = {}
    for (topic_id, index), batches in acks.items():
        key = ShareKey(group_id, topic_id, index)
        if topic_id not in readable:
            out[key] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            continue
        if header.api_version < 2 and any(RENEW in types for _, _, types in batches):
            out[key] = ErrorCode.INVALID_REQUEST
            continue
        out[key] = manager.acknowledge(member_id, key, batches)
    return out


def _endpoints(
    ctx: BrokerContext, leaders: set[int], listener: str
) -> list[tuple[int, str, int, str | None]]:
    out = []
    for node in sorted(leaders):
        broker = ctx.controller.brokers.get(node)
        if broker is not None and broker.alive:
            out.append((node, broker.host, broker.port_for(listener), broker.rack))
    return out


# ---- ShareFetch ----


@handles(ApiKey.SHARE_FETCH, versions=(1, 2), flexible_from=0)
def share_fetch(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]]:
    req = spec_request(schemas.ShareFetchRequest, header, r)

    def failed(error: ErrorCode, message: str | None = None) -> list[Buffer]:
        return codec.encode_response(error, message, 0, [], [])

    if not share_enabled(ctx):
        return failed(ErrorCode.UNSUPPORTED_VERSION, DISABLED)
    group_id, member_id = req.group_id, req.member_id
    if not group_id or not member_id:
        return failed(ErrorCode.INVALID_REQUEST, "GroupId and MemberId must be set.")
    if not allowed(ctx, header, READ, GROUP, group_id):
        return failed(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    if header.api_version >= 2 and req.share_acquire_mode not in (BATCH_OPTIMIZED, RECORD_LIMIT):
        return failed(
            ErrorCode.INVALID_REQUEST, f"Unknown share acquire mode id: {req.share_acquire_mode}"
        )
    acks = _acks_of(req.topics)  # type: ignore[arg-type]
    epoch = req.share_session_epoch
    if epoch == 0 and acks:
        return failed(ErrorCode.INVALID_REQUEST, "Acknowledge data present on initial epoch.")
    manager = ctx.share.partitions
    try:
        session = manager.session(group_id, member_id, epoch, acknowledging_only=False)
    except KafkaError as e:
        return failed(e.code, e.message)
    ack_errors = _acknowledge(ctx, header, group_id, member_id, acks)
    if epoch == -1:
        manager.close_session(group_id, member_id)
        return _fetch_response(ctx, header, group_id, {}, ack_errors)
    for t in req.topics:
        for p in t.partitions:
            session.partitions[(t.topic_id, p.partition_index)] = None
    for f in req.forgotten_topics_data:
        for index in f.partitions:
            session.partitions.pop((f.topic_id, index), None)
    fetched = _fetch_all(ctx, header, group_id, member_id, session, req)
    if (
        req.max_wait_ms > 0
        and not any(f.acquired or f.error for f in fetched.values())
        and session.partitions
    ):
        keys = _watch_keys(ctx, session)
        waiter = ctx.replicas.fetch_waiters.watch(keys)

        def ready(expired: bool) -> list[Buffer] | None:
            # an append or a release on a session partition may let something be acquired
            fetched = _fetch_all(ctx, header, group_id, member_id, session, req)
            if expired or any(f.acquired or f.error for f in fetched.values()):
                return _fetch_response(ctx, header, group_id, fetched, ack_errors)
            return None

        return ctx.replicas.fetch_waiters.wait(keys, waiter, ctx.clock, req.max_wait_ms, ready)
    return _fetch_response(ctx, header, group_id, fetched, ack_errors)


def _watch_keys(ctx: BrokerContext, session: ShareSession) -> list[TopicPartition]:
    out = []
    for topic_id, index in session.partitions:
        topic = ctx.controller.topics_by_id.get(topic_id)
        if topic is not None:
            out.append(TopicPartition(topic.name, index))
    return out


def _fetch_all(
    ctx: BrokerContext,
    header: RequestHeader,
    group_id: str,
    member_id: str,
    session: ShareSession,
    req: schemas.ShareFetchRequest,
) -> dict[ShareKey, Fetched]:
    from msklite.coordinator.share_state import ShareKey
    from msklite.handlers.share_manager import Fetched

    manager = ctx.share.partitions
    records_left = req.max_records if req.max_records > 0 else 500
    record_limit = header.api_version >= 2 and req.share_acquire_mode == RECORD_LIMIT
    bytes_left = req.max_bytes
    out: dict[ShareKey, Fetched] = {}
    readable = _readable(ctx, header, {tid for tid, _ in session.partitions})
    for topic_id, index in list(session.partitions):
        key = ShareKey(group_id, topic_id, index)
        if topic_id not in readable:
            out[key] = Fetched(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            continue
        try:
            held, part = manager.partition(group_id, topic_id, index)
            if records_left <= 0 or bytes_left <= 0:
                continue
            fetched = manager.fetch(
                member_id, key, held, part, bytes_left, records_left, record_limit
            )
        except KafkaError as e:
            out[key] = Fetched(e.code)
            continue
        except OSError as e:  # the log directory failed under this read
            out[key] = Fetched(ctx.replicas.storage_failed(e).code)
            continue
        out[key] = fetched
        records_left -= sum(a.last_offset - a.first_offset + 1 for a in fetched.acquired)
        bytes_left -= sum(len(b) for b in fetched.records)
    return out


def _fetch_response(
    ctx: BrokerContext,
    header: RequestHeader,
    group_id: str,
    fetched: dict[ShareKey, Fetched],
    ack_errors: dict[ShareKey, ErrorCode],
) -> list[Buffer]:
    from msklite.handlers.share_manager import Fetched

    by_topic: dict[uuid.UUID, list[codec.SharePartitionData]] = {}
    leaders: set[int] = set()
    total = 0
    for key in dict.fromkeys([*fetched, *ack_errors]):
        f = fetched.get(key, Fetched())
        if not (f.acquired or f.error or key in ack_errors):
            continue
        leader, leader_epoch = _leader(ctx, key)
        if f.error == ErrorCode.NOT_LEADER_OR_FOLLOWER and leader >= 0:
            leaders.add(leader)
        total += sum(len(b) for b in f.records)
        by_topic.setdefault(key.topic_id, []).append(
            codec.SharePartitionData(
                key.partition,
                f.error,
                ack_errors.get(key, ErrorCode.NONE),
                leader,
                leader_epoch,
                list(f.records),
                [(a.first_offset, a.last_offset, a.delivery_count) for a in f.acquired],
            )
        )
    ctx.stats.bytes_out += total
    return codec.encode_response(
        ErrorCode.NONE,
        None,
        ctx.share.partitions.lock_duration_ms(group_id),
        list(by_topic.items()),
        [codec.NodeEndpoint(*e) for e in _endpoints(ctx, leaders, header.listener)],
    )


# ---- ShareAcknowledge ----


@handles(ApiKey.SHARE_ACKNOWLEDGE, versions=(1, 2), flexible_from=0)
def share_acknowledge(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.ShareAcknowledgeRequest, header, r)

    def failed(error: ErrorCode, message: str | None = None) -> list[Buffer]:
        body = AckResp(
            throttle_time_ms=0,
            error_code=error,
            error_message=message,
            responses=[],
            node_endpoints=[],
        )
        return spec_response(header, body)

    if not share_enabled(ctx):
        return failed(ErrorCode.UNSUPPORTED_VERSION, DISABLED)
    group_id, member_id = req.group_id, req.member_id
    if not group_id or not member_id:
        return failed(ErrorCode.INVALID_REQUEST, "GroupId and MemberId must be set.")
    if not allowed(ctx, header, READ, GROUP, group_id):
        return failed(ErrorCode.GROUP_AUTHORIZATION_FAILED)
    manager = ctx.share.partitions
    try:
        manager.session(group_id, member_id, req.share_session_epoch, acknowledging_only=True)
    except KafkaError as e:
        return failed(e.code, e.message)
    acks = _acks_of(req.topics)  # type: ignore[arg-type]
    errors = _acknowledge(ctx, header, group_id, member_id, acks)
    if req.share_session_epoch == -1:
        manager.close_session(group_id, member_id)
    by_topic: dict[object, list[AckPart]] = {}
    leaders: set[int] = set()
    for key, error in errors.items():
        leader, leader_epoch = _leader(ctx, key)
        if error == ErrorCode.NOT_LEADER_OR_FOLLOWER and leader >= 0:
            leaders.add(leader)
        by_topic.setdefault(key.topic_id, []).append(
            AckPart(
                partition_index=key.partition,
                error_code=error,
                current_leader=AckPart.LeaderIdAndEpoch(
                    leader_id=leader, leader_epoch=leader_epoch
                ),
            )
        )
    body = AckResp(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        acquisition_lock_timeout_ms=manager.lock_duration_ms(group_id),
        responses=[
            AckResp.ShareAcknowledgeTopicResponse(topic_id=tid, partitions=parts)  # type: ignore[arg-type]
            for tid, parts in by_topic.items()
        ],
        node_endpoints=[
            AckResp.NodeEndpoint(node_id=n, host=h, port=p, rack=rack)
            for n, h, p, rack in _endpoints(ctx, leaders, header.listener)
        ],
    )
    return spec_response(header, body)
