"""Consumer groups with the pure-Python clients: aiokafka and kafka-python groups with their
default assignors share partitions, commit and resume; kafka-python's KafkaAdminClient lists,
describes, reads, alters and deletes group offsets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata as AioOffsetAndMetadata
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import NoError
from kafka.structs import OffsetAndMetadata

from msklite import Cluster

DEADLINE_S = 30.0


# ---- aiokafka ----


async def _aio_produce(cluster: Cluster, topic: str, partitions: int, per_partition: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
    await producer.start()
    try:
        for i in range(partitions * per_partition):
            await producer.send_and_wait(topic, b"%d" % i, partition=i % partitions)
    finally:
        await producer.stop()


def _aio_consumer(cluster: Cluster, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def test_aiokafka_group_shares_commits_and_resumes(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=4)
    await _aio_produce(msk_cluster, topic_name, 4, 5)
    a = _aio_consumer(msk_cluster, topic_name, "aio-g")
    b = _aio_consumer(msk_cluster, topic_name, "aio-g")
    await a.start()
    await b.start()
    try:
        consumed: dict[int, list[int]] = {}

        async def drain(c: AIOKafkaConsumer) -> None:
            while sum(len(v) for v in consumed.values()) < 20:
                batches = await c.getmany(timeout_ms=100)
                for tp, records in batches.items():
                    consumed.setdefault(tp.partition, []).extend(r.offset for r in records)

        await asyncio.wait_for(asyncio.gather(drain(a), drain(b)), DEADLINE_S)
        owned = [{tp.partition for tp in c.assignment()} for c in (a, b)]
        assert owned[0] and owned[1] and owned[0] | owned[1] == {0, 1, 2, 3}
        assert not owned[0] & owned[1]
        assert {p: sorted(v) for p, v in consumed.items()} == {p: list(range(5)) for p in range(4)}
        # commit 3 of the 5 records of each partition, each member for its own partitions
        for c, mine in ((a, owned[0]), (b, owned[1])):
            await c.commit(
                {AioTopicPartition(topic_name, p): AioOffsetAndMetadata(3, "") for p in mine}
            )
    finally:
        await a.stop()
        await b.stop()

    c = _aio_consumer(msk_cluster, topic_name, "aio-g")
    await c.start()
    try:
        resumed: dict[int, list[int]] = {}
        deadline = time.monotonic() + DEADLINE_S
        while sum(len(v) for v in resumed.values()) < 8:
            assert time.monotonic() < deadline
            for tp, records in (await c.getmany(timeout_ms=100)).items():
                resumed.setdefault(tp.partition, []).extend(r.offset for r in records)
        assert {p: sorted(v) for p, v in resumed.items()} == {p: [3, 4] for p in range(4)}
        assert await c.committed(AioTopicPartition(topic_name, 0)) == 3
    finally:
        await c.stop()


# ---- kafka-python ----


def _kp_consumer(cluster: Cluster, topic: str, group: str, **extra: Any) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **extra,
    )
    # Fetch the topic's metadata before joining. Otherwise, with the fixture's 100 ms initial
    # rebalance delay, kafka-python's leader may assign before its own metadata request has
    # returned ("No partition metadata for topic"), assign nothing, and only rejoin after the
    # next metadata refresh (metadata.max.age.ms, 5 min). A client race Kafka's 3 s default
    # delay hides.
    assert consumer.partitions_for_topic(topic)
    consumer.subscribe([topic])
    return consumer


def _kp_produce(cluster: Cluster, topic: str, partitions: int, per_partition: int) -> None:
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers)
    for i in range(partitions * per_partition):
        producer.send(topic, b"%d" % i, partition=i % partitions)
    producer.flush(10)
    producer.close()


def _kp_poll(consumers: list[KafkaConsumer], n: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    deadline = time.monotonic() + DEADLINE_S
    while sum(len(v) for v in out.values()) < n:
        assert time.monotonic() < deadline
        for c in consumers:
            for tp, records in c.poll(timeout_ms=50).items():
                out.setdefault(tp.partition, []).extend(r.offset for r in records)
    return out


def test_kafka_python_group_commits_and_resumes(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=3)
    _kp_produce(msk_cluster, topic_name, 3, 4)
    c = _kp_consumer(msk_cluster, topic_name, "kp-g")
    got = _kp_poll([c], 12)
    assert {p: sorted(v) for p, v in got.items()} == {p: list(range(4)) for p in range(3)}
    c.commit({TopicPartition(topic_name, p): OffsetAndMetadata(2, "", -1) for p in range(3)})
    assert c.committed(TopicPartition(topic_name, 1)) == 2
    c.close()

    again = _kp_consumer(msk_cluster, topic_name, "kp-g")
    got = _kp_poll([again], 6)
    assert {p: sorted(v) for p, v in got.items()} == {p: [2, 3] for p in range(3)}
    again.close()


def test_kafka_python_admin_groups(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    _kp_produce(msk_cluster, topic_name, 2, 3)
    admin = KafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    c = _kp_consumer(msk_cluster, topic_name, "kp-admin", client_id="kp-client")
    _kp_poll([c], 6)
    c.commit({TopicPartition(topic_name, p): OffsetAndMetadata(p + 1, "m", -1) for p in (0, 1)})

    groups = {g["group_id"]: g for g in admin.list_groups()}
    assert groups["kp-admin"]["protocol_type"] == "consumer"
    assert groups["kp-admin"]["group_state"] == "Stable"
    assert [g["group_id"] for g in admin.list_groups(states_filter=["Empty"])] == []

    described = admin.describe_groups(["kp-admin"])["kp-admin"]
    assert described["group_state"] == "Stable"
    (member,) = described["members"]
    assert member["client_id"] == "kp-client"

    offsets = admin.list_group_offsets({"kp-admin": None})["kp-admin"]
    assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 1, 1: 2}

    assert admin.delete_groups(["kp-admin"]) == {"kp-admin": "NonEmptyGroupError"}
    c.close()

    altered = admin.alter_group_offsets(
        "kp-admin", {TopicPartition(topic_name, 0): OffsetAndMetadata(3, "x", -1)}
    )
    assert altered == {TopicPartition(topic_name, 0): NoError}
    deleted = admin.delete_group_offsets("kp-admin", [TopicPartition(topic_name, 1)])
    assert deleted == {TopicPartition(topic_name, 1): NoError}
    offsets = admin.list_group_offsets({"kp-admin": None})["kp-admin"]
    assert {tp.partition: (om.offset, om.metadata) for tp, om in offsets.items()} == {0: (3, "x")}

    assert admin.delete_groups(["kp-admin"]) == {"kp-admin": "OK"}
    assert "kp-admin" not in {g["group_id"] for g in admin.list_groups()}
    assert admin.delete_groups(["kp-admin"]) == {"kp-admin": "GroupIdNotFoundError"}
    admin.close()
