"""SASL/SCRAM (RFC 5802/7677) as Kafka's ScramSaslServer serves it: SCRAM-SHA-512 (MSK's) and
SCRAM-SHA-256, credentials kept as Kafka keeps them (salt, stored key, server key,
iterations; never the password).

Every failure but one is Kafka's SaslException, which the authenticator answers with one
message that says nothing about which part was wrong (a user's existence is not disclosed).

Deviations from Kafka/MSK:
- Users come from the Python API and `--scram-user` and live in memory: MSK takes them from
  Secrets Manager, Kafka from its metadata log; Describe/AlterUserScramCredentials are not
  served yet. Delegation-token authentication (`tokenauth=true`) is not served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from msklite.security.mechanism import SaslFailure

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
DEFAULT_ITERATIONS = 4096  # kafka-configs' default and Kafka's minimum for both mechanisms


class ScramError(SaslFailure):
    """A failed exchange; `public` is set only where Kafka shows the client its own message."""


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


def make_credential(
    mechanism: str, password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> ScramCredential:
    name = HASHES[mechanism]
    salt = os.urandom(32) if salt is None else salt
    salted = hashlib.pbkdf2_hmac(name, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", name)
    return ScramCredential(
        salt,
        hashlib.new(name, client_key).digest(),
        hmac.digest(salted, b"Server Key", name),
        iterations,
    )


class ScramUsers:
    """The SCRAM credentials of a cluster: (mechanism, user name) → credential."""

    def __init__(self) -> None:
        self._credentials: dict[tuple[str, str], ScramCredential] = {}

    def add(self, user: str, password: str, mechanisms: tuple[str, ...] = tuple(HASHES)) -> None:
        if not user:
            raise ValueError("a SCRAM user name is a non-empty str")
        for mechanism in mechanisms:
            self._credentials[mechanism, user] = make_credential(mechanism, password)

    def put(self, mechanism: str, user: str, credential: ScramCredential) -> None:
        """Store a credential salted and iterated elsewhere (as AlterUserScramCredentials
        carries it)."""
        self._credentials[mechanism, user] = credential

    def remove(self, user: str) -> None:
        for mechanism in HASHES:
            self._credentials.pop((mechanism, user), None)

    def get(self, mechanism: str, user: str) -> ScramCredential | None:
        return self._credentials.get((mechanism, user))

    def users(self) -> list[str]:
        return sorted({user for _, user in self._credentials})


class ScramServer:
    """One exchange: `evaluate` takes each client message and returns the server's; `user`
    is set once the client's proof has been verified."""

    def __init__(self, mechanism: str, users: ScramUsers, server_nonce: str | None = None) -> None:
        """`server_nonce`: the part the server adds to the client's (random by default)."""
        self.mechanism = mechanism
        self._server_nonce = server_nonce
        self._hash = HASHES[mechanism]
        self._users = users
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._name = ""
        self.user: str | None = None

    @property
    def principal(self) -> str | None:
        return None if self.user is None else f"User:{self.user}"

    @property
    def expiry_ms(self) -> int | None:
        return None  # a password does not expire (delegation tokens, which do, are not served)

    def evaluate(self, message: bytes) -> bytes:
        try:
            text = message.decode()
        except UnicodeDecodeError:
            raise ScramError("a SCRAM message that is not UTF-8") from None
        if self._credential is None:
            return self._first(text)
        if self.user is None and self._nonce:
            return self._final(text)
        raise ScramError("a SCRAM message after the exchange completed")

    def _first(self, text: str) -> bytes:
        # gs2-header: channel-binding flag, authzid; then n=name,r=nonce[,extensions]
        flag, sep, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not sep or not sep2 or flag not in ("n", "y") or (authzid and authzid[:2] != "a="):
            raise ScramError("a malformed client-first message")
        attrs = _attributes(bare)
        name, nonce = _unescape(attrs.get("n", "")), attrs.get("r", "")
        if not name or not nonce:
            raise ScramError("a client-first message without a user name or nonce")
        credential = self._users.get(self.mechanism, name)
        if credential is None:
            raise ScramError("Authentication failed: Invalid user credentials")
        if authzid and _unescape(authzid[2:]) != name:
            raise ScramError(
                "authzid differs",
                "Authentication failed: Client requested an authorization id that is "
                "different from username",
            )
        self._credential = credential
        self._name = name
        self._client_first_bare = bare
        extra = self._server_nonce or base64.b64encode(os.urandom(18)).decode()
        self._nonce = nonce + extra
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def _final(self, text: str) -> bytes:
        credential = self._credential
        assert credential is not None
        without_proof, sep, proof_attr = text.rpartition(",p=")
        attrs = _attributes(without_proof) if sep else {}
        if attrs.get("r") != self._nonce:
            raise ScramError("Invalid client nonce in the final client message.")
        try:
            proof = base64.b64decode(proof_attr, validate=True)
        except ValueError:
            raise ScramError("Authentication failed: Invalid client final message") from None
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self._hash)
        if len(proof) != len(signature):
            raise ScramError("Invalid client credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.new(self._hash, client_key).digest(), credential.stored_key
        ):
            raise ScramError("Invalid client credentials")
        self.user = self._name
        verifier = hmac.digest(credential.server_key, auth_message, self._hash)
        return b"v=" + base64.b64encode(verifier)


def _attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError("a malformed SCRAM attribute")
        out.setdefault(key, value)
    return out


def _unescape(name: str) -> str:
    return name.replace("=2C", ",").replace("=3D", "=")
