"""The IAM payload and token checks, one rule at a time, against payloads that kafka-python's
AWS_MSK_IAM client and botocore's presigner make; fuzzed input only ever fails cleanly."""

from __future__ import annotations

import base64
import calendar
import json
import time
from pathlib import Path

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st
from kafka.net.sasl.msk import AwsMskIamClient

from msklite.security.iam import (
    AwsMskIamServer,
    IamCredential,
    IamError,
    IamVerifier,
    OAuthBearerIamServer,
    load_credentials,
    parse_credentials,
    permissive_arn,
)
from msklite.security.mechanism import SaslFailure

KEY, SECRET, TOKEN = "AKIDTEST", "s3cret", "session-token"
ARN = "arn:aws:iam::123456789012:role/app"
HOSTS = ("127.0.0.1", "localhost")


def _now_ms(client: AwsMskIamClient) -> int:
    return calendar.timegm(time.strptime(client.timestamp, "%Y%m%dT%H%M%SZ")) * 1000


def _client(
    secret: str = SECRET, token: str | None = None, host: str = "127.0.0.1"
) -> AwsMskIamClient:
    return AwsMskIamClient(host, KEY, secret, "eu-west-1", token)


def _strict(token: str | None = None) -> IamVerifier:
    return IamVerifier({KEY: IamCredential(SECRET, ARN, token)}, permissive=False)


def test_a_signed_payload_names_the_key_owner_until_it_expires() -> None:
    client = _client()
    now = _now_ms(client)
    identity = _strict().verify_payload(client.first_message(), HOSTS, now)
    assert identity.principal_arn == ARN
    assert identity.expiry_ms == now + 900_000


@pytest.mark.parametrize(
    ("offset_ms", "error"),
    [(901_000, "expired"), (-16 * 60_000, "in the future")],
)
def test_age_and_clock_skew_are_checked(offset_ms: int, error: str) -> None:
    client = _client()
    with pytest.raises(IamError, match=error):
        _strict().verify_payload(client.first_message(), HOSTS, _now_ms(client) + offset_ms)


def test_session_tokens_must_be_the_keys() -> None:
    client = _client(token=TOKEN)
    now = _now_ms(client)
    assert _strict(TOKEN).verify_payload(client.first_message(), HOSTS, now).principal_arn == ARN
    other = _client(token="another")
    with pytest.raises(IamError, match="security token"):
        _strict(TOKEN).verify_payload(other.first_message(), HOSTS, now)


def test_strict_mode_checks_host_and_key_permissive_mode_names_unknown_keys() -> None:
    client = _client(host="elsewhere.example")
    now = _now_ms(client)
    with pytest.raises(IamError, match=r"host 'elsewhere\.example'"):
        _strict().verify_payload(client.first_message(), HOSTS, now)
    with pytest.raises(IamError, match="not known"):
        IamVerifier(permissive=False).verify_payload(_client().first_message(), HOSTS, now)
    identity = IamVerifier().verify_payload(client.first_message(), HOSTS, now)
    assert identity.principal_arn == permissive_arn(KEY)
    # a key the table knows is checked even in permissive mode
    permissive = IamVerifier({KEY: IamCredential(SECRET, ARN)})
    with pytest.raises(IamError, match="signature does not match"):
        permissive.verify_payload(_client(secret="x").first_message(), HOSTS, now)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"version": "2019"}, "unsupported payload version"),
        ({"x-amz-algorithm": "AWS4-HMAC-SHA1"}, "algorithm"),
        ({"x-amz-signedheaders": "host;x-amz-date"}, "signed headers"),
        ({"x-amz-credential": "AKIDTEST/20200101/eu-west-1/s3/aws4_request"}, "credential"),
        ({"x-amz-expires": "0"}, "expiry"),
        ({"x-amz-signature": "zz"}, "64 hex"),
        ({"host": ""}, "lacks host"),
    ],
)
def test_malformed_fields_are_refused(change: dict[str, str], error: str) -> None:
    client = _client()
    fields = json.loads(client.first_message())
    fields.update(change)
    with pytest.raises(IamError, match=error):
        IamVerifier().verify_payload(json.dumps(fields).encode(), HOSTS, _now_ms(client))


def _signer_token(secret: str, region: str = "eu-west-1") -> tuple[str, int]:
    """What aws-msk-iam-sasl-signer-python makes (its construction, with fixed credentials)."""
    request = AWSRequest(
        method="GET",
        url=f"https://kafka.{region}.amazonaws.com/",
        params={"Action": "kafka-cluster:Connect"},
    )
    SigV4QueryAuth(Credentials(KEY, secret), "kafka-cluster", region, expires=900).add_auth(request)
    request.params = {"User-Agent": "aws-msk-iam-sasl-signer-python/1.0.2"}
    url = request.prepare().url
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("="), time.time_ns() // 10**6


def test_oauthbearer_tokens_are_verified_and_a_failure_takes_a_round_trip() -> None:
    token, now = _signer_token(SECRET)
    server = OAuthBearerIamServer(_strict(), lambda: now)
    assert server.evaluate(f"n,,\x01auth=Bearer {token}\x01\x01".encode()) == b""
    assert server.principal == f"User:{ARN}"
    bad, _ = _signer_token("wrong")
    server = OAuthBearerIamServer(_strict(), lambda: now)
    challenge = server.evaluate(f"n,,\x01auth=Bearer {bad}\x01\x01".encode())
    assert json.loads(challenge) == {"status": "invalid_token"}
    with pytest.raises(SaslFailure) as e:
        server.evaluate(b"\x01")
    assert e.value.public is not None and "signature does not match" in e.value.public


def test_aws_msk_iam_answers_msk_json() -> None:
    client = _client()
    server = AwsMskIamServer(_strict(), HOSTS, lambda: _now_ms(client))
    answer = json.loads(server.evaluate(client.first_message()))
    assert answer["version"] == "2020_10_22" and len(answer["request-id"]) == 36
    assert server.principal == f"User:{ARN}"


def test_credentials_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({KEY: {"secret_access_key": SECRET, "principal_arn": ARN}}))
    assert load_credentials(str(path)) == {KEY: IamCredential(SECRET, ARN)}
    with pytest.raises(ValueError, match="principal_arn"):
        parse_credentials({KEY: {"secret_access_key": SECRET}})
    with pytest.raises(ValueError, match="unknown fields"):
        parse_credentials({KEY: {"secret_access_key": SECRET, "principal_arn": ARN, "x": "1"}})


@given(st.binary(max_size=400))
def test_fuzzed_payloads_fail_cleanly(data: bytes) -> None:
    for server in (
        AwsMskIamServer(IamVerifier(), HOSTS, lambda: 0),
        OAuthBearerIamServer(IamVerifier(), lambda: 0),
    ):
        try:
            server.evaluate(data)
        except SaslFailure:
            pass


@given(st.dictionaries(st.sampled_from(sorted(json.loads(_client().first_message()))), st.text()))
def test_fuzzed_fields_fail_cleanly(change: dict[str, str]) -> None:
    client = _client()
    fields = {**json.loads(client.first_message()), **change}
    try:
        _strict().verify_payload(json.dumps(fields).encode(), HOSTS, _now_ms(client))
    except IamError:
        pass
