"""Describe/AlterUserScramCredentials over real sockets: confluent-kafka's and kafka-python's
admin clients create, describe and delete SCRAM users; a new user logs in at once, a deleted
one no longer can; users (altered and `scram_users`) survive a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka.admin import KafkaAdminClient
from kafka.admin import ScramMechanism as KpScramMechanism
from kafka.admin import UserScramCredentialDeletion as KpDeletion
from kafka.admin import UserScramCredentialUpsertion as KpUpsertion

from msklite import Cluster

ADMIN = ("admin", "admin-secret")


def _conf(
    cluster: Cluster, user: str, password: str, mechanism: str = "SCRAM-SHA-512"
) -> dict[str, Any]:
    return {
        "bootstrap.servers": cluster.bootstrap_servers_sasl_scram,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": cluster.ca_certificate,
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def _logs_in(cluster: Cluster, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> bool:
    """Whether a client authenticates (metadata answered) or is refused."""
    errors: list[KafkaError] = []
    producer = Producer({**_conf(cluster, user, password, mechanism), "error_cb": errors.append})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        producer.poll(0.1)  # serves error_cb
        if errors:
            return errors[0].code() != KafkaError._AUTHENTICATION
        try:
            producer.list_topics(timeout=0.5)
            return True
        except KafkaException:
            continue
    raise AssertionError("neither logged in nor refused")


def _upsert(user: str, password: str, mechanism: ScramMechanism, iterations: int = 8192) -> Any:
    return UserScramCredentialUpsertion(
        user, ScramCredentialInfo(mechanism, iterations), password.encode()
    )


def test_confluent_alters_and_describes_users_and_logins_follow(tmp_path: Path) -> None:
    data = str(tmp_path / "c")
    with Cluster(1, data_dir=data, auth="scram", scram_users=dict([ADMIN])) as c:
        admin = AdminClient(_conf(c, *ADMIN))
        assert not _logs_in(c, "carol", "pw1")
        futures = admin.alter_user_scram_credentials(
            [
                _upsert("carol", "pw1", ScramMechanism.SCRAM_SHA_512),
                _upsert("dave", "pw2", ScramMechanism.SCRAM_SHA_256, 4096),
            ]
        )
        for f in futures.values():
            f.result(timeout=15)
        assert _logs_in(c, "carol", "pw1")
        assert not _logs_in(c, "carol", "pw1", "SCRAM-SHA-256")  # that mechanism has none
        assert _logs_in(c, "dave", "pw2", "SCRAM-SHA-256")
        by_user = admin.describe_user_scram_credentials(["carol"])
        assert isinstance(by_user, dict)  # one future per user named (one for all otherwise)
        carol = by_user["carol"].result(timeout=15)
        assert [(i.mechanism, i.iterations) for i in carol.scram_credential_infos] == [
            (ScramMechanism.SCRAM_SHA_512, 8192)
        ]
        all_users = admin.describe_user_scram_credentials()
        assert not isinstance(all_users, dict)
        everyone = all_users.result(timeout=15)
        assert sorted(everyone) == ["admin", "carol", "dave"]
        # Kafka's validation: too few iterations; deleting what does not exist
        bad = admin.alter_user_scram_credentials(
            [
                _upsert("erin", "pw", ScramMechanism.SCRAM_SHA_512, 100),
                UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_512),
            ]
        )
        with pytest.raises(KafkaException, match="Too few iterations"):
            bad["erin"].result(timeout=15)
        with pytest.raises(KafkaException) as e:
            bad["nobody"].result(timeout=15)
        assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
        admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)]
        )["dave"].result(timeout=15)
        assert not _logs_in(c, "dave", "pw2", "SCRAM-SHA-256")
    # saved with the cluster metadata: carol (altered) and admin (given at start) log in
    with Cluster(1, data_dir=data, auth="scram") as c:
        assert _logs_in(c, "carol", "pw1")
        assert _logs_in(c, *ADMIN)
        assert not _logs_in(c, "dave", "pw2", "SCRAM-SHA-256")


def test_kafka_python_alters_and_describes_users() -> None:
    with Cluster(1, auth="scram", scram_users=dict([ADMIN])) as c:
        admin = KafkaAdminClient(
            bootstrap_servers=c.bootstrap_servers_sasl_scram,
            security_protocol="SASL_SSL",
            ssl_cafile=c.ca_certificate,
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=ADMIN[0],
            sasl_plain_password=ADMIN[1],
        )
        try:
            result = admin.alter_user_scram_credentials(
                [KpUpsertion("frank", KpScramMechanism.SCRAM_SHA_512, "pw3", iterations=4096)]
            )
            assert result == {"frank": None}
            described = admin.describe_user_scram_credentials(["frank", "ghost"])
            assert described["frank"]["error"] is None
            assert [i["iterations"] for i in described["frank"]["credential_infos"]] == [4096]
            assert described["ghost"]["error"] is not None
            assert _logs_in(c, "frank", "pw3")
            result = admin.alter_user_scram_credentials(
                [KpDeletion("frank", KpScramMechanism.SCRAM_SHA_512)]
            )
            assert result == {"frank": None}
            assert not _logs_in(c, "frank", "pw3")
        finally:
            admin.close()
