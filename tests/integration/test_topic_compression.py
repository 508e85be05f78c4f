"""A topic's compression.type and message.timestamp.type=LogAppendTime over TCP: every
producer codec into every topic codec, stored with the topic's codec and a valid CRC, and read
back exactly by confluent-kafka, aiokafka and kafka-python."""

from __future__ import annotations

import time
from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from msklite import Cluster
from msklite.protocol.records import (
    COMPRESSION_MASK,
    HEADER_SIZE,
    MAGIC_OFFSET,
    encode_batch,
    read_header,
    scan_valid_prefix,
)
from tests.integration.helpers import leader_segments
from tests.integration.rawclient import RawClient
from tests.requests import produce_request

PRODUCER_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
TOPIC_CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PER_CODEC = 30
Read = tuple[bytes, bytes, list[tuple[str, bytes]], int, int]  # key, value, headers, ts type, ts


def _expected(
    codecs: list[str] = PRODUCER_CODECS,
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """What was produced, in key order (the producers run side by side)."""
    return sorted(
        (f"{codec}-{i}".encode(), (f"value {i} " * (i % 9 + 1)).encode(), [("h", codec.encode())])
        for codec in codecs
        for i in range(PER_CODEC)
    )


def _produce_every_codec(cluster: Cluster, topic: str, codecs: list[str] = PRODUCER_CODECS) -> None:
    """PER_CODEC records from one producer per codec, all producers at once."""
    producers = {
        codec: Producer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "compression.type": codec,
                "linger.ms": 5,
                "enable.idempotence": True,
            }
        )
        for codec in codecs
    }
    for codec, p in producers.items():
        for i in range(PER_CODEC):
            key = f"{codec}-{i}".encode()
            value = (f"value {i} " * (i % 9 + 1)).encode()
            p.produce(topic, key=key, value=value, headers=[("h", codec.encode())])
    for p in producers.values():
        assert p.flush(15) == 0


def _stored_batches(cluster: Cluster, topic: str) -> list[tuple[int, int]]:
    """(codec, attributes) of every stored batch; every one must pass its CRC check."""
    out = []
    for data in leader_segments(cluster, topic, 0):
        batches = list(scan_valid_prefix(data, 0, len(data)))
        assert sum(h.size for _, h in batches) == len(data)  # all of it is valid
        out += [(h.attributes & COMPRESSION_MASK, h.attributes) for _, h in batches]
    return out


def _confluent_read(cluster: Cluster, topic: str, n: int) -> list[Read]:
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[Read] = []
    deadline = time.monotonic() + 15
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            ts_type, ts = m.timestamp()
            headers = [(str(h[0]), cast(bytes, h[1])) for h in m.headers() or []]
            out.append((cast(bytes, m.key()), cast(bytes, m.value()), headers, ts_type, ts))
    finally:
        c.close()
    return out


@pytest.mark.parametrize("topic_codec", list(TOPIC_CODECS))
def test_every_producer_codec_into_every_topic_codec(
    msk_cluster: Cluster, topic_codec: str
) -> None:
    topic = f"compressed-{topic_codec}"
    msk_cluster.create_topic(
        topic,
        replication_factor=1,
        configs={"compression.type": topic_codec, "min.insync.replicas": "1"},
    )
    _produce_every_codec(msk_cluster, topic)
    stored = _stored_batches(msk_cluster, topic)
    assert stored and {codec for codec, _ in stored} == {TOPIC_CODECS[topic_codec]}
    got = _confluent_read(msk_cluster, topic, len(_expected()))
    assert sorted((k, v, h) for k, v, h, _, _ in got) == _expected()


async def test_aiokafka_and_kafka_python_read_recompressed_batches(msk_cluster: Cluster) -> None:
    expected = _expected(["none"])
    for topic_codec in TOPIC_CODECS:
        topic = f"read-{topic_codec}"
        msk_cluster.create_topic(
            topic,
            replication_factor=1,
            configs={"compression.type": topic_codec, "min.insync.replicas": "1"},
        )
        _produce_every_codec(msk_cluster, topic, ["none"])

        consumer = AIOKafkaConsumer(
            bootstrap_servers=msk_cluster.bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tp = AioTopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got: list[tuple[bytes | None, bytes | None]] = []
            while len(got) < len(expected):
                batch = await consumer.getmany(tp, timeout_ms=5000)
                assert batch, f"aiokafka read {len(got)} of {len(expected)} from {topic}"
                got += [(r.key, r.value) for r in batch[tp]]
        finally:
            await consumer.stop()
        assert sorted(got) == [(k, v) for k, v, _ in expected]

        kp = KafkaConsumer(
            bootstrap_servers=msk_cluster.bootstrap_servers,
            enable_auto_commit=False,
            consumer_timeout_ms=5000,
        )
        try:
            ktp = KpTopicPartition(topic, 0)
            kp.assign([ktp])
            kp.seek(ktp, 0)
            read = [(r.key, r.value) for _, r in zip(range(len(expected)), kp, strict=False)]
        finally:
            kp.close()
        assert sorted(read) == [(k, v) for k, v, _ in expected]


@pytest.mark.parametrize("topic_codec", ["producer", "zstd"])
def test_log_append_time_with_every_codec(msk_cluster: Cluster, topic_codec: str) -> None:
    topic = f"append-time-{topic_codec}"
    msk_cluster.create_topic(
        topic,
        replication_factor=1,
        configs={
            "message.timestamp.type": "LogAppendTime",
            "compression.type": topic_codec,
            "min.insync.replicas": "1",
        },
    )
    before = int(time.time() * 1000)
    _produce_every_codec(msk_cluster, topic)
    after = int(time.time() * 1000)
    stored = _stored_batches(msk_cluster, topic)
    assert all(attributes & 0x08 for _, attributes in stored)  # the timestamp type bit
    if topic_codec == "zstd":
        assert {codec for codec, _ in stored} == {4}
    got = _confluent_read(msk_cluster, topic, len(_expected()))
    assert sorted((k, v, h) for k, v, h, _, _ in got) == _expected()
    for *_, ts_type, ts in got:
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before <= ts <= after


def test_no_recompression_when_the_codecs_agree(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic(
        "same-codec", replication_factor=1, configs={"compression.type": "gzip"}
    )
    sent = encode_batch([(b"k", b"v" * 100)] * 5, codec=1, timestamp=int(time.time() * 1000))
    leader = msk_cluster.partition("same-codec", 0).leader
    b = msk_cluster.brokers[leader].info
    with RawClient(f"{b.host}:{b.port}") as c:
        [t] = c.request(produce_request("same-codec", {0: sent}), 9).responses
    assert [p.error_code for p in t.partition_responses] == [0]
    [stored] = leader_segments(msk_cluster, "same-codec", 0)
    # byte for byte as sent, past the base offset, length and leader epoch
    assert stored[MAGIC_OFFSET:] == sent[MAGIC_OFFSET:]
    assert read_header(stored).size == len(sent) and len(stored) > HEADER_SIZE


def test_a_recompressed_batch_over_max_message_bytes_is_refused(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic(
        "grows",
        replication_factor=1,
        configs={"compression.type": "uncompressed", "max.message.bytes": "2000"},
    )
    sent = encode_batch([(b"k", b"a" * 10_000)], codec=4, timestamp=int(time.time() * 1000))
    assert len(sent) < 2000
    leader = msk_cluster.partition("grows", 0).leader
    b = msk_cluster.brokers[leader].info
    with RawClient(f"{b.host}:{b.port}") as c:
        [t] = c.request(produce_request("grows", {0: sent}), 9).responses
    [p] = t.partition_responses
    assert p.error_code == 10  # MESSAGE_TOO_LARGE
    assert "exceeds the maximum configured size of 2000" in p.error_message


def test_deprecated_timestamp_difference_still_bounds_create_time(msk_cluster: Cluster) -> None:
    # MSK lets a configuration set log.message.timestamp.difference.max.ms; Kafka 3.9 still
    # applies it when .before/.after.max.ms are unset.
    msk_cluster.create_topic(
        "bounded",
        replication_factor=1,
        configs={"message.timestamp.difference.max.ms": "60000", "min.insync.replicas": "1"},
    )
    p = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers, "retries": 0})
    errors: list[str | None] = []
    now = int(time.time() * 1000)
    for ts in (now, now - 3_600_000, now + 3_600_000):
        p.produce(
            "bounded",
            value=b"v",
            timestamp=ts,
            on_delivery=lambda err, _m: errors.append(err.name() if err else None),
        )
        assert p.flush(15) == 0
    assert errors == [None, "INVALID_TIMESTAMP", "INVALID_TIMESTAMP"]
