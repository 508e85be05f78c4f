"""Hypothesis: framing, record-batch and Metadata encoding invariants."""

from __future__ import annotations

import struct
import uuid

from hypothesis import example, given
from hypothesis import strategies as st

from msklite.errors import KafkaError, ProtocolError
from msklite.protocol import messages as spec
from msklite.protocol import metadata
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.frame import FrameDecoder
from msklite.protocol.records import (
    assign,
    encode_batch,
    iter_records,
    read_header,
    validate_produced_batch,
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(0, 10_000), max_size=20))
def test_frames_survive_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    data = b"".join(struct.pack(">i", len(p)) + p for p in payloads)
    dec = FrameDecoder()
    got = [bytes(f) for chunk in _split(data, cuts) for f in dec.feed(chunk)]
    assert got == payloads
    assert dec.buffered == 0


@given(st.binary(max_size=2000), st.lists(st.integers(0, 10_000), max_size=20))
def test_arbitrary_bytes_yield_frames_or_a_protocol_error(data: bytes, cuts: list[int]) -> None:
    dec = FrameDecoder(max_size=1000)
    try:
        for chunk in _split(data, cuts):
            for frame in dec.feed(chunk):
                assert len(frame) <= 1000
    except ProtocolError:
        pass


records = st.lists(
    st.tuples(st.none() | st.binary(max_size=50), st.none() | st.binary(max_size=200)),
    min_size=1,
    max_size=20,
)


@given(
    records,
    st.integers(0, 4),
    st.integers(0, 2**62),
    st.integers(0, 2**31 - 1),
    st.none() | st.integers(0, 2**40),
)
def test_assign_roundtrips_header_and_keeps_the_batch_valid(
    recs: list[tuple[bytes | None, bytes | None]],
    codec: int,
    base: int,
    epoch: int,
    append_time: int | None,
) -> None:
    batch = encode_batch(recs, codec=codec, timestamp=123, producer_id=4, base_sequence=9)
    before = read_header(batch)
    out = b"".join(bytes(p) for p in assign(memoryview(batch), base, epoch, append_time))
    after = validate_produced_batch(memoryview(out), 10**7)  # CRC still valid
    assert (after.base_offset, after.partition_leader_epoch) == (base, epoch)
    assert after._replace(
        base_offset=0, partition_leader_epoch=0, crc=0, attributes=0, max_timestamp=0
    ) == before._replace(crc=0, attributes=0, max_timestamp=0)
    assert [(r.key, r.value) for r in iter_records(out)] == recs
    assert [r.offset for r in iter_records(out)] == list(range(base, base + len(recs)))


@given(st.binary(min_size=0, max_size=400))
def test_validation_of_arbitrary_bytes_raises_only_kafka_errors(data: bytes) -> None:
    try:
        validate_produced_batch(memoryview(data), 10**6)
    except KafkaError:
        pass


_node_lists = st.lists(st.integers(0, 2**31 - 1), max_size=130)


@given(
    st.integers(0, 12),
    st.lists(
        st.tuples(
            st.integers(-1, 100), st.integers(0, 2**31 - 1), _node_lists, _node_lists, _node_lists
        ),
        max_size=6,
    ),
)
@example(12, [(1, 0, list(range(127)), [1], list(range(2, 130)))])  # two-byte list counts
@example(9, [(1, 0, list(range(126)), list(range(126)), [])])
def test_metadata_partitions_decode_as_encoded(
    version: int, rows: list[tuple[int, int, list[int], list[int], list[int]]]
) -> None:
    """Each partition entry (packed per replica-list sizes, or written field by field when a
    list is too long for a one-byte count) is what kafka-python's spec codec reads back."""
    partitions = [
        metadata.PartitionMetadata(0, i, leader, epoch, replicas, isr, offline)
        for i, (leader, epoch, replicas, isr, offline) in enumerate(rows)
    ]
    fragment = metadata.encode_topic(version, 0, "t", uuid.UUID(int=7), False, partitions)
    wire = b"".join(bytes(p) for p in metadata.encode_response(version, [], "c", 1, [fragment]))
    [topic] = spec.response_class(ApiKey.METADATA).decode(wire, version=version).topics
    got = [
        (
            p.partition_index,
            p.leader_id,
            p.leader_epoch if version >= 7 else None,
            list(p.replica_nodes),
            list(p.isr_nodes),
            list(p.offline_replicas) if version >= 5 else None,
        )
        for p in topic.partitions
    ]
    assert got == [
        (
            p.partition_index,
            p.leader_id,
            p.leader_epoch if version >= 7 else None,
            p.replica_nodes,
            p.isr_nodes,
            p.offline_replicas if version >= 5 else None,
        )
        for p in partitions
    ]
