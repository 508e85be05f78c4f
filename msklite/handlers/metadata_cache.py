"""MetadataCache: the topics' parts of a Metadata response, encoded once per (topic, version,
authorized operations) and kept until the controller reports a change of the topic —
its partitions, leaders, ISRs, or the liveness of its replicas (a broker or log directory
stopping or starting is a change of every topic it holds replicas of). Shared by every broker
of a cluster: they all answer from the same controller."""

from __future__ import annotations

from msklite.controller import Controller, TopicState
from msklite.errors import ErrorCode
from msklite.protocol import metadata as codec


class MetadataCache:
    """Encoded topic fragments by (topic, version, authorized operations: the bitfield or
    codec.AUTHORIZED_OPERATIONS_OMITTED)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self._fragments: dict[tuple[str, int, int], bytes] = {}
        controller.on_change(self.invalidate)

    def invalidate(self, topic: str | None = None) -> None:
        if topic is None:
            self._fragments.clear()
        else:
            for key in [k for k in self._fragments if k[0] == topic]:
                del self._fragments[key]

    def fragment(
        self, topic: TopicState, version: int, ops: int = codec.AUTHORIZED_OPERATIONS_OMITTED
    ) -> bytes:
        key = (topic.name, version, ops)
        cached = self._fragments.get(key)
        if cached is None:
            cached = self._fragments[key] = self._encode(topic, version, ops)
        return cached

    def _encode(self, topic: TopicState, version: int, ops: int) -> bytes:
        alive = {node_id for node_id, b in self.controller.brokers.items() if b.alive}
        able = self.controller.able_nodes()
        # one set test per partition instead of a call per replica (10,000 partitions: the
        # first Metadata after a change)
        none: list[int] = []
        ok, unavailable = int(ErrorCode.NONE), int(ErrorCode.LEADER_NOT_AVAILABLE)
        parts: list[codec.PartitionRow] = []
        for p in topic.partitions:
            replicas = p.replicas
            offline = none if able.issuperset(replicas) else [r for r in replicas if r not in able]
            if p.leader in alive:
                parts.append((ok, p.partition, p.leader, p.leader_epoch, replicas, p.isr, offline))
            else:
                parts.append(
                    (unavailable, p.partition, -1, p.leader_epoch, replicas, p.isr, offline)
                )
        return codec.encode_topic(
            version,
            ErrorCode.NONE,
            topic.name,
            topic.topic_id,
            topic.internal,
            parts,
            ops,
        )
