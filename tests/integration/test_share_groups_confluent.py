"""Share groups (KIP-932) with confluent-kafka's ShareConsumer (librdkafka 2.16) against an
emulated Kafka 4.2: records shared by consumers of one partition, implicit and explicit
acknowledgement, rejection, lock expiry and redelivery, and the delivery state surviving the
loss of the share coordinator's broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import (
    AcknowledgeType,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    ShareConsumer,
    TopicCollection,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from msklite import Cluster
from msklite.coordinator.coordinator import partition_for
from msklite.protocol.share_messages import DescribeShareGroupOffsetsRequest
from tests.integration.rawclient import RawClient

DEADLINE_S = 30.0
RESET = "share.auto.offset.reset"
SHARE = pytest.mark.msk(brokers=3, kafka_version="4.2.x")
SHORT_LOCKS = pytest.mark.msk(
    brokers=3, kafka_version="4.2.x", config={"group.share.record.lock.duration.ms": 1000}
)


def _consumer(cluster: Cluster, group: str, **extra: object) -> ShareConsumer:
    conf: dict[str, object] = {"bootstrap.servers": cluster.bootstrap_servers, "group.id": group}
    conf.update(extra)
    consumer = ShareConsumer(conf)
    return consumer


def _produce(cluster: Cluster, topic: str, n: int, start: int = 0, batch: int = 10) -> None:
    """Records start..start+n-1, in log batches of `batch` (a share consumer acquires whole
    batches, so one big batch would go to one consumer)."""
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0})
    for i in range(start, start + n):
        p.produce(topic, value=b"%d" % i, partition=0)
        if (i - start + 1) % batch == 0:
            assert p.flush(10) == 0
    assert p.flush(10) == 0


def _start_offset(cluster: Cluster, group: str, topic: str) -> int:
    """The share-partition start offset DescribeShareGroupOffsets reports (-1: none yet)."""
    with RawClient(cluster.bootstrap_servers) as raw:
        found = raw.request(FindCoordinatorRequest(key=group, key_type=0), version=3)
        assert found.error_code == 0
    with RawClient(f"{found.host}:{found.port}") as raw:
        req = DescribeShareGroupOffsetsRequest(
            groups=[
                DescribeShareGroupOffsetsRequest.DescribeShareGroupOffsetsRequestGroup(
                    group_id=group,
                    topics=[
                        DescribeShareGroupOffsetsRequest.DescribeShareGroupOffsetsRequestGroup.DescribeShareGroupOffsetsRequestTopic(
                            topic_name=topic, partitions=[0]
                        )
                    ],
                )
            ]
        )
        resp = raw.request(req, version=0)
    part = resp.groups[0].topics[0].partitions[0]
    assert part.error_code == 0
    return int(part.start_offset)


def _poll_until(
    consumers: list[ShareConsumer],
    done: Callable[[], bool],
    on_msg: Callable[[int, Message], object] | None = None,
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        for i, c in enumerate(consumers):
            for m in c.poll(0.1):
                assert m.error() is None, m.error()
                if on_msg is not None:
                    on_msg(i, m)


def _joined(cluster: Cluster, consumers: list[ShareConsumer], group: str, topic: str) -> None:
    """Poll until the share partition exists (its first ShareFetch sets the start offset at
    the log end: share.auto.offset.reset=latest), so that what is produced next is seen."""
    _poll_until(consumers, lambda: _start_offset(cluster, group, topic) >= 0)


def _offset(m: Message) -> int:
    offset = m.offset()
    assert offset is not None
    return offset


def _delivery(m: Message) -> tuple[int, int]:
    """(offset, delivery count) of a record from a share consumer."""
    count = m.delivery_count()
    assert count is not None
    return _offset(m), count


def _close(consumers: list[ShareConsumer]) -> None:
    for c in consumers:
        c.close()


@SHARE
def test_two_consumers_share_one_partition_each_record_once(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    group = "share-" + uuid.uuid4().hex[:8]
    consumers = [_consumer(msk_cluster, group, **{"max.poll.records": 10}) for _ in range(2)]
    try:
        for c in consumers:
            c.subscribe([topic_name])
        _joined(msk_cluster, consumers, group, topic_name)
        _produce(msk_cluster, topic_name, 300)
        seen: dict[int, list[int]] = {0: [], 1: []}
        _poll_until(
            consumers,
            lambda: sum(map(len, seen.values())) >= 300,
            lambda i, m: seen[i].append(_offset(m)),
        )
        everything = sorted(seen[0] + seen[1])
        assert everything == list(range(300)), "a record was lost or delivered twice"
        assert seen[0] and seen[1], "one consumer got every record: the partition was not shared"
        # implicit acknowledgement: every record accepted, so the start offset moves past them
        _poll_until(consumers, lambda: _start_offset(msk_cluster, group, topic_name) == 300)
    finally:
        _close(consumers)


@SHARE
def test_rejected_record_is_archived_and_released_one_redelivered(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    group = "share-" + uuid.uuid4().hex[:8]
    consumer = _consumer(msk_cluster, group, **{"share.acknowledgement.mode": "explicit"})
    try:
        consumer.subscribe([topic_name])
        _joined(msk_cluster, [consumer], group, topic_name)
        _produce(msk_cluster, topic_name, 3)
        first: list[tuple[int, int]] = []

        def take(_: int, m: Message) -> None:
            first.append(_delivery(m))
            kind = {0: AcknowledgeType.REJECT, 1: AcknowledgeType.RELEASE}.get(
                _offset(m),
                AcknowledgeType.ACCEPT,
            )
            consumer.acknowledge(m, kind)

        _poll_until([consumer], lambda: len(first) >= 3, take)
        assert first == [(0, 1), (1, 1), (2, 1)]
        consumer.commit_sync()
        _produce(msk_cluster, topic_name, 1, start=3)
        again: list[tuple[int, int]] = []

        def accept(_: int, m: Message) -> None:
            again.append(_delivery(m))
            consumer.acknowledge(m)

        # the released record comes back (delivered twice), the rejected one never: redelivery
        # goes in offset order, so offset 0 would come before 1 and 3 if it were available
        _poll_until([consumer], lambda: any(o == 3 for o, _ in again), accept)
        assert again == [(1, 2), (3, 1)]
        consumer.commit_sync()
        _poll_until([consumer], lambda: _start_offset(msk_cluster, group, topic_name) == 4)
    finally:
        consumer.close()


@SHORT_LOCKS
def test_expired_lock_redelivers_with_a_higher_delivery_count(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    group = "share-" + uuid.uuid4().hex[:8]
    holder = _consumer(msk_cluster, group, **{"share.acknowledgement.mode": "explicit"})
    other: ShareConsumer | None = None
    try:
        holder.subscribe([topic_name])
        _joined(msk_cluster, [holder], group, topic_name)
        _produce(msk_cluster, topic_name, 5)
        held: list[int] = []
        # the holder takes the records and never acknowledges them
        _poll_until([holder], lambda: len(held) >= 5, lambda _, m: held.append(_offset(m)))
        assert held == list(range(5))
        # joins only now: librdkafka prefetches, and records it held unpolled would expire too
        other = _consumer(msk_cluster, group)
        other.subscribe([topic_name])
        redelivered: list[tuple[int, int]] = []
        # no sleep: the other consumer's fetch waits until the 1 s locks run out
        _poll_until(
            [other],
            lambda: len(redelivered) >= 5,
            lambda _, m: redelivered.append(_delivery(m)),
        )
        assert redelivered == [(o, 2) for o in range(5)]
    finally:
        _close([holder] if other is None else [holder, other])


def _group_coordinated_by(cluster: Cluster, topic: str, broker: int) -> str:
    """A share group whose state for partition 0 of `topic` is kept by the share coordinator
    on `broker` (Kafka's abs(hash("group:topicId:0")) % 50 picks the partition)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(10)
    topic_id = str(described.topic_id)  # Kafka's Uuid text, as the coordinator key has it
    for i in range(1000):
        group = f"share-{i}"
        state_partition = partition_for(f"{group}:{topic_id}:0", 50)
        if cluster.partition("__share_group_state", state_partition).leader == broker:
            return group
    raise AssertionError(f"no group of broker {broker}")


@SHARE
def test_delivery_state_survives_losing_the_share_coordinator(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    leader = msk_cluster.partition(topic_name, 0).leader
    bootstrap = _consumer(msk_cluster, "share-bootstrap")  # creates __share_group_state
    try:
        bootstrap.subscribe([topic_name])
        _joined(msk_cluster, [bootstrap], "share-bootstrap", topic_name)
    finally:
        bootstrap.close()
    # one broker leads both the data partition and the group's share-state partition: losing
    # it loses the share partition's memory and its coordinator at once
    group = _group_coordinated_by(msk_cluster, topic_name, leader)
    consumer = _consumer(msk_cluster, group, **{"share.acknowledgement.mode": "explicit"})
    try:
        consumer.subscribe([topic_name])
        _joined(msk_cluster, [consumer], group, topic_name)
        start = _start_offset(msk_cluster, group, topic_name)
        _produce(msk_cluster, topic_name, 20)
        got: list[int] = []

        def ack(_: int, m: Message) -> None:
            offset = _offset(m)
            got.append(offset)
            kind = AcknowledgeType.ACCEPT if offset < start + 10 else AcknowledgeType.REJECT
            consumer.acknowledge(m, kind)

        _poll_until([consumer], lambda: len(got) >= 20, ack)
        consumer.commit_sync()
    finally:
        consumer.close()
    _produce(msk_cluster, topic_name, 5, start=20)
    msk_cluster.stop_broker(leader)
    later = _consumer(msk_cluster, group)
    try:
        later.subscribe([topic_name])
        seen: list[int] = []
        _poll_until([later], lambda: len(seen) >= 5, lambda _, m: seen.append(_offset(m)))
        assert seen == list(range(start + 20, start + 25)), "accepted or rejected records came back"
    finally:
        later.close()


def test_delivery_state_survives_a_cluster_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    cluster = Cluster(brokers=3, data_dir=data, kafka_version="4.2.x").start()
    try:
        cluster.create_topic("restart-q", partitions=1, replication_factor=3)
        consumer = _consumer(cluster, "restart-g", **{"share.acknowledgement.mode": "explicit"})
        try:
            consumer.subscribe(["restart-q"])
            _joined(cluster, [consumer], "restart-g", "restart-q")
            _produce(cluster, "restart-q", 10)
            got: list[int] = []

            def ack(_: int, m: Message) -> None:
                offset = _offset(m)
                got.append(offset)
                if offset < 5:
                    consumer.acknowledge(m, AcknowledgeType.ACCEPT)
                elif offset < 7:
                    consumer.acknowledge(m, AcknowledgeType.REJECT)
                # 7-9: never acknowledged; leaving the group gives them back

            _poll_until([consumer], lambda: len(got) >= 10, ack)
            consumer.commit_sync()
        finally:
            consumer.close()
    finally:
        cluster.stop()
    cluster = Cluster(brokers=3, data_dir=data, kafka_version="4.2.x").start()
    try:
        later = _consumer(cluster, "restart-g")
        try:
            later.subscribe(["restart-q"])
            seen: list[tuple[int, int]] = []
            _poll_until([later], lambda: len(seen) >= 3, lambda _, m: seen.append(_delivery(m)))
            # only the records never acknowledged come back, delivered a second time
            assert seen == [(7, 2), (8, 2), (9, 2)]
            later.commit_sync()  # implicit mode: accepts the last poll (close alone releases)
        finally:
            later.close()
        assert _start_offset(cluster, "restart-g", "restart-q") == 10
    finally:
        cluster.stop()


def _group_configs(admin: AdminClient, group: str, *entries: tuple[str, str]) -> None:
    ops = [ConfigEntry(n, v, incremental_operation=AlterConfigOpType.SET) for n, v in entries]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=ops)
    admin.incremental_alter_configs([resource])[resource].result(10)


@SHARE
def test_group_configs_set_where_a_share_partition_starts(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    resource = ConfigResource(ResourceType.GROUP, "early")
    described = admin.describe_configs([resource])[resource].result(10)
    assert described[RESET].value == "latest"
    assert described["share.record.lock.duration.ms"].value == "30000"
    _group_configs(admin, "early", (RESET, "earliest"))
    described = admin.describe_configs([resource])[resource].result(10)
    assert (described[RESET].value, described[RESET].source) == (
        "earliest",
        ConfigSource.GROUP_CONFIG.value,
    )
    # the records are there before the group ever fetches
    _produce(msk_cluster, topic_name, 5)
    consumer = _consumer(msk_cluster, "early")
    try:
        consumer.subscribe([topic_name])
        seen: list[int] = []
        _poll_until([consumer], lambda: len(seen) >= 5, lambda _, m: seen.append(_offset(m)))
        assert seen == list(range(5))
    finally:
        consumer.close()
    # a group left at latest starts after them
    assert _start_offset(msk_cluster, "late", topic_name) == -1
    late = _consumer(msk_cluster, "late")
    try:
        late.subscribe([topic_name])
        _joined(msk_cluster, [late], "late", topic_name)
        assert _start_offset(msk_cluster, "late", topic_name) == 5
    finally:
        late.close()


@SHARE
def test_share_group_configs_are_checked(msk_cluster: Cluster, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    for name, value in [
        (RESET, "sometimes"),
        (RESET, "by_duration:-PT1H"),
        ("share.record.lock.duration.ms", "1000"),  # below group.share.min.record.lock.duration.ms
        ("share.heartbeat.interval.ms", "50000"),  # not below the session timeout
    ]:
        with pytest.raises(KafkaException) as raised:
            _group_configs(admin, "checked", (name, value))
        assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG, (name, value)
    _group_configs(admin, "checked", (RESET, "by_duration:P1DT2H"))
    resource = ConfigResource(ResourceType.GROUP, "checked")
    described = admin.describe_configs([resource])[resource].result(10)
    assert described[RESET].value == "by_duration:P1DT2H"
    # by_duration: from the first record stamped within the last day and two hours
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    _produce(msk_cluster, topic_name, 3)
    consumer = _consumer(msk_cluster, "checked")
    try:
        consumer.subscribe([topic_name])
        seen: list[int] = []
        _poll_until([consumer], lambda: len(seen) >= 3, lambda _, m: seen.append(_offset(m)))
        assert seen == [0, 1, 2]
    finally:
        consumer.close()


@SHARE
def test_read_committed_share_group_skips_aborted_and_open_transactions(
    msk_cluster: Cluster, topic_name: str
) -> None:
    """`share.isolation.level=read_committed` (a group config): the group is served up to the
    last stable offset and an aborted transaction's records are archived, never delivered;
    a read_uncommitted group gets them all."""
    msk_cluster.create_topic(topic_name, partitions=1, replication_factor=3)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    _group_configs(admin, "ru", (RESET, "earliest"))
    _group_configs(admin, "rc", (RESET, "earliest"), ("share.isolation.level", "read_committed"))
    resource = ConfigResource(ResourceType.GROUP, "ru")
    level = admin.describe_configs([resource])[resource].result(10)["share.isolation.level"]
    assert (level.value, level.source) == ("read_uncommitted", ConfigSource.DEFAULT_CONFIG.value)

    def transaction(txn_id: str, values: list[bytes], commit: bool | None) -> Producer:
        conf = {"bootstrap.servers": msk_cluster.bootstrap_servers, "transactional.id": txn_id}
        p = Producer(conf)
        p.init_transactions(10)
        p.begin_transaction()
        for v in values:
            p.produce(topic_name, v, partition=0)
        assert p.flush(10) == 0
        if commit is True:
            p.commit_transaction(10)
        elif commit is False:
            p.abort_transaction(10)
        return p

    transaction("t-abort", [b"aborted-1", b"aborted-2"], False)
    transaction("t-commit", [b"committed-1", b"committed-2"], True)
    _produce(msk_cluster, topic_name, 1)  # b"0", outside any transaction
    still_open = transaction("t-open", [b"open-1"], None)
    _produce(msk_cluster, topic_name, 1, start=1)  # b"1", behind the open transaction

    def values(group: str, expected: int) -> list[bytes]:
        consumer = _consumer(msk_cluster, group)
        got: list[bytes] = []
        try:
            consumer.subscribe([topic_name])
            _poll_until(
                [consumer], lambda: len(got) >= expected, lambda _, m: got.append(m.value() or b"")
            )
            consumer.commit_sync()  # what it got is accepted
        finally:
            consumer.close()
        return got

    assert values("rc", 3) == [b"committed-1", b"committed-2", b"0"]
    assert values("ru", 7) == [
        b"aborted-1",
        b"aborted-2",
        b"committed-1",
        b"committed-2",
        b"0",
        b"open-1",
        b"1",
    ]
    still_open.commit_transaction(10)
    assert values("rc", 2) == [b"open-1", b"1"]
