"""Data on disk survives a restart; a torn tail left by a crash is cut off at start, and every
acknowledged record is still there."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from msklite import Cluster
from msklite.protocol.records import encode_batch


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    errors: list[object] = []
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for v in values:
        p.produce(topic, value=v, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(15) == 0
    assert errors == []


def _consume_all(bootstrap: str, topic: str, n: int) -> list[tuple[int, bytes | None]]:
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "restart", "enable.auto.commit": False}
    )
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[int, bytes | None]] = []
    deadline = time.monotonic() + 15
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                out.append((m.offset() or 0, m.value()))
        extra = c.poll(0.5)  # nothing beyond the acknowledged records
        assert extra is None
    finally:
        c.close()
    return out


def test_acknowledged_records_survive_a_crash_with_a_torn_tail(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cluster = Cluster(brokers=3, data_dir=str(data)).start()
    try:
        cluster.create_topic("durable", replication_factor=1, configs={"min.insync.replicas": "1"})
        _produce(cluster.bootstrap_servers, "durable", [b"v%d" % i for i in range(200)])
    finally:
        cluster.stop()

    [segment] = glob.glob(str(data / "broker-*" / "durable-0" / "*.log"))
    good_size = os.path.getsize(segment)
    # A crash in the middle of writing a batch: half of it reached the file, and the
    # clean-shutdown marker was never written.
    with open(segment, "ab") as f:
        f.write(encode_batch([(None, b"never acknowledged")], base_offset=200)[:50])
    for marker in glob.glob(str(data / "broker-*" / ".kafka_cleanshutdown")):
        os.unlink(marker)

    cluster = Cluster(brokers=3, data_dir=str(data)).start()
    try:
        with open(segment, "rb") as f:
            tail = f.read()[good_size : good_size + 50]
        # The torn bytes are gone (the active segment is preallocated again: zeros).
        assert tail == bytes(50)
        got = _consume_all(cluster.bootstrap_servers, "durable", 200)
        assert got == [(i, b"v%d" % i) for i in range(200)]
        _produce(cluster.bootstrap_servers, "durable", [b"after"])
        assert _consume_all(cluster.bootstrap_servers, "durable", 201)[-1] == (200, b"after")
    finally:
        cluster.stop()


def test_topics_and_ids_survive_a_clean_restart(tmp_path: Path) -> None:
    with Cluster(brokers=2, data_dir=str(tmp_path)) as cluster:
        created = cluster.create_topic("kept", partitions=4, configs={"retention.ms": "1000000"})
        cluster.create_topic("gone")
        cluster.delete_topic("gone")
    with Cluster(brokers=2, data_dir=str(tmp_path)) as cluster:
        assert cluster.topics() == {"kept": 4}
        assert cluster.controller is not None
        kept = cluster.controller.topics["kept"]
        assert kept.topic_id == created.topic_id
        assert kept.configs == {"retention.ms": "1000000"}
    assert not glob.glob(str(tmp_path / "broker-*" / "gone-*"))
