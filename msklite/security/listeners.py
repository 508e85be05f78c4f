"""The listeners MSK offers on every broker and how `--auth` names them.

MSK's ports: PLAINTEXT 9092, TLS 9094, SASL_SSL with SCRAM 9096, SASL_SSL with IAM 9098.
In the port-offset layout (every broker on one address), broker i's listener of a kind
is at `port + offset + i - 1`, the offsets far enough apart for 99 brokers: PLAINTEXT +0,
TLS +100, SCRAM +200, IAM +300 (so `--port 9092` gives 9092…, 9192…, 9292…, 9392…).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ListenerKind:
    auth: str  # its word in `--auth`
    name: str  # MSK's listener name; requests carry it (RequestHeader.listener)
    msk_port: int
    offset: int  # from the base port in the port-offset layout
    tls: bool
    mechanisms: tuple[str, ...]  # SASL mechanisms, in the order the handshake lists them
    label: str  # the bootstrap line's words, as GetBootstrapBrokers' fields name the kind


PLAINTEXT = ListenerKind("plaintext", "CLIENT", 9092, 0, False, (), "")
TLS = ListenerKind("tls", "CLIENT_SECURE", 9094, 100, True, (), "TLS")
SCRAM = ListenerKind(
    "scram",
    "CLIENT_SASL_SCRAM",
    9096,
    200,
    True,
    ("SCRAM-SHA-512", "SCRAM-SHA-256"),
    "SASL/SCRAM",
)
IAM = ListenerKind("iam", "CLIENT_IAM", 9098, 300, True, ("AWS_MSK_IAM", "OAUTHBEARER"), "IAM")
KINDS = {k.auth: k for k in (PLAINTEXT, TLS, SCRAM, IAM)}
MAX_BROKERS_PER_KIND = 100  # the offsets' spacing


def parse_auth(auth: str | Iterable[str]) -> tuple[ListenerKind, ...]:
    """The listener kinds of `--auth plaintext,tls,scram,iam` (or a list of those words), in
    MSK's port order; ValueError naming what is not served."""
    words = [w.strip().lower() for w in auth.split(",")] if isinstance(auth, str) else list(auth)
    if not words or any(not isinstance(w, str) or not w for w in words):
        raise ValueError(f"auth is a non-empty list of {', '.join(KINDS)}, got {auth!r}")
    for word in words:
        if word not in KINDS:
            raise ValueError(f"unknown auth {word!r}: choose from {', '.join(KINDS)}")
    if len(set(words)) != len(words):
        raise ValueError(f"auth names a listener twice: {auth!r}")
    return tuple(k for k in KINDS.values() if k.auth in words)
