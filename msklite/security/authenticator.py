"""Authentication as a connection's state before dispatch, as Kafka's SaslServerAuthenticator
keeps it: until a SASL listener's connection has authenticated, only ApiVersions (which the
connection serves as usual), SaslHandshake and SaslAuthenticate are answered.

- Handshake state: SaslHandshake v1 naming an enabled mechanism moves on to the exchange; an
  unknown mechanism is answered UNSUPPORTED_SASL_MECHANISM (with the enabled ones) and the
  connection closes; any other request closes the connection unanswered.
- Exchange state: SaslAuthenticate carries the mechanism's messages; a failure is answered
  SASL_AUTHENTICATION_FAILED with Kafka's message and the connection closes
  `connection.failed.authentication.delay.ms` (100 ms) later, as in Kafka, so that the client
  reads the error before it sees the close; any other request closes it. On success the
  connection's principal is the mechanism's (`User:<name>`, `User:<IAM principal ARN>`).
- Session lifetime (SaslAuthenticate v1+), as Kafka computes it: 0 unless
  `connections.max.reauth.ms` is positive, then that, bounded by the credential's expiry where
  the mechanism knows one (an IAM signature's).

Deviations from Kafka/MSK:
- SaslHandshake v0 (raw SASL tokens outside Kafka's framing, pre-1.0 clients) closes the
  connection. A request other than SaslAuthenticate during the exchange closes it without
  Kafka's ILLEGAL_SASL_STATE answer first.
- Re-authentication (KIP-368) is not served: session_lifetime_ms is 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol import messages, schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.security.mechanism import SaslFailure, SaslServer


class SaslAuthenticator:
    """One connection's SASL state (the connection's `Authenticator`)."""

    def __init__(
        self,
        servers: Mapping[str, Callable[[], SaslServer]],
        close_delay_ms: int = 100,
        max_reauth_ms: int = 0,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        """`servers`: each enabled mechanism's server factory, in the handshake's order."""
        self.close_delay_ms = close_delay_ms
        self._servers = servers
        self._mechanisms = tuple(servers)
        self._max_reauth_ms = max_reauth_ms
        self._now_ms = now_ms
        self._server: SaslServer | None = None
        self.principal: str | None = None  # set once authenticated
        self.failed = False  # the last answer is the connection's last

    def authenticate(self, header: RequestHeader, r: Reader) -> list[Buffer]:
        if self._server is None:
            if header.api_key != ApiKey.SASL_HANDSHAKE:
                raise ProtocolError(
                    f"unexpected request of api key {header.api_key} during SASL handshake"
                )
            if header.api_version < 1:
                raise ProtocolError("SaslHandshake v0 (raw SASL tokens) is not served")
            return self._handshake(header, r)
        if header.api_key != ApiKey.SASL_AUTHENTICATE:
            raise ProtocolError(
                f"unexpected request of api key {header.api_key} during SASL authentication"
            )
        return self._exchange(self._server, header, r)

    def _handshake(self, header: RequestHeader, r: Reader) -> list[Buffer]:
        req = messages.decode_request(
            schemas.SaslHandshakeRequest, header.api_version, r.data[r.pos :]
        )
        error = ErrorCode.NONE
        if req.mechanism in self._mechanisms:
            self._server = self._servers[req.mechanism]()
        else:
            error = ErrorCode.UNSUPPORTED_SASL_MECHANISM
            self.failed = True
        body = schemas.SaslHandshakeResponse(error_code=error, mechanisms=list(self._mechanisms))
        return [messages.encode(body, header.api_version)]

    def _exchange(self, server: SaslServer, header: RequestHeader, r: Reader) -> list[Buffer]:
        req = messages.decode_request(
            schemas.SaslAuthenticateRequest, header.api_version, r.data[r.pos :]
        )
        try:
            token = server.evaluate(bytes(req.auth_bytes))
        except SaslFailure as e:
            self.failed = True
            message = e.public or (
                "Authentication failed during authentication due to invalid credentials "
                f"with SASL mechanism {server.mechanism}"
            )
            body = schemas.SaslAuthenticateResponse(
                error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                error_message=message,
                auth_bytes=b"",
                session_lifetime_ms=0,
            )
            return [messages.encode(body, header.api_version)]
        self.principal = server.principal
        body = schemas.SaslAuthenticateResponse(
            error_code=ErrorCode.NONE,
            error_message=None,
            auth_bytes=token,
            session_lifetime_ms=0 if self.principal is None else self._session_lifetime(server),
        )
        return [messages.encode(body, header.api_version)]

    def _session_lifetime(self, server: SaslServer) -> int:
        if self._max_reauth_ms <= 0:
            return 0
        expiry = server.expiry_ms
        if expiry is None:
            return self._max_reauth_ms
        return max(1, min(self._max_reauth_ms, expiry - self._now_ms()))
