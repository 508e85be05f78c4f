"""IAM authentication as MSK's 9098 listener serves it: SASL mechanism AWS_MSK_IAM (the
aws-msk-iam-auth JSON payload) and OAUTHBEARER carrying the presigned URL that
aws-msk-iam-sasl-signer-* makes. Both are a SigV4 presigned `GET /?Action=kafka-cluster:Connect`
request; the broker checks its fields, its age and its signature, then names the client by the
IAM identity whose key signed it.

The JSON payload (`version` 2020_10_22, `host`, `user-agent`, `action`, `x-amz-algorithm`,
`x-amz-credential`, `x-amz-date`, `x-amz-expires`, `x-amz-signedheaders`, `x-amz-signature`,
optional `x-amz-security-token`) signs the broker's host name; the OAUTHBEARER token is the
base64url (unpadded) URL `https://kafka.<region>.amazonaws.com/?Action=...&X-Amz-...` and signs
that host. A success is answered with MSK's JSON (`version`, `request-id`) for AWS_MSK_IAM and
with nothing for OAUTHBEARER; a failure is SASL_AUTHENTICATION_FAILED with the reason
(OAUTHBEARER first sends RFC 7628's error JSON and fails on the client's `%x01`, as Kafka's
OAuthBearerSaslServer does).

Credentials: an access key id → (secret access key, principal ARN, session token) table from
`--iam-credentials FILE` or the Python API. In permissive mode (the default) a key the table
does not know is accepted on a well-formed, unexpired payload without checking its signature,
and named `arn:aws:iam::000000000000:user/<access key id>`, so that a developer's own AWS
profile connects; a key the table knows is always checked. The SigV4 arithmetic is botocore's,
imported when the first IAM listener starts.

Deviations from Kafka/MSK:
- The signature's region is not checked (a local cluster has no region) and a permissive-mode
  principal is made up from the key; MSK asks AWS STS for the key's identity.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from msklite.security.mechanism import SaslFailure

VERSION = "2020_10_22"
ACTION = "kafka-cluster:Connect"
SERVICE = "kafka-cluster"
ALGORITHM = "AWS4-HMAC-SHA256"
PERMISSIVE_ACCOUNT = "000000000000"
MAX_EXPIRES_S = 7 * 24 * 3600  # SigV4's bound on a presigned request's life
CLOCK_SKEW_MS = 15 * 60 * 1000  # how far in the future a signing time may be, as AWS allows
_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = (
    "version",
    "host",
    "action",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
)


class IamError(Exception):
    """A payload refused; the message is what the client is told."""


@dataclass(frozen=True, slots=True)
class IamCredential:
    secret_access_key: str
    principal_arn: str
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class IamIdentity:
    principal_arn: str
    access_key_id: str
    expiry_ms: int  # the signed request's end of validity


def permissive_arn(access_key_id: str) -> str:
    return f"arn:aws:iam::{PERMISSIVE_ACCOUNT}:user/{access_key_id}"


def load_credentials(path: str) -> dict[str, IamCredential]:
    """`--iam-credentials FILE`: a JSON object mapping each access key id to
    `{"secret_access_key": ..., "principal_arn": ..., "session_token": ... (optional)}`."""
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e})") from None
    return parse_credentials(data, path)


def parse_credentials(data: object, where: str = "iam credentials") -> dict[str, IamCredential]:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a JSON object of access key id → credential expected")
    out: dict[str, IamCredential] = {}
    for key_id, entry in data.items():
        if isinstance(entry, IamCredential):
            out[key_id] = entry
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("secret_access_key"), str):
            raise ValueError(f"{where}: {key_id!r} needs a secret_access_key string")
        arn = entry.get("principal_arn")
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise ValueError(f"{where}: {key_id!r} needs a principal_arn (arn:aws:iam::...)")
        token = entry.get("session_token")
        if token is not None and not isinstance(token, str):
            raise ValueError(f"{where}: {key_id!r}'s session_token is a string")
        unknown = set(entry) - {"secret_access_key", "principal_arn", "session_token"}
        if unknown:
            raise ValueError(f"{where}: {key_id!r} has unknown fields {sorted(unknown)}")
        out[key_id] = IamCredential(entry["secret_access_key"], arn, token)
    return out


class IamVerifier:
    """A cluster's IAM credentials and how strictly it checks them."""

    def __init__(
        self,
        credentials: Mapping[str, IamCredential] | None = None,
        permissive: bool = True,
    ) -> None:
        self.credentials: dict[str, IamCredential] = dict(credentials or {})
        self.permissive = permissive

    def add(self, access_key_id: str, secret_access_key: str, principal_arn: str) -> None:
        self.credentials.update(
            parse_credentials(
                {
                    access_key_id: {
                        "secret_access_key": secret_access_key,
                        "principal_arn": principal_arn,
                    }
                }
            )
        )

    def verify_payload(self, payload: bytes, hosts: Iterable[str], now_ms: int) -> IamIdentity:
        """An AWS_MSK_IAM payload, signed for one of the broker's `hosts`."""
        try:
            fields = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise IamError("the authentication payload is not JSON") from None
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise IamError("the authentication payload is not a JSON object of strings")
        missing = [k for k in _REQUIRED if not fields.get(k)]
        if missing:
            raise IamError(f"the authentication payload lacks {', '.join(missing)}")
        if fields["version"] != VERSION:
            raise IamError(f"unsupported payload version {fields['version']!r} (want {VERSION})")
        host = fields["host"]
        allowed = set(hosts)
        if not self.permissive and host not in allowed:
            raise IamError(f"the payload is signed for host {host!r}, not this broker")
        params = {k: v for k, v in fields.items() if k.startswith("x-amz-") or k == "action"}
        return self._verify(host, _canonical_names(params), now_ms)

    def verify_token(self, token: str, now_ms: int) -> IamIdentity:
        """An OAUTHBEARER token of aws-msk-iam-sasl-signer-*: a base64url presigned URL."""
        try:
            url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        except (binascii.Error, ValueError):
            raise IamError("the token is not a base64url presigned URL") from None
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.path not in ("", "/") or not parts.hostname:
            raise IamError("the token is not an https presigned URL of kafka-cluster:Connect")
        host = parts.netloc
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        # the signer appends User-Agent after signing: it is not part of the signed request
        params.pop("User-Agent", None)
        regional = re.fullmatch(r"kafka(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?", host)
        if not regional and not self.permissive:
            raise IamError(f"the token is signed for host {host!r}, not kafka.<region>...")
        return self._verify(host, params, now_ms)

    def _verify(self, host: str, params: dict[str, str], now: int) -> IamIdentity:
        action, algorithm = params.get("Action"), params.get("X-Amz-Algorithm")
        if action != ACTION:
            raise IamError(f"the signed action is {action!r}, not {ACTION}")
        if algorithm != ALGORITHM:
            raise IamError(f"unsupported signing algorithm {algorithm!r} (want {ALGORITHM})")
        if params.get("X-Amz-SignedHeaders") != "host":
            raise IamError("the signed headers are not exactly 'host'")
        scope = params.get("X-Amz-Credential", "").split("/")
        if len(scope) != 5 or not scope[0] or scope[3] != SERVICE or scope[4] != "aws4_request":
            raise IamError(
                "the credential is not <access key id>/<date>/<region>/kafka-cluster/aws4_request"
            )
        key_id, day, region = scope[0], scope[1], scope[2]
        stamp = params.get("X-Amz-Date", "")
        if not _DATE.match(stamp) or stamp[:8] != day:
            raise IamError(f"the signing date {stamp!r} is not yyyyMMddTHHmmssZ of {day!r}")
        try:
            signed_ms = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")) * 1000
            expires_s = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            raise IamError("the signing date or expiry does not parse") from None
        if not 1 <= expires_s <= MAX_EXPIRES_S:
            raise IamError(f"the expiry {expires_s}s is not 1-{MAX_EXPIRES_S}s")
        expiry = signed_ms + expires_s * 1000
        if now > expiry:
            raise IamError(f"the signature expired at {stamp} + {expires_s}s")
        if signed_ms > now + CLOCK_SKEW_MS:
            raise IamError(f"the signing time {stamp} is in the future (clock skew)")
        signature = params.get("X-Amz-Signature", "")
        if not _SIGNATURE.match(signature):
            raise IamError("the signature is not 64 hex digits")
        token = params.get("X-Amz-Security-Token")
        credential = self.credentials.get(key_id)
        if credential is None:
            if not self.permissive:
                raise IamError(f"the access key id {key_id} is not known")
            return IamIdentity(permissive_arn(key_id), key_id, expiry)
        if credential.session_token is not None and token != credential.session_token:
            raise IamError(f"the security token does not belong to access key id {key_id}")
        expected = _signature(host, params, credential.secret_access_key, region, token)
        if expected != signature:
            raise IamError(
                f"the signature does not match the secret access key of access key id {key_id}"
            )
        return IamIdentity(credential.principal_arn, key_id, expiry)


def _canonical_names(fields: dict[str, str]) -> dict[str, str]:
    """The JSON payload's lower-case names as the signed query string spells them."""
    names = {
        "action": "Action",
        "x-amz-algorithm": "X-Amz-Algorithm",
        "x-amz-credential": "X-Amz-Credential",
        "x-amz-date": "X-Amz-Date",
        "x-amz-expires": "X-Amz-Expires",
        "x-amz-signedheaders": "X-Amz-SignedHeaders",
        "x-amz-security-token": "X-Amz-Security-Token",
        "x-amz-signature": "X-Amz-Signature",
    }
    return {names[k]: v for k, v in fields.items() if k in names}


def _signature(
    host: str, params: dict[str, str], secret: str, region: str, token: str | None
) -> str:
    """SigV4 of the presigned `GET https://host/?<params but the signature>`, by botocore."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signed = {k: v for k, v in params.items() if k != "X-Amz-Signature"}
    request: Any = AWSRequest(
        method="GET", url=f"https://{host}/", params=signed, headers={"host": host}
    )
    request.context["timestamp"] = params["X-Amz-Date"]
    signer = SigV4Auth(
        Credentials(params["X-Amz-Credential"].split("/")[0], secret, token), SERVICE, region
    )
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def preload() -> None:
    """Import botocore's signer now (≈0.1 s) rather than during the first handshake."""
    import botocore.auth  # noqa: F401


class AwsMskIamServer:
    """One AWS_MSK_IAM exchange: the client's JSON payload, MSK's JSON answer."""

    mechanism = "AWS_MSK_IAM"

    def __init__(
        self,
        verifier: IamVerifier,
        hosts: Iterable[str],
        now_ms: Callable[[], int],
        may_connect: Callable[[str], bool] = lambda arn: True,
    ) -> None:
        """`may_connect`: whether the principal's policies allow kafka-cluster:Connect."""
        self._verifier = verifier
        self._hosts = hosts
        self._now_ms = now_ms
        self._may_connect = may_connect
        self._identity: IamIdentity | None = None

    @property
    def principal(self) -> str | None:
        return None if self._identity is None else f"User:{self._identity.principal_arn}"

    @property
    def expiry_ms(self) -> int | None:
        return None if self._identity is None else self._identity.expiry_ms

    def evaluate(self, message: bytes) -> bytes:
        request_id = str(uuid.uuid4())
        if self._identity is not None:
            raise SaslFailure("a message after the exchange completed")
        try:
            identity = self._verifier.verify_payload(message, self._hosts, self._now_ms())
            _check_connect(identity, self._may_connect)
        except IamError as e:
            raise SaslFailure(str(e), f"[{request_id}]: Access denied: {e}") from None
        self._identity = identity
        return json.dumps({"version": VERSION, "request-id": request_id}).encode()


class OAuthBearerIamServer:
    """One OAUTHBEARER exchange (RFC 7628) whose bearer token is an IAM presigned URL."""

    mechanism = "OAUTHBEARER"

    def __init__(
        self,
        verifier: IamVerifier,
        now_ms: Callable[[], int],
        may_connect: Callable[[str], bool] = lambda arn: True,
    ) -> None:
        self._verifier = verifier
        self._now_ms = now_ms
        self._may_connect = may_connect
        self._identity: IamIdentity | None = None
        self._error: str | None = None  # sent as a challenge; the client's %x01 ends it

    @property
    def principal(self) -> str | None:
        return None if self._identity is None else f"User:{self._identity.principal_arn}"

    @property
    def expiry_ms(self) -> int | None:
        return None if self._identity is None else self._identity.expiry_ms

    def evaluate(self, message: bytes) -> bytes:
        if self._error is not None:
            raise SaslFailure(self._error, f"Authentication failed: {self._error}")
        if self._identity is not None:
            raise SaslFailure("a message after the exchange completed")
        try:
            identity = self._verifier.verify_token(_bearer_token(message), self._now_ms())
            _check_connect(identity, self._may_connect)
        except IamError as e:
            self._error = str(e)
            return json.dumps({"status": "invalid_token"}).encode()
        self._identity = identity
        return b""


def _check_connect(identity: IamIdentity, may_connect: Callable[[str], bool]) -> None:
    if not may_connect(identity.principal_arn):
        raise IamError(
            f"{identity.principal_arn} is not allowed kafka-cluster:Connect on this cluster"
        )


def _bearer_token(message: bytes) -> str:
    """The token of a client-first message `gs2-header %x01 auth=Bearer <token> %x01 ...`."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise IamError("the OAUTHBEARER message is not UTF-8") from None
    gs2, sep, rest = text.partition("\x01")
    if not sep or not gs2.startswith(("n,", "y,")) or not gs2.endswith(","):
        raise IamError("the OAUTHBEARER message has no GS2 header")
    for kv in rest.split("\x01"):
        key, _, value = kv.partition("=")
        if key == "auth":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise IamError("the OAUTHBEARER auth value is not 'Bearer <token>'")
            return token.strip()
    raise IamError("the OAUTHBEARER message has no auth=Bearer token")
