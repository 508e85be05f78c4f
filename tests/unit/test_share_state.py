"""The share coordinator's records (`__share_group_state`, Kafka's ShareSnapshot/ShareUpdate
schemas) and its state machine."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.coordinator.share_partition import RecordState, StateBatch
from msklite.coordinator.share_state import (
    SNAPSHOT_TYPE,
    UPDATE_TYPE,
    ShareKey,
    ShareState,
    ShareStateCoordinator,
    _per_offset,
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
    # offset 13 leaves the state above the SPSO, which only a snapshot can say
    partition, key, value = machine.write(KEY, 2, 6, 13, [], 3)[1].records[0]
    assert partition == machine.partition_for(KEY)
    assert decode(key, value)[:2] == (SNAPSHOT_TYPE, KEY)
    assert decode(key, value)[2] == ShareState(2, 6, 13, (), 1, 0, 3)


def test_a_write_is_an_update_of_what_changed_then_a_snapshot_every_n_updates() -> None:
    machine = ShareStateCoordinator(50, updates_per_snapshot=2)
    machine.initialize(KEY, 1, 10, 0)
    first = [StateBatch(10, 14, RecordState.AVAILABLE, 1)]
    second = [
        StateBatch(10, 11, RecordState.ACKNOWLEDGED, 1),
        StateBatch(12, 14, RecordState.AVAILABLE, 1),
    ]
    written = []
    for now, batches in enumerate([first, second, second, first], start=1):
        _, out = machine.write(KEY, 1, 0, 10, batches, now)
        ((_, key, value),) = out.records
        record_type, _, state = decode(key, value)
        assert state is not None
        written.append((record_type, state.snapshot_epoch, state.batches))
    # an update carries what changed only, under the last snapshot's epoch; the third write
    # follows two updates: a snapshot, of everything
    assert written == [
        (UPDATE_TYPE, 0, tuple(first)),
        (UPDATE_TYPE, 0, (StateBatch(10, 11, RecordState.ACKNOWLEDGED, 1),)),
        (SNAPSHOT_TYPE, 1, tuple(second)),
        (UPDATE_TYPE, 1, (StateBatch(10, 11, RecordState.AVAILABLE, 1),)),
    ]
    state = machine.read(KEY)
    assert state is not None
    assert (state.snapshot_epoch, state.batches) == (1, tuple(first))


_BATCH = st.tuples(
    st.integers(0, 30),
    st.integers(0, 4),
    st.sampled_from([RecordState.AVAILABLE, RecordState.ACKNOWLEDGED, RecordState.ARCHIVED]),
    st.integers(0, 5),
)
_WRITE = st.tuples(
    st.sampled_from([0, 1]),  # which partition of the group
    st.integers(0, 3),  # state epoch bump
    st.integers(0, 2),  # leader epoch bump
    st.integers(0, 5),  # SPSO advance
    st.lists(_BATCH, max_size=5),
    st.booleans(),  # a delete
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_WRITE, max_size=25), st.integers(1, 4))
def test_replaying_the_records_rebuilds_the_live_state(
    writes: list[tuple[int, int, int, int, list[tuple[int, int, RecordState, int]], bool]],
    per_snapshot: int,
) -> None:
    """Random writes, snapshots and updates interleaved: a coordinator loading the records
    has the live state, which is what the writer wrote (from its SPSO on)."""
    live = ShareStateCoordinator(50, updates_per_snapshot=per_snapshot)
    keys = [KEY, ShareKey("g", TOPIC, 9)]
    epochs = {k: [0, 0, 0] for k in keys}  # state epoch, leader epoch, SPSO
    records = []
    for which, state_bump, leader_bump, advance, raw, delete in writes:
        key = keys[which]
        if delete:
            records.extend(live.delete(key)[1].records)
            epochs[key] = [0, 0, 0]
            continue
        e = epochs[key]
        e[0] += state_bump == 3  # now and then a new state epoch
        e[1] += leader_bump == 2
        e[2] += advance
        batches = [StateBatch(e[2] + f, e[2] + f + n, s, c) for f, n, s, c in raw]
        error, out = live.write(key, e[0], e[1], e[2], batches, len(records))
        assert error == ErrorCode.NONE
        records.extend(out.records)
        state = live.read(key)
        assert state is not None
        expected = {o: v for o, v in _per_offset(batches).items() if o >= e[2]}
        assert _per_offset(state.batches) == expected
    for p in {live.partition_for(k) for k in keys}:
        replayed = ShareStateCoordinator(50, updates_per_snapshot=per_snapshot)
        replayed.load(p, [(k, v, -1, -1, -1) for q, k, v in records if q == p], 0)
        mine = {k: s for k, s in live.states.items() if live.partition_for(k) == p}
        assert replayed.states == mine
        assert {k: n for k, n in replayed.updates.items() if k in mine} == {
            k: live.updates[k] for k in mine
        }
