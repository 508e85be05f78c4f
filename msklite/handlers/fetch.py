"""Fetch (key 1), versions 4-12.

Behavior:
- Consumers read up to the high watermark (= last stable offset: no transactions yet), whole
  batches only, from the batch holding the fetch offset (the client skips records before it).
- Limits: the response's max_bytes across partitions, each partition's partition_max_bytes;
  until some partition has returned data, the first batch is returned whole even if it is
  larger (KIP-74), so a consumer never stalls on a big batch.
- min_bytes / max_wait_ms: with less than min_bytes ready, the fetch waits in the purgatory
  and is woken by appends to any partition it reads, then answers with what is there when
  min_bytes is reached or max_wait_ms passes. Errors answer at once.
- Incremental fetch sessions (KIP-227), in fetch_sessions.py.
- Errors per partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
  OFFSET_OUT_OF_RANGE, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a current_leader_epoch
  older / newer than the partition's (v9+).
- Record bytes go from the segment mmaps to the socket as memoryviews (no copy).

Deviations from Kafka/MSK:
- Follower fetches (replica_id ≥ 0) are served like consumer fetches: there are no followers
  until replication lands. rack_id is accepted and ignored (KIP-392 comes with replication).
"""

from __future__ import annotations

import asyncio
import logging

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.context import BrokerContext
from msklite.handlers.fetch_sessions import FetchContext, TopicPartition
from msklite.handlers.registry import handles
from msklite.protocol import fetch as codec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

log = logging.getLogger(__name__)


def _read_partition(
    ctx: BrokerContext, tp: TopicPartition, req: codec.FetchPartition, limit: int, min_one: bool
) -> codec.PartitionData:
    out = codec.PartitionData(tp[1])
    try:
        replica = ctx.replicas.leader_replica(*tp)
        epoch = replica.state.leader_epoch
        if req.current_leader_epoch != -1:
            if req.current_leader_epoch < epoch:
                raise KafkaError(ErrorCode.FENCED_LEADER_EPOCH)
            if req.current_leader_epoch > epoch:
                raise KafkaError(ErrorCode.UNKNOWN_LEADER_EPOCH)
        hw = replica.high_watermark
        plog = replica.log
        out.high_watermark = out.last_stable_offset = hw
        out.log_start_offset = plog.log_start_offset
        out.records = plog.read(req.fetch_offset, limit, hw, min_one)
    except KafkaError as e:
        out.error_code = e.code
    except Exception:
        log.exception("fetch from %s-%d failed", *tp)
        out.error_code = ErrorCode.UNKNOWN_SERVER_ERROR
    return out


def _read_all(
    ctx: BrokerContext, fc: FetchContext, max_bytes: int
) -> tuple[list[tuple[TopicPartition, codec.PartitionData]], int, bool]:
    remaining = max_bytes
    min_one = True
    total = 0
    errors = False
    out = []
    for tp, req in fc.partitions:
        limit = max(min(req.partition_max_bytes, remaining), 0)
        data = _read_partition(ctx, tp, req, limit, min_one)
        size = sum(len(v) for v in data.records)
        if size:
            min_one = False
            remaining -= size
            total += size
        errors = errors or data.error_code != ErrorCode.NONE
        out.append((tp, data))
    return out, total, errors


@handles(ApiKey.FETCH, versions=(4, 12), flexible_from=codec.FLEXIBLE_FROM)
async def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = codec.decode_request(r, v)
    try:
        fc = ctx.fetch_sessions.new_context(req)
    except KafkaError as e:
        return codec.encode_response(v, e.code, 0, [])
    reads, total, errors = _read_all(ctx, fc, req.max_bytes)
    if total < req.min_bytes and req.max_wait_ms > 0 and not errors and fc.partitions:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.max_wait_ms / 1000
        keys = [tp for tp, _ in fc.partitions]
        while total < req.min_bytes and not errors:
            timeout = deadline - loop.time()
            if timeout <= 0:
                break
            waiter = ctx.replicas.fetch_waiters.watch(keys)
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                pass
            finally:
                ctx.replicas.fetch_waiters.unwatch(keys, waiter)
            reads, total, errors = _read_all(ctx, fc, req.max_bytes)
    by_topic: dict[str, list[codec.PartitionData]] = {}
    for tp, data in reads:
        if fc.must_respond(
            tp,
            data.error_code,
            bool(data.records),
            data.high_watermark,
            data.last_stable_offset,
            data.log_start_offset,
        ):
            by_topic.setdefault(tp[0], []).append(data)
    ctx.stats.bytes_out += total
    return codec.encode_response(v, ErrorCode.NONE, fc.response_session_id, list(by_topic.items()))
