"""InitProducerId (key 22), versions 0-5.

Behavior:
- Without a transactional id (idempotent producers): a new producer id with epoch 0, always —
  also when the request names its current id and epoch (KIP-360), as Kafka's transaction
  coordinator does for null transactional ids. Ids come in persisted blocks from the
  controller and are never reused across restarts. When a new block cannot be saved:
  COORDINATOR_LOAD_IN_PROGRESS (retriable), as Kafka answers while its next block is not ready.

Deviations from Kafka/MSK:
- With a transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED (a fatal error clients report
  at once) until transactions are emulated.
"""

from __future__ import annotations

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request
from msklite.protocol import messages
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader


@handles(ApiKey.INIT_PRODUCER_ID, versions=(0, 5), flexible_from=2)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v, req, resp = spec_request(ApiKey.INIT_PRODUCER_ID, header, r)
    if req.transactional_id is not None:
        body = resp(
            version=v,
            throttle_time_ms=0,
            error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            producer_id=-1,
            producer_epoch=-1,
        )
    else:
        try:
            error, producer_id, epoch = ErrorCode.NONE, ctx.controller.allocate_producer_id(), 0
        except KafkaError:
            error, producer_id, epoch = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1, -1
        body = resp(
            version=v,
            throttle_time_ms=0,
            error_code=error,
            producer_id=producer_id,
            producer_epoch=epoch,
        )
    return [messages.encode(body, v)]
