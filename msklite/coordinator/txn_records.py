"""The records of `__transaction_state`, in Kafka's TransactionLogKey / TransactionLogValue
schemas (transaction-coordinator's JSON specs), so that tools reading the topic
(kafka-dump-log --transaction-log-decoder) understand it.

Key v0: int16 version, string transactional id. Value v0 (what Kafka writes without
transaction version 2): int16 version, int64 producer id, int16 producer epoch, int32
transaction timeout, int8 state, nullable array of (topic, [partition]) , int64 last update
timestamp, int64 start timestamp. A null value is a tombstone (an expired transactional id).
Value v1 is flexible (tagged fields for the previous and next producer ids); it is read, never
written.
"""

from __future__ import annotations

from dataclasses import dataclass

from msklite.errors import ProtocolError
from msklite.protocol.primitives import Buffer, Reader, Writer
from msklite.topic_partition import TopicPartition

KEY_VERSION = 0
VALUE_VERSION = 0


@dataclass(frozen=True, slots=True)
class TxnLogValue:
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: int  # TxnState's wire id
    partitions: tuple[TopicPartition, ...]
    last_update_ms: int
    start_ms: int


def encode_key(transactional_id: str) -> bytes:
    w = Writer()
    w.int16(KEY_VERSION)
    w.str_(transactional_id, False)
    return bytes(w.buf)


def decode_key(data: Buffer) -> str:
    r = Reader(memoryview(data))
    version = r.int16()
    if version != KEY_VERSION:
        raise ProtocolError(f"unknown __transaction_state key version {version}")
    return r.string()


def encode_value(v: TxnLogValue) -> bytes:
    w = Writer()
    w.int16(VALUE_VERSION)
    w.int64(v.producer_id)
    w.int16(v.producer_epoch)
    w.int32(v.timeout_ms)
    w.int8(v.state)
    by_topic: dict[str, list[int]] = {}
    for tp in v.partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    w.array_len(len(by_topic), False)
    for topic, parts in by_topic.items():
        w.str_(topic, False)
        w.array_len(len(parts), False)
        for p in parts:
            w.int32(p)
    w.int64(v.last_update_ms)
    w.int64(v.start_ms)
    return bytes(w.buf)


def decode_value(data: Buffer) -> TxnLogValue:
    r = Reader(memoryview(data))
    version = r.int16()
    if version > 1:
        raise ProtocolError(f"unsupported TransactionLogValue version {version}")
    flexible = version >= 1
    producer_id = r.int64()
    epoch = r.int16()
    timeout = r.int32()
    state = r.int8()
    partitions: list[TopicPartition] = []
    for _ in range(max(r.array_len(flexible), 0)):
        topic = r.str_(flexible)
        n = r.array_len(flexible)
        partitions.extend(TopicPartition(topic, r.int32()) for _ in range(n))
        if flexible:
            r.skip_tagged_fields()
    last_update = r.int64()
    start = r.int64()
    return TxnLogValue(producer_id, epoch, timeout, state, tuple(partitions), last_update, start)
