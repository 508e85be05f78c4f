"""The handler registry: api key → handler, with the versions it serves declared beside it
(franz-go kfake's `regKey`). ApiVersions advertises exactly this table, so a version is
advertised if and only if a handler serves it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from msklite.handlers.context import Handler
from msklite.protocol import messages, schemas
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Reader


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


def spec_request(api_key: int, header: RequestHeader, r: Reader) -> tuple[int, Any, Any]:
    """(version, decoded request, response class) for an API served by the spec codec."""
    v = header.api_version
    req = messages.decode_request(schemas.REQUESTS[api_key], v, r.data[r.pos :])
    return v, req, messages.response_class(api_key)


def advertised_versions(cap: dict[int, int] | None = None) -> list[tuple[int, int, int]]:
    """(api_key, min, max) for ApiVersions, optionally capped per key (--kafka-version)."""
    out = []
    for key in sorted(HANDLERS):
        spec = HANDLERS[key]
        hi = (
            spec.max_version
            if cap is None
            else min(spec.max_version, cap.get(key, spec.max_version))
        )
        if hi >= spec.min_version:
            out.append((key, spec.min_version, hi))
    return out
