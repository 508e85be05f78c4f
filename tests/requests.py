"""Produce and Fetch requests of one topic as kafka-python builds them, for the unit and
integration tests that send them raw (over `tests.integration.rawclient.RawClient`, or
straight into a handler or connection)."""

from __future__ import annotations

from collections.abc import Mapping

from kafka.protocol.consumer.fetch import FetchRequest
from kafka.protocol.producer.produce import ProduceRequest


def produce_request(
    topic: str,
    records: Mapping[int, bytes | None],
    *,
    version: int = 9,
    acks: int = 1,
    timeout_ms: int = 5000,
    transactional_id: str | None = None,
) -> ProduceRequest:
    """A Produce of `records` (partition index → record batch bytes, None for a null) to
    `topic`."""
    partition = ProduceRequest.TopicProduceData.PartitionProduceData
    data = ProduceRequest.TopicProduceData(
        name=topic,
        partition_data=[partition(index=i, records=r) for i, r in records.items()],
    )
    return ProduceRequest(
        version=version,
        transactional_id=transactional_id,
        acks=acks,
        timeout_ms=timeout_ms,
        topic_data=[data],
    )


def fetch_request(
    topic: str,
    *,
    version: int = 12,
    partition: int = 0,
    fetch_offset: int = 0,
    max_wait_ms: int = 0,
    min_bytes: int = 0,
    max_bytes: int = 1 << 20,
    isolation_level: int = 0,
) -> FetchRequest:
    """A sessionless consumer Fetch of one partition of `topic`, from `fetch_offset`, up to
    `max_bytes` (the request's and the partition's limit)."""
    topic_cls = FetchRequest.FetchTopic
    return FetchRequest(
        version=version,
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=isolation_level,
        session_id=0,
        session_epoch=-1,
        topics=[
            topic_cls(
                topic=topic,
                partitions=[
                    topic_cls.FetchPartition(
                        partition=partition,
                        current_leader_epoch=-1,
                        fetch_offset=fetch_offset,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=max_bytes,
                    )
                ],
            )
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
