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
- SaslHandshake v0 (pre-1.0 clients): the exchange then goes on in raw SASL tokens, each a
  size-prefixed frame without Kafka's request header, answered the same way; a failure closes
  the connection without an answer, as Kafka does.
- Session lifetime (SaslAuthenticate v1+), as Kafka's SaslServerAuthenticator computes it:
  `connections.max.reauth.ms` (0: none), bounded by the credential's expiry where the
  mechanism knows one (an IAM signature's), which alone sets it when the config is 0.
- Re-authentication (KIP-368): a SaslHandshake on an authenticated connection starts the
  exchange over; the mechanism may not change (the handshake is answered, the exchange fails
  SASL_AUTHENTICATION_FAILED), nor the principal ("Cannot change principals during
  re-authentication"); success starts a new session lifetime. The connection closes a
  connection whose session has expired at its next request other than a SaslHandshake.

Deviations from Kafka/MSK:
- A request other than SaslAuthenticate during the exchange closes the connection without
  Kafka's ILLEGAL_SASL_STATE answer first.
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
        # SaslHandshake v0: the exchange goes on in raw tokens, without Kafka's headers
        self.raw_tokens = False
        # the session's lifetime from the last authentication (0: none), KIP-368
        self.session_lifetime_ms = 0
        # re-authenticating (KIP-368): the mechanism and principal that must not change
        self._previous: tuple[str, str] | None = None
        self._bad_mechanism: str | None = None

    def reauthenticate(self) -> None:
        """Start over on an authenticated connection (its SaslHandshake has arrived)."""
        assert self._server is not None and self.principal is not None
        self._previous = (self._server.mechanism, self.principal)
        self._server = None
        self._bad_mechanism = None
        self.principal = None

    def authenticate(self, header: RequestHeader, r: Reader) -> list[Buffer]:
        if self._server is None and self._bad_mechanism is None:
            if header.api_key != ApiKey.SASL_HANDSHAKE:
                raise ProtocolError(
                    f"unexpected request of api key {header.api_key} during SASL handshake"
                )
            if header.api_version < 1 and self._previous is not None:
                raise ProtocolError("re-authentication with SaslHandshake v0")
            return self._handshake(header, r)
        if header.api_key != ApiKey.SASL_AUTHENTICATE:
            raise ProtocolError(
                f"unexpected request of api key {header.api_key} during SASL authentication"
            )
        req = messages.decode_request(
            schemas.SaslAuthenticateRequest, header.api_version, r.data[r.pos :]
        )
        try:
            if self._bad_mechanism is not None:
                raise SaslFailure("mechanism changed", self._bad_mechanism)
            assert self._server is not None
            token = self._evaluate(self._server, bytes(req.auth_bytes))
        except SaslFailure as e:
            self.failed = True
            body = schemas.SaslAuthenticateResponse(
                error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                error_message=e.public or self._generic_failure(),
                auth_bytes=b"",
                session_lifetime_ms=0,
            )
            return [messages.encode(body, header.api_version)]
        body = schemas.SaslAuthenticateResponse(
            error_code=ErrorCode.NONE,
            error_message=None,
            auth_bytes=token,
            session_lifetime_ms=self.session_lifetime_ms if self.principal else 0,
        )
        return [messages.encode(body, header.api_version)]

    def authenticate_raw(self, token: bytes) -> bytes:
        """One raw token after SaslHandshake v0: the server's token back; a failure closes
        the connection without an answer, as Kafka does for v0 clients."""
        assert self._server is not None
        try:
            return self._evaluate(self._server, token)
        except SaslFailure:
            self.failed = True
            return b""

    def _generic_failure(self) -> str:
        mechanism = self._server.mechanism if self._server is not None else "?"
        return (
            "Authentication failed during authentication due to invalid credentials "
            f"with SASL mechanism {mechanism}"
        )

    def _handshake(self, header: RequestHeader, r: Reader) -> list[Buffer]:
        req = messages.decode_request(
            schemas.SaslHandshakeRequest, header.api_version, r.data[r.pos :]
        )
        error = ErrorCode.NONE
        if req.mechanism not in self._mechanisms:
            error = ErrorCode.UNSUPPORTED_SASL_MECHANISM
            self.failed = True
        elif self._previous is not None and req.mechanism != self._previous[0]:
            # Kafka answers the handshake, then fails the exchange (REAUTH_BAD_MECHANISM)
            self._bad_mechanism = (
                f"SASL mechanism '{req.mechanism}' requested by client is not supported for "
                f"re-authentication of mechanism '{self._previous[0]}'"
            )
        else:
            self._server = self._servers[req.mechanism]()
            self.raw_tokens = header.api_version == 0
        body = schemas.SaslHandshakeResponse(error_code=error, mechanisms=list(self._mechanisms))
        return [messages.encode(body, header.api_version)]

    def _evaluate(self, server: SaslServer, message: bytes) -> bytes:
        token = server.evaluate(message)
        principal = server.principal
        if principal is None:
            return token
        if self._previous is not None and principal != self._previous[1]:
            raise SaslFailure(
                "principal changed",
                f"Cannot change principals during re-authentication from {self._previous[1]}: "
                f"{principal}",
            )
        self.principal = principal
        self.raw_tokens = False
        self.session_lifetime_ms = self._session_lifetime(server)
        return token

    def _session_lifetime(self, server: SaslServer) -> int:
        expiry = server.expiry_ms
        if expiry is None:
            return max(self._max_reauth_ms, 0)
        # a credential just verified unexpired: at least 1 ms, so that the session expires
        left = max(expiry - self._now_ms(), 1)
        return left if self._max_reauth_ms <= 0 else min(left, self._max_reauth_ms)
