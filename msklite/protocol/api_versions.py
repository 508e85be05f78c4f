"""ApiVersions (key 18) codec, hand-written: it is the first request of every client and must
be answered without loading the spec-generated codec (cold start, DESIGN.md §3).

Versions 0-4 (flexible from 3). Per KIP-511 a request at a version we do not know is answered
with a v0 body carrying UNSUPPORTED_VERSION and our ApiVersions range, and the response header
is always v0.
"""

from __future__ import annotations

from dataclasses import dataclass

from msklite.protocol.primitives import Reader, Writer

FLEXIBLE_FROM = 3


@dataclass(slots=True)
class ApiVersionsRequest:
    client_software_name: str
    client_software_version: str


def decode_request(r: Reader, version: int) -> ApiVersionsRequest:
    if version < FLEXIBLE_FROM:
        return ApiVersionsRequest("", "")
    name = r.compact_string()
    sw_version = r.compact_string()
    r.skip_tagged_fields()
    return ApiVersionsRequest(name, sw_version)


def encode_response(
    version: int, error_code: int, api_keys: list[tuple[int, int, int]]
) -> bytearray:
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    w.int16(error_code)
    w.array_len(len(api_keys), flex)
    for key, lo, hi in api_keys:
        w.int16(key)
        w.int16(lo)
        w.int16(hi)
        if flex:
            w.empty_tagged_fields()
    if version >= 1:
        w.int32(0)  # throttle_time_ms
    if flex:
        w.empty_tagged_fields()
    return w.buf
