"""The SASL state before dispatch, request by request, and fuzzed SASL bodies."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.net.sasl.scram import ScramClient
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from msklite.errors import ErrorCode, ProtocolError
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Reader
from msklite.security.authenticator import SaslAuthenticator
from msklite.security.scram import ScramServer, ScramUsers

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


def _authenticator() -> SaslAuthenticator:
    users = ScramUsers()
    users.add("alice", "pw")
    return SaslAuthenticator({m: functools.partial(ScramServer, m, users) for m in MECHANISMS})


def _send(auth: SaslAuthenticator, api_key: int, version: int, body: bytes) -> bytes:
    header = RequestHeader(api_key, version, 1, "test")
    return b"".join(bytes(b) for b in auth.authenticate(header, Reader(memoryview(body))))


def _handshake(auth: SaslAuthenticator, mechanism: str) -> Any:
    body = bytes(SaslHandshakeRequest[1](mechanism=mechanism).encode(version=1))
    out = _send(auth, ApiKey.SASL_HANDSHAKE, 1, body)
    return SaslHandshakeResponse.decode(out, version=1)


def test_a_request_before_the_handshake_closes() -> None:
    with pytest.raises(ProtocolError, match="during SASL handshake"):
        _send(_authenticator(), ApiKey.METADATA, 1, b"")


def _scram_round(
    auth: SaslAuthenticator, password: str = "pw", raw: bool = False, user: str = "alice"
) -> bytes:
    """A SCRAM-SHA-512 exchange after the handshake; the server's last token."""
    client = ScramClient(user, password, "SCRAM-SHA-512")

    def step(message: bytes) -> bytes:
        if raw:
            return auth.authenticate_raw(message)
        body = bytes(SaslAuthenticateRequest[1](auth_bytes=message).encode(version=1))
        resp = SaslAuthenticateResponse.decode(
            _send(auth, ApiKey.SASL_AUTHENTICATE, 1, body), version=1
        )
        return bytes(resp.auth_bytes)

    client.process_server_first_message(step(client.first_message()))
    return step(client.final_message())


def test_handshake_v0_goes_on_in_raw_tokens() -> None:
    auth = _authenticator()
    out = _send(auth, ApiKey.SASL_HANDSHAKE, 0, b"\x00\x0dSCRAM-SHA-512")
    assert SaslHandshakeResponse.decode(out, version=0).error_code == 0
    assert auth.raw_tokens
    assert _scram_round(auth, raw=True).startswith(b"v=")
    assert auth.principal == "User:alice" and not auth.raw_tokens and not auth.failed
    # a wrong password: no answer, the connection closes
    auth = _authenticator()
    _send(auth, ApiKey.SASL_HANDSHAKE, 0, b"\x00\x0dSCRAM-SHA-512")
    assert _scram_round(auth, "wrong", raw=True) == b""
    assert auth.failed


def test_reauthentication_keeps_mechanism_and_principal() -> None:
    users = ScramUsers()
    users.add("alice", "pw")
    users.add("bob", "pw")
    auth = SaslAuthenticator(
        {m: functools.partial(ScramServer, m, users) for m in MECHANISMS}, max_reauth_ms=5000
    )
    _handshake(auth, "SCRAM-SHA-512")
    _scram_round(auth)
    assert auth.principal == "User:alice" and auth.session_lifetime_ms == 5000
    auth.reauthenticate()
    assert auth.principal is None
    _handshake(auth, "SCRAM-SHA-512")
    _scram_round(auth)
    assert auth.principal == "User:alice" and not auth.failed
    # another mechanism: the handshake is answered, the exchange fails
    auth.reauthenticate()
    assert _handshake(auth, "SCRAM-SHA-256").error_code == 0
    body = bytes(SaslAuthenticateRequest[1](auth_bytes=b"n,,n=alice,r=x").encode(version=1))
    resp = SaslAuthenticateResponse.decode(
        _send(auth, ApiKey.SASL_AUTHENTICATE, 1, body), version=1
    )
    assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert "not supported for re-authentication" in resp.error_message
    # another principal: refused with Kafka's message
    auth = SaslAuthenticator({m: functools.partial(ScramServer, m, users) for m in MECHANISMS})
    _handshake(auth, "SCRAM-SHA-512")
    _scram_round(auth, user="bob")
    assert auth.principal == "User:bob"
    auth.reauthenticate()
    _handshake(auth, "SCRAM-SHA-512")
    _scram_round(auth)  # alice
    assert auth.failed


def test_an_unknown_mechanism_is_answered_then_the_connection_fails() -> None:
    auth = _authenticator()
    resp = _handshake(auth, "GSSAPI")
    assert resp.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert resp.mechanisms == list(MECHANISMS)
    assert auth.failed and auth.principal is None


def test_a_request_in_the_exchange_other_than_authenticate_closes() -> None:
    auth = _authenticator()
    assert _handshake(auth, "SCRAM-SHA-512").error_code == 0
    with pytest.raises(ProtocolError, match="during SASL authentication"):
        _send(auth, ApiKey.SASL_HANDSHAKE, 1, b"")


@given(st.binary(max_size=200), st.integers(0, 2))
def test_fuzzed_authenticate_bodies_never_crash(body: bytes, version: int) -> None:
    auth = _authenticator()
    _handshake(auth, "SCRAM-SHA-512")
    try:
        out = _send(auth, ApiKey.SASL_AUTHENTICATE, version, body)
    except ProtocolError:
        return  # a malformed request: the connection closes
    resp = SaslAuthenticateResponse.decode(out, version=version)
    assert resp.error_code in (ErrorCode.NONE, ErrorCode.SASL_AUTHENTICATION_FAILED)
    assert auth.principal is None


@given(st.binary(max_size=100))
def test_fuzzed_scram_tokens_fail_authentication(token: bytes) -> None:
    auth = _authenticator()
    _handshake(auth, "SCRAM-SHA-512")
    for _ in range(2):
        body = bytes(SaslAuthenticateRequest[1](auth_bytes=token).encode(version=1))
        out = _send(auth, ApiKey.SASL_AUTHENTICATE, 1, body)
        resp = SaslAuthenticateResponse.decode(out, version=1)
        if resp.error_code:
            assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
            assert auth.failed
            break
    assert auth.principal is None


@given(st.lists(st.binary(max_size=120), min_size=1, max_size=3))
def test_fuzzed_raw_tokens_after_handshake_v0_fail_cleanly(tokens: list[bytes]) -> None:
    auth = _authenticator()
    _send(auth, ApiKey.SASL_HANDSHAKE, 0, b"\x00\x0dSCRAM-SHA-512")
    for token in tokens:
        auth.authenticate_raw(token)
        if auth.failed:
            break
    assert auth.principal is None
