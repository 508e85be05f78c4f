"""Record-level validation of produced batches (Kafka's LogValidator / DefaultRecord.readFrom),
and varint/varlong decoding as Kafka's ByteUtils reads them."""

from __future__ import annotations

import os
import struct

import cramjam
import pytest

from msklite.errors import ErrorCode, KafkaError, ProtocolError
from msklite.protocol import records as records_module
from msklite.protocol.primitives import (
    VARLONG_BYTES,
    Reader,
    decode_uvarint,
    encode_uvarint,
    zigzag,
)
from msklite.protocol.records import (
    HEADER_SIZE,
    XERIAL_MAGIC,
    RecordErrors,
    encode_batch,
    iter_records,
    seal_batch,
    validate_produced_batch,
    walk_records,
)


def zz(v: int) -> bytes:
    """A zig-zag varint/varlong."""
    return encode_uvarint((v << 1) ^ (v >> 63))


def record(
    *,
    ts: bytes = zz(0),
    off: bytes = zz(0),
    key: bytes = zz(-1),
    value: bytes = zz(1) + b"v",
    headers: bytes = zz(0),
    extra: bytes = b"",
    length: int | None = None,
) -> bytes:
    body = b"\x00" + ts + off + key + value + headers + extra
    return zz(len(body) if length is None else length) + body


def code(batch: bytes, **kwargs: object) -> ErrorCode:
    try:
        validate_produced_batch(memoryview(batch), 1 << 30, **kwargs)  # type: ignore[arg-type]
    except KafkaError as e:
        return e.code
    return ErrorCode.NONE


# ---- the two poison batches of the issue ----


def test_gzip_flag_over_raw_bytes_is_corrupt_message() -> None:
    raw = record() * 3
    assert code(seal_batch(raw, 3, attributes=1)) == ErrorCode.CORRUPT_MESSAGE


def test_random_bytes_with_a_correct_crc_are_an_invalid_record() -> None:
    rng = bytes((i * 151 + 7) % 256 for i in range(4000))
    assert code(seal_batch(rng, 10)) == ErrorCode.INVALID_RECORD


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_each_codec_refuses_what_it_cannot_decompress(codec: int) -> None:
    good = encode_batch([(b"k", b"v" * 100)] * 5, codec=codec)
    body = bytearray(good[HEADER_SIZE:])
    body[len(body) // 2 :] = bytes(len(body) - len(body) // 2)  # zero the second half
    assert code(seal_batch(bytes(body), 5, attributes=codec)) == ErrorCode.CORRUPT_MESSAGE
    assert code(seal_batch(b"", 5, attributes=codec)) == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_compressed_records_are_walked_too(codec: int) -> None:
    payload = record() + record(off=zz(1)) + b"\x00"  # a stray byte after the last record
    squeezed = records_module._compress(codec, payload)
    assert code(seal_batch(squeezed, 2, attributes=codec)) == ErrorCode.INVALID_RECORD


# ---- record framing ----


@pytest.mark.parametrize(
    ("payload", "count"),
    [
        (record(length=200), 1),  # claims more than the batch holds
        (record(length=5), 1),  # shorter than its own fields
        (record(extra=b"\x00"), 1),  # a byte after the header count, inside the record
        (record() + b"\x00", 1),  # a byte after the last record
        (record(), 2),  # fewer records than records_count
        (record() * 2, 1),  # more
        (record(headers=zz(-1)), 1),  # negative header count
        (record(headers=zz(1) + zz(-1) + zz(-1)), 1),  # negative header key length
        (record(headers=zz(1000)), 1),  # more headers than bytes left
        (record(headers=zz(1) + zz(5) + b"ab"), 1),  # header key runs past the end
        (record(key=zz(50)), 1),  # key runs past the record
        (record(off=b"\x80\x80\x80\x80\x80\x00"), 1),  # a 6-byte varint
        (record(ts=b"\x80" * 10 + b"\x00"), 1),  # an 11-byte varlong
        (record()[:-1], 1),  # cut short
    ],
    ids=[
        "length-overrun",
        "length-short",
        "bytes-inside-record",
        "bytes-after-last",
        "too-few",
        "too-many",
        "negative-header-count",
        "negative-header-key",
        "header-count-beyond-data",
        "header-key-overrun",
        "key-overrun",
        "long-varint",
        "long-varlong",
        "truncated",
    ],
)
def test_record_framing_faults_are_invalid_record(payload: bytes, count: int) -> None:
    assert code(seal_batch(payload, count)) == ErrorCode.INVALID_RECORD


def test_negative_lengths_are_nulls_as_in_kafka() -> None:
    # Kafka's Utils.readBytes reads any negative size as null: -5 is as valid as -1.
    batch = seal_batch(record(key=zz(-5), value=zz(-2), headers=zz(1) + zz(1) + b"h" + zz(-3)), 1)
    assert code(batch) == ErrorCode.NONE
    [rec] = iter_records(batch)
    assert (rec.key, rec.value, rec.headers) == (None, None, [("h", None)])


def test_uncompressed_offset_deltas_are_not_checked_as_in_kafka() -> None:
    assert code(seal_batch(record(off=zz(7)) + record(off=zz(3)), 2)) == ErrorCode.NONE


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_compressed_offset_deltas_must_count_from_zero(codec: int) -> None:
    payload = record(off=zz(1)) + record(off=zz(0))
    squeezed = records_module._compress(codec, payload)
    assert code(seal_batch(squeezed, 2, attributes=codec)) == ErrorCode.INVALID_RECORD
    in_order = records_module._compress(codec, record() + record(off=zz(1)))
    assert code(seal_batch(in_order, 2, attributes=codec)) == ErrorCode.NONE


def test_null_key_on_a_compacted_topic_is_an_invalid_record() -> None:
    batch = encode_batch([(b"k", b"1"), (None, b"2")])
    assert code(batch, keys_required=True) == ErrorCode.INVALID_RECORD
    assert code(batch) == ErrorCode.NONE
    assert code(encode_batch([(b"k", b"1")]), keys_required=True) == ErrorCode.NONE


def test_idempotent_batch_without_sequence_is_an_invalid_record() -> None:
    assert code(encode_batch([(b"k", b"1")], producer_id=5)) == ErrorCode.INVALID_RECORD


# ---- varlongs: 64-bit zig-zag ----


@pytest.mark.parametrize("delta", [2**40, -(2**40), 2**62, -(2**63), 2**63 - 1, 63, 64, 8191, 8192])
@pytest.mark.parametrize("codec", [0, 4])
def test_large_timestamp_deltas_are_accepted_and_read_back(delta: int, codec: int) -> None:
    batch = encode_batch(
        [(b"a", b"1"), (b"b", b"2")], timestamp=0, codec=codec, timestamp_deltas=[0, delta]
    )
    assert code(batch) == ErrorCode.NONE
    assert [r.timestamp for r in iter_records(batch)] == [0, delta]


def test_varint_decoding_follows_kafka_byte_utils() -> None:
    assert decode_uvarint(b"\x96\x01", 0) == (150, 2)
    # a 5-byte varint keeps 32 bits, as Java's int does
    assert decode_uvarint(b"\xff\xff\xff\xff\x7f", 0) == (0xFFFF_FFFF, 5)
    assert zigzag(0xFFFF_FFFF) == -(2**31)
    with pytest.raises(ProtocolError):
        decode_uvarint(b"\xff\xff\xff\xff\xff\x01", 0)
    ten = b"\xff" * 9 + b"\x01"
    assert decode_uvarint(ten, 0, VARLONG_BYTES) == (2**64 - 1, 10)
    assert zigzag(2**64 - 1) == -(2**63)
    with pytest.raises(ProtocolError):
        decode_uvarint(b"\xff" * 10 + b"\x01", 0, VARLONG_BYTES)
    with pytest.raises(ProtocolError):
        Reader(memoryview(b"\x80\x80")).uvarint()  # truncated
    assert Reader(memoryview(b"\xac\x02")).uvarint() == 300


# ---- timestamps, per record ----


def test_timestamp_window_applies_to_every_record() -> None:
    # The header's max timestamp says 1000; the second record is really at 1000 + 5000.
    payload = record(ts=zz(0)) + record(ts=zz(5000), off=zz(1))
    batch = seal_batch(payload, 2, timestamp=1000, max_timestamp=1000)
    assert code(batch, timestamp_window=(0, 2000)) == ErrorCode.INVALID_TIMESTAMP
    assert code(batch, timestamp_window=(0, 6000)) == ErrorCode.NONE
    assert code(batch) == ErrorCode.NONE
    early = seal_batch(record(ts=zz(-900)) + record(off=zz(1)), 2, timestamp=1000)
    assert code(early, timestamp_window=(500, 2000)) == ErrorCode.INVALID_TIMESTAMP


def test_records_without_a_timestamp_are_exempt() -> None:
    # base -1: the first record has no timestamp (-1), the second is at -1 + 3 = 2
    batch = seal_batch(record() + record(ts=zz(3), off=zz(1)), 2, timestamp=-1, max_timestamp=2)
    assert code(batch, timestamp_window=(0, 10)) == ErrorCode.NONE
    assert code(batch, timestamp_window=(5, 10)) == ErrorCode.INVALID_TIMESTAMP


def test_producer_set_log_append_time_is_an_invalid_timestamp() -> None:
    lat = seal_batch(record(), 1, timestamp=100, attributes=0x08)
    assert code(lat, log_append_time=True) == ErrorCode.INVALID_TIMESTAMP
    assert code(lat) == ErrorCode.NONE  # CreateTime topic: read as stamped 100
    assert code(lat, timestamp_window=(200, 300)) == ErrorCode.INVALID_TIMESTAMP
    unstamped = seal_batch(record(), 1, timestamp=-1, attributes=0x08)
    assert code(unstamped) == ErrorCode.INVALID_TIMESTAMP


# ---- decompression ----


def test_xerial_framed_snappy_is_read_block_by_block() -> None:
    payload = b"".join(record(off=zz(i), value=zz(300) + bytes([i]) * 300) for i in range(10))
    half = len(payload) // 2
    blocks = [bytes(cramjam.snappy.compress_raw(part)) for part in (payload[:half], payload[half:])]
    framed = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    framed += b"".join(struct.pack(">i", len(b)) + b for b in blocks)
    batch = seal_batch(framed, 10, attributes=2)
    assert code(batch) == ErrorCode.NONE
    assert [r.value for r in iter_records(batch)] == [bytes([i]) * 300 for i in range(10)]
    assert code(seal_batch(framed + b"\x00\x00", 10, attributes=2)) == ErrorCode.CORRUPT_MESSAGE
    assert code(seal_batch(framed[:-1], 10, attributes=2)) == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_records_larger_than_the_scratch_buffer_decompress(codec: int) -> None:
    value = os.urandom(64) * 2048  # 128 KiB each, 2 MiB in all: beyond the first scratch size
    batch = encode_batch([(None, value)] * 16, codec=codec)
    assert code(batch) == ErrorCode.NONE
    assert code(batch) == ErrorCode.NONE  # and again, with the grown buffer


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_a_decompression_bomb_is_refused(codec: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "MAX_DECOMPRESSED", 1 << 20)
    batch = encode_batch([(None, bytes(1 << 19))] * 3, codec=codec)
    assert len(batch) < 100_000  # snappy squeezes zeros about 20:1, the others far more
    assert code(batch) == ErrorCode.MESSAGE_TOO_LARGE


def test_a_snappy_length_beyond_what_its_size_allows_is_corrupt() -> None:
    claim = encode_uvarint(2**32 - 1)  # raw snappy starts with the decompressed length
    body = bytes(records_module._compress(2, record()))
    assert code(seal_batch(claim + body[1:], 1, attributes=2)) == ErrorCode.CORRUPT_MESSAGE


def test_refused_records_are_named_by_index() -> None:
    keys = encode_batch([(b"k", b"1"), (None, b"2"), (b"k", b"3"), (None, b"4")])
    with pytest.raises(RecordErrors) as refused:
        validate_produced_batch(memoryview(keys), 1 << 30, keys_required=True)
    assert refused.value.code == ErrorCode.INVALID_RECORD
    assert [i for i, _ in refused.value.record_errors] == [1, 3]
    # A timestamp error makes the batch's code INVALID_TIMESTAMP; record 0 is fine, 1 is late
    # and 2 (null key) is named for its key only.
    payload = record(key=zz(1) + b"k") + record(ts=zz(50), off=zz(1), key=zz(1) + b"k")
    payload += record(ts=zz(50), off=zz(2))
    batch = seal_batch(payload, 3, timestamp=1000)
    with pytest.raises(RecordErrors) as refused:
        validate_produced_batch(
            memoryview(batch), 1 << 30, timestamp_window=(0, 1010), keys_required=True
        )
    assert refused.value.code == ErrorCode.INVALID_TIMESTAMP
    assert [i for i, _ in refused.value.record_errors] == [1, 2]
    assert "1050" in str(refused.value.record_errors[0][1])


# ---- records laid out alike: the walk compares a field across many records at once ----


def alike(
    count: int, *, key: bytes | None = None, value: bytes = b"v" * 10, **changed: bytes
) -> bytes:
    """`count` records with the same framing and offset deltas 0..count-1; `changed` replaces
    record N's fields (keyword `rN_field`, e.g. r5_ts) with raw bytes."""
    out = b""
    for i in range(count):
        fields = {
            "ts": zz(0),
            "off": zz(i),
            "key": zz(-1) if key is None else zz(len(key)) + key,
            "value": zz(len(value)) + value,
            "headers": zz(0),
        }
        for name, raw in changed.items():
            at, field = name[1:].split("_")
            if int(at) == i:
                fields[field] = raw
        out += zz(len(body := b"\x00" + b"".join(fields.values()))) + body
    return out


@pytest.mark.parametrize("count", [63, 64, 65, 8191, 8192, 8193])
@pytest.mark.parametrize("value_size", [51, 52, 8180, 8181])  # record lengths 63/64, 8191/8192
def test_alike_records_across_varint_boundaries_are_accepted(count: int, value_size: int) -> None:
    if count > 100 and value_size > 100:
        count = 200  # keep the batch small; the offset boundary is crossed at 64
    batch = encode_batch([(None, b"v" * value_size)] * count, timestamp_deltas=[3] * count)
    assert code(batch) == ErrorCode.NONE
    assert code(batch, keys_required=True) == ErrorCode.INVALID_RECORD
    summary = walk_records(memoryview(batch)[HEADER_SIZE:], count)
    assert summary == (0, 3, True, True)
    # one record fewer or more than the records hold
    assert code(seal_batch(batch[HEADER_SIZE:], count + 1)) == ErrorCode.INVALID_RECORD
    assert code(seal_batch(batch[HEADER_SIZE:], count - 1 or 2)) == ErrorCode.INVALID_RECORD


def test_records_in_a_frame_buffer_are_walked_in_runs_and_the_buffer_let_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frame the socket filled is a writable buffer: long runs of alike records are then read
    through a char pointer to it. The runs cover the batch and find the timestamp deltas'
    extremes (growing through the batch, as a producer's are), and once validated nothing
    holds the buffer any more, so the frame decoder can reuse it (a bytearray with a view or
    pointer of it left cannot change size)."""
    deltas = [i // 100 - 1 for i in range(500)]
    batch = bytearray(encode_batch([(None, b"v" * 100)] * 500, timestamp_deltas=deltas))
    runs: list[int] = []
    alike = records_module._alike

    def counting(*args: object) -> tuple[int, int, int]:
        answer = alike(*args)  # type: ignore[arg-type]
        runs.append(answer[0])
        return answer

    monkeypatch.setattr(records_module, "_alike", counting)
    with memoryview(batch) as view:
        assert walk_records(view[HEADER_SIZE:], 500) == (-1, 3, True, True)
        assert validate_produced_batch(view, 1 << 30).records_count == 500
    assert sum(runs) >= 2 * 490
    batch.append(0)  # raises BufferError while any view or pointer of it is alive


@pytest.mark.parametrize("at", [1, 5, 63, 64, 65, 150, 199])
def test_one_record_unlike_the_others_is_found(at: int) -> None:
    n = f"r{at}_"
    # a null key among keys: only a compacted topic refuses it, naming that record
    batch = seal_batch(alike(200, key=b"k", **{n + "key": zz(-1)}), 200)
    assert code(batch) == ErrorCode.NONE
    with pytest.raises(RecordErrors) as refused:
        validate_produced_batch(memoryview(batch), 1 << 30, keys_required=True)
    assert [i for i, _ in refused.value.record_errors] == [at]
    # a negative null (-5) as the key length is a null too
    batch = seal_batch(alike(200, key=b"k", **{n + "key": zz(-5)}), 200)
    assert code(batch, keys_required=True) == ErrorCode.INVALID_RECORD
    # a null key where the others' key is, its value starting where theirs do
    null = {n + "key": zz(-1), n + "value": zz(11) + zz(10) + b"v" * 10}
    with pytest.raises(RecordErrors) as refused:
        validate_produced_batch(
            memoryview(seal_batch(alike(200, key=b"k", **null), 200)), 1 << 30, keys_required=True
        )
    assert [i for i, _ in refused.value.record_errors] == [at]
    # a shorter value followed by a byte too many; a negative header count
    for fields in (
        {n + "value": zz(9) + b"v" * 9, n + "headers": zz(0) + zz(0)},
        {n + "headers": zz(-1)},
    ):
        with pytest.raises(KafkaError) as e:
            validate_produced_batch(memoryview(seal_batch(alike(200, **fields), 200)), 1 << 30)
        assert e.value.code == ErrorCode.INVALID_RECORD
    # a negative record length
    payload, start = alike(200, key=b"k"), len(alike(at, key=b"k"))
    bad = payload[:start] + zz(-3) + payload[start + 1 :]
    with pytest.raises(KafkaError, match=f"record {at} claims -3 bytes") as e:
        validate_produced_batch(memoryview(seal_batch(bad, 200)), 1 << 30)
    assert e.value.code == ErrorCode.INVALID_RECORD
    # one late timestamp (one byte, -64..63)
    batch = seal_batch(alike(200, **{n + "ts": zz(-20)}), 200, timestamp=1000)
    assert code(batch, timestamp_window=(990, 2000)) == ErrorCode.INVALID_TIMESTAMP
    assert code(batch, timestamp_window=(980, 2000)) == ErrorCode.NONE
    # a compressed batch's offset deltas out of order
    payload = alike(200, **{n + "off": zz(at + 1)})
    assert code(seal_batch(payload, 200)) == ErrorCode.NONE
    squeezed = records_module._compress(4, payload)
    assert code(seal_batch(squeezed, 200, attributes=4)) == ErrorCode.INVALID_RECORD
    # one record with a header
    batch = seal_batch(alike(200, **{n + "value": zz(7) + b"v" * 7 + zz(1) + zz(1) + b"h"}), 200)
    [rec] = [r for r in iter_records(batch) if r.headers]
    assert (rec.offset, rec.headers) == (at, [("h", b"")])


def test_a_two_byte_timestamp_delta_framed_as_one_byte_ones_is_read_as_such() -> None:
    # Record 5's two-byte timestamp delta (0x82 0x0a: 641) shifts its fields by one so that
    # every varint of the others' framing still reads the same byte: only the timestamp
    # byte's continuation bit tells it apart.
    odd = {
        "r5_ts": bytes([0x82, 0x0A]),
        "r5_off": zz(5),
        "r5_key": zz(3) + b"kkk",
        "r5_value": zz(11) + zz(10) + b"v" * 10,
    }
    payload = alike(40, key=b"kkkkk", **odd)
    assert len(payload) == 40 * len(record(key=zz(5) + b"kkkkk", value=zz(10) + b"v" * 10))
    assert walk_records(memoryview(payload), 40) == (0, 641, True, False)
    batch = seal_batch(payload, 40, timestamp=1000)
    assert code(batch, timestamp_window=(0, 1640)) == ErrorCode.INVALID_TIMESTAMP
