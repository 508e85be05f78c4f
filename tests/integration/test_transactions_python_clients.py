"""Transactions with the pure-Python clients: aiokafka's transactional producer with
send_offsets_to_transaction and a read_committed consumer; kafka-python 3.x's transactional
producer, commit and abort; kafka-python's KafkaAdminClient lists and describes
transactions and producers, as the Cluster API and the console do."""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata as AioOffsetAndMetadata
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

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


def test_admin_lists_and_describes_transactions_and_producers(
    msk_cluster: Cluster, topic_name: str
) -> None:
    from confluent_kafka import Producer

    from msklite.console import transactions

    msk_cluster.create_topic(topic_name, partitions=1)
    admin = KafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:

        def listed_by_all(**filters: Any) -> list[Any]:
            return [t for ts in admin.list_transactions(**filters).values() for t in ts]

        assert listed_by_all() == []  # nothing, and __transaction_state not created
        assert "__transaction_state" not in msk_cluster.topics(internal=True)
        p = Producer(
            {"bootstrap.servers": msk_cluster.bootstrap_servers, "transactional.id": "admin-tx"}
        )
        p.init_transactions(DEADLINE_S)
        p.begin_transaction()
        p.produce(topic_name, value=b"x", partition=0)
        p.flush(DEADLINE_S)

        [listed] = listed_by_all()
        assert (listed.transactional_id, str(listed.state.value)) == ("admin-tx", "Ongoing")
        assert listed_by_all(state_filters=["CompleteCommit"]) == []
        assert listed_by_all(producer_id_filters=[listed.producer_id]) == [listed]
        assert listed_by_all(producer_id_filters=[listed.producer_id + 1]) == []
        described = admin.describe_transactions(["admin-tx"])["admin-tx"]
        assert described.topic_partitions == {TopicPartition(topic_name, 0)}
        assert described.producer_id == listed.producer_id
        producers = admin.describe_producers([TopicPartition(topic_name, 0)])
        [state] = producers[TopicPartition(topic_name, 0)].active_producers
        assert (state.producer_id, state.current_transaction_start_offset) == (
            listed.producer_id,
            0,
        )

        [view] = msk_cluster.transactions()
        assert (view.transactional_id, view.state, view.partitions) == (
            "admin-tx",
            "Ongoing",
            [(topic_name, 0)],
        )
        assert view.age_ms >= 0
        assert "admin-tx  Ongoing" in transactions(msk_cluster)

        p.commit_transaction(DEADLINE_S)
        deadline = time.monotonic() + DEADLINE_S
        while msk_cluster.transactions()[0].state != "CompleteCommit":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert msk_cluster.transactions()[0].age_ms == -1
        producers = admin.describe_producers([TopicPartition(topic_name, 0)])
        [state] = producers[TopicPartition(topic_name, 0)].active_producers
        assert state.current_transaction_start_offset == -1
    finally:
        admin.close()
