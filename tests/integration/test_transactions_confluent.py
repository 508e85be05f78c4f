"""Transactions with confluent-kafka (librdkafka): commit and abort as read_committed and
read_uncommitted consumers see them, consume-transform-produce with
send_offsets_to_transaction (also while the transaction coordinator's broker, then the output
partition's leader, is stopped and started), and a zombie producer fenced by a second
instance."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from msklite import Cluster
from msklite.coordinator.coordinator import partition_for
from tests.integration.helpers import wait_until
from tests.integration.rawclient import RawClient

DEADLINE_S = 30.0


def _txn_producer(cluster: Cluster, txn_id: str, **extra: object) -> Producer:
    conf: dict[str, object] = {
        "bootstrap.servers": cluster.bootstrap_servers,
        "transactional.id": txn_id,
        "linger.ms": 0,
    }
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(DEADLINE_S)
    return p


def _read_all(cluster: Cluster, topic: str, isolation: str, expect: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record an assigned consumer at `isolation` sees, polling
    until `expect` records arrived and then a little longer to catch extras."""
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": f"reader-{isolation}-{time.monotonic_ns()}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + DEADLINE_S
    quiet_until = None
    try:
        while True:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                offset, value = m.offset(), m.value()
                assert offset is not None and value is not None
                out.append((offset, value))
            if len(out) >= expect and quiet_until is None:
                quiet_until = time.monotonic() + 0.5
            if quiet_until is not None and time.monotonic() > quiet_until:
                return out
            assert time.monotonic() < deadline, f"read {len(out)} of {expect}"
    finally:
        c.close()


def test_commit_and_abort_as_read_committed_and_uncommitted_see_them(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    p = _txn_producer(msk_cluster, "txn-commit-abort")
    p.begin_transaction()
    for i in range(3):
        p.produce(topic_name, value=b"c1-%d" % i, partition=0)
    p.commit_transaction(DEADLINE_S)
    p.begin_transaction()
    for i in range(2):
        p.produce(topic_name, value=b"a-%d" % i, partition=0)
    p.flush(DEADLINE_S)
    p.abort_transaction(DEADLINE_S)
    p.begin_transaction()
    p.produce(topic_name, value=b"c2-0", partition=0)
    p.commit_transaction(DEADLINE_S)

    committed = _read_all(msk_cluster, topic_name, "read_committed", 4)
    # Kafka's offsets: 3 records, COMMIT marker at 3, 2 aborted at 4-5, ABORT marker at 6,
    # 1 record at 7, COMMIT marker at 8. Markers are never records.
    assert committed == [(0, b"c1-0"), (1, b"c1-1"), (2, b"c1-2"), (7, b"c2-0")]
    uncommitted = _read_all(msk_cluster, topic_name, "read_uncommitted", 6)
    assert uncommitted == [
        (0, b"c1-0"),
        (1, b"c1-1"),
        (2, b"c1-2"),
        (4, b"a-0"),
        (5, b"a-1"),
        (7, b"c2-0"),
    ]
    c = Consumer({"bootstrap.servers": msk_cluster.bootstrap_servers, "group.id": "wm"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic_name, 0), 10) == (0, 9)
    finally:
        c.close()


def test_an_open_transaction_holds_read_committed_back(
    msk_cluster: Cluster, topic_name: str
) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    plain = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers})
    plain.produce(topic_name, value=b"before", partition=0)
    assert plain.flush(10) == 0
    p = _txn_producer(msk_cluster, "txn-open")
    p.begin_transaction()
    p.produce(topic_name, value=b"open", partition=0)
    p.flush(DEADLINE_S)
    plain.produce(topic_name, value=b"after", partition=0)
    assert plain.flush(10) == 0
    # the LSO stops at the open transaction's first offset: only "before" is stable
    assert [v for _, v in _read_all(msk_cluster, topic_name, "read_committed", 1)] == [b"before"]
    p.commit_transaction(DEADLINE_S)
    assert [v for _, v in _read_all(msk_cluster, topic_name, "read_committed", 3)] == [
        b"before",
        b"open",
        b"after",
    ]


def test_a_zombie_producer_is_fenced(msk_cluster: Cluster, topic_name: str) -> None:
    msk_cluster.create_topic(topic_name, partitions=1)
    zombie = _txn_producer(msk_cluster, "txn-zombie")
    zombie.begin_transaction()
    zombie.produce(topic_name, value=b"zombie", partition=0)
    zombie.flush(DEADLINE_S)
    # a second instance with the same transactional.id aborts the zombie's transaction
    fresh = _txn_producer(msk_cluster, "txn-zombie")
    fresh.begin_transaction()
    fresh.produce(topic_name, value=b"fresh", partition=0)
    fresh.commit_transaction(DEADLINE_S)
    with pytest.raises(KafkaException) as raised:
        zombie.produce(topic_name, value=b"late", partition=0)
        zombie.commit_transaction(DEADLINE_S)
    assert raised.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)
    assert [v for _, v in _read_all(msk_cluster, topic_name, "read_committed", 1)] == [b"fresh"]


# ---- consume-transform-produce, exactly once ----


def _rewind(consumer: Consumer) -> None:
    """After an abort: back to the group's committed offsets."""
    for tp in consumer.committed(consumer.assignment(), DEADLINE_S):
        consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))


def _transform(
    cluster: Cluster,
    src: str,
    dst: str,
    total: int,
    after_commit: Callable[[int], None] = lambda n: None,
    batch: int = 100,
    group: str | None = None,
) -> int:
    """Copy `src` to `dst` in transactions (transactional id `ctp-<dst>`) that also commit
    the input offsets (group `group`, by default `ctp-<dst>`), until `total` inputs are
    committed; returns the number of transactions aborted on the way."""
    group = group or f"ctp-{dst}"
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap_servers,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        }
    )
    producer = _txn_producer(cluster, f"ctp-{dst}", **{"transaction.timeout.ms": 20000})
    consumer.subscribe([src])
    committed = aborted = batches = 0
    deadline = time.monotonic() + 90
    try:
        while committed < total:
            assert time.monotonic() < deadline, f"{committed} of {total} committed"
            msgs = [m for m in consumer.consume(batch, 0.2) if m.error() is None]
            if not msgs:
                continue
            producer.begin_transaction()
            for m in msgs:
                producer.produce(dst, value=b"out-" + (m.value() or b""), partition=0)
            try:
                producer.send_offsets_to_transaction(
                    consumer.position(consumer.assignment()),
                    consumer.consumer_group_metadata(),
                    DEADLINE_S,
                )
                producer.commit_transaction(DEADLINE_S)
            except KafkaException as e:
                if not e.args[0].txn_requires_abort():
                    raise
                producer.abort_transaction(DEADLINE_S)
                _rewind(consumer)
                aborted += 1
                continue
            committed += len(msgs)
            batches += 1
            after_commit(batches)
    finally:
        consumer.close()
    return aborted


def _produce_inputs(cluster: Cluster, src: str, total: int) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 5})
    for i in range(total):
        p.produce(src, value=b"%d" % i, partition=i % 3)
    assert p.flush(DEADLINE_S) == 0


def _assert_exactly_once(cluster: Cluster, dst: str, total: int) -> None:
    out = _read_all(cluster, dst, "read_committed", total)
    values = sorted(v for _, v in out)
    assert values == sorted(b"out-%d" % i for i in range(total)), (
        f"{len(values)} outputs, {len(set(values))} distinct, for {total} inputs"
    )


def test_consume_transform_produce_exactly_once(msk_cluster: Cluster, topic_name: str) -> None:
    src, dst = topic_name + "-in", topic_name + "-out"
    msk_cluster.create_topic(src, partitions=3)
    msk_cluster.create_topic(dst, partitions=1)
    _produce_inputs(msk_cluster, src, 300)
    _transform(msk_cluster, src, dst, 300)
    _assert_exactly_once(msk_cluster, dst, 300)


def _leader(cluster: Cluster, topic: str, partition: int) -> int:
    return cluster.partition(topic, partition).leader


def test_consume_transform_produce_exactly_once_through_broker_restarts(
    msk_cluster: Cluster, topic_name: str
) -> None:
    """The transaction coordinator's broker, then the output partition's leader, stopped and
    started mid-run. The group's coordinator is kept on the third broker: librdkafka's
    send_offsets_to_transaction hangs past its timeout when the group coordinator's broker
    leaves the metadata (confluentinc/librdkafka#5511, #5456), against Kafka as here."""
    src, dst = topic_name + "-in", topic_name + "-out"
    msk_cluster.create_topic(src, partitions=3)
    msk_cluster.create_topic(dst, partitions=1)
    total = 2000
    _produce_inputs(msk_cluster, src, total)
    with RawClient(msk_cluster.bootstrap_servers) as c:  # creates the internal topics
        for key_type in (0, 1):
            found = c.request(FindCoordinatorRequest(version=3, key="k", key_type=key_type), 3)
            assert found.error_code == 0
    coordinator = _leader(msk_cluster, "__transaction_state", partition_for(f"ctp-{dst}", 50))
    data_leader = _leader(msk_cluster, dst, 0)
    group = next(
        g
        for g in (f"ctp-group-{i}" for i in range(1000))
        if _leader(msk_cluster, "__consumer_offsets", partition_for(g, 50))
        not in (coordinator, data_leader)
    )
    stopped: list[int] = []

    def faults(batches: int) -> None:
        if batches == 2:
            stopped.append(coordinator)
            msk_cluster.stop_broker(coordinator)
        elif batches == 6:
            msk_cluster.start_broker(stopped.pop())
        elif batches == 9:
            stopped.append(data_leader)
            msk_cluster.stop_broker(data_leader)
        elif batches == 13:
            msk_cluster.start_broker(stopped.pop())

    _transform(msk_cluster, src, dst, total, faults, batch=50, group=group)
    assert not stopped
    _assert_exactly_once(msk_cluster, dst, total)


# ---- faults: the whole cluster restarted, a data partition's leader moved ----


def test_a_transaction_open_across_a_whole_cluster_restart_is_aborted(
    tmp_path: Path, topic_name: str
) -> None:
    """Every broker stops while a transaction is open (records written, no EndTxn) and its
    producer never comes back. After the restart the coordinator reloads it from
    __transaction_state, aborts it at its timeout and writes the markers: the LSO moves on
    and a read_committed consumer gets the records behind it."""
    config = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200}
    with Cluster(brokers=3, data_dir=str(tmp_path), config=config) as cluster:
        cluster.create_topic(topic_name, partitions=1)
        p = _txn_producer(cluster, "txn-restart", **{"transaction.timeout.ms": 3000})
        p.begin_transaction()
        p.produce(topic_name, value=b"open", partition=0)
        assert p.flush(DEADLINE_S) == 0
        plain = Producer({"bootstrap.servers": cluster.bootstrap_servers})
        plain.produce(topic_name, value=b"after", partition=0)
        assert plain.flush(DEADLINE_S) == 0
        assert [v for _, v in _read_all(cluster, topic_name, "read_uncommitted", 2)] == [
            b"open",
            b"after",
        ]
        [open_txn] = [t for t in cluster.transactions() if t.transactional_id == "txn-restart"]
        assert open_txn.state == "Ongoing"
    with Cluster(brokers=3, data_dir=str(tmp_path), config=config) as cluster:
        wait_until(
            lambda: any(
                t.transactional_id == "txn-restart" and t.state == "CompleteAbort"
                for t in cluster.transactions()
            ),
            "the open transaction aborted",
            timeout=DEADLINE_S,
        )
        assert _read_all(cluster, topic_name, "read_committed", 1) == [(1, b"after")]
        # the same transactional id carries on, with a bumped epoch
        again = _txn_producer(cluster, "txn-restart")
        again.begin_transaction()
        again.produce(topic_name, value=b"next", partition=0)
        again.commit_transaction(DEADLINE_S)
        assert [v for _, v in _read_all(cluster, topic_name, "read_committed", 2)] == [
            b"after",
            b"next",
        ]


def test_the_lso_survives_a_leader_change_mid_transaction(
    msk_cluster: Cluster, topic_name: str
) -> None:
    """The data partition's leader stops while a transaction is open there: the new leader
    (a follower that replicated the batches) holds read_committed at the same first offset,
    takes the marker, and then lets the transaction through."""
    msk_cluster.create_topic(topic_name, partitions=1)
    plain = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers, "acks": "all"})
    plain.produce(topic_name, value=b"before", partition=0)
    assert plain.flush(DEADLINE_S) == 0
    p = _txn_producer(msk_cluster, "txn-leader-change")
    p.begin_transaction()
    p.produce(topic_name, value=b"open", partition=0)
    assert p.flush(DEADLINE_S) == 0
    plain.produce(topic_name, value=b"after", partition=0)
    assert plain.flush(DEADLINE_S) == 0
    old_leader = _leader(msk_cluster, topic_name, 0)
    msk_cluster.stop_broker(old_leader)
    assert _leader(msk_cluster, topic_name, 0) != old_leader
    assert [v for _, v in _read_all(msk_cluster, topic_name, "read_committed", 1)] == [b"before"]
    p.commit_transaction(DEADLINE_S)
    assert [v for _, v in _read_all(msk_cluster, topic_name, "read_committed", 3)] == [
        b"before",
        b"open",
        b"after",
    ]
    msk_cluster.start_broker(old_leader)
