"""The records of `__consumer_offsets`, in Kafka's own key/value schemas (group-coordinator's
OffsetCommitKey/Value and GroupMetadataKey/Value JSON specs), so that tools reading the topic
(kafka-console-consumer's OffsetsMessageFormatter, kafka-dump-log) understand it.

The key's leading int16 version says what a record is: 0 and 1 an offset commit, 2 group
metadata. Versions written are those Kafka 3.x writes: OffsetCommitKey v1, OffsetCommitValue v3
(v1 when the commit carries an explicit expiry, OffsetCommit v2-v4's retention_time_ms),
GroupMetadataKey v2, GroupMetadataValue v3. A null value is a tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass

from msklite.errors import ProtocolError
from msklite.protocol.primitives import Buffer, Reader, Writer

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
OFFSET_VALUE_WITH_EXPIRY_VERSION = 1
GROUP_VALUE_VERSION = 3


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: list[MemberValue]


def _bytes(w: Writer, b: bytes) -> None:
    w.bytes_len(len(b), False)
    w.raw(b)


def encode_offset_key(key: OffsetKey) -> bytes:
    w = Writer()
    w.int16(OFFSET_KEY_VERSION)
    w.str_(key.group_id, False)
    w.str_(key.topic, False)
    w.int32(key.partition)
    return bytes(w.buf)


def encode_group_key(key: GroupKey) -> bytes:
    w = Writer()
    w.int16(GROUP_KEY_VERSION)
    w.str_(key.group_id, False)
    return bytes(w.buf)


def encode_offset_value(v: OffsetValue) -> bytes:
    w = Writer()
    if v.expire_timestamp is not None:
        w.int16(OFFSET_VALUE_WITH_EXPIRY_VERSION)
        w.int64(v.offset)
        w.str_(v.metadata, False)
        w.int64(v.commit_timestamp)
        w.int64(v.expire_timestamp)
    else:
        w.int16(OFFSET_VALUE_VERSION)
        w.int64(v.offset)
        w.int32(v.leader_epoch)
        w.str_(v.metadata, False)
        w.int64(v.commit_timestamp)
    return bytes(w.buf)


def encode_group_value(v: GroupValue) -> bytes:
    w = Writer()
    w.int16(GROUP_VALUE_VERSION)
    w.str_(v.protocol_type, False)
    w.int32(v.generation)
    w.nullable_str(v.protocol, False)
    w.nullable_str(v.leader, False)
    w.int64(v.current_state_timestamp)
    w.array_len(len(v.members), False)
    for m in v.members:
        w.str_(m.member_id, False)
        w.nullable_str(m.group_instance_id, False)
        w.str_(m.client_id, False)
        w.str_(m.client_host, False)
        w.int32(m.rebalance_timeout_ms)
        w.int32(m.session_timeout_ms)
        _bytes(w, m.subscription)
        _bytes(w, m.assignment)
    return bytes(w.buf)


def decode_key(data: Buffer) -> OffsetKey | GroupKey:
    r = Reader(memoryview(data))
    version = r.int16()
    if version in (0, 1):
        return OffsetKey(r.string(), r.string(), r.int32())
    if version == GROUP_KEY_VERSION:
        return GroupKey(r.string())
    raise ProtocolError(f"unknown __consumer_offsets key version {version}")


def decode_offset_value(data: Buffer) -> OffsetValue:
    r = Reader(memoryview(data))
    version = r.int16()
    offset = r.int64()
    leader_epoch = r.int32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.int64()
    expire = r.int64() if version == 1 else None
    return OffsetValue(offset, leader_epoch, metadata, commit_timestamp, expire)


def decode_group_value(data: Buffer) -> GroupValue:
    r = Reader(memoryview(data))
    version = r.int16()
    if version > GROUP_VALUE_VERSION:
        raise ProtocolError(f"unsupported GroupMetadataValue version {version}")
    protocol_type = r.string()
    generation = r.int32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_ts = r.int64() if version >= 2 else -1
    members = []
    for _ in range(r.int32()):
        member_id = r.string()
        instance = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance = r.int32() if version >= 1 else -1
        session = r.int32()
        subscription = bytes(r.bytes_() or b"")
        assignment = bytes(r.bytes_() or b"")
        members.append(
            MemberValue(
                member_id,
                instance,
                client_id,
                client_host,
                rebalance,
                session,
                subscription,
                assignment,
            )
        )
    return GroupValue(protocol_type, generation, protocol, leader, state_ts, members)
