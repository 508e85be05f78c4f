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
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from msklite.clock import Clock, SystemClock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller, TopicState
from msklite.coordinator.coordinator import CoordinatorConfig, GroupCoordinator
from msklite.coordinator.runtime import OFFSETS_TOPIC, CoordinatorRuntime, ensure_offsets_topic
from msklite.handlers.context import BrokerContext, BrokerStats
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.handlers.metadata import MetadataCache
from msklite.log.manager import LogManager
from msklite.msk import DEFAULT_AZS, MSK_BROKER_DEFAULTS, bootstrap_string
from msklite.replication.internal_topic import InternalTopic
from msklite.replication.replica_manager import ReplicaManager
from msklite.server import BrokerServer

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Broker:
    info: BrokerInfo
    logs: LogManager
    replicas: ReplicaManager
    ctx: BrokerContext
    server: BrokerServer


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "msklite")


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
        self.azs = tuple(azs)
        self.clock = clock or SystemClock()
        self._ephemeral = data_dir is None
        self._data_dir = data_dir
        self.broker_configs = BrokerConfigs({**MSK_BROKER_DEFAULTS, **(config or {})})
        self.brokers: dict[int, Broker] = {}
        self.controller: Controller | None = None
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
        infos = [
            BrokerInfo(i, self.azs[(i - 1) % len(self.azs)] if self.azs else None, self.host)
            for i in range(1, self.num_brokers + 1)
        ]
        controller = Controller(
            infos, self.broker_configs, os.path.join(self.data_dir, "cluster-metadata.json")
        )
        self.controller = controller
        offsets_topic = ensure_offsets_topic(controller)
        coordinator_config = replace(
            CoordinatorConfig.from_broker_configs(self.broker_configs),
            num_partitions=len(offsets_topic.partitions),
        )
        metadata_cache = MetadataCache(controller)
        max_frame = self.broker_configs.get_int("socket.request.max.bytes")
        for info in infos:
            logs = LogManager(
                os.path.join(self.data_dir, f"broker-{info.node_id}"),
                info.node_id,
                controller.cluster_id,
                self.clock,
            )
            replicas = ReplicaManager(info.node_id, controller, logs)
            groups = CoordinatorRuntime(
                GroupCoordinator(coordinator_config, self.clock.now_ms()),
                InternalTopic(replicas, OFFSETS_TOPIC, self.clock),
                self.clock,
            )
            ctx = BrokerContext(
                info,
                controller,
                replicas,
                self.clock,
                metadata_cache,
                FetchSessionCache(),
                groups,
                BrokerStats(),
            )
            server = BrokerServer(
                ctx,
                self.host,
                self.base_port + info.node_id - 1 if self.base_port else 0,
                max_frame,
            )
            self.brokers[info.node_id] = Broker(info, logs, replicas, ctx, server)
            for topic in controller.topics:
                replicas.sync_topic(topic)
            replicas.remove_orphans()
            controller.on_change(replicas.sync_topic)
        try:
            for broker in self.brokers.values():
                broker.info.port = await broker.server.start()
        except BaseException:
            await self._shutdown()
            raise
        metadata_cache.invalidate()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._retention_loop()))
        for broker in self.brokers.values():
            broker.ctx.groups.load_all()
            self._tasks.append(loop.create_task(broker.ctx.groups.run()))
        self.started = True

    async def astop(self) -> None:
        if not self.started:
            return
        self.started = False
        await self._shutdown()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for broker in self.brokers.values():
            await broker.server.stop()
        for broker in self.brokers.values():
            broker.logs.shutdown()
        self.brokers.clear()
        if self._ephemeral and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    async def _retention_loop(self) -> None:
        interval = self.broker_configs.get_int("log.retention.check.interval.ms") / 1000
        while True:
            await asyncio.sleep(interval)
            self.enforce_retention()

    def enforce_retention(self) -> int:
        """Run one retention pass on every broker now; returns segments removed."""
        return sum(
            b.logs.enforce_retention(b.replicas.high_watermarks()) for b in self.brokers.values()
        )

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
