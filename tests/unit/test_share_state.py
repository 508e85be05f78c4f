"""The share coordinator's records (`__share_group_state`, Kafka's ShareSnapshot/ShareUpdate
schemas) and its state machine."""

from __future__ import annotations

import uuid

from msklite.coordinator.share_partition import RecordState, StateBatch
from msklite.coordinator.share_state import (
    SNAPSHOT_TYPE,
    UPDATE_TYPE,
    ShareKey,
    ShareState,
    ShareStateCoordinator,
    decode,
    encode_key,
    encode_snapshot,
)
from msklite.errors import ErrorCode
from msklite.protocol.primitives import Writer

TOPIC = uuid.UUID("8f3c51d2-77e4-4b56-9a1a-0d4c1c2b3a4e")
KEY = ShareKey("g", TOPIC, 3)
BATCHES = (
    StateBatch(10, 12, RecordState.ACKNOWLEDGED, 1),
    StateBatch(13, 13, RecordState.AVAILABLE, 2),
)


def test_coordinator_key_prints_the_topic_id_as_kafka_does() -> None:
    # Kafka's Uuid.toString: URL-safe base64 without padding
    assert KEY.coordinator_key() == "g:jzxR0nfkS1aaGg1MHCs6Tg:3"


def test_snapshot_record_layout() -> None:
    key = encode_key(SNAPSHOT_TYPE, KEY)
    # int16 record type, then GroupId (int16-length string), TopicId, Partition
    assert key == b"\x00\x00" + b"\x00\x01g" + TOPIC.bytes + b"\x00\x00\x00\x03"
    state = ShareState(1, 4, 10, BATCHES, 7, 1000, 2000)
    value = encode_snapshot(state)
    assert value[:2] == b"\x00\x00"  # value version 0
    assert decode(key, value) == (SNAPSHOT_TYPE, KEY, state)
    assert decode(key, None) == (SNAPSHOT_TYPE, KEY, None)


def _update(start: int, batches: tuple[StateBatch, ...]) -> bytes:
    w = Writer()
    w.int16(0)
    w.int32(1)  # snapshot epoch
    w.int32(4)  # leader epoch
    w.int64(start)
    w.array_len(len(batches), True)
    for b in batches:
        w.int64(b.first_offset)
        w.int64(b.last_offset)
        w.int8(b.state)
        w.int16(b.delivery_count)
        w.empty_tagged_fields()
    w.empty_tagged_fields()
    return bytes(w.buf)


def test_load_replays_snapshots_updates_and_tombstones() -> None:
    machine = ShareStateCoordinator(50)
    snapshot = encode_snapshot(ShareState(1, 4, 10, BATCHES, 0, 5, 5))
    update = _update(13, (StateBatch(13, 14, RecordState.ARCHIVED, 2),))
    other = ShareKey("g", TOPIC, 4)
    machine.load(
        7,
        [
            (encode_key(SNAPSHOT_TYPE, KEY), snapshot, -1, -1, -1),
            (encode_key(UPDATE_TYPE, KEY), update, -1, -1, -1),
            (encode_key(SNAPSHOT_TYPE, other), snapshot, -1, -1, -1),
            (encode_key(SNAPSHOT_TYPE, other), None, -1, -1, -1),
            (b"\x00\x09junk", b"", -1, -1, -1),  # another version's record: skipped
        ],
        0,
    )
    state = machine.read(KEY)
    assert state is not None
    assert (state.start_offset, state.batches) == (
        13,
        (StateBatch(13, 14, RecordState.ARCHIVED, 2),),
    )
    assert machine.read(other) is None


def test_writes_are_fenced_by_state_and_leader_epoch() -> None:
    machine = ShareStateCoordinator(50)
    error, out = machine.initialize(KEY, 2, 0, 0)
    assert error == ErrorCode.NONE and len(out.records) == 1
    assert machine.write(KEY, 2, 5, 3, list(BATCHES), 1)[0] == ErrorCode.NONE
    assert machine.write(KEY, 1, 5, 3, [], 2)[0] == ErrorCode.FENCED_STATE_EPOCH
    assert machine.write(KEY, 2, 4, 3, [], 2)[0] == ErrorCode.FENCED_LEADER_EPOCH
    partition, key, value = machine.write(KEY, 2, 6, 13, [], 3)[1].records[0]
    assert partition == machine.partition_for(KEY)
    assert decode(key, value)[2] == ShareState(2, 6, 13, (), 2, 0, 3)
