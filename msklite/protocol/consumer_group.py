"""Codec of the KIP-848 consumer group APIs: ConsumerGroupHeartbeat (key 68) v0-1 and
ConsumerGroupDescribe (key 69) v0-1 (Apache Kafka's ConsumerGroupHeartbeat*/
ConsumerGroupDescribe* JSON specs; every version is flexible).

Hand-written because kafka-python, whose generated codec serves the other control-plane APIs,
does not ship these specs. Malformed bytes (a null where the spec forbids one included)
raise ProtocolError, as the other decoders do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from msklite.errors import ProtocolError
from msklite.protocol.primitives import Buffer, Reader, Writer

# topic id -> partitions
TopicPartitions = list[tuple[uuid.UUID, list[int]]]


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    subscribed_topic_regex: str | None = None  # v1+
    server_assignor: str | None = None
    topic_partitions: TopicPartitions | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    error_code: int
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = 0
    assignment: TopicPartitions | None = None
    throttle_time_ms: int = 0


def _nullable_array_len(r: Reader) -> int | None:
    n = r.array_len(True)
    return None if n < 0 else n


def _array_len(r: Reader) -> int:
    n = r.array_len(True)
    if n < 0:
        raise ProtocolError("null where an array is required")
    return n


def _int32s(r: Reader) -> list[int]:
    return [r.int32() for _ in range(_array_len(r))]


def decode_heartbeat_request(r: Reader, version: int) -> HeartbeatRequest:
    group_id = r.str_(True)
    member_id = r.str_(True)
    member_epoch = r.int32()
    instance_id = r.nullable_str(True)
    rack_id = r.nullable_str(True)
    rebalance_timeout_ms = r.int32()
    n = _nullable_array_len(r)
    names = None if n is None else [r.str_(True) for _ in range(n)]
    regex = r.nullable_str(True) if version >= 1 else None
    assignor = r.nullable_str(True)
    n = _nullable_array_len(r)
    owned: TopicPartitions | None = None
    if n is not None:
        owned = []
        for _ in range(n):
            topic_id = r.uuid()
            owned.append((topic_id, _int32s(r)))
            r.skip_tagged_fields()
    r.skip_tagged_fields()
    return HeartbeatRequest(
        group_id,
        member_id,
        member_epoch,
        instance_id,
        rack_id,
        rebalance_timeout_ms,
        names,
        regex,
        assignor,
        owned,
    )


def _write_int32s(w: Writer, values: list[int]) -> None:
    w.array_len(len(values), True)
    for v in values:
        w.int32(v)


def encode_heartbeat_response(resp: HeartbeatResponse) -> list[Buffer]:
    w = Writer()
    w.int32(resp.throttle_time_ms)
    w.int16(resp.error_code)
    w.nullable_str(resp.error_message, True)
    w.nullable_str(resp.member_id, True)
    w.int32(resp.member_epoch)
    w.int32(resp.heartbeat_interval_ms)
    if resp.assignment is None:
        w.int8(-1)
    else:
        w.int8(1)
        w.array_len(len(resp.assignment), True)
        for topic_id, partitions in resp.assignment:
            w.uuid(topic_id)
            _write_int32s(w, partitions)
            w.empty_tagged_fields()
        w.empty_tagged_fields()
    w.empty_tagged_fields()
    return [w.buf]


# ---- ConsumerGroupDescribe ----


@dataclass(frozen=True, slots=True)
class DescribeRequest:
    group_ids: list[str]
    include_authorized_operations: bool


@dataclass(frozen=True, slots=True)
class DescribedAssignment:
    # (topic id, topic name, partitions)
    topic_partitions: list[tuple[uuid.UUID, str, list[int]]]


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    assignment: DescribedAssignment
    target_assignment: DescribedAssignment
    member_type: int = 1  # v1+: -1 unknown, 0 classic, 1 consumer


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    error_code: int
    group_id: str
    error_message: str | None = None
    group_state: str = ""
    group_epoch: int = -1
    assignment_epoch: int = -1
    assignor_name: str = ""
    members: list[DescribedMember] = field(default_factory=list)
    authorized_operations: int = -(1 << 31)


def decode_describe_request(r: Reader, version: int) -> DescribeRequest:
    ids = [r.str_(True) for _ in range(_array_len(r))]
    include = r.boolean()
    r.skip_tagged_fields()
    return DescribeRequest(ids, include)


def _write_assignment(w: Writer, a: DescribedAssignment) -> None:
    w.array_len(len(a.topic_partitions), True)
    for topic_id, name, partitions in a.topic_partitions:
        w.uuid(topic_id)
        w.str_(name, True)
        _write_int32s(w, partitions)
        w.empty_tagged_fields()
    w.empty_tagged_fields()


def encode_describe_response(version: int, groups: list[DescribedGroup]) -> list[Buffer]:
    w = Writer()
    w.int32(0)  # throttle_time_ms
    w.array_len(len(groups), True)
    for g in groups:
        w.int16(g.error_code)
        w.nullable_str(g.error_message, True)
        w.str_(g.group_id, True)
        w.str_(g.group_state, True)
        w.int32(g.group_epoch)
        w.int32(g.assignment_epoch)
        w.str_(g.assignor_name, True)
        w.array_len(len(g.members), True)
        for m in g.members:
            w.str_(m.member_id, True)
            w.nullable_str(m.instance_id, True)
            w.nullable_str(m.rack_id, True)
            w.int32(m.member_epoch)
            w.str_(m.client_id, True)
            w.str_(m.client_host, True)
            w.array_len(len(m.subscribed_topic_names), True)
            for name in m.subscribed_topic_names:
                w.str_(name, True)
            w.nullable_str(m.subscribed_topic_regex, True)
            _write_assignment(w, m.assignment)
            _write_assignment(w, m.target_assignment)
            if version >= 1:
                w.int8(m.member_type)
            w.empty_tagged_fields()
        w.int32(g.authorized_operations)
        w.empty_tagged_fields()
    w.empty_tagged_fields()
    return [w.buf]
