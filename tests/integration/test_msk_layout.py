"""The MSK layout: broker i on its own loopback address with MSK's exact ports, and MSK-shaped
broker names. MSK's ports are fixed, so each test takes a random 127.x.y.0/24 of its own
(every 127.x.y.z is loopback on Linux): parallel runs do not collide, and a test whose
addresses happen to be taken is skipped rather than failed."""

from __future__ import annotations

import errno
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaProducer

from msklite import Cluster
from tests.integration.helpers import printed_lines, serving, stop_cleanly

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2+ is loopback on Linux")


def _base() -> str:
    return f"127.{random.randint(100, 254)}.{random.randint(0, 255)}.1"


def _start(cluster: Cluster) -> Cluster:
    try:
        return cluster.start()
    except OSError as e:  # pragma: no cover - another run holds these addresses
        if e.errno == errno.EADDRINUSE:
            pytest.skip(f"MSK's ports on {cluster.host} are taken: {e}")
        raise


@pytest.fixture
def msk_layout() -> Iterator[Cluster]:
    cluster = _start(
        Cluster(
            3,
            layout="msk",
            host=_base(),
            auth="plaintext,tls,scram,iam",
            scram_users={"alice": "alice-pw"},
        )
    )
    try:
        yield cluster
    finally:
        cluster.stop()


def test_each_broker_listens_on_its_own_address_with_msks_ports(
    msk_layout: Cluster, topic_name: str
) -> None:
    prefix = msk_layout.host.rsplit(".", 1)[0]
    lines = dict(msk_layout.bootstrap_lines)
    for label, port in (("", 9092), ("TLS", 9094), ("SASL/SCRAM", 9096), ("IAM", 9098)):
        assert lines[label] == ",".join(f"{prefix}.{i}:{port}" for i in (1, 2, 3))
    tls: dict[str, Any] = {
        "bootstrap.servers": msk_layout.bootstrap_servers_tls,
        "security.protocol": "SSL",
        "ssl.ca.location": msk_layout.ca_certificate,
        "ssl.endpoint.identification.algorithm": "https",  # each address is in its SANs
    }
    md = AdminClient(tls).list_topics(timeout=10)
    assert {b.id: (str(b.host), b.port) for b in md.brokers.values()} == {
        i: (f"{prefix}.{i}", 9094) for i in (1, 2, 3)
    }
    msk_layout.create_topic(topic_name, 3)
    scram: dict[str, Any] = {
        "bootstrap.servers": msk_layout.bootstrap_servers_sasl_scram,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": msk_layout.ca_certificate,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "alice-pw",
    }
    producer = Producer(scram)
    for p in range(3):
        producer.produce(topic_name, b"v", partition=p)
    assert producer.flush(15) == 0
    # a restarted broker comes back on its own address and ports
    msk_layout.stop_broker(2)
    msk_layout.start_broker(2)
    again = dict(msk_layout.bootstrap_lines)["TLS"]
    assert sorted(again.split(",")) == sorted(lines["TLS"].split(","))
    # an added broker takes the next address, with the same ports
    assert msk_layout.add_broker() == 4
    assert f"{prefix}.4:9096" in dict(msk_layout.bootstrap_lines)["SASL/SCRAM"].split(",")


def test_msk_host_names_are_advertised_certified_and_signed_for(
    monkeypatch: pytest.MonkeyPatch, topic_name: str
) -> None:
    key_id, secret = "AKIAMSKLITELAYOUT001", "layout-secret"
    arn = "arn:aws:iam::123456789012:user/layout"
    cluster = _start(
        Cluster(
            2,
            layout="msk",
            host=_base(),
            auth="iam",
            msk_hostnames=True,
            iam_permissive=False,
            iam_credentials={key_id: {"secret_access_key": secret, "principal_arn": arn}},
        )
    )
    try:
        hosts = dict(line.split(" ")[::-1] for line in cluster.msk_hosts_lines)
        assert sorted(hosts) == [
            f"b-{i}.msklite.{name}.c1.kafka.us-east-1.amazonaws.com"
            for i, name in ((1, _short(hosts)), (2, _short(hosts)))
        ]
        # what the /etc/hosts lines would do, for this process only
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            return real(hosts.get(host, host), *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        for name, value in (
            ("AWS_ACCESS_KEY_ID", key_id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent/msklite-config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/msklite-credentials"),
        ):
            monkeypatch.setenv(name, value)
        cluster.create_topic(topic_name, 2)
        producer = KafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers_sasl_iam,
            security_protocol="SASL_SSL",
            sasl_mechanism="AWS_MSK_IAM",
            ssl_cafile=cluster.ca_certificate,
            ssl_check_hostname=True,  # the certificate carries the MSK name
        )
        for p in range(2):  # one partition per broker: both names are dialled
            producer.send(topic_name, b"m", partition=p).get(timeout=10)
        producer.close()
    finally:
        cluster.stop()


def _short(hosts: dict[str, str]) -> str:
    return next(iter(hosts)).split(".")[2]


def test_msk_layout_is_checked() -> None:
    with pytest.raises(ValueError, match="MSK's ports"):
        Cluster(1, layout="msk", port=9092)
    with pytest.raises(ValueError, match=r"127\.x\.y\.z"):
        Cluster(1, layout="msk", host="localhost")
    with pytest.raises(ValueError, match=r"127\.x\.y\.1-254"):
        Cluster(3, layout="msk", host="127.0.0.253")
    with pytest.raises(ValueError, match=r"127\.x\.y\.1-254"):
        Cluster(1, layout="msk", host="10.0.0.1")
    with pytest.raises(ValueError, match="'offset' or 'msk'"):
        Cluster(1, layout="aws")


def test_cli_layout_msk_prints_msks_bootstrap_strings_and_hosts_lines() -> None:
    base = _base()
    prefix = base.rsplit(".", 1)[0]
    with serving(
        "--ephemeral",
        "--layout",
        "msk",
        "--host",
        base,
        "--brokers",
        "2",
        "--auth",
        "plaintext,tls",
        "--msk-hostnames",
    ) as proc:
        first = printed_lines(proc, 1)[0]
        if not first:  # pragma: no cover - another run holds these addresses
            _, err = proc.communicate(timeout=15)
            if "in use" in err:
                pytest.skip(err)
            pytest.fail(err)
        printed = [first, *printed_lines(proc, 4)]
        lines = dict(line.split(": ", 1) for line in printed[:3])
        # what to add to /etc/hosts: each MSK-shaped name at its broker's own address
        hosts = [line.removeprefix("/etc/hosts: ").split(" ") for line in printed[3:]]
        assert [address for address, _ in hosts] == [f"{prefix}.1", f"{prefix}.2"]
        names = [name for _, name in hosts]
        for i, name in enumerate(names, 1):
            assert re.fullmatch(
                rf"b-{i}\.msklite\.[a-z0-9]{{6}}\.c1\.kafka\.us-east-1\.amazonaws\.com", name
            )
        assert lines["Bootstrap servers"] == f"{names[0]}:9092,{names[1]}:9092"
        assert lines["Bootstrap servers (TLS)"] == f"{names[0]}:9094,{names[1]}:9094"
        assert lines["CA certificate"].endswith("ca.pem")
        stop_cleanly(proc)
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "msklite",
            "serve",
            "--ephemeral",
            "--layout",
            "msk",
            "--port",
            "9092",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "--port is for --layout offset" in refused.stderr
