"""MSK's listeners over real sockets: TLS with msklite's local CA, SASL_SSL with SCRAM, and the
authentication state before dispatch, driven by confluent-kafka, aiokafka and kafka-python."""

from __future__ import annotations

import logging
import random
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KafkaPythonError
from kafka.protocol.metadata.metadata import MetadataRequest
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from msklite import Cluster
from msklite.errors import ErrorCode
from tests.integration.helpers import printed_lines, serving, stop_cleanly
from tests.integration.rawclient import RawClient

USER, PASSWORD = "alice", "alice-secret"


@pytest.fixture(scope="module")
def secure() -> Iterator[Cluster]:
    cluster = Cluster(3, auth="plaintext,tls,scram", scram_users={USER: PASSWORD})
    with cluster:
        yield cluster


def _ports(bootstrap: str | None) -> list[int]:
    assert bootstrap is not None
    return [int(hp.rsplit(":", 1)[1]) for hp in bootstrap.split(",")]


def _tls(cluster: Cluster) -> dict[str, Any]:
    return {
        "bootstrap.servers": cluster.bootstrap_servers_tls,
        "security.protocol": "SSL",
        "ssl.ca.location": cluster.ca_certificate,
        # librdkafka's default since 2.0, stated: the broker's name is checked too
        "ssl.endpoint.identification.algorithm": "https",
    }


def _scram(
    cluster: Cluster, mechanism: str = "SCRAM-SHA-512", password: str = PASSWORD
) -> dict[str, Any]:
    return {
        "bootstrap.servers": cluster.bootstrap_servers_sasl_scram,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": cluster.ca_certificate,
        "sasl.mechanism": mechanism,
        "sasl.username": USER,
        "sasl.password": password,
    }


def _confluent_roundtrip(conf: dict[str, Any], topic: str, values: list[bytes]) -> list[bytes]:
    producer = Producer(conf)
    for v in values:
        producer.produce(topic, v)
    assert producer.flush(15) == 0
    consumer = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < len(values) and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value() or b"")
    consumer.close()
    return got


def test_each_listener_kind_has_its_own_ports_and_metadata_advertises_it(
    secure: Cluster,
) -> None:
    lines = dict(secure.bootstrap_lines)
    assert list(lines) == ["", "TLS", "SASL/SCRAM"]
    plain, tls = _ports(secure.bootstrap_servers), _ports(secure.bootstrap_servers_tls)
    scram = _ports(secure.bootstrap_servers_sasl_scram)
    assert len(set(plain + tls + scram)) == 9
    plain_conf: dict[str, Any] = {"bootstrap.servers": secure.bootstrap_servers}
    for conf, ports in ((plain_conf, plain), (_tls(secure), tls), (_scram(secure), scram)):
        md = AdminClient(conf).list_topics(timeout=10)
        assert sorted(b.port for b in md.brokers.values()) == sorted(ports)


@pytest.mark.parametrize("kind", ["tls", "scram-512", "scram-256"])
def test_confluent_produces_and_consumes(secure: Cluster, topic_name: str, kind: str) -> None:
    secure.create_topic(topic_name, 3)
    conf = {
        "tls": _tls(secure),
        "scram-512": _scram(secure, "SCRAM-SHA-512"),
        "scram-256": _scram(secure, "SCRAM-SHA-256"),
    }[kind]
    values = [f"v{i}".encode() for i in range(20)]
    assert sorted(_confluent_roundtrip(conf, topic_name, values)) == sorted(values)


@pytest.mark.parametrize("user_password", [(USER, "wrong"), ("nobody", PASSWORD)])
def test_confluent_bad_credentials_fail_fast(
    secure: Cluster, user_password: tuple[str, str]
) -> None:
    errors: list[KafkaError] = []
    conf = {**_scram(secure), "sasl.username": user_password[0]}
    conf["sasl.password"] = user_password[1]
    producer = Producer({**conf, "error_cb": errors.append})
    start = time.monotonic()
    while not errors and time.monotonic() - start < 10:
        producer.poll(0.05)
    assert errors, "no error reported"
    assert time.monotonic() - start < 3
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert (
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512"
    ) in errors[0].str()


def test_the_certificate_verifies_against_the_ca_with_hostname_checks(secure: Cluster) -> None:
    assert secure.ca_certificate is not None
    port = _ports(secure.bootstrap_servers_tls)[0]
    for name in ("127.0.0.1", "localhost"):
        ctx = ssl.create_default_context(cafile=secure.ca_certificate)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # a name the certificate does not carry is refused by the client's check
    ctx = ssl.create_default_context(cafile=secure.ca_certificate)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
    ):
        ctx.wrap_socket(raw, server_hostname="example.com")


def test_a_plaintext_client_on_the_tls_port_fails_and_others_are_served(
    secure: Cluster,
) -> None:
    tls_bootstrap = secure.bootstrap_servers_tls
    assert tls_bootstrap is not None
    with RawClient(tls_bootstrap) as raw:
        raw.send_only(MetadataRequest[1](topics=None), 1)
        assert raw.is_closed_by_peer()
    md = AdminClient(_tls(secure)).list_topics(timeout=10)
    assert len(md.brokers) == 3
    assert all(secure.broker_stats(n).internal_errors == 0 for n in secure.brokers)


def test_before_authentication_only_the_sasl_apis_are_served(secure: Cluster) -> None:
    with RawClient.tls(secure.bootstrap_servers_sasl_scram, secure.ca_certificate) as raw:
        raw.send_only(MetadataRequest[1](topics=None), 1)
        assert raw.is_closed_by_peer()
    with RawClient.tls(secure.bootstrap_servers_sasl_scram, secure.ca_certificate) as raw:
        resp = raw.request(SaslHandshakeRequest[1](mechanism="PLAIN"), 1)
        assert resp.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert resp.mechanisms == ["SCRAM-SHA-512", "SCRAM-SHA-256"]
        assert raw.is_closed_by_peer()
    with RawClient.tls(secure.bootstrap_servers_sasl_scram, secure.ca_certificate) as raw:
        resp = raw.request(SaslHandshakeRequest[1](mechanism="SCRAM-SHA-512"), 1)
        assert resp.error_code == 0
        raw.send_only(MetadataRequest[1](topics=None), 1)  # in the middle of the exchange
        assert raw.is_closed_by_peer()
    with RawClient.tls(secure.bootstrap_servers_sasl_scram, secure.ca_certificate) as raw:
        raw.request(SaslHandshakeRequest[1](mechanism="SCRAM-SHA-512"), 1)
        resp = raw.request(SaslAuthenticateRequest[1](auth_bytes=b"\xff garbage"), 1)
        assert resp.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert raw.is_closed_by_peer()
    assert all(secure.broker_stats(n).internal_errors == 0 for n in secure.brokers)


def test_sasl_apis_where_no_sasl_exchange_is_expected(secure: Cluster) -> None:
    with RawClient(secure.bootstrap_servers) as raw:
        resp = raw.request(SaslHandshakeRequest[1](mechanism="SCRAM-SHA-512"), 1)
        assert resp.error_code == ErrorCode.ILLEGAL_SASL_STATE
        resp = raw.request(SaslAuthenticateRequest[2](auth_bytes=b"x"), 2)
        assert resp.error_code == ErrorCode.ILLEGAL_SASL_STATE
        # the connection stays usable, as on Kafka's plaintext listener
        assert raw.request(MetadataRequest[1](topics=None), 1).brokers


async def test_aiokafka_tls_and_scram(secure: Cluster, topic_name: str) -> None:
    assert secure.ca_certificate is not None
    secure.create_topic(topic_name, 1)
    ctx = ssl.create_default_context(cafile=secure.ca_certificate)
    kinds: list[dict[str, Any]] = [
        {"bootstrap_servers": secure.bootstrap_servers_tls, "security_protocol": "SSL"},
        {
            "bootstrap_servers": secure.bootstrap_servers_sasl_scram,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": USER,
            "sasl_plain_password": PASSWORD,
        },
    ]
    for i, conf in enumerate(kinds):
        producer = AIOKafkaProducer(ssl_context=ctx, **conf)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name, f"a{i}".encode())
        finally:
            await producer.stop()
    consumer = AIOKafkaConsumer(
        topic_name, ssl_context=ctx, auto_offset_reset="earliest", **kinds[1]
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=2)
        values = [r.value for records in batch.values() for r in records]
        while len(values) < 2:
            values.append((await consumer.getone()).value)
    finally:
        await consumer.stop()
    assert values == [b"a0", b"a1"]
    bad = AIOKafkaProducer(ssl_context=ctx, **{**kinds[1], "sasl_plain_password": "wrong"})
    start = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        await bad.start()
    await bad.stop()
    assert time.monotonic() - start < 5


def test_kafka_python_tls_and_scram(
    secure: Cluster, topic_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    secure.create_topic(topic_name, 1)
    common = {"ssl_cafile": secure.ca_certificate, "ssl_check_hostname": True}
    kinds: list[dict[str, Any]] = [
        {"bootstrap_servers": secure.bootstrap_servers_tls, "security_protocol": "SSL"},
        {
            "bootstrap_servers": secure.bootstrap_servers_sasl_scram,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": USER,
            "sasl_plain_password": PASSWORD,
        },
    ]
    for i, conf in enumerate(kinds):
        producer = KafkaProducer(**common, **conf)
        producer.send(topic_name, f"k{i}".encode()).get(timeout=10)
        producer.close()
    consumer = KafkaConsumer(
        topic_name, auto_offset_reset="earliest", consumer_timeout_ms=10_000, **common, **kinds[0]
    )
    values = [m.value for _, m in zip(range(2), consumer, strict=False)]
    consumer.close()
    assert values == [b"k0", b"k1"]
    # kafka-python reports the broker's error, then retries its bootstrap until the timeout
    start = time.time()
    with (
        caplog.at_level(logging.WARNING, "kafka"),
        pytest.raises(KafkaPythonError, match="Unable to bootstrap"),
    ):
        KafkaProducer(
            **common,
            **{**kinds[1], "sasl_plain_password": "wrong"},
            bootstrap_timeout_ms=3000,
        )
    failures = [r for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    assert failures, "the client never saw SASL_AUTHENTICATION_FAILED"
    assert failures[0].created - start < 2


def test_a_plaintext_cluster_never_imports_cryptography() -> None:
    code = (
        "import sys\n"
        "from msklite import Cluster\n"
        "with Cluster(1):\n"
        "    pass\n"
        "print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def _free_layout(offsets: list[int]) -> int:
    """A base port below the ephemeral range whose base+offset ports were all free just now."""
    for base in random.sample(range(20_000, 30_000, 7), 100):
        held = []
        try:
            for offset in offsets:
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free port layout found")


def test_fixed_ports_follow_the_port_offset_layout() -> None:
    base = _free_layout([0, 1, 100, 101, 200, 201])
    cluster = Cluster(2, port=base, auth="tls,plaintext,scram", scram_users={"u": "p"})
    with cluster:
        assert _ports(cluster.bootstrap_servers) == [base, base + 1]
        assert _ports(cluster.bootstrap_servers_tls) == [base + 100, base + 101]
        assert _ports(cluster.bootstrap_servers_sasl_scram) == [base + 200, base + 201]
        cluster.stop_broker(2)
        cluster.start_broker(2)  # a restarted broker takes its ports again
        assert _ports(cluster.bootstrap_servers_tls) == [base + 100, base + 101]


def test_auth_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown auth 'ssl'"):
        Cluster(1, auth="ssl")
    with pytest.raises(ValueError, match="twice"):
        Cluster(1, auth=["tls", "tls"])
    with pytest.raises(ValueError, match="65535"):
        Cluster(3, port=65400, auth="plaintext,scram")
    plain = Cluster(1)
    assert plain.bootstrap_servers_tls is None and plain.ca_certificate is None


def test_cli_prints_one_bootstrap_line_per_listener_kind() -> None:
    with serving(
        "--ephemeral",
        "--port",
        "0",
        "--brokers",
        "2",
        "--auth",
        "scram,plaintext,tls",
        "--scram-user",
        "bob:bob-pw",
    ) as proc:
        lines = printed_lines(proc, 4)
        labels = [line.split(": ", 1)[0] for line in lines]
        assert labels == [
            "Bootstrap servers",
            "Bootstrap servers (TLS)",
            "Bootstrap servers (SASL/SCRAM)",
            "CA certificate",
        ], lines
        scram, ca = lines[2].split(": ", 1)[1], lines[3].split(": ", 1)[1]
        conf: dict[str, Any] = {
            "bootstrap.servers": scram,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": ca,
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "bob",
            "sasl.password": "bob-pw",
        }
        md = AdminClient(conf).list_topics(timeout=10)
        assert {b.id for b in md.brokers.values()} == {1, 2}
        stop_cleanly(proc)


def test_cli_refuses_a_listener_it_does_not_serve() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "msklite", "serve", "--ephemeral", "--auth", "plaintext,gssapi"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "unknown auth 'gssapi'" in proc.stderr


def test_mtls_requires_a_client_certificate_and_names_the_principal_by_it(
    topic_name: str,
) -> None:
    principals: set[str] = set()

    def record(handler: Any, ctx: Any, header: Any, reader: Any) -> Any:
        principals.add(header.principal)
        return handler(ctx, header, reader)

    with Cluster(1, auth="plaintext,tls", tls_client_auth=True) as cluster:
        cluster.create_topic(topic_name, 1)
        cert, key = cluster.client_certificate("orders-app")
        cluster.set_request_hook(record)
        conf = {
            **_tls(cluster),
            "ssl.certificate.location": cert,
            "ssl.key.location": key,
        }
        assert _confluent_roundtrip(conf, topic_name, [b"m1"]) == [b"m1"]
        assert principals == {"User:CN=orders-app"}
        # without a certificate the broker refuses the handshake (with TLS 1.3 the client
        # learns it on its first read) and answers nothing
        assert cluster.ca_certificate is not None
        ctx = ssl.create_default_context(cafile=cluster.ca_certificate)
        port = _ports(cluster.bootstrap_servers_tls)[0]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            api_versions = struct.pack(">hhih", 18, 0, 1, 1) + b"x"
            with pytest.raises((ssl.SSLError, ConnectionError)):
                tls.sendall(struct.pack(">i", len(api_versions)) + api_versions)
                if not tls.recv(4):
                    raise ConnectionError("closed")
        assert cluster.broker_stats(1).internal_errors == 0
        # plaintext is not the TLS listener: anonymous, as in Kafka
        principals.clear()
        AdminClient({"bootstrap.servers": cluster.bootstrap_servers}).list_topics(timeout=10)
        assert principals == {"User:ANONYMOUS"}


def test_cli_certs_issue_a_client_certificate_the_cluster_accepts(
    tmp_path: Path, topic_name: str
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "msklite",
            "certs",
            "client",
            "billing",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    printed = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert printed["Principal"] == "User:CN=billing"
    # the cluster started later on that data directory keeps the CA the certificate came from
    with Cluster(1, data_dir=str(tmp_path), auth="tls", tls_client_auth=True) as cluster:
        assert cluster.ca_certificate == printed["CA certificate"]
        cluster.create_topic(topic_name, 1)
        conf = {
            **_tls(cluster),
            "ssl.certificate.location": printed["Client certificate"],
            "ssl.key.location": printed["Client key"],
        }
        assert _confluent_roundtrip(conf, topic_name, [b"c1"]) == [b"c1"]
