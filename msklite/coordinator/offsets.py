"""Committed offsets and their expiry (Kafka's OffsetAndMetadata and
GroupMetadata.removeExpiredOffsets, KIP-211).

An offset expires `offsets.retention.minutes` after:
- its explicit expiry, when the commit carried a retention time (OffsetCommit v2-v4);
- otherwise, for a group managed by the coordinator (a protocol type), the moment the group
  became Empty — offsets of an active group never expire;
- otherwise (a standalone group that only commits), its commit timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

from msklite.topic_partition import TopicPartition


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int | None = None


def expired(
    offsets: dict[TopicPartition, CommittedOffset],
    *,
    now_ms: int,
    retention_ms: int,
    empty_since: int | None,
) -> list[TopicPartition]:
    """The keys of `offsets` that have expired. `empty_since` is when a coordinator-managed
    group became Empty, None for standalone groups; active groups must not be passed."""
    out = []
    for key, o in offsets.items():
        if o.expire_timestamp is not None:
            deadline = o.expire_timestamp
        elif empty_since is not None:
            deadline = empty_since + retention_ms
        else:
            deadline = o.commit_timestamp + retention_ms
        if now_ms >= deadline:
            out.append(key)
    return out
