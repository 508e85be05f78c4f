"""The handler registry: api key → handler, with the versions it serves declared beside it
(franz-go kfake's `regKey`). ApiVersions advertises this table intersected with the emulated
Kafka release's, so a version is advertised if and only if a handler serves it and that
release did."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from msklite.handlers.context import Handler
from msklite.protocol import messages, schemas
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    api_key: int
    min_version: int
    max_version: int
    flexible_from: int | None  # first flexible version (header v2 / tagged fields)
    handler: Handler

    def is_flexible(self, version: int) -> bool:
        return self.flexible_from is not None and version >= self.flexible_from


HANDLERS: dict[int, HandlerSpec] = {}


def handles(
    api_key: int, versions: tuple[int, int], flexible_from: int | None
) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if api_key in HANDLERS:
            raise RuntimeError(f"two handlers for api key {api_key}")
        HANDLERS[api_key] = HandlerSpec(api_key, versions[0], versions[1], flexible_from, fn)
        return fn

    return register


M = TypeVar("M", bound=schemas.Message)


def spec_request(message: type[M], header: RequestHeader, r: Reader) -> M:
    """The typed request of an API served by the spec codec (ProtocolError if malformed)."""
    return messages.decode_request(message, header.api_version, r.data[r.pos :])


def spec_response(header: RequestHeader, message: schemas.Message) -> list[Buffer]:
    """The response body, at the request's version."""
    return [messages.encode(message, header.api_version)]


def served_versions(release: Mapping[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) this broker advertises and accepts when it emulates a Kafka
    release: what the release advertised (msklite.kafka_releases) that a handler serves.
    An API the release lacks is absent, so a request for it closes the connection."""
    out = {}
    for key in sorted(HANDLERS):
        spec = HANDLERS[key]
        if key not in release:
            continue
        lo = max(spec.min_version, release[key][0])
        hi = min(spec.max_version, release[key][1])
        if lo <= hi:
            out[key] = (lo, hi)
    return out
