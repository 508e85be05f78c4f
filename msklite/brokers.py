"""The running brokers: how one broker is assembled (log manager, replica manager, replica
fetcher, handler context, listener), opened, closed, and stopped or started again while the
rest of the cluster runs. The cluster (the composition root) owns one `Brokers`; it is also
the replica managers' notifier, waking the replica fetchers of the running brokers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msklite.clock import Clock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.context import BrokerContext, BrokerStats, RequestHook
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.handlers.metadata_cache import MetadataCache
from msklite.log.cleaner import LogCleaner
from msklite.log.manager import LogManager
from msklite.replication.follower import ReplicaFetcher
from msklite.replication.replica_manager import ReplicaManager, TurnBudget
from msklite.security.settings import ClusterSecurity
from msklite.server import BrokerServer
from msklite.throttle import BrokerQuotas
from msklite.topic_partition import TopicPartition

if TYPE_CHECKING:
    from msklite.coordinator.group_runtime import GroupRuntime
    from msklite.coordinator.share_runtime import ShareStateRuntime
    from msklite.coordinator.share_state import ShareKey, ShareState
    from msklite.coordinator.txn_runtime import TxnRuntime
    from msklite.handlers.share_manager import ShareServices


@dataclass(slots=True)
class Broker:
    """One running broker: what `stop` tears down and `start` builds again."""

    info: BrokerInfo
    logs: LogManager
    replicas: ReplicaManager
    fetcher: ReplicaFetcher
    ctx: BrokerContext
    servers: list[BrokerServer]  # one per listener, in MSK's port order
    cleaner: LogCleaner
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def server(self) -> BrokerServer:
        """The first listener (the plaintext one, when there is one)."""
        return self.servers[0]


class Brokers:
    def __init__(
        self,
        controller: Controller,
        configs: BrokerConfigs,
        clock: Clock,
        data_dir: str,
        host: str,
        api_versions: dict[int, tuple[int, int]],
        security: ClusterSecurity | None = None,
    ) -> None:
        self.controller = controller
        # what every broker advertises and accepts: the emulated release's versions we serve
        self.api_versions = api_versions
        self.security = security or ClusterSecurity()
        self.configs = configs
        self.clock = clock
        self.data_dir = data_dir
        self.host = host
        self.metadata_cache = MetadataCache(controller)
        self.authorizer = self.security.authorizer(controller)
        self.running: dict[int, Broker] = {}
        self.request_hook: RequestHook | None = None
        self._peers: dict[int, ReplicaManager] = {}
        self._turns = TurnBudget()  # the brokers share one loop, so one opening budget

    def build(self, info: BrokerInfo) -> Broker:
        """Open a broker's logs and replicas in the roles the controller gives them."""
        controller = self.controller
        logs = LogManager(
            os.path.join(self.data_dir, f"broker-{info.node_id}"),
            info.node_id,
            controller.cluster_id,
            self.clock,
        )
        replicas = ReplicaManager(info.node_id, controller, logs, self.clock, self, self._turns)
        fetcher = ReplicaFetcher(
            replicas,
            self._peers,
            self.configs.get_int("replica.fetch.max.bytes"),
            self.configs.get_int("replica.fetch.backoff.ms"),
        )
        ctx = BrokerContext(
            info,
            controller,
            replicas,
            self.clock,
            self.metadata_cache,
            FetchSessionCache(),
            functools.partial(self._start_groups, info.node_id),
            functools.partial(self._start_txn, info.node_id),
            self.api_versions,
            BrokerStats(),
            self.authorizer,
            quotas=BrokerQuotas(
                self.configs.get_int("quota.window.num"),
                self.configs.get_int("quota.window.size.seconds"),
            ),
            request_hook=self.request_hook,
            start_share=functools.partial(self._start_share, info.node_id),
            verify_txn=self._verify_txn,
        )
        security = self.security
        servers = [
            BrokerServer(
                ctx,
                info.bind or info.host,
                security.port(kind, info),
                self.configs.get_int("socket.request.max.bytes"),
                self.configs.get_int("queued.max.request.bytes"),
                listener=kind.name,
                tls=security.tls_context(kind, self.data_dir, info),
                authenticator=security.authenticator(kind, info, self.configs, self.clock),
                principal_of=security.principal_of(kind),
                max_idle_ms=self.configs.get_int("connections.max.idle.ms"),
            )
            for kind in security.kinds
        ]
        cleaner = LogCleaner(
            logs, self.configs, self.clock, replicas.last_stable_offset, replicas.storage_failed
        )
        broker = Broker(info, logs, replicas, fetcher, ctx, servers, cleaner)
        self.running[info.node_id] = broker
        self._peers[info.node_id] = replicas
        for topic in list(controller.topics):
            replicas.sync_topic(topic)
        replicas.remove_orphans()
        controller.on_change(replicas.topic_changed)
        controller.on_quota_change(ctx.quotas.update)
        return broker

    def set_request_hook(self, hook: RequestHook | None) -> None:
        """Put `hook` between connections and handlers on every broker, restarted ones too."""
        self.request_hook = hook
        for broker in self.running.values():
            broker.ctx.request_hook = hook

    async def open(self, broker: Broker) -> None:
        for server in broker.servers:
            broker.info.ports[server.listener] = await server.start()
        broker.info.port = broker.server.port
        loop = asyncio.get_running_loop()
        broker.tasks = [
            loop.create_task(broker.fetcher.run()),
            loop.create_task(broker.fetcher.recover_log_dir()),
            loop.create_task(broker.cleaner.run()),
        ]
        if "__transaction_state" in self.controller.topics:
            # Transactions left open or half-completed must time out or complete even if no
            # transactional client comes back.
            broker.ctx.txn.load_all()

    async def close(self, broker: Broker) -> None:
        for server in broker.servers:
            await server.stop()
        if broker.ctx.share_started is not None:
            broker.ctx.share_started.partitions.close()
        for task in broker.tasks:
            task.cancel()
        for task in broker.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def start(self, info: BrokerInfo) -> None:
        """Build and open one broker; on failure nothing of it is left running."""
        broker = self.build(info)
        try:
            await self.open(broker)
        except BaseException:
            for server in broker.servers:
                await server.stop()
            self._forget(broker)
            raise

    async def stop(self, node_id: int) -> None:
        """Close one running broker: its listener and replica fetcher stop."""
        broker = self.running.pop(node_id)
        self._peers.pop(node_id, None)
        self.controller.off_change(broker.replicas.topic_changed)
        self.controller.off_quota_change(broker.ctx.quotas.update)
        await self.close(broker)
        broker.replicas.shutdown()

    def _forget(self, broker: Broker) -> None:
        node_id = broker.info.node_id
        self.running.pop(node_id, None)
        self._peers.pop(node_id, None)
        self.controller.off_change(broker.replicas.topic_changed)
        self.controller.off_quota_change(broker.ctx.quotas.update)
        broker.replicas.shutdown()

    async def shutdown(self) -> None:
        for broker in self.running.values():
            await self.close(broker)
        for broker in self.running.values():
            broker.replicas.shutdown()
        self.running.clear()
        self._peers.clear()

    def _start_groups(self, node_id: int) -> GroupRuntime:
        """The group coordinator of broker `node_id`, built on first use (BrokerContext.groups
        says why): it coordinates the groups whose __consumer_offsets partition it leads."""
        from msklite.coordinator.coordinator import CoordinatorConfig, GroupCoordinator
        from msklite.coordinator.group_runtime import OFFSETS_TOPIC, GroupRuntime, cluster_topics
        from msklite.replication.internal_topic import InternalTopic

        broker = self.running[node_id]
        runtime = GroupRuntime(
            GroupCoordinator(
                CoordinatorConfig.from_broker_configs(self.configs),
                self.clock.now_ms(),
                lambda: cluster_topics(self.controller),
                lambda group_id: self.controller.group_configs.get(group_id, {}),
            ),
            InternalTopic(broker.replicas, OFFSETS_TOPIC, self.clock),
            self.clock,
        )
        runtime.load_all()
        broker.tasks.append(asyncio.get_running_loop().create_task(runtime.run()))
        return runtime

    def _start_txn(self, node_id: int) -> TxnRuntime:
        """The transaction coordinator of broker `node_id`, built on first use: it
        coordinates the transactional ids whose __transaction_state partition it leads."""
        from msklite.coordinator.transaction import TxnConfig, TxnCoordinator
        from msklite.coordinator.txn_runtime import TXN_TOPIC, TxnRuntime
        from msklite.replication.internal_topic import InternalTopic

        broker = self.running[node_id]
        runtime = TxnRuntime(
            TxnCoordinator(
                TxnConfig.from_broker_configs(self.configs),
                self.controller.allocate_producer_id,
                self.clock.now_ms(),
            ),
            InternalTopic(broker.replicas, TXN_TOPIC, self.clock),
            self.clock,
            _Markers(self),
        )
        runtime.load_all()
        broker.tasks.append(asyncio.get_running_loop().create_task(runtime.run()))
        return runtime

    def _start_share(self, node_id: int) -> ShareServices:
        """Broker `node_id`'s share groups (KIP-932), built on first use: the share-group
        coordinator beside the group coordinator (on the same `__consumer_offsets`
        partitions), the share coordinator over `__share_group_state` and the share
        partitions of the topic partitions it leads."""
        from msklite.coordinator.group_runtime import OFFSETS_TOPIC
        from msklite.coordinator.share_group import ShareGroupConfig, ShareGroupCoordinator
        from msklite.coordinator.share_runtime import (
            SHARE_STATE_PARTITIONS,
            ShareGroupRuntime,
            ShareStateRuntime,
        )
        from msklite.coordinator.share_state import SHARE_STATE_TOPIC, ShareStateCoordinator
        from msklite.handlers.share_manager import SharePartitionManager, ShareServices
        from msklite.replication.internal_topic import InternalTopic

        broker = self.running[node_id]
        configs = self.configs
        controller = self.controller

        def topic_lookup(name: str) -> tuple[uuid.UUID, int] | None:
            topic = controller.topics.get(name)
            if topic is None or topic.internal:
                return None
            return topic.topic_id, len(topic.partitions)

        groups = ShareGroupRuntime(
            ShareGroupCoordinator(
                ShareGroupConfig(
                    configs.get_int("offsets.topic.num.partitions"),
                    configs.get_int("group.share.session.timeout.ms"),
                    configs.get_int("group.share.heartbeat.interval.ms"),
                    configs.get_int("group.share.max.size"),
                ),
                topic_lookup,
                self._group_config,
            ),
            InternalTopic(broker.replicas, OFFSETS_TOPIC, self.clock),
            self.clock,
        )
        state = ShareStateRuntime(
            ShareStateCoordinator(SHARE_STATE_PARTITIONS),
            InternalTopic(broker.replicas, SHARE_STATE_TOPIC, self.clock),
            self.clock,
        )
        persister = _SharePersister(self)
        partitions = SharePartitionManager(
            broker.replicas, controller, self.clock, persister, self._group_config
        )
        loop = asyncio.get_running_loop()
        broker.tasks.append(loop.create_task(groups.run()))
        return ShareServices(groups, state, partitions, persister)

    def _group_config(self, group_id: str, name: str) -> str | None:
        """A group's own config (GROUP resources), None when it has none."""
        return self.controller.group_configs.get(group_id, {}).get(name)

    def _verify_txn(
        self, transactional_id: str, producer_id: int, epoch: int, tp: TopicPartition
    ) -> ErrorCode:
        """KIP-890 part 1, in-process: the transactional id's coordinator's verify_only
        answer for `tp` (Kafka's AddPartitionsToTxnManager sends AddPartitionsToTxn v4+)."""
        from msklite.coordinator.coordinator import partition_for
        from msklite.coordinator.txn_runtime import TXN_TOPIC

        topic = self.controller.topics.get(TXN_TOPIC)
        if topic is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING  # no transaction was ever begun
        leader = topic.partitions[partition_for(transactional_id, len(topic.partitions))].leader
        broker = self.running.get(leader)
        if broker is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        txn = broker.ctx.txn
        if not txn.owns(transactional_id):
            return ErrorCode.NOT_COORDINATOR
        error, per_partition = txn.verify_partitions(transactional_id, producer_id, epoch, [tp])
        return error if error != ErrorCode.NONE else per_partition[tp]

    # ---- the replica managers' notifier (ReplicaNotifier) ----

    def wake(self, tp: TopicPartition, brokers: list[int]) -> None:
        for node_id in brokers:
            broker = self.running.get(node_id)
            if broker is not None:
                broker.fetcher.wake(tp)

    def replicate_now(self, tp: TopicPartition, brokers: list[int]) -> None:
        for node_id in brokers:
            broker = self.running.get(node_id)
            if broker is not None:
                broker.fetcher.fetch_now(tp)


class _SharePersister:
    """The share partitions' Persister: a share partition's state is read and written at the
    running leader of its `__share_group_state` partition, in-process (Kafka sends
    Read/WriteShareGroupState there)."""

    def __init__(self, brokers: Brokers) -> None:
        self._brokers = brokers

    def __call__(self, key: ShareKey) -> ShareStateRuntime | None:
        from msklite.coordinator.coordinator import partition_for
        from msklite.coordinator.share_runtime import ensure_share_state_topic

        try:
            topic = ensure_share_state_topic(self._brokers.controller)
        except KafkaError:
            return None
        state = topic.partitions[partition_for(key.coordinator_key(), len(topic.partitions))]
        broker = self._brokers.running.get(state.leader)
        if broker is None:
            return None
        runtime = broker.ctx.share.state
        return runtime if runtime.owns(key) else None

    def read(self, key: ShareKey) -> ShareState | None:
        runtime = self(key)
        return runtime.read(key) if runtime is not None else None

    def high_watermark(self, topic: str, partition: int) -> int | None:
        state = self._brokers.controller.topics[topic].partitions[partition]
        broker = self._brokers.running.get(state.leader)
        if broker is None:
            return None
        try:
            return broker.replicas.leader_partition(topic, partition).high_watermark
        except KafkaError:
            return None

    def reset(self, key: ShareKey, start_offset: int | None) -> ErrorCode:
        runtime = self(key)
        if runtime is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if start_offset is None:
            error = runtime.delete(key)
        else:
            old = runtime.read(key)
            error = runtime.initialize(key, old.state_epoch + 1 if old else 0, start_offset)
        for broker in self._brokers.running.values():
            if broker.ctx.share_started is not None:
                broker.ctx.share_started.partitions.forget(key)
        return error

    def keys_of(self, group_id: str) -> list[ShareKey]:
        if "__share_group_state" not in self._brokers.controller.topics:
            return []
        keys: list[ShareKey] = []
        for broker in self._brokers.running.values():
            keys.extend(broker.ctx.share.state.keys_of(group_id))
        return keys


class _Markers:
    """The transaction coordinators' MarkerWriter: a marker goes to the partition's current
    leader, wherever it runs, as a control batch; on a `__consumer_offsets` partition its
    group coordinator then completes the transaction's pending offsets."""

    def __init__(self, brokers: Brokers) -> None:
        self._brokers = brokers

    def write_marker(
        self,
        tp: TopicPartition,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        txn_partition: int,
    ) -> ErrorCode | Awaitable[ErrorCode]:
        from msklite.coordinator.txn_runtime import TXN_TOPIC
        from msklite.replication.markers import write_marker

        topics = self._brokers.controller.topics
        topic = topics.get(tp.topic)
        if topic is None or not 0 <= tp.partition < len(topic.partitions):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        leader = self._brokers.running.get(topic.partitions[tp.partition].leader)
        if leader is None:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        txn_topic = topics.get(TXN_TOPIC)
        coordinator_epoch = (
            txn_topic.partitions[txn_partition].leader_epoch if txn_topic is not None else 0
        )
        written = write_marker(
            leader.replicas,
            self._brokers.clock,
            tp,
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
        )
        if isinstance(written, ErrorCode):
            return self._written(leader, tp, producer_id, commit, written)
        return self._when_written(leader, tp, producer_id, commit, written)

    async def _when_written(
        self,
        leader: Broker,
        tp: TopicPartition,
        producer_id: int,
        commit: bool,
        written: Awaitable[ErrorCode],
    ) -> ErrorCode:
        return self._written(leader, tp, producer_id, commit, await written)

    def _written(
        self, leader: Broker, tp: TopicPartition, producer_id: int, commit: bool, error: ErrorCode
    ) -> ErrorCode:
        from msklite.coordinator.group_runtime import OFFSETS_TOPIC

        if (
            error == ErrorCode.NONE
            and tp.topic == OFFSETS_TOPIC
            and self._brokers.running.get(leader.info.node_id) is leader
        ):
            # As Kafka's group coordinator on the marker's append: the transaction's pending
            # offsets become committed (or vanish).
            leader.ctx.groups.complete_txn(tp.partition, producer_id, commit)
        return error
