"""Record batches (magic v2) as opaque bytes.

The broker reads only the 61-byte batch header below; the records after it stay untouched on
the produce/fetch path. The CRC-32C covers `attributes` to the end of the batch, so the two
fields the broker assigns — `base_offset` and `partition_leader_epoch` — are rewritten without
recomputing it. Only `LogAppendTime` changes covered bytes (attributes, max timestamp), and
only then is the CRC recomputed.

Record-level decoding (`iter_records`) exists for the few places Kafka must look inside a batch
(ListOffsets by timestamp); it decompresses with cramjam.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import NamedTuple

from msklite.errors import ErrorCode, KafkaError, ProtocolError
from msklite.protocol.primitives import Buffer, Reader, Writer

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

NO_PRODUCER_ID = -1
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


def validate_produced_batch(records: memoryview, max_message_bytes: int) -> BatchHeader:
    """Check one partition's produced records the way Kafka's LogValidator does, reading only
    the header and the CRC: exactly one v2 batch, sane length, known codec, matching CRC.
    Raises `KafkaError` with the code Kafka answers."""
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
    if h.attributes & COMPRESSION_MASK not in CODECS:
        raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)
    if h.records_count <= 0 or h.last_offset_delta != h.records_count - 1:
        raise KafkaError(ErrorCode.INVALID_RECORD, "record count and last offset delta disagree")
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


# ---- record level: only for the paths where Kafka looks inside a batch ----


class Record(NamedTuple):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


def _decompress(codec: int, data: bytes) -> bytes:
    import cramjam

    if codec == 1:
        return bytes(cramjam.gzip.decompress(data))
    if codec == 2:
        if data[:8] == b"\x82SNAPPY\x00":
            # xerial framing (Java clients): 16-byte header, then (int32 length, block)*
            out = bytearray()
            pos = 16
            while pos + 4 <= len(data):
                (n,) = struct.unpack_from(">i", data, pos)
                out += bytes(cramjam.snappy.decompress_raw(data[pos + 4 : pos + 4 + n]))
                pos += 4 + n
            return bytes(out)
        return bytes(cramjam.snappy.decompress_raw(data))
    if codec == 3:
        return bytes(cramjam.lz4.decompress(data))
    if codec == 4:
        return bytes(cramjam.zstd.decompress(data))
    return data


def _compress(codec: int, data: bytes) -> bytes:
    import cramjam

    if codec == 1:
        return bytes(cramjam.gzip.compress(data))
    if codec == 2:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == 3:
        return bytes(cramjam.lz4.compress(data))
    if codec == 4:
        return bytes(cramjam.zstd.compress(data))
    return data


def iter_records(batch: Buffer) -> Iterator[Record]:
    h = read_header(batch)
    body = bytes(memoryview(batch)[HEADER_SIZE : h.size])
    r = Reader(memoryview(_decompress(h.attributes & COMPRESSION_MASK, body)))
    try:
        for _ in range(h.records_count):
            length = r.varint()
            end = r.pos + length
            r.int8()  # record attributes (unused)
            ts = h.base_timestamp + r.varint()
            off = h.base_offset + r.varint()
            klen = r.varint()
            key = bytes(r.raw(klen)) if klen >= 0 else None
            vlen = r.varint()
            value = bytes(r.raw(vlen)) if vlen >= 0 else None
            headers: list[tuple[str, bytes | None]] = []
            for _ in range(r.varint()):
                hk = str(r.raw(r.varint()), "utf-8")
                hvlen = r.varint()
                headers.append((hk, bytes(r.raw(hvlen)) if hvlen >= 0 else None))
            r.pos = end
            if h.attributes & TIMESTAMP_TYPE_LOG_APPEND:
                ts = h.max_timestamp
            yield Record(off, ts, key, value, headers)
    except ProtocolError as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"undecodable records: {e}") from e


def _varint(w: Writer, v: int) -> None:
    w.uvarint((v << 1) ^ (v >> 63))


def encode_batch(
    records: list[tuple[bytes | None, bytes | None]],
    *,
    base_offset: int = 0,
    timestamp: int = 0,
    codec: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    headers: list[tuple[str, bytes]] | None = None,
) -> bytes:
    """A v2 batch of (key, value) records: for tests, golden frames and benchmark loads."""
    body = Writer()
    for i, (key, value) in enumerate(records):
        rec = Writer()
        rec.int8(0)
        _varint(rec, 0)  # timestamp delta
        _varint(rec, i)  # offset delta
        for field in (key, value):
            if field is None:
                _varint(rec, -1)
            else:
                _varint(rec, len(field))
                rec.raw(field)
        _varint(rec, len(headers or ()))
        for hk, hv in headers or ():
            _varint(rec, len(hk.encode()))
            rec.raw(hk.encode())
            _varint(rec, len(hv))
            rec.raw(hv)
        _varint(body, len(rec.buf))
        body.raw(rec.buf)
    payload = _compress(codec, bytes(body.buf))
    attrs = codec
    n = len(records)
    tail = struct.pack(
        ">hiqqqhii",
        attrs,
        n - 1,
        timestamp,
        timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        n,
    )
    crc = crc32c(payload, crc32c(tail))
    length = HEADER_SIZE - LOG_OVERHEAD + len(payload)
    return struct.pack(">qiibI", base_offset, length, 0, 2, crc) + tail + payload
