"""OffsetForLeaderEpoch (key 23), versions 2-4.

Behavior:
- For each partition, from its leader: the largest epoch at or below the requested one and the
  offset where it ended (the start of the next epoch, or the log end offset for the current
  epoch) — what consumers use after a leader change to detect log truncation (KIP-320), and
  what followers use to truncate (KIP-101/279). An epoch older than the log's first known one:
  epoch -1, offset -1.
- current_leader_epoch fencing (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH), leaders only
  (NOT_LEADER_OR_FOLLOWER), UNKNOWN_TOPIC_OR_PARTITION.
"- Authorization, as Kafka's for consumers: DESCRIBE on each topic
  (TOPIC_AUTHORIZATION_FAILED).
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


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH, versions=(2, 4), flexible_from=4)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.OffsetForLeaderEpochRequest, header, r)
    topic_cls = schemas.OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult
    part_cls = topic_cls.EpochEndOffset
    topics = []
    described = authorized(ctx, header, DESCRIBE, TOPIC, [t.topic for t in req.topics])
    for t in req.topics:
        parts: list[
            schemas.OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult.EpochEndOffset
        ] = []
        for p in t.partitions:
            code, epoch, end = ErrorCode.NONE, -1, -1
            try:
                if t.topic not in described:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                part = ctx.replicas.leader_partition(t.topic, p.partition)
                part.check_leader_epoch(p.current_leader_epoch)
                epoch, end = part.log.epochs.end_offset_for(p.leader_epoch, part.log.log_end_offset)
            except KafkaError as e:
                code = e.code
            parts.append(
                part_cls(error_code=code, partition=p.partition, leader_epoch=epoch, end_offset=end)
            )
        topics.append(topic_cls(topic=t.topic, partitions=parts))
    return spec_response(
        header, schemas.OffsetForLeaderEpochResponse(throttle_time_ms=0, topics=topics)
    )
