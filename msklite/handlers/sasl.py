"""SaslHandshake (17) v0-1 and SaslAuthenticate (36) v0-2 as KafkaApis answers them: on a
listener without SASL, or on a connection already authenticated. Before authentication on a
SASL listener these requests never reach a handler: the connection's authenticator
(msklite.security) answers them.
"""

from __future__ import annotations

from msklite.errors import ErrorCode
from msklite.handlers.context import BrokerContext
from msklite.handlers.registry import handles, spec_request, spec_response
from msklite.protocol import schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader


@handles(ApiKey.SASL_HANDSHAKE, versions=(0, 1), flexible_from=None)
def sasl_handshake(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    spec_request(schemas.SaslHandshakeRequest, header, r)
    body = schemas.SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    return spec_response(header, body)


@handles(ApiKey.SASL_AUTHENTICATE, versions=(0, 2), flexible_from=2)
def sasl_authenticate(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    spec_request(schemas.SaslAuthenticateRequest, header, r)
    body = schemas.SaslAuthenticateResponse(
        error_code=ErrorCode.ILLEGAL_SASL_STATE,
        error_message="SaslAuthenticate request received after successful authentication",
        auth_bytes=b"",
        session_lifetime_ms=0,
    )
    return spec_response(header, body)
