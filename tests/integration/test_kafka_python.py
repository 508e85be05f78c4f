"""kafka-python 3.0.12 (KafkaAdminClient, KafkaProducer, KafkaConsumer) against msklite over TCP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.codec import has_lz4, has_snappy, has_zstd
from kafka.errors import (
    InvalidReplicationFactorError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
)
from kafka.record import MemoryRecords

from msklite import Cluster
from tests.integration.helpers import leader_segments

# kafka-python's compression_type values; None is no compression.
CODECS: list[str | None] = [None, "gzip", "snappy", "lz4", "zstd"]
_CODEC_AVAILABLE = {
    None: True,
    "gzip": True,
    "snappy": has_snappy(),
    "lz4": has_lz4(),
    "zstd": has_zstd(),
}
# The batch attributes' compression bits for each codec.
_CODEC_ID = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
BASE_TS = 1_700_000_000_000
CREATE_TIME = 0  # ConsumerRecord.timestamp_type for CreateTime


def _admin(cluster: Cluster) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)


def _producer(cluster: Cluster, **extra: Any) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, **extra)


def _consumer(cluster: Cluster, **extra: Any) -> KafkaConsumer:
    conf: dict[str, Any] = {
        "bootstrap_servers": cluster.bootstrap_servers,
        "group_id": None,  # these tests assign partitions; groups are in test_groups_python_clients
        "enable_auto_commit": False,
    }
    conf.update(extra)
    return KafkaConsumer(**conf)


def _consume(consumer: KafkaConsumer, n: int, timeout: float = 10.0) -> list[Any]:
    """Poll until n records arrived (or the deadline passed); records in arrival order."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=100).values():
            out.extend(records)
    return out


def _stored_batches(cluster: Cluster, topic: str, partition: int) -> list[Any]:
    """The record batches of a partition as they lie in the leader's log segments on disk,
    parsed by kafka-python's own record reader."""
    batches = []
    for data in leader_segments(cluster, topic, partition):
        records = MemoryRecords(data)
        while (batch := records.next_batch()) is not None:
            batches.append(batch)
    return batches


def _topic_names(admin: KafkaAdminClient) -> set[str]:
    return set(admin.list_topics())


def _partitions(admin: KafkaAdminClient, topic: str) -> list[dict[str, Any]]:
    (described,) = admin.describe_topics([topic])
    assert described["error_code"] == 0
    return sorted(described["partitions"], key=lambda p: p["partition_index"])


# --- admin ------------------------------------------------------------------------------------


def test_admin_create_describe_delete(msk_cluster: Cluster, topic_name: str) -> None:
    admin = _admin(msk_cluster)
    try:
        created = admin.create_topics(
            {
                topic_name: {
                    "num_partitions": 3,
                    "replication_factor": 1,
                    "configs": {"retention.ms": "1234567"},
                }
            }
        )
        (result,) = created["topics"]
        assert (result["name"], result["error_code"]) == (topic_name, 0)
        assert (result["num_partitions"], result["replication_factor"]) == (3, 1)
        # CreateTopics v5+ echoes the effective configs with their sources.
        assert result["configs"]["retention.ms"]["value"] == "1234567"
        assert result["configs"]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

        assert topic_name in _topic_names(admin)
        partitions = _partitions(admin, topic_name)
        assert [p["partition_index"] for p in partitions] == [0, 1, 2]
        assert {p["leader_id"] for p in partitions} == {1, 2, 3}  # spread over the brokers
        for p in partitions:
            assert p["error_code"] == 0
            assert p["replica_nodes"] == [p["leader_id"]]
            assert p["isr_nodes"] == [p["leader_id"]]

        topic_res = ConfigResource(ConfigResourceType.TOPIC, topic_name)
        configs = admin.describe_configs([topic_res], config_filter="all")["topic"][topic_name]
        assert configs["retention.ms"]["value"] == "1234567"
        assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert configs["unclean.leader.election.enable"]["value"] == "true"  # MSK default
        assert configs["unclean.leader.election.enable"]["config_source"] == (
            "STATIC_BROKER_CONFIG"
        )
        assert configs["max.message.bytes"]["value"] == "1048588"
        assert configs["max.message.bytes"]["config_source"] == "DEFAULT_CONFIG"
        # kafka-python's default filter keeps only what was set on the topic itself.
        modified = admin.describe_configs([topic_res])["topic"][topic_name]
        assert set(modified) == {"retention.ms"}

        # Broker resources go to that broker (kafka-python sends each to its node id).
        for broker_id, rack in [("1", "use1-az1"), ("2", "use1-az2"), ("3", "use1-az4")]:
            broker_res = ConfigResource(ConfigResourceType.BROKER, broker_id)
            broker = admin.describe_configs([broker_res], config_filter="all")["broker"][broker_id]
            assert broker["broker.id"]["value"] == broker_id
            assert broker["broker.rack"]["value"] == rack
            assert broker["auto.create.topics.enable"]["value"] == "false"  # MSK default

        grown = admin.create_partitions({topic_name: 5})
        assert [(r.name, r.error_code) for r in grown.results] == [(topic_name, 0)]
        assert [p["partition_index"] for p in _partitions(admin, topic_name)] == [0, 1, 2, 3, 4]

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})

        deleted = admin.delete_topics([topic_name])
        assert [(t["name"], t["error_code"]) for t in deleted["topics"]] == [(topic_name, 0)]
        assert topic_name not in _topic_names(admin)
    finally:
        admin.close()


def test_admin_replication_factor_beyond_the_brokers_refused(
    msk_cluster: Cluster, topic_name: str
) -> None:
    admin = _admin(msk_cluster)
    try:
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 4}})
        assert topic_name not in _topic_names(admin)
    finally:
        admin.close()


def test_admin_validate_only_creates_nothing(msk_cluster: Cluster, topic_name: str) -> None:
    admin = _admin(msk_cluster)
    try:
        result = admin.create_topics(
            {topic_name: {"num_partitions": 4, "replication_factor": 1}}, validate_only=True
        )
        (topic,) = result["topics"]
        assert (topic["name"], topic["error_code"], topic["num_partitions"]) == (topic_name, 0, 4)
        assert topic_name not in _topic_names(admin)
        assert topic_name not in msk_cluster.topics()
        # ...and the name is still free.
        admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})
        assert len(_partitions(admin, topic_name)) == 1
    finally:
        admin.close()


def test_admin_describe_cluster(msk_cluster: Cluster) -> None:
    admin = _admin(msk_cluster)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    ports = [int(hp.rsplit(":", 1)[1]) for hp in msk_cluster.bootstrap_servers.split(",")]
    assert cluster["brokers"] == [
        {"broker_id": 1, "host": "127.0.0.1", "port": ports[0], "rack": "use1-az1"},
        {"broker_id": 2, "host": "127.0.0.1", "port": ports[1], "rack": "use1-az2"},
        {"broker_id": 3, "host": "127.0.0.1", "port": ports[2], "rack": "use1-az4"},
    ]
    assert cluster["controller_id"] in (1, 2, 3)
    assert cluster["cluster_id"]
    # kafka-python asks for the cluster's authorized operations; with no ACLs all are allowed.
    assert {"DESCRIBE", "ALTER", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE"} <= set(
        cluster["authorized_operations"]
    )


# --- produce and consume ----------------------------------------------------------------------


def test_producer_defaults_are_idempotent(msk_cluster: Cluster, topic_name: str) -> None:
    """kafka-python 3 enables idempotence by default: its producer asks for a producer id."""
    msk_cluster.create_topic(topic_name)
    producer = _producer(msk_cluster)
    try:
        assert producer.config["enable_idempotence"] is True
        assert producer.config["acks"] == -1
        meta = producer.send(topic_name, b"v", timestamp_ms=BASE_TS).get(timeout=10)
        assert (meta.partition, meta.offset) == (0, 0)
    finally:
        producer.close(timeout=5)
    (batch,) = _stored_batches(msk_cluster, topic_name, 0)
    assert batch.producer_id >= 0  # from InitProducerId
    assert (batch.producer_epoch, batch.base_sequence) == (0, 0)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
@pytest.mark.parametrize("codec", CODECS, ids=[str(c) for c in CODECS])
def test_produce_consume_exact(
    msk_cluster: Cluster, topic_name: str, codec: str | None, idempotent: bool
) -> None:
    if not _CODEC_AVAILABLE[codec]:
        pytest.skip(f"kafka-python has no {codec} codec library installed")
    msk_cluster.create_topic(topic_name, partitions=2)
    n = 300
    sent: list[tuple[int, bytes, bytes | None, int, list[tuple[str, bytes]]]] = []
    producer = _producer(
        msk_cluster,
        compression_type=codec,
        enable_idempotence=idempotent,
        acks=-1 if idempotent else 1,
        linger_ms=1000,  # flush() sends at once; until then batches fill up
    )
    try:
        futures = []
        for i in range(n):
            partition = i % 2
            key = f"key-{i}".encode()
            value = (f"value-{i}-" * (i % 7)).encode() or None  # every 7th one a tombstone
            headers = [("h", str(i).encode()), ("empty", b"")]
            ts = BASE_TS + i
            futures.append(
                producer.send(
                    topic_name,
                    value=value,
                    key=key,
                    headers=headers,
                    partition=partition,
                    timestamp_ms=ts,
                )
            )
            sent.append((partition, key, value, ts, headers))
        producer.flush(timeout=10)
        metas = [f.get(timeout=10) for f in futures]
    finally:
        producer.close(timeout=5)
    # The broker's offsets, as acknowledged: 0..n/2-1 per partition, in send order.
    for p in (0, 1):
        assert [m.offset for m in metas if m.partition == p] == list(range(n // 2))

    consumer = _consumer(msk_cluster)
    try:
        tps = [TopicPartition(topic_name, p) for p in (0, 1)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        got = _consume(consumer, n)
        positions = [consumer.position(tp) for tp in tps]
    finally:
        consumer.close()
    assert len(got) == n
    assert positions == [n // 2, n // 2]
    # What the broker stored: the producer's batches as sent, compressed with the codec asked
    # for, stamped with a producer id and sequences only when idempotent.
    for p in (0, 1):
        batches = _stored_batches(msk_cluster, topic_name, p)
        assert [b.compression_type for b in batches] == [_CODEC_ID[codec]] * len(batches)
        assert sum(b.records_count for b in batches) == n // 2
        assert max(b.records_count for b in batches) > 1
        assert [b.base_offset for b in batches] == [0] + [b.next_offset for b in batches[:-1]]
        if idempotent:
            assert {b.producer_id for b in batches} == {batches[0].producer_id}
            assert batches[0].producer_id >= 0
            assert [b.base_sequence for b in batches] == [b.base_offset for b in batches]
        else:
            assert {(b.producer_id, b.base_sequence) for b in batches} == {(-1, -1)}
    for p in (0, 1):
        records = [r for r in got if r.partition == p]
        assert [r.offset for r in records] == list(range(n // 2))
        assert [(r.key, r.value, r.timestamp, r.timestamp_type, r.headers) for r in records] == [
            (key, value, ts, CREATE_TIME, headers)
            for partition, key, value, ts, headers in sent
            if partition == p
        ]
        assert all(r.topic == topic_name for r in records)


# --- offsets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=[str(c) for c in CODECS])
def test_offsets_for_times_then_seek(
    msk_cluster: Cluster, topic_name: str, codec: str | None
) -> None:
    """A timestamp inside a batch (compressed or not) finds the exact record."""
    if not _CODEC_AVAILABLE[codec]:
        pytest.skip(f"kafka-python has no {codec} codec library installed")
    msk_cluster.create_topic(topic_name)
    tp = TopicPartition(topic_name, 0)
    producer = _producer(msk_cluster, compression_type=codec, linger_ms=1000)
    try:
        for i in range(100):
            producer.send(topic_name, value=b"%d" % i, partition=0, timestamp_ms=BASE_TS + 1000 * i)
            if i % 10 == 9:
                producer.flush(timeout=10)  # one batch of ten: the lookup crosses batches
    finally:
        producer.close(timeout=5)
    batches = _stored_batches(msk_cluster, topic_name, 0)
    assert [(b.base_offset, b.records_count) for b in batches] == [
        (i, 10) for i in range(0, 100, 10)
    ]

    consumer = _consumer(msk_cluster)
    try:
        found = consumer.offsets_for_times({tp: BASE_TS + 42_500})[tp]
        assert (found.offset, found.timestamp) == (43, BASE_TS + 43_000)
        exact = consumer.offsets_for_times({tp: BASE_TS + 50_000})[tp]
        assert (exact.offset, exact.timestamp) == (50, BASE_TS + 50_000)
        first = consumer.offsets_for_times({tp: 0})[tp]
        assert (first.offset, first.timestamp) == (0, BASE_TS)
        assert consumer.offsets_for_times({tp: BASE_TS + 10**9})[tp] is None  # none that late

        consumer.assign([tp])
        consumer.seek(tp, found.offset)
        (record, *_) = _consume(consumer, 1)
    finally:
        consumer.close()
    assert (record.offset, record.value, record.timestamp) == (43, b"43", BASE_TS + 43_000)


def test_beginning_and_end_offsets(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=3)
    tps = [TopicPartition(topic_name, p) for p in range(3)]
    counts = {0: 5, 1: 0, 2: 7}
    producer = _producer(msk_cluster)
    try:
        for p, count in counts.items():
            for i in range(count):
                producer.send(topic_name, value=b"x%d" % i, partition=p)
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)

    consumer = _consumer(msk_cluster)
    try:
        assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert consumer.end_offsets(tps) == {tp: counts[tp.partition] for tp in tps}
    finally:
        consumer.close()


@pytest.mark.parametrize("reset", ["earliest", "none"])
def test_fetch_out_of_range_offset(msk_cluster: Cluster, topic_name: str, reset: str) -> None:
    """A fetch past the end gets OFFSET_OUT_OF_RANGE: the consumer resets, or raises with 'none'."""
    msk_cluster.create_topic(topic_name)
    tp = TopicPartition(topic_name, 0)
    producer = _producer(msk_cluster)
    try:
        for i in range(3):
            producer.send(topic_name, value=b"%d" % i, partition=0)
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)
    consumer = _consumer(msk_cluster, auto_offset_reset=reset)
    try:
        consumer.assign([tp])
        consumer.seek(tp, 100)
        if reset == "none":
            with pytest.raises(OffsetOutOfRangeError):
                _consume(consumer, 1)
        else:
            assert [(r.offset, r.value) for r in _consume(consumer, 3)] == [
                (0, b"0"),
                (1, b"1"),
                (2, b"2"),
            ]
    finally:
        consumer.close()


# --- long poll --------------------------------------------------------------------------------


def test_consume_from_latest_long_poll(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    tp = TopicPartition(topic_name, 0)
    max_wait_ms = 10_000
    producer = _producer(msk_cluster)
    consumer = _consumer(msk_cluster, fetch_max_wait_ms=max_wait_ms)
    try:
        producer.send(topic_name, value=b"old", partition=0).get(timeout=10)
        consumer.assign([tp])
        consumer.seek_to_end(tp)
        # Poll until the consumer's fetch is parked in the broker's purgatory.
        deadline = time.monotonic() + 10
        while msk_cluster.waiting_fetches() == 0:
            assert consumer.poll(timeout_ms=50) == {}
            assert time.monotonic() < deadline, "no fetch ever parked in the broker"
        assert consumer.position(tp) == 1

        started = time.monotonic()
        meta = producer.send(topic_name, value=b"new", partition=0).get(timeout=10)
        assert meta.offset == 1
        got = _consume(consumer, 1)
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
        producer.close(timeout=5)
    assert [(r.offset, r.value) for r in got] == [(1, b"new")]
    # The parked fetch was woken by the append, not by max_wait_ms running out.
    assert elapsed < max_wait_ms / 1000 / 2
