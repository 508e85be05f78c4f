"""Hypothesis: the produce-path record walk accepts every well-formed batch and answers any
mangled one with CORRUPT_MESSAGE or INVALID_RECORD, never another error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.errors import ErrorCode, KafkaError
from msklite.protocol import records as records_module
from msklite.protocol.records import (
    HEADER_SIZE,
    encode_batch,
    iter_records,
    read_header,
    seal_batch,
    validate_produced_batch,
)

_headers = st.lists(
    st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=20)),
    max_size=3,
)
_records = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=40),
        st.none() | st.binary(max_size=300),
        _headers,
        st.integers(-(2**62), 2**62),
    ),
    min_size=1,
    max_size=12,
)
_Rec = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]


def _batch(recs: list[_Rec], codec: int, base_ts: int) -> bytes:
    return encode_batch(
        [(k, v) for k, v, _, _ in recs],
        codec=codec,
        timestamp=base_ts,
        headers=[h for _, _, h, _ in recs],
        timestamp_deltas=[d for _, _, _, d in recs],
    )


@settings(max_examples=200, deadline=None)
@given(_records, st.integers(0, 4), st.integers(0, 2**40))
def test_well_formed_batches_are_accepted_and_read_back(
    recs: list[_Rec], codec: int, base_ts: int
) -> None:
    batch = _batch(recs, codec, base_ts)
    h = validate_produced_batch(memoryview(batch), 1 << 30)
    assert h.records_count == len(recs)
    got = [(r.key, r.value, r.headers, r.timestamp - base_ts) for r in iter_records(batch)]
    assert got == recs


_MUTATION = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.integers(0, 10**6),
    st.integers(0, 255),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, byte in mutations:
        at = where % (len(out) + 1)
        if kind == "insert":
            out[at:at] = bytes([byte])
        elif not out:
            continue
        elif kind == "truncate":
            del out[at:]
        else:
            at %= len(out)
            if kind == "delete":
                del out[at]
            else:
                out[at] = out[at] ^ (byte or 1) if kind == "flip" else byte
    return bytes(out)


def _outcome(batch: bytes) -> ErrorCode:
    try:
        validate_produced_batch(memoryview(batch), 1 << 30)
    except KafkaError as e:
        return e.code
    # Accepted: then it must be readable, record for record, as a consumer would read it.
    assert len(list(iter_records(batch))) == read_header(batch).records_count
    return ErrorCode.NONE


_REFUSALS = {ErrorCode.NONE, ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD}


@settings(max_examples=300, deadline=None)
@given(_records, st.integers(0, 4), st.lists(_MUTATION, min_size=1, max_size=4), st.booleans())
def test_mangled_records_are_refused_with_kafkas_codes(
    recs: list[_Rec], codec: int, mutations: list[tuple[str, int, int]], after_compression: bool
) -> None:
    """Mutate the records (before compression, or the compressed bytes themselves) and seal
    the batch again with a correct CRC: validation either accepts it as well formed or refuses
    it with CORRUPT_MESSAGE / INVALID_RECORD."""
    plain = _batch(recs, 0, 1000)[HEADER_SIZE:]
    if after_compression:
        payload = _mutate(records_module._compress(codec, plain), mutations)
    else:
        payload = records_module._compress(codec, _mutate(plain, mutations))
    batch = seal_batch(payload, len(recs), timestamp=1000, attributes=codec)
    assert _outcome(batch) in _REFUSALS


# ---- the walk's fast path over records laid out alike (records._alike) ----


def _walk_outcome(payload: bytes | bytearray, count: int) -> object:
    """What `walk_records` answers for `payload`: its summary, or the error's code and text."""
    try:
        return records_module.walk_records(memoryview(payload), count)
    except KafkaError as e:
        return (e.code, str(e))


def _alike_batch(
    count: int, key: bytes | None, value: bytes | None, deltas: list[int], headers_at: int | None
) -> bytes:
    headers: list[list[tuple[str, bytes | None]]] = [[] for _ in range(count)]
    if headers_at is not None:
        headers[headers_at % count] = [("h", b"1")]
    return encode_batch(
        [(key, value)] * count,
        headers=headers,
        timestamp_deltas=[deltas[i % len(deltas)] for i in range(count)],
    )


# Field sizes at the varint boundaries: a zig-zag length of 63 is one byte, 64 two; 8191 two,
# 8192 three. Record counts across the offset deltas' boundaries (64, 8192).
_SIZES = st.sampled_from([0, 1, 62, 63, 64, 65, 8190, 8191, 8192]).map(lambda n: b"v" * n)
_DELTAS = st.lists(
    st.integers(-64, 63) | st.sampled_from([64, -65, 8191, 8192, 2**40, -(2**63)]),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.tuples(st.integers(1, 150), st.none() | _SIZES, st.none() | _SIZES),
        st.tuples(
            st.sampled_from([8191, 8192, 8193, 8260]),
            st.none() | st.binary(max_size=2),
            st.sampled_from([b"", b"v" * 30]),
        ),
    ),
    _DELTAS,
    st.none() | st.integers(0, 10**4),
    st.lists(_MUTATION, max_size=3),
    st.integers(-2, 2),
)
def test_the_fast_walk_answers_as_the_record_by_record_walk(
    shape: tuple[int, bytes | None, bytes | None],
    deltas: list[int],
    headers_at: int | None,
    mutations: list[tuple[str, int, int]],
    count_error: int,
) -> None:
    """Batches of records laid out alike (where the walk compares a field across many records
    at once), mangled or not, with a right or wrong record count: the walk answers exactly as
    it does record by record — the same summary, or the same error and message — whether the
    records are read-only bytes or a writable buffer, as the frames the socket fills are (long
    runs' fields are then read through a char pointer)."""
    count, key, value = shape
    plain = _alike_batch(count, key, value, deltas, headers_at)[HEADER_SIZE:]
    payload = _mutate(plain, mutations) if mutations else plain
    claimed = max(1, count + count_error)
    fast = _walk_outcome(payload, claimed)
    assert _walk_outcome(bytearray(payload), claimed) == fast
    original = records_module._alike
    records_module._alike = lambda *_: (0, 0, 0)
    try:
        slow = _walk_outcome(payload, claimed)
    finally:
        records_module._alike = original
    assert fast == slow
