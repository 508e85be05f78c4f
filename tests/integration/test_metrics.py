"""MSK's open-monitoring metrics (msklite/metrics) scraped after a known load: the counts are
exactly the bytes, records and requests sent, the gauges follow the replication state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from msklite import Cluster
from msklite.metrics import state
from msklite.metrics.exporter import exposition_for, registry_for, render
from msklite.metrics.meters import Sampler
from msklite.protocol.records import encode_batch
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient
from tests.requests import produce_request

Labels = frozenset[tuple[str, str]]
TOPIC = "metered"
RECORDS_PER_BATCH = 5
VALUE = b"v" * 100
AGE_MS = 60_000  # how old the produced records' timestamps are


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, metric: str, /, **labels: str) -> float:
        return self.samples[(metric, frozenset(labels.items()))]

    def total(self, metric: str, /, **labels: str) -> float:
        """The sum over the series whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == metric and want <= ls)

    def brokers(self) -> set[str]:
        return {v for (_, ls) in self.samples for k, v in ls if k == "broker"}


# the values that move with the clock between two renderings of one state
_TIMED = ("MeanRate", "EstimatedTimeLag", "EstimatedMaxTimeLag")


def _steady(samples: dict[tuple[str, Labels], float]) -> dict[tuple[str, Labels], float]:
    return {
        (n, ls): v
        for (n, ls), v in samples.items()
        if not any(t in n or ("name", t) in ls for t in _TIMED)
    }


def scrape(cluster: Cluster, sampler: Sampler) -> Scrape:
    """What `/metrics` answers (its own text writer, labels cached across scrapes), checked
    against prometheus-client's rendering of the same collector: the same series, values and
    order of families."""

    def both() -> tuple[bytes, bytes]:
        served = exposition_for(cluster).render(sampler)
        return served, render(registry_for(cluster, sampler))

    served, reference = (Scrape(text.decode()) for text in cluster._call(both))
    assert list(served.samples) == list(reference.samples)
    assert _steady(served.samples) == _steady(reference.samples)
    return served


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Kafka's replica lag limit: on a loaded machine a shorter one drops followers from the ISR
    # and the gauges under test would count them under-replicated
    with Cluster(brokers=3) as c:
        yield c


@pytest.fixture
def short_lag_cluster() -> Iterator[Cluster]:
    with Cluster(brokers=3, config={"replica.lag.time.max.ms": 300}) as c:
        yield c


def _produce(cluster: Cluster, topic: str, partition: int, batch: bytes) -> None:
    leader = cluster.partition(topic, partition).leader
    info = cluster.brokers[leader].info
    req = produce_request(topic, {partition: batch}, acks=-1)
    with RawClient(f"{info.host}:{info.port}") as c:
        assert c.request(req, 9).responses[0].partition_responses[0].error_code == 0


def _load(cluster: Cluster, batches: dict[int, int]) -> dict[int, int]:
    """Produce `batches[p]` batches into partition p of TOPIC (one request each); returns the
    bytes produced per partition."""
    cluster.create_topic(TOPIC, len(batches), 3)
    sizes = {}
    stamp = int(time.time() * 1000) - AGE_MS
    for p, n in batches.items():
        batch = encode_batch([(None, VALUE)] * RECORDS_PER_BATCH, timestamp=stamp)
        for _ in range(n):
            _produce(cluster, TOPIC, p, batch)
        sizes[p] = n * len(batch)
    return sizes


def test_counts_after_a_known_load(cluster: Cluster) -> None:
    batches = {0: 4, 1: 2}
    sizes = _load(cluster, batches)
    records = {p: n * RECORDS_PER_BATCH for p, n in batches.items()}
    leaders = {p: str(cluster.partition(TOPIC, p).leader) for p in batches}

    def replicated() -> bool:
        return all(
            set(cluster.partition(TOPIC, p).high_watermarks.values()) == {records[p]}
            for p in batches
        )

    wait_until(replicated, "every replica to have the records")
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": "billing",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in batches])
    got = 0
    deadline = time.monotonic() + 20
    while got < sum(records.values()) and time.monotonic() < deadline:
        got += len(consumer.consume(100, timeout=0.2))
    assert got == sum(records.values())
    consumer.commit(
        offsets=[TopicPartition(TOPIC, 0, 7), TopicPartition(TOPIC, 1, 10)], asynchronous=False
    )
    consumer.close()

    sampler = Sampler(cluster)
    m = scrape(cluster, sampler)
    count = "kafka_server_BrokerTopicMetrics_Count"
    for p in batches:
        leader = leaders[p]
        led = [q for q in batches if leaders[q] == leader]
        assert m.get(count, broker=leader, name="BytesInPerSec", topic=TOPIC) == sum(
            sizes[q] for q in led
        )
        assert m.get(count, broker=leader, name="MessagesInPerSec", topic=TOPIC) == sum(
            records[q] for q in led
        )
        # the consumer fetched every batch once, from the leaders
        assert m.get(count, broker=leader, name="BytesOutPerSec", topic=TOPIC) == sum(
            sizes[q] for q in led
        )
        produce_requests = sum(batches[q] for q in led)
        assert (
            m.get(
                "kafka_network_RequestMetrics_Count",
                broker=leader,
                name="RequestsPerSec",
                request="Produce",
                version="9",
            )
            == produce_requests
        )
        assert (
            m.get(
                "kafka_network_RequestMetrics_Count",
                broker=leader,
                name="TotalTimeMs",
                request="Produce",
            )
            == produce_requests
        )
        assert (
            m.get(
                "kafka_network_RequestMetrics_99thPercentile",
                broker=leader,
                name="TotalTimeMs",
                request="Produce",
            )
            > 0
        )
        for replica in cluster.partition(TOPIC, p).replicas:
            log = {"broker": str(replica), "topic": TOPIC, "partition": str(p)}
            assert m.get("kafka_log_Log_Value", name="LogEndOffset", **log) == records[p]
            assert m.get("kafka_log_Log_Value", name="Size", **log) == sizes[p]
        part = {"broker": leader, "topic": TOPIC, "partition": str(p)}
        assert m.get("kafka_cluster_Partition_Value", name="UnderReplicated", **part) == 0
        assert m.get("kafka_cluster_Partition_Value", name="InSyncReplicasCount", **part) == 3
    # the all-topics meters add up the topics
    assert m.total(count, name="BytesInPerSec", topic=TOPIC) == sum(sizes.values())
    for leader in set(leaders.values()):  # no topic label: across the topics
        led = [q for q in batches if leaders[q] == leader]
        assert m.get(count, broker=leader, name="MessagesInPerSec") == sum(records[q] for q in led)
    assert m.total("kafka_server_ReplicaManager_Value", name="UnderReplicatedPartitions") == 0
    assert m.total("kafka_controller_KafkaController_Value", name="ActiveControllerCount") == 1
    # lag as MSK names it: per group and topic, and per partition
    lag = "kafka_consumer_group_ConsumerLagMetrics_Value"
    group = {"groupId": "billing", "topic": TOPIC}
    assert m.total(lag, name="SumOffsetLag", **group) == (records[0] - 7) + (records[1] - 10)
    assert m.total(lag, name="MaxOffsetLag", **group) == max(records[0] - 7, records[1] - 10)
    assert m.total(lag, name="OffsetLag", partition="0", **group) == records[0] - 7
    time_lag = m.total(lag, name="EstimatedMaxTimeLag", **group)
    assert AGE_MS / 1000 <= time_lag < AGE_MS / 1000 + 60


def test_under_replicated_after_stopping_a_broker(cluster: Cluster) -> None:
    _load(cluster, {0: 1, 1: 1, 2: 1})
    sampler = Sampler(cluster)
    before = scrape(cluster, sampler)
    assert before.total("kafka_server_ReplicaManager_Value", name="UnderReplicatedPartitions") == 0
    assert before.brokers() == {"1", "2", "3"}
    cluster.stop_broker(3)
    m = scrape(cluster, sampler)
    assert m.brokers() == {"1", "2"}  # a stopped broker has no series
    for p in range(3):
        leader = str(cluster.partition(TOPIC, p).leader)
        assert leader != "3"
        part = {"broker": leader, "topic": TOPIC, "partition": str(p)}
        assert m.get("kafka_cluster_Partition_Value", name="UnderReplicated", **part) == 1
        assert m.get("kafka_cluster_Partition_Value", name="InSyncReplicasCount", **part) == 2
    assert m.total("kafka_server_ReplicaManager_Value", name="UnderReplicatedPartitions") == 3
    assert m.total("kafka_server_ReplicaManager_Value", name="LeaderCount") == 3
    controller = "kafka_controller_KafkaController_Value"
    assert m.total(controller, name="FencedBrokerCount") == 1
    assert m.total(controller, name="OfflinePartitionsCount") == 0
    assert m.total(controller, name="ActiveControllerCount") == 1
    cluster.start_broker(3)
    wait_until(lambda: all(len(cluster.partition(TOPIC, p).isr) == 3 for p in range(3)), "ISRs")
    after = scrape(cluster, sampler)
    assert after.total("kafka_server_ReplicaManager_Value", name="UnderReplicatedPartitions") == 0
    # the leaders took broker 3 back into their ISRs
    assert after.total("kafka_server_ReplicaManager_Count", name="IsrExpandsPerSec") == 3


def test_isr_shrinks_and_expands_are_counted_by_the_leader(short_lag_cluster: Cluster) -> None:
    cluster = short_lag_cluster
    _load(cluster, {0: 1})
    view = cluster.partition(TOPIC, 0)
    follower = next(r for r in view.replicas if r != view.leader)
    cluster.pause_replication(follower, TOPIC, 0)
    # acks=all waits for the paused follower until, replica.lag.time.max.ms later, the
    # leader's ISR check drops it (min.insync.replicas 2: the produce then succeeds)
    _produce(cluster, TOPIC, 0, encode_batch([(None, VALUE)]))
    assert follower not in cluster.partition(TOPIC, 0).isr
    sampler = Sampler(cluster)
    m = scrape(cluster, sampler)
    shrinks = {"broker": str(view.leader), "name": "IsrShrinksPerSec"}
    assert m.get("kafka_server_ReplicaManager_Count", **shrinks) == 1
    assert m.total("kafka_server_ReplicaManager_Count", name="IsrShrinksPerSec") == 1
    cluster.resume_replication(follower, TOPIC, 0)
    wait_until(lambda: follower in cluster.partition(TOPIC, 0).isr, "the follower to rejoin")
    m = scrape(cluster, sampler)
    expands = {"broker": str(view.leader), "name": "IsrExpandsPerSec"}
    assert m.get("kafka_server_ReplicaManager_Count", **expands) == 1


def test_kip848_consumer_groups_have_their_lag_and_members() -> None:
    with Cluster(brokers=3, kafka_version="4.1.x") as cluster:
        _load(cluster, {0: 2, 1: 1})
        member = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap_servers,
                "group.id": "modern",
                "group.protocol": "consumer",
                "client.id": "new-protocol",
                "enable.auto.commit": False,
            }
        )
        try:
            member.subscribe([TOPIC])
            deadline = time.monotonic() + 30
            while len(member.assignment()) < 2:
                assert time.monotonic() < deadline, "no assignment"
                member.poll(0.1)
            member.commit(offsets=[TopicPartition(TOPIC, 0, 3)], asynchronous=False)
            [group] = cluster._call(lambda: state.groups(cluster))
            assert (group.group_id, group.state, group.protocol_type) == (
                "modern",
                "Stable",
                "consumer",
            )
            [view] = group.members
            assert view.client_id == "new-protocol"
            assert view.assignment == [(TOPIC, 0), (TOPIC, 1)]
            assert [(p.partition, p.lag) for p in group.lags] == [(0, 2 * RECORDS_PER_BATCH - 3)]
            m = scrape(cluster, Sampler(cluster))
            lag = "kafka_consumer_group_ConsumerLagMetrics_Value"
            assert m.total(lag, groupId="modern", name="SumOffsetLag") == 2 * RECORDS_PER_BATCH - 3
        finally:
            member.close()


async def test_a_long_scrape_gives_the_loop_back_between_brokers() -> None:
    async with Cluster(brokers=3) as cluster:
        ran: list[bool] = []

        async def meanwhile() -> None:
            ran.append(True)

        other = asyncio.get_running_loop().create_task(meanwhile())
        body = await exposition_for(cluster).arender(Sampler(cluster), slice_s=0)
        assert ran == [True]  # it ran while the scrape was under way
        await other
        assert b'kafka_server_ReplicaManager_Value{broker="3",name="LeaderCount"}' in body
