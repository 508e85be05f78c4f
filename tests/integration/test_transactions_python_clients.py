"""Transactions with the pure-Python clients: aiokafka's transactional producer with
send_offsets_to_transaction and a read_committed consumer; kafka-python 3.x's transactional
producer, commit and abort."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata as AioOffsetAndMetadata
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from msklite import Cluster

DEADLINE_S = 30.0


async def _aio_read_committed(cluster: Cluster, topic: str, expect: int) -> list[bytes]:
    c = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await c.start()
    try:
        c.assign([AioTopicPartition(topic, 0)])
        await c.seek_to_beginning()
        out: list[bytes] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(out) < expect:
            assert time.monotonic() < deadline, f"read {out}"
            for records in (await c.getmany(timeout_ms=100)).values():
                out.extend(r.value for r in records if r.value is not None)
        # nothing more arrives: what was aborted stays hidden
        extra = await c.getmany(timeout_ms=300)
        out.extend(r.value for rs in extra.values() for r in rs if r.value is not None)
        return out
    finally:
        await c.stop()


async def test_aiokafka_commit_abort_and_send_offsets(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    group = f"aio-txn-{topic_name}"
    p = AIOKafkaProducer(
        bootstrap_servers=msk_cluster.bootstrap_servers, transactional_id="aio-txn"
    )
    await p.start()
    try:
        async with p.transaction():
            await p.send_and_wait(topic_name, b"kept-1", partition=0)
            await p.send_and_wait(topic_name, b"kept-2", partition=0)
            await p.send_offsets_to_transaction(
                {AioTopicPartition(topic_name, 0): AioOffsetAndMetadata(2, "")}, group
            )
        await p.begin_transaction()
        await p.send_and_wait(topic_name, b"dropped", partition=0)
        await p.send_offsets_to_transaction(
            {AioTopicPartition(topic_name, 0): AioOffsetAndMetadata(99, "")}, group
        )
        await p.abort_transaction()
    finally:
        await p.stop()
    assert await _aio_read_committed(msk_cluster, topic_name, 2) == [b"kept-1", b"kept-2"]
    c = AIOKafkaConsumer(bootstrap_servers=msk_cluster.bootstrap_servers, group_id=group)
    await c.start()
    try:
        # the committed transaction's offset is visible, the aborted one's never was
        assert await c.committed(AioTopicPartition(topic_name, 0)) == 2
    finally:
        await c.stop()


def test_kafka_python_commit_and_abort(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    p = KafkaProducer(bootstrap_servers=msk_cluster.bootstrap_servers, transactional_id="kp-txn")
    try:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic_name, b"one", partition=0)
        p.commit_transaction()
        p.begin_transaction()
        p.send(topic_name, b"gone", partition=0)
        p.flush()
        p.abort_transaction()
        p.begin_transaction()
        p.send(topic_name, b"two", partition=0)
        p.commit_transaction()
    finally:
        p.close()
    c = KafkaConsumer(
        bootstrap_servers=msk_cluster.bootstrap_servers,
        isolation_level="read_committed",
        consumer_timeout_ms=1500,
        auto_offset_reset="earliest",
    )
    try:
        c.assign([TopicPartition(topic_name, 0)])
        got = [(m.offset, m.value) for m in c]
    finally:
        c.close()
    # markers at 1, 3 and 5; the aborted record at 2
    assert got == [(0, b"one"), (4, b"two")]
