"""Metadata (key 3) codec, hand-written: the most frequent control request and the second one
every client sends, so it must not wait for the spec-generated codec to load.

Versions 0-12 (flexible from 9). Field names follow MetadataRequest.json /
MetadataResponse.json. Topics are encoded as self-contained fragments (`encode_topic`) so the
handler can cache a topic's bytes per version and reuse them until the topic changes.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from msklite.protocol.primitives import Buffer, Reader, Writer

FLEXIBLE_FROM = 9
# MetadataResponse's "not requested" value for authorized operations.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
# A compact array's length is a varint of count + 1: one byte up to 126 elements.
_MAX_ONE_BYTE_COUNT = 126


@dataclass(slots=True)
class MetadataRequestTopic:
    topic_id: uuid.UUID | None
    name: str | None


@dataclass(slots=True)
class MetadataRequest:
    topics: list[MetadataRequestTopic] | None  # None: all topics
    allow_auto_topic_creation: bool
    include_cluster_authorized_operations: bool
    include_topic_authorized_operations: bool


def decode_request(r: Reader, version: int) -> MetadataRequest:
    flex = version >= FLEXIBLE_FROM
    n = r.array_len(flex)
    topics: list[MetadataRequestTopic] | None
    if n < 0:
        topics = None
    else:
        topics = []
        for _ in range(n):
            topic_id = r.uuid() if version >= 10 else None
            name = r.nullable_str(flex) if version >= 10 else r.str_(flex)
            if flex:
                r.skip_tagged_fields()
            topics.append(MetadataRequestTopic(topic_id, name))
        if version == 0 and not topics:
            topics = None  # v0 has no null: an empty list means all topics
    allow_auto = r.boolean() if version >= 4 else True
    include_cluster = r.boolean() if 8 <= version <= 10 else False
    include_topic = r.boolean() if version >= 8 else False
    if flex:
        r.skip_tagged_fields()
    return MetadataRequest(topics, allow_auto, include_cluster, include_topic)


class PartitionMetadata(NamedTuple):
    """A partition's entry; any tuple of these fields in this order will do (the metadata
    cache builds 10,000 of them for a client's first Metadata: a tuple is the cheapest)."""

    error_code: int
    partition_index: int
    leader_id: int
    leader_epoch: int
    replica_nodes: list[int]
    isr_nodes: list[int]
    offline_replicas: list[int]


# error_code, partition_index, leader_id, leader_epoch, replica_nodes, isr_nodes,
# offline_replicas: a PartitionMetadata or a plain tuple
PartitionRow = tuple[int, int, int, int, list[int], list[int], list[int]]


@dataclass(slots=True)
class BrokerMetadata:
    node_id: int
    host: str
    port: int
    rack: str | None


def encode_topic(
    version: int,
    error_code: int,
    name: str,
    topic_id: uuid.UUID,
    is_internal: bool,
    partitions: Sequence[PartitionRow],
    authorized_operations: int = AUTHORIZED_OPERATIONS_OMITTED,
) -> bytes:
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    w.int16(error_code)
    if version >= 12:
        w.nullable_str(name, flex)
    else:
        w.str_(name, flex)
    if version >= 10:
        w.uuid(topic_id)
    if version >= 1:
        w.boolean(is_internal)
    w.array_len(len(partitions), flex)
    out: list[Buffer] = [w.buf]
    # One Struct.pack per partition instead of a dozen Writer calls (a client's first
    # Metadata for 10,000 partitions after they change: ≈16 → ≈6 ms).
    with_epoch = version >= 7
    with_offline = version >= 5
    extra = 1 if flex else 0  # compact arrays carry their length + 1
    end = (0,) if flex else ()  # no tagged fields
    layouts: dict[tuple[int, int, int], struct.Struct] = {}
    for p in partitions:
        error, index, leader, epoch, replicas, isr, offline = p
        if not with_offline:
            offline = []
        if flex and len(replicas) > _MAX_ONE_BYTE_COUNT:  # isr, offline: subsets
            out.append(_encode_partition_writer(version, p))
            continue
        sizes = (len(replicas), len(isr), len(offline) if with_offline else -1)
        layout = layouts.get(sizes)
        if layout is None:
            layout = layouts[sizes] = _partition_layout(version, *sizes)
        head = (error, index, leader, epoch) if with_epoch else (error, index, leader)
        if with_offline:
            out.append(
                layout.pack(
                    *head,
                    sizes[0] + extra,
                    *replicas,
                    sizes[1] + extra,
                    *isr,
                    sizes[2] + extra,
                    *offline,
                    *end,
                )
            )
        else:
            out.append(layout.pack(*head, sizes[0] + extra, *replicas, sizes[1] + extra, *isr))
    tail = Writer()
    if version >= 8:
        tail.int32(authorized_operations)
    if flex:
        tail.empty_tagged_fields()
    out.append(tail.buf)
    return b"".join(out)


def _encode_partition_writer(version: int, p: PartitionRow) -> bytes:
    """A partition entry whose replica lists are too long for `_partition_layout`."""
    error, index, leader, epoch, replicas, isr, offline = p
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    w.int16(error)
    w.int32(index)
    w.int32(leader)
    if version >= 7:
        w.int32(epoch)
    for nodes in (replicas, isr) + ((offline,) if version >= 5 else ()):
        w.array_len(len(nodes), flex)
        for node in nodes:
            w.int32(node)
    if flex:
        w.empty_tagged_fields()
    return bytes(w.buf)


@functools.cache
def _partition_layout(version: int, replicas: int, isr: int, offline: int) -> struct.Struct:
    """The Struct of one partition entry with lists of these sizes (offline -1: absent)."""
    flex = version >= FLEXIBLE_FROM
    fmt = ">hii" + ("i" if version >= 7 else "")
    for n in (replicas, isr, offline):
        if n < 0:
            continue
        fmt += ("B" if flex else "i") + "i" * n
    return struct.Struct(fmt + ("B" if flex else ""))


def encode_response(
    version: int,
    brokers: list[BrokerMetadata],
    cluster_id: str,
    controller_id: int,
    topic_fragments: list[bytes],
    cluster_authorized_operations: int = AUTHORIZED_OPERATIONS_OMITTED,
) -> list[bytes | bytearray]:
    flex = version >= FLEXIBLE_FROM
    w = Writer()
    if version >= 3:
        w.int32(0)  # throttle_time_ms
    w.array_len(len(brokers), flex)
    for b in brokers:
        w.int32(b.node_id)
        w.str_(b.host, flex)
        w.int32(b.port)
        if version >= 1:
            w.nullable_str(b.rack, flex)
        if flex:
            w.empty_tagged_fields()
    if version >= 2:
        w.nullable_str(cluster_id, flex)
    if version >= 1:
        w.int32(controller_id)
    w.array_len(len(topic_fragments), flex)
    tail = Writer()
    if 8 <= version <= 10:
        tail.int32(cluster_authorized_operations)
    if flex:
        tail.empty_tagged_fields()
    return [w.buf, *topic_fragments, tail.buf]
