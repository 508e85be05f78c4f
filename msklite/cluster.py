"""Cluster: the composition root. Builds the controller, the brokers (msklite/brokers.py), the
fault API (faults.py) and the periodic tasks (timers.py); starts and stops them.

Two ways to run it:
- `async with Cluster(...) as c:` on the caller's event loop;
- `c.start()` / `c.stop()` from synchronous code: the cluster gets an event loop of its own in a
  background thread (loop_thread.py), and the synchronous methods (create_topic, …) hop onto it.
`start` returns once every listener accepts connections.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from msklite.brokers import Broker, Brokers
from msklite.clock import Clock, SystemClock
from msklite.config import BrokerConfigs, ConfigValue, config_text
from msklite.controller import BrokerInfo, Controller, TopicState
from msklite.faults import Faults
from msklite.handlers.context import BrokerStats, RequestHook
from msklite.handlers.registry import served_versions
from msklite.kafka_version import DEFAULT_KAFKA_VERSION, release_versions
from msklite.kafka_version import kafka_version as kafka_version_name
from msklite.loop_thread import LoopThread
from msklite.metadata_log import MetadataLog
from msklite.msk import DEFAULT_AZS, MSK_BROKER_DEFAULTS, bootstrap_string, msk_hostname
from msklite.security.listeners import IAM, MAX_BROKERS_PER_KIND, SCRAM, TLS, ListenerKind
from msklite.security.settings import ClusterSecurity
from msklite.timers import Timers

if TYPE_CHECKING:
    from msklite.security.iam import IamCredential

T = TypeVar("T")
METADATA_FILE = "cluster-metadata.json"
# Kafka's producer.id.expiration.check.interval.ms (an internal config; its default)
PRODUCER_EXPIRATION_CHECK_MS = 600_000

__all__ = [
    "Broker",
    "Cluster",
    "PartitionView",
    "TransactionView",
    "default_data_dir",
    "msk_defaults",
]


@dataclass(frozen=True, slots=True)
class PartitionView:
    """A snapshot of one partition's replication state (for tests and status output)."""

    leader: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    high_watermarks: dict[int, int]  # live replica → its HW
    log_end_offsets: dict[int, int]  # live replica → its log end offset


@dataclass(frozen=True, slots=True)
class TransactionView:
    """One transactional id as its coordinator knows it (`kafka-transactions.sh describe`)."""

    transactional_id: str
    coordinator: int  # broker id
    state: str  # Kafka's name: Empty, Ongoing, PrepareCommit, CompleteCommit, ...
    producer_id: int
    producer_epoch: int
    partitions: list[tuple[str, int]]
    age_ms: int  # since the open transaction started; -1 when none is open


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


def stored_brokers(data_dir: str) -> int | None:
    """How many brokers the cluster saved in `data_dir` has (None: no cluster there yet)."""
    state = MetadataLog(os.path.join(data_dir, METADATA_FILE)).load()
    return None if state is None else len(state.get("brokers", []))


_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def _check_msk_layout(host: str, port: int, brokers: int) -> None:
    if port:
        raise ValueError(
            f"layout='msk' listens on MSK's ports (9092, 9094, 9096, 9098); port={port} is for "
            "the port-offset layout"
        )
    try:
        first = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(
            f"layout='msk' needs host to be a 127.x.y.z address (broker i listens on the "
            f"i-th address from it), got {host!r}"
        ) from None
    last = int(first) + brokers - 1
    if first not in _LOOPBACK or (last & 0xFF) == 0xFF or (last >> 8) != (int(first) >> 8):
        raise ValueError(
            f"layout='msk' puts broker i on {host} + i - 1: {brokers} broker(s) from {host} "
            "leave 127.x.y.1-254"
        )


def _whole_number(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} is an int, got {value!r} ({type(value).__name__})")
    return value


def _az_ids(azs: object) -> tuple[str, ...]:
    if isinstance(azs, str):
        azs = [a.strip() for a in azs.split(",")]
    if not isinstance(azs, list | tuple) or not azs:
        raise TypeError(f"azs is a list of AZ ids (or a comma-separated str), got {azs!r}")
    for az in azs:
        if not isinstance(az, str) or not az:
            raise ValueError(f"an AZ id is a non-empty str, got {az!r} in azs={azs!r}")
    if len(set(azs)) != len(azs):
        raise ValueError(f"azs names an AZ twice: {azs!r}")
    return tuple(azs)


class Cluster:
    def __init__(
        self,
        brokers: int = 3,
        data_dir: str | None = None,
        config: Mapping[str, ConfigValue] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        azs: str | tuple[str, ...] | list[str] = DEFAULT_AZS,
        clock: Clock | None = None,
        auth: str | list[str] | tuple[str, ...] = "plaintext",
        scram_users: Mapping[str, str] | None = None,
        tls_client_auth: bool = False,
        iam_credentials: Mapping[str, IamCredential | Mapping[str, str]] | None = None,
        iam_permissive: bool = True,
        iam_policies: Mapping[str, Any] | None = None,
        layout: str = "offset",
        msk_hostnames: bool = False,
        kafka_version: str = DEFAULT_KAFKA_VERSION,
    ) -> None:
        """`data_dir=None` means a temporary directory removed at stop; `port=0` binds each
        broker to a free port, otherwise broker i listens on `port + i - 1`. `azs` is a list
        of AZ ids (or one comma-separated string). Config values may be str, int, float,
        bool (Kafka's true/false) or a list of str.

        `auth` names the listeners every broker offers, as MSK's: "plaintext" (9092), "tls"
        (9094), "scram" (SASL_SSL with SCRAM-SHA-512/256, 9096), "iam" (SASL_SSL with
        AWS_MSK_IAM and OAUTHBEARER, 9098), a list or a comma-separated str. With a fixed
        `port`, a kind's brokers listen from `port` + 0, 100, 200 or 300
        (msklite/security/listeners.py). `scram_users` maps user names to passwords;
        `tls_client_auth` makes the TLS listener require client certificates (mTLS), issued
        by `client_certificate(name)`. `iam_credentials` maps access key ids to
        `{"secret_access_key": ..., "principal_arn": ...}`; `iam_permissive` (the default)
        also accepts keys it does not know, unchecked (msklite/security/iam.py).
        `iam_policies` maps principal ARNs to IAM policy documents (a dict, its JSON text or
        a list of them) that authorize the IAM listener's requests
        (msklite/security/iam_policy.py).
        `layout="msk"`: broker i listens on the i-th address from `host` (127.0.0.1,
        127.0.0.2, ...: every 127.x.y.z is loopback on Linux) on MSK's own ports (9092, 9094,
        9096, 9098), as MSK's brokers do on their own hosts; `port` must then be 0.
        `msk_hostnames`: brokers advertise MSK-shaped names
        (`b-1.msklite.<id>.c1.kafka.us-east-1.amazonaws.com`) that the user maps to their
        addresses in /etc/hosts (`msk_hosts_lines`); their certificates carry them.
        `kafka_version` is the MSK Kafka version to emulate (its API versions and the configs
        that differ; see msklite.kafka_version)."""
        brokers = _whole_number("brokers", brokers)
        if brokers < 1:
            raise ValueError(f"a cluster needs at least one broker, got brokers={brokers}")
        port = _whole_number("port", port)
        if port and not 1 <= port <= 65536 - brokers:
            raise ValueError(
                f"port {port} does not fit {brokers} broker(s): broker i listens on port+i-1, "
                f"so port must be 1-{65536 - brokers} (or 0 for free ports)"
            )
        azs = _az_ids(azs)
        if layout not in ("offset", "msk"):
            raise ValueError(f"layout is 'offset' or 'msk', got {layout!r}")
        self.layout = layout
        if layout == "msk":
            _check_msk_layout(host, port, brokers)
        self.security = ClusterSecurity(
            auth, scram_users, tls_client_auth, iam_credentials, iam_permissive, iam_policies
        )
        top = max(k.offset for k in self.security.kinds)
        if port and len(self.security.kinds) > 1 and brokers > MAX_BROKERS_PER_KIND:
            raise ValueError(
                f"{brokers} brokers with several listeners need port=0 (free ports): the "
                f"port-offset layout fits {MAX_BROKERS_PER_KIND} brokers per listener"
            )
        if port and port + top + brokers - 1 > 65535:
            raise ValueError(
                f"port {port} does not fit the listeners of {brokers} broker(s): the last "
                f"would listen on {port + top + brokers - 1}, past 65535"
            )
        self.security.msk_ports = layout == "msk"
        self.msk_hostnames = msk_hostnames
        self.host = host
        self.base_port = port
        self.azs = azs
        self.clock = clock or SystemClock()
        self.kafka_version = kafka_version_name(kafka_version)
        self._ephemeral = data_dir is None
        self._data_dir = data_dir
        self.broker_configs = BrokerConfigs(
            {**msk_defaults(brokers, len(self.azs)), **(config or {})}, self.kafka_version
        )
        self.controller: Controller | None = None
        self.infos = [
            self._new_info(i, self.azs[(i - 1) % len(self.azs)]) for i in range(1, brokers + 1)
        ]
        self._brokers: Brokers | None = None
        self._faults: Faults | None = None
        self._timers = Timers(self.clock)
        self._bridge = LoopThread("msklite")
        self.started = False

    def _new_info(self, node_id: int, az: str) -> BrokerInfo:
        """Where broker `node_id` listens in the cluster's layout."""
        if self.layout == "msk":
            address = ipaddress.IPv4Address(self.host) + node_id - 1
            if address not in _LOOPBACK or int(address) & 0xFF == 0xFF:
                raise ValueError(f"broker {node_id} would listen on {address}, past 127.x.y.254")
            info = BrokerInfo(node_id, az, str(address), self.security.kinds[0].msk_port)
        else:
            port = self.base_port + node_id - 1 if self.base_port else 0
            if port > 65535:
                raise ValueError(f"broker {node_id} would listen on port {port}, past 65535")
            info = BrokerInfo(node_id, az, self.host, port)
        if self.msk_hostnames and self.controller is not None:
            info.bind, info.host = info.host, msk_hostname(node_id, self.controller.cluster_id)
        return info

    @property
    def msk_hosts_lines(self) -> list[str]:
        """The /etc/hosts lines that make the MSK-shaped names resolve (msk_hostnames)."""
        return [f"{i.bind} {i.host}" for i in self.infos if i.bind]

    # ---- properties ----

    @property
    def data_dir(self) -> str:
        if self._data_dir is None:
            raise RuntimeError("the cluster has not started")
        return self._data_dir

    @property
    def brokers(self) -> dict[int, Broker]:
        """The running brokers by id."""
        return {} if self._brokers is None else self._brokers.running

    @property
    def bootstrap_servers(self) -> str:
        """The first listener's (the plaintext one, when it is enabled)."""
        return self._bootstrap(self.security.kinds[0])

    @property
    def bootstrap_servers_tls(self) -> str | None:
        """MSK's BootstrapBrokerStringTls (None: no TLS listener)."""
        return self._bootstrap(TLS) if TLS in self.security.kinds else None

    @property
    def bootstrap_servers_sasl_scram(self) -> str | None:
        """MSK's BootstrapBrokerStringSaslScram (None: no SASL/SCRAM listener)."""
        return self._bootstrap(SCRAM) if SCRAM in self.security.kinds else None

    @property
    def bootstrap_servers_sasl_iam(self) -> str | None:
        """MSK's BootstrapBrokerStringSaslIam (None: no IAM listener)."""
        return self._bootstrap(IAM) if IAM in self.security.kinds else None

    @property
    def bootstrap_lines(self) -> list[tuple[str, str]]:
        """(label, bootstrap string) per listener kind, plaintext first: "" labels it."""
        return [(k.label, self._bootstrap(k)) for k in self.security.kinds]

    @property
    def ca_certificate(self) -> str | None:
        """The local CA's certificate (PEM) a TLS client trusts; None without TLS."""
        return self.security.ca_path

    def add_scram_user(self, user: str, password: str) -> None:
        """Add (or change the password of) a SCRAM-SHA-512 and SCRAM-SHA-256 user."""
        self.security.users.add(user, password)

    def add_iam_credential(
        self, access_key_id: str, secret_access_key: str, principal_arn: str
    ) -> None:
        """Let the IAM listener check signatures of `access_key_id` against its secret and name
        the client `principal_arn` (`arn:aws:iam::<account>:user/<name>` or a role's ARN)."""
        self.security.iam.add(access_key_id, secret_access_key, principal_arn)

    def attach_iam_policy(self, principal_arn: str, policy: str | Mapping[str, Any]) -> None:
        """Attach an IAM policy document (a dict or its JSON text) to `principal_arn`; from the
        first one on, the IAM listener's requests are authorized by policies."""
        self.security.iam_policies.attach(principal_arn, policy)

    def client_certificate(self, name: str) -> tuple[str, str]:
        """A client certificate for mTLS with subject `CN=name` (principal `User:CN=name`),
        signed by the cluster's CA: (certificate PEM path, key PEM path)."""
        return self.security.client_certificate(self.data_dir, name)

    def _bootstrap(self, kind: ListenerKind) -> str:
        return bootstrap_string(
            [
                (b.info.host, b.info.ports.get(kind.name, 0), b.info.rack)
                for b in self.brokers.values()
            ]
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
        if self._data_dir is None:
            self._data_dir = tempfile.mkdtemp(prefix="msklite-")
        os.makedirs(self.data_dir, exist_ok=True)
        for info in self.infos:
            info.alive = True
        controller = Controller(
            self.infos, self.broker_configs, os.path.join(self.data_dir, METADATA_FILE)
        )
        self.controller = controller
        controller.save_new_cluster()
        if self.msk_hostnames:
            for info in self.infos:
                info.bind = info.bind or info.host
                info.host = msk_hostname(info.node_id, controller.cluster_id)
        known = {i.node_id for i in self.infos}
        stored = sorted(n for n in controller.brokers if n not in known)
        if stored:
            # Kafka clusters do not shrink: the partitions on the brokers left out would be
            # offline. (`msklite serve` without --brokers starts as many as were saved.)
            self.controller = None
            total = len(controller.brokers)
            raise ValueError(
                f"{self.data_dir} holds a cluster of {total} brokers; brokers={len(known)} "
                f"would leave out broker(s) {', '.join(map(str, stored))}: start it with "
                f"brokers={total}, or use another data directory"
            )
        self.security.start(self.data_dir)
        self.security.users.bind(controller)
        brokers = self._brokers = Brokers(
            controller,
            self.broker_configs,
            self.clock,
            self.data_dir,
            self.host,
            served_versions(release_versions(self.kafka_version)),
            self.security,
        )
        self._faults = Faults(brokers, self.infos, self.azs, self._new_info)
        try:
            for info in self.infos:
                brokers.build(info)
            for broker in brokers.running.values():
                await brokers.open(broker)
        except OSError as e:
            await self._shutdown()
            if self.layout == "msk" and e.errno == errno.EADDRNOTAVAIL:
                raise OSError(
                    e.errno,
                    f"{e.strerror}: layout 'msk' needs 127.0.0.2, 127.0.0.3, ... to be loopback "
                    "addresses (they are on Linux; on macOS add each with `sudo ifconfig lo0 "
                    "alias 127.0.0.2 up`), or use the port-offset layout",
                ) from e
            raise
        except BaseException:
            await self._shutdown()
            raise
        self._timers.every(
            self.broker_configs.get_int("log.retention.check.interval.ms"), self.enforce_retention
        )
        # Kafka's isr-expiration task runs every replica.lag.time.max.ms / 2.
        self._timers.every(
            self.broker_configs.get_int("replica.lag.time.max.ms") // 2, self.check_isr
        )
        self._timers.every(PRODUCER_EXPIRATION_CHECK_MS, self.remove_expired_producers)
        self.started = True

    async def astop(self) -> None:
        if not self.started:
            return
        self.started = False
        await self._shutdown()

    async def _shutdown(self) -> None:
        await self._timers.cancel_all()
        self.security.stop()
        if self._brokers is not None:
            await self._brokers.shutdown()
        if self._ephemeral and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def check_isr(self) -> None:
        """Shrink ISRs of followers that lag beyond replica.lag.time.max.ms, now."""
        max_lag = self.broker_configs.get_int("replica.lag.time.max.ms")
        for broker in list(self.brokers.values()):
            broker.replicas.check_isr(max_lag)

    def remove_expired_producers(self) -> int:
        """Forget, on every broker, the producers idle longer than producer.id.expiration.ms
        (a dynamic cluster-wide config); returns how many entries went."""
        expiration = self._controller().configs.get_int("producer.id.expiration.ms")
        return sum(b.replicas.remove_expired_producers(expiration) for b in self.brokers.values())

    def enforce_retention(self) -> int:
        """Run one retention pass on every broker now; returns segments removed."""
        return sum(b.replicas.enforce_retention() for b in self.brokers.values())

    def clean_logs(self) -> int:
        """Compact now, on every broker, every log that its cleaner would pick (the cleaners
        otherwise run every log.cleaner.backoff.ms); returns the number of cleans."""

        def clean() -> int:
            done = 0
            for broker in list(self.brokers.values()):
                while broker.cleaner.clean_once():
                    done += 1
            return done

        return self._call(clean)

    # ---- faults (faults.py has the details) ----

    def _fault_api(self) -> Faults:
        if self._faults is None or not self.started:
            raise RuntimeError("the cluster is not running")
        return self._faults

    async def astop_broker(self, node_id: int) -> None:
        await self._fault_api().stop_broker(node_id)

    async def astart_broker(self, node_id: int) -> None:
        await self._fault_api().start_broker(node_id)

    async def aadd_broker(self, az: str | None = None) -> int:
        return await self._fault_api().add_broker(az)

    async def astop_az(self, az: str) -> None:
        await self._fault_api().stop_az(az)

    async def astart_az(self, az: str) -> None:
        await self._fault_api().start_az(az)

    async def aupdate_kafka_version(
        self, name: str, on_broker: Callable[[int], None] | None = None
    ) -> None:
        """Move to the Kafka release `name` as MSK updates a cluster's version: a rolling
        restart. One running broker after the other stops (its leaderships move), starts again
        advertising the release's API versions, and catches up into every ISR (its preferred
        leaderships come back, auto.leader.rebalance.enable) before the next one stops;
        `on_broker(node_id)` after each. At the end the release's configs and defaults apply
        cluster-wide. ValueError (before any broker stops): a static config the release lacks."""
        target = kafka_version_name(name)
        self.broker_configs.upgrade_check(target)
        faults = self._fault_api()
        assert self._brokers is not None
        versions = served_versions(release_versions(target))
        for node_id in sorted(self.brokers):
            await faults.stop_broker(node_id)
            # a new table: the brokers not yet restarted keep answering with the old one
            self._brokers.api_versions = versions
            await faults.start_broker(node_id)
            await self.acaught_up(node_id)
            if on_broker is not None:
                on_broker(node_id)
        self._brokers.api_versions = versions  # brokers stopped meanwhile start in it too
        self.broker_configs.set_kafka_version(target)
        self.kafka_version = target

    async def acaught_up(self, node_id: int) -> None:
        """Until broker `node_id` is in the ISR of every partition it replicates that has a
        leader (or it stopped again): after a start, when it serves as before (with
        auto.leader.rebalance.enable, its preferred leaderships are back)."""
        controller = self._controller()
        changed = asyncio.Event()

        def lagging() -> bool:
            return node_id in self.brokers and any(
                node_id in p.replicas and p.leader != -1 and node_id not in p.isr
                for topic in controller.topics.values()
                for p in topic.partitions
            )

        def observe(_topic: str) -> None:
            changed.set()

        controller.on_change(observe)
        try:
            while lagging():
                changed.clear()
                await changed.wait()
        finally:
            controller.off_change(observe)

    def pause_replication(self, node_id: int, topic: str | None = None, partition: int = 0) -> None:
        """Make broker `node_id`'s follower replicas stop copying (all, or one partition), so
        they fall behind and leave the ISR after replica.lag.time.max.ms."""
        self._call(lambda: self._fault_api().pause_replication(node_id, topic, partition))

    def resume_replication(
        self, node_id: int, topic: str | None = None, partition: int = 0
    ) -> None:
        self._call(lambda: self._fault_api().resume_replication(node_id, topic, partition))

    def stop_broker(self, node_id: int) -> None:
        self._run(self.astop_broker(node_id))

    def start_broker(self, node_id: int) -> None:
        self._run(self.astart_broker(node_id))

    def add_broker(self, az: str | None = None) -> int:
        return self._run(self.aadd_broker(az))

    def stop_az(self, az: str) -> None:
        self._run(self.astop_az(az))

    def update_kafka_version(self, name: str) -> None:
        """A rolling restart onto another Kafka release (`aupdate_kafka_version`)."""
        self._run(self.aupdate_kafka_version(name))

    def start_az(self, az: str) -> None:
        self._run(self.astart_az(az))

    # ---- lifecycle from synchronous code ----

    def start(self) -> Cluster:
        """Start on a private event loop in a background thread; returns when listening."""
        if self._bridge.running:
            raise RuntimeError("cluster already started")
        self._bridge.start(self.astart)
        return self

    def stop(self) -> None:
        self._bridge.stop(self.astop())

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the cluster's loop: directly when already there, else hop threads."""
        if not self.started:
            raise RuntimeError("the cluster is not running")
        return self._bridge.call(fn)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the cluster's from synchronous code (background-thread mode)."""
        return self._bridge.run(coro)

    # ---- admin API ----

    def _controller(self) -> Controller:
        if self.controller is None:
            raise RuntimeError("the cluster has not started")
        return self.controller

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, ConfigValue] | None = None,
    ) -> TopicState:
        """Create a topic (raises KafkaError as CreateTopics would report it). Config values
        may be str, int, float, bool or a list of str, as for the cluster's configs."""
        texts = {k: config_text(k, v) for k, v in (configs or {}).items()}
        return self._call(
            lambda: self._controller().create_topic(
                name,
                partitions,
                -1 if replication_factor is None else replication_factor,
                None,
                texts,
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

    def partition(self, topic: str, partition: int) -> PartitionView:
        def snapshot() -> PartitionView:
            tp = self._fault_api().partition_key(topic, partition)
            p = self._controller().topics[tp.topic].partitions[tp.partition]
            hws, leos = {}, {}
            for node_id, broker in self.brokers.items():
                part = broker.replicas.partitions.get(tp)
                if part is not None:
                    hws[node_id] = part.high_watermark
                    leos[node_id] = part.log.log_end_offset
            return PartitionView(p.leader, p.leader_epoch, list(p.replicas), list(p.isr), hws, leos)

        return self._call(snapshot)

    def set_request_hook(self, hook: RequestHook | None) -> None:
        """Route every request of every broker through `hook` (None: straight to the handlers).
        msklite.testing.control builds hooks that intercept, delay or fail one request kind."""
        self._call(lambda: self._fault_api().brokers.set_request_hook(hook))

    def waiting_fetches(self) -> int:
        """Fetches parked in the brokers' purgatories (waiting for data)."""
        return self._call(lambda: sum(len(b.replicas.fetch_waiters) for b in self.brokers.values()))

    def transactions(self) -> list[TransactionView]:
        """Every transactional id of the cluster, from the coordinators of the running
        brokers, sorted by id."""

        def collect() -> list[TransactionView]:
            if "__transaction_state" not in self._controller().topics:
                return []
            now = self.clock.now_ms()
            out = [
                TransactionView(
                    t.transactional_id,
                    node_id,
                    t.state.kafka_name,
                    t.producer_id,
                    t.producer_epoch,
                    sorted((tp.topic, tp.partition) for tp in t.partitions),
                    now - t.start_ms if t.is_open else -1,
                )
                for node_id, broker in self.brokers.items()
                for t in broker.ctx.txn.transactions()
            ]
            return sorted(out, key=lambda v: v.transactional_id)

        return self._call(collect)

    def broker_stats(self, node_id: int) -> BrokerStats:
        return self._call(lambda: self._fault_api().running(node_id).ctx.stats)
