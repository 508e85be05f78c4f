"""Cluster: the composition root. Builds the controller, the brokers (log manager, replica
manager, fetch sessions, listener each) and the background tasks; starts and stops them.

Two ways to run it:
- `async with Cluster(...) as c:` on the caller's event loop;
- `c.start()` / `c.stop()` from synchronous code: the cluster gets an event loop of its own in a
  background thread, and the synchronous methods (create_topic, …) hop onto it.
`start` returns once every listener accepts connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from msklite.clock import Clock, SystemClock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller, TopicState
from msklite.handlers.context import BrokerContext, BrokerStats
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.handlers.metadata import MetadataCache
from msklite.log.manager import LogManager
from msklite.msk import DEFAULT_AZS, MSK_BROKER_DEFAULTS, bootstrap_string
from msklite.replication.follower import ReplicaFetcher
from msklite.replication.replica_manager import ReplicaManager
from msklite.server import BrokerServer

if TYPE_CHECKING:
    from msklite.coordinator.group_runtime import GroupRuntime

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Broker:
    """One running broker: what `stop_broker` tears down and `start_broker` builds again."""

    info: BrokerInfo
    logs: LogManager
    replicas: ReplicaManager
    fetcher: ReplicaFetcher
    ctx: BrokerContext
    server: BrokerServer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PartitionView:
    """A snapshot of one partition's replication state (for tests and status output)."""

    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    high_watermarks: dict[int, int]  # live replica → its HW
    log_end_offsets: dict[int, int]  # live replica → its log end offset


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "msklite")


def msk_defaults(brokers: int, azs: int) -> dict[str, str]:
    """MSK's defaults, with the replication settings MSK derives from the number of AZs:
    RF 3 / min.insync 2 across three AZs, RF 2 / min.insync 1 across two. A single broker
    (no MSK shape) gets RF 1 so that a plain create works."""
    zones = min(brokers, azs)
    rf = 3 if zones >= 3 else zones
    return {
        **MSK_BROKER_DEFAULTS,
        "default.replication.factor": str(rf),
        "min.insync.replicas": "2" if zones >= 3 else "1",
        "offsets.topic.replication.factor": str(min(3, brokers)),
        "transaction.state.log.replication.factor": str(min(3, brokers)),
        "transaction.state.log.min.isr": "2" if brokers >= 3 else "1",
    }


class Cluster:
    def __init__(
        self,
        brokers: int = 3,
        data_dir: str | None = None,
        config: Mapping[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        azs: tuple[str, ...] | list[str] = DEFAULT_AZS,
        clock: Clock | None = None,
    ) -> None:
        """`data_dir=None` means a temporary directory removed at stop; `port=0` binds each
        broker to a free port, otherwise broker i listens on `port + i - 1`."""
        if brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        self.num_brokers = brokers
        self.host = host
        self.base_port = port
        self.azs = tuple(azs) or DEFAULT_AZS
        self.clock = clock or SystemClock()
        self._ephemeral = data_dir is None
        self._data_dir = data_dir
        self.broker_configs = BrokerConfigs(
            {**msk_defaults(brokers, len(self.azs)), **(config or {})}
        )
        self.infos = [
            BrokerInfo(i, self.azs[(i - 1) % len(self.azs)], host, port + i - 1 if port else 0)
            for i in range(1, brokers + 1)
        ]
        self.brokers: dict[int, Broker] = {}  # running brokers
        self.controller: Controller | None = None
        self._peers: dict[int, ReplicaManager] = {}
        self._metadata_cache: MetadataCache | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    # ---- properties ----

    @property
    def data_dir(self) -> str:
        if self._data_dir is None:
            raise RuntimeError("the cluster has not started")
        return self._data_dir

    @property
    def bootstrap_servers(self) -> str:
        return bootstrap_string(
            [(b.info.host, b.info.port, b.info.rack) for b in self.brokers.values()]
        )

    # ---- lifecycle on the caller's loop ----

    async def __aenter__(self) -> Cluster:
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    async def astart(self) -> None:
        if self.started:
            raise RuntimeError("cluster already started")
        self._loop = asyncio.get_running_loop()
        if self._data_dir is None:
            self._data_dir = tempfile.mkdtemp(prefix="msklite-")
        os.makedirs(self.data_dir, exist_ok=True)
        for info in self.infos:
            info.alive = True
        controller = Controller(
            self.infos, self.broker_configs, os.path.join(self.data_dir, "cluster-metadata.json")
        )
        self.controller = controller
        # Brokers added at run time in an earlier life of this data directory come back too.
        known = {i.node_id for i in self.infos}
        for node_id, info in sorted(controller.brokers.items()):
            if node_id not in known:
                info.host = self.host
                info.port = self.base_port + node_id - 1 if self.base_port else 0
                self.infos.append(info)
        self._metadata_cache = MetadataCache(controller)
        try:
            for info in self.infos:
                self._build_broker(info)
            for broker in self.brokers.values():
                await self._open_broker(broker)
        except BaseException:
            await self._shutdown()
            raise
        self._metadata_cache.invalidate()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._retention_loop()))
        self._tasks.append(loop.create_task(self._isr_loop()))
        self.started = True

    def _build_broker(self, info: BrokerInfo) -> Broker:
        """Open a broker's logs and replicas in the roles the controller gives them."""
        controller = self._controller()
        assert self._metadata_cache is not None
        logs = LogManager(
            os.path.join(self.data_dir, f"broker-{info.node_id}"),
            info.node_id,
            controller.cluster_id,
            self.clock,
        )
        replicas = ReplicaManager(info.node_id, controller, logs, self.clock)
        fetcher = ReplicaFetcher(
            replicas, self._peers, self.broker_configs.get_int("replica.fetch.max.bytes")
        )
        replicas.wake_own_fetcher = fetcher.wake
        replicas.wake_followers = self._wake_followers
        replicas.replicate_now = self._replicate_now
        ctx = BrokerContext(
            info,
            controller,
            replicas,
            self.clock,
            self._metadata_cache,
            FetchSessionCache(),
            functools.partial(self._start_groups, info.node_id),
            BrokerStats(),
        )
        server = BrokerServer(
            ctx, self.host, info.port, self.broker_configs.get_int("socket.request.max.bytes")
        )
        broker = Broker(info, logs, replicas, fetcher, ctx, server)
        self.brokers[info.node_id] = broker
        self._peers[info.node_id] = replicas
        for topic in list(controller.topics):
            replicas.sync_topic(topic)
        replicas.remove_orphans()
        controller.on_change(replicas.sync_topic)
        return broker

    async def _open_broker(self, broker: Broker) -> None:
        broker.info.port = await broker.server.start()
        broker.tasks = [asyncio.get_running_loop().create_task(broker.fetcher.run())]

    def _start_groups(self, node_id: int) -> GroupRuntime:
        """The group coordinator of broker `node_id`, built on first use (BrokerContext.groups
        says why): it coordinates the groups whose __consumer_offsets partition it leads."""
        from msklite.coordinator.coordinator import CoordinatorConfig, GroupCoordinator
        from msklite.coordinator.group_runtime import OFFSETS_TOPIC, GroupRuntime
        from msklite.replication.internal_topic import InternalTopic

        broker = self.brokers[node_id]
        runtime = GroupRuntime(
            GroupCoordinator(
                CoordinatorConfig.from_broker_configs(self.broker_configs), self.clock.now_ms()
            ),
            InternalTopic(broker.replicas, OFFSETS_TOPIC, self.clock),
            self.clock,
        )
        runtime.load_all()
        broker.tasks.append(asyncio.get_running_loop().create_task(runtime.run()))
        return runtime

    def _wake_followers(self, tp: tuple[str, int], replicas: list[int]) -> None:
        for node_id in replicas:
            broker = self.brokers.get(node_id)
            if broker is not None:
                broker.fetcher.wake(tp)

    def _replicate_now(self, tp: tuple[str, int], replicas: list[int]) -> None:
        for node_id in replicas:
            broker = self.brokers.get(node_id)
            if broker is not None:
                broker.fetcher.fetch_now(tp)

    async def astop(self) -> None:
        if not self.started:
            return
        self.started = False
        await self._shutdown()

    async def _close_broker(self, broker: Broker) -> None:
        await broker.server.stop()
        for task in broker.tasks:
            task.cancel()
        for task in broker.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for broker in self.brokers.values():
            await self._close_broker(broker)
        for broker in self.brokers.values():
            broker.replicas.shutdown()
        self.brokers.clear()
        self._peers.clear()
        if self._ephemeral and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    async def _retention_loop(self) -> None:
        interval = self.broker_configs.get_int("log.retention.check.interval.ms") / 1000
        while True:
            await asyncio.sleep(interval)
            self.enforce_retention()

    async def _isr_loop(self) -> None:
        # Kafka's isr-expiration task runs every replica.lag.time.max.ms / 2.
        max_lag = self.broker_configs.get_int("replica.lag.time.max.ms")
        while True:
            await asyncio.sleep(max_lag / 2000)
            self.check_isr()

    def check_isr(self) -> None:
        """Shrink ISRs of followers that lag beyond replica.lag.time.max.ms, now."""
        max_lag = self.broker_configs.get_int("replica.lag.time.max.ms")
        for broker in list(self.brokers.values()):
            broker.replicas.check_isr(max_lag)

    def enforce_retention(self) -> int:
        """Run one retention pass on every broker now; returns segments removed."""
        return sum(
            b.logs.enforce_retention(b.replicas.high_watermarks()) for b in self.brokers.values()
        )

    # ---- faults ----

    async def astop_broker(self, node_id: int) -> None:
        """Stop one broker: its listeners close, its replica fetcher stops, and the controller
        moves its leaderships and fences it out of the ISRs."""
        broker = self.brokers.pop(node_id, None)
        if broker is None:
            raise ValueError(f"broker {node_id} is not running")
        self._peers.pop(node_id, None)
        controller = self._controller()
        controller.off_change(broker.replicas.sync_topic)
        await self._close_broker(broker)
        controller.broker_down(node_id)
        broker.replicas.shutdown()
        assert self._metadata_cache is not None
        self._metadata_cache.invalidate()

    async def astart_broker(self, node_id: int) -> None:
        """Start a stopped broker again on its old port: it recovers its logs, truncates where
        the new leaders disagree, catches up and rejoins the ISRs."""
        if node_id in self.brokers:
            raise ValueError(f"broker {node_id} is already running")
        info = next((i for i in self.infos if i.node_id == node_id), None)
        if info is None:
            raise ValueError(f"no broker {node_id}")
        broker = self._build_broker(info)
        try:
            await self._open_broker(broker)
        except BaseException:
            self.brokers.pop(node_id, None)
            self._peers.pop(node_id, None)
            self._controller().off_change(broker.replicas.sync_topic)
            broker.replicas.shutdown()
            raise
        self._controller().broker_up(node_id)
        assert self._metadata_cache is not None
        self._metadata_cache.invalidate()

    async def aadd_broker(self, az: str | None = None) -> int:
        """Add a broker (the next id) in `az` (by default the AZ with the fewest brokers), as
        MSK's "update broker count" does; existing partitions stay where they are until
        reassigned. Returns the new broker's id."""
        if az is None:
            az = min(self.azs, key=lambda a: sum(1 for i in self.infos if i.rack == a))
        node_id = max(i.node_id for i in self.infos) + 1
        info = BrokerInfo(
            node_id, az, self.host, self.base_port + node_id - 1 if self.base_port else 0
        )
        self._controller().register_broker(info)
        self.infos.append(info)
        await self._open_broker(self._build_broker(info))
        assert self._metadata_cache is not None
        self._metadata_cache.invalidate()
        return node_id

    async def astop_az(self, az: str) -> None:
        """An availability-zone outage: every broker in `az` stops."""
        for info in self.infos:
            if info.rack == az and info.node_id in self.brokers:
                await self.astop_broker(info.node_id)

    async def astart_az(self, az: str) -> None:
        for info in self.infos:
            if info.rack == az and info.node_id not in self.brokers:
                await self.astart_broker(info.node_id)

    def pause_replication(self, node_id: int, topic: str | None = None, partition: int = 0) -> None:
        """Make broker `node_id`'s follower replicas stop copying (all, or one partition), so
        they fall behind and leave the ISR after replica.lag.time.max.ms."""
        self._call(
            lambda: self.brokers[node_id].fetcher.pause(
                None if topic is None else (topic, partition)
            )
        )

    def resume_replication(
        self, node_id: int, topic: str | None = None, partition: int = 0
    ) -> None:
        self._call(
            lambda: self.brokers[node_id].fetcher.resume(
                None if topic is None else (topic, partition)
            )
        )

    def partition(self, topic: str, partition: int) -> PartitionView:
        def snapshot() -> PartitionView:
            p = self._controller().topics[topic].partitions[partition]
            hws, leos = {}, {}
            for node_id, broker in self.brokers.items():
                part = broker.replicas.partitions.get((topic, partition))
                if part is not None:
                    hws[node_id] = part.high_watermark
                    leos[node_id] = part.log.log_end_offset
            return PartitionView(p.leader, p.leader_epoch, list(p.replicas), list(p.isr), hws, leos)

        return self._call(snapshot)

    # ---- lifecycle from synchronous code ----

    def start(self) -> Cluster:
        """Start on a private event loop in a background thread; returns when listening."""
        if self._thread is not None:
            raise RuntimeError("cluster already started")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def main() -> None:
                try:
                    await self.astart()
                except BaseException as e:
                    ready.set_exception(e)
                    return
                ready.set_result(None)

            loop.run_until_complete(main())
            if ready.exception() is None:
                loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="msklite", daemon=True)
        self._thread.start()
        try:
            ready.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        loop = self._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(self.astop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the cluster's loop: directly when already there, else hop threads."""
        loop = self._loop
        if loop is None or not self.started:
            raise RuntimeError("the cluster is not running")
        if self._thread is None or threading.current_thread() is self._thread:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the cluster's from synchronous code (background-thread mode)."""
        loop = self._loop
        if loop is None or self._thread is None or threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "on the cluster's own event loop, await the a-prefixed method instead "
                "(e.g. `await cluster.astop_broker(1)`)"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def stop_broker(self, node_id: int) -> None:
        self._run(self.astop_broker(node_id))

    def start_broker(self, node_id: int) -> None:
        self._run(self.astart_broker(node_id))

    def add_broker(self, az: str | None = None) -> int:
        return self._run(self.aadd_broker(az))

    def stop_az(self, az: str) -> None:
        self._run(self.astop_az(az))

    def start_az(self, az: str) -> None:
        self._run(self.astart_az(az))

    # ---- admin API ----

    def _controller(self) -> Controller:
        assert self.controller is not None
        return self.controller

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> TopicState:
        """Create a topic (raises KafkaError as CreateTopics would report it)."""
        return self._call(
            lambda: self._controller().create_topic(
                name,
                partitions,
                -1 if replication_factor is None else replication_factor,
                None,
                dict(configs or {}),
            )
        )

    def delete_topic(self, name: str) -> None:
        self._call(lambda: self._controller().delete_topic(name))

    def topics(self, internal: bool = False) -> dict[str, Any]:
        """Topic name → number of partitions; internal topics (`__consumer_offsets`) only
        when asked for, as admin clients list them."""
        return self._call(
            lambda: {
                n: len(t.partitions)
                for n, t in self._controller().topics.items()
                if internal or not t.internal
            }
        )

    def waiting_fetches(self) -> int:
        """Fetches parked in the brokers' purgatories (waiting for data)."""
        return self._call(lambda: sum(len(b.replicas.fetch_waiters) for b in self.brokers.values()))

    def broker_stats(self, node_id: int) -> BrokerStats:
        return self.brokers[node_id].ctx.stats
