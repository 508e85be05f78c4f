"""TopicPartition: the name of one partition, used wherever partitions are keyed — logs,
replicas, fetchers, fetch sessions, committed offsets. A NamedTuple: as cheap as the plain
pair it replaces, and equal to it."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"
