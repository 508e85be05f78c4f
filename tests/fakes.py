"""Stand-ins for the parts the composition root wires, for tests that build one piece."""

from __future__ import annotations

from msklite.topic_partition import TopicPartition


class NoFetchers:
    """A ReplicaNotifier for a broker with no replica fetchers to wake (one broker, RF 1)."""

    def wake(self, tp: TopicPartition, brokers: list[int]) -> None:
        pass

    def replicate_now(self, tp: TopicPartition, brokers: list[int]) -> None:
        pass
