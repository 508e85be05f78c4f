"""InternalTopic: records the broker itself writes to and replays from an internal topic
(`__consumer_offsets`), through its replica manager like any leader append.

It satisfies the coordinator's `CoordinatorTopic` port structurally, so neither package imports
the other (they are siblings in the layering).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from msklite.clock import Clock
from msklite.protocol.records import (
    TRANSACTIONAL,
    encode_batch,
    iter_records,
    marker_type,
    read_header,
)
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition

# Enough for any group's records in one read; a larger batch is still returned whole (min_one).
_READ_BYTES = 1 << 20


class InternalTopic:
    def __init__(self, replicas: ReplicaManager, topic: str, clock: Clock) -> None:
        self.replicas = replicas
        self.topic = topic
        self.clock = clock

    def is_leader(self, partition: int) -> bool:
        # leader_partition's answer without its exception: a /metrics scrape asks every
        # broker about every partition, two thirds of them led elsewhere
        part = self.replicas.partitions.get(TopicPartition(self.topic, partition))
        return part is not None and part.is_leader

    def append(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        producer: tuple[int, int] | None = None,
    ) -> None:
        replica = self.replicas.leader_partition(self.topic, partition)
        batch_records: list[tuple[bytes | None, bytes | None]] = list(records)
        if producer is None:
            batch = encode_batch(batch_records, timestamp=self.clock.now_ms())
        else:
            # A transactional batch (TxnOffsetCommit), numbered after the producer's last one
            # here so that the log's idempotence checks take it as the next, not a retry.
            producer_id, epoch = producer
            known = replica.log.producer_state.producers.get(producer_id)
            sequence = 0
            if known is not None and known.epoch == epoch and known.batches:
                sequence = (known.batches[-1].last_seq + 1) & 0x7FFFFFFF
            batch = encode_batch(
                batch_records,
                timestamp=self.clock.now_ms(),
                producer_id=producer_id,
                producer_epoch=epoch,
                base_sequence=sequence,
                attributes=TRANSACTIONAL,
            )
        # acks=-1, as Kafka writes its offsets topic (offsets.commit.required.acks)
        self.replicas.append(replica, memoryview(batch), read_header(batch), acks=-1)

    def records(self, partition: int) -> Iterator[tuple[bytes, bytes | None, int, int, int]]:
        """(key, value, producer id, producer epoch, marker) — see the coordinator's
        LogRecord."""
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
                    batch = view[pos : pos + h.size]
                    if h.is_control:
                        marker = marker_type(batch)
                        if marker >= 0:
                            yield b"", None, h.producer_id, h.producer_epoch, marker
                    else:
                        pid = h.producer_id if h.is_transactional else -1
                        epoch = h.producer_epoch if h.is_transactional else -1
                        for record in iter_records(batch):
                            if record.key is not None:
                                yield record.key, record.value, pid, epoch, -1
                    pos += h.size
                    offset = h.last_offset + 1
