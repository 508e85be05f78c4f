"""Consumer groups with confluent-kafka (librdkafka 2.16): sharing, rebalancing, commits that
survive a cluster restart, cooperative-sticky, static membership, and the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from msklite import Cluster
from tests.integration.rawclient import RawClient

DEADLINE_S = 30.0


def _consumer(cluster: Cluster, group: str, **extra: object) -> Consumer:
    conf: dict[str, object] = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return Consumer(conf)


def _produce(cluster: Cluster, topic: str, partitions: int, per_partition: int) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(partitions * per_partition):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert p.flush(10) == 0


def _poll_until(consumers: list[Consumer], done: Callable[[], bool]) -> None:
    """Poll every consumer (rebalance callbacks run inside poll) until `done()`."""
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        for c in consumers:
            c.poll(0.05)


def _owned(consumers: list[Consumer]) -> list[set[int]]:
    return [{tp.partition for tp in c.assignment()} for c in consumers]


def _partitioned(consumers: list[Consumer], n: int) -> bool:
    """Every partition owned by exactly one consumer, and each consumer owns some."""
    owned = _owned(consumers)
    return all(owned) and sum(len(o) for o in owned) == n and set().union(*owned) == set(range(n))


def test_three_consumers_share_and_rebalance_when_one_leaves(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=6)
    _produce(msk_cluster, topic_name, 6, 5)
    consumers = [_consumer(msk_cluster, "share") for _ in range(3)]
    for c in consumers:
        c.subscribe([topic_name])
    _poll_until(consumers, lambda: _partitioned(consumers, 6))
    assert sorted(len(o) for o in _owned(consumers)) == [2, 2, 2]

    leaving = consumers.pop()
    start = time.monotonic()
    leaving.close()  # LeaveGroup: the others rebalance at once, not after the session timeout
    _poll_until(consumers, lambda: _partitioned(consumers, 6))
    assert time.monotonic() - start < 6.0
    assert sorted(len(o) for o in _owned(consumers)) == [3, 3]
    for c in consumers:
        c.close()


def test_commit_survives_a_cluster_restart(tmp_path: Path, topic_name: str) -> None:
    config = {"group.initial.rebalance.delay.ms": "0"}
    with Cluster(data_dir=str(tmp_path), config=config) as cluster:
        cluster.create_topic(topic_name, partitions=2)
        _produce(cluster, topic_name, 2, 10)
        c = _consumer(cluster, "resume")
        c.subscribe([topic_name])
        limits = {0: 3, 1: 6}  # commit after the first 3 records of p0 and 6 of p1
        count = 0
        deadline = time.monotonic() + DEADLINE_S
        while count < 20:
            assert time.monotonic() < deadline
            m = c.poll(0.1)
            if m is None or m.error() is not None:
                continue
            count += 1
            if (m.offset() or 0) < limits[m.partition() or 0]:
                c.commit(message=m, asynchronous=False)
        committed = {tp.partition: tp.offset for tp in c.committed(c.assignment(), timeout=10)}
        c.close()
    assert committed == limits

    with Cluster(data_dir=str(tmp_path), config=config) as cluster:
        c = _consumer(cluster, "resume")
        tps = [TopicPartition(topic_name, p) for p in (0, 1)]
        assert {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)} == committed
        c.subscribe([topic_name])
        first: dict[int, int] = {}
        count = 0
        deadline = time.monotonic() + DEADLINE_S
        while count < 20 - 9:
            assert time.monotonic() < deadline
            m = c.poll(0.1)
            if m is None or m.error() is not None:
                continue
            first.setdefault(m.partition() or 0, m.offset() or 0)
            count += 1
        extra = c.poll(0.3)
        c.close()
    # resumed exactly after the commits: nothing skipped, nothing read twice
    assert first == limits
    assert extra is None


def test_cooperative_sticky_moves_only_what_it_must(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=6)
    revoked: list[list[int]] = [[], []]

    def on_revoke(i: int) -> Callable[[Consumer, list[TopicPartition]], None]:
        def cb(_c: Consumer, parts: list[TopicPartition]) -> None:
            revoked[i].extend(tp.partition for tp in parts)

        return cb

    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    first = _consumer(msk_cluster, "coop", **conf)
    first.subscribe([topic_name], on_revoke=on_revoke(0))
    _poll_until([first], lambda: _partitioned([first], 6))
    second = _consumer(msk_cluster, "coop", **conf)
    second.subscribe([topic_name], on_revoke=on_revoke(1))
    both = [first, second]
    _poll_until(both, lambda: _partitioned(both, 6) and len(first.assignment()) == 3)
    # incremental: the first consumer gave up exactly the partitions the second got
    assert sorted(revoked[0]) == sorted(_owned(both)[1])
    assert revoked[1] == []
    for c in both:
        c.close()


def test_static_member_rejoins_without_rebalance(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=4)
    assigned = {"a": 0, "b": 0}

    def counting(name: str) -> Callable[[Consumer, list[TopicPartition]], None]:
        def cb(_c: Consumer, _parts: list[TopicPartition]) -> None:
            assigned[name] += 1

        return cb

    a = _consumer(msk_cluster, "static", **{"group.instance.id": "a"})
    b = _consumer(msk_cluster, "static", **{"group.instance.id": "b"})
    a.subscribe([topic_name], on_assign=counting("a"))
    b.subscribe([topic_name], on_assign=counting("b"))
    _poll_until([a, b], lambda: _partitioned([a, b], 4))
    before = _owned([a, b])
    b_assignments = assigned["b"]
    a.close()  # a static member does not leave the group on close

    again = _consumer(msk_cluster, "static", **{"group.instance.id": "a"})
    again.subscribe([topic_name])
    _poll_until([again, b], lambda: _owned([again, b]) == before)
    for _ in range(20):  # b keeps its assignment: no rebalance reached it
        b.poll(0.05)
        again.poll(0.05)
    assert assigned["b"] == b_assignments
    assert _owned([again, b]) == before
    again.close()
    b.close()


def test_admin_list_describe_offsets_alter_delete(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=3)
    _produce(msk_cluster, topic_name, 3, 4)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    c = _consumer(msk_cluster, "admin-g", **{"client.id": "admin-test-client"})
    c.subscribe([topic_name])
    _poll_until([c], lambda: _partitioned([c], 3))
    c.commit(offsets=[TopicPartition(topic_name, p, p + 1) for p in range(3)], asynchronous=False)

    listed = admin.list_consumer_groups().result(10)
    states = {g.group_id: g.state for g in listed.valid}
    assert states["admin-g"] == ConsumerGroupState.STABLE
    simple = {g.group_id: g.is_simple_consumer_group for g in listed.valid}
    assert simple["admin-g"] is False

    desc = admin.describe_consumer_groups(["admin-g"])["admin-g"].result(10)
    assert desc.state == ConsumerGroupState.STABLE
    assert desc.partition_assignor == "range"
    (member,) = desc.members
    assert member.client_id == "admin-test-client"
    assert member.host == "/127.0.0.1"
    assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1, 2]

    request = [ConsumerGroupTopicPartitions("admin-g")]
    offsets = admin.list_consumer_group_offsets(request)["admin-g"].result(10)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {0: 1, 1: 2, 2: 3}

    # the group is active: deleting it fails, altering its offsets fails too
    with pytest.raises(KafkaException) as exc:
        admin.delete_consumer_groups(["admin-g"])["admin-g"].result(10)
    assert exc.value.args[0].name() == "NON_EMPTY_GROUP"
    c.close()

    altered = ConsumerGroupTopicPartitions("admin-g", [TopicPartition(topic_name, 0, 4)])
    admin.alter_consumer_group_offsets([altered])["admin-g"].result(10)
    offsets = admin.list_consumer_group_offsets(request)["admin-g"].result(10)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {0: 4, 1: 2, 2: 3}
    empty = admin.describe_consumer_groups(["admin-g"])["admin-g"].result(10)
    assert empty.state == ConsumerGroupState.EMPTY and not empty.members

    admin.delete_consumer_groups(["admin-g"])["admin-g"].result(10)
    listed = admin.list_consumer_groups().result(10)
    assert "admin-g" not in {g.group_id for g in listed.valid}
    with pytest.raises(KafkaException) as exc:
        admin.delete_consumer_groups(["admin-g"])["admin-g"].result(10)
    assert exc.value.args[0].name() == "GROUP_ID_NOT_FOUND"


def test_simple_consumer_commits_without_joining(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    c = _consumer(msk_cluster, "standalone")
    c.assign([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)])
    c.commit(offsets=[TopicPartition(topic_name, 1, 42, "meta")], asynchronous=False)
    got = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
    assert [(tp.partition, tp.offset) for tp in got] == [(0, -1001), (1, 42)]
    assert got[1].metadata == "meta"
    c.close()
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    listed = admin.list_consumer_groups().result(10)
    (g,) = [g for g in listed.valid if g.group_id == "standalone"]
    assert g.is_simple_consumer_group and g.state == ConsumerGroupState.EMPTY


def test_group_outlives_a_cluster_restart_on_the_same_ports(
    tmp_path: Path, topic_name: str
) -> None:
    """A running consumer rides through a stop/start of the whole cluster (same ports, same
    data): its group is restored Stable from `__consumer_offsets`, its heartbeats are accepted
    again, and it keeps consuming without a rebalance."""
    config = {"group.initial.rebalance.delay.ms": "0"}
    assigned: list[list[int]] = []
    with RawClient.free_port_block(3) as base:
        cluster = Cluster(data_dir=str(tmp_path), config=config, port=base).start()
        try:
            cluster.create_topic(topic_name, partitions=2)
            _produce(cluster, topic_name, 2, 1)
            c = _consumer(cluster, "survivor")
            c.subscribe(
                [topic_name],
                on_assign=lambda _c, parts: assigned.append([tp.partition for tp in parts]),
            )
            _poll_until([c], lambda: _partitioned([c], 2))
            seen = 0
            deadline = time.monotonic() + DEADLINE_S
            while seen < 2:
                assert time.monotonic() < deadline
                m = c.poll(0.05)
                seen += m is not None and m.error() is None
        finally:
            cluster.stop()
        cluster = Cluster(data_dir=str(tmp_path), config=config, port=base).start()
        try:
            _produce(cluster, topic_name, 2, 1)
            got: list[tuple[int, int]] = []
            deadline = time.monotonic() + DEADLINE_S
            while len(got) < 2:
                assert time.monotonic() < deadline
                m = c.poll(0.05)
                if m is not None and m.error() is None:
                    got.append((m.partition() or 0, m.offset() or 0))
            assert sorted(got) == [(0, 1), (1, 1)]
            assert assigned == [[0, 1]]  # no rebalance reached the consumer
            c.close()
        finally:
            cluster.stop()
