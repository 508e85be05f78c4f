"""confluent-kafka (librdkafka 2.16) against msklite over TCP."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from msklite import Cluster

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def _consume(consumer: Consumer, n: int, timeout: float = 15.0) -> list[Message]:
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        out.append(msg)
    return out


def _consumer(cluster: Cluster, **extra: object) -> Consumer:
    conf = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "group.id": "unused",
        "enable.auto.commit": False,
    }
    conf.update(extra)
    return Consumer(conf)


def test_admin_create_describe_delete(msk_cluster: Cluster, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    futures = admin.create_topics([NewTopic(topic_name, 3, 1, config={"retention.ms": "1234567"})])
    futures[topic_name].result(10)
    md = admin.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 3
    leaders = {p.leader for p in md.topics[topic_name].partitions.values()}
    assert leaders == {1, 2, 3}  # spread over the three brokers

    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = admin.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "1234567"
    assert configs["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert configs["unclean.leader.election.enable"].value == "true"  # MSK default
    assert configs["max.message.bytes"].value == "1048588"

    admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(10)
    assert len(admin.list_topics(timeout=10).topics[topic_name].partitions) == 5

    again = admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name]
    with pytest.raises(KafkaException) as exc:
        again.result(10)
    assert exc.value.args[0].name() == "TOPIC_ALREADY_EXISTS"

    admin.delete_topics([topic_name])[topic_name].result(10)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_replication_factor_beyond_the_brokers_is_refused(
    msk_cluster: Cluster, topic_name: str
) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    with pytest.raises(KafkaException) as exc:
        admin.create_topics([NewTopic(topic_name, 1, 4)])[topic_name].result(10)
    assert exc.value.args[0].name() == "INVALID_REPLICATION_FACTOR"


def test_default_topic_follows_msk_replication_defaults(
    msk_cluster: Cluster, topic_name: str
) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    admin.create_topics([NewTopic(topic_name, 3)])[topic_name].result(10)
    md = admin.list_topics(topic_name, timeout=10).topics[topic_name]
    for p in md.partitions.values():
        assert len(p.replicas) == 3 and sorted(p.isrs) == [1, 2, 3]
    assert {p.leader for p in md.partitions.values()} == {1, 2, 3}
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    assert admin.describe_configs([res])[res].result(10)["min.insync.replicas"].value == "2"


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_exact(msk_cluster: Cluster, topic_name: str, codec: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    producer = Producer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "enable.idempotence": True,
            "compression.type": codec,
            "linger.ms": 5,
        }
    )
    sent = []
    for i in range(500):
        key = f"key-{i}".encode()
        value = (f"value-{i}-" * (i % 7)).encode() or None
        ts = 1_700_000_000_000 + i
        producer.produce(
            topic_name,
            key=key,
            value=value,
            partition=i % 2,
            timestamp=ts,
            headers=[("h", f"{i}".encode()), ("empty", None)],
        )
        sent.append((i % 2, key, value, ts))
    assert producer.flush(15) == 0

    consumer = _consumer(msk_cluster)
    consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in (0, 1)])
    got = _consume(consumer, 500)
    consumer.close()
    assert len(got) == 500
    by_partition: dict[int, list[Message]] = {0: [], 1: []}
    for m in got:
        by_partition[m.partition() or 0].append(m)
    for p, msgs in by_partition.items():
        assert [m.offset() for m in msgs] == list(range(250))
        expected = [s for s in sent if s[0] == p]
        assert [(m.key(), m.value(), m.timestamp()[1]) for m in msgs] == [
            (k, v, ts) for _, k, v, ts in expected
        ]
        i0 = int((msgs[0].key() or b"").split(b"-")[1])
        assert msgs[0].headers() == [("h", str(i0).encode()), ("empty", None)]


def test_consume_from_latest_long_poll(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    producer = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers})
    producer.produce(topic_name, value=b"old")
    producer.flush(10)
    consumer = _consumer(msk_cluster, **{"fetch.wait.max.ms": 5000})
    consumer.assign([TopicPartition(topic_name, 0, OFFSET_END)])
    # Wait until the consumer's fetch is parked in the broker's purgatory, then produce: the
    # parked fetch must be woken by the append.
    deadline = time.monotonic() + 10
    while msk_cluster.waiting_fetches() == 0:
        assert consumer.poll(0.05) is None
        assert time.monotonic() < deadline
    producer.produce(topic_name, value=b"new")
    producer.flush(10)
    got = _consume(consumer, 1)
    consumer.close()
    assert [(m.offset(), m.value()) for m in got] == [(1, b"new")]


def test_offsets_for_times(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name)
    producer = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers, "linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(100):
        producer.produce(topic_name, value=b"%d" % i, timestamp=base + 1000 * i)
        if i % 10 == 9:
            producer.flush(10)  # several batches, so the lookup crosses batches
    producer.flush(10)
    consumer = _consumer(msk_cluster)
    found = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 42_500)], timeout=10)
    assert found[0].offset == 43
    after_end = consumer.offsets_for_times(
        [TopicPartition(topic_name, 0, base + 10**9)], timeout=10
    )
    assert after_end[0].offset == -1  # none: librdkafka reports OFFSET_END (-1)
    low, high = consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
    assert (low, high) == (0, 100)
    consumer.assign([TopicPartition(topic_name, 0, 43)])
    got = _consume(consumer, 1)
    consumer.close()
    assert got[0].value() == b"43" and got[0].timestamp()[1] == base + 43_000


def test_timestamp_delta_beyond_35_bits(msk_cluster: Cluster, topic_name: str) -> None:
    """Two records 2^40 ms apart in one batch: the second's timestamp delta is a varlong that a
    35-bit varint reader refuses. Produce, look it up by time, and read it back."""
    from msklite.protocol.records import iter_records, read_header
    from tests.integration.helpers import leader_segments

    msk_cluster.create_topic(topic_name)
    producer = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers, "linger.ms": 200})
    base = 1_700_000_000_000
    far = base + 2**40
    errors: list[object] = []
    for ts, value in ((base, b"now"), (far, b"far")):
        producer.produce(
            topic_name, value=value, timestamp=ts, on_delivery=lambda e, _: errors.append(e)
        )
    assert producer.flush(10) == 0
    assert errors == [None, None]
    [log] = leader_segments(msk_cluster, topic_name, 0)
    assert read_header(log).records_count == 2  # one batch: the delta is really 2^40
    assert [r.timestamp for r in iter_records(log)] == [base, far]
    consumer = _consumer(msk_cluster)
    found = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 1)], timeout=10)
    assert found[0].offset == 1
    consumer.assign([TopicPartition(topic_name, 0, OFFSET_BEGINNING)])
    got = _consume(consumer, 2)
    consumer.close()
    assert [(m.value(), m.timestamp()[1]) for m in got] == [(b"now", base), (b"far", far)]
