"""The embedded consumer protocol of classic groups (Kafka's ConsumerProtocolSubscription and
ConsumerProtocolAssignment, protocol type "consumer"): what a classic consumer puts in its
JoinGroup metadata and receives as its SyncGroup assignment. Read when a group moves between
the classic and the consumer protocol, and when a classic member lives in a consumer group.

Both are non-flexible and start with an int16 version; Kafka reads a newer version than it
knows as the newest it knows, and so does this module (versions 0-3).
"""

from __future__ import annotations

from dataclasses import dataclass

from msklite.protocol.primitives import Buffer, Reader, Writer

PROTOCOL_TYPE = "consumer"

# (topic name, partitions) as both schemas carry them
TopicPartitions = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class Subscription:
    version: int
    topics: tuple[str, ...]
    owned: TopicPartitions  # v1+
    rack_id: str | None  # v3+


def version(data: Buffer) -> int:
    """The schema version an encoded subscription or assignment starts with (ProtocolError
    when it has none)."""
    return Reader(memoryview(data)).int16()


def _partitions(r: Reader) -> TopicPartitions:
    return tuple(
        (r.string(), tuple(r.int32() for _ in range(max(r.array_len(False), 0))))
        for _ in range(max(r.array_len(False), 0))
    )


def decode_subscription(data: Buffer) -> Subscription:
    """Raises ProtocolError when `data` is not a ConsumerProtocolSubscription."""
    r = Reader(memoryview(data))
    v = r.int16()
    topics = tuple(r.string() for _ in range(max(r.array_len(False), 0)))
    r.bytes_()  # user data
    owned: TopicPartitions = _partitions(r) if v >= 1 else ()
    if v >= 2:
        r.int32()  # generation id
    rack_id = r.nullable_string() if v >= 3 else None
    return Subscription(v, topics, owned, rack_id)


def decode_assignment(data: Buffer) -> TopicPartitions:
    """The partitions of a ConsumerProtocolAssignment; none for empty bytes (a member whose
    assignment was reset by a rebalance). Raises ProtocolError for anything else."""
    if not data:
        return ()
    r = Reader(memoryview(data))
    r.int16()
    return _partitions(r)


def encode_assignment(schema_version: int, partitions: TopicPartitions) -> bytes:
    """A ConsumerProtocolAssignment of `schema_version` (as the member's subscription: Kafka
    answers in the version the member speaks) without user data."""
    w = Writer()
    w.int16(min(max(schema_version, 0), 3))
    w.array_len(len(partitions), False)
    for topic, ps in partitions:
        w.str_(topic, False)
        w.array_len(len(ps), False)
        for p in ps:
            w.int32(p)
    w.bytes_len(None, False)
    return bytes(w.buf)
