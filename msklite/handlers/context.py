"""What a handler may touch: its broker's replicas, the controller and cluster-wide caches.
Built by the cluster (the composition root) once per broker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msklite.authz import Authorizer
from msklite.authz.acls import AclAuthorizer, StaticAcls
from msklite.clock import Clock
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode
from msklite.handlers.metadata_cache import MetadataCache
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader
from msklite.replication.replica_manager import ReplicaManager
from msklite.throttle import BrokerQuotas
from msklite.topic_partition import TopicPartition

if TYPE_CHECKING:
    from msklite.coordinator.group_runtime import GroupRuntime
    from msklite.coordinator.txn_runtime import TxnRuntime
    from msklite.handlers.fetch_sessions import FetchSessionCache
    from msklite.handlers.share_manager import ShareServices


# A handler gets the parsed header and a reader positioned at the request body; it returns the
# response body as buffers, or None when no response is sent (Produce with acks=0) — or, when
# it must wait (acks=all, a long poll, a group join), an awaitable of either. Handlers that
# never wait are plain functions: the connection then answers without a task switch.
Response = list[Buffer] | None
Handler = Callable[["BrokerContext", RequestHeader, Reader], Response | Awaitable[Response]]
# A hook between the connection and the handlers (msklite.testing.control): it gets each valid
# request with the handler that serves it and decides whether to call it, wait first, answer
# otherwise or fail (a ProtocolError closes the connection).
RequestHook = Callable[
    [Handler, "BrokerContext", RequestHeader, Reader], Response | Awaitable[Response]
]

log = logging.getLogger("msklite.handlers")


# Request times are counted in buckets of powers of two of 1024 ns: bucket i holds the times
# t with (t >> 10).bit_length() == i, so that the hot path computes it without a search; 64
# buckets hold any int64 time.
TIME_BUCKETS = 64


@dataclass(slots=True)
class BrokerStats:
    """Per-broker counters the Python API exposes, tests read and msklite.metrics renders at
    scrape time: plain ints bumped on the hot path, no locks (one event loop)."""

    bytes_out: int = 0  # fetched record bytes (tests see which replica served a consumer)
    # requests that failed on an exception of ours (a bug), not on the peer's bytes
    internal_errors: int = 0
    # topic -> record bytes / records appended by producers (Kafka's BytesInPerSec and
    # MessagesInPerSec) and bytes fetched by consumers (BytesOutPerSec); replication excluded
    bytes_in_by_topic: dict[str, int] = field(default_factory=dict)
    messages_in_by_topic: dict[str, int] = field(default_factory=dict)
    bytes_out_by_topic: dict[str, int] = field(default_factory=dict)
    # api key -> version -> requests handled (RequestsPerSec); api key -> total ns and time
    # buckets (TotalTimeMs). Sized by `size_for` to the served keys and versions.
    requests: list[list[int]] = field(default_factory=list)
    request_time_ns: list[int] = field(default_factory=list)
    request_times: list[list[int]] = field(default_factory=list)

    def size_for(self, api_versions: dict[int, tuple[int, int]]) -> None:
        keys = max(api_versions, default=-1) + 1
        self.requests = [
            [0] * (api_versions[k][1] + 1 if k in api_versions else 0) for k in range(keys)
        ]
        self.request_time_ns = [0] * keys
        self.request_times = [[0] * TIME_BUCKETS for _ in range(keys)]


@dataclass(slots=True)
class BrokerContext:
    broker: BrokerInfo
    controller: Controller
    replicas: ReplicaManager
    clock: Clock
    metadata_cache: MetadataCache
    fetch_sessions: FetchSessionCache
    start_groups: Callable[[], GroupRuntime]
    start_txn: Callable[[], TxnRuntime]
    # api key -> (min, max) advertised and accepted: the emulated Kafka release's versions
    # that a handler serves (registry.served_versions)
    api_versions: dict[int, tuple[int, int]]
    stats: BrokerStats = field(default_factory=BrokerStats)
    # who may do what (msklite.authz): the cluster's, shared by its brokers; by default the
    # ACL authorizer over no ACLs, which allows everything
    authorizer: Authorizer = field(default_factory=lambda: AclAuthorizer(StaticAcls()))
    # the broker's client quota managers (produce, fetch, request time)
    quotas: BrokerQuotas = field(default_factory=BrokerQuotas)
    # the test kit's per-request hook (msklite.testing.control); None: every request is handled
    request_hook: RequestHook | None = None
    # KIP-890 part 1: asks the transactional id's coordinator, wherever it runs, whether a
    # partition is in the producer's transaction (transactional id, producer id, epoch,
    # partition) -> its verify_only answer
    verify_txn: Callable[[str, int, int, TopicPartition], ErrorCode] | None = None
    _groups: GroupRuntime | None = None
    _txn: TxnRuntime | None = None
    # share groups (KIP-932): started by the first share request, as the group coordinator is
    start_share: Callable[[], ShareServices] | None = None
    share_started: ShareServices | None = None

    def __post_init__(self) -> None:
        self.stats.size_for(self.api_versions)

    @property
    def groups(self) -> GroupRuntime:
        """This broker's group coordinator, started by the first request that needs one:
        importing it costs ≈25 ms that would otherwise sit on every cold start (and Kafka
        itself creates __consumer_offsets only on the first FindCoordinator)."""
        runtime = self._groups
        if runtime is None:
            runtime = self._groups = self.start_groups()
        return runtime

    @property
    def txn(self) -> TxnRuntime:
        """This broker's transaction coordinator, started by the first request that needs
        one (or at start, when `__transaction_state` exists)."""
        runtime = self._txn
        if runtime is None:
            runtime = self._txn = self.start_txn()
        return runtime

    @property
    def share(self) -> ShareServices:
        """This broker's share-group coordinators and share partitions."""
        services = self.share_started
        if services is None:
            assert self.start_share is not None, "share groups are wired by the cluster"
            services = self.share_started = self.start_share()
        return services

    @property
    def node_id(self) -> int:
        return self.broker.node_id

    def internal_error(self, doing: str, *args: object) -> None:
        """Count and log, with its traceback, an exception of ours (a bug: the peer's bad bytes
        are ProtocolErrors); call it from the `except` block that caught the exception."""
        self.stats.internal_errors += 1
        log.exception("internal error " + doing, *args)
