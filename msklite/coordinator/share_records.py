"""The records a share group (KIP-932) writes to `__consumer_offsets`, in Kafka 4.2's schemas
(group-coordinator's ShareGroup*Key/Value JSON specs), so that a coordinator loading the
partition — after a restart or a leadership move — rebuilds the group's epochs and members.

The key's leading int16 says what a record is (Kafka's record type): 10
ShareGroupMemberMetadata (a member's subscription), 11 ShareGroupMetadata (group epoch and
the subscribed topics' metadata hash), 12 ShareGroupTargetAssignmentMetadata (assignment
epoch), 13 ShareGroupTargetAssignmentMember (a member's target), 14
ShareGroupCurrentMemberAssignment (a member's epoch, state and partitions), 15
ShareGroupStatePartitionMetadata (the topics whose share-partition state the group
coordinator initialised; msklite's share-partition leaders initialise their state themselves,
so only its tombstone is written, when a group is deleted). Type 9
(ShareGroupPartitionMetadata) was Kafka 4.0's and is gone since 4.1 (KIP-1101's metadata hash
replaced it). Keys are non-flexible; every value is version 0
and flexible. A null value is a tombstone.
"""

from __future__ import annotations

from dataclasses import dataclass

from msklite.coordinator.consumer_records import (
    Assignment,
    _read_assignment,
    _read_strings,
    _strings,
    _value_reader,
    _value_writer,
    decode_target_member,
    decode_target_metadata,
    encode_target_member,
    encode_target_metadata,
)
from msklite.protocol.primitives import Buffer, Reader, Writer

MEMBER_METADATA = 10
GROUP_METADATA = 11
TARGET_METADATA = 12
TARGET_MEMBER = 13
CURRENT_MEMBER = 14
STATE_PARTITION_METADATA = 15
RECORD_TYPES = range(MEMBER_METADATA, STATE_PARTITION_METADATA + 1)
_MEMBER_KEYED = (MEMBER_METADATA, TARGET_MEMBER, CURRENT_MEMBER)
# Kafka's MemberState.STABLE: a share member has no other state
STABLE = 0

# the target and its metadata have the consumer groups' shapes
__all__ = [
    "Assignment",
    "decode_target_member",
    "decode_target_metadata",
    "encode_target_member",
    "encode_target_metadata",
]


@dataclass(frozen=True, slots=True)
class ShareRecordKey:
    record_type: int
    group_id: str
    member_id: str | None = None  # types 10, 13 and 14


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CurrentAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: Assignment


def encode_key(key: ShareRecordKey) -> bytes:
    w = Writer()
    w.int16(key.record_type)
    w.str_(key.group_id, False)
    if key.record_type in _MEMBER_KEYED:
        assert key.member_id is not None
        w.str_(key.member_id, False)
    return bytes(w.buf)


def decode_key(r: Reader, record_type: int) -> ShareRecordKey:
    """The rest of a key whose leading int16 (`record_type`) was read already."""
    group_id = r.string()
    member_id = r.string() if record_type in _MEMBER_KEYED else None
    return ShareRecordKey(record_type, group_id, member_id)


def encode_member_metadata(m: MemberMetadata) -> bytes:
    w = _value_writer()
    w.nullable_str(m.rack_id, True)
    w.str_(m.client_id, True)
    w.str_(m.client_host, True)
    _strings(w, m.subscribed_topic_names)
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_member_metadata(data: Buffer) -> MemberMetadata:
    r = _value_reader(data)
    return MemberMetadata(
        rack_id=r.nullable_str(True),
        client_id=r.str_(True),
        client_host=r.str_(True),
        subscribed_topic_names=_read_strings(r),
    )


def encode_group_metadata(epoch: int, metadata_hash: int) -> bytes:
    w = _value_writer()
    w.int32(epoch)
    w.int64(metadata_hash)
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_group_metadata(data: Buffer) -> tuple[int, int]:
    """(epoch, metadata hash); a 4.0 record without the hash reads as hash 0."""
    r = _value_reader(data)
    epoch = r.int32()
    return epoch, r.int64() if r.remaining() > 1 else 0


def encode_current_member(c: CurrentAssignment) -> bytes:
    w = _value_writer()
    w.int32(c.member_epoch)
    w.int32(c.previous_member_epoch)
    w.int8(c.state)
    w.array_len(len(c.assigned), True)
    for topic_id, partitions in sorted(c.assigned.items()):
        w.uuid(topic_id)
        w.array_len(len(partitions), True)
        for p in sorted(partitions):
            w.int32(p)
        w.empty_tagged_fields()
    w.empty_tagged_fields()
    return bytes(w.buf)


def decode_current_member(data: Buffer) -> CurrentAssignment:
    r = _value_reader(data)
    return CurrentAssignment(
        member_epoch=r.int32(),
        previous_member_epoch=r.int32(),
        state=r.int8(),
        assigned=_read_assignment(r),
    )
