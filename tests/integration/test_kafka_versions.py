"""Kafka-version emulation (`Cluster(kafka_version=...)`, `@pytest.mark.msk(kafka_version=...)`):
real clients negotiate with every MSK version and work, kafka-python infers the version from
the ApiVersions answer, and the answer and the refusals match the release's table."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.protocol.metadata.api_versions import ApiVersionsRequest

from msklite import Cluster
from msklite.kafka_releases import RELEASES
from msklite.protocol.api_keys import ApiKey
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient, header

# What kafka-python 3.0.12's check (infer_broker_version_from_api_versions) makes of each
# emulated answer. It tells releases apart by one API version each; where that version is one
# msklite does not serve (3.4: LeaderAndIsr v7, 3.5/3.7/3.9: Fetch
# v15/16/17, 4.0/4.1: ListOffsets v10 / Produce v13) it lands on the newest release it can
# still see, as it would for a real broker missing that version.
KAFKA_PYTHON_SEES = {
    "2.8.1": (2, 8),
    "3.3.2": (3, 3),
    "3.4.0": (3, 3),
    "3.5.1": (3, 3),
    "3.6.0": (3, 6),
    "3.7.x": (3, 6),
    "3.8.x": (3, 8),
    "3.9.x": (3, 8),
    "4.0.x": (3, 8),
    "4.1.x": (3, 8),
    "4.2.x": (3, 8),
}


def _versions() -> list[Any]:
    return [pytest.param(v, marks=pytest.mark.msk(kafka_version=v), id=v) for v in RELEASES]


@pytest.mark.parametrize("version", _versions())
async def test_clients_negotiate_and_work(
    msk_cluster: Cluster, topic_name: str, version: str
) -> None:
    assert msk_cluster.kafka_version == version
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)

    producer = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers})
    producer.produce(topic_name, b"from confluent-kafka")
    assert producer.flush(10) == 0

    kp = KafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    assert kp.config["api_version"] == KAFKA_PYTHON_SEES[version]
    kp.send(topic_name, b"from kafka-python").get(timeout=10)
    kp.close()

    ap = AIOKafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers)
    await ap.start()
    try:
        await ap.send_and_wait(topic_name, b"from aiokafka")
    finally:
        await ap.stop()

    sent = [b"from confluent-kafka", b"from kafka-python", b"from aiokafka"]

    consumer = Consumer({"bootstrap.servers": msk_cluster.bootstrap_servers, "group.id": "unused"})
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(got) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None:
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert value is not None
            got.append(value)
    consumer.close()
    assert got == sent

    kc = KafkaConsumer(bootstrap_servers=msk_cluster.bootstrap_servers, group_id=None)
    kc.assign([KafkaTopicPartition(topic_name, 0)])
    kc.seek_to_beginning()
    polled: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(polled) < 3 and time.monotonic() < deadline:
        for records in kc.poll(timeout_ms=200).values():
            polled.extend(r.value for r in records)
    kc.close()
    assert polled == sent

    ac = AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=msk_cluster.bootstrap_servers,
        group_id=f"{topic_name}-group",
        auto_offset_reset="earliest",
    )
    await ac.start()
    try:
        records = [await ac.getone() for _ in range(3)]
    finally:
        await ac.stop()
    assert [r.value for r in records] == sent


def _advertised(cluster: Cluster, version: int) -> dict[int, tuple[int, int]]:
    return _advertised_at(cluster.bootstrap_servers, version)


def _advertised_at(address: str, version: int) -> dict[int, tuple[int, int]]:
    with RawClient(address) as raw:
        req = ApiVersionsRequest(
            version=version, client_software_name="raw", client_software_version="1"
        )
        resp = raw.request(req, version)
    assert resp.error_code == 0
    return {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}


@pytest.mark.msk(kafka_version="2.8.1")
def test_2_8_1_advertises_its_table(msk_cluster: Cluster) -> None:
    # Kafka 2.8's answer (ZooKeeper mode) intersected with what msklite serves: no KIP-848,
    # no AddPartitionsToTxn v4+ (KIP-890), ApiVersions only up to v3.
    assert _advertised(msk_cluster, 3) == {
        0: (3, 9),
        1: (4, 12),
        2: (1, 6),
        3: (0, 11),
        8: (2, 8),
        9: (1, 7),
        10: (0, 3),
        11: (0, 7),
        12: (0, 4),
        13: (0, 4),
        14: (0, 5),
        15: (0, 5),
        16: (0, 4),
        17: (0, 1),
        18: (0, 3),
        19: (2, 7),
        20: (1, 6),
        21: (0, 2),
        22: (0, 4),
        23: (2, 4),
        24: (0, 3),
        25: (0, 3),
        26: (0, 3),
        27: (0, 1),
        28: (0, 3),
        29: (0, 2),
        30: (0, 2),
        31: (0, 2),
        32: (1, 4),
        33: (0, 2),
        35: (1, 2),
        36: (0, 2),
        37: (0, 3),
        42: (0, 2),
        43: (0, 2),
        44: (0, 1),
        45: (0, 0),
        46: (0, 0),
        47: (0, 0),
        48: (0, 1),
        49: (0, 1),
        50: (0, 0),
        51: (0, 0),
        60: (0, 0),
        61: (0, 0),
    }


@pytest.mark.msk(kafka_version="4.1.x")
def test_4_1_advertises_its_table(msk_cluster: Cluster) -> None:
    table = _advertised(msk_cluster, 4)
    assert table[ApiKey.PRODUCE] == (3, 11)  # 4.1 goes to 13; msklite serves up to 11
    assert table[ApiKey.DESCRIBE_GROUPS] == (0, 6)  # v6 is 4.0's
    assert table[ApiKey.CONSUMER_GROUP_HEARTBEAT] == (0, 1)
    assert table[ApiKey.ALTER_PARTITION_REASSIGNMENTS] == (0, 1)  # v1 is 4.1's
    assert table[ApiKey.CREATE_ACLS] == (1, 3)  # 4.0 removed v0


def test_default_is_3_9(msk_cluster: Cluster) -> None:
    assert msk_cluster.kafka_version == "3.9.x"
    table = _advertised(msk_cluster, 4)
    assert table[ApiKey.DESCRIBE_GROUPS] == (0, 5)
    assert table[ApiKey.CONSUMER_GROUP_HEARTBEAT] == (0, 0)
    assert table[ApiKey.ALTER_PARTITION_REASSIGNMENTS] == (0, 0)
    assert table[ApiKey.DESCRIBE_ACLS] == (0, 3)


@pytest.mark.msk(kafka_version="2.8.1")
def test_2_8_1_refuses_what_it_did_not_serve(msk_cluster: Cluster) -> None:
    # ApiVersions above the release's v3: a v0 answer, UNSUPPORTED_VERSION, its own range.
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        raw.send_frame(header(ApiKey.API_VERSIONS, 4, 1) + b"\x00\x00\x00")
        frame = raw.read_frame()
    assert frame[4:6] == b"\x00\x23"  # error 35
    assert frame[6:10] == b"\x00\x00\x00\x01"  # one entry
    assert frame[10:16] == b"\x00\x12\x00\x00\x00\x03"  # ApiVersions 0-3
    # A version the release lacks (Produce v10, KIP-890) and an API it lacks (KIP-848's
    # ConsumerGroupHeartbeat) close the connection, as Kafka does for what it does not serve.
    for api_key, version in [(ApiKey.PRODUCE, 10), (ApiKey.CONSUMER_GROUP_HEARTBEAT, 0)]:
        with RawClient(msk_cluster.bootstrap_servers) as raw:
            raw.send_frame(header(api_key, version, 1) + b"\x00" * 16)
            assert raw.is_closed_by_peer()


def test_unknown_version_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'3\.6\.1'.*2\.8\.1, 3\.3\.2.*4\.1\.x"):
        Cluster(kafka_version="3.6.1")
    assert Cluster(kafka_version="3.7.1").kafka_version == "3.7.x"
    assert Cluster(kafka_version="3.9.x.kraft").kafka_version == "3.9.x"


def _topic_configs(cluster: Cluster, topic: str) -> dict[str, Any]:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(10)  # type: ignore[no-any-return]


def _create_with(cluster: Cluster, topic: str, configs: dict[str, str]) -> KafkaException | None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    future = admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic]
    try:
        future.result(10)
    except KafkaException as e:
        return e
    return None


def _produce_at(cluster: Cluster, topic: str, timestamp_ms: int) -> list[Any]:
    errors: list[Any] = []
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "retries": 0})
    producer.produce(topic, b"v", timestamp=timestamp_ms, on_delivery=lambda e, _: errors.append(e))
    assert producer.flush(10) == 0
    return errors


@pytest.mark.msk(kafka_version="3.5.1")
def test_before_3_6_the_timestamp_bounds_are_unknown(msk_cluster: Cluster, topic_name: str) -> None:
    refused = _create_with(msk_cluster, topic_name, {"message.timestamp.after.max.ms": "1000"})
    assert refused is not None
    assert refused.args[0].code() == KafkaError.INVALID_CONFIG
    assert "Unknown topic config name: message.timestamp.after.max.ms" in str(refused)
    assert (
        _create_with(msk_cluster, topic_name, {"message.timestamp.difference.max.ms": "1000"})
        is None
    )
    described = _topic_configs(msk_cluster, topic_name)
    assert "message.timestamp.before.max.ms" not in described
    assert described["message.timestamp.difference.max.ms"].value == "1000"
    with pytest.raises(ValueError, match=r"not a config of Kafka 3\.5\.1: added in Kafka 3\.6"):
        Cluster(kafka_version="3.5.1", config={"log.message.timestamp.before.max.ms": 1000})


@pytest.mark.parametrize(
    ("version", "accepted"),
    [
        pytest.param("3.9.x", True, marks=pytest.mark.msk(kafka_version="3.9.x")),
        pytest.param("4.0.x", False, marks=pytest.mark.msk(kafka_version="4.0.x")),
    ],
)
def test_4_0_refuses_records_an_hour_ahead_by_default(
    msk_cluster: Cluster, topic_name: str, version: str, accepted: bool
) -> None:
    # KIP-1030: message.timestamp.after.max.ms defaults to one hour from 4.0 on
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    errors = _produce_at(msk_cluster, topic_name, int(time.time() * 1000) + 2 * 3600 * 1000)
    if accepted:
        assert errors == [None]
    else:
        assert [e.code() for e in errors] == [KafkaError.INVALID_TIMESTAMP]
    after = _topic_configs(msk_cluster, topic_name)["message.timestamp.after.max.ms"]
    assert after.value == ("9223372036854775807" if accepted else "3600000")
    assert after.source == ConfigSource.DEFAULT_CONFIG.value
    removed = _create_with(
        msk_cluster, f"{topic_name}-x", {"message.timestamp.difference.max.ms": "1000"}
    )
    assert (removed is None) == accepted


def _protocols_default(bootstrap: str, node_id: int) -> str | None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.BROKER, str(node_id))
    configs = admin.describe_configs([resource])[resource].result(10)
    value: str | None = configs["group.coordinator.rebalance.protocols"].value
    return value


def test_a_version_update_rolls_the_brokers_onto_the_release() -> None:
    with Cluster(brokers=3, kafka_version="3.9.x") as cluster:
        cluster.create_topic("rolled", 3, 3)
        before = {p: cluster.partition("rolled", p) for p in range(3)}
        addresses = [f"{b.info.host}:{b.info.port}" for b in cluster.brokers.values()]
        assert _advertised(cluster, 3)[ApiKey.CONSUMER_GROUP_HEARTBEAT] == (0, 0)
        assert _protocols_default(cluster.bootstrap_servers, 1) == "classic"
        cluster.update_kafka_version("4.0.x")
        assert cluster.kafka_version == "4.0.x"
        for address in addresses:
            # each broker back on its port, speaking 4.0
            table = _advertised_at(address, 3)
            assert table[ApiKey.CONSUMER_GROUP_HEARTBEAT] == (0, 1)
            assert table[ApiKey.JOIN_GROUP][0] == 2  # KIP-896: v0-v1 gone in 4.0
        # leadership moved away and came back to the preferred replicas
        wait_until(
            lambda: all(
                cluster.partition("rolled", p).leader == before[p].leader for p in range(3)
            ),
            "the preferred leaders back",
            60,
        )
        for p in range(3):
            after = cluster.partition("rolled", p)
            assert after.leader_epoch >= before[p].leader_epoch + 2
            assert after.isr == before[p].isr
        # 4.0's defaults: KIP-848 on
        assert _protocols_default(cluster.bootstrap_servers, 1) == "classic,consumer"
