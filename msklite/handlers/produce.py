"""Produce (key 0), versions 3-11.

Behavior:
- Per partition: the leader check (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER), then
  what Kafka's LogValidator checks (`records.validate_produced_batch`), reading the batch without
  rewriting it: MESSAGE_TOO_LARGE over the topic's max.message.bytes, CORRUPT_MESSAGE for a bad
  CRC or length or records that do not decompress, INVALID_RECORD for more than one batch,
  magic < 2, an empty record set, counts that disagree, any record whose framing is wrong (its
  length, varints, key/value/header lengths, a negative header count, bytes left over), a null
  key on a compacted topic. One bad partition never fails the others.
- acks must be 0, 1 or -1 (INVALID_REQUIRED_ACKS); acks=0 sends no response at all; acks=1
  answers once the leader has appended; acks=-1 checks min.insync.replicas
  (NOT_ENOUGH_REPLICAS) before appending, then waits until the high watermark passes the
  batch — NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below min.insync.replicas
  meanwhile, REQUEST_TIMED_OUT after timeout_ms.
- KAFKA_STORAGE_ERROR (retriable: clients refresh metadata and find the new leader) when the
  leader's log directory is offline or fails under this append; the failure is logged once,
  with its cause, and waiting acks=all produces of that broker get the same answer.
- Idempotent batches: sequence and epoch checks, retries of the last five batches answered with
  their original offsets (log/producer_state.py).
- Transactional batches open the producer's transaction on the partition (the LSO stops
  there until its marker); a batch older than the epoch a marker or a newer batch brought
  (a fenced producer) is INVALID_PRODUCER_EPOCH; control batches from clients are INVALID_RECORD
  (only the transaction coordinator writes markers).
- KIP-890 part 1 (`transaction.partition.verification.enable`, default true): a producer's
  first transactional batch on a partition (no transaction of its open there) is checked with
  its transactional id's coordinator; a partition not in the transaction is INVALID_TXN_STATE
  ("Partition was not added to the transaction"; TRANSACTION_ABORTABLE from v11), a fenced
  epoch INVALID_PRODUCER_EPOCH, and a coordinator that cannot answer yet (moving, loading,
  completing the previous transaction) NOT_ENOUGH_REPLICAS, which every client retries.
- message.timestamp.type=LogAppendTime: the broker's time, reported in log_append_time_ms.
- A topic `compression.type` other than `producer` stores the batch recompressed with that
  codec (compression.gzip/zstd.level applied) after validation, only when the codecs differ,
  the CRC recomputed; the rebuilt batch is checked against max.message.bytes again.
- message.timestamp.before/after.max.ms (CreateTime; each, when unset, falls back to the
  deprecated message.timestamp.difference.max.ms as in Kafka): checked against every
  record's timestamp (INVALID_TIMESTAMP); a batch stamped LogAppendTime by its producer is
  refused the same way. Refused records are named in `record_errors` (index and message), as
  Kafka names them.
- Authorization, as Kafka's: WRITE on each topic (TOPIC_AUTHORIZATION_FAILED for its
  partitions); a request with transactional batches WRITE on its transactional id (every
  partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED, also when the request names no
  transactional id, with or without ACLs).
- producer_byte_rate quotas (msklite.throttle): the request's bytes are recorded for the
  client's (user, client-id); over the quota the answer carries throttle_time_ms and the
  connection reads nothing more for that long (acks=0 too, which has no answer).

Deviations from Kafka/MSK:
- A recompressed batch (topic `compression.type`) keeps its records' bytes and the
  producer's max timestamp (Kafka rebuilds the records); snappy is written raw, as librdkafka
  writes it (Kafka's Java code writes the xerial framing); compression.lz4.level is not applied.
- Records that do not decompress are CORRUPT_MESSAGE (Kafka: UNKNOWN_SERVER_ERROR); compressed
  records whose offset deltas are not 0..n-1 are INVALID_RECORD (Kafka rewrites the batch); a
  batch that decompresses beyond 256 MiB is MESSAGE_TOO_LARGE; the batch's max timestamp is kept
  as sent (Kafka sets it to the largest record timestamp).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from msklite.authz import Action
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import TOPIC, TRANSACTIONAL_ID, WRITE
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles
from msklite.protocol import produce as codec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.protocol.records import (
    COMPRESSION_MASK,
    BatchHeader,
    RecordErrors,
    read_header,
    recompress,
    validate_produced_batch,
)
from msklite.throttle import user_of
from msklite.topic_partition import TopicPartition

# Coordinator answers that older producers would not retry, turned into one they do (without
# a metadata refresh), as Kafka's ReplicaManager turns them.
_RETRY_VERIFICATION = frozenset(
    (
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
    )
)


def _verify_txn(
    ctx: BrokerContext, txn_id: str, tp: TopicPartition, h: BatchHeader, version: int
) -> None:
    """KIP-890 part 1: a producer's first transactional batch on a partition must be in its
    transaction, or a late batch (after the abort that should have covered it) would open a
    transaction no marker ever ends. Raises KafkaError as Kafka answers."""
    assert ctx.verify_txn is not None
    if not ctx.controller.configs.get_bool("transaction.partition.verification.enable"):
        return
    error = ctx.verify_txn(txn_id, h.producer_id, h.producer_epoch, tp)
    if error == ErrorCode.NONE:
        return
    if error == ErrorCode.PRODUCER_FENCED:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    elif error in _RETRY_VERIFICATION:
        raise KafkaError(
            ErrorCode.NOT_ENOUGH_REPLICAS,
            "Unable to verify the partition has been added to the transaction. "
            f"Underlying error: {error.name}",
        )
    elif error == ErrorCode.TRANSACTION_ABORTABLE and version < 11:
        error = ErrorCode.INVALID_TXN_STATE  # Produce v11 brought TRANSACTION_ABORTABLE
    if error == ErrorCode.INVALID_TXN_STATE:
        raise KafkaError(error, "Partition was not added to the transaction")
    raise KafkaError(error)


def _produce_one(
    ctx: BrokerContext,
    topic: str,
    part: codec.PartitionProduceData,
    acks: int,
    waits: list[tuple[codec.PartitionProduceResponse, asyncio.Future[ErrorCode]]],
    txn_id: str | None,
    version: int,
) -> codec.PartitionProduceResponse:
    resp = codec.PartitionProduceResponse(part.index)
    try:
        replica = ctx.replicas.leader_partition(topic, part.index)
        records = part.records
        if records is None or len(records) == 0:
            raise KafkaError(ErrorCode.INVALID_RECORD, "empty record set")
        received = len(records)
        config = replica.config
        window = None
        if config.checks_timestamps:
            now = ctx.clock.now_ms()
            window = (
                now - config.timestamp_before_ms,
                now + config.timestamp_after_ms,
            )
        h = validate_produced_batch(
            records,
            config.max_message_bytes,
            log_append_time=config.log_append_time,
            timestamp_window=window,
            keys_required="compact" in config.cleanup_policy,
        )
        if h.is_control:
            raise KafkaError(
                ErrorCode.INVALID_RECORD, "client produce requests cannot contain control records"
            )
        if (
            h.is_transactional
            and txn_id is not None
            and ctx.verify_txn is not None
            and h.producer_id not in replica.log.producer_state.ongoing
        ):
            _verify_txn(ctx, txn_id, TopicPartition(topic, part.index), h, version)
        target = config.target_codec
        if target is not None and target != h.attributes & COMPRESSION_MASK:
            records = recompress(records, h, target, config.target_level)
            h = read_header(records)
            if len(records) > config.max_message_bytes:
                raise KafkaError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"Message batch size is {len(records)} bytes in append to partition "
                    f"{topic}-{part.index} which exceeds the maximum configured size of "
                    f"{config.max_message_bytes}.",
                )
        info = ctx.replicas.append(replica, records, h, acks)
        # Kafka's BytesInPerSec counts the bytes as received, MessagesInPerSec the records
        stats = ctx.stats
        stats.bytes_in_by_topic[topic] = stats.bytes_in_by_topic.get(topic, 0) + received
        if not info.duplicate:
            stats.messages_in_by_topic[topic] = (
                stats.messages_in_by_topic.get(topic, 0) + h.records_count
            )
        if acks == -1:
            waits.append((resp, replica.wait_for(info.last_offset + 1)))
        resp.base_offset = info.base_offset
        resp.log_append_time_ms = info.log_append_time
        resp.log_start_offset = replica.log.log_start_offset
    except RecordErrors as e:
        resp.error_code = e.code
        resp.error_message = e.message
        resp.record_errors = e.record_errors
    except KafkaError as e:
        resp.error_code = e.code
        resp.error_message = e.message
    except Exception:
        ctx.internal_error("producing to %s-%d", topic, part.index)
        resp.error_code = ErrorCode.UNKNOWN_SERVER_ERROR
    return resp


async def _await_replication(
    ctx: BrokerContext,
    version: int,
    responses: list[tuple[str, list[codec.PartitionProduceResponse]]],
    waits: list[tuple[codec.PartitionProduceResponse, asyncio.Future[ErrorCode]]],
    pending: set[asyncio.Future[ErrorCode]],
    timeout_ms: int,
    throttle: int,
) -> list[Buffer]:
    """acks=all: wait until the HW passes every appended batch, or the request times out.
    (A countdown on one future: asyncio.wait costs ≈3x more per request, measured.)"""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    remaining = len(pending)

    def one_done(_: asyncio.Future[ErrorCode]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not done.done():
            done.set_result(None)

    def expire() -> None:
        if not done.done():
            done.set_result(None)

    for fut in pending:
        fut.add_done_callback(one_done)
    timer = ctx.clock.call_later(max(timeout_ms, 0), expire)
    try:
        await done
    finally:
        timer.cancel()
    _settle(waits)
    return [codec.encode_response(version, responses, throttle)]


def _settle(waits: list[tuple[codec.PartitionProduceResponse, asyncio.Future[ErrorCode]]]) -> None:
    for resp, fut in waits:
        if fut.done():
            code = fut.result()
        else:
            fut.cancel()
            code = ErrorCode.REQUEST_TIMED_OUT
        if code != ErrorCode.NONE:
            resp.error_code = code
            resp.base_offset = -1


def _transaction_allowed(
    ctx: BrokerContext, header: RequestHeader, req: codec.ProduceRequest
) -> bool:
    """WRITE on the transactional id, asked only when a partition's batch is transactional
    (the attributes' bit 4, at byte 22 of the batch header), as Kafka asks it (every request
    scanned, a plain loop: ≈0.15 µs); transactional batches in a request that names no
    transactional id are refused whatever the ACLs."""
    for t in req.topic_data:
        for p in t.partition_data:
            records = p.records
            if records is not None and len(records) > 22 and records[22] & 0x10:
                tid = req.transactional_id
                return (
                    tid is not None
                    and ctx.authorizer.authorize(header, [Action(WRITE, TRANSACTIONAL_ID, tid)])[0]
                )
    return True


@handles(ApiKey.PRODUCE, versions=(3, 11), flexible_from=codec.FLEXIBLE_FROM)
def handle(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]] | None:
    v = header.api_version
    req = codec.decode_request(r, v)
    responses: list[tuple[str, list[codec.PartitionProduceResponse]]] = []
    throttle = 0
    if req.acks not in (0, 1, -1):
        for t in req.topic_data:
            parts = [
                codec.PartitionProduceResponse(p.index, ErrorCode.INVALID_REQUIRED_ACKS)
                for p in t.partition_data
            ]
            responses.append((t.name, parts))
    elif not _transaction_allowed(ctx, header, req):
        for t in req.topic_data:
            parts = [
                codec.PartitionProduceResponse(
                    p.index, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                )
                for p in t.partition_data
            ]
            responses.append((t.name, parts))
    else:
        waits: list[tuple[codec.PartitionProduceResponse, asyncio.Future[ErrorCode]]] = []
        allowed = (
            [True] * len(req.topic_data)
            if ctx.authorizer.allows_everything(header)
            else ctx.authorizer.authorize(
                header, [Action(WRITE, TOPIC, t.name) for t in req.topic_data]
            )
        )
        responses = [
            (
                t.name,
                [
                    _produce_one(ctx, t.name, p, req.acks, waits, req.transactional_id, v)
                    for p in t.partition_data
                ]
                if ok
                else [
                    codec.PartitionProduceResponse(p.index, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                    for p in t.partition_data
                ],
            )
            for t, ok in zip(req.topic_data, allowed, strict=True)
        ]
        pending = {fut for _, fut in waits if not fut.done()}
        throttle = _throttle(ctx, header, len(r.data)) if ctx.quotas.active else 0
        if pending:
            return _await_replication(ctx, v, responses, waits, pending, req.timeout_ms, throttle)
        _settle(waits)
    if req.acks == 0:
        return None
    return [codec.encode_response(v, responses, throttle)]


def _throttle(ctx: BrokerContext, header: RequestHeader, size: int) -> int:
    """The produce byte-rate quota (ClientQuotaManager): the request's bytes recorded, the
    throttle time returned and the connection muted for it (acks=0 too: no response)."""
    throttle = ctx.quotas.produce.record(
        user_of(header.principal), header.client_id, size, ctx.clock.now_ms()
    )
    header.throttle_ms = max(header.throttle_ms, throttle)
    return throttle
