"""MetadataCache: the topics' parts of a Metadata response, encoded once per (topic, version,
with authorized operations) and kept until the controller reports a change of the topic —
its partitions, leaders, ISRs, or the liveness of its replicas (a broker or log directory
stopping or starting is a change of every topic it holds replicas of). Shared by every broker
of a cluster: they all answer from the same controller."""

from __future__ import annotations

from msklite.controller import Controller, TopicState
from msklite.errors import ErrorCode
from msklite.protocol import metadata as codec

# AclOperation codes READ=3 … ALTER_CONFIGS=11: all a principal may do to a topic when no
# authorizer is set.
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))


class MetadataCache:
    """Encoded topic fragments by (topic, version, with authorized operations)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._fragments: dict[tuple[str, int, bool], bytes] = {}
        controller.on_change(self.invalidate)

    def invalidate(self, topic: str | None = None) -> None:
        if topic is None:
            self._fragments.clear()
        else:
            for key in [k for k in self._fragments if k[0] == topic]:
                del self._fragments[key]

    def fragment(self, topic: TopicState, version: int, with_ops: bool) -> bytes:
        key = (topic.name, version, with_ops)
        cached = self._fragments.get(key)
        if cached is None:
            cached = self._fragments[key] = self._encode(topic, version, with_ops)
        return cached

    def _encode(self, topic: TopicState, version: int, with_ops: bool) -> bytes:
        alive = {node_id for node_id, b in self.controller.brokers.items() if b.alive}
        parts = []
        for p in topic.partitions:
            leader_alive = p.leader in alive
            parts.append(
                codec.PartitionMetadata(
                    ErrorCode.NONE if leader_alive else ErrorCode.LEADER_NOT_AVAILABLE,
                    p.partition,
                    p.leader if leader_alive else -1,
                    p.leader_epoch,
                    p.replicas,
                    p.isr,
                    self.controller.offline_replicas(p),
                )
            )
        return codec.encode_topic(
            version,
            ErrorCode.NONE,
            topic.name,
            topic.topic_id,
            topic.internal,
            parts,
            TOPIC_OPERATIONS if with_ops else codec.AUTHORIZED_OPERATIONS_OMITTED,
        )
