"""DescribeProducers (key 61) v0, DescribeTransactions (key 65) v0, ListTransactions (key 66)
v0-2: what `kafka-transactions.sh describe-producers / describe / list` show.

Behavior:
- DescribeProducers: per partition, from its leader (NOT_LEADER_OR_FOLLOWER elsewhere,
  UNKNOWN_TOPIC_OR_PARTITION), the producers the partition knows: id, epoch, last sequence and
  timestamp, the coordinator epoch of its last marker, and the first offset of the producer's
  open transaction (-1 when none).
- DescribeTransactions: per transactional id, from its coordinator (NOT_COORDINATOR elsewhere,
  TRANSACTIONAL_ID_NOT_FOUND for an unknown id): Kafka's state name, timeout, start time,
  producer id and epoch, partitions.
- ListTransactions: the transactions this broker coordinates, filtered by state names (unknown
  names are echoed in unknown_state_filters), producer ids, (v1) a minimum running duration and
  (v2, Kafka 4.1) a regular expression the whole transactional id must match
  (INVALID_REGULAR_EXPRESSION when it does not compile; empty or null: no filter). Listing
  never creates `__transaction_state`.
- Authorization, as Kafka's: DescribeProducers READ on each topic (TOPIC_AUTHORIZATION_FAILED),
  DescribeTransactions DESCRIBE on each transactional id
  (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); ListTransactions lists only those it may DESCRIBE.

Deviations from Kafka/MSK:
- ListTransactions v2's pattern is a Python regular expression (Kafka compiles it with RE2/J):
  the two agree on ordinary patterns, not on every construct.
"""

from __future__ import annotations

import re

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.authorization import DESCRIBE, READ, TOPIC, TRANSACTIONAL_ID, authorized
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

TXN_TOPIC = "__transaction_state"


@handles(ApiKey.DESCRIBE_PRODUCERS, versions=(0, 0), flexible_from=0)
def describe_producers(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    req = spec_request(schemas.DescribeProducersRequest, header, r)
    topic_cls = schemas.DescribeProducersResponse.TopicResponse
    part_cls = topic_cls.PartitionResponse
    state_cls = part_cls.ProducerState
    topics = []
    readable = authorized(ctx, header, READ, TOPIC, [t.name for t in req.topics])
    for t in req.topics:
        parts = []
        for index in t.partition_indexes:
            error: ErrorCode = ErrorCode.NONE
            message: str | None = None
            producers: list[
                schemas.DescribeProducersResponse.TopicResponse.PartitionResponse.ProducerState
            ] = []
            try:
                if t.name not in readable:
                    raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                part = ctx.replicas.leader_partition(t.name, index)
            except KafkaError as e:
                error, message = e.code, e.message
            else:
                state = part.log.producer_state
                for pid, entry in sorted(state.producers.items()):
                    last = entry.batches[-1] if entry.batches else None
                    producers.append(
                        state_cls(
                            producer_id=pid,
                            producer_epoch=entry.epoch,
                            last_sequence=last.last_seq if last else -1,
                            last_timestamp=entry.last_timestamp,
                            coordinator_epoch=entry.coordinator_epoch,
                            current_txn_start_offset=state.ongoing.get(pid, -1),
                        )
                    )
            parts.append(
                part_cls(
                    partition_index=index,
                    error_code=error,
                    error_message=message,
                    active_producers=producers,
                )
            )
        topics.append(topic_cls(name=t.name, partitions=parts))
    return spec_response(
        header, schemas.DescribeProducersResponse(throttle_time_ms=0, topics=topics)
    )


@handles(ApiKey.DESCRIBE_TRANSACTIONS, versions=(0, 0), flexible_from=0)
def describe_transactions(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.handlers.transactions import txn_coordinator_error

    req = spec_request(schemas.DescribeTransactionsRequest, header, r)
    state_cls = schemas.DescribeTransactionsResponse.TransactionState
    topic_cls = state_cls.TopicData
    out = []
    described = authorized(ctx, header, DESCRIBE, TRANSACTIONAL_ID, req.transactional_ids)
    for txn_id in req.transactional_ids:
        error = (
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            if txn_id not in described
            else txn_coordinator_error(ctx, txn_id)
            if TXN_TOPIC in ctx.controller.topics
            else ErrorCode.NOT_COORDINATOR
        )
        txn = ctx.txn.transaction(txn_id) if error == ErrorCode.NONE else None
        if error == ErrorCode.NONE and txn is None:
            error = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
        if txn is None:
            out.append(
                state_cls(
                    error_code=error,
                    transactional_id=txn_id,
                    transaction_state="",
                    transaction_timeout_ms=0,
                    transaction_start_time_ms=-1,
                    producer_id=-1,
                    producer_epoch=-1,
                    topics=[],
                )
            )
            continue
        by_topic: dict[str, list[int]] = {}
        for tp in sorted(txn.partitions):
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        out.append(
            state_cls(
                error_code=error,
                transactional_id=txn_id,
                transaction_state=txn.state.kafka_name,
                transaction_timeout_ms=txn.timeout_ms,
                transaction_start_time_ms=txn.start_ms,
                producer_id=txn.producer_id,
                producer_epoch=txn.producer_epoch,
                topics=[topic_cls(topic=t, partitions=p) for t, p in by_topic.items()],
            )
        )
    return spec_response(
        header, schemas.DescribeTransactionsResponse(throttle_time_ms=0, transaction_states=out)
    )


@handles(ApiKey.LIST_TRANSACTIONS, versions=(0, 2), flexible_from=0)
def list_transactions(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    from msklite.coordinator.transaction import TxnState

    v = header.api_version
    req = spec_request(schemas.ListTransactionsRequest, header, r)
    pattern = None
    if v >= 2 and req.transactional_id_pattern:
        try:
            pattern = re.compile(req.transactional_id_pattern)
        except re.error:
            return spec_response(
                header,
                schemas.ListTransactionsResponse(
                    throttle_time_ms=0,
                    error_code=ErrorCode.INVALID_REGULAR_EXPRESSION,
                    unknown_state_filters=[],
                    transaction_states=[],
                ),
            )
    names = {s.kafka_name for s in TxnState}
    wanted_states = set(req.state_filters)
    unknown = [s for s in req.state_filters if s not in names]
    wanted_pids = set(req.producer_id_filters)
    duration = req.duration_filter if v >= 1 else -1
    now = ctx.clock.now_ms()
    states = []
    if TXN_TOPIC in ctx.controller.topics:
        txns = sorted(ctx.txn.transactions(), key=lambda t: t.transactional_id)
        described = authorized(
            ctx, header, DESCRIBE, TRANSACTIONAL_ID, [t.transactional_id for t in txns]
        )
        for txn in txns:
            if txn.transactional_id not in described:
                continue
            name = txn.state.kafka_name
            if wanted_states and name not in wanted_states:
                continue
            if wanted_pids and txn.producer_id not in wanted_pids:
                continue
            if duration >= 0 and (txn.start_ms < 0 or now - txn.start_ms <= duration):
                continue
            if pattern is not None and pattern.fullmatch(txn.transactional_id) is None:
                continue
            states.append(
                schemas.ListTransactionsResponse.TransactionState(
                    transactional_id=txn.transactional_id,
                    producer_id=txn.producer_id,
                    transaction_state=name,
                )
            )
    return spec_response(
        header,
        schemas.ListTransactionsResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.NONE,
            unknown_state_filters=unknown,
            transaction_states=states,
        ),
    )
