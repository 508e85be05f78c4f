"""What the authenticator asks of one SASL mechanism's server side (Kafka's SaslServer): a
message in, a message out, who the client is once it is done, and until when its credential
holds."""

from __future__ import annotations

from typing import Protocol


class SaslFailure(Exception):
    """A failed exchange, answered SASL_AUTHENTICATION_FAILED; `public` is the message the
    client sees where the mechanism shows it one of its own (else Kafka's generic one)."""

    def __init__(self, why: str, public: str | None = None) -> None:
        super().__init__(why)
        self.public = public


class SaslServer(Protocol):
    mechanism: str

    def evaluate(self, message: bytes) -> bytes:
        """The answer to the client's next message (SaslFailure: the exchange failed)."""
        ...

    @property
    def principal(self) -> str | None:
        """`User:<name>` once the exchange has succeeded, else None."""
        ...

    @property
    def expiry_ms(self) -> int | None:
        """When the credential the client authenticated with stops being valid (wall clock,
        ms), where the mechanism knows it (KIP-368's session lifetime is bounded by it)."""
        ...
