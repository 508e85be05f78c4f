"""Online migration between the classic and the consumer group protocol (KIP-848's
`group.consumer.migration.policy`, bidirectional from Kafka 4.0) with real clients: a group of
confluent-kafka classic consumers rolled one by one to `group.protocol=consumer` and back,
consuming throughout with nothing lost and nothing read twice that was committed; aiokafka
(classic only) joining a consumer group in use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, ConsumerGroupType, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from msklite import Cluster

DEADLINE_S = 45.0
pytestmark = pytest.mark.msk(
    kafka_version="4.1.x",
    config={"group.consumer.heartbeat.interval.ms": 300, "offsets.topic.num.partitions": 5},
)


class Reader:
    """A confluent-kafka consumer of either protocol that commits each record as it reads it
    (synchronously), remembering the records whose commit failed: those alone may be read
    again by the partition's next owner (at-least-once)."""

    def __init__(self, cluster: Cluster, group: str, protocol: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": group,
                "group.protocol": protocol,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 300,
            }
            if protocol == "classic"
            else {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": group,
                "group.protocol": protocol,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.records: list[tuple[int, int]] = []
        self.uncommitted: set[tuple[int, int]] = set()
        self.errors: list[str] = []

    def poll(self) -> None:
        msg = self.consumer.poll(0.05)
        if msg is None:
            return
        if msg.error() is not None:
            self.errors.append(str(msg.error()))
            return
        record = (msg.partition() or 0, msg.offset() or 0)
        self.records.append(record)
        try:
            self.consumer.commit(message=msg, asynchronous=False)
        except KafkaException:
            self.uncommitted.add(record)  # e.g. REBALANCE_IN_PROGRESS while it rejoins

    def owned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}


def _produce(cluster: Cluster, topic: str, partitions: int, per_partition: int) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(partitions * per_partition):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert p.flush(10) == 0


def _poll_until(readers: list[Reader], done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        for r in readers:
            r.poll()


def _group_type(cluster: Cluster, group: str) -> ConsumerGroupType:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    listed = admin.list_consumer_groups().result()
    found: ConsumerGroupType = next(g.type for g in listed.valid if g.group_id == group)
    return found


def _committed(cluster: Cluster, group: str, topic: str, partitions: int) -> list[int]:
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        c.close()


def test_rolling_upgrade_to_the_consumer_protocol_and_back(
    msk_cluster: Cluster, topic_name: str
) -> None:
    n = 4
    msk_cluster.create_topic(topic_name, partitions=n)
    readers: list[Reader] = []
    produced = 0

    def phase(live: list[Reader]) -> None:
        """Produce 5 records per partition and wait until every partition is owned by a live
        reader and every record produced so far has been read."""
        nonlocal produced
        _produce(msk_cluster, topic_name, n, 5)
        produced += 5
        everything = {(p, o) for p in range(n) for o in range(produced)}
        _poll_until(
            live,
            lambda: (
                set().union(*(r.owned() for r in live)) == set(range(n))
                and {rec for r in readers for rec in r.records} >= everything
            ),
        )

    def roll(old: Reader, protocol: str, live: list[Reader]) -> Reader:
        old.consumer.close()  # LeaveGroup (classic) or a heartbeat with epoch -1
        live.remove(old)
        new = Reader(msk_cluster, topic_name, protocol)
        new.consumer.subscribe([topic_name])
        readers.append(new)
        live.append(new)
        phase(live)
        return new

    live = [Reader(msk_cluster, topic_name, "classic") for _ in range(2)]
    readers.extend(live)
    for r in live:
        r.consumer.subscribe([topic_name])
    phase(live)
    assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CLASSIC

    # the upgrade: the first consumer-protocol member converts the group in use
    first = roll(live[0], "consumer", live)
    assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CONSUMER
    assert first.owned() and live[0].owned()  # the classic member keeps working beside it
    second = roll(live[0], "consumer", live)
    assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CONSUMER
    # the downgrade: classic members join the consumer group, and when the last
    # consumer-protocol member leaves the group is classic again
    roll(first, "classic", live)
    assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CONSUMER
    roll(second, "classic", live)
    assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CLASSIC

    consumed = [rec for r in readers for rec in r.records]
    assert set(consumed) == {(p, o) for p in range(n) for o in range(produced)}
    twice = {rec for rec in consumed if consumed.count(rec) > 1}
    assert twice <= {rec for r in readers for rec in r.uncommitted}
    assert [e for r in readers for e in r.errors] == []
    for r in live:
        r.consumer.close()
    # the offsets survived every conversion
    assert _committed(msk_cluster, topic_name, topic_name, n) == [produced] * n


async def test_aiokafka_joins_a_consumer_group_in_use(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    _produce(msk_cluster, topic_name, 2, 5)
    modern = Reader(msk_cluster, topic_name, "consumer")
    modern.consumer.subscribe([topic_name])
    aio = AIOKafkaConsumer(
        topic_name,
        bootstrap_servers=msk_cluster.bootstrap_servers,
        group_id=topic_name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:

        async def until(done: Callable[[], bool]) -> None:
            deadline = time.monotonic() + DEADLINE_S
            while not done():
                assert time.monotonic() < deadline, "condition not reached before the deadline"
                await asyncio.to_thread(modern.poll)
                await asyncio.sleep(0)

        await until(lambda: len(modern.records) == 10)
        assert modern.owned() == {0, 1}
        assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CONSUMER

        await aio.start()
        got: list[tuple[int, int]] = []

        async def read() -> None:
            while True:
                batches = await aio.getmany(timeout_ms=100)
                for tp, msgs in batches.items():
                    got.extend((tp.partition, m.offset) for m in msgs)
                if batches:
                    await aio.commit()

        reading = asyncio.ensure_future(read())
        try:
            await until(lambda: len(modern.owned()) == 1 and len(aio.assignment()) == 1)
            mine = next(iter(aio.assignment())).partition
            assert modern.owned() == {1 - mine}
            # the group stays a consumer group with one member of each protocol
            assert _group_type(msk_cluster, topic_name) == ConsumerGroupType.CONSUMER
            _produce(msk_cluster, topic_name, 2, 1)
            await until(lambda: (mine, 5) in got and (1 - mine, 5) in modern.records)
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
    finally:
        await aio.stop()
        modern.consumer.close()
    # aiokafka's own partition had been committed by the consumer-protocol member before
    assert [o for p, o in got if p == mine] == [5]
