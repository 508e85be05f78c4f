"""AddPartitionsToTxn (key 24) v0-5, AddOffsetsToTxn (key 25) v0-4, EndTxn (key 26) v0-4,
TxnOffsetCommit (key 28) v0-4, WriteTxnMarkers (key 27) v0-1; InitProducerId with a
transactional id (producer_id.py).

Behavior (Kafka's TransactionCoordinator, `msklite.coordinator.transaction`):
- Each request goes to the transactional id's coordinator, the leader of its
  `__transaction_state` partition (FindCoordinator key_type 1); elsewhere NOT_COORDINATOR.
- AddPartitionsToTxn / AddOffsetsToTxn: INVALID_PRODUCER_ID_MAPPING for an unknown id or
  producer id, PRODUCER_FENCED for another epoch (INVALID_PRODUCER_EPOCH before v2),
  CONCURRENT_TRANSACTIONS while the previous transaction's markers are being written (a
  request that meets them waits for them, see Deviations, and is answered as the transaction
  then stands);
  UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist (the others of the request get
  OPERATION_NOT_ATTEMPTED). v4+ batches several transactions; `verify_only` (KIP-890) answers
  whether each partition is in the ongoing transaction without adding it.
- EndTxn: commit or abort; the PrepareCommit/PrepareAbort record is written and EndTxn
  answered, then the markers (data partitions: a control batch through the leader's
  replicated append; a group's offsets partition: the same, and its pending offsets committed
  or dropped) and the transaction completes. A retry after completion succeeds; the other
  outcome is INVALID_TXN_STATE.
- TxnOffsetCommit goes to the group coordinator: the offsets are written to
  `__consumer_offsets` at once, as a transactional batch of the producer's id and epoch, and
  stay pending (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for them) until
  the transaction's marker is written there; a coordinator that takes the partition over
  replays them, so they survive a move of the group's coordinator.
- Authorization, as Kafka's: WRITE on the transactional id
  (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) for AddPartitionsToTxn (before v4; then WRITE on each
  topic, never an internal one: TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED),
  AddOffsetsToTxn and TxnOffsetCommit (then READ on the group: GROUP_AUTHORIZATION_FAILED;
  TxnOffsetCommit READ on each topic) and EndTxn; AddPartitionsToTxn v4+ (brokers')
  CLUSTER_ACTION on the cluster.
- WriteTxnMarkers (what a coordinator sends partition leaders; msklite's own coordinators
  write their markers in-process, the same way): per marker and partition, a COMMIT or ABORT
  control batch through this broker's replicated append (acks=all: answered once the high
  watermark passes it, as Kafka answers). UNKNOWN_TOPIC_OR_PARTITION for a partition this
  broker does not host, NOT_LEADER_OR_FOLLOWER where it is a follower, INVALID_PRODUCER_EPOCH
  for an epoch older than the partition's, TRANSACTION_COORDINATOR_FENCED for a coordinator
  epoch older than the producer's last marker's, NOT_ENOUGH_REPLICAS below
  min.insync.replicas; a
  committed or aborted `__consumer_offsets` marker completes the group coordinator's pending
  transactional offsets. Answered per producer id, as Kafka merges them. It needs ALTER or
  CLUSTER_ACTION on the cluster: CLUSTER_AUTHORIZATION_FAILED for every partition otherwise.

Deviations from Kafka/MSK:
- AddPartitionsToTxn (v0-3) and AddOffsetsToTxn that would get CONCURRENT_TRANSACTIONS while
  the previous transaction's markers are being written wait for them (at most 1 s, then
  CONCURRENT_TRANSACTIONS) and are answered as the transaction then stands; Kafka answers
  CONCURRENT_TRANSACTIONS at once and the client backs off 20-100 ms.
- Answers once the `__transaction_state` record is on the coordinator's log, as the group
  coordinator does, not after it is replicated.
- EndTxn v5 / TxnOffsetCommit v5 (KIP-890 part 2, transaction version 2) are not served.

Version notes:
- AddPartitionsToTxn v2+ / AddOffsetsToTxn v2+ / EndTxn v2+ answer PRODUCER_FENCED where older
  versions get INVALID_PRODUCER_EPOCH (TxnOffsetCommit from v3); v3+ flexible (AddPartitionsToTxn
  v4 batched with verify_only).
- WriteTxnMarkers v1 is flexible; Kafka 4.0 dropped v0, so `--kafka-version` 4.x hides it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from msklite.authz import AclOperation
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import (
    GROUP,
    READ,
    TOPIC,
    TRANSACTIONAL_ID,
    WRITE,
    allowed,
    authorized,
)
from msklite.handlers.context import BrokerContext
from msklite.handlers.groups import coordinator_error
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas, txn_responses
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.topic_partition import TopicPartition

if TYPE_CHECKING:
    from msklite.protocol.write_txn_markers import Marker


def fenced(error: ErrorCode, version: int, first_fenced_version: int) -> ErrorCode:
    """PRODUCER_FENCED exists for clients from `first_fenced_version`; older ones get
    INVALID_PRODUCER_EPOCH, as Kafka maps it."""
    if error == ErrorCode.PRODUCER_FENCED and version < first_fenced_version:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return error


def txn_coordinator_error(ctx: BrokerContext, transactional_id: str) -> ErrorCode:
    if not transactional_id:
        return ErrorCode.INVALID_REQUEST
    return ErrorCode.NONE if ctx.txn.owns(transactional_id) else ErrorCode.NOT_COORDINATOR


# ---- AddPartitionsToTxn ----


class _Topic(Protocol):
    """A topic of AddPartitionsToTxn, from v4 or before."""

    @property
    def name(self) -> str: ...

    @property
    def partitions(self) -> Sequence[int]: ...


AddedInTxn = schemas.AddPartitionsToTxnResponse.AddPartitionsToTxnResult  # from v4


def _add_partitions(
    ctx: BrokerContext,
    header: RequestHeader,
    v: int,
    transactional_id: str,
    producer_id: int,
    epoch: int,
    topics: Sequence[_Topic],
    verify_only: bool,
) -> dict[TopicPartition, ErrorCode]:
    wanted = [TopicPartition(t.name, p) for t in topics for p in t.partitions]
    # Versions before 4 come from clients: WRITE on the transactional id and on each topic
    # (never on an internal one); v4+ from brokers, authorized as a whole by the handler.
    if v < 4 and not allowed(ctx, header, WRITE, TRANSACTIONAL_ID, transactional_id):
        return dict.fromkeys(wanted, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    writable = (
        authorized(
            ctx,
            header,
            WRITE,
            TOPIC,
            [
                tp.topic
                for tp in wanted
                if tp.topic not in ctx.controller.topics
                or not ctx.controller.topics[tp.topic].internal
            ],
        )
        if v < 4
        else {tp.topic for tp in wanted}
    )
    error = txn_coordinator_error(ctx, transactional_id)
    if error != ErrorCode.NONE:
        return dict.fromkeys(wanted, error)
    unknown = {
        tp
        for tp in wanted
        if tp.topic not in ctx.controller.topics
        or not 0 <= tp.partition < len(ctx.controller.topics[tp.topic].partitions)
    }
    if unknown or len(writable) < len({tp.topic for tp in wanted}):
        return {
            tp: ErrorCode.TOPIC_AUTHORIZATION_FAILED
            if tp.topic not in writable
            else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if tp in unknown
            else ErrorCode.OPERATION_NOT_ATTEMPTED
            for tp in wanted
        }
    if verify_only:
        error, per_partition = ctx.txn.verify_partitions(
            transactional_id, producer_id, epoch, wanted
        )
        if error != ErrorCode.NONE:
            return dict.fromkeys(wanted, fenced(error, v, 2))
        return per_partition
    error = ctx.txn.add_partitions(transactional_id, producer_id, epoch, wanted)
    return dict.fromkeys(wanted, fenced(error, v, 2))


def _by_topic(results: dict[TopicPartition, ErrorCode]) -> dict[str, list[tuple[int, ErrorCode]]]:
    by_topic: dict[str, list[tuple[int, ErrorCode]]] = {}
    for tp, e in results.items():
        by_topic.setdefault(tp.topic, []).append((tp.partition, e))
    return by_topic


def _after_markers(
    ctx: BrokerContext, transactional_id: str, attempt: Callable[[], tuple[bool, list[Buffer]]]
) -> list[Buffer] | Awaitable[list[Buffer]]:
    """`attempt()` answers a client's request to the transaction: (whether it got
    CONCURRENT_TRANSACTIONS, the response). One that met the previous transaction's markers
    still being written is answered again once they are (`TxnRuntime.markers_pending`)."""
    concurrent, response = attempt()
    pending = ctx.txn.markers_pending(transactional_id) if concurrent else None
    if pending is None:
        return response
    return _again(pending, attempt)


async def _again(
    pending: Awaitable[None], attempt: Callable[[], tuple[bool, list[Buffer]]]
) -> list[Buffer]:
    await pending
    return attempt()[1]


@handles(ApiKey.ADD_PARTITIONS_TO_TXN, versions=(0, 5), flexible_from=3)
def add_partitions_to_txn(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]]:
    v = header.api_version
    req = spec_request(schemas.AddPartitionsToTxnRequest, header, r)
    if v <= 3:
        tid = req.v3_and_below_transactional_id

        def attempt() -> tuple[bool, list[Buffer]]:
            results = _add_partitions(
                ctx,
                header,
                v,
                tid,
                req.v3_and_below_producer_id,
                req.v3_and_below_producer_epoch,
                req.v3_and_below_topics,
                False,
            )
            return ErrorCode.CONCURRENT_TRANSACTIONS in results.values(), [
                txn_responses.add_partitions_response(v, _by_topic(results))
            ]

        return _after_markers(ctx, tid, attempt)
    if not allowed(ctx, header, AclOperation.CLUSTER_ACTION):
        body = schemas.AddPartitionsToTxnResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            results_by_transaction=[],
        )
        return spec_response(header, body)
    out = []
    for t in req.transactions:
        results = _add_partitions(
            ctx,
            header,
            v,
            t.transactional_id,
            t.producer_id,
            t.producer_epoch,
            t.topics,
            t.verify_only,
        )
        topic_results = [
            AddedInTxn.AddPartitionsToTxnTopicResult(
                name=name,
                results_by_partition=[
                    AddedInTxn.AddPartitionsToTxnTopicResult.AddPartitionsToTxnPartitionResult(
                        partition_index=p, partition_error_code=e
                    )
                    for p, e in parts
                ],
            )
            for name, parts in _by_topic(results).items()
        ]
        out.append(AddedInTxn(transactional_id=t.transactional_id, topic_results=topic_results))
    body = schemas.AddPartitionsToTxnResponse(
        throttle_time_ms=0, error_code=ErrorCode.NONE, results_by_transaction=out
    )
    return spec_response(header, body)


# ---- AddOffsetsToTxn ----


@handles(ApiKey.ADD_OFFSETS_TO_TXN, versions=(0, 4), flexible_from=3)
def add_offsets_to_txn(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]]:
    from msklite.coordinator.group_runtime import OFFSETS_TOPIC, ensure_offsets_topic

    v = header.api_version
    req = spec_request(schemas.AddOffsetsToTxnRequest, header, r)

    def attempt() -> tuple[bool, list[Buffer]]:
        if not allowed(ctx, header, WRITE, TRANSACTIONAL_ID, req.transactional_id):
            error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        elif not allowed(ctx, header, READ, GROUP, req.group_id):
            error = ErrorCode.GROUP_AUTHORIZATION_FAILED
        else:
            error = txn_coordinator_error(ctx, req.transactional_id)
        if error == ErrorCode.NONE:
            # Kafka adds the group's __consumer_offsets partition to the transaction: its
            # marker is what makes the transaction's offsets visible.
            try:
                ensure_offsets_topic(ctx.controller)
                tp = TopicPartition(OFFSETS_TOPIC, ctx.groups.partition_for(req.group_id))
                error = fenced(
                    ctx.txn.add_partitions(
                        req.transactional_id, req.producer_id, req.producer_epoch, [tp]
                    ),
                    v,
                    2,
                )
            except KafkaError:
                error = ErrorCode.COORDINATOR_NOT_AVAILABLE
        return error == ErrorCode.CONCURRENT_TRANSACTIONS, [txn_responses.error_response(v, error)]

    return _after_markers(ctx, req.transactional_id, attempt)


# ---- EndTxn ----


@handles(ApiKey.END_TXN, versions=(0, 4), flexible_from=3)
def end_txn(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = spec_request(schemas.EndTxnRequest, header, r)
    error = (
        txn_coordinator_error(ctx, req.transactional_id)
        if allowed(ctx, header, WRITE, TRANSACTIONAL_ID, req.transactional_id)
        else ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    )
    if error == ErrorCode.NONE:
        error = fenced(
            ctx.txn.end_txn(
                req.transactional_id, req.producer_id, req.producer_epoch, req.committed
            ),
            v,
            2,
        )
    return [txn_responses.error_response(v, error)]


# ---- TxnOffsetCommit ----


@handles(ApiKey.TXN_OFFSET_COMMIT, versions=(0, 4), flexible_from=3)
def txn_offset_commit(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.coordinator import OffsetCommit  # lazily: see ctx.groups

    v = header.api_version
    req = spec_request(schemas.TxnOffsetCommitRequest, header, r)
    topic_cls = schemas.TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic
    part_cls = topic_cls.TxnOffsetCommitResponsePartition
    errors: dict[tuple[str, int], ErrorCode] = {}
    valid: list[OffsetCommit] = []
    if not allowed(ctx, header, WRITE, TRANSACTIONAL_ID, req.transactional_id):
        group_error = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif not allowed(ctx, header, READ, GROUP, req.group_id):
        group_error = ErrorCode.GROUP_AUTHORIZATION_FAILED
    else:
        group_error = coordinator_error(ctx, req.group_id)
    readable = authorized(ctx, header, READ, TOPIC, [t.name for t in req.topics])
    for t in req.topics:
        for p in t.partitions:
            key = (t.name, p.partition_index)
            topic = ctx.controller.topics.get(t.name)
            if group_error != ErrorCode.NONE:
                errors[key] = group_error
            elif t.name not in readable:
                errors[key] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif topic is None or not 0 <= p.partition_index < len(topic.partitions):
                errors[key] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                valid.append(
                    OffsetCommit(
                        t.name,
                        p.partition_index,
                        p.committed_offset,
                        p.committed_leader_epoch if v >= 2 else -1,
                        p.committed_metadata,
                    )
                )
    if valid:
        results = ctx.groups.txn_commit(
            req.group_id,
            req.producer_id,
            req.producer_epoch,
            req.generation_id if v >= 3 else -1,
            req.member_id if v >= 3 else "",
            req.group_instance_id if v >= 3 else None,
            valid,
        )
        for o, e in zip(valid, results, strict=True):
            errors[(o.topic, o.partition)] = fenced(e, v, 3)
    topics = [
        topic_cls(
            name=t.name,
            partitions=[
                part_cls(
                    partition_index=p.partition_index,
                    error_code=errors[(t.name, p.partition_index)],
                )
                for p in t.partitions
            ],
        )
        for t in req.topics
    ]
    return spec_response(header, schemas.TxnOffsetCommitResponse(throttle_time_ms=0, topics=topics))


# ---- WriteTxnMarkers ----


@handles(ApiKey.WRITE_TXN_MARKERS, versions=(0, 1), flexible_from=1)
def write_txn_markers(
    ctx: BrokerContext, header: RequestHeader, r: Reader
) -> list[Buffer] | Awaitable[list[Buffer]]:
    from msklite.protocol import write_txn_markers as codec

    markers = codec.decode_request(r, header.api_version)
    # what a coordinator sends: ALTER on the cluster, else CLUSTER_ACTION, as Kafka asks
    if not (
        allowed(ctx, header, AclOperation.ALTER)
        or allowed(ctx, header, AclOperation.CLUSTER_ACTION)
    ):
        refused: dict[int, dict[TopicPartition, int]] = {}
        for m in markers:
            errors = refused.setdefault(m.producer_id, {})
            errors.update(dict.fromkeys(m.partitions, ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
        return [codec.encode_response(header.api_version, refused)]
    return _write_txn_markers(ctx, header.api_version, markers)


async def _write_txn_markers(
    ctx: BrokerContext, version: int, markers: list[Marker]
) -> list[Buffer]:
    from msklite.coordinator.group_runtime import OFFSETS_TOPIC
    from msklite.protocol import write_txn_markers as codec
    from msklite.replication.markers import write_marker

    async def one(m: Marker, tp: TopicPartition) -> ErrorCode:
        if tp not in ctx.replicas.partitions:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        written = write_marker(
            ctx.replicas,
            ctx.clock,
            tp,
            m.producer_id,
            m.producer_epoch,
            m.commit,
            m.coordinator_epoch,
        )
        error = written if isinstance(written, ErrorCode) else await written
        if error == ErrorCode.NONE and tp.topic == OFFSETS_TOPIC:
            ctx.groups.complete_txn(tp.partition, m.producer_id, m.commit)
        return error

    jobs = [(m, tp) for m in markers for tp in m.partitions]
    errors = await asyncio.gather(*(one(m, tp) for m, tp in jobs))
    # Kafka answers per producer id: two markers of one producer share an entry.
    results: dict[int, dict[TopicPartition, int]] = {}
    for m in markers:
        results.setdefault(m.producer_id, {})
    for (m, tp), error in zip(jobs, errors, strict=True):
        results[m.producer_id][tp] = error
    return [codec.encode_response(version, results)]
