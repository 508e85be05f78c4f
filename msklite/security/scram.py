"""SASL/SCRAM (RFC 5802/7677) as Kafka's ScramSaslServer serves it: SCRAM-SHA-512 (MSK's) and
SCRAM-SHA-256, credentials kept as Kafka keeps them (salt, stored key, server key,
iterations; never the password).

Every failure but one is Kafka's SaslException, which the authenticator answers with one
message that says nothing about which part was wrong (a user's existence is not disclosed).

Deviations from Kafka/MSK:
- Users come from the Python API, `--scram-user` and AlterUserScramCredentials and are saved
  with the cluster metadata (Kafka's metadata log); MSK takes them from Secrets Manager.
  Delegation-token authentication (`tokenauth=true`) is not served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from msklite.credentials import HASHES, ScramCredential, make_credential, verifies
from msklite.security.mechanism import SaslFailure

if TYPE_CHECKING:
    from msklite.controller import Controller


class ScramError(SaslFailure):
    """A failed exchange; `public` is set only where Kafka shows the client its own message."""


class ScramUsers:
    """The cluster's SCRAM users. Once the cluster starts (`bind`) they are the controller's,
    saved with the cluster metadata and changed by AlterUserScramCredentials too; the users
    given at start (`--scram-user`, the Python API) are written there then, unless their saved
    credentials already verify the password (as Kafka's format-time SCRAM records are kept).
    Before that (and in unit tests) they live here."""

    def __init__(self) -> None:
        self._configured: dict[str, str] = {}
        self._local: dict[tuple[str, str], ScramCredential] = {}
        self._controller: Controller | None = None

    def add(self, user: str, password: str, mechanisms: tuple[str, ...] = tuple(HASHES)) -> None:
        if not user:
            raise ValueError("a SCRAM user name is a non-empty str")
        self._configured[user] = password
        if self._controller is not None:
            self._apply(self._controller, user, password, mechanisms)
            return
        for mechanism in mechanisms:
            self._local[mechanism, user] = make_credential(mechanism, password)

    def put(self, mechanism: str, user: str, credential: ScramCredential) -> None:
        """Store a credential salted and iterated elsewhere (unbound only: tests)."""
        self._local[mechanism, user] = credential

    def bind(self, controller: Controller) -> None:
        self._controller = controller
        for user, password in self._configured.items():
            self._apply(controller, user, password, tuple(HASHES))

    def unbind(self) -> None:
        self._controller = None

    @staticmethod
    def _apply(
        controller: Controller, user: str, password: str, mechanisms: tuple[str, ...]
    ) -> None:
        saved = controller.scram.get(user, {})
        if all(m in saved and verifies(saved[m], m, password) for m in mechanisms):
            return
        controller.set_scram_credentials(
            user, {m: make_credential(m, password) for m in mechanisms}
        )

    def get(self, mechanism: str, user: str) -> ScramCredential | None:
        if self._controller is not None:
            return self._controller.scram.get(user, {}).get(mechanism)
        return self._local.get((mechanism, user))


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
