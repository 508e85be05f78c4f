"""WriteTxnMarkers (key 27) codec, hand-written: kafka-python's spec starts at v1 (Kafka 4.0
dropped v0), while Kafka 3.9 still serves v0. Versions 0-1, flexible from 1; both carry the
same fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from msklite.protocol.primitives import Reader, Writer
from msklite.protocol.txn_responses import write_partition_errors
from msklite.topic_partition import TopicPartition

FLEXIBLE_FROM = 1


@dataclass(frozen=True, slots=True)
class Marker:
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]
    coordinator_epoch: int


def decode_request(r: Reader, version: int) -> list[Marker]:
    """Raises ProtocolError when the body is malformed."""
    flex = version >= FLEXIBLE_FROM
    markers = []
    for _ in range(max(r.array_len(flex), 0)):
        producer_id = r.int64()
        epoch = r.int16()
        commit = r.boolean()
        partitions: list[TopicPartition] = []
        for _ in range(max(r.array_len(flex), 0)):
            topic = r.str_(flex)
            partitions.extend(TopicPartition(topic, r.int32()) for _ in range(r.array_len(flex)))
            if flex:
                r.skip_tagged_fields()
        coordinator_epoch = r.int32()
        if flex:
            r.skip_tagged_fields()
        markers.append(Marker(producer_id, epoch, commit, tuple(partitions), coordinator_epoch))
    if flex:
        r.skip_tagged_fields()
    return markers


def encode_response(version: int, results: Mapping[int, Mapping[TopicPartition, int]]) -> bytearray:
    """`results`: producer id -> partition -> error code."""
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    w.array_len(len(results), flex)
    for producer_id, errors in results.items():
        w.int64(producer_id)
        by_topic: dict[str, list[tuple[int, int]]] = {}
        for tp, error in errors.items():
            by_topic.setdefault(tp.topic, []).append((tp.partition, error))
        write_partition_errors(w, by_topic, flex)
        if flex:
            w.empty_tagged_fields()
    if flex:
        w.empty_tagged_fields()
    return w.buf
