"""Log compaction over TCP: a compacted topic read from offset 0 by confluent-kafka, aiokafka
and kafka-python shows the last value per key at its original offset, with gaps, on every
replica; the cleaner also runs by itself in the background; __consumer_offsets and
__transaction_state are compacted and reload after a restart."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from msklite import Cluster
from msklite.topic_partition import TopicPartition as MsTopicPartition
from tests.integration.helpers import wait_until

Rec = tuple[int, bytes | None, bytes | None]
KEYS = 10
N = 300


def _produce(cluster: Cluster, topic: str, compression: str = "none") -> list[Rec]:
    produced: list[Rec] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        produced.append((msg.offset() or 0, msg.key(), msg.value()))

    p = Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "linger.ms": 5,
            "batch.num.messages": 5,  # many batches: many segments, most of them cleanable
            "compression.type": compression,
        }
    )
    for i in range(N):
        key = b"k%d" % (i % KEYS)
        value = None if i == N - KEYS else b"%s=%d" % (key, i) + b"." * 100
        p.produce(topic, key=key, value=value, on_delivery=delivered)
    assert p.flush(30) == 0
    return sorted(produced)


def _expected(produced: list[Rec], covered: int) -> list[Rec]:
    """What a compacted log holds when the cleaner covered offsets below `covered`: the last
    record of each key there (a tombstone too: its delete horizon has not passed), and all
    after."""
    last: dict[bytes | None, Rec] = {}
    for rec in produced:
        if rec[0] < covered:
            last[rec[1]] = rec
    return sorted(last.values()) + [r for r in produced if r[0] >= covered]


def _create(cluster: Cluster, topic: str) -> None:
    cluster.create_topic(
        topic,
        configs={
            "cleanup.policy": "compact",
            "segment.bytes": "4096",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )


def _covered(cluster: Cluster, topic: str) -> list[int]:
    tp = MsTopicPartition(topic, 0)
    return [b.cleaner.checkpoints.get(tp, 0) for b in cluster.brokers.values()]


def _confluent_read(cluster: Cluster, topic: str, until: int) -> list[Rec]:
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "g",
            "enable.auto.commit": False,
        }
    )
    got: list[Rec] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        while not got or got[-1][0] < until - 1:
            msg = c.poll(10)
            assert msg is not None, f"confluent read up to {got[-1:] or None}"
            assert msg.error() is None, msg.error()
            got.append((msg.offset() or 0, msg.key(), msg.value()))
    finally:
        c.close()
    return got


def test_clients_read_the_compacted_view_with_offset_gaps(msk_cluster: Cluster) -> None:
    _create(msk_cluster, "compacted")
    produced = _produce(msk_cluster, "compacted")
    sizes = [
        b.logs.logs[MsTopicPartition("compacted", 0)].size_in_bytes()
        for b in msk_cluster.brokers.values()
    ]
    assert msk_cluster.clean_logs() >= 3  # each replica compacts its own log
    covered = _covered(msk_cluster, "compacted")
    assert len(set(covered)) == 1 and covered[0] > N // 2
    after = [
        b.logs.logs[MsTopicPartition("compacted", 0)].size_in_bytes()
        for b in msk_cluster.brokers.values()
    ]
    assert all(a < s / 2 for a, s in zip(after, sizes, strict=True))
    expected = _expected(produced, covered[0])
    assert len(expected) < N // 2

    got = _confluent_read(msk_cluster, "compacted", N)
    assert got == expected
    assert got[0][0] > 0  # offset gaps: the first records are gone, the rest kept their offsets


async def test_aiokafka_and_kafka_python_read_the_compacted_view(msk_cluster: Cluster) -> None:
    _create(msk_cluster, "compacted-zstd")
    produced = _produce(msk_cluster, "compacted-zstd", "zstd")
    assert msk_cluster.clean_logs() >= 3
    expected = _expected(produced, _covered(msk_cluster, "compacted-zstd")[0])

    consumer = AIOKafkaConsumer(
        bootstrap_servers=msk_cluster.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = AioTopicPartition("compacted-zstd", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got: list[Rec] = []
        while not got or got[-1][0] < N - 1:
            batch = await consumer.getmany(tp, timeout_ms=5000)
            assert batch, f"aiokafka read up to {got[-1:] or None}"
            got += [(r.offset, r.key, r.value) for r in batch[tp]]
    finally:
        await consumer.stop()
    assert got == expected

    kp = KafkaConsumer(
        bootstrap_servers=msk_cluster.bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    try:
        ktp = KpTopicPartition("compacted-zstd", 0)
        kp.assign([ktp])
        kp.seek(ktp, 0)
        read = [(r.offset, r.key, r.value) for _, r in zip(range(len(expected)), kp, strict=False)]
    finally:
        kp.close()
    assert read == expected


def test_the_background_cleaner_compacts_without_being_asked() -> None:
    with Cluster(brokers=1, config={"log.cleaner.backoff.ms": 50}) as cluster:
        _create(cluster, "bg")
        produced = _produce(cluster, "bg")
        wait_until(lambda: _covered(cluster, "bg")[0] > N // 2, "the cleaner ran")
        expected = _expected(produced, _covered(cluster, "bg")[0])
        assert _confluent_read(cluster, "bg", N) == expected


def test_log_cleaner_enable_false_keeps_every_record() -> None:
    config = {"log.cleaner.enable": False, "log.cleaner.backoff.ms": 10}
    with Cluster(brokers=1, config=config) as cluster:
        _create(cluster, "kept")
        produced = _produce(cluster, "kept")
        broker = next(iter(cluster.brokers.values()))
        assert broker.cleaner.filthiest() is not None  # it would be cleaned if enabled
        time.sleep(0.2)  # twenty backoffs: nothing to await, the cleaner must stay idle
        assert _confluent_read(cluster, "kept", N) == produced


def test_consumer_offsets_is_compacted_and_reloads(tmp_path: object) -> None:
    config = {"offsets.topic.segment.bytes": 2048, "offsets.topic.num.partitions": 1}
    data_dir = str(tmp_path)
    offsets_tp = MsTopicPartition("__consumer_offsets", 0)
    with Cluster(brokers=1, data_dir=data_dir, config=config) as cluster:
        cluster.create_topic("in")
        c = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": "compacted-group",
                "enable.auto.commit": False,
            }
        )
        try:
            for i in range(200):
                c.commit(offsets=[TopicPartition("in", 0, i)], asynchronous=False)
        finally:
            c.close()
        broker = next(iter(cluster.brokers.values()))
        before = broker.logs.logs[offsets_tp].size_in_bytes()
        assert cluster.clean_logs() >= 1
        assert broker.logs.logs[offsets_tp].size_in_bytes() < before / 4
    with Cluster(brokers=1, data_dir=data_dir, config=config) as cluster:
        c = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": "compacted-group",
                "enable.auto.commit": False,
            }
        )
        try:
            [tp] = c.committed([TopicPartition("in", 0)], timeout=10)
        finally:
            c.close()
        assert tp.offset == 199  # the last commit, loaded from the compacted log


def test_transaction_state_is_compacted_and_reloads(tmp_path: object) -> None:
    config = {
        "transaction.state.log.segment.bytes": 2048,
        "transaction.state.log.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
    }
    data_dir = str(tmp_path)
    state_tp = MsTopicPartition("__transaction_state", 0)
    with Cluster(brokers=1, data_dir=data_dir, config=config) as cluster:
        cluster.create_topic("out", replication_factor=1, configs={"min.insync.replicas": "1"})
        p = Producer(
            {"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": "compacted-txn"}
        )
        p.init_transactions(10)
        for i in range(40):
            p.begin_transaction()
            p.produce("out", key=b"k", value=b"%d" % i)
            p.commit_transaction(10)
        broker = next(iter(cluster.brokers.values()))
        before = broker.logs.logs[state_tp].size_in_bytes()
        assert cluster.clean_logs() >= 1
        assert broker.logs.logs[state_tp].size_in_bytes() < before / 4
        del p
    with Cluster(brokers=1, data_dir=data_dir, config=config) as cluster:
        # the coordinator reloads the transactional id from the compacted log: a new
        # producer with the same id fences the old epoch and commits
        p = Producer(
            {"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": "compacted-txn"}
        )
        p.init_transactions(10)
        p.begin_transaction()
        p.produce("out", key=b"k", value=b"after")
        p.commit_transaction(10)
        c = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": "reader",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        try:
            c.assign([TopicPartition("out", 0, 0)])
            values: list[bytes | None] = []
            while not values or values[-1] != b"after":
                msg = c.poll(10)
                assert msg is not None and msg.error() is None
                values.append(msg.value())
        finally:
            c.close()
        assert values == [b"%d" % i for i in range(40)] + [b"after"]
