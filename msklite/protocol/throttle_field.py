"""Where a response body carries throttle_time_ms, and writing it there after the handler
has encoded the body (a request-time quota is known only once the request has been handled).

Every response that has the field at a version starts with it, except Produce, whose field
ends the body (before the tagged fields of a flexible version, empty in msklite's encoding).
Versions without the field keep their bytes: the throttle then shows only as the muted
connection, as in Kafka.
"""

from __future__ import annotations

import struct
from functools import cache

from msklite.protocol.api_keys import ApiKey
from msklite.protocol.primitives import Buffer

_I32 = struct.Struct(">i")
FIRST, LAST = 0, 1


@cache
def _place(api_key: int, version: int) -> int | None:
    # imported here: the schemas load with the first answer a quota throttles, not at start-up
    from msklite.protocol import schemas

    response = schemas.RESPONSES.get(api_key)
    if response is None:
        return None
    fields = response.FIELDS
    if api_key == ApiKey.PRODUCE:
        # after the responses; only tagged fields (which msklite leaves empty) follow
        field, place = next(f for f in fields if f.name == "throttle_time_ms"), LAST
    else:
        field, place = fields[0], FIRST
    lo, hi = field.versions
    if field.name != "throttle_time_ms" or not lo <= version <= hi:
        return None
    return place


def write_throttle(api_key: int, version: int, flexible: bool, body: list[Buffer], ms: int) -> None:
    """Set the throttle_time_ms of an encoded response body (in place: the buffer holding
    the field is replaced by a patched copy)."""
    place = _place(api_key, version)
    if place is None or not body:
        return
    if place == FIRST:
        head = bytearray(body[0])
        _I32.pack_into(head, 0, ms)
        body[0] = head
    else:
        tail = bytearray(body[-1])
        # a flexible body ends with its (empty) tagged fields: one byte
        _I32.pack_into(tail, len(tail) - (5 if flexible else 4), ms)
        body[-1] = tail
