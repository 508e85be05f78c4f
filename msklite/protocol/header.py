"""Request header v0-v2 and response header v0-v1, with `struct` (≈1 µs a request).

Header version follows the API version: non-flexible requests use header v1 (key, version,
correlation id, nullable client id), flexible ones v2 (the same plus tagged fields). Responses:
v0 (correlation id) or, for flexible versions, v1 (plus tagged fields) — except ApiVersions,
whose response header is always v0 so that a client can parse it before it knows our versions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from msklite.protocol.primitives import Reader

_FIXED = struct.Struct(">hhi")
_CORRELATION = struct.Struct(">i")


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str
    client_host: str = ""  # the peer's address, filled in by the connection (not on the wire)
    # the listener the request came in on and who sent it (msklite.security), from the
    # connection: Metadata advertises that listener's endpoints, authorization asks the principal
    listener: str = "PLAINTEXT"
    principal: str = "User:ANONYMOUS"
    # set by a handler whose client went over a quota: the connection reads nothing more
    # from it for this long (Kafka mutes the channel), the response itself leaves at once
    throttle_ms: int = 0


def parse_request_header(frame: memoryview) -> tuple[RequestHeader, Reader]:
    """Parse the v1 part of the header; the caller skips tagged fields for flexible versions
    (it alone knows, from the handler registry, which versions are flexible)."""
    r = Reader(frame)
    api_key, api_version, correlation_id = _FIXED.unpack_from(frame, r._take(8))
    n = r.int16()
    # As Kafka reads it: a null client id is the empty one, and bytes that are not UTF-8 are
    # replaced (U+FFFD) rather than refused, since a client id is only ever shown back.
    client_id = "" if n < 0 else str(r.raw(n), "utf-8", "replace")
    return RequestHeader(api_key, api_version, correlation_id, client_id), r


def response_header(correlation_id: int, flexible: bool) -> bytes:
    head = _CORRELATION.pack(correlation_id)
    return head + b"\x00" if flexible else head
