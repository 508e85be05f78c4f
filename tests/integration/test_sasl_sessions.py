"""A SASL connection's life after authentication, over real sockets: KIP-368 re-authentication
(librdkafka re-authenticates within `connections.max.reauth.ms`; a client that does not is
closed at its next request), SaslHandshake v0's raw token exchange, and
`connections.max.idle.ms` closing idle connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from kafka.net.sasl.scram import ScramClient
from kafka.protocol.metadata.api_versions import ApiVersionsRequest
from kafka.protocol.metadata.metadata import MetadataRequest
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslHandshakeRequest,
)

from msklite import Cluster
from msklite.clock import ManualClock
from msklite.protocol.api_keys import ApiKey
from tests.integration.rawclient import RawClient

USERS = {"alice": "alice-secret"}
REAUTH_MS = 1500


def _authenticate(raw: RawClient) -> Any:
    """SCRAM-SHA-512 as alice with SaslHandshake v1 / SaslAuthenticate v1; the last answer."""
    assert raw.request(SaslHandshakeRequest[1](mechanism="SCRAM-SHA-512"), 1).error_code == 0
    client = ScramClient("alice", USERS["alice"], "SCRAM-SHA-512")
    first = raw.request(SaslAuthenticateRequest[1](auth_bytes=client.first_message()), 1)
    client.process_server_first_message(bytes(first.auth_bytes))
    return raw.request(SaslAuthenticateRequest[1](auth_bytes=client.final_message()), 1)


@pytest.fixture
def manual() -> Iterator[tuple[Cluster, ManualClock]]:
    clock = ManualClock()
    config = {"connections.max.reauth.ms": REAUTH_MS}
    with Cluster(1, auth="scram", scram_users=USERS, clock=clock, config=config) as c:
        yield c, clock


def test_a_client_that_does_not_reauthenticate_is_closed_once_its_session_ends(
    manual: tuple[Cluster, ManualClock],
) -> None:
    cluster, clock = manual
    with RawClient.tls(cluster.bootstrap_servers_sasl_scram, cluster.ca_certificate) as raw:
        done = _authenticate(raw)
        assert done.error_code == 0 and done.session_lifetime_ms == REAUTH_MS
        assert raw.request(MetadataRequest[1](topics=None), 1).brokers
        clock.advance(REAUTH_MS - 1)
        assert raw.request(MetadataRequest[1](topics=None), 1).brokers
        # in time, a SaslHandshake re-authenticates and starts a new session
        again = _authenticate(raw)
        assert again.error_code == 0 and again.session_lifetime_ms == REAUTH_MS
        clock.advance(REAUTH_MS - 1)
        assert raw.request(MetadataRequest[1](topics=None), 1).brokers
        clock.advance(2)
        raw.send_only(MetadataRequest[1](topics=None), 1)
        assert raw.is_closed_by_peer()
    assert cluster.broker_stats(1).internal_errors == 0


def test_confluent_reauthenticates_within_the_session_lifetime() -> None:
    config = {"connections.max.reauth.ms": REAUTH_MS}
    with Cluster(1, auth="scram", scram_users=USERS, config=config) as c:
        c.create_topic("t", 1)
        conf = {
            "bootstrap.servers": c.bootstrap_servers_sasl_scram,
            "security.protocol": "SASL_SSL",
            "ssl.ca.location": c.ca_certificate,
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "alice",
            "sasl.password": USERS["alice"],
        }
        errors: list[KafkaError] = []
        producer = Producer({**conf, "error_cb": errors.append})
        delivered: list[bool] = []
        handshakes = c.broker_stats(1).requests[ApiKey.SASL_HANDSHAKE]
        deadline = time.monotonic() + 3 * REAUTH_MS / 1000
        while time.monotonic() < deadline:
            producer.produce("t", b"v", on_delivery=lambda err, _: delivered.append(err is None))
            producer.poll(0.05)
        assert producer.flush(10) == 0
        assert delivered and all(delivered)
        assert errors == []  # no failed re-authentication, no connection lost
        # librdkafka's connections re-authenticated (one handshake each at the start, more
        # since), and none was closed for an expired session
        assert sum(handshakes) >= 2 * 2
        assert c.broker_stats(1).internal_errors == 0


def test_handshake_v0_exchanges_raw_tokens_then_serves_requests() -> None:
    with (
        Cluster(1, auth="scram", scram_users=USERS) as c,
        RawClient.tls(c.bootstrap_servers_sasl_scram, c.ca_certificate) as raw,
    ):
        assert raw.request(SaslHandshakeRequest[0](mechanism="SCRAM-SHA-512"), 0).error_code == 0
        client = ScramClient("alice", USERS["alice"], "SCRAM-SHA-512")
        raw.send_frame(client.first_message())
        client.process_server_first_message(raw.read_frame())
        raw.send_frame(client.final_message())
        client.process_server_final_message(raw.read_frame())  # checks the server's proof
        assert raw.request(MetadataRequest[1](topics=None), 1).brokers
    with (
        Cluster(1, auth="scram", scram_users=USERS) as c,
        RawClient.tls(c.bootstrap_servers_sasl_scram, c.ca_certificate) as raw,
    ):
        raw.request(SaslHandshakeRequest[0](mechanism="SCRAM-SHA-512"), 0)
        client = ScramClient("alice", "wrong", "SCRAM-SHA-512")
        raw.send_frame(client.first_message())
        client.process_server_first_message(raw.read_frame())
        raw.send_frame(client.final_message())
        assert raw.is_closed_by_peer()


def test_idle_connections_are_closed_after_connections_max_idle_ms() -> None:
    idle_ms = 400
    with (
        Cluster(1, config={"connections.max.idle.ms": idle_ms}) as c,
        RawClient(c.bootstrap_servers) as busy,
        RawClient(c.bootstrap_servers) as idle,
    ):
        idle.request(ApiVersionsRequest[0](), 0)
        started = time.monotonic()
        # the busy one sends every 100 ms for three idle periods and stays open
        while time.monotonic() - started < 3 * idle_ms / 1000:
            busy.request(ApiVersionsRequest[0](), 0)
            time.sleep(0.1)
        assert busy.request(ApiVersionsRequest[0](), 0).error_code == 0
        assert idle.is_closed_by_peer()
