"""The test kit's per-request hooks (msklite.testing.control) with real clients."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer
from kafka.protocol.metadata.metadata import MetadataRequest

from msklite import Cluster, ErrorCode
from msklite.protocol.api_keys import ApiKey
from msklite.testing.control import Request, RequestControl
from tests.integration.rawclient import RawClient


def _produce_one(cluster: Cluster, topic: str, **conf: object) -> list[object]:
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, **conf})
    reports: list[object] = []
    producer.produce(topic, b"v", on_delivery=lambda err, msg: reports.append(err or msg.offset()))
    producer.flush(15)
    return reports


def test_a_failed_produce_is_retried_by_the_client(
    msk_cluster_session: Cluster, topic_name: str
) -> None:
    msk_cluster_session.create_topic(topic_name)
    with RequestControl(msk_cluster_session) as control:
        rule = control.fail(ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        # librdkafka refreshes metadata and sends again: one record, stored once.
        assert _produce_one(msk_cluster_session, topic_name, acks="all") == [0]
        assert rule.hits == 1
    view = msk_cluster_session.partition(topic_name, 0)
    assert view.log_end_offsets[view.leader] == 1


def test_a_lasting_failure_reaches_the_application(
    msk_cluster_session: Cluster, topic_name: str
) -> None:
    msk_cluster_session.create_topic(topic_name)
    with RequestControl(msk_cluster_session) as control:
        rule = control.fail(ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER, times=None)
        (report,) = _produce_one(msk_cluster_session, topic_name, **{"message.timeout.ms": 2000})
        assert rule.hits >= 2  # retried, failed again each time
    assert not isinstance(report, int), report
    view = msk_cluster_session.partition(topic_name, 0)
    assert view.log_end_offsets[view.leader] == 0


def test_a_delayed_fetch_holds_the_consumer_back(
    msk_cluster_session: Cluster, topic_name: str
) -> None:
    msk_cluster_session.create_topic(topic_name)
    assert _produce_one(msk_cluster_session, topic_name) == [0]
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster_session.bootstrap_servers,
            "group.id": topic_name,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        with RequestControl(msk_cluster_session) as control:
            rule = control.delay(ApiKey.FETCH, 1.5, times=None)
            consumer.subscribe([topic_name])
            start = time.monotonic()
            msg = None
            while msg is None and time.monotonic() - start < 15:
                msg = consumer.poll(0.5)
            assert msg is not None and msg.error() is None and msg.value() == b"v"
            assert time.monotonic() - start >= 1.5
            assert rule.hits >= 1
    finally:
        consumer.close()


def test_intercept_sees_the_request_and_may_decline(msk_cluster_session: Cluster) -> None:
    seen: list[Request] = []

    def watch(request: Request) -> None:
        seen.append(request)

    with RequestControl(msk_cluster_session) as control:
        rule = control.intercept(ApiKey.METADATA, watch, broker=1)
        b1 = msk_cluster_session.brokers[1].info
        with RawClient(f"{b1.host}:{b1.port}") as client:
            resp = client.request(MetadataRequest(version=1, topics=None), 1)
    assert [b[0] for b in resp.brokers] and seen[0].api_key == ApiKey.METADATA
    assert seen[0].broker == 1 and seen[0].api_version == 1
    assert rule.hits == 0  # declined: the broker answered, and the rule still waits


def test_disconnect_closes_the_connection(msk_cluster_session: Cluster) -> None:
    b2 = msk_cluster_session.brokers[2].info
    with RequestControl(msk_cluster_session) as control:
        rule = control.disconnect(ApiKey.METADATA, broker=2)
        with RawClient(f"{b2.host}:{b2.port}") as client:
            client.send_only(MetadataRequest(version=1, topics=None), 1)
            assert client.is_closed_by_peer()
        assert rule.hits == 1
        # Used up: the next Metadata is answered.
        with RawClient(f"{b2.host}:{b2.port}") as client:
            assert client.request(MetadataRequest(version=1, topics=None), 1).brokers


def test_rules_name_bad_arguments(msk_cluster_session: Cluster) -> None:
    with RequestControl(msk_cluster_session) as control:
        with pytest.raises(ValueError, match="fail\\(\\) answers Produce"):
            control.fail(ApiKey.FETCH, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        with pytest.raises(ValueError, match="no broker 9"):
            control.delay(ApiKey.FETCH, 1, broker=9)
        with pytest.raises(ValueError, match="times is at least 1"):
            control.disconnect(ApiKey.FETCH, times=0)
