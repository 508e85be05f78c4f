"""SCRAM credentials as Kafka stores them (salt, stored key, server key, iterations; never the
password): how they are made from a password or from the salted password
AlterUserScramCredentials carries, and their saved form. The controller keeps them with the
cluster metadata; the SCRAM server (security/scram.py) checks proofs against them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
# ScramMechanism's wire codes (Describe/AlterUserScramCredentials)
MECHANISM_TYPES = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
TYPE_OF = {name: code for code, name in MECHANISM_TYPES.items()}
DEFAULT_ITERATIONS = 4096  # kafka-configs' default and Kafka's minimum for both mechanisms
MIN_ITERATIONS, MAX_ITERATIONS = 4096, 16384


@dataclass(frozen=True, slots=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> list[Any]:
        b64 = base64.b64encode
        return [
            b64(self.salt).decode(),
            b64(self.stored_key).decode(),
            b64(self.server_key).decode(),
            self.iterations,
        ]

    @classmethod
    def from_json(cls, row: list[Any]) -> ScramCredential:
        salt, stored, server, iterations = row
        b64 = base64.b64decode
        return cls(b64(salt), b64(stored), b64(server), iterations)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(HASHES[mechanism], password.encode(), salt, iterations)


def from_salted_password(
    mechanism: str, salted: bytes, salt: bytes, iterations: int
) -> ScramCredential:
    """Kafka's ScramFormatter: stored key H(HMAC(salted, "Client Key")), server key
    HMAC(salted, "Server Key")."""
    name = HASHES[mechanism]
    client_key = hmac.digest(salted, b"Client Key", name)
    return ScramCredential(
        salt,
        hashlib.new(name, client_key).digest(),
        hmac.digest(salted, b"Server Key", name),
        iterations,
    )


def make_credential(
    mechanism: str, password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> ScramCredential:
    salt = os.urandom(32) if salt is None else salt
    return from_salted_password(
        mechanism, salted_password(mechanism, password, salt, iterations), salt, iterations
    )


def verifies(credential: ScramCredential, mechanism: str, password: str) -> bool:
    """Whether `password` is the one `credential` was made from."""
    again = make_credential(mechanism, password, credential.iterations, credential.salt)
    return hmac.compare_digest(again.stored_key, credential.stored_key)
