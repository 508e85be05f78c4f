"""Fetch (key 1) request decoder and response encoder, hand-written for the hot path.

Field names follow FetchRequest.json / FetchResponse.json. Versions 4-12 (flexible from 12):
v0-3 would need down-conversion to magic 0/1 (removed in Kafka 4.0) and v13+ address topics
by id. The response is a list of buffers: record data read from the log goes in as the
memoryviews the log returned, so a fetch copies no record bytes before the socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from msklite.protocol.primitives import Buffer, Reader, Writer, encode_uvarint

FLEXIBLE_FROM = 12
_VERSIONS = range(4, 13)

# Fixed-size runs of fields, each read (written) with one unpack (pack): a field at a time
# costs two Python calls per field, ≈10 per partition. The request's leading fields, and a
# partition's:
_HEAD = {v: struct.Struct(">iiiib" + ("ii" if v >= 7 else "")) for v in _VERSIONS}
_PARTITION = {
    v: struct.Struct(
        ">i"  # partition
        + ("i" if v >= 9 else "")  # current_leader_epoch
        + "q"  # fetch_offset
        + ("i" if v >= 12 else "")  # last_fetched_epoch
        + ("q" if v >= 5 else "")  # log_start_offset
        + "i"  # partition_max_bytes
    )
    for v in _VERSIONS
}
# and the response's: throttle_ms, error_code, session_id (v7+); a partition's fields up to
# log_start_offset (v5+)
_RESPONSE_HEAD = struct.Struct(">ihi")
_PARTITION_DATA_V4 = struct.Struct(">ihqq")
_PARTITION_DATA_V5 = struct.Struct(">ihqqq")


@dataclass(slots=True)
class FetchPartition:
    partition: int
    current_leader_epoch: int
    fetch_offset: int
    last_fetched_epoch: int
    log_start_offset: int
    partition_max_bytes: int


@dataclass(slots=True)
class FetchTopic:
    topic: str
    partitions: list[FetchPartition]


@dataclass(slots=True)
class FetchRequest:
    replica_id: int
    max_wait_ms: int
    min_bytes: int
    max_bytes: int
    isolation_level: int
    session_id: int
    session_epoch: int
    topics: list[FetchTopic]
    forgotten_topics_data: list[tuple[str, list[int]]]
    rack_id: str


def decode_request(r: Reader, version: int) -> FetchRequest:
    flex = version >= FLEXIBLE_FROM
    data = r.data
    head = _HEAD[version]
    fields = head.unpack_from(data, r._take(head.size))
    replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level = fields[:5]
    session_id, session_epoch = fields[5:] if version >= 7 else (0, -1)
    layout = _PARTITION[version]
    size = layout.size
    topics = []
    for _ in range(r.array_len(flex)):
        topic = r.str_(flex)
        parts = []
        for _ in range(r.array_len(flex)):
            values = layout.unpack_from(data, r._take(size))
            if version >= 12:
                parts.append(FetchPartition(*values))
            elif version >= 9:
                index, leader_epoch, offset, log_start, limit = values
                parts.append(FetchPartition(index, leader_epoch, offset, -1, log_start, limit))
            elif version >= 5:
                index, offset, log_start, limit = values
                parts.append(FetchPartition(index, -1, offset, -1, log_start, limit))
            else:
                index, offset, limit = values
                parts.append(FetchPartition(index, -1, offset, -1, -1, limit))
            if flex:
                r.skip_tagged_fields()
        if flex:
            r.skip_tagged_fields()
        topics.append(FetchTopic(topic, parts))
    forgotten: list[tuple[str, list[int]]] = []
    if version >= 7:
        for _ in range(r.array_len(flex)):
            topic = r.str_(flex)
            forgotten.append((topic, [r.int32() for _ in range(r.array_len(flex))]))
            if flex:
                r.skip_tagged_fields()
    rack_id = r.str_(flex) if version >= 11 else ""
    if flex:
        r.skip_tagged_fields()
    return FetchRequest(
        replica_id,
        max_wait_ms,
        min_bytes,
        max_bytes,
        isolation_level,
        session_id,
        session_epoch,
        topics,
        forgotten,
        rack_id,
    )


@dataclass(slots=True)
class PartitionData:
    partition_index: int
    error_code: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    preferred_read_replica: int = -1
    records: list[memoryview] = field(default_factory=list)
    # (producer id, first offset) of aborted transactions, read_committed only; None: null
    aborted_transactions: list[tuple[int, int]] | None = None


def encode_response(
    version: int,
    error_code: int,
    session_id: int,
    responses: list[tuple[str, list[PartitionData]]],
    throttle_ms: int = 0,
) -> list[Buffer]:
    flex = version >= FLEXIBLE_FROM
    out: list[Buffer] = []
    w = Writer()
    if version >= 7:
        w.buf += _RESPONSE_HEAD.pack(throttle_ms, error_code, session_id)
    else:
        w.int32(throttle_ms)
    w.array_len(len(responses), flex)
    for topic, parts in responses:
        w.str_(topic, flex)
        w.array_len(len(parts), flex)
        for p in parts:
            if version >= 5:
                w.buf += _PARTITION_DATA_V5.pack(
                    p.partition_index,
                    p.error_code,
                    p.high_watermark,
                    p.last_stable_offset,
                    p.log_start_offset,
                )
            else:
                w.buf += _PARTITION_DATA_V4.pack(
                    p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset
                )
            aborted = p.aborted_transactions
            w.array_len(None if aborted is None else len(aborted), flex)
            for producer_id, first_offset in aborted or ():
                w.int64(producer_id)
                w.int64(first_offset)
                if flex:
                    w.empty_tagged_fields()
            if version >= 11:
                w.int32(p.preferred_read_replica)
            size = sum(len(v) for v in p.records)
            if flex:
                w.buf += encode_uvarint(size + 1)
            else:
                w.int32(size)
            if size:
                out.append(w.buf)
                out.extend(p.records)
                w = Writer()
            if flex:
                w.empty_tagged_fields()
        if flex:
            w.empty_tagged_fields()
    if flex:
        w.empty_tagged_fields()
    out.append(w.buf)
    return out
