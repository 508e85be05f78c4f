"""Fetch (key 1), versions 4-12.

Behavior:
- Consumers read up to the high watermark (read_uncommitted) or the last stable offset
  (isolation_level=1, read_committed: below the first open transaction), whole batches only,
  from the batch holding the fetch offset (the client skips records before it). A
  read_committed answer lists the aborted transactions overlapping what it returns (from the
  aborted-transaction index), so that the client drops their records; transaction markers
  are returned as the control batches they are, which clients skip.
- Limits: the response's max_bytes across partitions, each partition's partition_max_bytes;
  until some partition has returned data, the first batch is returned whole even if it is
  larger (KIP-74), so a consumer never stalls on a big batch.
- min_bytes / max_wait_ms: with less than min_bytes ready, the fetch waits in the purgatory
  and is woken by appends to any partition it reads, then answers with what is there when
  min_bytes is reached or max_wait_ms passes. Errors answer at once.
- Incremental fetch sessions (KIP-227), in fetch_sessions.py.
- Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
  OFFSET_OUT_OF_RANGE, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a current_leader_epoch
  older / newer than the partition's (v9+), KAFKA_STORAGE_ERROR for a replica in an offline
  log directory.
- KIP-392: with replica.selector.class=RackAwareReplicaSelector, a v11+ fetch with a rack_id
  is answered by the leader with preferred_read_replica (an in-sync replica in the client's
  rack holding the offset) and no records; followers serve v11+ consumer fetches up to their
  own HW, and OFFSET_OUT_OF_RANGE past their log end sends the client back to the leader.
- Record bytes go from the segment mmaps to the socket as memoryviews (no copy).
- Authorization, as Kafka's: READ on each topic (TOPIC_AUTHORIZATION_FAILED for its
  partitions, answered at once).
- consumer_byte_rate quotas (msklite.throttle), for consumers (replica_id < 0): max_bytes is
  capped at what the quota allows in one span; the response's size is recorded, and over the
  quota the answer is empty with throttle_time_ms (the size taken back; session id 0 unless
  incremental, as Kafka's getThrottledResponse) and the connection reads nothing more for
  that long.

Deviations from Kafka/MSK:
- Followers replicate in-process (replication/follower.py), not through this API: a fetch with
  replica_id ≥ 0 is served like a consumer fetch.
- No diverging_epoch (v12) in responses: consumers validate positions with
  OffsetForLeaderEpoch after a leader change, as librdkafka and the Java client do.
"""

from __future__ import annotations

from collections.abc import Awaitable

from msklite.authz import AclOperation, ResourceType
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.fetch_sessions import FetchContext
from msklite.handlers.registry import handles
from msklite.protocol import fetch as codec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.replication.partition import Partition
from msklite.throttle import user_of
from msklite.topic_partition import TopicPartition

RACK_AWARE_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


def preferred_read_replica(ctx: BrokerContext, part: Partition, rack_id: str, offset: int) -> int:
    """Kafka's RackAwareReplicaSelector over the in-sync replicas whose log holds `offset`:
    the leader if it shares the client's rack (or none does), else the most caught-up
    replica in that rack. -1 when that is the leader itself."""
    brokers = ctx.controller.brokers
    same_rack = [
        r
        for r in part.state.isr
        if r in brokers
        and brokers[r].alive
        and brokers[r].rack == rack_id
        and (r == part.broker_id or part.follower_leo.get(r, -1) > offset)
    ]
    if not same_rack or part.broker_id in same_rack:
        return -1
    return max(same_rack, key=lambda r: part.follower_leo.get(r, -1))


def _read_partition(
    ctx: BrokerContext,
    tp: TopicPartition,
    req: codec.FetchPartition,
    limit: int,
    min_one: bool,
    client_metadata: bool,
    rack_id: str,
    read_committed: bool,
) -> codec.PartitionData:
    out = codec.PartitionData(tp.partition)
    try:
        part = ctx.replicas.readable_partition(*tp, from_followers=client_metadata)
        part.check_leader_epoch(req.current_leader_epoch)
        hw = part.high_watermark
        out.high_watermark = hw
        out.last_stable_offset = lso = part.log.producer_state.last_stable_offset(hw)
        out.log_start_offset = part.log.log_start_offset
        if (
            part.is_leader
            and rack_id
            and ctx.controller.configs.get("replica.selector.class") == RACK_AWARE_SELECTOR
        ):
            out.preferred_read_replica = preferred_read_replica(
                ctx, part, rack_id, req.fetch_offset
            )
            if out.preferred_read_replica != -1:
                return out
        if read_committed:
            out.records = part.log.read(req.fetch_offset, limit, lso, min_one)
            out.aborted_transactions = [
                (a.producer_id, a.first_offset)
                for a in part.log.producer_state.aborted_between(req.fetch_offset, lso)
            ]
        else:
            out.records = part.log.read(req.fetch_offset, limit, hw, min_one)
    except KafkaError as e:
        out.error_code = e.code
    except OSError as e:  # the log directory failed under this read
        out.error_code = ctx.replicas.storage_failed(e).code
    except Exception:
        ctx.internal_error("fetching from %s-%d", *tp)
        out.error_code = ErrorCode.UNKNOWN_SERVER_ERROR
    return out


def _read_all(
    ctx: BrokerContext,
    fc: FetchContext,
    req: codec.FetchRequest,
    version: int,
    denied: set[str],
) -> tuple[list[tuple[TopicPartition, codec.PartitionData]], int, bool]:
    remaining = req.max_bytes
    min_one = True
    client_metadata = version >= 11
    read_committed = req.isolation_level == 1
    total = 0
    errors = False
    out = []
    for tp, preq in fc.partitions:
        if denied and tp.topic in denied:
            errors = True
            out.append(
                (tp, codec.PartitionData(tp.partition, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            )
            continue
        limit = max(min(preq.partition_max_bytes, remaining), 0)
        data = _read_partition(
            ctx, tp, preq, limit, min_one, client_metadata, req.rack_id, read_committed
        )
        size = sum(len(v) for v in data.records)
        if size:
            min_one = False
            remaining -= size
            total += size
        errors = errors or data.error_code != ErrorCode.NONE or data.preferred_read_replica != -1
        out.append((tp, data))
    return out, total, errors


@handles(ApiKey.FETCH, versions=(4, 12), flexible_from=codec.FLEXIBLE_FROM)
def handle(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]]:
    v = header.api_version
    req = codec.decode_request(r, v)
    try:
        fc = ctx.fetch_sessions.new_context(req)
    except KafkaError as e:
        return codec.encode_response(v, e.code, 0, [])
    quota = ctx.quotas.active and req.replica_id < 0
    if quota:
        # never more than the client's quota allows in one span (getMaxValueInQuotaWindow)
        window = ctx.quotas.fetch.max_value_in_window(user_of(header.principal), header.client_id)
        req.max_bytes = int(min(req.max_bytes, window))
        req.min_bytes = min(req.min_bytes, req.max_bytes)
    topics = {tp.topic for tp, _ in fc.partitions}
    denied = topics - authorized(ctx, header, AclOperation.READ, ResourceType.TOPIC, topics)
    reads, total, errors = _read_all(ctx, fc, req, v, denied)
    if total < req.min_bytes and req.max_wait_ms > 0 and not errors and fc.partitions:
        # Watch now, in the same step as the read: the coroutine starts on a later turn of
        # the loop, after requests read in this one (a produce that wakes it) have run.
        keys = [tp for tp, _ in fc.partitions]
        waiter = ctx.replicas.fetch_waiters.watch(keys)
        throttled = header if quota else None

        def ready(expired: bool) -> list[Buffer] | None:
            # every append to a fetched partition wakes the wait to read again
            reads, total, errors = _read_all(ctx, fc, req, v, denied)
            if total >= req.min_bytes or errors or expired:
                return _respond(ctx, throttled, fc, v, reads, total)
            return None

        return ctx.replicas.fetch_waiters.wait(keys, waiter, ctx.clock, req.max_wait_ms, ready)
    return _respond(ctx, header if quota else None, fc, v, reads, total)


def _respond(
    ctx: BrokerContext,
    quota: RequestHeader | None,
    fc: FetchContext,
    v: int,
    reads: list[tuple[TopicPartition, codec.PartitionData]],
    total: int,
) -> list[Buffer]:
    """`quota`: the request's header when the fetch byte-rate quota applies."""
    by_topic: dict[str, list[codec.PartitionData]] = {}
    bytes_out = ctx.stats.bytes_out_by_topic
    for tp, data in reads:
        if data.records:
            bytes_out[tp.topic] = bytes_out.get(tp.topic, 0) + sum(map(len, data.records))
        if fc.must_respond(
            tp,
            data.error_code,
            bool(data.records),
            data.high_watermark,
            data.last_stable_offset,
            data.log_start_offset,
        ):
            by_topic.setdefault(tp.topic, []).append(data)
    body = codec.encode_response(v, ErrorCode.NONE, fc.response_session_id, list(by_topic.items()))
    if quota is not None:
        throttled = _throttled(ctx, quota, fc, v, sum(len(b) for b in body))
        if throttled is not None:
            return throttled
    ctx.stats.bytes_out += total
    return body


def _throttled(
    ctx: BrokerContext, header: RequestHeader, fc: FetchContext, v: int, size: int
) -> list[Buffer] | None:
    """The consumer byte-rate quota, as KafkaApis applies it: the response's size recorded;
    over the quota, the size is taken back and the answer is empty, with the throttle time
    (and the session id only for an incremental fetch, as Kafka's getThrottledResponse)."""
    user, now = user_of(header.principal), ctx.clock.now_ms()
    throttle = ctx.quotas.fetch.record(user, header.client_id, size, now)
    if not throttle:
        return None
    ctx.quotas.fetch.unrecord(user, header.client_id, size, now)
    header.throttle_ms = max(header.throttle_ms, throttle)
    session_id = fc.response_session_id if fc.incremental else 0
    return codec.encode_response(v, ErrorCode.NONE, session_id, [], throttle)
