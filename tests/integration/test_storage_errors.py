"""Storage errors, seen by real clients: a metadata change whose save fails is answered with an
error and leaves no trace, and the connection stays open."""

from __future__ import annotations

import errno
import os
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
