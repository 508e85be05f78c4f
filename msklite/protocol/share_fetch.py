"""ShareFetch (key 78) response encoder, hand-written for the hot path as Fetch's is: record
data read from the log goes in as the memoryviews the log returned, so a share fetch copies no
record bytes before the socket (the spec codec would copy them, and takes ~0.2 s per MiB).

Field names follow ShareFetchResponse.json; v1 and v2 answer alike, flexible throughout. The
request is small and goes through the spec codec (`schemas.ShareFetchRequest`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from msklite.protocol.primitives import Buffer, Writer


@dataclass(slots=True)
class SharePartitionData:
    partition_index: int
    error_code: int = 0
    acknowledge_error_code: int = 0
    leader_id: int = -1
    leader_epoch: int = -1
    records: list[Buffer] = field(default_factory=list)
    # AcquiredRecords: (first offset, last offset, delivery count)
    acquired: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    node_id: int
    host: str
    port: int
    rack: str | None


def encode_response(
    error_code: int,
    error_message: str | None,
    acquisition_lock_timeout_ms: int,
    responses: list[tuple[uuid.UUID, list[SharePartitionData]]],
    node_endpoints: list[NodeEndpoint],
) -> list[Buffer]:
    out: list[Buffer] = []
    w = Writer()
    w.int32(0)  # throttle_time_ms
    w.int16(error_code)
    w.nullable_str(error_message, True)
    w.int32(acquisition_lock_timeout_ms)
    w.array_len(len(responses), True)
    for topic_id, parts in responses:
        w.uuid(topic_id)
        w.array_len(len(parts), True)
        for p in parts:
            w.int32(p.partition_index)
            w.int16(p.error_code)
            w.nullable_str(None, True)  # error_message
            w.int16(p.acknowledge_error_code)
            w.nullable_str(None, True)  # acknowledge_error_message
            w.int32(p.leader_id)  # current_leader
            w.int32(p.leader_epoch)
            w.empty_tagged_fields()
            size = sum(len(v) for v in p.records)
            w.uvarint(size + 1)
            if size:
                out.append(w.buf)
                out.extend(p.records)
                w = Writer()
            w.array_len(len(p.acquired), True)
            for first, last, count in p.acquired:
                w.int64(first)
                w.int64(last)
                w.int16(count)
                w.empty_tagged_fields()
            w.empty_tagged_fields()
        w.empty_tagged_fields()
    w.array_len(len(node_endpoints), True)
    for e in node_endpoints:
        w.int32(e.node_id)
        w.str_(e.host, True)
        w.int32(e.port)
        w.nullable_str(e.rack, True)
        w.empty_tagged_fields()
    w.empty_tagged_fields()
    out.append(w.buf)
    return out
