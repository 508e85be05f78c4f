"""Record batches (magic v2) as opaque bytes.

The broker stores and serves batches as received; it writes only into the 61-byte batch header
below. The CRC-32C covers `attributes` to the end of the batch, so the two fields the broker
assigns — `base_offset` and `partition_leader_epoch` — are rewritten without recomputing it.
Only `LogAppendTime` changes covered bytes (attributes, max timestamp), and only then is the
CRC recomputed.

The records inside are read, never rewritten: on the produce path `validate_produced_batch`
walks every record as Kafka's LogValidator does (decompressing with cramjam into a reused
buffer), and `iter_records` decodes them for the few places Kafka looks inside a batch
(ListOffsets by timestamp, the internal topics). Both use the one walker, `walk_records`.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from msklite.errors import ErrorCode, KafkaError, ProtocolError
from msklite.protocol.primitives import (
    VARLONG_BYTES,
    Buffer,
    Writer,
    decode_uvarint,
    zigzag,
)

HEADER = struct.Struct(
    ">q"  # base_offset: offset of the first record; assigned by the broker
    "i"  # batch_length: bytes after this field (total size - 12)
    "i"  # partition_leader_epoch: assigned by the broker
    "b"  # magic: 2
    "I"  # crc: CRC-32C of attributes .. end of batch
    "h"  # attributes: bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
    "i"  # last_offset_delta
    "q"  # base_timestamp
    "q"  # max_timestamp
    "q"  # producer_id
    "h"  # producer_epoch
    "i"  # base_sequence
    "i"  # records_count
)
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = struct.calcsize(">qi")  # base_offset + batch_length: 12
_LENGTH_EPOCH = struct.Struct(">qii")  # base_offset, batch_length, partition_leader_epoch
CRC_START = struct.calcsize(">qiibI")  # 21: first byte the CRC covers
_CRC = struct.Struct(">I")
_ATTRS = struct.Struct(">hiqq")  # attributes, last_offset_delta, base_timestamp, max_timestamp
MAGIC_OFFSET = struct.calcsize(">qii")  # 16


_crc32c_impl: Callable[[Buffer, int], int] | None = None


def crc32c(data: Buffer, value: int = 0) -> int:
    """CRC-32C (hardware, via the crc32c package), imported on first use: the package's
    `__init__` reads its own version through importlib.metadata, ≈19 ms that would otherwise
    sit on every cold start (DESIGN.md §3, target 150 ms)."""
    global _crc32c_impl
    impl = _crc32c_impl
    if impl is None:
        from crc32c import crc32c as loaded

        impl = _crc32c_impl = loaded
    return impl(data, value)


COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_LOG_APPEND = 0x08
TRANSACTIONAL = 0x10
CONTROL = 0x20
# KIP-534: the base timestamp holds when the batch's tombstones and markers may be removed
DELETE_HORIZON = 0x40

NO_PRODUCER_ID = -1
NO_TIMESTAMP = -1
NO_SEQUENCE = -1
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL)


def read_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def validate_produced_batch(
    records: memoryview,
    max_message_bytes: int,
    *,
    log_append_time: bool = False,
    timestamp_window: tuple[int, int] | None = None,
    keys_required: bool = False,
) -> BatchHeader:
    """Check one partition's produced records as Kafka's LogValidator does: exactly one v2 batch,
    sane length, known codec, matching CRC, consistent counts, then every record's framing (in
    the decompressed records for a compressed batch), and the topic's per-record rules:
    `log_append_time` or a CreateTime `timestamp_window` (earliest, latest), keys on a compacted
    topic (`keys_required`). The batch is only read, never rewritten. Raises `KafkaError` with
    the code Kafka answers."""
    size = len(records)
    if size > max_message_bytes:
        raise KafkaError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"batch of {size} bytes exceeds max.message.bytes={max_message_bytes}",
        )
    if size < HEADER_SIZE:
        if size >= MAGIC_OFFSET + 1 and records[MAGIC_OFFSET] < 2:
            raise KafkaError(ErrorCode.INVALID_RECORD, "only magic v2 batches are accepted")
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"record set of {size} bytes is too short")
    h = read_header(records)
    if h.magic != 2:
        raise KafkaError(ErrorCode.INVALID_RECORD, "only magic v2 batches are accepted")
    if h.size != size:
        if h.size < size and h.size >= HEADER_SIZE:
            raise KafkaError(
                ErrorCode.INVALID_RECORD,
                "produce requests must contain exactly one record batch per partition",
            )
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "batch length does not match the record set")
    if crc32c(records[CRC_START:]) != h.crc:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "record batch CRC mismatch")
    codec = h.attributes & COMPRESSION_MASK
    if codec not in CODECS:
        raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)
    if h.records_count <= 0 or h.last_offset_delta != h.records_count - 1:
        raise KafkaError(ErrorCode.INVALID_RECORD, "record count and last offset delta disagree")
    if h.producer_id >= 0 and h.base_sequence < 0:
        raise KafkaError(
            ErrorCode.INVALID_RECORD, f"producer {h.producer_id} sent sequence {h.base_sequence}"
        )
    data = batch_records(records, h, reuse=True)
    summary = walk_records(data, h.records_count)
    if codec and not summary.offsets_in_order:
        # Kafka rebuilds such a batch with the right offsets; we keep batches as sent.
        raise KafkaError(
            ErrorCode.INVALID_RECORD, "offset deltas of compressed records are not 0..n-1"
        )
    check_records(
        h,
        summary,
        data,
        log_append_time=log_append_time,
        window=timestamp_window,
        keys_required=keys_required,
    )
    return h


def assign(
    batch: memoryview,
    base_offset: int,
    leader_epoch: int,
    log_append_time: int | None = None,
) -> list[Buffer]:
    """The batch as it goes to the log: new base offset and leader epoch, the rest of the
    received bytes passed through as a view. With `log_append_time`, the timestamp type bit and
    max timestamp change too, so the header is rebuilt and the CRC recomputed."""
    if log_append_time is None:
        prefix = _LENGTH_EPOCH.pack(base_offset, len(batch) - LOG_OVERHEAD, leader_epoch)
        return [prefix, batch[MAGIC_OFFSET:]]
    h = read_header(batch)
    covered = bytearray(
        _ATTRS.pack(
            h.attributes | TIMESTAMP_TYPE_LOG_APPEND,
            h.last_offset_delta,
            h.base_timestamp,
            log_append_time,
        )
    )
    covered += batch[_ATTRS.size + CRC_START : HEADER_SIZE]
    body = batch[HEADER_SIZE:]
    crc = crc32c(body, crc32c(covered))
    head = HEADER.pack(
        base_offset,
        h.batch_length,
        leader_epoch,
        2,
        crc,
        h.attributes | TIMESTAMP_TYPE_LOG_APPEND,
        h.last_offset_delta,
        h.base_timestamp,
        log_append_time,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.records_count,
    )
    return [head, body]


def scan_valid_prefix(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) of each whole, CRC-valid batch from `start`, stopping at the
    first torn or corrupt one (recovery's notion of the end of the log)."""
    pos = start
    while end - pos >= HEADER_SIZE:
        h = read_header(buf, pos)
        if h.magic != 2 or h.batch_length < HEADER_SIZE - LOG_OVERHEAD or pos + h.size > end:
            return
        if crc32c(memoryview(buf)[pos + CRC_START : pos + h.size]) != h.crc:
            return
        yield pos, h
        pos += h.size


# ---- record level: validation on the produce path, and the few reads that look inside ----


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class RecordSummary(NamedTuple):
    """What one walk over a batch's records learns beyond "well formed"."""

    min_timestamp_delta: int
    max_timestamp_delta: int
    offsets_in_order: bool  # offset deltas 0, 1, 2, ...
    null_key: bool


# One record's fields as positions in the (decompressed) records: timestamp delta, offset delta,
# key start and length, value start and length, and (key start, key length, value start, value
# length) per header. A negative length is a null.
HeaderSpans = Sequence[tuple[int, int, int, int]]
RecordSpan = tuple[int, int, int, int, int, int, HeaderSpans]
_NO_HEADERS: HeaderSpans = ()


def _invalid(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_RECORD, message)


def walk_records(data: Buffer, count: int, spans: list[RecordSpan] | None = None) -> RecordSummary:
    """Check that `data` holds exactly `count` v2 records, field by field as Kafka's
    DefaultRecord.readFrom reads them, without copying any key, value or header; with `spans`,
    also append where each record's fields are. Every framing fault raises INVALID_RECORD, the
    code Kafka's InvalidRecordException maps to.

    This runs for every produced batch, so it is written for CPython: locals only, and the
    one- and two-byte varints (nearly all of them) decoded inline; longer ones and the rare
    header loop go through `decode_uvarint`. Reading past the end surfaces as IndexError.
    Without `spans`, a run of records laid out as the one before them is checked a field at a
    time across the run (`_alike`): producers mostly send such runs, and it costs a fraction."""
    end = len(data)
    p = 0
    lo = hi = 0
    in_order = True
    null_key = False
    i = 0
    retry_at, retry_gap = 0, 1
    try:
        while i < count:
            start = p
            b = data[p]  # record length
            if b < 0x80:
                p += 1
            else:
                c = data[p + 1]
                if c < 0x80:
                    b = (b & 0x7F) | c << 7
                    p += 2
                else:
                    b, p = decode_uvarint(data, p)
            n = b >> 1  # lengths are zig-zag varints: odd means negative
            if b & 1 or n > end - p:
                raise _invalid(f"record {i} claims {zigzag(b)} bytes, {end - p} remain")
            record_end = p + n
            b = data[p + 1]  # timestamp delta (varlong), after the unused attributes byte
            if b < 0x80:
                p += 2
            else:
                c = data[p + 2]
                if c < 0x80:
                    b = (b & 0x7F) | c << 7
                    p += 3
                else:
                    b, p = decode_uvarint(data, p + 1, VARLONG_BYTES)
            t = (b >> 1) ^ -(b & 1)
            if t < lo:
                lo = t
            if t > hi:
                hi = t
            offset_at = p
            b = data[p]  # offset delta
            if b < 0x80:
                p += 1
            else:
                c = data[p + 1]
                if c < 0x80:
                    b = (b & 0x7F) | c << 7
                    p += 2
                else:
                    b, p = decode_uvarint(data, p)
            offset_delta = b
            if b != i << 1:  # zig-zag of i
                in_order = False
            key_length_at = p
            b = data[p]  # key length
            if b < 0x80:
                p += 1
            else:
                c = data[p + 1]
                if c < 0x80:
                    b = (b & 0x7F) | c << 7
                    p += 2
                else:
                    b, p = decode_uvarint(data, p)
            key_raw = b
            key_at = p
            if b & 1:  # any negative length is a null (Kafka's Utils.readBytes)
                null_key = True
            else:
                p += b >> 1
            value_length_at = p
            b = data[p]  # value length
            if b < 0x80:
                p += 1
            else:
                c = data[p + 1]
                if c < 0x80:
                    b = (b & 0x7F) | c << 7
                    p += 2
                else:
                    b, p = decode_uvarint(data, p)
            value_raw = b
            value_at = p
            if not b & 1:
                p += b >> 1
            headers = _NO_HEADERS
            if data[p]:  # header count
                headers, p = _walk_headers(data, p, spans is not None)
            else:
                p += 1
            if p != record_end:
                taken = p - (record_end - n)
                raise _invalid(f"record {i} is {n} bytes long but its fields take {taken}")
            i += 1
            if spans is not None:
                o, k, v = zigzag(offset_delta), zigzag(key_raw), zigzag(value_raw)
                spans.append((t, o, key_at, k, value_at, v, headers))
            elif (
                i >= retry_at
                and in_order
                and headers is _NO_HEADERS
                and count - i >= _WORTH_IT
                and data[p] == data[start]
            ):
                # The records that follow are most often laid out as this one is: check them
                # a field at a time across records rather than a record at a time.
                layout = (
                    start,
                    record_end - n,
                    offset_at,
                    key_length_at,
                    key_at,
                    value_length_at,
                    value_at,
                    record_end,
                )
                alike, t_lo, t_hi = _alike(data, layout, i, count)
                if alike:
                    i += alike
                    p += alike * (p - start)
                    if t_lo < lo:
                        lo = t_lo
                    if t_hi > hi:
                        hi = t_hi
                if alike >= _WORTH_IT:
                    retry_gap = 1
                else:  # records that differ: try less often, so they cost little more
                    retry_at = i + retry_gap
                    retry_gap *= 2
    except IndexError:
        raise _invalid(f"records end inside record {i} of {count}") from None
    except ProtocolError as e:
        raise _invalid(f"record {i}: {e}") from None
    if p != end:
        raise _invalid(f"{end - p} bytes follow the last of {count} records")
    return RecordSummary(lo, hi, in_order, null_key)


# The offset delta varints of records 0..8191 in order, one byte string per varint byte:
# one byte for records 0..63, two for 64..8191 (longer ones are walked record by record).
_OFFSET_DELTAS = (
    (bytes(range(0, 128, 2)),),
    (bytes(0x80 | (j << 1 & 0x7F) for j in range(8192)), bytes(j >> 6 for j in range(8192))),
)
_OFFSET_RANGE_END = (64, 8192)
# bytes.translate table: a one-byte zig-zag varint to its value + 64 (0..127).
_ZIGZAG_BYTE = bytes(((b >> 1) ^ -(b & 1)) + 64 for b in range(128)) + bytes(128)
# Records compared in the first round; each round then compares _GROWTH times more. A round
# costs ≈0.4 µs a column whatever its size, so few large rounds pay, and a round that fails
# wastes at most _GROWTH times what the rounds before it checked. Runs of _WORTH_IT records
# are tried. Against (4, 2, 16), walking 1 KiB records (µs per batch): 16 KiB 8.6 -> 5.9,
# 48 KiB 16.7 -> 10.6, 1 MiB 93 -> 67.
_FIRST_RUN = 16
_GROWTH = 8
_WORTH_IT = 8


def _alike(data: Buffer, layout: tuple[int, ...], i: int, count: int) -> tuple[int, int, int]:
    """How many records from record `i` on are laid out as record i - 1 is (`layout`: the
    positions of its length, attributes, offset delta, key length, key, value length, value and
    end), and the least and greatest of their timestamp deltas (0 if none is beyond).

    Alike means: the same bytes in the length, key length and value length fields and a zero
    header count (so the same framing, which record i - 1 has shown valid), the next offset
    deltas in order, and one-byte timestamp deltas (or the same bytes as record i - 1). Each
    field is compared across records at once (strided slices, compared in C), in rounds of
    growing size (`_GROWTH`); a round that is not wholly alike ends the run, and the walk goes
    on record by record from there, so the answer is the same as walking each record."""
    start, body, offset_at, key_length_at, key_at, value_length_at, value_at, end = layout
    size = end - start
    offset_width = key_length_at - offset_at
    if offset_width > len(_OFFSET_DELTAS):
        return 0, 0, 0
    offset_columns = _OFFSET_DELTAS[offset_width - 1]
    # Every column read stops before `end + (last - i) * size`, at most len(data): the only
    # bound `src` (a char pointer, see `_stepped`) knows.
    last = min(count, _OFFSET_RANGE_END[offset_width - 1], i + (len(data) - end) // size)
    src = _stepped(data) if last - i >= _STEPPED_FROM else data
    same = [*range(start, body), *range(key_length_at, key_at), *range(value_length_at, value_at)]
    timestamp_at = body + 1
    one_byte_timestamps = offset_at - timestamp_at == 1
    if not one_byte_timestamps:
        same += range(timestamp_at, offset_at)
    header_count_at = end - 1
    lo = hi = 64
    done = i
    round_size = _FIRST_RUN
    while done < last:
        upto = min(last, done + round_size)
        m = upto - done
        shift = (done - i + 1) * size  # from record i - 1 to record `done`
        stop = end + (upto - i) * size
        for at in same:
            if bytes(src[at + shift : stop : size]).count(data[at]) != m:
                return done - i, lo - 64, hi - 64
        if bytes(src[header_count_at + shift : stop : size]).count(0) != m:
            return done - i, lo - 64, hi - 64
        for k, column in enumerate(offset_columns):
            if bytes(src[offset_at + k + shift : stop : size]) != column[done:upto]:
                return done - i, lo - 64, hi - 64
        if one_byte_timestamps:
            deltas = bytes(src[timestamp_at + shift : stop : size])
            if not deltas.isascii():
                return done - i, lo - 64, hi - 64
            lo, hi = _widen(deltas.translate(_ZIGZAG_BYTE), lo, hi)
        done = upto
        round_size *= _GROWTH
    return done - i, lo - 64, hi - 64


# The byte values v..127 and 0..v, for v in 0..127: what _widen deletes to keep those outside.
_AT_LEAST = tuple(bytes(range(v, 128)) for v in range(128))
_AT_MOST = tuple(bytes(range(v + 1)) for v in range(128))


def _widen(values: bytes, lo: int, hi: int) -> tuple[int, int]:
    """(lo, hi) widened to the least and greatest of `values` (bytes 0..127). The values
    outside the range are picked out in C, then counted value by value outwards from the
    range until all are found, instead of iterated as ints: timestamp deltas mostly take a
    few values, so this costs a few C calls (761 deltas growing through a batch: min and
    max 16 µs, this 1.5)."""
    below = values.translate(None, _AT_LEAST[lo])
    left = len(below)
    while left:
        lo -= 1
        left -= below.count(lo)
    above = values.translate(None, _AT_MOST[hi])
    left = len(above)
    while left:
        hi += 1
        left -= above.count(hi)
    return lo, hi


# Runs of fewer records take their columns from the memoryview: the char pointer's set-up
# (≈0.7 µs) costs more than it saves on so few.
_STEPPED_FROM = 48
_ctypes: Any = None


def _stepped(data: Buffer) -> Any:
    """`data` as an object whose slices with a step copy fast: a ctypes char pointer to the
    same memory (no copy; its slices are bytes, copied by a tight C loop), or a memoryview
    when `data` is read-only (small frames arrive as bytes). A memoryview copies a strided
    slice an element at a time through its generic buffer code: 761 elements 2.5 µs, against
    0.45 from the pointer. Not an array of the buffer's length: ctypes keeps every array
    type it makes, one per batch size. The pointer checks no bounds: `_alike` reads only
    below `len(data)`. ctypes is imported on first use, off the cold start."""
    global _ctypes
    view = memoryview(data)
    if view.readonly or not view.c_contiguous or view.itemsize != 1 or not view.nbytes:
        return view
    if _ctypes is None:
        import ctypes

        _ctypes = ctypes
    return _ctypes.pointer(_ctypes.c_char.from_buffer(view))


def _walk_headers(data: Buffer, p: int, keep: bool) -> tuple[HeaderSpans, int]:
    """The header count at `p` and the headers after it: their spans (only with `keep`) and the
    position after them."""
    raw, p = decode_uvarint(data, p)
    count = zigzag(raw)
    if count < 0:
        raise _invalid(f"negative header count {count}")
    if count > len(data) - p:
        raise _invalid(f"header count {count} exceeds the {len(data) - p} bytes left")
    out: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        raw, p = decode_uvarint(data, p)
        key_len = zigzag(raw)
        if key_len < 0:
            raise _invalid(f"negative header key length {key_len}")
        key_at = p
        raw, p = decode_uvarint(data, key_at + key_len)
        value_len = zigzag(raw)
        if keep:
            out.append((key_at, key_len, p, value_len))
        if value_len > 0:
            p += value_len
    return out, p


class RecordErrors(KafkaError):
    """Records a topic's rules refuse (Kafka's RecordValidationException): the batch's code and
    message, and (record index, message) per refused record for the response's record_errors."""

    def __init__(self, code: ErrorCode, message: str, errors: list[tuple[int, str | None]]) -> None:
        super().__init__(code, message)
        self.record_errors = errors


def _may_refuse(
    h: BatchHeader,
    summary: RecordSummary,
    log_append_time: bool,
    window: tuple[int, int] | None,
    keys_required: bool,
) -> bool:
    """Whether a record can break a rule of `check_records`, from the walk's summary alone."""
    if keys_required and summary.null_key:
        return True
    if h.attributes & TIMESTAMP_TYPE_LOG_APPEND:
        # Each record then reads as the batch's max timestamp (DefaultRecordBatch).
        if log_append_time or h.max_timestamp == NO_TIMESTAMP:
            return True
        first = last = h.max_timestamp
    elif log_append_time or window is None:
        return False
    else:
        first = h.base_timestamp + summary.min_timestamp_delta
        last = h.base_timestamp + summary.max_timestamp_delta
    return window is not None and not window[0] <= first <= last <= window[1]


def check_records(
    h: BatchHeader,
    summary: RecordSummary,
    records: Buffer,
    *,
    log_append_time: bool,
    window: tuple[int, int] | None,
    keys_required: bool,
) -> None:
    """The topic's rules for each record of a produced batch (LogValidator.validateRecord): a
    key on a compacted topic (`keys_required`); with CreateTime, a timestamp (other than -1) in
    `window` (earliest, latest) if the topic bounds it; never a LogAppendTime type set by the
    producer. Decided from the walk's `summary`; only a batch that may break a rule is walked
    again (`records`: the batch's decompressed records) to name each refused record as Kafka
    does. Raises `RecordErrors`: INVALID_TIMESTAMP if any timestamp is refused, else
    INVALID_RECORD."""
    if not _may_refuse(h, summary, log_append_time, window, keys_required):
        return
    spans: list[RecordSpan] = []
    walk_records(records, h.records_count, spans)
    log_append_batch = h.attributes & TIMESTAMP_TYPE_LOG_APPEND
    errors: list[tuple[int, str | None]] = []
    bad_timestamp = False
    for index, (ts_delta, offset_delta, _, key_len, _, _, _) in enumerate(spans):
        if keys_required and key_len < 0:
            errors.append((index, "Compacted topic cannot accept message without key"))
            continue
        ts = h.max_timestamp if log_append_batch else h.base_timestamp + ts_delta
        if not log_append_time and ts != NO_TIMESTAMP:
            if window is not None and not window[0] <= ts <= window[1]:
                bad_timestamp = True
                errors.append(
                    (
                        index,
                        f"Timestamp {ts} of message with offset {h.base_offset + offset_delta} "
                        f"is out of range. The timestamp should be within [{window[0]}, "
                        f"{window[1]}]",
                    )
                )
        elif log_append_batch:
            bad_timestamp = True
            errors.append((index, "Producer should not set timestamp type to LogAppendTime."))
    if not errors:
        return
    if bad_timestamp:
        raise RecordErrors(
            ErrorCode.INVALID_TIMESTAMP,
            "One or more records have been rejected due to invalid timestamp",
            errors,
        )
    raise RecordErrors(
        ErrorCode.INVALID_RECORD,
        f"One or more records have been rejected due to {len(errors)} record errors in total, "
        f"and only showing the first three errors at most: {[m for _, m in errors[:3]]}",
        errors,
    )


XERIAL_MAGIC = b"\x82SNAPPY\x00"  # Java clients frame snappy: 16-byte header, then (int32, block)*
_XERIAL_HEADER = 16
# A batch may decompress to at most this much: a few bytes of gzip can claim gigabytes, and
# we hold the whole record set in memory where Kafka streams it (DEVIATIONS.md).
MAX_DECOMPRESSED = 256 << 20
_KEEP_SCRATCH = 8 << 20  # a larger scratch buffer is dropped after use
# cramjam's message when the output buffer is full: then the buffer doubles and the batch is
# decompressed again (tests cover a batch larger than the first buffer, so a change shows).
_OUT_OF_ROOM = "failed to write whole buffer"


class _Scratch(threading.local):
    """The buffer produced batches decompress into, one per thread (a process may run several
    clusters): reusing it spares a fresh allocation, and the first touch of fresh pages, per
    batch."""

    def __init__(self) -> None:
        self.buf = bytearray(256 << 10)


_scratch = _Scratch()


def _corrupt(codec: int, why: object) -> KafkaError:
    message = f"{CODECS[codec]} records do not decompress: {why}"
    return KafkaError(ErrorCode.CORRUPT_MESSAGE, message)


def _too_large() -> KafkaError:
    message = f"the records decompress to more than {MAX_DECOMPRESSED >> 20} MiB"
    return KafkaError(ErrorCode.MESSAGE_TOO_LARGE, message)


def _room(buf: bytearray, need: int, used: int = 0) -> bytearray:
    """`buf`, or a larger copy of its first `used` bytes, with room for `need` bytes in all."""
    if need <= len(buf):
        return buf
    if need > MAX_DECOMPRESSED:
        raise _too_large()
    grown = bytearray(max(need, min(2 * len(buf), MAX_DECOMPRESSED)))
    grown[:used] = buf[:used]
    return grown


def _decompress_into(codec: int, src: Buffer, buf: bytearray) -> tuple[bytearray, int]:
    """Decompress `src` into `buf` (or a larger buffer, returned): (buffer, bytes written).
    Raises CORRUPT_MESSAGE when `src` is not what its codec says."""
    import cramjam

    try:
        if codec == 2:
            if bytes(src[:8]) != XERIAL_MAGIC:
                buf = _room(buf, _snappy_length(src))
                return buf, cramjam.snappy.decompress_raw_into(src, buf)
            view, used, pos = memoryview(src), 0, _XERIAL_HEADER
            while pos < len(view):
                (n,) = _BLOCK.unpack_from(view, pos)
                block = view[pos + 4 : pos + 4 + n]
                if n < 0 or len(block) != n:
                    raise _corrupt(codec, f"xerial block of {n} bytes at {pos}")
                buf = _room(buf, used + _snappy_length(block), used)
                with memoryview(buf) as out:
                    used += cramjam.snappy.decompress_raw_into(block, out[used:])
                pos += 4 + n
            return buf, used
        codec_module = {1: cramjam.gzip, 3: cramjam.lz4, 4: cramjam.zstd}[codec]
        while True:
            try:
                return buf, codec_module.decompress_into(src, buf)
            except cramjam.DecompressionError as e:
                if _OUT_OF_ROOM not in str(e):
                    raise
                buf = _room(buf, 2 * len(buf) if len(buf) < MAX_DECOMPRESSED else len(buf) + 1)
    except (cramjam.DecompressionError, struct.error, ValueError) as e:
        raise _corrupt(codec, e) from None


_BLOCK = struct.Struct(">i")


def _snappy_length(block: Buffer) -> int:
    """The length a raw snappy block declares, if its size allows it: every element snappy
    writes takes at least 2 bytes per 64 it produces, so a larger claim is corruption (and must
    not cost an allocation)."""
    import cramjam

    n: int = cramjam.snappy.decompress_raw_len(block)
    if n > 32 * len(block) + 64:
        raise ValueError(f"a {len(block)}-byte block claims {n} bytes")
    return n


def batch_records(batch: Buffer, h: BatchHeader, *, reuse: bool = False) -> memoryview:
    """The records of `batch` (whose header is `h`), decompressed if need be. With `reuse`, a
    compressed batch decompresses into this thread's scratch buffer: the view is then valid only
    until the next such call."""
    view = memoryview(batch)[HEADER_SIZE : h.size]
    codec = h.attributes & COMPRESSION_MASK
    if codec == 0:
        return view
    buf, n = _decompress_into(codec, view, _scratch.buf if reuse else bytearray(4 * len(view)))
    if reuse and len(buf) <= _KEEP_SCRATCH:
        _scratch.buf = buf
    if n > MAX_DECOMPRESSED:  # a kept buffer may be larger than the limit
        raise _too_large()
    return memoryview(buf)[:n]


def iter_records(batch: Buffer) -> Iterator[Record]:
    """The records of one batch (for the paths where Kafka looks inside: ListOffsets by
    timestamp, the internal topics)."""
    h = read_header(batch)
    data = batch_records(batch, h)
    spans: list[RecordSpan] = []
    walk_records(data, h.records_count, spans)
    log_append = h.attributes & TIMESTAMP_TYPE_LOG_APPEND
    for ts_delta, offset_delta, key_at, key_len, value_at, value_len, headers in spans:
        yield Record(
            h.base_offset + offset_delta,
            h.max_timestamp if log_append else h.base_timestamp + ts_delta,
            bytes(data[key_at : key_at + key_len]) if key_len >= 0 else None,
            bytes(data[value_at : value_at + value_len]) if value_len >= 0 else None,
            [
                (
                    str(data[ka : ka + kl], "utf-8", "replace"),
                    bytes(data[va : va + vl]) if vl >= 0 else None,
                )
                for ka, kl, va, vl in headers
            ],
        )


def _compress(codec: int, data: Buffer, level: int | None = None) -> bytes:
    """Records compressed as Kafka's clients write them (snappy raw, as librdkafka does; lz4
    framed). `level` for gzip and zstd; None: Kafka's defaults (6 and 3)."""
    import cramjam

    if codec == 1:
        return bytes(cramjam.gzip.compress(data, level=6 if level is None else level))
    if codec == 2:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == 3:
        return bytes(cramjam.lz4.compress(data))
    if codec == 4:
        return bytes(cramjam.zstd.compress(data, level=3 if level is None else level))
    return bytes(data)


def recompress(batch: memoryview, h: BatchHeader, codec: int, level: int | None) -> memoryview:
    """A validated batch with its records compressed with `codec` instead (a topic's
    compression.type, as Kafka's LogValidator rebuilds it): the records and every header field
    but the codec bits are kept, the CRC is recomputed."""
    data = batch_records(batch, h, reuse=True)
    # Validation checked a compressed batch's offset deltas; once compressed, an uncompressed
    # batch's must be 0..n-1 too (Kafka rebuilds the records, we keep them).
    if (
        not h.attributes & COMPRESSION_MASK
        and not walk_records(data, h.records_count).offsets_in_order
    ):
        raise KafkaError(
            ErrorCode.INVALID_RECORD, "offset deltas of compressed records are not 0..n-1"
        )
    payload = _compress(codec, data, level)
    return memoryview(
        seal_batch(
            payload,
            h.records_count,
            base_offset=h.base_offset,
            timestamp=h.base_timestamp,
            max_timestamp=h.max_timestamp,
            attributes=(h.attributes & ~COMPRESSION_MASK) | codec,
            producer_id=h.producer_id,
            producer_epoch=h.producer_epoch,
            base_sequence=h.base_sequence,
        )
    )


def _varint(w: Writer, v: int) -> None:
    w.uvarint((v << 1) ^ (v >> 63))


COMMIT_MARKER, ABORT_MARKER = 1, 0


def control_batch(
    producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int, timestamp: int
) -> bytes:
    """A transaction marker as Kafka writes it: a transactional control batch of one record,
    key (int16 version 0, int16 type: 0 abort, 1 commit), value (int16 version 0, int32
    coordinator epoch)."""
    key = struct.pack(">hh", 0, COMMIT_MARKER if commit else ABORT_MARKER)
    value = struct.pack(">hi", 0, coordinator_epoch)
    return encode_batch(
        [(key, value)],
        timestamp=timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        attributes=TRANSACTIONAL | CONTROL,
    )


def marker_type(batch: Buffer) -> int:
    """COMMIT_MARKER or ABORT_MARKER, from a control batch's first record's key; -1 when the
    key is not a marker's."""
    for record in iter_records(batch):
        key = record.key
        if key is not None and len(key) >= 4:
            version, kind = struct.unpack_from(">hh", key)
            if version == 0 and kind in (COMMIT_MARKER, ABORT_MARKER):
                return int(kind)
        break
    return -1


def control_marker(batch: Buffer, h: BatchHeader) -> tuple[int, int]:
    """(its type, its coordinator epoch) of a control batch (header `h`), from the first
    record, without building it (every replica's append of every marker reads both): the type
    as `marker_type` reads it; the epoch from the value (int16 version, int32 epoch), -1 when
    the value is not a marker's."""
    data = batch_records(batch, h)
    spans: list[RecordSpan] = []
    walk_records(data, h.records_count, spans)
    if not spans:
        return -1, -1
    _, _, key_at, key_len, value_at, value_len, _ = spans[0]
    kind = epoch = -1
    if key_len >= 4:
        version, k = struct.unpack_from(">hh", data, key_at)
        if version == 0 and k in (COMMIT_MARKER, ABORT_MARKER):
            kind = k
    if value_len >= 6:
        version, e = struct.unpack_from(">hi", data, value_at)
        if version == 0:
            epoch = e
    return kind, epoch


_RecordFields = tuple[int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]


def _encode_records(records: Iterable[_RecordFields]) -> bytes:
    """v2 records from (timestamp delta, offset delta, key, value, headers)."""
    body = Writer()
    for ts_delta, offset_delta, key, value, record_headers in records:
        rec = Writer()
        rec.int8(0)
        _varint(rec, ts_delta)
        _varint(rec, offset_delta)
        for field in (key, value):
            if field is None:
                _varint(rec, -1)
            else:
                _varint(rec, len(field))
                rec.raw(field)
        _varint(rec, len(record_headers))
        for hk, hv in record_headers:
            _varint(rec, len(hk.encode()))
            rec.raw(hk.encode())
            if hv is None:
                _varint(rec, -1)
            else:
                _varint(rec, len(hv))
                rec.raw(hv)
        _varint(body, len(rec.buf))
        body.raw(rec.buf)
    return bytes(body.buf)


def rebuild_batch(h: BatchHeader, records: Sequence[Record], delete_horizon: int | None) -> bytes:
    """A batch holding only `records` (some of those of the batch `h` heads), as Kafka's
    log cleaner rebuilds one: base offset, last offset delta (the producer's last sequence
    depends on it), producer id, epoch, base sequence, leader epoch, codec and flags kept, the
    CRC recomputed. With `delete_horizon` the base timestamp carries it (KIP-534) and the
    timestamp deltas are taken from it, so records keep their timestamps."""
    log_append = h.attributes & TIMESTAMP_TYPE_LOG_APPEND
    base_ts = h.base_timestamp if delete_horizon is None else delete_horizon
    payload = _encode_records(
        (
            0 if log_append else r.timestamp - base_ts,
            r.offset - h.base_offset,
            r.key,
            r.value,
            r.headers,
        )
        for r in records
    )
    attributes = h.attributes if delete_horizon is None else h.attributes | DELETE_HORIZON
    max_ts = h.max_timestamp if log_append else max(r.timestamp for r in records)
    batch = bytearray(
        seal_batch(
            _compress(h.attributes & COMPRESSION_MASK, payload),
            len(records),
            base_offset=h.base_offset,
            timestamp=base_ts,
            max_timestamp=max_ts,
            attributes=attributes,
            producer_id=h.producer_id,
            producer_epoch=h.producer_epoch,
            base_sequence=h.base_sequence,
        )
    )
    return _with_offsets_and_epoch(batch, h)


def empty_batch(h: BatchHeader) -> bytes:
    """The header of `h` with no records, as Kafka's cleaner keeps a producer's last batch
    whose records it removed: offsets, sequence and epoch kept for the producer state."""
    batch = bytearray(
        seal_batch(
            b"",
            0,
            base_offset=h.base_offset,
            timestamp=h.max_timestamp,
            max_timestamp=h.max_timestamp,
            attributes=h.attributes & ~(COMPRESSION_MASK | DELETE_HORIZON),
            producer_id=h.producer_id,
            producer_epoch=h.producer_epoch,
            base_sequence=h.base_sequence,
        )
    )
    return _with_offsets_and_epoch(batch, h)


def _with_offsets_and_epoch(batch: bytearray, h: BatchHeader) -> bytes:
    # seal_batch takes the last offset delta from the count and writes leader epoch 0: put
    # the original ones back (the epoch is outside the CRC, the delta inside it).
    struct.pack_into(">i", batch, CRC_START + 2, h.last_offset_delta)  # after attributes
    struct.pack_into(">i", batch, 12, h.partition_leader_epoch)
    _CRC.pack_into(batch, CRC_START - 4, crc32c(memoryview(batch)[CRC_START:]))
    return bytes(batch)


def encode_batch(
    records: Sequence[tuple[bytes | None, bytes | None]],
    *,
    base_offset: int = 0,
    timestamp: int = 0,
    codec: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    headers: Sequence[Sequence[tuple[str, bytes | None]]] | None = None,
    timestamp_deltas: Sequence[int] | None = None,
    attributes: int = 0,
) -> bytes:
    """A v2 batch of (key, value) records, with `headers` and `timestamp_deltas` per record if
    given: for tests, golden frames and benchmark loads."""
    body = _encode_records(
        (
            timestamp_deltas[i] if timestamp_deltas else 0,
            i,
            key,
            value,
            headers[i] if headers else (),
        )
        for i, (key, value) in enumerate(records)
    )
    max_delta = max(timestamp_deltas or (0,))
    return seal_batch(
        _compress(codec, body),
        len(records),
        base_offset=base_offset,
        timestamp=timestamp,
        max_timestamp=timestamp + max_delta,
        attributes=codec | attributes,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )


def seal_batch(
    payload: bytes,
    count: int,
    *,
    base_offset: int = 0,
    timestamp: int = 0,
    max_timestamp: int | None = None,
    attributes: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
) -> bytes:
    """A v2 batch header with a correct CRC around `payload`, taken as `count` records: for
    tests that need a batch whose records are whatever they say."""
    tail = struct.pack(
        ">hiqqqhii",
        attributes,
        count - 1,
        timestamp,
        timestamp if max_timestamp is None else max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = crc32c(payload, crc32c(tail))
    length = HEADER_SIZE - LOG_OVERHEAD + len(payload)
    return struct.pack(">qiibI", base_offset, length, 0, 2, crc) + tail + payload
