"""ReplicaManager: the partition replicas one broker hosts (Kafka's class of the same name).

Answers "may this broker serve this partition?" (NOT_LEADER_OR_FOLLOWER,
UNKNOWN_TOPIC_OR_PARTITION), appends as leader with the acks / min.insync.replicas rules,
keeps the high watermark, and wakes waiting fetches after each append. With one replica per
partition (until replication lands) the ISR is the leader alone and HW = log end offset.
Synchronous; owned by the event loop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from msklite.controller import Controller, PartitionState, TopicState
from msklite.errors import ErrorCode, KafkaError
from msklite.log.manager import LogManager, TopicPartition
from msklite.log.partition_log import AppendInfo, LogConfig, PartitionLog
from msklite.protocol.records import BatchHeader
from msklite.replication.purgatory import Purgatory


@dataclass(slots=True)
class Replica:
    topic: str
    topic_id: uuid.UUID
    state: PartitionState
    log: PartitionLog

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset


def log_config(controller: Controller, topic: TopicState) -> LogConfig:
    def get(name: str) -> str:
        value = controller.topic_config(topic, name)
        assert value is not None
        return value

    return LogConfig(
        segment_bytes=int(get("segment.bytes")),
        segment_ms=int(get("segment.ms")),
        index_interval_bytes=int(get("index.interval.bytes")),
        retention_ms=int(get("retention.ms")),
        retention_bytes=int(get("retention.bytes")),
        log_append_time=get("message.timestamp.type") == "LogAppendTime",
        file_delete_delay_ms=int(get("file.delete.delay.ms")),
        flush_messages=int(get("flush.messages")),
    )


class ReplicaManager:
    def __init__(self, node_id: int, controller: Controller, logs: LogManager) -> None:
        self.node_id = node_id
        self.controller = controller
        self.logs = logs
        self.replicas: dict[TopicPartition, Replica] = {}
        self.fetch_waiters: Purgatory[TopicPartition] = Purgatory()

    # ---- hosting ----

    def sync_topic(self, name: str) -> None:
        """Bring this broker's replicas of `name` in line with the controller's metadata."""
        topic = self.controller.topics.get(name)
        hosted = {tp for tp in self.replicas if tp[0] == name}
        wanted: set[TopicPartition] = set()
        if topic is not None:
            config = log_config(self.controller, topic)
            for p in topic.partitions:
                if self.node_id in p.replicas:
                    tp = (name, p.partition)
                    wanted.add(tp)
                    if tp not in self.replicas:
                        plog = self.logs.open_log(tp, topic.topic_id, config)
                        self.replicas[tp] = Replica(name, topic.topic_id, p, plog)
                        self.controller.ensure_producer_ids_above(
                            plog.producer_state.max_producer_id()
                        )
                    else:
                        self.replicas[tp].state = p
        for tp in hosted - wanted:
            del self.replicas[tp]
            self.logs.delete_log(tp)
            self.fetch_waiters.notify(tp)

    def remove_orphans(self) -> None:
        """Delete partition directories the metadata no longer knows (a topic deleted while
        this broker was down)."""
        for tp in self.logs.on_disk() - set(self.replicas):
            self.logs.delete_log(tp)

    # ---- serving ----

    def leader_replica(self, topic: str, partition: int) -> Replica:
        replica = self.replicas.get((topic, partition))
        if replica is None:
            t = self.controller.topics.get(topic)
            if t is None or not 0 <= partition < len(t.partitions):
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if replica.state.leader != self.node_id:
            raise KafkaError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        return replica

    def append(
        self, replica: Replica, batch: memoryview, header: BatchHeader, acks: int
    ) -> AppendInfo:
        if acks == -1:
            min_isr = int(
                self.controller.topic_config(
                    self.controller.topics[replica.topic], "min.insync.replicas"
                )
                or 1
            )
            if len(replica.state.isr) < min_isr:
                raise KafkaError(
                    ErrorCode.NOT_ENOUGH_REPLICAS,
                    f"ISR {replica.state.isr} is smaller than min.insync.replicas={min_isr}",
                )
        info = replica.log.append_as_leader(batch, header, replica.state.leader_epoch)
        if not info.duplicate:
            self.fetch_waiters.notify((replica.topic, replica.state.partition))
        return info

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {tp: r.high_watermark for tp, r in self.replicas.items()}
