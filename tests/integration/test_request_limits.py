"""Requests that would create unbounded controller state are capped as KRaft caps them.

One CreateTopics may ask for at most 10,000 partitions and write at most 10,000 metadata records
(a topic record, one per config, one per partition); past that the whole request fails with
POLICY_VIOLATION and Kafka's message, validate_only included, and nothing is created.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin import NewPartitions as AioNewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.errors import UnknownError
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaAdminClient
from kafka.protocol.metadata.metadata import MetadataRequest

from msklite import Cluster
from msklite.controller import EXCESSIVE_BATCH, EXCESSIVE_PARTITIONS
from msklite.controller import NewTopic as ControllerNewTopic
from msklite.errors import ErrorCode
from msklite.handlers import topics as topics_handler
from tests.integration.rawclient import RawClient


def _confluent_error(admin: AdminClient, topics: list[NewTopic], **kw: object) -> list[object]:
    errors = []
    for future in admin.create_topics(topics, request_timeout=30, **kw).values():
        with pytest.raises(KafkaException) as info:
            future.result(30)
        errors.append(info.value.args[0])
    return errors


def test_confluent_create_topics_over_the_cap(msk_cluster: Cluster, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    # 5,001 + 5,000 partitions: over the cap together, though each topic alone is not.
    asked = [NewTopic(f"{topic_name}-a", 5001, 1), NewTopic(f"{topic_name}-b", 5000, 1)]
    for validate_only in (True, False):
        errors = _confluent_error(admin, asked, validate_only=validate_only)
        assert [(e.code(), e.str()) for e in errors] == [  # type: ignore[attr-defined]
            (CKafkaError.POLICY_VIOLATION, EXCESSIVE_PARTITIONS)
        ] * 2
    # Within the partition cap, but one record too many with its topic and config records.
    [error] = _confluent_error(
        admin,
        [NewTopic(topic_name, 9999, 1, config={"retention.ms": "1000"})],
    )
    assert (error.code(), error.str()) == (CKafkaError.POLICY_VIOLATION, EXCESSIVE_BATCH)  # type: ignore[attr-defined]
    assert not [t for t in msk_cluster.topics() if t.startswith(topic_name)]


def test_kafka_python_create_topics_over_the_cap(msk_cluster: Cluster, topic_name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
    try:
        for validate_only in (True, False):
            resp = admin.create_topics(
                {topic_name: {"num_partitions": 10_001, "replication_factor": 1}},
                validate_only=validate_only,
                raise_errors=False,
            )
            assert [(t["name"], t["error_code"], t["error_message"]) for t in resp["topics"]] == [
                (topic_name, ErrorCode.POLICY_VIOLATION, EXCESSIVE_PARTITIONS)
            ]
        assert topic_name not in msk_cluster.topics()
    finally:
        admin.close()


def test_aiokafka_create_topics_and_partitions_over_the_cap(
    msk_cluster: Cluster, topic_name: str
) -> None:
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
        await admin.start()
        try:
            # A duplicate name is left out of the count but shares the request's fate.
            resp = await admin.create_topics(
                [
                    AioNewTopic(topic_name, 10_001, 1),
                    AioNewTopic(f"{topic_name}-dup", 1, 1),
                    AioNewTopic(f"{topic_name}-dup", 1, 1),
                ]
            )
            assert [tuple(e) for e in resp.topic_errors] == [
                (topic_name, ErrorCode.POLICY_VIOLATION, EXCESSIVE_PARTITIONS),
                (f"{topic_name}-dup", ErrorCode.POLICY_VIOLATION, EXCESSIVE_PARTITIONS),
                (f"{topic_name}-dup", ErrorCode.POLICY_VIOLATION, EXCESSIVE_PARTITIONS),
            ]
            assert not [t for t in msk_cluster.topics() if t.startswith(topic_name)]
        finally:
            await admin.close()

    asyncio.run(run())


def test_create_partitions_over_the_cap(msk_cluster: Cluster, topic_name: str) -> None:
    """Kafka 4.0 answers the topic whose new partitions do not fit UNKNOWN_SERVER_ERROR (the
    same list of records fills up), and every topic after it; msklite adds none of them."""
    msk_cluster.create_topic(f"{topic_name}-a", partitions=1)
    msk_cluster.create_topic(f"{topic_name}-b", partitions=1)
    msk_cluster.create_topic(f"{topic_name}-c", partitions=1)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    futures = admin.create_partitions(
        [
            NewPartitions(f"{topic_name}-a", 6001),  # 6,000 new: fits
            NewPartitions(f"{topic_name}-b", 4002),  # 4,001 more: one too many
            NewPartitions(f"{topic_name}-c", 2),  # the list is full by then
        ],
        validate_only=True,
    )
    futures[f"{topic_name}-a"].result(30)
    for name in (f"{topic_name}-b", f"{topic_name}-c"):
        with pytest.raises(KafkaException) as info:
            futures[name].result(30)
        assert info.value.args[0].code() == CKafkaError.UNKNOWN
    topics = msk_cluster.topics()
    assert [topics[f"{topic_name}-{x}"] for x in "abc"] == [1, 1, 1]

    async def aiokafka_grow() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=msk_cluster.bootstrap_servers)
        await admin.start()
        try:
            with pytest.raises(UnknownError):
                await admin.create_partitions({f"{topic_name}-a": AioNewPartitions(10_002)})
        finally:
            await admin.close()

    asyncio.run(aiokafka_grow())
    assert msk_cluster.topics()[f"{topic_name}-a"] == 1


async def test_many_new_partitions_open_a_chunk_per_turn_of_the_loop() -> None:
    """Creating 2,500 partitions at RF 3 (≈0.3 s of work here) opens replicas for at most
    SYNC_SLICE_S, all brokers together, before the loop serves anything else (one slice per
    broker held it three times as long); the rest follow on later turns."""
    async with Cluster(brokers=3) as cluster:
        controller = cluster.controller
        assert controller is not None
        controller.create_topics([ControllerNewTopic("big", 2500, 3)])
        replicas = [b.replicas for b in cluster.brokers.values()]
        # the first broker told spent the turn's slice: the others wait for later turns
        opened = [len(r.partitions) for r in replicas]
        assert 0 < opened[0] < 2500
        assert opened[1:] == [0, 0]
        turns = 0
        while any(r.syncing for r in replicas):
            await asyncio.sleep(0)
            turns += 1
        assert turns >= 2
        assert [len(r.partitions) for r in replicas] == [2500] * 3


def test_metadata_auto_creation_over_the_cap_creates_nothing() -> None:
    """Kafka creates a Metadata request's unknown topics with one CreateTopics: 10,001 of them
    (one partition each) are refused as a whole and answered LEADER_NOT_AVAILABLE."""
    config = {"auto.create.topics.enable": "true"}
    with Cluster(brokers=1, config=config) as cluster, RawClient(cluster.bootstrap_servers) as c:
        names = [f"auto-{i}" for i in range(10_001)]
        topics = [MetadataRequest.MetadataRequestTopic(name=n) for n in names]
        req = MetadataRequest(version=4, topics=topics, allow_auto_topic_creation=True)
        resp = c.request(req, 4)
        assert {t.error_code for t in resp.topics} == {ErrorCode.LEADER_NOT_AVAILABLE}
        assert cluster.topics() == {}
        # Within the cap they are created.
        req = MetadataRequest(version=4, topics=topics[:3], allow_auto_topic_creation=True)
        resp = c.request(req, 4)
        assert [(t.name, t.error_code) for t in resp.topics] == [(n, 0) for n in names[:3]]
        assert cluster.topics() == dict.fromkeys(names[:3], 1)


def test_delete_topics_past_the_request_records(
    msk_cluster: Cluster, topic_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DeleteTopics request removes at most MAX_RECORDS_PER_USER_OP topics (one record each);
    Kafka 4.0 answers the rest UNKNOWN_SERVER_ERROR and keeps them. The limit is lowered to 2
    here: 10,001 topics would make a slow test."""
    monkeypatch.setattr(topics_handler, "MAX_RECORDS_PER_USER_OP", 2)
    names = [f"{topic_name}-{i}" for i in range(3)]
    for name in names:
        msk_cluster.create_topic(name, partitions=1)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    futures = admin.delete_topics([*names, f"{topic_name}-missing"], request_timeout=30)
    futures[names[0]].result(30)
    futures[names[1]].result(30)
    with pytest.raises(KafkaException) as info:
        futures[names[2]].result(30)
    assert info.value.args[0].code() == CKafkaError.UNKNOWN
    with pytest.raises(KafkaException) as info:
        futures[f"{topic_name}-missing"].result(30)
    assert info.value.args[0].code() == CKafkaError.UNKNOWN_TOPIC_OR_PART
    assert [n for n in msk_cluster.topics() if n.startswith(topic_name)] == [names[2]]
