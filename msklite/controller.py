"""The controller: cluster metadata and the decisions that change it — topics and their ids,
partition assignment across brokers and AZs, topic configs, producer-id allocation.

Synchronous and pure apart from persisting its state (metadata_log.py: a snapshot and the
changes since, a stand-in for KRaft's metadata log, DEVIATIONS.md). A change counts only once
it is written: a change whose save
fails is rolled back before anyone sees it and answers KAFKA_STORAGE_ERROR, as a KRaft
controller that cannot append to its log applies nothing. Observers registered with
`on_change` hear each topic change after it is committed; the cluster uses that to open or
delete logs and to invalidate cached Metadata fragments.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msklite.authz.acls import AclBinding, AclFilter, validate_new
from msklite.client_quotas import Entity, Op, Outcome, QuotaTable
from msklite.config import (
    BROKER_CONFIGS,
    PER_BROKER,
    TOPIC_CONFIGS,
    BrokerConfigs,
    TopicConfig,
    apply_ops,
    unknown_broker_config,
    validate_group_configs,
)
from msklite.credentials import (
    MAX_ITERATIONS,
    MECHANISM_TYPES,
    MIN_ITERATIONS,
    ScramCredential,
    from_salted_password,
)
from msklite.errors import ErrorCode, KafkaError
from msklite.metadata_log import MetadataLog
from msklite.msk import spread_over_azs
from msklite.protocol.primitives import kafka_uuid_str

log = logging.getLogger(__name__)
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_NAME = 249
# Producer ids are handed out in blocks, and the block's end is persisted, so an id is never
# reused after a restart (a reused id would meet its predecessor's sequence numbers).
PRODUCER_ID_BLOCK = 1000
# KRaft writes the changes of one admin request as one atomic batch of metadata records and
# refuses a request that needs more than QuorumController.MAX_RECORDS_PER_USER_OP of them;
# CreateTopics also refuses more than MAX_PARTITIONS_PER_BATCH new partitions up front.
MAX_RECORDS_PER_USER_OP = 10_000
MAX_PARTITIONS_PER_BATCH = 10_000
EXCESSIVE_PARTITIONS = "Excessively large number of partitions per request."
EXCESSIVE_BATCH = "Unable to perform excessively large batch operation."


@dataclass(slots=True)
class BrokerInfo:
    node_id: int
    rack: str | None
    host: str = "127.0.0.1"
    port: int = 0
    alive: bool = True
    # listener name -> bound port, once the broker has listened (msklite.security.listeners)
    ports: dict[str, int] = field(default_factory=dict)
    bind: str = ""  # the address it listens on where that is not `host` (an advertised name)

    def port_for(self, listener: str) -> int:
        """The port this broker advertises to a client that came in on `listener`."""
        return self.ports.get(listener, self.port)


@dataclass(slots=True)
class PartitionState:
    partition: int
    replicas: list[int]
    leader: int
    isr: list[int]
    leader_epoch: int = 0
    # An ongoing reassignment (KIP-455): `replicas` is then target + removing.
    adding_replicas: list[int] = field(default_factory=list)
    removing_replicas: list[int] = field(default_factory=list)


@dataclass(slots=True)
class TopicState:
    name: str
    topic_id: uuid.UUID
    partitions: list[PartitionState]
    config: TopicConfig  # the effective configs, typed; rebuilt whenever `configs` changes
    configs: dict[str, str] = field(default_factory=dict)  # the topic's own overrides
    internal: bool = False
    # `config` as seen on the brokers with topic defaults of their own (dynamic per-broker)
    node_configs: dict[int, TopicConfig] = field(default_factory=dict)

    def config_on(self, node_id: int) -> TopicConfig:
        """The typed config of this topic's replicas on broker `node_id`."""
        return self.node_configs.get(node_id, self.config)


@dataclass(slots=True)
class NewTopic:
    """A topic as CreateTopics asks for it (-1: the broker's default)."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    assignments: dict[int, list[int]] | None = None
    configs: Mapping[str, str | None] = field(default_factory=dict)


_PartitionFields = tuple[PartitionState, list[int], int, list[int], int, list[int], list[int]]


@dataclass(slots=True)
class _Snapshot:
    """What a change may touch, taken before it starts, to undo it when its save fails. The
    objects are restored in place: replicas hold references to their PartitionState."""

    topics: dict[str, TopicState]
    partitions: list[
        tuple[TopicState, list[PartitionState], dict[str, str], TopicConfig, dict[int, TopicConfig]]
    ]
    fields: list[_PartitionFields]
    owners: list[TopicState]  # the topic of each entry of `fields`
    placements: int
    producer_id_block_end: int
    brokers: dict[int, BrokerInfo]
    acls: tuple[AclBinding, ...]
    scram: dict[str, dict[str, ScramCredential]]


def validate_topic_name(name: str) -> None:
    if not name:
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION, "Topic name is illegal, it can't be empty"
        )
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, 'Topic name cannot be "." or ".."')
    if len(name) > MAX_TOPIC_NAME:
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME} characters, "
            f"topic name: {name}",
        )
    if not _LEGAL_TOPIC.match(name):
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f'Topic name "{name}" is illegal, it contains a character other than ASCII '
            "alphanumerics, '.', '_' and '-'",
        )


def validate_topic_configs(
    configs: Mapping[str, str | None], absent: Mapping[str, str]
) -> dict[str, str]:
    """`absent`: the configs the emulated Kafka release does not have, refused as unknown."""
    out: dict[str, str] = {}
    for name, value in configs.items():
        d = TOPIC_CONFIGS.get(name)
        if d is None or name in absent:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
        if value is None:
            raise KafkaError(
                ErrorCode.INVALID_CONFIG, f"Null value not supported for topic configs: {name}"
            )
        err = d.validate(value)
        if err:
            raise KafkaError(ErrorCode.INVALID_CONFIG, err)
        out[name] = value
    return out


class Controller:
    def __init__(
        self,
        brokers: list[BrokerInfo],
        broker_configs: BrokerConfigs,
        state_path: str | None,
        cluster_id: str | None = None,
    ) -> None:
        self.brokers = {b.node_id: b for b in brokers}
        self.configs = broker_configs
        self.state_path = state_path
        self.topics: dict[str, TopicState] = {}
        self.topics_by_id: dict[uuid.UUID, TopicState] = {}
        self.cluster_id = cluster_id or _new_cluster_id()
        self._next_producer_id = 0
        self._producer_id_block_end = 0
        self._placements = 0
        # ACLs (msklite.authz): replaced as a whole on every change, so that a snapshot's
        # reference undoes a change and the authorizer sees by identity when to re-index
        self.acls: tuple[AclBinding, ...] = ()
        # KIP-848 group configs (GROUP resources): group id -> its overrides
        self.group_configs: dict[str, dict[str, str]] = {}
        # SCRAM credentials, user → mechanism → credential; replaced as a whole on change too
        self.scram: dict[str, dict[str, ScramCredential]] = {}
        self._observers: list[Callable[[str], None]] = []
        self.client_quotas = QuotaTable()
        self._quota_observers: list[Callable[[QuotaTable], None]] = []
        self._save_failing = False
        self._unsaved = False  # a change kept in memory is not on disk: write everything next
        # Brokers whose log directory is offline (KRaft: their offline directories, reported
        # in heartbeats): their replicas neither lead, nor sit in ISRs, nor get new partitions.
        self.offline_dirs: set[int] = set()
        self._store = MetadataLog(state_path) if state_path else None
        self._never_saved = False
        if self._store is not None:
            self._load()

    # ---- persistence ----

    def _load(self) -> None:
        assert self._store is not None
        state = self._store.load()
        if state is None:
            self._never_saved = True
            return
        self.cluster_id = state["cluster_id"]
        # Ids below a persisted block end may have been handed out before the stop.
        self._next_producer_id = self._producer_id_block_end = state["producer_id_block_end"]
        self._placements = state.get("placements", 0)
        self._set_dynamic_configs(state.get("broker_configs", {}))
        self.group_configs = {g: dict(c) for g, c in state.get("group_configs", {}).items()}
        self.acls = tuple(AclBinding.from_json(row) for row in state.get("acls", []))
        self.scram = _scram_from_json(state.get("scram", {}))
        self.client_quotas.load_json(state.get("client_quotas", []))
        for b in state.get("brokers", []):
            if b["node_id"] not in self.brokers:
                self.brokers[b["node_id"]] = BrokerInfo(b["node_id"], b["rack"])
        for t in state["topics"]:
            topic = TopicState(
                t["name"],
                uuid.UUID(t["topic_id"]),
                [PartitionState(**p) for p in t["partitions"]],
                TopicConfig.build(self.configs, t["configs"]),
                t["configs"],
                t.get("internal", False),
                self._node_configs(t["configs"]),
            )
            self.topics[topic.name] = topic
            self.topics_by_id[topic.topic_id] = topic

    def save_new_cluster(self) -> None:
        """Save a cluster that has nothing saved yet, so that its id survives a restart before
        the first change (clients compare cluster ids). The first change still writes a whole
        snapshot, as it would without this one; a failed write is retried by that change."""
        if self._store is None or not self._never_saved:
            return
        self._never_saved = False
        with contextlib.suppress(OSError):
            self._store.write_snapshot(
                {"cluster_id": self.cluster_id, **self._globals(), "topics": []}
            )
        self._unsaved = True

    def _globals(self) -> dict[str, Any]:
        return {
            "producer_id_block_end": self._producer_id_block_end,
            "placements": self._placements,
            "brokers": [{"node_id": b.node_id, "rack": b.rack} for b in self.brokers.values()],
            "broker_configs": self._dynamic_configs(),
            "group_configs": self.group_configs,
            "client_quotas": self.client_quotas.to_json(),
        }

    def _dynamic_configs(self) -> dict[str, dict[str, str]]:
        """The dynamic broker configs as saved: "" for the cluster default, else node ids."""
        out = {"": dict(self.configs.dynamic_default)}
        out.update({str(n): dict(c) for n, c in self.configs.dynamic.items() if c})
        return out

    def _set_dynamic_configs(self, saved: Mapping[str, Mapping[str, str]]) -> None:
        self.configs.dynamic_default = dict(saved.get("", {}))
        self.configs.dynamic = {int(n): dict(c) for n, c in saved.items() if n}

    def _save(self, snap: _Snapshot) -> None:
        """Write the change made since `snap`: one line of the metadata log (what changed),
        or a whole new snapshot when the log has outgrown the last one or an earlier change
        (a fact) could not be written."""
        store = self._store
        if store is None:
            return
        if self._unsaved or store.wants_snapshot:
            store.write_snapshot(
                {
                    "cluster_id": self.cluster_id,
                    **self._globals(),
                    "topics": [_topic_json(t) for t in self.topics.values()],
                    "acls": [b.to_json() for b in self.acls],
                    "scram": _scram_json(self.scram),
                }
            )
        else:
            store.append(self._change(snap))
        self._unsaved = False

    def _change(self, snap: _Snapshot) -> dict[str, Any]:
        """What changed since `snap`: whole topics created, deleted or reshaped (configs,
        partition count), single partitions for the rest."""
        topics: dict[str, Any] = {
            name: _topic_json(t)
            for name, t in self.topics.items()
            if snap.topics.get(name) is not t
        }
        topics.update(dict.fromkeys(snap.topics.keys() - self.topics.keys()))
        for topic, parts, configs, _, _ in snap.partitions:
            reshaped = topic.configs is not configs or len(topic.partitions) != len(parts)
            if reshaped and topic.name not in topics and self.topics.get(topic.name) is topic:
                topics[topic.name] = _topic_json(topic)
        partitions = []
        for topic, (p, *before) in zip(snap.owners, snap.fields, strict=True):
            if topic.name in topics or self.topics.get(topic.name) is not topic:
                continue
            now = [
                p.replicas,
                p.leader,
                p.isr,
                p.leader_epoch,
                p.adding_replicas,
                p.removing_replicas,
            ]
            if before != now:
                partitions.append([topic.name, str(topic.topic_id), _partition_json(p)])
        change = {**self._globals(), "topics": topics, "partitions": partitions}
        if self.acls is not snap.acls:
            change["acls"] = [b.to_json() for b in self.acls]
        if self.scram is not snap.scram:
            change["scram"] = _scram_json(self.scram)
        return change

    def _commit_code(self, snap: _Snapshot, topic: str) -> ErrorCode:
        """`_commit` for the APIs that answer an error code per partition."""
        try:
            self._commit(snap, topic)
        except KafkaError as e:
            return e.code
        return ErrorCode.NONE

    # ---- observers ----

    def on_change(self, observer: Callable[[str], None]) -> None:
        self._observers.append(observer)

    def off_change(self, observer: Callable[[str], None]) -> None:
        self._observers.remove(observer)

    def on_quota_change(self, observer: Callable[[QuotaTable], None]) -> None:
        """`observer` gets the quota table now and after every change (a broker's quota
        managers: every broker applies a change at once)."""
        self._quota_observers.append(observer)
        observer(self.client_quotas)

    def off_quota_change(self, observer: Callable[[QuotaTable], None]) -> None:
        self._quota_observers.remove(observer)

    # ---- client quotas ----

    def alter_client_quotas(
        self, entries: list[tuple[Entity, list[Op]]], validate_only: bool = False
    ) -> list[Outcome]:
        """AlterClientQuotas, as Kafka's ClientQuotaControlManager checks it: one outcome per
        distinct entity. The accepted changes are saved together, then applied."""
        table = self.client_quotas
        outcomes, changed = table.alter(entries, validate_only)
        if not changed:
            return outcomes
        before = dict(table.entities)
        snap = self._snapshot([])
        table.replace(changed)
        try:
            self._commit(snap)
        except KafkaError as e:
            table.entities = before
            for o in outcomes:
                if o.code == ErrorCode.NONE:
                    o.code, o.message = e.code, e.message
            return outcomes
        for observer in list(self._quota_observers):
            observer(table)
        return outcomes

    def _snapshot(
        self, topics: list[TopicState] | None = None, only: PartitionState | None = None
    ) -> _Snapshot:
        """Undo information for a change of `topics` (None: every topic) — of the one
        partition `only` of the one topic, when given (an ISR or leader change)."""
        touched = list(self.topics.values()) if topics is None else topics
        owned = (
            [(touched[0], only)]
            if only is not None
            else [(t, p) for t in touched for p in t.partitions]
        )
        return _Snapshot(
            dict(self.topics),
            [(t, list(t.partitions), t.configs, t.config, t.node_configs) for t in touched],
            [
                (
                    p,
                    list(p.replicas),
                    p.leader,
                    list(p.isr),
                    p.leader_epoch,
                    list(p.adding_replicas),
                    list(p.removing_replicas),
                )
                for _, p in owned
            ],
            [t for t, _ in owned],
            self._placements,
            self._producer_id_block_end,
            dict(self.brokers),
            self.acls,
            self.scram,
        )

    def _restore(self, snap: _Snapshot) -> None:
        self.topics.clear()
        self.topics.update(snap.topics)
        self.topics_by_id.clear()
        self.topics_by_id.update({t.topic_id: t for t in self.topics.values()})
        for topic, partitions, configs, config, node_configs in snap.partitions:
            topic.partitions[:] = partitions
            topic.configs, topic.config, topic.node_configs = configs, config, node_configs
        for p, replicas, leader, isr, epoch, adding, removing in snap.fields:
            p.replicas, p.leader, p.isr, p.leader_epoch = replicas, leader, isr, epoch
            p.adding_replicas, p.removing_replicas = adding, removing
        self._placements = snap.placements
        self._producer_id_block_end = snap.producer_id_block_end
        self.brokers.clear()
        self.brokers.update(snap.brokers)
        self.acls = snap.acls
        self.scram = snap.scram

    def _commit(self, snap: _Snapshot, *topics: str, fact: bool = False) -> None:
        """Save a change made in memory since `snap`, then tell the observers. When the save
        fails the change is undone and KAFKA_STORAGE_ERROR raised — unless it records a `fact`
        (a broker or log directory went away or came back), which holds whether or not it is
        saved: it stays applied and reaches the file with the next change that saves."""
        try:
            self._save(snap)
        except OSError as e:
            # Once per spell of failures: every request would otherwise log it again.
            (log.debug if self._save_failing else log.error)(
                "cannot save cluster metadata to %s: %s", self.state_path, e
            )
            self._save_failing = True
            self._unsaved = fact
            if not fact:
                self._restore(snap)
                raise KafkaError(
                    ErrorCode.KAFKA_STORAGE_ERROR, f"cluster metadata could not be saved: {e}"
                ) from e
        else:
            if self._save_failing:
                log.warning("cluster metadata saved again")
                self._save_failing = False
        if log.isEnabledFor(logging.INFO):
            self._log_change(snap)
        for topic in topics:
            for observer in list(self._observers):
                observer(topic)

    def _log_change(self, snap: _Snapshot) -> None:
        """One INFO line per topic created or deleted, leader elected or ISR changed by a
        change that now holds."""
        for name, topic in self.topics.items():
            if name not in snap.topics:
                log.info(
                    "created topic %s: %d partition(s), replication factor %d",
                    name,
                    len(topic.partitions),
                    max((len(p.replicas) for p in topic.partitions), default=0),
                )
        for name in snap.topics.keys() - self.topics.keys():
            log.info("deleted topic %s", name)
        for (p, _, leader, isr, epoch, _, _), topic in zip(snap.fields, snap.owners, strict=True):
            if topic.name not in self.topics:
                continue
            if p.leader != leader or p.leader_epoch != epoch:
                log.info(
                    "leader of %s-%d: %s -> %s (epoch %d), ISR %s",
                    topic.name,
                    p.partition,
                    leader,
                    p.leader,
                    p.leader_epoch,
                    p.isr,
                )
            elif p.isr != isr:
                log.info(
                    "ISR of %s-%d %s: %s -> %s",
                    topic.name,
                    p.partition,
                    "shrank"
                    if len(p.isr) < len(isr)
                    else "expanded"
                    if len(p.isr) > len(isr)
                    else "changed",
                    isr,
                    p.isr,
                )

    # ---- topics ----

    def _rack_alternating(self) -> list[int]:
        """Broker ids ordered so that neighbours sit in different racks (Kafka's rack-aware
        assignment): replicas taken consecutively from it land in distinct AZs."""
        brokers = sorted(
            (b for b in self.brokers.values() if self._alive(b.node_id)), key=lambda b: b.node_id
        )
        return spread_over_azs([(b.node_id, b.rack) for b in brokers])

    def _assign(self, first_partition: int, count: int, replication_factor: int) -> list[list[int]]:
        order = self._rack_alternating()
        n = len(order)
        start = self._placements % n
        self._placements += 1
        return [
            [order[(start + p + r) % n] for r in range(replication_factor)]
            for p in range(first_partition, first_partition + count)
        ]

    def _check_assignments(self, assignments: dict[int, list[int]], first: int) -> list[list[int]]:
        expected = list(range(first, first + len(assignments)))
        if sorted(assignments) != expected:
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "Partitions must be numbered consecutively from " + str(first),
            )
        out = [assignments[p] for p in expected]
        sizes = {len(r) for r in out}
        if len(sizes) != 1 or 0 in sizes:
            raise KafkaError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "All partitions must have the same, non-zero number of replicas",
            )
        for replicas in out:
            if len(set(replicas)) != len(replicas):
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT, "Duplicate brokers in an assignment"
                )
            unknown = [b for b in replicas if b not in self.brokers]
            if unknown:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Unknown broker(s) in assignment: {unknown}",
                )
        return out

    def create_topic(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        assignments: dict[int, list[int]] | None = None,
        configs: Mapping[str, str | None] | None = None,
        validate_only: bool = False,
        internal: bool = False,
    ) -> TopicState:
        new = NewTopic(name, num_partitions, replication_factor, assignments, configs or {})
        (result,) = self.create_topics([new], validate_only, internal)
        if isinstance(result, KafkaError):
            raise result
        return result

    def create_topics(
        self, new_topics: list[NewTopic], validate_only: bool = False, internal: bool = False
    ) -> list[TopicState | KafkaError]:
        """One CreateTopics request: each topic's result or error, saved as one change.

        A request too large for one KRaft metadata batch fails as a whole, validate_only
        included, and creates nothing (POLICY_VIOLATION): more than MAX_PARTITIONS_PER_BATCH
        partitions asked for, counted before any other check (Kafka 4.0's
        validateTotalNumberOfPartitions), or more than MAX_RECORDS_PER_USER_OP records — a topic
        record, one per config and one per partition — for the topics that pass their checks."""
        default_partitions = self.configs.get_int("num.partitions")
        asked = 0
        for t in new_topics:
            if t.assignments:
                asked += len(t.assignments)
            elif t.num_partitions == -1:
                asked += default_partitions
            elif t.num_partitions > 0:
                asked += t.num_partitions
        if asked > MAX_PARTITIONS_PER_BATCH:
            raise KafkaError(ErrorCode.POLICY_VIOLATION, EXCESSIVE_PARTITIONS)
        snap = self._snapshot([])
        results: list[TopicState | KafkaError] = []
        records = 0
        for t in new_topics:
            try:
                topic = self._add_topic(t, validate_only, internal)
            except KafkaError as e:
                results.append(e)
                continue
            records += 1 + len(topic.configs) + len(topic.partitions)
            if records > MAX_RECORDS_PER_USER_OP:
                self._restore(snap)
                raise KafkaError(ErrorCode.POLICY_VIOLATION, EXCESSIVE_BATCH)
            results.append(topic)
        created = [r.name for r in results if isinstance(r, TopicState)]
        if created and not validate_only:
            self._commit(snap, *created)
        return results

    def _add_topic(self, t: NewTopic, validate_only: bool, internal: bool) -> TopicState:
        """Check a new topic and, unless `validate_only`, add it in memory (not yet saved)."""
        name, num_partitions, replication_factor = t.name, t.num_partitions, t.replication_factor
        assignments = t.assignments
        validate_topic_name(name)
        if name in self.topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        normalized = name.replace(".", "_")
        for other in self.topics:
            if other.replace(".", "_") == normalized:
                raise KafkaError(
                    ErrorCode.INVALID_TOPIC_EXCEPTION,
                    f"Topic '{name}' collides with existing topic: {other}",
                )
        if assignments:
            if num_partitions != -1 or replication_factor != -1:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. "
                    "Both cannot be used at the same time.",
                )
            replica_lists = self._check_assignments(assignments, 0)
        else:
            if num_partitions == -1:
                num_partitions = self.configs.get_int("num.partitions")
            if num_partitions <= 0:
                raise KafkaError(
                    ErrorCode.INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.",
                )
            if replication_factor == -1:
                replication_factor = self.configs.get_int("default.replication.factor")
            if replication_factor <= 0:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                )
            alive = sum(1 for node_id in self.brokers if self._alive(node_id))
            if replication_factor > alive:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                    f"Unable to replicate the partition {replication_factor} time(s): The target "
                    f"replication factor of {replication_factor} cannot be reached because only "
                    f"{alive} broker(s) are registered.",
                )
            replica_lists = []  # assigned below, only when the topic is really created
        clean_configs = validate_topic_configs(t.configs, self.configs.absent)
        if validate_only:
            count = len(replica_lists) or num_partitions
            return TopicState(
                name,
                uuid.UUID(int=0),
                [PartitionState(p, [], -1, []) for p in range(count)],
                self._topic_config(clean_configs),
                clean_configs,
                internal,
                self._node_configs(clean_configs),
            )
        if not replica_lists:
            replica_lists = self._assign(0, num_partitions, replication_factor)
        topic = TopicState(
            name,
            uuid.uuid4(),
            [PartitionState(p, r, r[0], list(r)) for p, r in enumerate(replica_lists)],
            self._topic_config(clean_configs),
            clean_configs,
            internal,
            self._node_configs(clean_configs),
        )
        self.topics[name] = topic
        self.topics_by_id[topic.topic_id] = topic
        return topic

    def delete_topic(self, name: str, room: int = MAX_RECORDS_PER_USER_OP) -> TopicState:
        """`room`: topics the DeleteTopics request may still remove (one KRaft record each, at
        most MAX_RECORDS_PER_USER_OP per request); past it Kafka 4.0 answers
        UNKNOWN_SERVER_ERROR without a message and keeps the topic."""
        topic = self.topics.get(name)
        if topic is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.",
            )
        if not self.configs.get_bool("delete.topic.enable"):
            raise KafkaError(ErrorCode.TOPIC_DELETION_DISABLED)
        if room <= 0:
            log.warning(
                "DeleteTopics for %s refused: at most %d topics per request",
                name,
                MAX_RECORDS_PER_USER_OP,
            )
            raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, None)
        snap = self._snapshot([])
        del self.topics[name]
        del self.topics_by_id[topic.topic_id]
        self._commit(snap, name)
        return topic

    def create_partitions(
        self,
        name: str,
        count: int,
        assignments: list[list[int]] | None,
        validate_only: bool,
        room: int = MAX_RECORDS_PER_USER_OP,
    ) -> int:
        """Grow a topic to `count` partitions; returns how many it gains. `room`: how many
        partition records the request may still add (KRaft's MAX_RECORDS_PER_USER_OP for the
        whole CreatePartitions request); a topic that needs more fails, validate_only included,
        as Kafka 4.0 answers it: UNKNOWN_SERVER_ERROR without a message (DEVIATIONS.md: Kafka
        keeps the part that fit)."""
        topic = self.topics.get(name)
        if topic is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
            )
        current = len(topic.partitions)
        if count < current:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"Topic currently has {current} partitions, which is higher than the requested "
                f"{count}.",
            )
        if count == current:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partitions."
            )
        rf = len(topic.partitions[0].replicas)
        if assignments is not None:
            if len(assignments) != count - current:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Increasing the number of partitions by {count - current} but "
                    f"{len(assignments)} assignments provided.",
                )
            new = self._check_assignments(
                {current + i: a for i, a in enumerate(assignments)}, current
            )
            if len(new[0]) != rf:
                raise KafkaError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Inconsistent replication factor between partitions, partition 0 has {rf} "
                    f"while partitions [{current}] have replication factors [{len(new[0])}].",
                )
        if count - current > room:
            log.warning(
                "CreatePartitions for %s refused: %d new partitions, room for %d more records in "
                "this request (at most %d per request)",
                name,
                count - current,
                room,
                MAX_RECORDS_PER_USER_OP,
            )
            raise KafkaError(ErrorCode.UNKNOWN_SERVER_ERROR, None)
        if validate_only:
            return count - current
        snap = self._snapshot([topic])
        if assignments is None:
            new = self._assign(current, count - current, rf)
        for i, replicas in enumerate(new):
            topic.partitions.append(
                PartitionState(current + i, replicas, replicas[0], list(replicas))
            )
        self._commit(snap, name)
        return count - current

    def alter_topic_configs(
        self, name: str, configs: Mapping[str, str | None], validate_only: bool = False
    ) -> TopicState:
        """Replace a topic's config overrides with `configs` (AlterConfigs' semantics: a config
        left out returns to its default) and push the new TopicConfig to every observer —
        open logs, replicas and the produce path — in this one call. Checked in the order
        Kafka's controller checks: the name, the configs, then that the topic exists."""
        if not name:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Default topic resources are not allowed.")
        validate_topic_name(name)
        clean = validate_topic_configs(configs, self.configs.absent)
        config, node_configs = self._topic_config(clean), self._node_configs(clean)
        topic = self.topics.get(name)
        if topic is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
            )
        if validate_only:
            return topic
        snap = self._snapshot([topic])
        topic.configs = clean
        self._reconfigure(topic, config, node_configs)
        self._commit(snap, name)
        return topic

    def _reconfigure(
        self, topic: TopicState, config: TopicConfig, node_configs: dict[int, TopicConfig]
    ) -> None:
        """Give a topic its new typed config (the caller commits). Kafka's controller, too,
        elects leaderless partitions at once when unclean.leader.election.enable turns true."""
        was_unclean = topic.config.unclean_leader_election_enable
        topic.config, topic.node_configs = config, node_configs
        if config.unclean_leader_election_enable and not was_unclean:
            for p in topic.partitions:
                if p.leader == -1:
                    self._elect(topic, p, True)

    def incremental_alter_topic_configs(
        self,
        name: str,
        ops: list[tuple[str, int, str | None]],
        validate_only: bool = False,
    ) -> TopicState:
        """IncrementalAlterConfigs on a topic: `ops` (name, AlterOp, value) applied to its
        current overrides, then as `alter_topic_configs`."""
        topic = self.topics.get(name)
        try:
            configs = apply_ops(topic.configs if topic else {}, ops, TOPIC_CONFIGS)
        except ValueError as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from e
        return self.alter_topic_configs(name, configs, validate_only)

    def _node_configs(self, overrides: Mapping[str, str]) -> dict[int, TopicConfig]:
        """The typed configs of a topic on the brokers whose own dynamic configs change its
        defaults (as `_topic_config` checks them)."""
        return {n: self._topic_config(overrides, n) for n in self.configs.topic_default_nodes()}

    def _topic_config(
        self, overrides: Mapping[str, str], node_id: int | None = None
    ) -> TopicConfig:
        """The typed config of a topic with these (validated) overrides (on broker `node_id`,
        else cluster-wide), refused as Kafka's LogConfig.validateValues refuses contradictory
        settings."""
        config = TopicConfig.build(self.configs, overrides, node_id)
        if config.min_compaction_lag_ms > config.max_compaction_lag_ms:
            raise KafkaError(
                ErrorCode.INVALID_CONFIG,
                "conflict topic config setting min.compaction.lag.ms "
                f"({config.min_compaction_lag_ms}) > max.compaction.lag.ms "
                f"({config.max_compaction_lag_ms})",
            )
        return config

    def alter_broker_configs(
        self, node_id: int | None, configs: Mapping[str, str], validate_only: bool = False
    ) -> None:
        """Replace the dynamic configs of broker `node_id` (None: the cluster-wide default)
        with `configs`, checked as Kafka's DynamicBrokerConfig checks them. Saved before it
        applies; topic configs that default to a changed broker config are rebuilt and pushed
        to the open logs at once (a broker's own value to its own logs, as Kafka does)."""
        for name in configs:
            if name not in BROKER_CONFIGS or name in self.configs.absent:
                raise KafkaError(ErrorCode.INVALID_CONFIG, unknown_broker_config(name))
        fixed = sorted(n for n in configs if BROKER_CONFIGS[n].read_only)
        if fixed:
            raise KafkaError(
                ErrorCode.INVALID_REQUEST,
                f"Cannot update these configs dynamically: Set({', '.join(fixed)})",
            )
        for name, value in configs.items():
            err = BROKER_CONFIGS[name].validate(value)
            if err:
                raise KafkaError(ErrorCode.INVALID_REQUEST, err)
        if node_id is None:
            per_broker = sorted(n for n in configs if BROKER_CONFIGS[n].mode == PER_BROKER)
            if per_broker:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST,
                    "Cannot update these configs at default cluster level, broker id must be "
                    f"specified: Set({', '.join(per_broker)})",
                )
        saved = self._dynamic_configs()
        self._set_dynamic_configs({**saved, "" if node_id is None else str(node_id): configs})
        try:
            rebuilt = {
                t.name: (self._topic_config(t.configs), self._node_configs(t.configs))
                for t in self.topics.values()
            }
        except KafkaError:
            self._set_dynamic_configs(saved)
            raise
        if validate_only:
            self._set_dynamic_configs(saved)
            return
        snap = self._snapshot()
        for name, (config, node_configs) in rebuilt.items():
            self._reconfigure(self.topics[name], config, node_configs)
        try:
            self._commit(snap, *rebuilt)
        except KafkaError:
            self._set_dynamic_configs(saved)
            raise

    def alter_group_configs(
        self, group_id: str, configs: Mapping[str, str], validate_only: bool = False
    ) -> None:
        """Replace the configs of group `group_id` (GROUP resources, KIP-848) with `configs`,
        checked as Kafka's GroupConfig checks them; saved before the coordinators read them."""
        if not group_id:
            raise KafkaError(ErrorCode.INVALID_REQUEST, "Group id must not be empty")
        reason = validate_group_configs(configs, self.configs)
        if reason is not None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, reason)
        if validate_only:
            return
        before = self.group_configs.get(group_id)
        if configs:
            self.group_configs[group_id] = dict(configs)
        else:
            self.group_configs.pop(group_id, None)
        try:
            self._commit(self._snapshot([]))
        except KafkaError:
            if before is None:
                self.group_configs.pop(group_id, None)
            else:
                self.group_configs[group_id] = before
            raise

    # ---- leadership and ISR (KRaft's PartitionChangeBuilder, in miniature) ----

    def _alive(self, node_id: int) -> bool:
        """Running, with its log directory online: able to host and lead replicas."""
        b = self.brokers.get(node_id)
        return b is not None and b.alive and node_id not in self.offline_dirs

    def offline_replicas(self, p: PartitionState) -> list[int]:
        return [r for r in p.replicas if not self._alive(r)]

    def able_nodes(self) -> set[int]:
        """The brokers `offline_replicas` counts as online: running, log directory online."""
        return {n for n in self.brokers if self._alive(n)}

    def _set_leader(self, p: PartitionState, leader: int, isr: list[int]) -> None:
        p.leader = leader
        p.isr = isr
        p.leader_epoch += 1

    def _elect(self, topic: TopicState, p: PartitionState, unclean: bool) -> bool:
        """Choose a leader among live replicas: an ISR member in replica order (clean), else —
        when allowed — any live replica, whose log becomes the truth (unclean: what the old
        ISR had beyond it is lost, as in Kafka). Otherwise the partition goes offline (-1)."""
        live_isr = [r for r in p.replicas if r in p.isr and self._alive(r)]
        if live_isr:
            self._set_leader(p, live_isr[0], [r for r in p.isr if self._alive(r)])
            return True
        live = [r for r in p.replicas if self._alive(r)]
        if live and unclean:
            self._set_leader(p, live[0], [live[0]])
            return True
        if p.leader != -1:
            # KRaft keeps the last ISR of a leaderless partition, for a clean election later.
            self._set_leader(p, -1, p.isr)
        return False

    def _maybe_prefer(self, topic: TopicState, p: PartitionState) -> bool:
        """Move leadership to the preferred (first) replica when it is alive and in sync."""
        preferred = p.replicas[0]
        if p.leader == preferred or preferred not in p.isr or not self._alive(preferred):
            return False
        self._set_leader(p, preferred, p.isr)
        return True

    def broker_down(self, node_id: int) -> None:
        """A broker stopped: fence it out of every ISR it can leave and move its leaderships
        (a controlled shutdown, so that acks=all sees the smaller ISR at once)."""
        snap = self._snapshot()
        self.brokers[node_id].alive = False
        # A broker that starts again reports its log directory afresh.
        self.offline_dirs.discard(node_id)
        self._commit(snap, *self._fence(node_id), fact=True)

    def broker_up(self, node_id: int) -> None:
        """A broker is back: leaderless partitions it can lead get a leader again."""
        snap = self._snapshot()
        self.brokers[node_id].alive = True
        self._commit(snap, *self._unfence(node_id), fact=True)

    def log_dir_offline(self, node_id: int) -> None:
        """A broker's log directory failed (KRaft: handleDirectoriesOffline): its replicas go
        offline — out of the ISRs they can leave, their leaderships moved — while the broker
        itself keeps running."""
        if node_id in self.offline_dirs:
            return
        snap = self._snapshot()
        self.offline_dirs.add(node_id)
        self._commit(snap, *self._fence(node_id), fact=True)

    def log_dir_online(self, node_id: int) -> None:
        """The broker's log directory works again: its replicas come back as followers and
        rejoin the ISRs once caught up; leaderless partitions may elect them."""
        if node_id not in self.offline_dirs:
            return
        snap = self._snapshot()
        self.offline_dirs.discard(node_id)
        self._commit(snap, *self._unfence(node_id), fact=True)

    def _fence(self, node_id: int) -> list[str]:
        """Take a replica that can no longer serve out of every ISR it can leave and move its
        leaderships; returns the topics it has replicas in (their offline replicas changed)."""
        changed: list[str] = []
        for topic in self.topics.values():
            touched = False
            for p in topic.partitions:
                if node_id not in p.replicas:
                    continue
                touched = True
                if p.leader == node_id:
                    self._elect(topic, p, topic.config.unclean_leader_election_enable)
                elif node_id in p.isr and len(p.isr) > 1:
                    p.isr = [r for r in p.isr if r != node_id]
            if touched:
                changed.append(topic.name)
        return changed

    def _unfence(self, node_id: int) -> list[str]:
        """Leaderless partitions that `node_id` can lead again elect a leader, and those it
        prefers to lead and is in sync for take it back (a restarted broker can rejoin an ISR
        before the controller sees it alive, so `alter_isr` alone would miss the moment);
        returns the topics it has replicas in."""
        prefer = self.configs.get_bool("auto.leader.rebalance.enable")
        changed: list[str] = []
        for topic in self.topics.values():
            touched = False
            for p in topic.partitions:
                if node_id not in p.replicas:
                    continue
                touched = True
                if p.leader == -1:
                    self._elect(topic, p, topic.config.unclean_leader_election_enable)
                elif prefer and p.replicas[0] == node_id:
                    self._maybe_prefer(topic, p)
            if touched:
                changed.append(topic.name)
        return changed

    def alter_isr(self, topic_name: str, partition: int, isr: list[int]) -> None:
        """The leader's ISR change (KRaft's AlterPartition). A preferred replica rejoining the
        ISR takes leadership back when auto.leader.rebalance.enable is set. Raises
        KafkaError (KAFKA_STORAGE_ERROR) when it cannot be saved: the ISR stays as it was."""
        topic = self.topics[topic_name]
        p = topic.partitions[partition]
        snap = self._snapshot([topic], p)
        p.isr = [r for r in p.replicas if r in isr]
        if not self._maybe_complete_reassignment(topic, p) and self.configs.get_bool(
            "auto.leader.rebalance.enable"
        ):
            self._maybe_prefer(topic, p)
        self._commit(snap, topic_name)

    def elect_leaders(self, topic_name: str, partition: int, unclean: bool) -> ErrorCode:
        """ElectLeaders: preferred (clean) or unclean election for one partition."""
        topic = self.topics.get(topic_name)
        if topic is None or not 0 <= partition < len(topic.partitions):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        p = topic.partitions[partition]
        snap = self._snapshot([topic], p)
        if unclean:
            if p.leader != -1:
                return ErrorCode.ELECTION_NOT_NEEDED
            ok = self._elect(topic, p, True)
        else:
            if p.leader == p.replicas[0]:
                return ErrorCode.ELECTION_NOT_NEEDED
            ok = self._maybe_prefer(topic, p)
            if not ok:
                return ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
        if not ok:
            return ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
        return self._commit_code(snap, topic_name)

    # ---- brokers and reassignment ----

    def register_broker(self, info: BrokerInfo) -> None:
        """A broker added at run time (MSK's "update broker count")."""
        if info.node_id in self.brokers:
            raise ValueError(f"broker {info.node_id} exists")
        snap = self._snapshot([])
        self.brokers[info.node_id] = info
        self._commit(snap)

    def reassign(self, topic_name: str, partition: int, target: list[int] | None) -> ErrorCode:
        """Start (or, with `target=None`, cancel) moving a partition's replicas (KIP-455).
        New replicas join as followers; once all of them are in the ISR the move completes:
        the removed replicas are dropped and, if the leader was one of them, a target
        replica in the ISR takes over."""
        topic = self.topics.get(topic_name)
        if topic is None or not 0 <= partition < len(topic.partitions):
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        p = topic.partitions[partition]
        snap = self._snapshot([topic], p)
        if target is None:
            if not p.adding_replicas and not p.removing_replicas:
                return ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
            original = [r for r in p.replicas if r not in p.adding_replicas]
            p.replicas, p.adding_replicas, p.removing_replicas = original, [], []
            p.isr = [r for r in p.isr if r in original]
            return self._commit_code(snap, topic_name)
        if (
            not target
            or len(set(target)) != len(target)
            or any(r not in self.brokers for r in target)
        ):
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT
        current = [r for r in p.replicas if r not in p.adding_replicas]
        p.adding_replicas = [r for r in target if r not in current]
        p.removing_replicas = [r for r in current if r not in target]
        p.replicas = list(target) + p.removing_replicas
        self._maybe_complete_reassignment(topic, p)
        return self._commit_code(snap, topic_name)

    def _maybe_complete_reassignment(self, topic: TopicState, p: PartitionState) -> bool:
        """Finish a reassignment whose new replicas are all in sync (the caller commits)."""
        if not (p.adding_replicas or p.removing_replicas):
            return False
        if any(r not in p.isr for r in p.adding_replicas):
            return False
        target = [r for r in p.replicas if r not in p.removing_replicas]
        isr = [r for r in p.isr if r in target]
        p.replicas, p.adding_replicas, p.removing_replicas = target, [], []
        if p.leader not in target:
            self._set_leader(p, next((r for r in target if r in isr and self._alive(r)), -1), isr)
        else:
            p.isr = isr
        return True

    def reassignments(self) -> list[tuple[str, PartitionState]]:
        return [
            (t.name, p)
            for t in self.topics.values()
            for p in t.partitions
            if p.adding_replicas or p.removing_replicas
        ]

    def offline_partitions(self) -> int:
        return sum(1 for t in self.topics.values() for p in t.partitions if p.leader == -1)

    # ---- ACLs ----

    def create_acls(self, bindings: list[AclBinding]) -> list[KafkaError | None]:
        """Add the valid bindings (one already there is a success that adds nothing); the
        answer per binding, in order. A failed save fails them all (KAFKA_STORAGE_ERROR)."""
        results: list[KafkaError | None] = []
        added = dict.fromkeys(self.acls)
        for b in bindings:
            try:
                validate_new(b)
            except KafkaError as e:
                results.append(e)
                continue
            added[b] = None
            results.append(None)
        if len(added) != len(self.acls):
            snap = self._snapshot([])
            self.acls = tuple(added)
            try:
                self._commit(snap)
            except KafkaError as e:
                return [r or e for r in results]
        return results

    def delete_acls(self, filters: list[AclFilter]) -> list[KafkaError | list[AclBinding]]:
        """Remove the bindings each filter matches; per filter the bindings it matched (among
        those present before this call) or its error. Atomic, as Kafka's: a failed save fails
        them all."""
        results: list[KafkaError | list[AclBinding]] = []
        gone: set[AclBinding] = set()
        for f in filters:
            try:
                f.check()
            except KafkaError as e:
                results.append(e)
                continue
            matched = [b for b in self.acls if f.matches(b)]
            gone.update(matched)
            results.append(matched)
        if gone:
            snap = self._snapshot([])
            self.acls = tuple(b for b in self.acls if b not in gone)
            try:
                self._commit(snap)
            except KafkaError as e:
                return [e] * len(filters)
        return results

    def describe_acls(self, f: AclFilter) -> list[AclBinding]:
        return [b for b in self.acls if f.matches(b)]

    # ---- SCRAM credentials ----

    def set_scram_credentials(self, user: str, credentials: Mapping[str, ScramCredential]) -> None:
        """Set a user's credentials for the mechanisms given (a user given at start)."""
        snap = self._snapshot([])
        self.scram = {**self.scram, user: {**self.scram.get(user, {}), **credentials}}
        self._commit(snap)

    def alter_scram_credentials(
        self,
        deletions: list[tuple[str, int]],
        upsertions: list[tuple[str, int, int, bytes, bytes]],
    ) -> list[tuple[str, ErrorCode, str | None]]:
        """Kafka's ScramControlManager.alterCredentials: deletions (user, mechanism type) and
        upsertions (user, mechanism type, iterations, salt, salted password), at most one per
        user (DUPLICATE_RESOURCE); (user, error, message) per user, successes first. Atomic:
        a failed save fails every user (KAFKA_STORAGE_ERROR)."""
        errors: dict[str, tuple[ErrorCode, str]] = {}
        deletes: dict[str, str] = {}
        upserts: dict[str, tuple[str, int, bytes, bytes]] = {}
        twice = (
            ErrorCode.DUPLICATE_RESOURCE,
            "A user credential cannot be altered twice in the same request",
        )
        for user, code in deletions:
            if user in errors:
                continue
            if deletes.pop(user, None) is not None:
                errors[user] = twice
                continue
            mechanism = MECHANISM_TYPES.get(code)
            failure = _scram_name_check(user, mechanism)
            if failure is None and (mechanism is None or mechanism not in self.scram.get(user, {})):
                failure = (
                    ErrorCode.RESOURCE_NOT_FOUND,
                    "Attempt to delete a user credential that does not exist",
                )
            if failure is not None:
                errors[user] = failure
            elif mechanism is not None:
                deletes[user] = mechanism
        for user, code, iterations, salt, salted in upsertions:
            if user in errors:
                continue
            if deletes.pop(user, None) is not None or upserts.pop(user, None) is not None:
                errors[user] = twice
                continue
            mechanism = MECHANISM_TYPES.get(code)
            failure = _scram_name_check(user, mechanism)
            if failure is None and iterations < MIN_ITERATIONS:
                failure = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations")
            elif failure is None and iterations > MAX_ITERATIONS:
                failure = (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
            if failure is not None:
                errors[user] = failure
            elif mechanism is not None:
                upserts[user] = (mechanism, iterations, salt, salted)
        if deletes or upserts:
            snap = self._snapshot([])
            table = {u: dict(c) for u, c in self.scram.items()}
            for user, mechanism in deletes.items():
                table[user].pop(mechanism, None)
                if not table[user]:
                    del table[user]
            for user, (mechanism, iterations, salt, salted) in upserts.items():
                table.setdefault(user, {})[mechanism] = from_salted_password(
                    mechanism, salted, salt, iterations
                )
            self.scram = table
            try:
                self._commit(snap)
            except KafkaError as e:
                failed = [*deletes, *upserts, *errors]
                return [(u, e.code, e.message) for u in failed]
        out: list[tuple[str, ErrorCode, str | None]] = [
            (u, ErrorCode.NONE, None) for u in [*deletes, *upserts]
        ]
        out += [(u, code, message) for u, (code, message) in errors.items()]
        return out

    # ---- producer ids ----

    def allocate_producer_id(self) -> int:
        if self._next_producer_id >= self._producer_id_block_end:
            snap = self._snapshot([])
            self._producer_id_block_end = self._next_producer_id + PRODUCER_ID_BLOCK
            self._commit(snap)
        pid = self._next_producer_id
        self._next_producer_id += 1
        return pid

    def ensure_producer_ids_above(self, pid: int) -> None:
        """Never hand out an id already seen in a log (state files can be lost)."""
        if pid >= self._next_producer_id:
            self._next_producer_id = pid + 1


def _scram_name_check(user: str, mechanism: str | None) -> tuple[ErrorCode, str] | None:
    if not user:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism is None:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None


def _scram_json(table: Mapping[str, Mapping[str, ScramCredential]]) -> dict[str, Any]:
    return {u: {m: c.to_json() for m, c in creds.items()} for u, creds in table.items()}


def _scram_from_json(saved: Mapping[str, Any]) -> dict[str, dict[str, ScramCredential]]:
    return {
        u: {m: ScramCredential.from_json(row) for m, row in creds.items()}
        for u, creds in saved.items()
    }


def _new_cluster_id() -> str:
    return kafka_uuid_str(uuid.uuid4())


def _partition_json(p: PartitionState) -> dict[str, Any]:
    return {
        "partition": p.partition,
        "replicas": p.replicas,
        "leader": p.leader,
        "isr": p.isr,
        "leader_epoch": p.leader_epoch,
        "adding_replicas": p.adding_replicas,
        "removing_replicas": p.removing_replicas,
    }


def _topic_json(t: TopicState) -> dict[str, Any]:
    return {
        "name": t.name,
        "topic_id": str(t.topic_id),
        "internal": t.internal,
        "configs": t.configs,
        "partitions": [_partition_json(p) for p in t.partitions],
    }
