"""The SCRAM server against RFC 7677's SCRAM-SHA-256 exchange, and its refusals."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msklite.credentials import make_credential
from msklite.security.scram import ScramError, ScramServer, ScramUsers

# RFC 7677 section 3: user "user", password "pencil"
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
NONCE = "rOprNGfwEbeRWgbNEkqO" + SERVER_NONCE
SERVER_FIRST = f"r={NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode()
CLIENT_FINAL = f"c=biws,r={NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".encode()
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_users(password: str = "pencil") -> ScramUsers:
    users = ScramUsers()
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    users.put("SCRAM-SHA-256", "user", make_credential("SCRAM-SHA-256", password, 4096, salt))
    return users


def test_rfc7677_exchange() -> None:
    server = ScramServer("SCRAM-SHA-256", rfc_users(), SERVER_NONCE)
    assert server.evaluate(CLIENT_FIRST) == SERVER_FIRST
    assert server.user is None
    assert server.evaluate(CLIENT_FINAL) == SERVER_FINAL
    assert server.user == "user"
    with pytest.raises(ScramError):
        server.evaluate(CLIENT_FINAL)  # the exchange is over


def test_wrong_password_is_refused() -> None:
    server = ScramServer("SCRAM-SHA-256", rfc_users("not-pencil"), SERVER_NONCE)
    server.evaluate(CLIENT_FIRST)
    with pytest.raises(ScramError, match="Invalid client credentials") as e:
        server.evaluate(CLIENT_FINAL)
    assert e.value.public is None  # the client is told nothing specific
    assert server.user is None


def test_unknown_user_and_other_mechanism_are_refused() -> None:
    with pytest.raises(ScramError, match="Invalid user credentials"):
        ScramServer("SCRAM-SHA-256", rfc_users()).evaluate(b"n,,n=nobody,r=abc")
    # the user has no SCRAM-SHA-512 credential
    with pytest.raises(ScramError, match="Invalid user credentials"):
        ScramServer("SCRAM-SHA-512", rfc_users()).evaluate(CLIENT_FIRST)


def test_a_changed_nonce_is_refused() -> None:
    server = ScramServer("SCRAM-SHA-256", rfc_users(), SERVER_NONCE)
    server.evaluate(CLIENT_FIRST)
    with pytest.raises(ScramError, match="nonce"):
        server.evaluate(CLIENT_FINAL.replace(b"k0,", b"k1,"))


def test_authzid_other_than_the_user_gets_kafkas_message() -> None:
    server = ScramServer("SCRAM-SHA-256", rfc_users())
    with pytest.raises(ScramError) as e:
        server.evaluate(b"n,a=admin,n=user,r=abc")
    assert e.value.public == (
        "Authentication failed: Client requested an authorization id that is different "
        "from username"
    )
    # the same name as authzid is fine, escaped as RFC 5802 escapes it
    users = ScramUsers()
    users.add("a,b=c", "pw")
    first = ScramServer("SCRAM-SHA-512", users).evaluate(b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=x")
    assert first.startswith(b"r=x")


@given(st.binary(max_size=300))
def test_a_garbage_first_message_only_raises_scram_errors(message: bytes) -> None:
    server = ScramServer("SCRAM-SHA-256", rfc_users(), SERVER_NONCE)
    try:
        server.evaluate(message)
    except ScramError:
        pass
    assert server.user is None


@given(
    st.binary(max_size=300)
    | st.text(max_size=300).map(lambda t: f"c=biws,r={NONCE},p={t}".encode())
)
def test_a_garbage_final_message_only_raises_scram_errors(message: bytes) -> None:
    server = ScramServer("SCRAM-SHA-256", rfc_users(), SERVER_NONCE)
    server.evaluate(CLIENT_FIRST)
    with pytest.raises(ScramError):
        server.evaluate(message)
    assert server.user is None
