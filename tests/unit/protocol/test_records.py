"""Record batch validation and the in-place offset/epoch assignment."""

from __future__ import annotations

import struct

import pytest

from msklite.errors import ErrorCode, KafkaError
from msklite.protocol.records import (
    ABORT_MARKER,
    COMMIT_MARKER,
    CONTROL,
    CRC_START,
    HEADER_SIZE,
    TRANSACTIONAL,
    assign,
    control_batch,
    control_marker,
    encode_batch,
    iter_records,
    read_header,
    scan_valid_prefix,
    validate_produced_batch,
)


def _validate(data: bytes, limit: int = 1_048_588) -> ErrorCode:
    try:
        validate_produced_batch(memoryview(data), limit)
    except KafkaError as e:
        return e.code
    return ErrorCode.NONE


def test_valid_batch_header() -> None:
    batch = encode_batch([(b"a", b"1"), (b"b", b"2")], timestamp=99, producer_id=7, base_sequence=3)
    h = validate_produced_batch(memoryview(batch), 10_000)
    assert (h.records_count, h.last_offset_delta, h.max_timestamp) == (2, 1, 99)
    assert (h.producer_id, h.base_sequence, h.last_sequence) == (7, 3, 4)
    assert h.size == len(batch) and HEADER_SIZE == 61


def test_bad_crc_is_corrupt_message() -> None:
    batch = bytearray(encode_batch([(b"a", b"1")]))
    batch[-1] ^= 0xFF
    assert _validate(bytes(batch)) == ErrorCode.CORRUPT_MESSAGE


def test_length_mismatch_is_corrupt_message() -> None:
    batch = encode_batch([(b"a", b"1")])
    assert _validate(batch[:-1]) == ErrorCode.CORRUPT_MESSAGE
    assert _validate(batch[:20]) == ErrorCode.CORRUPT_MESSAGE


def test_two_batches_are_an_invalid_record() -> None:
    batch = encode_batch([(b"a", b"1")])
    assert _validate(batch + batch) == ErrorCode.INVALID_RECORD


def test_old_magic_is_an_invalid_record() -> None:
    batch = bytearray(encode_batch([(b"a", b"1")]))
    batch[16] = 1
    assert _validate(bytes(batch)) == ErrorCode.INVALID_RECORD


def test_too_large_is_message_too_large() -> None:
    batch = encode_batch([(b"a", b"x" * 2000)])
    assert _validate(batch, limit=1000) == ErrorCode.MESSAGE_TOO_LARGE


def test_unknown_codec_is_refused() -> None:
    batch = bytearray(encode_batch([(b"a", b"1")]))
    struct.pack_into(">h", batch, 21, 7)  # attributes: codec 7
    import crc32c

    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[CRC_START:])))
    assert _validate(bytes(batch)) == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


def test_assign_patches_offset_and_epoch_without_touching_the_crc() -> None:
    batch = encode_batch([(b"a", b"1"), (b"b", b"2")])
    out = b"".join(bytes(p) for p in assign(memoryview(batch), 1000, 9))
    h = read_header(out)
    assert (h.base_offset, h.partition_leader_epoch, h.crc) == (1000, 9, read_header(batch).crc)
    assert out[CRC_START:] == batch[CRC_START:]
    assert [r.offset for r in iter_records(out)] == [1000, 1001]


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_log_append_time_rewrites_header_with_a_valid_crc(codec: int) -> None:
    batch = encode_batch([(b"a", b"1"), (None, b"2")], timestamp=5, codec=codec)
    out = b"".join(bytes(p) for p in assign(memoryview(batch), 0, 0, log_append_time=777))
    h = validate_produced_batch(memoryview(out), 10_000)
    assert h.max_timestamp == 777 and h.attributes & 0x08
    assert [(r.key, r.value, r.timestamp) for r in iter_records(out)] == [
        (b"a", b"1", 777),
        (None, b"2", 777),
    ]


def test_scan_valid_prefix_stops_at_a_torn_batch() -> None:
    a = encode_batch([(b"a", b"1")], base_offset=0)
    b = encode_batch([(b"b", b"2")], base_offset=1)
    data = a + b + b[: len(b) // 2]
    assert [pos for pos, _ in scan_valid_prefix(data, 0, len(data))] == [0, len(a)]
    zeros = a + bytes(100)
    assert [pos for pos, _ in scan_valid_prefix(zeros, 0, len(zeros))] == [0]


def test_control_marker_reads_type_and_coordinator_epoch() -> None:
    for commit, kind in ((True, COMMIT_MARKER), (False, ABORT_MARKER)):
        batch = control_batch(7, 2, commit, 5, 99)
        assert control_marker(batch, read_header(batch)) == (kind, 5)
    # a control record that is not a marker's: neither read
    other = encode_batch(
        [(struct.pack(">hh", 1, 1), struct.pack(">h", 0))],
        producer_id=7,
        attributes=TRANSACTIONAL | CONTROL,
    )
    assert control_marker(other, read_header(other)) == (-1, -1)
