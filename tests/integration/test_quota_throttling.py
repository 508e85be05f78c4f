"""Produce and fetch byte-rate quotas as Kafka enforces them: throttle_time_ms in the answer,
which leaves at once, and the connection muted for that long. Raw requests on the injected
clock show the exact figures; real clients show the effect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from kafka import KafkaProducer
from kafka.protocol.admin.client_quotas import AlterClientQuotasRequest
from kafka.protocol.metadata.api_versions import ApiVersionsRequest
from kafka.protocol.metadata.metadata import MetadataRequest
from kafka.protocol.producer.produce import ProduceRequest

from msklite import Cluster
from msklite.clock import ManualClock
from msklite.protocol.records import encode_batch
from tests.integration.rawclient import RawClient
from tests.requests import fetch_request, produce_request

A = AlterClientQuotasRequest


def set_quota(
    cluster: Cluster, entity: list[tuple[str, str | None]], key: str, value: float
) -> None:
    req = A(
        version=1,
        entries=[
            A.EntryData(
                entity=[A.EntryData.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                ops=[A.EntryData.OpData(key=key, value=value, remove=False)],
            )
        ],
        validate_only=False,
    )
    with RawClient(cluster.bootstrap_servers) as c:
        [r] = c.request(req, 1).entries
    assert r.error_code == 0


@pytest.fixture
def manual() -> Iterator[tuple[Cluster, ManualClock]]:
    clock = ManualClock()
    with Cluster(brokers=1, clock=clock) as cluster:
        cluster.create_topic("q", partitions=1)
        yield cluster, clock


def _produce_request(value_size: int, acks: int = 1) -> ProduceRequest:
    return produce_request("q", {0: encode_batch([(b"k", b"x" * value_size)])}, acks=acks)


def _answered_within(client: RawClient, seconds: float) -> bool:
    client.sock.settimeout(seconds)
    try:
        client.read_frame()
        return True
    except TimeoutError:
        return False
    finally:
        client.sock.settimeout(5.0)


def test_produce_over_the_quota_is_answered_with_kafkas_throttle_then_muted(
    manual: tuple[Cluster, ManualClock],
) -> None:
    cluster, clock = manual
    set_quota(cluster, [("client-id", "raw")], "producer_byte_rate", 1000)
    req = _produce_request(20_000)
    req.with_header(correlation_id=1, client_id="raw")
    size = len(bytes(req.encode(version=9, header=True, framed=False)))
    # 11 windows of 1 s: the first bytes count over 10 s; over the bound by (rate/bound - 1)
    expected = round((size / 10 - 1000) / 1000 * 10_000)
    with RawClient(cluster.bootstrap_servers) as c:
        resp = c.request(req, 9)
        assert resp.throttle_time_ms == expected > 0
        assert resp.responses[0].partition_responses[0].error_code == 0
        # muted: the next request waits for the throttle time to pass on the clock
        c.send_only(ApiVersionsRequest(version=0), 0)
        assert not _answered_within(c, 0.3)
        clock.advance(expected - 1)
        assert not _answered_within(c, 0.2)
        clock.advance(1)
        assert _answered_within(c, 5.0)


def test_fetch_over_the_quota_is_answered_empty(manual: tuple[Cluster, ManualClock]) -> None:
    cluster, clock = manual
    with RawClient(cluster.bootstrap_servers) as c:
        assert c.request(_produce_request(30_000), 9).throttle_time_ms == 0
    set_quota(cluster, [("user", "ANONYMOUS")], "consumer_byte_rate", 1000)
    req = fetch_request("q", version=11, min_bytes=1)
    with RawClient(cluster.bootstrap_servers) as c:
        resp = c.request(req, 11)
        # the quota's window caps the fetch at 10 s worth (10000 bytes): the first batch
        # (30 kB) still comes whole (KIP-74) and is over the quota: answered empty instead
        assert resp.throttle_time_ms > 0
        assert resp.responses == [] and resp.session_id == 0
        clock.advance(resp.throttle_time_ms)
        # the unrecorded bytes did not count: still over (the batch alone exceeds the
        # quota's span), so throttled again, by the same time
        again = c.request(req, 11)
        assert again.throttle_time_ms == resp.throttle_time_ms


def test_request_percentage_throttles_any_answer(manual: tuple[Cluster, ManualClock]) -> None:
    """A tiny request_percentage: every handled request is over it, and the throttle is
    capped at one window (ClientRequestQuotaManager), in whatever response has the field:
    first in Metadata, last in Produce; ApiVersions is exempt, as in Kafka."""
    cluster, clock = manual
    set_quota(cluster, [("client-id", "raw")], "request_percentage", 1e-9)
    with RawClient(cluster.bootstrap_servers) as c:
        assert c.request(ApiVersionsRequest(version=2), 2).throttle_time_ms == 0
        assert c.request(MetadataRequest(version=9, topics=None), 9).throttle_time_ms == 1000
        c.send_only(ApiVersionsRequest(version=2), 2)
        assert not _answered_within(c, 0.3)
        clock.advance(1000)
        assert _answered_within(c, 5.0)
        resp = c.request(_produce_request(10), 9)
        assert resp.throttle_time_ms == 1000
        assert resp.responses[0].partition_responses[0].error_code == 0


QUOTA = 1_000_000  # bytes per second
# two windows of 1 s: a client's first second is its only burst (Kafka's default, 11, would
# let it send 10 s worth before any throttle)
FAST_WINDOWS = {"quota.window.num": 2, "quota.window.size.seconds": 1}


@pytest.mark.msk(brokers=1, config=FAST_WINDOWS)
def test_confluent_producer_is_throttled_to_its_quota(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("q", partitions=1)
    set_quota(msk_cluster, [("client-id", "slow")], "producer_byte_rate", QUOTA)
    throttles: list[int] = []
    producer = Producer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "client.id": "slow",
            "linger.ms": 5,
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    value = b"x" * 10_000
    total = 4 * QUOTA
    start = time.monotonic()
    for _ in range(total // len(value)):
        while True:
            try:
                producer.produce("q", value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(30) == 0
    elapsed = time.monotonic() - start
    assert throttles and max(throttles) > 0
    # The first window's quota passes as a burst before any throttle (4 MB then take ~3 s, an
    # average of ~1.33 MB/s); what follows the burst is held to the quota.
    assert elapsed > (total - 2 * QUOTA) / QUOTA
    assert (total - QUOTA) / elapsed < 1.2 * QUOTA


def _fill(cluster: Cluster, total: int) -> None:
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 5})
    for _ in range(total // 10_000):
        producer.produce("q", b"x" * 10_000)
        producer.poll(0)
    assert producer.flush(30) == 0


@pytest.mark.msk(brokers=1, config=FAST_WINDOWS)
def test_confluent_consumer_is_throttled_to_its_quota(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("q", partitions=1)
    total = 3 * QUOTA
    _fill(msk_cluster, total)
    set_quota(msk_cluster, [("user", None)], "consumer_byte_rate", QUOTA)
    throttles: list[float] = []
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": "slow",
            "auto.offset.reset": "earliest",
            "throttle_cb": lambda event: throttles.append(event.throttle_time),
        }
    )
    consumer.subscribe(["q"])
    got = 0
    start = time.monotonic()
    deadline = start + 30
    while got < total and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got += len(msg.value() or b"")
    elapsed = time.monotonic() - start
    consumer.close()
    assert got == total
    assert throttles and max(throttles) > 0
    assert elapsed > (total - 2 * QUOTA) / QUOTA
    assert total / elapsed < 1.3 * QUOTA


@pytest.mark.msk(brokers=1, config=FAST_WINDOWS)
def test_kafka_python_reports_produce_throttle_time(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("q", partitions=1)
    set_quota(msk_cluster, [("client-id", "kp")], "producer_byte_rate", QUOTA)
    producer = KafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers, client_id="kp")
    total = 3 * QUOTA
    start = time.monotonic()
    for _ in range(total // 10_000):
        producer.send("q", b"x" * 10_000)
    producer.flush(30)
    elapsed = time.monotonic() - start
    throttle_max = producer.metrics()["producer-metrics"]["throttle-time-max"]
    producer.close()
    assert throttle_max > 0
    assert total / elapsed < 1.3 * QUOTA


@pytest.mark.msk(brokers=1, config=FAST_WINDOWS)
async def test_aiokafka_producer_is_held_to_its_quota_by_the_mute(msk_cluster: Cluster) -> None:
    """aiokafka ignores throttle_time_ms (it exposes no throttle at all): only the broker's
    muting of the connection holds it to the quota."""
    msk_cluster.create_topic("q", partitions=1)
    set_quota(msk_cluster, [("client-id", "aio")], "producer_byte_rate", QUOTA)
    producer = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers, client_id="aio")
    await producer.start()
    try:
        total = 3 * QUOTA
        start = time.monotonic()
        sends = [await producer.send("q", b"x" * 10_000) for _ in range(total // 10_000)]
        await asyncio.gather(*sends)
        elapsed = time.monotonic() - start
    finally:
        await producer.stop()
    assert elapsed > (total - 2 * QUOTA) / QUOTA
    assert total / elapsed < 1.3 * QUOTA
