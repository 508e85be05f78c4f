"""MSK's IAM listener over real sockets: kafka-python's built-in AWS_MSK_IAM, confluent-kafka and
aiokafka with OAUTHBEARER tokens from aws-msk-iam-sasl-signer-python, and the failures a raw
client provokes. Credentials are static test keys in the environment: botocore reads them
there and never calls AWS."""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from confluent_kafka import KafkaError, Producer
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from kafka.errors import KafkaError as KafkaPythonError
from kafka.net.sasl.msk import AwsMskIamClient
from kafka.net.sasl.oauth import AbstractTokenProvider as KafkaPythonTokenProvider
from kafka.protocol.metadata.metadata import MetadataRequest
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from msklite import Cluster
from msklite.errors import ErrorCode
from msklite.protocol.api_keys import ApiKey
from msklite.security.iam import permissive_arn
from tests.integration.helpers import printed_lines, serving, stop_cleanly
from tests.integration.rawclient import RawClient

KEY_ID, SECRET = "AKIAMSKLITETEST00001", "test-secret-access-key"
ALICE = "arn:aws:iam::123456789012:user/alice"
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Static keys for botocore's default chain, and nothing else it could consult."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/msklite-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/msklite-credentials")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def iam() -> Iterator[Cluster]:
    """A strict IAM listener that knows one key, beside a plaintext one."""
    cluster = Cluster(
        2,
        auth="plaintext,iam",
        iam_permissive=False,
        iam_credentials={KEY_ID: {"secret_access_key": SECRET, "principal_arn": ALICE}},
    )
    with cluster:
        yield cluster


@pytest.fixture
def principals(iam: Cluster) -> Iterator[set[str]]:
    seen: set[str] = set()

    def record(handler: Any, ctx: Any, header: Any, reader: Any) -> Any:
        if header.api_key != ApiKey.API_VERSIONS:  # answered before authentication
            seen.add(header.principal)
        return handler(ctx, header, reader)

    iam.set_request_hook(record)
    yield seen
    iam.set_request_hook(None)


def _kafka_python(cluster: Cluster) -> dict[str, Any]:
    return {
        "bootstrap_servers": cluster.bootstrap_servers_sasl_iam,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "AWS_MSK_IAM",
        "ssl_cafile": cluster.ca_certificate,
        "ssl_check_hostname": True,
    }


def _oauth_cb(_config: str) -> tuple[str, float]:
    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(REGION)
    return token, expiry_ms / 1000


def _confluent(cluster: Cluster, errors: list[KafkaError]) -> dict[str, Any]:
    return {
        "bootstrap.servers": cluster.bootstrap_servers_sasl_iam,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": _oauth_cb,
        "ssl.ca.location": cluster.ca_certificate,
        "error_cb": errors.append,
    }


def test_kafka_python_aws_msk_iam_produces_and_consumes(
    iam: Cluster, topic_name: str, principals: set[str]
) -> None:
    iam.create_topic(topic_name, 2)
    producer = KafkaProducer(**_kafka_python(iam))
    for i in range(10):
        producer.send(topic_name, f"v{i}".encode())
    producer.flush(10)
    producer.close()
    consumer = KafkaConsumer(
        topic_name,
        group_id=f"g-{topic_name}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **_kafka_python(iam),
    )
    values = [m.value for _, m in zip(range(10), consumer, strict=False)]
    consumer.close()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(10))
    assert principals == {f"User:{ALICE}"}


def test_kafka_python_with_a_wrong_secret_fails_authentication(
    iam: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    start = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, "kafka"),
        pytest.raises(KafkaPythonError, match="Unable to bootstrap"),
    ):
        KafkaProducer(**_kafka_python(iam), bootstrap_timeout_ms=3000)
    failures = [
        r.getMessage() for r in caplog.records if "SaslAuthenticationFailed" in r.getMessage()
    ]
    assert failures, "the client never saw SASL_AUTHENTICATION_FAILED"
    assert "signature does not match" in failures[0]
    assert time.monotonic() - start < 5


def test_confluent_oauthbearer_with_the_msk_signer_produces(
    iam: Cluster, topic_name: str, principals: set[str]
) -> None:
    iam.create_topic(topic_name, 1)
    errors: list[KafkaError] = []
    producer = Producer(_confluent(iam, errors))
    for i in range(5):
        producer.produce(topic_name, f"c{i}".encode())
    assert producer.flush(15) == 0, errors
    assert principals == {f"User:{ALICE}"}
    view = iam.partition(topic_name, 0)
    assert view.high_watermarks[view.leader] == 5


def test_confluent_oauthbearer_with_a_wrong_secret_fails_fast(
    iam: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    errors: list[KafkaError] = []
    producer = Producer(_confluent(iam, errors))
    start = time.monotonic()
    while not errors and time.monotonic() - start < 10:
        producer.poll(0.05)
    assert errors, "no error reported"
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert "signature does not match" in errors[0].str()
    assert time.monotonic() - start < 3


class _SignerTokens(AbstractTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        token, _ = MSKAuthTokenProvider.generate_auth_token(REGION)
        return str(token)


async def test_aiokafka_oauthbearer_with_the_msk_signer(iam: Cluster, topic_name: str) -> None:
    assert iam.ca_certificate is not None
    iam.create_topic(topic_name, 1)
    conf: dict[str, Any] = {
        "bootstrap_servers": iam.bootstrap_servers_sasl_iam,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": _SignerTokens(),
        "ssl_context": ssl.create_default_context(cafile=iam.ca_certificate),
    }
    producer = AIOKafkaProducer(**conf)
    await producer.start()
    try:
        await producer.send_and_wait(topic_name, b"a1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic_name, auto_offset_reset="earliest", **conf)
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value == b"a1"


class _KafkaPythonSignerTokens(KafkaPythonTokenProvider):  # type: ignore[misc]
    def token(self) -> str:
        token, _ = MSKAuthTokenProvider.generate_auth_token(REGION)
        return str(token)


def test_kafka_python_oauthbearer_with_the_msk_signer(
    iam: Cluster, topic_name: str, principals: set[str]
) -> None:
    iam.create_topic(topic_name, 1)
    producer = KafkaProducer(
        **{**_kafka_python(iam), "sasl_mechanism": "OAUTHBEARER"},
        sasl_oauth_token_provider=_KafkaPythonSignerTokens(),
    )
    producer.send(topic_name, b"kp").get(timeout=10)
    producer.close()
    assert principals == {f"User:{ALICE}"}


def test_permissive_mode_accepts_an_unknown_key_and_names_it(topic_name: str) -> None:
    seen: set[str] = set()

    def record(handler: Any, ctx: Any, header: Any, reader: Any) -> Any:
        if header.api_key != ApiKey.API_VERSIONS:
            seen.add(header.principal)
        return handler(ctx, header, reader)

    with Cluster(1, auth="iam") as cluster:
        cluster.create_topic(topic_name, 1)
        cluster.set_request_hook(record)
        producer = KafkaProducer(**_kafka_python(cluster))
        producer.send(topic_name, b"p").get(timeout=10)
        producer.close()
    assert seen == {f"User:{permissive_arn(KEY_ID)}"}


def _payload(secret: str = SECRET, **override: str) -> bytes:
    client = AwsMskIamClient("127.0.0.1", KEY_ID, secret, REGION)
    for name, value in override.items():
        setattr(client, name, value)
    return bytes(client.first_message())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (lambda: _payload(timestamp="20200101T000000Z", datestamp="20200101"), "expired"),
        (lambda: _payload(action="kafka-cluster:ReadData"), "not kafka-cluster:Connect"),
        (lambda: _payload(secret="wrong"), "signature does not match"),
        (lambda: b"{not json", "not JSON"),
    ],
    ids=["expired", "wrong-action", "wrong-secret", "garbage"],
)
def test_a_refused_payload_is_answered_then_closed_and_nothing_else_is_affected(
    iam: Cluster, payload: Any, reason: str
) -> None:
    with RawClient.tls(iam.bootstrap_servers_sasl_iam, iam.ca_certificate) as raw:
        resp = raw.request(SaslHandshakeRequest[1](mechanism="AWS_MSK_IAM"), 1)
        assert resp.error_code == 0 and resp.mechanisms == ["AWS_MSK_IAM", "OAUTHBEARER"]
        resp = raw.request(SaslAuthenticateRequest[1](auth_bytes=payload()), 1)
        assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert reason in resp.error_message and "Access denied" in resp.error_message
        assert raw.is_closed_by_peer()
    with RawClient.tls(
        iam.bootstrap_servers_sasl_iam, iam.ca_certificate
    ) as raw:  # the next client is served
        raw.request(SaslHandshakeRequest[1](mechanism="AWS_MSK_IAM"), 1)
        resp = raw.request(SaslAuthenticateRequest[1](auth_bytes=_payload()), 1)
        assert resp.error_code == 0
        answer = json.loads(resp.auth_bytes)
        assert answer["version"] == "2020_10_22" and answer["request-id"]
        # the signature's expiry bounds the session (Kafka's rule for a credential that
        # expires, with connections.max.reauth.ms unset); the client re-authenticates before
        assert 0 < resp.session_lifetime_ms <= 900_000
        raw.request(SaslHandshakeRequest[1](mechanism="AWS_MSK_IAM"), 1)
        resp = raw.request(SaslAuthenticateRequest[1](auth_bytes=_payload()), 1)
        assert resp.error_code == 0 and resp.session_lifetime_ms > 0
        assert raw.request(MetadataRequest[1](topics=None), 1).brokers
    assert all(iam.broker_stats(n).internal_errors == 0 for n in iam.brokers)


def test_session_lifetime_is_bounded_by_the_signature_expiry() -> None:
    with (
        Cluster(1, auth="iam", config={"connections.max.reauth.ms": 3_600_000}) as cluster,
        RawClient.tls(cluster.bootstrap_servers_sasl_iam, cluster.ca_certificate) as raw,
    ):
        raw.request(SaslHandshakeRequest[1](mechanism="AWS_MSK_IAM"), 1)
        resp = raw.request(SaslAuthenticateRequest[1](auth_bytes=_payload()), 1)
        assert resp.error_code == 0
        # signed now for 900 s: the session ends with the signature, before the hour
        assert 880_000 < resp.session_lifetime_ms <= 900_000


def test_cli_serves_iam_with_a_credentials_file(tmp_path: Path, topic_name: str) -> None:
    creds = tmp_path / "iam.json"
    creds.write_text(json.dumps({KEY_ID: {"secret_access_key": SECRET, "principal_arn": ALICE}}))
    with serving(
        "--ephemeral",
        "--port",
        "0",
        "--brokers",
        "1",
        "--auth",
        "iam,plaintext",
        "--iam-credentials",
        str(creds),
        "--iam-strict",
        "--config",
        "auto.create.topics.enable=true",
    ) as proc:
        lines = dict(line.split(": ", 1) for line in printed_lines(proc, 3))
        assert list(lines) == ["Bootstrap servers", "Bootstrap servers (IAM)", "CA certificate"]
        conf = {
            "bootstrap_servers": lines["Bootstrap servers (IAM)"],
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "AWS_MSK_IAM",
            "ssl_cafile": lines["CA certificate"],
        }
        producer = KafkaProducer(**conf)
        producer.send(topic_name, b"cli").get(timeout=15)
        producer.close()
        stop_cleanly(proc)


BOB_KEY, BOB = "AKIAMSKLITETEST00002", "arn:aws:iam::123456789012:user/bob"


def _topic_arn(name: str) -> str:
    return f"arn:aws:kafka:*:*:topic/*/*/{name}"


def test_iam_policies_authorize_the_iam_listeners_requests(topic_name: str) -> None:
    allowed, denied = f"{topic_name}-ok", f"{topic_name}-no"
    alice_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"],
                "Resource": "arn:aws:kafka:*:*:cluster/*",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "kafka-cluster:DescribeTopic",
                    "kafka-cluster:WriteData",
                    "kafka-cluster:ReadData",
                ],
                "Resource": _topic_arn(f"{topic_name}-*"),
            },
            {"Effect": "Deny", "Action": "kafka-cluster:*Data", "Resource": _topic_arn(denied)},
            {
                "Effect": "Allow",
                "Action": ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                "Resource": f"arn:aws:kafka:*:*:group/*/*/g-{topic_name}",
            },
        ],
    }
    credentials = {
        KEY_ID: {"secret_access_key": SECRET, "principal_arn": ALICE},
        BOB_KEY: {"secret_access_key": SECRET, "principal_arn": BOB},
    }
    with Cluster(
        1,
        auth="iam,plaintext",
        iam_permissive=False,
        iam_credentials=credentials,
        iam_policies={ALICE: alice_policy},
    ) as cluster:
        cluster.create_topic(allowed, 1)
        cluster.create_topic(denied, 1)
        producer = KafkaProducer(**_kafka_python(cluster), retries=0)
        producer.send(allowed, b"yes").get(timeout=10)
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(denied, b"no").get(timeout=10)
        producer.send(allowed, b"still").get(timeout=10)  # the connection is still served
        producer.close()
        consumer = KafkaConsumer(
            allowed,
            group_id=f"g-{topic_name}",
            auto_offset_reset="earliest",
            consumer_timeout_ms=10_000,
            **_kafka_python(cluster),
        )
        assert [m.value for _, m in zip(range(2), consumer, strict=False)] == [b"yes", b"still"]
        consumer.close()
        # a group the policy does not name
        other = KafkaConsumer(
            allowed, group_id="other-group", auto_offset_reset="earliest", **_kafka_python(cluster)
        )
        with pytest.raises(GroupAuthorizationFailedError):
            other.poll(timeout_ms=10_000)
        other.close()
        # the plaintext listener is not governed by IAM policies (ACLs apply there)
        plain = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
        plain.send(denied, b"acl").get(timeout=10)
        plain.close()
        # bob's key is valid but no policy lets him connect
        with RawClient.tls(cluster.bootstrap_servers_sasl_iam, cluster.ca_certificate) as raw:
            raw.request(SaslHandshakeRequest[1](mechanism="AWS_MSK_IAM"), 1)
            payload = AwsMskIamClient("127.0.0.1", BOB_KEY, SECRET, REGION).first_message()
            resp = raw.request(SaslAuthenticateRequest[1](auth_bytes=bytes(payload)), 1)
            assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
            assert "not allowed kafka-cluster:Connect" in resp.error_message
