"""Storage errors, seen by real clients: a metadata change whose save fails is answered with an
error and leaves no trace, and the connection stays open; recovery on a full file system never
touches pages that were never written (tmpfs would have to allocate them: SIGBUS)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kafka.protocol.admin.cluster import DescribeLogDirsRequest
from kafka.protocol.admin.topics import CreateTopicsRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.metadata.metadata import MetadataRequest

from msklite import Cluster, metadata_log
from msklite.errors import ErrorCode
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import HEADER_SIZE, encode_batch, read_header
from tests.requests import fetch_request, produce_request

from .helpers import wait_until
from .rawclient import RawClient

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def mount_tmpfs() -> Iterator[Callable[[Path], Path]]:
    """Mount a 4 MiB tmpfs — a file system that really fills up — at a directory."""
    mounted: list[Path] = []

    def mount(at: Path) -> Path:
        at.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(at)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(at)
        return at

    yield mount
    for at in mounted:
        subprocess.run(["umount", "-l", str(at)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path, mount_tmpfs: Callable[[Path], Path]) -> Path:
    return mount_tmpfs(tmp_path / "tmpfs")


def _fill(fs: Path) -> None:
    """Take every free block of the file system."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def metadata_disk_full(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """`full[0] = True` makes every write of cluster metadata fail with ENOSPC."""
    full = [False]
    real_write = metadata_log.write_all

    def write_all(fd: int, data: bytes) -> None:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    monkeypatch.setattr(metadata_log, "write_all", write_all)
    yield full


def test_create_topics_whose_metadata_save_fails_answers_an_error_and_leaves_no_topic(
    tmp_path: Path, metadata_disk_full: list[bool]
) -> None:
    with Cluster(brokers=3, data_dir=str(tmp_path)) as cluster:
        metadata_disk_full[0] = True
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
        future = admin.create_topics([NewTopic("unsaved", 3, 3)])["unsaved"]
        with pytest.raises(KafkaException) as err:
            future.result(10)
        assert err.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
        assert "unsaved" not in admin.list_topics(timeout=10).topics

        with RawClient(cluster.bootstrap_servers) as raw:
            topic = CreateTopicsRequest.CreatableTopic(
                name="raw", num_partitions=1, replication_factor=3, assignments=[], configs=[]
            )
            created = raw.request(
                CreateTopicsRequest(version=5, topics=[topic], timeout_ms=5000), 5
            )
            assert created.topics[0].error_code == ErrorCode.KAFKA_STORAGE_ERROR
            # __consumer_offsets cannot be created either: the coordinator is not available.
            found = raw.request(FindCoordinatorRequest(version=3, key="g", key_type=0), 3)
            assert found.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
            # The same connection still answers, and nothing was created.
            meta = raw.request(MetadataRequest(version=4, topics=None), 4)
            assert [t.name for t in meta.topics] == []
            raw.sock.settimeout(0.2)
            assert not raw.is_closed_by_peer()

        metadata_disk_full[0] = False
        admin.create_topics([NewTopic("unsaved", 3, 3)])["unsaved"].result(10)
        assert cluster.topics() == {"unsaved": 3}


def test_recovery_on_a_full_tmpfs_never_reads_the_sparse_tail(tmpfs: Path) -> None:
    # A crash leaves the active segment's preallocated tail sparse; the last batch ends on a
    # page boundary, so the header the scan looks for next lies in a page never written.
    written = _python(
        f"""
        from msklite.clock import SystemClock
        from msklite.config import TopicConfig
        from msklite.log.partition_log import PartitionLog
        from msklite.protocol.records import encode_batch, validate_produced_batch
        log = PartitionLog({str(tmpfs / "p")!r}, TopicConfig(), SystemClock())
        v = next(v for v in range(4096) if len(encode_batch([(None, b"x" * v)])) == 4096)
        batch = memoryview(encode_batch([(None, b"x" * v)]))
        log.append_as_leader(batch, validate_produced_batch(batch, 10**7), 0)
        """
    )
    assert written.returncode == 0, written.stderr
    _fill(tmpfs)
    opened = _python(
        f"""
        from msklite.clock import SystemClock
        from msklite.config import TopicConfig
        from msklite.log.partition_log import PartitionLog
        print(PartitionLog({str(tmpfs / "p")!r}, TopicConfig(), SystemClock()).log_end_offset)
        """
    )
    assert opened.returncode == 0, (opened.returncode, opened.stderr)
    assert opened.stdout.strip() == "1"


# ---- a log directory that fills up, with real clients ----

VALUE = b"v" * 2000  # two records cross a page: the first write after the fill fails


def _broker_address(cluster: Cluster, node_id: int) -> str:
    info = cluster.brokers[node_id].info
    return f"{info.host}:{info.port}"


def _create_with_admin(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(10)


def _create(cluster: Cluster, topic: str, replicas: list[int]) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    new = NewTopic(topic, num_partitions=1, replica_assignment=[replicas])
    admin.create_topics([new])[topic].result(10)


def _produce_confluent(bootstrap: str, topic: str, values: list[bytes]) -> None:
    errors: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for v in values:
        producer.produce(
            topic, value=v, on_delivery=lambda err, _msg: errors.append(err) if err else None
        )
    assert producer.flush(30) == 0
    assert errors == []


async def _produce_aiokafka(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=10000
    )
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v)
    finally:
        await producer.stop()


def _produce_kafka_python(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, retries=10
    )
    try:
        for future in [producer.send(topic, v) for v in values]:
            future.get(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, n: int) -> list[bytes | None]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "storage"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[bytes | None] = []
    deadline = time.monotonic() + 20
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                out.append(m.value())
    finally:
        consumer.close()
    return out


def _log_dir_error(address: str) -> int:
    with RawClient(address) as raw:
        resp = raw.request(DescribeLogDirsRequest(version=4, topics=None), 4)
        [result] = resp.results
        return int(result.error_code)


def _fetch_and_produce_errors(address: str, topic: str) -> tuple[int, int]:
    """The error codes of a consumer Fetch (v12, allowed to read a follower) and a Produce of
    one record to partition 0, sent to one broker."""
    fetch = fetch_request(topic, max_bytes=10**6)
    produce = produce_request(topic, {0: encode_batch([(None, b"raw")])})
    with RawClient(address) as raw:
        fetched = raw.request(fetch, 12).responses[0].partitions[0].error_code
        produced = raw.request(produce, 9).responses[0].partition_responses[0].error_code
    return int(fetched), int(produced)


def _offline_replicas(address: str, topic: str) -> list[int]:
    with RawClient(address) as raw:
        resp = raw.request(MetadataRequest(version=9, topics=[topic]), 9)
        [t] = resp.topics
        return list(t.partitions[0].offline_replicas)


def test_a_leader_whose_disk_fills_answers_storage_error_and_clients_move_on(
    tmp_path: Path, mount_tmpfs: Callable[[Path], Path], caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    full = mount_tmpfs(data / "broker-1")
    config = {"replica.fetch.backoff.ms": "50"}
    clients: list[tuple[str, Callable[[str, str, list[bytes]], None]]] = [
        ("confluent", _produce_confluent),
        ("aiokafka", lambda b, t, v: asyncio.run(_produce_aiokafka(b, t, v))),
        ("kafka-python", _produce_kafka_python),
    ]
    with Cluster(brokers=3, data_dir=str(data), config=config) as cluster:
        _create(cluster, "t", [1, 2, 3])
        expected = [b"before-%d-" % i + VALUE for i in range(20)]
        _produce_confluent(cluster.bootstrap_servers, "t", expected)
        for name, produce in clients:
            _fill(full)
            # The leader's append fails: KAFKA_STORAGE_ERROR; the client finds the new leader.
            values = [name.encode() + b"-%d-" % i + VALUE for i in range(20)]
            produce(cluster.bootstrap_servers, "t", values)
            expected += values
            view = cluster.partition("t", 0)
            assert view.leader != 1 and 1 not in view.isr
            assert _offline_replicas(_broker_address(cluster, 2), "t") == [1]
            assert _log_dir_error(_broker_address(cluster, 1)) == ErrorCode.KAFKA_STORAGE_ERROR
            assert _log_dir_error(_broker_address(cluster, 2)) == ErrorCode.NONE

            # Space returns: the directory comes back, 1 catches up and, as the preferred
            # replica, leads again.
            (full / "filler").unlink()
            wait_until(
                lambda: (p := cluster.partition("t", 0)).leader == 1 and len(p.isr) == 3,
                "1 leading again",
            )
            assert _offline_replicas(_broker_address(cluster, 2), "t") == []
        offline = [r for r in caplog.records if r.name.startswith("msklite") and "offline" in r.msg]
        assert len(offline) == len(clients)  # once per failure, not once per batch
        total = len(expected)
        assert set(cluster.partition("t", 0).log_end_offsets.values()) == {total}
        # Nothing acknowledged was lost, nothing was written twice.
        assert _consume(cluster.bootstrap_servers, "t", total) == expected


def test_a_follower_whose_disk_fills_leaves_the_isr_and_returns_when_space_does(
    tmp_path: Path, mount_tmpfs: Callable[[Path], Path]
) -> None:
    data = tmp_path / "data"
    full = mount_tmpfs(data / "broker-3")
    config = {"replica.fetch.backoff.ms": "50"}
    with Cluster(brokers=3, data_dir=str(data), config=config) as cluster:
        _create(cluster, "t", [1, 2, 3])
        _create(cluster, "u", [2, 3, 1])
        _fill(full)
        values = [b"%d-" % i + VALUE for i in range(30)]
        asyncio.run(_produce_aiokafka(cluster.bootstrap_servers, "t", values[:15]))
        _produce_confluent(cluster.bootstrap_servers, "t", values[15:])
        assert cluster.partition("t", 0).isr == [1, 2]
        assert cluster.partition("u", 0).isr == [2, 1]  # every replica in the directory
        assert _log_dir_error(_broker_address(cluster, 3)) == ErrorCode.KAFKA_STORAGE_ERROR
        assert _offline_replicas(_broker_address(cluster, 3), "t") == [3]  # still answers
        storage_error = ErrorCode.KAFKA_STORAGE_ERROR
        assert _fetch_and_produce_errors(_broker_address(cluster, 3), "t") == (storage_error,) * 2

        (full / "filler").unlink()
        wait_until(lambda: cluster.partition("t", 0).isr == [1, 2, 3], "3 back in the ISR")
        assert cluster.partition("t", 0).log_end_offsets == {1: 30, 2: 30, 3: 30}
        assert _log_dir_error(_broker_address(cluster, 3)) == ErrorCode.NONE


# ---- `msklite serve` on a file system that fills up ----


class Serve:
    """`python -m msklite serve` in a subprocess, on any free port."""

    def __init__(self, data: Path, brokers: int) -> None:
        args = ["serve", "--port", "0", "--brokers", str(brokers), "--data-dir", str(data)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "msklite", *args, "--config", "replica.fetch.backoff.ms=50"],
            env={**os.environ, "PYTHONPATH": REPO},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the first line, once every broker listens
        if not line.startswith("Bootstrap servers: "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"serve died ({self.proc.returncode}): {line}{err}")
        self.bootstrap = line.split(": ", 1)[1].strip()

    def address(self, node_id: int) -> str:
        return self.bootstrap.split(",")[node_id - 1]

    def terminate(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out + err


def _page_aligned_batch(base_offset: int, end: int) -> bytes:
    """A valid batch that, written at `end`, ends exactly on a page boundary: the next header
    recovery looks for lies in the following page."""
    for size in range((-end) % 4096 or 4096, 3 * 4096, 4096):
        for v in range(size):
            batch = encode_batch([(None, b"x" * v)], base_offset=base_offset)
            if len(batch) == size:
                return batch
            if len(batch) > size:
                break
    raise AssertionError("no batch size fits")


def _written_end(segment: Path) -> tuple[int, int]:
    """(end of the last whole batch, next offset) of a segment file."""
    data = segment.read_bytes()
    pos, next_offset = 0, 0
    while pos + HEADER_SIZE <= len(data):
        h = read_header(data, pos)
        if h.magic != 2 or h.batch_length <= 0:
            break
        pos += h.size
        next_offset = h.last_offset + 1
    return pos, next_offset


def test_serve_restarts_on_a_full_file_system_without_dying_of_sigbus(
    tmp_path: Path, mount_tmpfs: Callable[[Path], Path]
) -> None:
    data = mount_tmpfs(tmp_path / "data")
    server = Serve(data, brokers=1)
    _create_with_admin(server.bootstrap, "t")
    _produce_confluent(server.bootstrap, "t", [b"kept-%d" % i for i in range(10)])
    server.proc.kill()  # a crash: the active segment keeps its sparse tail
    server.proc.communicate(timeout=30)

    [segment] = (data / "broker-1" / "t-0").glob("*.log")
    end, next_offset = _written_end(segment)
    with open(segment, "r+b") as f:  # one more batch had reached the file before the crash
        f.seek(end)
        f.write(_page_aligned_batch(next_offset, end))
    _fill(data)

    server = Serve(data, brokers=1)  # recovery on the full file system
    with RawClient(server.address(1)) as raw:
        meta = raw.request(MetadataRequest(version=9, topics=None), 9)
        assert [t.name for t in meta.topics] == ["t"]
    code, output = server.terminate()
    assert code == 0, output
    assert "Traceback" not in output


def test_serve_with_a_full_follower_disk_stops_with_status_zero(
    tmp_path: Path, mount_tmpfs: Callable[[Path], Path]
) -> None:
    data = tmp_path / "data"
    full = mount_tmpfs(data / "broker-3")
    server = Serve(data, brokers=3)
    _create_with_admin(server.bootstrap, "t")
    _fill(full)
    _produce_confluent(server.bootstrap, "t", [b"%d-" % i + VALUE for i in range(10)])
    assert _log_dir_error(server.address(3)) == ErrorCode.KAFKA_STORAGE_ERROR
    code, output = server.terminate()
    assert code == 0, output
    assert output.count("is offline") == 1 and "Traceback" not in output


def test_a_read_that_fails_takes_the_directory_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Cluster(brokers=3, data_dir=str(tmp_path)) as cluster:
        _create(cluster, "t", [1, 2, 3])
        _produce_confluent(cluster.bootstrap_servers, "t", [b"a", b"b"])
        real_read = PartitionLog.read

        def read(log: PartitionLog, *args: Any) -> list[memoryview]:
            if "broker-1" in log.directory:
                raise OSError(errno.EIO, "Input/output error")
            return real_read(log, *args)

        monkeypatch.setattr(PartitionLog, "read", read)
        fetched, produced = _fetch_and_produce_errors(_broker_address(cluster, 1), "t")
        assert fetched == produced == ErrorCode.KAFKA_STORAGE_ERROR
        view = cluster.partition("t", 0)
        assert view.leader != 1 and 1 not in view.isr
