"""Storage errors, seen by real clients: a metadata change whose save fails is answered with an
error and leaves no trace, and the connection stays open; recovery on a full file system never
touches pages that were never written (tmpfs would have to allocate them: SIGBUS)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.admin.topics import CreateTopicsRequest
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest
from kafka.protocol.metadata.metadata import MetadataRequest

from msklite import Cluster
from msklite.errors import ErrorCode

from .rawclient import RawClient

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a file system that really fills up."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


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
    """`full[0] = True` makes every save of cluster-metadata.json fail with ENOSPC."""
    full = [False]
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        if full[0] and dst.endswith("cluster-metadata.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
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
