"""KIP-848 consumer groups (`group.protocol=consumer`) with confluent-kafka (librdkafka 2.16)
under `--kafka-version` 4.1.x, the release that advertises ConsumerGroupHeartbeat v1: sharing,
incremental rebalances that never stop the other members, static members, regex
subscriptions, offsets across a coordinator failover, and the classic/consumer boundary."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupType,
    KafkaError,
    Producer,
    ShareConsumer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from msklite import Cluster
from msklite.coordinator.coordinator import partition_for
from msklite.metrics import state as metrics_state
from msklite.protocol.primitives import Writer
from tests.integration.rawclient import RawClient, header

DEADLINE_S = 30.0
# A short heartbeat interval: librdkafka learns of its new target only on a heartbeat.
CONSUMER_PROTOCOL = pytest.mark.msk(
    kafka_version="4.1.x",
    config={"group.consumer.heartbeat.interval.ms": 300, "offsets.topic.num.partitions": 5},
)
pytestmark = CONSUMER_PROTOCOL


class Member:
    """A `group.protocol=consumer` consumer that records what it is given and what it is
    asked to give back."""

    def __init__(self, cluster: Cluster, group: str, **extra: object) -> None:
        conf: dict[str, object] = {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": group,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        conf.update(extra)
        self.consumer = Consumer(conf)
        self.revoked: list[int] = []
        self.records: list[tuple[int, int]] = []
        self.errors: list[KafkaError] = []

    def subscribe(self, topics: list[str]) -> None:
        def on_revoke(_: Consumer, parts: list[TopicPartition]) -> None:
            self.revoked.extend(p.partition for p in parts)

        self.consumer.subscribe(topics, on_revoke=on_revoke)

    def poll(self) -> None:
        msg = self.consumer.poll(0.05)
        if msg is None:
            return
        error = msg.error()
        if error is not None:
            self.errors.append(error)
        else:
            self.records.append((msg.partition() or 0, msg.offset() or 0))

    def owned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def owned_topics(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}


def _produce(cluster: Cluster, topic: str, partitions: int, per_partition: int) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i in range(partitions * per_partition):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert p.flush(10) == 0


def _poll_until(members: list[Member], done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        for m in members:
            m.poll()


def _partitioned(members: list[Member], n: int) -> bool:
    """Every partition owned by exactly one member, the load balanced within one."""
    owned = [m.owned() for m in members]
    sizes = [len(o) for o in owned]
    return sum(sizes) == n and set().union(*owned) == set(range(n)) and max(sizes) - min(sizes) <= 1


def _close(members: list[Member]) -> None:
    for m in members:
        m.consumer.close()


def test_three_members_share_six_partitions(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=6)
    _produce(msk_cluster, topic_name, 6, 10)
    members = [Member(msk_cluster, topic_name) for _ in range(3)]
    try:
        for m in members:
            m.subscribe([topic_name])
        _poll_until(
            members,
            lambda: _partitioned(members, 6) and len({r for m in members for r in m.records}) == 60,
        )
        assert sorted(len(m.owned()) for m in members) == [2, 2, 2]
        # every record reached a member (a partition that moved before anything was
        # committed is read again from the start by its new owner, as in Kafka)
        consumed = {r for m in members for r in m.records}
        assert consumed == {(p, o) for p in range(6) for o in range(10)}

        admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
        listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result()
        assert [(g.group_id, g.type) for g in listed.valid] == [
            (topic_name, ConsumerGroupType.CONSUMER)
        ]
        classic = admin.list_consumer_groups(types={ConsumerGroupType.CLASSIC}).result()
        assert topic_name not in [g.group_id for g in classic.valid]
        described = admin.describe_consumer_groups([topic_name])[topic_name].result()
        assert described.type == ConsumerGroupType.CONSUMER
        assert described.state == ConsumerGroupState.STABLE
        assert described.partition_assignor == "uniform"
        assignments = sorted(
            sorted(tp.partition for tp in d.assignment.topic_partitions) for d in described.members
        )
        assert assignments == sorted(sorted(m.owned()) for m in members)

        # the metrics see the consumer group, its members' partitions and its lag
        for m in members:
            m.consumer.commit(asynchronous=False)
        (view,) = msk_cluster._call(lambda: metrics_state.groups(msk_cluster))
        assert (view.group_id, view.state, view.protocol_type) == (topic_name, "Stable", "consumer")
        assert sorted(p for member in view.members for _, p in member.assignment) == list(range(6))
        assert sorted((lag.partition, lag.lag) for lag in view.lags) == [(p, 0) for p in range(6)]
    finally:
        _close(members)


def test_joining_and_leaving_never_stops_the_others(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=6)
    members = [Member(msk_cluster, topic_name) for _ in range(3)]
    try:
        for m in members:
            m.subscribe([topic_name])
        _poll_until(members, lambda: _partitioned(members, 6))
        before = [m.owned() for m in members]
        for m in members:
            m.revoked.clear()

        newcomer = Member(msk_cluster, topic_name)
        newcomer.subscribe([topic_name])
        everyone = [*members, newcomer]
        _poll_until(everyone, lambda: _partitioned(everyone, 6))
        # Only what the newcomer took was revoked, each partition from its one owner; every
        # other partition stayed where it was, consumed throughout (no stop-the-world).
        after = [m.owned() for m in members]
        for m, had, has in zip(members, before, after, strict=True):
            assert has <= had
            assert sorted(m.revoked) == sorted(had - has)
        assert sorted(p for m in members for p in m.revoked) == sorted(newcomer.owned())

        for m in members:
            m.revoked.clear()
        kept = [m.owned() for m in members]
        newcomer.consumer.close()
        _poll_until(members, lambda: _partitioned(members, 6))
        # Its partitions went to the others, who gave up nothing of their own.
        assert [m.revoked for m in members] == [[], [], []]
        for m, had in zip(members, kept, strict=True):
            assert had <= m.owned()
    finally:
        _close(members)


def test_static_member_restart_keeps_its_assignment(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=6)
    members = [
        Member(msk_cluster, topic_name, **{"group.instance.id": f"instance-{i}"}) for i in range(3)
    ]
    try:
        for m in members:
            m.subscribe([topic_name])
        _poll_until(members, lambda: _partitioned(members, 6))
        restarted_had = members[2].owned()
        others_had = [m.owned() for m in members[:2]]
        for m in members:
            m.revoked.clear()

        members.pop().consumer.close()  # a static member leaves for now (epoch -2)
        restarted = Member(msk_cluster, topic_name, **{"group.instance.id": "instance-2"})
        restarted.subscribe([topic_name])
        members.append(restarted)
        _poll_until(members, lambda: _partitioned(members, 6))
        assert restarted.owned() == restarted_had
        assert [m.owned() for m in members[:2]] == others_had
        assert [m.revoked for m in members[:2]] == [[], []]
    finally:
        _close(members)


def test_regex_subscription_picks_up_a_new_topic(msk_cluster: Cluster, topic_name: str) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    msk_cluster.create_topic(first, partitions=2)
    msk_cluster.create_topic(f"other-{topic_name}", partitions=2)
    member = Member(msk_cluster, topic_name, **{"topic.metadata.refresh.interval.ms": 500})
    try:
        member.subscribe([f"^{topic_name}-.*"])
        _poll_until([member], lambda: member.owned_topics() == {(first, 0), (first, 1)})

        msk_cluster.create_topic(second, partitions=3)
        _produce(msk_cluster, second, 3, 1)
        want = {(first, 0), (first, 1), (second, 0), (second, 1), (second, 2)}
        _poll_until([member], lambda: member.owned_topics() == want and len(member.records) == 3)
    finally:
        member.consumer.close()


@pytest.mark.msk(
    kafka_version="4.1.x",
    config={"group.consumer.heartbeat.interval.ms": 300, "offsets.topic.num.partitions": 5},
)
def test_offsets_and_membership_survive_a_coordinator_failover(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=4)
    _produce(msk_cluster, topic_name, 4, 5)
    member = Member(msk_cluster, topic_name)
    try:
        member.subscribe([topic_name])
        _poll_until([member], lambda: len(member.records) == 20)
        member.consumer.commit(asynchronous=False)
        coordinator = msk_cluster.partition("__consumer_offsets", partition_for(topic_name, 5))
        msk_cluster.stop_broker(coordinator.leader)

        # The new coordinator loads the group from __consumer_offsets: the member carries on
        # with its epoch and partitions, and commits again.
        _produce(msk_cluster, topic_name, 4, 1)
        _poll_until([member], lambda: len(member.records) >= 24)
        member.consumer.commit(asynchronous=False)
        assert member.owned() == {0, 1, 2, 3}
        assert member.errors == []
        committed = member.consumer.committed(
            [TopicPartition(topic_name, p) for p in range(4)], timeout=10
        )
        assert [tp.offset for tp in committed] == [6, 6, 6, 6]
    finally:
        member.consumer.close()
    assert msk_cluster.partition("__consumer_offsets", partition_for(topic_name, 5)).leader not in (
        coordinator.leader,
    )


@pytest.mark.msk(
    kafka_version="4.1.x",
    config={
        "group.consumer.heartbeat.interval.ms": 300,
        "offsets.topic.num.partitions": 5,
        "group.consumer.migration.policy": "disabled",
    },
)
def test_without_online_migration_a_classic_group_in_use_refuses_consumer_members(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=2)
    _produce(msk_cluster, topic_name, 2, 3)
    classic = Member(msk_cluster, topic_name, **{"group.protocol": "classic"})
    try:
        classic.subscribe([topic_name])
        _poll_until([classic], lambda: len(classic.records) == 6)
        classic.consumer.commit(asynchronous=False)
        # A consumer-protocol member of the classic group in use: GROUP_ID_NOT_FOUND, which
        # librdkafka reports as fatal (the policy forbids the online upgrade).
        modern = Member(msk_cluster, topic_name)
        modern.subscribe([topic_name])
        _poll_until([classic, modern], lambda: bool(modern.errors))
        assert modern.errors[0].code() == KafkaError._FATAL
        assert "The group id does not exist" in modern.errors[0].str()
        assert modern.owned() == set()
        assert classic.owned() == {0, 1}
        modern.consumer.close()
    finally:
        classic.consumer.close()

    # Once the classic group is empty, the same group id converts: offsets kept.
    _produce(msk_cluster, topic_name, 2, 1)
    upgraded = Member(msk_cluster, topic_name)
    late_classic = Member(msk_cluster, topic_name, **{"group.protocol": "classic"})
    try:
        upgraded.subscribe([topic_name])
        _poll_until([upgraded], lambda: len(upgraded.records) == 2)
        assert sorted(upgraded.records) == [(0, 3), (1, 3)]
        # A classic member joins the consumer group in use whatever the policy, as in
        # Kafka: the policy governs conversions only.
        late_classic.subscribe([topic_name])
        _poll_until(
            [upgraded, late_classic],
            lambda: len(upgraded.owned()) == 1 and len(late_classic.owned()) == 1,
        )
        assert upgraded.owned() | late_classic.owned() == {0, 1}
        assert late_classic.errors == []
    finally:
        late_classic.consumer.close()
        upgraded.consumer.close()


def test_a_group_the_principal_may_not_read_is_refused(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    # READ denied, the rest allowed: FindCoordinator succeeds, the heartbeat does not.
    acls = [
        AclBinding(
            ResourceType.GROUP,
            topic_name,
            ResourcePatternType.LITERAL,
            "User:ANONYMOUS",
            "*",
            operation,
            permission,
        )
        for operation, permission in [
            (AclOperation.ALL, AclPermissionType.ALLOW),
            (AclOperation.READ, AclPermissionType.DENY),
        ]
    ]
    for done in admin.create_acls(acls).values():
        done.result(10)
    member = Member(msk_cluster, topic_name)
    try:
        member.subscribe([topic_name])
        _poll_until([member], lambda: bool(member.errors))
        assert "Group authorization failed" in member.errors[0].str()
        assert member.owned() == set()
    finally:
        member.consumer.close()


@pytest.mark.msk(brokers=1, kafka_version="4.1.x")
def test_mangled_heartbeats_never_crash_the_broker(msk_cluster: Cluster, topic_name: str) -> None:
    """Truncated and bit-flipped ConsumerGroupHeartbeat and ConsumerGroupDescribe bodies get an
    answer or a closed connection, never an internal error (one broker: it coordinates every
    group, so the mangled requests reach the coordinator)."""
    msk_cluster.create_topic(topic_name, partitions=2)
    w = Writer()
    w.str_(topic_name, True)
    w.str_("member-1", True)
    w.int32(0)
    w.nullable_str(None, True)
    w.nullable_str(None, True)
    w.int32(30000)
    w.array_len(1, True)
    w.str_(topic_name, True)
    w.nullable_str(None, True)
    w.nullable_str("uniform", True)
    w.array_len(0, True)
    w.empty_tagged_fields()
    heartbeat = bytes(w.buf)
    w = Writer()
    w.array_len(1, True)
    w.str_(topic_name, True)
    w.boolean(True)
    w.empty_tagged_fields()
    describe = bytes(w.buf)
    rng = random.Random(848)
    for i in range(120):
        api_key, body = (68, heartbeat) if i % 2 else (69, describe)
        mangled = bytearray(body)
        if i % 3 == 0:
            mangled = mangled[: rng.randrange(len(mangled))]
        else:
            for _ in range(rng.randint(1, 3)):
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        with RawClient(msk_cluster.bootstrap_servers) as raw:
            raw.send_frame(header(api_key, 1, i) + b"\x00" + bytes(mangled))
            with contextlib.suppress(OSError, AssertionError):
                raw.read_frame()
    assert all(msk_cluster.broker_stats(n).internal_errors == 0 for n in msk_cluster.brokers)
    with RawClient(msk_cluster.bootstrap_servers) as raw:
        assert raw.api_versions().error_code == 0


@pytest.mark.msk(brokers=1, kafka_version="4.2.x")
def test_a_share_groups_id_is_not_a_consumer_groups(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    sharer = ShareConsumer(
        {"bootstrap.servers": msk_cluster.bootstrap_servers, "group.id": topic_name}
    )
    member = Member(msk_cluster, topic_name)
    try:
        sharer.subscribe([topic_name])
        deadline = time.monotonic() + DEADLINE_S
        # (a share group starts at the latest offset: produce until a record arrives)
        while not [m for m in sharer.poll(0.2) if m.error() is None]:
            assert time.monotonic() < deadline, "the share consumer got nothing"
            _produce(msk_cluster, topic_name, 1, 1)
        member.subscribe([topic_name])
        _poll_until([member], lambda: bool(member.errors))
        assert "The group id does not exist" in member.errors[0].str()
    finally:
        member.consumer.close()
        sharer.close()
