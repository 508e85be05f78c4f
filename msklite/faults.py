"""The fault API: stop and start brokers and availability zones, add brokers, pause a
follower's replication — with every argument checked, so that a typo names the value and
what is allowed instead of doing nothing or failing deep inside."""

from __future__ import annotations

from collections.abc import Callable

from msklite.brokers import Broker, Brokers
from msklite.controller import BrokerInfo
from msklite.topic_partition import TopicPartition


class Faults:
    def __init__(
        self,
        brokers: Brokers,
        infos: list[BrokerInfo],
        azs: tuple[str, ...],
        new_info: Callable[[int, str], BrokerInfo],
    ) -> None:
        """`new_info(node_id, az)`: an added broker's address and port (ValueError: none)."""
        self.brokers = brokers
        self.infos = infos
        self.azs = azs
        self._new_info = new_info

    # ---- argument checks ----

    def info(self, node_id: object) -> BrokerInfo:
        if not isinstance(node_id, int) or isinstance(node_id, bool):
            raise TypeError(f"a broker id is an int, got {node_id!r} ({type(node_id).__name__})")
        for info in self.infos:
            if info.node_id == node_id:
                return info
        ids = ", ".join(str(i.node_id) for i in self.infos)
        raise ValueError(f"no broker {node_id}: the cluster's brokers are {ids}")

    def running(self, node_id: object) -> Broker:
        info = self.info(node_id)
        broker = self.brokers.running.get(info.node_id)
        if broker is None:
            raise ValueError(f"broker {info.node_id} is not running (start it first)")
        return broker

    def az(self, az: object) -> str:
        if az not in self.azs:
            raise ValueError(f"no AZ {az!r}: the cluster's AZs are {', '.join(self.azs)}")
        assert isinstance(az, str)
        return az

    # ---- faults ----

    async def stop_broker(self, node_id: int) -> None:
        """Stop one broker: its listeners close, its replica fetcher stops, and the controller
        moves its leaderships and fences it out of the ISRs."""
        self.running(node_id)
        await self.brokers.stop(node_id)
        self.brokers.controller.broker_down(node_id)

    async def start_broker(self, node_id: int) -> None:
        """Start a stopped broker again on its old port: it recovers its logs, truncates where
        the new leaders disagree, catches up and rejoins the ISRs."""
        info = self.info(node_id)
        if node_id in self.brokers.running:
            raise ValueError(f"broker {node_id} is already running")
        await self.brokers.start(info)
        self.brokers.controller.broker_up(node_id)

    async def add_broker(self, az: str | None = None) -> int:
        """Add a broker (the next id) in `az` (by default the AZ with the fewest brokers), as
        MSK's "update broker count" does; existing partitions stay where they are until
        reassigned. Returns the new broker's id."""
        if az is None:
            az = min(self.azs, key=lambda a: sum(1 for i in self.infos if i.rack == a))
        else:
            az = self.az(az)
        node_id = max(i.node_id for i in self.infos) + 1
        info = self._new_info(node_id, az)
        self.brokers.controller.register_broker(info)
        self.infos.append(info)
        await self.brokers.start(info)
        return node_id

    async def stop_az(self, az: str) -> None:
        """An availability-zone outage: every broker in `az` stops."""
        az = self.az(az)
        for info in self.infos:
            if info.rack == az and info.node_id in self.brokers.running:
                await self.stop_broker(info.node_id)

    async def start_az(self, az: str) -> None:
        az = self.az(az)
        for info in self.infos:
            if info.rack == az and info.node_id not in self.brokers.running:
                await self.start_broker(info.node_id)

    def pause_replication(self, node_id: int, topic: str | None, partition: int) -> None:
        """Make broker `node_id`'s follower replicas stop copying (all, or one partition), so
        they fall behind and leave the ISR after replica.lag.time.max.ms."""
        broker = self.running(node_id)
        broker.fetcher.pause(None if topic is None else self.partition_key(topic, partition))

    def resume_replication(self, node_id: int, topic: str | None, partition: int) -> None:
        broker = self.running(node_id)
        broker.fetcher.resume(None if topic is None else self.partition_key(topic, partition))

    def partition_key(self, topic: str, partition: int) -> TopicPartition:
        state = self.brokers.controller.topics.get(topic)
        if state is None:
            raise ValueError(f"no topic {topic!r}")
        count = len(state.partitions)
        if not isinstance(partition, int) or not 0 <= partition < count:
            raise ValueError(
                f"no partition {partition!r} in topic {topic!r}: it has partitions 0-{count - 1}"
            )
        return TopicPartition(topic, partition)
