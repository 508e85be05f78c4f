"""The records a KIP-848 consumer group writes to `__consumer_offsets`, in Kafka's own schemas
(group-coordinator's ConsumerGroup*Key/Value JSON specs), so that a coordinator loading the
partition — after a restart or a leadership move — rebuilds every group exactly.

The key's leading int16 says what a record is (Kafka's record type):
3 ConsumerGroupMetadata (group epoch), 4 ConsumerGroupPartitionMetadata (the subscribed
topics' metadata), 5 ConsumerGroupMemberMetadata (a member's subscription), 6
ConsumerGroupTargetAssignmentMetadata (assignment epoch), 7 ConsumerGroupTargetAssignmentMember
(a member's target), 8 ConsumerGroupCurrentMemberAssignment (a member's epoch, state and
partitions). Keys are non-flexible; every value is version 0 and flexible. A null value is a
tombstone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from msklite.errors import ProtocolError
from msklite.protocol.primitives import Buffer, Reader, Writer

GROUP_METADATA = 3
PARTITION_METADATA = 4
MEMBER_METADATA = 5
TARGET_METADATA = 6
TARGET_MEMBER = 7
CURRENT_MEMBER = 8
RECORD_TYPES = range(GROUP_METADATA, CURRENT_MEMBER + 1)

# topic id -> partitions, as the records carry assignments
Assignment = dict[uuid.UUID, frozenset[int]]


@dataclass(frozen=True, slots=True)
class ConsumerKey:
    record_type: int
    group_id: str
    member_id: str | None = None  # types 5, 7 and 8


@dataclass(frozen=True, slots=True)
class ClassicMemberMetadata:
    """What a member that speaks the classic protocol inside a consumer group joined with
    (tagged field 0 of ConsumerGroupMemberMetadataValue; absent for consumer-protocol
    members)."""

    session_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None
    classic: ClassicMemberMetadata | None = None


@dataclass(frozen=True, slots=True)
class CurrentAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: Assignment
    pending_revocation: Assignment


def encode_key(key: ConsumerKey) -> bytes:
    w = Writer()
    w.int16(key.record_type)
    w.str_(key.group_id, False)
    if key.record_type in (MEMBER_METADATA, TARGET_MEMBER, CURRENT_MEMBER):
        assert key.member_id is not None
        w.str_(key.member_id, False)
    return bytes(w.buf)


def decode_key(r: Reader, record_type: int) -> ConsumerKey:
    """The rest of a key whose leading int16 (`record_type`) was read already."""
    group_id = r.string()
    member_id = (
        r.string() if record_type in (MEMBER_METADATA, TARGET_MEMBER, CURRENT_MEMBER) else None
    )
    return ConsumerKey(record_type, group_id, member_id)


def _value_writer() -> Writer:
    w = Writer()
    w.int16(0)
    return w


def _value_reader(data: Buffer) -> Reader:
    r = Reader(memoryview(data))
    version = r.int16()
    if version != 0:
        raise ProtocolError(f"unsupported consumer group record value version {version}")
    return r


def _strings(w: Writer, values: tuple[str, ...] | list[str]) -> None:
    w.array_len(len(values), True)
    for v in values:
        w.str_(v, True)


def _read_strings(r: Reader) -> tuple[str, ...]:
    return tuple(r.str_(True) for _ in range(max(r.array_len(True), 0)))


def _assignment(w: Writer, a: Assignment) -> None:
    w.array_len(len(a), True)
    for topic_id, partitions in sorted(a.items()):
        w.uuid(topic_id)
        w.array_len(len(partitions), True)
        for p in sorted(partitions):
            w.int32(p)
        w.empty_tagged_fields()


def _read_assignment(r: Reader) -> Assignment:
    out: Assignment = {}
    for _ in range(max(r.array_len(True), 0)):
        topic_id = r.uuid()
        out[topic_id] = frozenset(r.int32() for _ in range(max(r.array_len(True), 0)))
        r.skip_tagged_fields()
    return out


def encode_group_metadata(epoch: int) -> bytes:
    w = _value_writer()
    w.int32(epoch)
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_group_metadata(data: Buffer) -> int:
    return _value_reader(data).int32()


def encode_partition_metadata(topics: dict[str, tuple[uuid.UUID, int]]) -> bytes:
    """Subscribed topic name -> (topic id, partition count); racks are not tracked."""
    w = _value_writer()
    w.array_len(len(topics), True)
    for name, (topic_id, partitions) in sorted(topics.items()):
        w.uuid(topic_id)
        w.str_(name, True)
        w.int32(partitions)
        w.array_len(0, True)  # PartitionMetadata (racks), deprecated since 4.0
        w.empty_tagged_fields()
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_partition_metadata(data: Buffer) -> dict[str, tuple[uuid.UUID, int]]:
    r = _value_reader(data)
    out = {}
    for _ in range(max(r.array_len(True), 0)):
        topic_id = r.uuid()
        name = r.str_(True)
        partitions = r.int32()
        for _ in range(max(r.array_len(True), 0)):
            r.int32()
            _read_strings(r)
            r.skip_tagged_fields()
        r.skip_tagged_fields()
        out[name] = (topic_id, partitions)
    return out


def encode_member_metadata(m: MemberMetadata) -> bytes:
    w = _value_writer()
    w.nullable_str(m.instance_id, True)
    w.nullable_str(m.rack_id, True)
    w.str_(m.client_id, True)
    w.str_(m.client_host, True)
    _strings(w, m.subscribed_topic_names)
    w.nullable_str(m.subscribed_topic_regex, True)
    w.int32(m.rebalance_timeout_ms)
    w.nullable_str(m.server_assignor, True)
    if m.classic is None:
        w.empty_tagged_fields()
        return bytes(w.buf)
    c = Writer()
    c.int8(1)  # a nullable struct's presence byte
    c.int32(m.classic.session_timeout_ms)
    c.array_len(len(m.classic.protocols), True)
    for name, metadata in m.classic.protocols:
        c.str_(name, True)
        c.bytes_len(len(metadata), True)
        c.raw(metadata)
        c.empty_tagged_fields()
    c.empty_tagged_fields()
    w.uvarint(1)  # one tagged field: tag 0, its size, the struct
    w.uvarint(0)
    w.uvarint(len(c.buf))
    w.raw(c.buf)
    return bytes(w.buf)


def _read_classic(r: Reader) -> ClassicMemberMetadata | None:
    if r.int8() < 0:
        return None
    session_timeout_ms = r.int32()
    protocols = []
    for _ in range(max(r.array_len(True), 0)):
        name = r.str_(True)
        metadata = r.compact_bytes()
        r.skip_tagged_fields()
        protocols.append((name, bytes(metadata or b"")))
    r.skip_tagged_fields()
    return ClassicMemberMetadata(session_timeout_ms, tuple(protocols))


def decode_member_metadata(data: Buffer) -> MemberMetadata:
    r = _value_reader(data)
    instance_id = r.nullable_str(True)
    rack_id = r.nullable_str(True)
    client_id = r.str_(True)
    client_host = r.str_(True)
    topics = _read_strings(r)
    regex = r.nullable_str(True)
    rebalance_timeout_ms = r.int32()
    server_assignor = r.nullable_str(True)
    classic = None
    for _ in range(r.uvarint()):
        tag = r.uvarint()
        size = r.uvarint()
        if tag == 0:
            classic = _read_classic(Reader(r.raw(size)))
        else:
            r.raw(size)
    return MemberMetadata(
        instance_id,
        rack_id,
        client_id,
        client_host,
        topics,
        regex,
        rebalance_timeout_ms,
        server_assignor,
        classic,
    )


def encode_target_metadata(assignment_epoch: int) -> bytes:
    return encode_group_metadata(assignment_epoch)  # the same shape: one int32


def decode_target_metadata(data: Buffer) -> int:
    return decode_group_metadata(data)


def encode_target_member(a: Assignment) -> bytes:
    w = _value_writer()
    _assignment(w, a)
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_target_member(data: Buffer) -> Assignment:
    return _read_assignment(_value_reader(data))


def encode_current_member(c: CurrentAssignment) -> bytes:
    w = _value_writer()
    w.int32(c.member_epoch)
    w.int32(c.previous_member_epoch)
    w.int8(c.state)
    _assignment(w, c.assigned)
    _assignment(w, c.pending_revocation)
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_current_member(data: Buffer) -> CurrentAssignment:
    r = _value_reader(data)
    return CurrentAssignment(
        member_epoch=r.int32(),
        previous_member_epoch=r.int32(),
        state=r.int8(),
        assigned=_read_assignment(r),
        pending_revocation=_read_assignment(r),
    )
