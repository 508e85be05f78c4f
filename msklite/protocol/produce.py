"""Produce (key 0) request decoder and response encoder, hand-written for the hot path.

Field names follow ProduceRequest.json / ProduceResponse.json. Versions 3-11 (flexible from 9):
v0-2 carried magic 0/1 message sets and were removed in Kafka 4.0; v12 only signals KIP-890
transactions and v13 replaces topic names with ids. The `records` of each partition stay a
memoryview of the request frame: never copied, never parsed here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from msklite.protocol.primitives import Reader, Writer

FLEXIBLE_FROM = 9
# Fixed-size runs of fields read (written) with one unpack (pack) each, not a call per field:
# acks and timeout_ms; a partition's index and (before flexible versions) its records' length.
_ACKS_TIMEOUT = struct.Struct(">hi")
_INDEX_LENGTH = struct.Struct(">ii")
# A partition's response fields up to log_start_offset (v5+), written with one pack.
_PARTITION_V3 = struct.Struct(">ihqq")
_PARTITION_V5 = struct.Struct(">ihqqq")


@dataclass(slots=True)
class PartitionProduceData:
    index: int
    records: memoryview | None


@dataclass(slots=True)
class TopicProduceData:
    name: str
    partition_data: list[PartitionProduceData]


@dataclass(slots=True)
class ProduceRequest:
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: list[TopicProduceData]


def decode_request(r: Reader, version: int) -> ProduceRequest:
    flex = version >= FLEXIBLE_FROM
    transactional_id = r.nullable_str(flex)
    data = r.data
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(data, r._take(6))
    topics = []
    for _ in range(r.array_len(flex)):
        name = r.str_(flex)
        parts = []
        for _ in range(r.array_len(flex)):
            records: memoryview | None
            if flex:
                index = r.int32()
                records = r.compact_bytes()
                r.skip_tagged_fields()
            else:
                index, n = _INDEX_LENGTH.unpack_from(data, r._take(8))
                records = None if n < 0 else r.raw(n)
            parts.append(PartitionProduceData(index, records))
        if flex:
            r.skip_tagged_fields()
        topics.append(TopicProduceData(name, parts))
    if flex:
        r.skip_tagged_fields()
    return ProduceRequest(transactional_id, acks, timeout_ms, topics)


@dataclass(slots=True)
class PartitionProduceResponse:
    index: int
    error_code: int = 0
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)


def encode_response(
    version: int,
    responses: list[tuple[str, list[PartitionProduceResponse]]],
    throttle_ms: int = 0,
) -> bytearray:
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    w.array_len(len(responses), flex)
    for name, parts in responses:
        w.str_(name, flex)
        w.array_len(len(parts), flex)
        for p in parts:
            if version >= 5:
                w.buf += _PARTITION_V5.pack(
                    p.index, p.error_code, p.base_offset, p.log_append_time_ms, p.log_start_offset
                )
            else:
                w.buf += _PARTITION_V3.pack(
                    p.index, p.error_code, p.base_offset, p.log_append_time_ms
                )
            if version >= 8:
                w.array_len(len(p.record_errors), flex)
                for batch_index, message in p.record_errors:
                    w.int32(batch_index)
                    w.nullable_str(message, flex)
                    if flex:
                        w.empty_tagged_fields()
                w.nullable_str(p.error_message, flex)
            if flex:
                w.empty_tagged_fields()
        if flex:
            w.empty_tagged_fields()
    w.int32(throttle_ms)
    if flex:
        w.empty_tagged_fields()
    return w.buf
