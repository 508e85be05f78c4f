"""Log behaviour seen through real clients: idempotent retries, segment roll, retention,
max-timestamp lookup, incremental fetch sessions."""

from __future__ import annotations

import glob
import os
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from kafka.protocol.consumer.fetch import FetchRequest

from msklite import Cluster
from msklite.errors import ErrorCode
from msklite.protocol.records import encode_batch
from tests.integration.rawclient import RawClient
from tests.requests import produce_request


def _leader(cluster: Cluster, topic: str, partition: int = 0) -> str:
    assert cluster.controller is not None
    b = cluster.brokers[cluster.controller.topics[topic].partitions[partition].leader].info
    return f"{b.host}:{b.port}"


def _produce_raw(c: RawClient, topic: str, batch: bytes) -> tuple[int, int]:
    p = (
        c.request(produce_request(topic, {0: batch}, acks=-1), 9)
        .responses[0]
        .partition_responses[0]
    )
    return p.error_code, p.base_offset


def _count(bootstrap: str, topic: str) -> tuple[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        c.close()


def test_idempotent_retries_survive_restart(tmp_path: object) -> None:
    data_dir = str(tmp_path)

    def batch(seq: int) -> bytes:
        return encode_batch(
            [(None, b"s%d" % seq)], producer_id=77, producer_epoch=0, base_sequence=seq
        )

    with Cluster(brokers=1, data_dir=data_dir) as cluster:
        cluster.create_topic("idem")
        with RawClient(_leader(cluster, "idem")) as c:
            assert [_produce_raw(c, "idem", batch(s)) for s in range(3)] == [(0, 0), (0, 1), (0, 2)]
            assert _produce_raw(c, "idem", batch(1)) == (0, 1)  # retry: original offset
            assert _produce_raw(c, "idem", batch(5))[0] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    with Cluster(brokers=1, data_dir=data_dir) as cluster:
        with RawClient(_leader(cluster, "idem")) as c:
            assert _produce_raw(c, "idem", batch(2)) == (0, 2)  # still recognised
            assert _produce_raw(c, "idem", batch(3)) == (0, 3)
        assert _count(cluster.bootstrap_servers, "idem") == (0, 4)


def test_small_segments_roll_and_everything_is_readable(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("rolling", configs={"segment.bytes": "4096"})
    p = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers, "linger.ms": 1})
    for i in range(2000):
        p.produce("rolling", value=b"%06d" % i + b"x" * 100)
        if i % 100 == 99:
            p.flush(10)
    assert p.flush(10) == 0
    segments = glob.glob(os.path.join(msk_cluster.data_dir, "broker-*", "rolling-0", "*.log"))
    assert len(segments) >= 10
    c = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": "x",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition("rolling", 0, OFFSET_BEGINNING)])
    seen: list[tuple[int | None, bytes]] = []
    deadline = time.monotonic() + 20
    while len(seen) < 2000 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            seen.append((m.offset(), (m.value() or b"")[:6]))
    c.close()
    assert seen == [(i, b"%06d" % i) for i in range(2000)]


def test_retention_moves_the_log_start_offset(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("expiring", configs={"segment.bytes": "2048", "retention.ms": "60000"})
    p = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers, "linger.ms": 0})
    old = int(time.time() * 1000) - 3_600_000
    for _ in range(100):
        p.produce("expiring", value=b"x" * 100, timestamp=old)
        p.flush(10)
    for _ in range(5):
        p.produce("expiring", value=b"fresh")
    p.flush(10)
    assert msk_cluster.enforce_retention() > 0
    low, high = _count(msk_cluster.bootstrap_servers, "expiring")
    assert high == 105 and 90 <= low <= 100


def test_list_offsets_max_timestamp_and_earliest(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("stamps")
    p = Producer({"bootstrap.servers": msk_cluster.bootstrap_servers})
    for i, ts in enumerate([5000, 9000, 7000, 9000, 1000]):
        p.produce("stamps", value=b"%d" % i, timestamp=ts)
        p.flush(10)
    admin = AdminClient({"bootstrap.servers": msk_cluster.bootstrap_servers})
    tp = TopicPartition("stamps", 0)
    res = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(10)
    assert (res.offset, res.timestamp) == (1, 9000)
    assert admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(10).offset == 0
    assert admin.list_offsets({tp: OffsetSpec.latest()})[tp].result(10).offset == 5
    assert admin.list_offsets({tp: OffsetSpec.for_timestamp(6000)})[tp].result(10).offset == 1


def test_incremental_fetch_session_over_the_wire(msk_cluster: Cluster) -> None:
    msk_cluster.create_topic("sess")
    topic_cls = FetchRequest.FetchTopic

    def fetch(c: RawClient, sid: int, epoch: int, offset: int | None) -> object:
        topics = []
        if offset is not None:
            part = topic_cls.FetchPartition(
                partition=0,
                current_leader_epoch=-1,
                fetch_offset=offset,
                last_fetched_epoch=-1,
                log_start_offset=-1,
                partition_max_bytes=1 << 20,
            )
            topics = [topic_cls(topic="sess", partitions=[part])]
        req = FetchRequest(
            version=12,
            replica_id=-1,
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            isolation_level=0,
            session_id=sid,
            session_epoch=epoch,
            topics=topics,
            forgotten_topics_data=[],
            rack_id="",
        )
        return c.request(req, 12)

    with RawClient(_leader(msk_cluster, "sess")) as c:
        full = fetch(c, 0, 0, 0)
        sid = full.session_id  # type: ignore[attr-defined]
        assert sid > 0 and len(full.responses[0].partitions) == 1  # type: ignore[attr-defined]
        quiet = fetch(c, sid, 1, None)
        assert quiet.error_code == 0 and quiet.responses == []  # type: ignore[attr-defined]
        _produce_raw(c, "sess", encode_batch([(None, b"news")]))
        news = fetch(c, sid, 2, None)
        [part] = news.responses[0].partitions  # type: ignore[attr-defined]
        assert part.high_watermark == 1 and part.records
        stale = fetch(c, sid, 2, None)
        assert stale.error_code == ErrorCode.INVALID_FETCH_SESSION_EPOCH  # type: ignore[attr-defined]


def test_auto_create_follows_the_broker_config() -> None:
    with Cluster(brokers=3) as cluster:  # MSK default: auto.create.topics.enable=false
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        md = admin.list_topics(topic="not-created", timeout=10)
        assert md.topics["not-created"].error is not None
        assert md.topics["not-created"].error.name() == "UNKNOWN_TOPIC_OR_PART"
        assert cluster.topics() == {}
    with Cluster(
        brokers=3, config={"auto.create.topics.enable": "true", "num.partitions": "4"}
    ) as cluster:
        p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
        p.produce("auto", value=b"v")
        assert p.flush(10) == 0
        assert cluster.topics() == {"auto": 4}


def test_retention_runs_in_the_background() -> None:
    config = {"log.retention.check.interval.ms": "20", "log.segment.delete.delay.ms": "0"}
    with Cluster(brokers=1, config=config) as cluster:
        cluster.create_topic("bg", configs={"segment.bytes": "1024", "retention.ms": "1000"})
        p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 0})
        for _ in range(20):
            p.produce("bg", value=b"x" * 200, timestamp=1_000_000)
            p.flush(10)
        deadline = time.monotonic() + 10
        while _count(cluster.bootstrap_servers, "bg")[0] == 0:
            assert time.monotonic() < deadline, "the retention task never ran"
        assert _count(cluster.bootstrap_servers, "bg")[1] == 20
