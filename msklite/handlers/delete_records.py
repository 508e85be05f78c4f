"""DeleteRecords (key 21), versions 0-2.

Behavior:
- Each partition's log start offset moves up to the offset asked for (-1: the high
  watermark) on its leader: the records below it are no longer readable (Fetch answers
  OFFSET_OUT_OF_RANGE, ListOffsets earliest and Fetch's log_start_offset report the new
  start) and the next retention pass deletes the segments wholly below it. The start is
  checkpointed in the broker's `log-start-offset-checkpoint` at once and survives restarts.
- The followers take the leader's start as they copy (Kafka's followers from each fetch
  response); the answer waits, up to timeout_ms, until every live replica has moved its start
  (the low watermark, the smallest start among the leader and its live followers, reaches the
  offset), as Kafka's DelayedDeleteRecords does: the low watermark is returned; a partition
  still short of it when timeout_ms passes answers REQUEST_TIMED_OUT with the low watermark
  of when the request arrived.
- Errors per partition, in Kafka's order: UNKNOWN_TOPIC_OR_PARTITION,
  INVALID_TOPIC_EXCEPTION (an internal topic), NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR,
  POLICY_VIOLATION (cleanup.policy without `delete`), OFFSET_OUT_OF_RANGE (an offset past the
  high watermark, or below -1); their low watermark is -1. An offset at or below the current
  start changes nothing and succeeds.
- Authorization, as Kafka's: DELETE on each topic (TOPIC_AUTHORIZATION_FAILED).

Deviations from Kafka/MSK:
- The start is checkpointed whenever it moves inside a segment, not every
  log.flush.start.offset.checkpoint.interval.ms: a crash cannot lose a deletion.

Version notes: v1 is v0 (throttling semantics); v2 is flexible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import DELETE, TOPIC, authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.topic_partition import TopicPartition

_Topic = schemas.DeleteRecordsResponse.DeleteRecordsTopicResult


@dataclass(slots=True)
class _Status:
    tp: TopicPartition
    required: int
    low_watermark: int
    error: ErrorCode
    pending: bool


def _delete(ctx: BrokerContext, tp: TopicPartition, offset: int) -> _Status:
    try:
        required, low = ctx.replicas.delete_records(tp.topic, tp.partition, offset)
    except KafkaError as e:
        return _Status(tp, -1, -1, e.code, False)
    except Exception:
        ctx.internal_error("deleting records of %s-%d", *tp)
        return _Status(tp, -1, -1, ErrorCode.UNKNOWN_SERVER_ERROR, False)
    if low >= required:
        return _Status(tp, required, low, ErrorCode.NONE, False)
    # Until the replicas catch up the answer would be a timeout (Kafka's initial status).
    return _Status(tp, required, low, ErrorCode.REQUEST_TIMED_OUT, True)


def _recheck(ctx: BrokerContext, status: _Status) -> None:
    """Kafka's DelayedDeleteRecords.tryComplete for one partition still waiting."""
    try:
        low = ctx.replicas.low_watermark(*status.tp)
    except KafkaError as e:
        status.error, status.low_watermark, status.pending = e.code, -1, False
        return
    except Exception:
        ctx.internal_error("checking the low watermark of %s-%d", *status.tp)
        status.error, status.low_watermark, status.pending = (
            ErrorCode.UNKNOWN_SERVER_ERROR,
            -1,
            False,
        )
        return
    if low >= status.required:
        status.error, status.low_watermark, status.pending = ErrorCode.NONE, low, False


@handles(ApiKey.DELETE_RECORDS, versions=(0, 2), flexible_from=2)
def handle(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]]:
    req = spec_request(schemas.DeleteRecordsRequest, header, r)
    may_delete = authorized(ctx, header, DELETE, TOPIC, [t.name for t in req.topics])
    statuses = [
        _delete(ctx, TopicPartition(t.name, p.partition_index), p.offset)
        if t.name in may_delete
        else _Status(
            TopicPartition(t.name, p.partition_index),
            -1,
            -1,
            ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            False,
        )
        for t in req.topics
        for p in t.partitions
    ]
    ctx.replicas.checkpoint_log_starts()
    pending = [s.tp for s in statuses if s.pending]
    if not pending:
        return _respond(header, statuses)
    # Watch now, in the same step: the followers may report before the coroutine first runs.
    waiter = ctx.replicas.delete_waiters.watch(pending)
    return _wait(ctx, header, statuses, max(req.timeout_ms, 0), waiter)


async def _wait(
    ctx: BrokerContext,
    header: RequestHeader,
    statuses: list[_Status],
    timeout_ms: int,
    waiter: asyncio.Future[None],
) -> list[Buffer]:
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if not waiter.done():
            waiter.set_result(None)

    timer = ctx.clock.call_later(timeout_ms, expire)
    try:
        while True:
            keys = [s.tp for s in statuses if s.pending]
            try:
                await waiter
            finally:
                ctx.replicas.delete_waiters.unwatch(keys, waiter)
            for s in statuses:
                if s.pending:
                    _recheck(ctx, s)
            if expired or not any(s.pending for s in statuses):
                return _respond(header, statuses)
            waiter = ctx.replicas.delete_waiters.watch([s.tp for s in statuses if s.pending])
    finally:
        timer.cancel()


def _respond(header: RequestHeader, statuses: list[_Status]) -> list[Buffer]:
    by_topic: dict[str, list[_Topic.DeleteRecordsPartitionResult]] = {}
    for s in statuses:
        by_topic.setdefault(s.tp.topic, []).append(
            _Topic.DeleteRecordsPartitionResult(
                partition_index=s.tp.partition,
                low_watermark=s.low_watermark,
                error_code=s.error,
            )
        )
    topics = [_Topic(name=name, partitions=parts) for name, parts in by_topic.items()]
    return spec_response(header, schemas.DeleteRecordsResponse(throttle_time_ms=0, topics=topics))
