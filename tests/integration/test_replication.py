"""Replication across the emulated brokers and AZs, driven through the fault API while real
clients produce and consume."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from functools import partial

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from msklite import Cluster
from msklite.errors import ErrorCode
from msklite.protocol.records import encode_batch
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient
from tests.requests import produce_request

LAG_MS = 300


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster(brokers=3, config={"replica.lag.time.max.ms": str(LAG_MS)}) as c:
        yield c


def _address(cluster: Cluster, node_id: int) -> str:
    info = cluster.brokers[node_id].info
    return f"{info.host}:{info.port}"


def _produce_raw(
    cluster: Cluster, topic: str, value: bytes, acks: int = -1, timeout_ms: int = 5000
) -> tuple[int, int]:
    leader = cluster.partition(topic, 0).leader
    batch = encode_batch([(None, value)])
    req = produce_request(topic, {0: batch}, acks=acks, timeout_ms=timeout_ms)
    with RawClient(_address(cluster, leader), timeout=timeout_ms / 1000 + 5) as c:
        p = c.request(req, 9).responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def _consume(cluster: Cluster, topic: str, n: int, **conf: object) -> list[tuple[int, bytes]]:
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "replication",
            "enable.auto.commit": False,
            **conf,
        }
    )
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 20
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append((m.offset() or 0, m.value() or b""))
    finally:
        c.close()
    return out


def _fully_replicated(cluster: Cluster, topic: str) -> bool:
    view = cluster.partition(topic, 0)
    return (
        sorted(view.isr) == sorted(view.replicas) and len(set(view.high_watermarks.values())) == 1
    )


def test_followers_copy_and_the_high_watermark_follows(cluster: Cluster) -> None:
    cluster.create_topic("copies")
    for i in range(20):
        assert _produce_raw(cluster, "copies", b"%d" % i) == (0, i)
    view = cluster.partition("copies", 0)
    assert len(view.replicas) == 3 and sorted(view.isr) == [1, 2, 3]
    wait_until(
        lambda: set(cluster.partition("copies", 0).log_end_offsets.values()) == {20}, "copies"
    )
    wait_until(lambda: set(cluster.partition("copies", 0).high_watermarks.values()) == {20}, "HWs")
    racks = {cluster.brokers[r].info.rack for r in view.replicas}
    assert len(racks) == 3  # one replica per AZ


def test_acks_all_with_one_and_two_brokers_down(cluster: Cluster) -> None:
    cluster.create_topic("durable")
    leader = cluster.partition("durable", 0).leader
    followers = [r for r in cluster.partition("durable", 0).replicas if r != leader]
    assert _produce_raw(cluster, "durable", b"a") == (0, 0)
    cluster.stop_broker(followers[0])
    assert sorted(cluster.partition("durable", 0).isr) == sorted([leader, followers[1]])
    assert _produce_raw(cluster, "durable", b"b") == (0, 1)
    cluster.stop_broker(followers[1])
    assert _produce_raw(cluster, "durable", b"c")[0] == ErrorCode.NOT_ENOUGH_REPLICAS
    assert _produce_raw(cluster, "durable", b"c1", acks=1) == (0, 2)  # acks=1 still works
    cluster.start_broker(followers[0])
    wait_until(lambda: len(cluster.partition("durable", 0).isr) == 2, "the ISR to grow")
    assert _produce_raw(cluster, "durable", b"d") == (0, 3)
    assert _consume(cluster, "durable", 4) == [(0, b"a"), (1, b"b"), (2, b"c1"), (3, b"d")]


def test_leader_failover_keeps_every_acknowledged_record(cluster: Cluster) -> None:
    cluster.create_topic("failover")
    p = Producer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
        }
    )
    acked: dict[int, bytes] = {}

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is None:
            acked[msg.offset()] = msg.value()  # type: ignore[attr-defined]

    for i in range(300):
        p.produce("failover", value=b"v%d" % i, on_delivery=on_delivery)
        if i == 100:
            p.flush(10)
            old_leader = cluster.partition("failover", 0).leader
            cluster.stop_broker(old_leader)
            new_leader = cluster.partition("failover", 0).leader
            assert new_leader not in (-1, old_leader)
        if i == 200:
            p.flush(10)
            cluster.start_broker(old_leader)
    assert p.flush(20) == 0
    assert len(acked) == 300
    wait_until(lambda: _fully_replicated(cluster, "failover"), "full replication")
    got = dict(_consume(cluster, "failover", 300))
    assert got == acked
    assert sorted(got) == list(range(300))  # one record per offset, no gaps


def test_restarted_broker_catches_up_and_takes_back_leadership(cluster: Cluster) -> None:
    cluster.create_topic("prefer")
    preferred = cluster.partition("prefer", 0).replicas[0]
    assert cluster.partition("prefer", 0).leader == preferred
    epoch = cluster.partition("prefer", 0).leader_epoch
    cluster.stop_broker(preferred)
    assert cluster.partition("prefer", 0).leader != preferred
    assert cluster.partition("prefer", 0).leader_epoch == epoch + 1
    for i in range(50):
        assert _produce_raw(cluster, "prefer", b"%d" % i)[0] == 0
    cluster.start_broker(preferred)
    wait_until(lambda: cluster.partition("prefer", 0).leader == preferred, "preferred leader")
    view = cluster.partition("prefer", 0)
    assert view.log_end_offsets[preferred] == 50 and sorted(view.isr) == [1, 2, 3]
    assert view.leader_epoch == epoch + 2


def test_lagging_follower_leaves_the_isr(cluster: Cluster) -> None:
    cluster.create_topic("lag", configs={"min.insync.replicas": "3"})
    view = cluster.partition("lag", 0)
    slow = next(r for r in view.replicas if r != view.leader)
    cluster.pause_replication(slow, "lag", 0)
    # The produce waits for the paused follower; once it has lagged for
    # replica.lag.time.max.ms it leaves the ISR, the HW passes the batch, and the ISR (2) is
    # below min.insync.replicas (3).
    code, _ = _produce_raw(cluster, "lag", b"x", timeout_ms=10_000)
    assert code == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    assert slow not in cluster.partition("lag", 0).isr
    assert _produce_raw(cluster, "lag", b"y")[0] == ErrorCode.NOT_ENOUGH_REPLICAS
    cluster.resume_replication(slow, "lag", 0)
    wait_until(lambda: slow in cluster.partition("lag", 0).isr, "the follower to rejoin")
    # "x" stayed in the log (Kafka keeps a batch that failed after its append).
    assert _produce_raw(cluster, "lag", b"z") == (0, 1)


def test_acks_all_times_out_while_followers_stall() -> None:
    with Cluster(brokers=3, config={"replica.lag.time.max.ms": "60000"}) as cluster:
        cluster.create_topic("stall")
        view = cluster.partition("stall", 0)
        for r in view.replicas:
            if r != view.leader:
                cluster.pause_replication(r)
        assert (
            _produce_raw(cluster, "stall", b"x", timeout_ms=200)[0] == ErrorCode.REQUEST_TIMED_OUT
        )


def test_unclean_election_loses_what_only_the_old_leader_had(cluster: Cluster) -> None:
    cluster.create_topic(
        "unclean", configs={"unclean.leader.election.enable": "true", "min.insync.replicas": "1"}
    )
    view = cluster.partition("unclean", 0)
    old_leader = view.leader
    followers = [r for r in view.replicas if r != old_leader]
    for i in range(5):
        assert _produce_raw(cluster, "unclean", b"kept%d" % i) == (0, i)
    wait_until(lambda: _fully_replicated(cluster, "unclean"), "replication")
    for r in followers:
        cluster.pause_replication(r)
    # Acknowledged by the leader alone (acks=1): Kafka loses these in an unclean election.
    for i in range(5):
        assert _produce_raw(cluster, "unclean", b"lost%d" % i, acks=1) == (0, 5 + i)
    wait_until(lambda: cluster.partition("unclean", 0).isr == [old_leader], "the ISR to shrink")
    cluster.stop_broker(old_leader)
    new = cluster.partition("unclean", 0)
    assert new.leader in followers and new.isr == [new.leader]
    for r in followers:
        cluster.resume_replication(r)
    assert _produce_raw(cluster, "unclean", b"after") == (0, 5)
    cluster.start_broker(old_leader)
    wait_until(lambda: _fully_replicated(cluster, "unclean"), "the old leader to rejoin")
    assert cluster.partition("unclean", 0).log_end_offsets[old_leader] == 6  # truncated to 5, +1
    values = [v for _, v in _consume(cluster, "unclean", 6)]
    assert values == [b"kept0", b"kept1", b"kept2", b"kept3", b"kept4", b"after"]


def test_without_unclean_election_the_partition_goes_offline(cluster: Cluster) -> None:
    cluster.create_topic(
        "clean", configs={"unclean.leader.election.enable": "false", "min.insync.replicas": "1"}
    )
    view = cluster.partition("clean", 0)
    for r in view.replicas:
        if r != view.leader:
            cluster.pause_replication(r)
    assert _produce_raw(cluster, "clean", b"only-on-leader", acks=1) == (0, 0)
    wait_until(lambda: cluster.partition("clean", 0).isr == [view.leader], "the ISR to shrink")
    cluster.stop_broker(view.leader)
    assert cluster.partition("clean", 0).leader == -1
    assert cluster.controller is not None and cluster.controller.offline_partitions() == 1
    cluster.start_broker(view.leader)
    assert cluster.partition("clean", 0).leader == view.leader
    assert [v for _, v in _consume(cluster, "clean", 1)] == [b"only-on-leader"]


def test_an_az_outage_keeps_rf3_min_insync2_writable(cluster: Cluster) -> None:
    cluster.create_topic("zonal", partitions=3)
    cluster.stop_az("use1-az1")
    assert 1 not in cluster.brokers
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    errors: list[object] = []
    for i in range(30):
        p.produce(
            "zonal",
            value=b"%d" % i,
            partition=i % 3,
            on_delivery=lambda e, m: errors.append(e) if e else None,
        )
    assert p.flush(15) == 0 and errors == []
    cluster.start_az("use1-az1")
    wait_until(lambda: all(len(cluster.partition("zonal", i).isr) == 3 for i in range(3)), "ISR")


def test_rack_aware_fetch_reads_from_the_local_replica() -> None:
    config = {
        "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    }
    with Cluster(brokers=3, config=config) as cluster:
        cluster.create_topic("local")
        view = cluster.partition("local", 0)
        follower = next(r for r in view.replicas if r != view.leader)
        rack = cluster.brokers[follower].info.rack
        p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
        for i in range(200):
            p.produce("local", value=b"x" * 1000 + b"%d" % i)
        assert p.flush(10) == 0
        wait_until(lambda: _fully_replicated(cluster, "local"), "replication")
        before = {n: cluster.broker_stats(n).bytes_out for n in cluster.brokers}
        got = _consume(cluster, "local", 200, **{"client.rack": rack})
        assert len(got) == 200 and sorted(o for o, _ in got) == list(range(200))
        served = {n: cluster.broker_stats(n).bytes_out - before[n] for n in cluster.brokers}
        assert served[follower] >= 200_000
        assert served[view.leader] == 0


@pytest.mark.parametrize(
    "sequences", [3, pytest.param(20, marks=pytest.mark.slow)], ids=["3-sequences", "20-sequences"]
)
def test_random_faults_lose_no_acknowledged_record(sequences: int) -> None:
    """Seeded sequences of broker stops and starts under acks=all with unclean election
    disabled: every acknowledged record is consumed afterwards, exactly once per offset."""
    rng = random.Random(20261122)
    for sequence in range(sequences):
        with Cluster(
            brokers=3,
            config={
                "replica.lag.time.max.ms": str(LAG_MS),
                "unclean.leader.election.enable": "false",
            },
        ) as cluster:
            topic = f"chaos{sequence}"
            cluster.create_topic(topic)
            p = Producer(
                {
                    "bootstrap.servers": cluster.bootstrap_servers,
                    "acks": "all",
                    "enable.idempotence": True,
                    "message.timeout.ms": 3000,
                    "linger.ms": 1,
                }
            )
            acked: dict[int, bytes] = {}

            def on_delivery(err: KafkaError | None, msg: object, acked=acked) -> None:
                if err is None:
                    acked[msg.offset()] = msg.value()  # type: ignore[attr-defined]

            for step in range(6):
                for i in range(20):
                    p.produce(
                        topic, value=b"%d-%d-%d" % (sequence, step, i), on_delivery=on_delivery
                    )
                p.flush(2)
                running = sorted(cluster.brokers)
                stopped = [n for n in (1, 2, 3) if n not in running]
                if stopped and (len(running) == 1 or rng.random() < 0.5):
                    cluster.start_broker(rng.choice(stopped))
                elif len(running) > 1:
                    cluster.stop_broker(rng.choice(running))
            for n in (1, 2, 3):
                if n not in cluster.brokers:
                    cluster.start_broker(n)
            p.flush(10)
            wait_until(partial(_fully_replicated, cluster, topic), "recovery", timeout=20)
            got = dict(_consume(cluster, topic, len(acked)))
            for offset, value in acked.items():
                assert got.get(offset) == value, (sequence, offset)


async def test_aiokafka_consumer_follows_a_leader_change(cluster: Cluster) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTP

    cluster.create_topic("aio-failover")
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cluster.bootstrap_servers, group_id=None, fetch_max_wait_ms=100
    )
    await producer.start()
    await consumer.start()
    try:
        tp = AioTP("aio-failover", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        seen: list[bytes] = []
        for i in range(50):
            await producer.send_and_wait("aio-failover", b"a%d" % i)
        while len(seen) < 50:
            batch = await consumer.getmany(timeout_ms=500)
            seen += [m.value for msgs in batch.values() for m in msgs]
        old = cluster.partition("aio-failover", 0).leader
        cluster.stop_broker(old)  # the cluster runs on its own thread: a blocking call
        for i in range(50):
            await producer.send_and_wait("aio-failover", b"b%d" % i)
        deadline = time.monotonic() + 20
        while len(seen) < 100 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += [m.value for msgs in batch.values() for m in msgs]
        assert seen == [b"a%d" % i for i in range(50)] + [b"b%d" % i for i in range(50)]
    finally:
        await consumer.stop()
        await producer.stop()


def test_metadata_shows_isr_and_offline_replicas(cluster: Cluster) -> None:
    from confluent_kafka.admin import AdminClient

    cluster.create_topic("visible")
    view = cluster.partition("visible", 0)
    follower = next(r for r in view.replicas if r != view.leader)
    cluster.stop_broker(follower)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    md = admin.list_topics("visible", timeout=10)
    p = md.topics["visible"].partitions[0]
    assert follower not in p.isrs and sorted(p.replicas) == sorted(view.replicas)
    assert follower not in md.brokers


def test_group_consumers_keep_consuming_through_a_leader_failover(cluster: Cluster) -> None:
    """A confluent-kafka consumer in a group reads a 3-partition RF 3 topic while the broker
    leading partitions (and perhaps its group coordinator) stops: every acknowledged record
    arrives, once per offset."""
    cluster.create_topic("grouped", partitions=3)
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "linger.ms": 1})
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "survivors",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 100,
        }
    )
    c.subscribe(["grouped"])
    seen: dict[tuple[int, int], bytes] = {}

    def drain(until: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(seen) < until and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                seen[(m.partition() or 0, m.offset() or 0)] = m.value() or b""

    try:
        for i in range(150):
            p.produce("grouped", value=b"before-%d" % i, partition=i % 3)
        assert p.flush(10) == 0
        drain(150)
        cluster.stop_broker(cluster.partition("grouped", 0).leader)
        for i in range(150):
            p.produce("grouped", value=b"after-%d" % i, partition=i % 3)
        assert p.flush(20) == 0
        drain(300)
    finally:
        c.close()
    assert len(seen) == 300
    for part in range(3):
        offsets = sorted(o for (pp, o) in seen if pp == part)
        assert offsets == list(range(100))  # 50 before + 50 after, no gap, no repeat
    assert sorted(seen.values()) == sorted(
        [b"before-%d" % i for i in range(150)] + [b"after-%d" % i for i in range(150)]
    )


async def test_aiokafka_group_consumer_follows_a_leader_change(cluster: Cluster) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    cluster.create_topic("aio-grouped", partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
    consumer = AIOKafkaConsumer(
        "aio-grouped",
        bootstrap_servers=cluster.bootstrap_servers,
        group_id="aio-survivors",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        # aiokafka 0.14 retries a final auto-commit to a coordinator it marked dead without
        # looking the new one up (seen here, and the loop never ends): commit explicitly.
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    try:
        seen: set[bytes] = set()

        async def drain(n: int) -> None:
            deadline = time.monotonic() + 20
            while len(seen) < n and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                seen.update(m.value for msgs in batch.values() for m in msgs if m.value)

        for i in range(40):
            await producer.send_and_wait("aio-grouped", b"a%d" % i, partition=i % 2)
        await drain(40)
        cluster.stop_broker(cluster.partition("aio-grouped", 0).leader)
        for i in range(40):
            await producer.send_and_wait("aio-grouped", b"b%d" % i, partition=i % 2)
        await drain(80)
        assert seen == {b"a%d" % i for i in range(40)} | {b"b%d" % i for i in range(40)}
        await consumer.commit()  # finds the new group coordinator
        committed = {p: await consumer.committed(p) for p in consumer.assignment()}
        assert sorted(committed.values()) == [40, 40]
    finally:
        await consumer.stop()
        await producer.stop()
