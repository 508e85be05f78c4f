"""InternalTopic: records the broker itself writes to and replays from an internal topic
(`__consumer_offsets`), through its replica manager like any leader append.

It satisfies the coordinator's `CoordinatorTopic` port structurally, so neither package imports
the other (they are siblings in the layering).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from msklite.clock import Clock
from msklite.errors import KafkaError
from msklite.protocol.records import encode_batch, iter_records, read_header
from msklite.replication.replica_manager import ReplicaManager

# Enough for any group's records in one read; a larger batch is still returned whole (min_one).
_READ_BYTES = 1 << 20


class InternalTopic:
    def __init__(self, replicas: ReplicaManager, topic: str, clock: Clock) -> None:
        self.replicas = replicas
        self.topic = topic
        self.clock = clock

    def is_leader(self, partition: int) -> bool:
        try:
            self.replicas.leader_partition(self.topic, partition)
        except KafkaError:
            return False
        return True

    def append(self, partition: int, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        replica = self.replicas.leader_partition(self.topic, partition)
        batch_records: list[tuple[bytes | None, bytes | None]] = list(records)
        batch = encode_batch(batch_records, timestamp=self.clock.now_ms())
        # acks=-1, as Kafka writes its offsets topic (offsets.commit.required.acks)
        self.replicas.append(replica, memoryview(batch), read_header(batch), acks=-1)

    def records(self, partition: int) -> Iterator[tuple[bytes, bytes | None]]:
        replica = self.replicas.leader_partition(self.topic, partition)
        plog = replica.log
        offset = plog.log_start_offset
        end = replica.high_watermark
        while offset < end:
            views = plog.read(offset, _READ_BYTES, end, True)
            if not views:
                return
            for view in views:
                pos = 0
                while pos < len(view):
                    h = read_header(view, pos)
                    for record in iter_records(view[pos : pos + h.size]):
                        if record.key is not None:
                            yield record.key, record.value
                    pos += h.size
                    offset = h.last_offset + 1
