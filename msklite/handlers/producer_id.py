"""InitProducerId (key 22), versions 0-5.

Behavior:
- Without a transactional id (idempotent producers): a new producer id with epoch 0, always —
  also when the request names its current id and epoch (KIP-360), as Kafka's transaction
  coordinator does for null transactional ids. Ids come in persisted blocks from the
  controller and are never reused across restarts. When a new block cannot be saved:
  COORDINATOR_LOAD_IN_PROGRESS (retriable), as Kafka answers while its next block is not ready.
- Authorization, as Kafka's: WRITE on the transactional id
  (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); without one, IDEMPOTENT_WRITE on the cluster or
  WRITE on any topic (KIP-679; CLUSTER_AUTHORIZATION_FAILED).

- With a transactional id (the transaction coordinator, `msklite.coordinator.transaction`):
  NOT_COORDINATOR from another broker than the id's coordinator; INVALID_TRANSACTION_TIMEOUT
  outside 1..transaction.max.timeout.ms; the first call gets a new producer id at epoch 0,
  later ones bump the epoch (fencing the previous producer: its requests get PRODUCER_FENCED,
  INVALID_PRODUCER_EPOCH before v4), a new producer id once the epoch would pass 32766. An
  open transaction is aborted first: CONCURRENT_TRANSACTIONS until its markers are written
  (the client retries). v3+ (KIP-360): the producer's current id and epoch may be named,
  INVALID_PRODUCER_ID_MAPPING / PRODUCER_FENCED when they are not the coordinator's, and a
  retry of a bump that succeeded gets the same answer.
"""

from __future__ import annotations

from msklite.authz import AclOperation
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import (
    TOPIC,
    TRANSACTIONAL_ID,
    WRITE,
    allowed,
    allowed_on_any,
)
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader


def _transactional(
    ctx: BrokerContext, transactional_id: str, req: schemas.InitProducerIdRequest, v: int
) -> tuple[ErrorCode, int, int]:
    from msklite.handlers.transactions import fenced, txn_coordinator_error

    error = txn_coordinator_error(ctx, transactional_id)
    if error != ErrorCode.NONE:
        return error, -1, -1
    try:
        error, producer_id, epoch = ctx.txn.init_producer_id(
            transactional_id,
            req.transaction_timeout_ms,
            req.producer_id if v >= 3 else -1,
            req.producer_epoch if v >= 3 else -1,
        )
    except KafkaError:  # no producer id block could be saved
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1, -1
    return fenced(error, v, 4), producer_id, epoch


@handles(ApiKey.INIT_PRODUCER_ID, versions=(0, 5), flexible_from=2)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = spec_request(schemas.InitProducerIdRequest, header, r)
    if req.transactional_id is not None:
        if allowed(ctx, header, WRITE, TRANSACTIONAL_ID, req.transactional_id):
            error, producer_id, epoch = _transactional(ctx, req.transactional_id, req, v)
        else:
            error, producer_id, epoch = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1, -1
        body = schemas.InitProducerIdResponse(
            throttle_time_ms=0,
            error_code=error,
            producer_id=producer_id,
            producer_epoch=epoch,
        )
    elif not allowed(ctx, header, AclOperation.IDEMPOTENT_WRITE) and not allowed_on_any(
        ctx, header, WRITE, TOPIC
    ):
        # KIP-679: WRITE on any topic implies idempotent writes
        body = schemas.InitProducerIdResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            producer_id=-1,
            producer_epoch=-1,
        )
    else:
        try:
            error, producer_id, epoch = ErrorCode.NONE, ctx.controller.allocate_producer_id(), 0
        except KafkaError:
            error, producer_id, epoch = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1, -1
        body = schemas.InitProducerIdResponse(
            throttle_time_ms=0,
            error_code=error,
            producer_id=producer_id,
            producer_epoch=epoch,
        )
    return spec_response(header, body)
