"""ApiVersions (key 18), versions 0-4.

Behavior:
- Advertises what the emulated Kafka release (`--kafka-version`) advertised that a handler
  serves (BrokerContext.api_versions); the connection refuses every other version.
- v3+: client_software_name/version must match Kafka's pattern, else INVALID_REQUEST.
- KIP-511: a request at a version above the release's (4; 2.8.1: 3) gets a v0 body with
  UNSUPPORTED_VERSION and our ApiVersions range (built by `unsupported_version_body`; the
  connection calls it before any handler because such a request cannot be parsed).
"""

from __future__ import annotations

import re

from msklite.errors import ErrorCode
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles
from msklite.protocol import api_versions as codec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

_SOFTWARE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")


@handles(ApiKey.API_VERSIONS, versions=(0, 4), flexible_from=codec.FLEXIBLE_FROM)
def handle(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    v = header.api_version
    req = codec.decode_request(r, v)
    if v >= 3 and not (
        _SOFTWARE.match(req.client_software_name) and _SOFTWARE.match(req.client_software_version)
    ):
        return [codec.encode_response(v, ErrorCode.INVALID_REQUEST, [])]
    table = [(key, lo, hi) for key, (lo, hi) in ctx.api_versions.items()]
    return [codec.encode_response(v, ErrorCode.NONE, table)]


def unsupported_version_body(ctx: BrokerContext) -> bytes:
    lo, hi = ctx.api_versions[ApiKey.API_VERSIONS]
    entry = (ApiKey.API_VERSIONS.value, lo, hi)
    return bytes(codec.encode_response(0, ErrorCode.UNSUPPORTED_VERSION, [entry]))
