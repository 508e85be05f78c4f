"""ListOffsets (key 2), versions 1-8.

Behavior:
- timestamp -1 (latest): the high watermark, or the last stable offset for
  isolation_level=1 (read_committed; lookups by timestamp also stop there); -2 (earliest) and
  -4 (earliest local, KIP-1005, no tiered storage): the log start offset; -3 (max timestamp,
  KIP-734): the offset and timestamp of the record carrying the largest timestamp; any other
  value: the first record with a timestamp at or after it, found through the time index then
  by reading inside that one batch — or offset -1 / timestamp -1 when none exists.
- Leader-only (NOT_LEADER_OR_FOLLOWER), current_leader_epoch fencing (v4+) as in Fetch.
- Other negative timestamps find nothing (offset -1, timestamp -1).
"- Authorization, as Kafka's: DESCRIBE on each topic (TOPIC_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import DESCRIBE, TOPIC, authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -1, -2, -3, -4


def _lookup(
    ctx: BrokerContext,
    topic: str,
    p: schemas.ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition,
    read_committed: bool,
) -> tuple[int, int, int]:
    """(offset, timestamp, leader_epoch) for one partition request."""
    part = ctx.replicas.leader_partition(topic, p.partition_index)
    part.check_leader_epoch(p.current_leader_epoch)
    epoch = part.state.leader_epoch
    plog = part.log
    hw = part.high_watermark
    if read_committed:
        hw = plog.producer_state.last_stable_offset(hw)
    ts = p.timestamp
    if ts == LATEST:
        return hw, -1, epoch
    if ts in (EARLIEST, EARLIEST_LOCAL):
        return plog.log_start_offset, -1, epoch
    if ts == MAX_TIMESTAMP:
        found = plog.offset_of_max_timestamp(hw)
    elif ts < 0:
        found = None
    else:
        found = plog.offset_for_timestamp(ts, hw)
    if found is None:
        return -1, -1, -1
    return found.offset, found.timestamp, found.leader_epoch


@handles(ApiKey.LIST_OFFSETS, versions=(1, 8), flexible_from=6)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.ListOffsetsRequest, header, r)
    topic_cls = schemas.ListOffsetsResponse.ListOffsetsTopicResponse
    part_cls = topic_cls.ListOffsetsPartitionResponse
    read_committed = header.api_version >= 2 and req.isolation_level == 1
    topics = []
    described = authorized(ctx, header, DESCRIBE, TOPIC, [t.name for t in req.topics])
    for t in req.topics:
        parts: list[
            schemas.ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse
        ] = []
        for p in t.partitions:
            code, offset, timestamp, epoch = ErrorCode.NONE, -1, -1, -1
            try:
                if t.name not in described:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                offset, timestamp, epoch = _lookup(ctx, t.name, p, read_committed)
            except KafkaError as e:
                code = e.code
            except Exception:
                ctx.internal_error("listing offsets of %s-%d", t.name, p.partition_index)
                code = ErrorCode.UNKNOWN_SERVER_ERROR
            parts.append(
                part_cls(
                    partition_index=p.partition_index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=epoch,
                )
            )
        topics.append(topic_cls(name=t.name, partitions=parts))
    return spec_response(header, schemas.ListOffsetsResponse(throttle_time_ms=0, topics=topics))
