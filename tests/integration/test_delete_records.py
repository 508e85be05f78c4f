"""DeleteRecords through confluent-kafka, kafka-python and aiokafka admin clients: the new log
start offset in ListOffsets, Fetch and consumers from earliest, its replication to followers,
the wait for them, restarts, segment deletion and DescribeLogDirs sizes, and the errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import (
    InvalidTopicError,
    OffsetOutOfRangeError,
    PolicyViolationError,
    UnknownTopicOrPartitionError,
)
from kafka.protocol.admin.topics import DeleteRecordsRequest

from msklite import Cluster
from msklite.log.manager import LogManager
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient
from tests.requests import fetch_request


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster(brokers=3) as c:
        yield c


def _fill(cluster: Cluster, topic: str, n: int, partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "linger.ms": 0})
    for i in range(n):
        p.produce(topic, value=b"x" * 100 + b"%d" % i, partition=partition)
        assert p.flush(10) == 0  # one batch a record: segments can roll between them


def _earliest(cluster: Cluster, topic: str, partition: int = 0) -> int:
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "probe"})
    try:
        low, _ = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low)
    finally:
        c.close()


def _first_consumed_offset(cluster: Cluster, topic: str, group: str) -> int:
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        c.subscribe([topic])
        for _ in range(100):
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                offset = msg.offset()
                assert offset is not None
                return offset
        raise AssertionError("nothing consumed")
    finally:
        c.close()


def _log_starts(cluster: Cluster, topic: str, partition: int = 0) -> dict[int, int]:
    """Each live replica's log start offset."""
    key = (topic, partition)

    def read() -> dict[int, int]:
        out = {}
        for node_id, broker in cluster.brokers.items():
            for tp, part in broker.replicas.partitions.items():
                if (tp.topic, tp.partition) == key:
                    out[node_id] = part.log.log_start_offset
        return out

    return cluster._call(read)


def test_confluent_delete_records_moves_every_replica_and_consumers_start_there(
    cluster: Cluster,
) -> None:
    cluster.create_topic("del", partitions=2)
    _fill(cluster, "del", 100, partition=0)
    _fill(cluster, "del", 30, partition=1)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    futures = admin.delete_records([TopicPartition("del", 0, 40), TopicPartition("del", 1, -1)])
    results = {tp.partition: f.result(10) for tp, f in futures.items()}
    assert results[0].low_watermark == 40
    assert results[1].low_watermark == 30  # -1: up to the high watermark
    # The answer came once every replica had moved its start (the low watermark).
    assert _log_starts(cluster, "del", 0) == {r: 40 for r in cluster.partition("del", 0).replicas}
    assert _earliest(cluster, "del", 0) == 40
    assert _earliest(cluster, "del", 1) == 30
    assert _first_consumed_offset(cluster, "del", "g1") == 40
    # an offset at or below the start changes nothing
    again = admin.delete_records([TopicPartition("del", 0, 10)])
    assert next(iter(again.values())).result(10).low_watermark == 40


def test_confluent_errors(cluster: Cluster) -> None:
    cluster.create_topic("errs")
    cluster.create_topic("compacted", configs={"cleanup.policy": "compact"})
    _fill(cluster, "errs", 5)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    cases = {
        TopicPartition("errs", 0, 6): "OFFSET_OUT_OF_RANGE",  # past the high watermark
        TopicPartition("compacted", 0, 0): "POLICY_VIOLATION",
    }
    for tp, name in cases.items():
        (future,) = admin.delete_records([tp]).values()
        with pytest.raises(KafkaException) as e:
            future.result(10)
        assert e.value.args[0].name() == name
    assert _earliest(cluster, "errs") == 0


def test_kafka_python_delete_records_and_errors(cluster: Cluster) -> None:
    cluster.create_topic("kp", partitions=1)
    _fill(cluster, "kp", 20)
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        result = admin.delete_records({KpTopicPartition("kp", 0): 15})
        assert result[KpTopicPartition("kp", 0)]["low_watermark"] == 15
        with pytest.raises(OffsetOutOfRangeError):
            admin.delete_records({KpTopicPartition("kp", 0): 21})
        leader = cluster.partition("kp", 0).leader
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_records({KpTopicPartition("nope", 0): 1}, partition_leader_id=leader)
        offsets_leader = _offsets_topic_leader(cluster)
        with pytest.raises(InvalidTopicError):
            admin.delete_records(
                {KpTopicPartition("__consumer_offsets", 0): 0}, partition_leader_id=offsets_leader
            )
    finally:
        admin.close()
    assert _first_consumed_offset(cluster, "kp", "g2") == 15


def _offsets_topic_leader(cluster: Cluster) -> int:
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "make-offsets"})
    try:
        c.list_topics(timeout=10)
        c.commit(offsets=[TopicPartition("kp", 0, 0)], asynchronous=False)
    finally:
        c.close()
    return cluster.partition("__consumer_offsets", 0).leader


def test_kafka_python_policy_violation_on_a_compacted_topic(cluster: Cluster) -> None:
    cluster.create_topic("kp-compact", configs={"cleanup.policy": "compact"})
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        with pytest.raises(PolicyViolationError):
            admin.delete_records({KpTopicPartition("kp-compact", 0): 0})
    finally:
        admin.close()


def test_aiokafka_delete_records(cluster: Cluster) -> None:
    cluster.create_topic("aio")
    _fill(cluster, "aio", 12)

    async def run() -> dict[AioTopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        await admin.start()
        try:
            result: dict[AioTopicPartition, int] = await admin.delete_records(
                {AioTopicPartition("aio", 0): RecordsToDelete(7)}
            )
            return result
        finally:
            await admin.close()

    assert asyncio.run(run()) == {AioTopicPartition("aio", 0): 7}
    assert _earliest(cluster, "aio") == 7


def test_fetch_below_the_start_is_offset_out_of_range(cluster: Cluster) -> None:
    cluster.create_topic("oor")
    _fill(cluster, "oor", 10)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    next(iter(admin.delete_records([TopicPartition("oor", 0, 6)]).values())).result(10)
    leader = cluster.brokers[cluster.partition("oor", 0).leader].info
    with RawClient(f"127.0.0.1:{leader.port}") as raw:

        def fetch(offset: int) -> tuple[int, int]:
            req = fetch_request("oor", version=5, fetch_offset=offset, min_bytes=1)
            (p,) = raw.request(req, 5).responses[0].partitions
            return p.error_code, p.log_start_offset

        assert fetch(5) == (1, 6)  # OFFSET_OUT_OF_RANGE, though the segment still holds it
        assert fetch(6) == (0, 6)


def test_the_answer_waits_for_the_followers(cluster: Cluster) -> None:
    cluster.create_topic("slow")
    _fill(cluster, "slow", 10)
    view = cluster.partition("slow", 0)
    follower = next(r for r in view.replicas if r != view.leader)
    cluster.pause_replication(follower, "slow", 0)
    leader = cluster.brokers[view.leader].info
    with RawClient(f"127.0.0.1:{leader.port}") as raw:
        topic_cls = DeleteRecordsRequest.DeleteRecordsTopic
        req = DeleteRecordsRequest(
            topics=[
                topic_cls(
                    name="slow",
                    partitions=[topic_cls.DeleteRecordsPartition(partition_index=0, offset=4)],
                )
            ],
            timeout_ms=200,
        )
        (p,) = raw.request(req, 2).topics[0].partitions
        # Kafka's DelayedDeleteRecords: timed out, with the low watermark of when it arrived
        assert (p.error_code, p.low_watermark) == (7, 0)  # REQUEST_TIMED_OUT
        assert _log_starts(cluster, "slow")[view.leader] == 4
        cluster.resume_replication(follower, "slow", 0)
        wait_until(lambda: _log_starts(cluster, "slow")[follower] == 4, "the follower's start")
        req.timeout_ms = 5000
        (p,) = raw.request(req, 2).topics[0].partitions
        assert (p.error_code, p.low_watermark) == (0, 4)


def test_a_follower_that_becomes_leader_keeps_the_start(cluster: Cluster) -> None:
    cluster.create_topic("failover")
    _fill(cluster, "failover", 50)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    next(iter(admin.delete_records([TopicPartition("failover", 0, 33)]).values())).result(10)
    old = cluster.partition("failover", 0).leader
    cluster.stop_broker(old)
    assert cluster.partition("failover", 0).leader != old
    assert _earliest(cluster, "failover") == 33
    # no group: with a broker down, __consumer_offsets (RF 3) cannot be created, as in Kafka
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "unused"})
    try:
        c.assign([TopicPartition("failover", 0, OFFSET_BEGINNING)])
        msg = None
        while msg is None or msg.error() is not None:
            msg = c.poll(10)
            assert msg is not None, "nothing consumed"
        assert msg.offset() == 33
    finally:
        c.close()


def test_a_restart_keeps_the_start(tmp_path: Path) -> None:
    with Cluster(brokers=3, data_dir=str(tmp_path)) as cluster:
        cluster.create_topic("kept")
        _fill(cluster, "kept", 30)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        next(iter(admin.delete_records([TopicPartition("kept", 0, 21)]).values())).result(10)
    for node_id in (1, 2, 3):
        with open(tmp_path / f"broker-{node_id}" / "log-start-offset-checkpoint") as f:
            assert f.read() == "0\n1\nkept 0 21\n"
    with Cluster(brokers=3, data_dir=str(tmp_path)) as cluster:
        assert _earliest(cluster, "kept") == 21
        assert _first_consumed_offset(cluster, "kept", "g4") == 21


def test_retention_deletes_segments_below_the_start_and_log_dirs_shrink(cluster: Cluster) -> None:
    cluster.create_topic("segs", configs={"segment.bytes": "1024"})
    _fill(cluster, "segs", 60)
    view = cluster.partition("segs", 0)
    leader_dir = os.path.join(cluster.data_dir, f"broker-{view.leader}", "segs-0")
    segments_before = sorted(n for n in os.listdir(leader_dir) if n.endswith(".log"))
    assert len(segments_before) > 3
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:

        def size() -> int:
            (answer,) = admin.describe_log_dirs(brokers=[view.leader])
            for log_dir in answer["log_dirs"]:
                for topic in log_dir["topics"]:
                    if topic["name"] == "segs":
                        return int(topic["partitions"][0]["partition_size"])
            raise AssertionError("no segs in DescribeLogDirs")

        before = size()
        admin.delete_records({KpTopicPartition("segs", 0): 45})
        assert size() == before  # records below the start stay until the retention pass
        assert cluster.enforce_retention() > 0
        after = size()
    finally:
        admin.close()
    assert after < before
    segments_after = sorted(n for n in os.listdir(leader_dir) if n.endswith(".log"))
    bases = [int(n[:-4]) for n in segments_after]
    assert bases[0] <= 45 and (len(bases) == 1 or bases[1] > 45)
    assert _earliest(cluster, "segs") == 45
    assert _first_consumed_offset(cluster, "segs", "g5") == 45


def test_a_stopped_follower_does_not_hold_the_answer(cluster: Cluster) -> None:
    cluster.create_topic("down")
    _fill(cluster, "down", 10)
    view = cluster.partition("down", 0)
    follower = next(r for r in view.replicas if r != view.leader)
    cluster.stop_broker(follower)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    (future,) = admin.delete_records([TopicPartition("down", 0, 8)], operation_timeout=30).values()
    assert future.result(10).low_watermark == 8  # only live replicas count, as in Kafka
    cluster.start_broker(follower)
    wait_until(lambda: _log_starts(cluster, "down").get(follower) == 8, "the follower's start")


def test_one_checkpoint_write_per_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = []
    original = LogManager.checkpoint_log_starts

    def counted(self: LogManager) -> None:
        writes.append(self.node_id)
        original(self)

    monkeypatch.setattr(LogManager, "checkpoint_log_starts", counted)
    with Cluster(brokers=1, data_dir=str(tmp_path)) as cluster:
        cluster.create_topic("many", partitions=8)
        for partition in range(8):
            _fill(cluster, "many", 3, partition=partition)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        futures = admin.delete_records([TopicPartition("many", p, 2) for p in range(8)])
        assert {f.result(10).low_watermark for f in futures.values()} == {2}
        assert writes == [1]
    with open(tmp_path / "broker-1" / "log-start-offset-checkpoint") as f:
        assert f.read().splitlines()[:2] == ["0", "8"]


def test_compact_delete_topics_take_it_and_timestamp_lookups_start_at_the_start(
    cluster: Cluster,
) -> None:
    cluster.create_topic("both", configs={"cleanup.policy": "compact,delete"})
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for i in range(10):
        p.produce("both", key=b"k%d" % i, value=b"v", timestamp=1_000_000 + i)
        assert p.flush(10) == 0
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    (future,) = admin.delete_records([TopicPartition("both", 0, 5)]).values()
    assert future.result(10).low_watermark == 5
    c = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "times"})
    try:
        (found,) = c.offsets_for_times([TopicPartition("both", 0, 1_000_000)], timeout=10)
    finally:
        c.close()
    assert found.offset == 5  # the first record at or after the time that is still there
