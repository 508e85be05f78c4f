"""The Prometheus endpoint's answer: the metrics MSK's open monitoring exposes (its JMX
exporter's rendering of Kafka's MBeans), computed from the cluster at scrape time.

Names and labels are the JMX exporter's: `kafka_<domain>_<type>_<attribute>{name="<name>",
<other tags>}`, e.g. `kafka_server_BrokerTopicMetrics_Count{name="BytesInPerSec",topic="t"}`,
typed `untyped` as the exporter types them. One endpoint serves every broker: each series
carries a `broker` label (the broker id; MSK's scrape targets tell brokers apart by their
host:port instead). A stopped broker has no series, as a scrape of a stopped MSK broker fails.

The samples come from one collector, `MskCollector` (prometheus-client's collector protocol,
for a registry of one's own). The endpoint writes them as text itself (`Exposition`): the same
bytes as prometheus-client's `generate_latest`, without its per-sample objects and label
escaping, each series' rendered name kept from one scrape to the next; the brokers' requests
run between the brokers' parts of the answer when it takes long (a scrape shares
their event loop).

prometheus-client is imported here only (the `metrics` extra): the module loads when the HTTP
endpoint starts, never on the brokers' cold start.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol, cast

from prometheus_client import generate_latest
from prometheus_client import utils as prometheus_utils
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from msklite.metrics import state
from msklite.metrics.meters import Meter, Sampler, broker_counts, request_name

if TYPE_CHECKING:
    from msklite.brokers import Broker
    from msklite.cluster import Cluster

__all__ = [
    "CONTENT_TYPE",
    "Exposition",
    "MskCollector",
    "exposition_for",
    "percentile_ms",
    "registry_for",
    "render",
]

# The classic text format, as MSK's JMX exporter serves it (prometheus-client's newer default,
# 1.0.0, differs only for names outside [a-zA-Z0-9_:], which these never have)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PERCENTILES = (
    ("50thPercentile", 0.5),
    ("75thPercentile", 0.75),
    ("95thPercentile", 0.95),
    ("98thPercentile", 0.98),
    ("99thPercentile", 0.99),
    ("999thPercentile", 0.999),
)
METER_ATTRIBUTES = ("Count", "MeanRate", "OneMinuteRate", "FiveMinuteRate", "FifteenMinuteRate")
# meter name -> the MBean domain and type it belongs to, and its tags' names
METER_TYPES = {
    "BytesInPerSec": ("server", "BrokerTopicMetrics", ("topic",)),
    "MessagesInPerSec": ("server", "BrokerTopicMetrics", ("topic",)),
    "BytesOutPerSec": ("server", "BrokerTopicMetrics", ("topic",)),
    "RequestsPerSec": ("network", "RequestMetrics", ("request", "version")),
    "IsrShrinksPerSec": ("server", "ReplicaManager", ()),
    "IsrExpandsPerSec": ("server", "ReplicaManager", ()),
}
CONSUMER_LAG = "kafka_consumer_group_ConsumerLagMetrics_Value"
# how long a scrape holds the brokers' event loop before it lets their requests run
SLICE_S = 0.005


def percentile_ms(buckets: list[int], q: float) -> float:
    """The q-quantile, in ms, of times counted in `BrokerStats.request_times`' buckets
    (bucket i: [2^(i-1), 2^i) x 1024 ns; bucket 0: under 1024 ns), interpolated linearly in
    its bucket."""
    total = sum(buckets)
    if not total:
        return 0.0
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if n and seen + n >= rank:
            low = 0 if i == 0 else 1 << (i - 1)
            high = 1 << i
            ns = (low + (high - low) * (rank - seen) / n) * 1024
            return ns / 1e6
        seen += n
    return 0.0  # unreachable: the last non-empty bucket reaches the rank


# how the text format writes a value (Go's float formatting; the function is untyped)
_go_float = cast(Callable[[float], str], prometheus_utils.floatToGoString)
# a sample's labels, sorted by name as the text format writes them
Labels = tuple[tuple[str, str], ...]


class _Sink(Protocol):
    def add(self, name: str, labels: Labels, value: float) -> None: ...


class _Families:
    """Metric families by name, in the order first used (prometheus-client's objects)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def add(self, name: str, labels: Labels, value: float) -> None:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = Metric(name, _help(name), "unknown")
        family.add_sample(name, dict(labels), value)


class _Text:
    """The text format as prometheus-client's `generate_latest` writes these families (HELP,
    TYPE untyped, labels sorted by name, values as Go prints them), each series' name and
    labels rendered once in `cache` and reused by later scrapes: most series stay from one
    scrape to the next, and escaping their labels was most of a scrape's cost."""

    def __init__(self, cache: dict[tuple[str, Labels], str]) -> None:
        self.lines: dict[str, list[str]] = {}
        self.cache = cache
        self.samples = 0

    def add(self, name: str, labels: Labels, value: float) -> None:
        key = (name, labels)
        series = self.cache.get(key)
        if series is None:
            series = self.cache[key] = _series(name, labels)
        lines = self.lines.get(name)
        if lines is None:
            lines = self.lines[name] = [f"# HELP {name} {_help(name)}\n# TYPE {name} untyped\n"]
        # ints below 10^6 print as Python prints them as floats (Go switches to exponents
        # sooner for larger ones): most values, without floatToGoString's work
        if type(value) is int and 0 <= value < 1_000_000:
            lines.append(f"{series} {value}.0\n")
        else:
            lines.append(f"{series} {_go_float(value)}\n")
        self.samples += 1

    def text(self) -> bytes:
        return "".join(line for lines in self.lines.values() for line in lines).encode()


def _series(name: str, labels: Labels) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    """A label value as the text format quotes it (a group id may hold anything)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(name: str) -> str:
    return f"{name.removeprefix('kafka_').replace('_', ' ')} (as MSK's JMX exporter names it)"


class MskCollector:
    """A prometheus-client collector over one cluster (and its sampler's rates)."""

    def __init__(self, cluster: Cluster, sampler: Sampler) -> None:
        self.cluster = cluster
        self.sampler = sampler

    def describe(self) -> list[Metric]:
        return []  # no collection at registration: the families depend on the cluster's state

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        for _ in self.steps(out):
            pass
        return iter(out.by_name.values())

    def steps(self, out: _Sink) -> Iterator[None]:
        """Add every sample to `out`, pausing (a `yield`) after each broker's part of each
        family group: a scrape on the brokers' event loop lets their requests run between
        the pauses. A cluster that stops meanwhile ends the samples there."""
        cluster = self.cluster
        if cluster.controller is None or not cluster.started:
            return
        for section in (self._meters, self._request_times, None, self._partitions):
            if section is None:
                self._brokers(out)
                continue
            for node_id, broker in list(cluster.brokers.items()):
                section(out, node_id, broker)
                yield
                if not cluster.started:
                    return
        self._lag(out)

    def _meters(self, out: _Sink, node_id: int, broker: Broker) -> None:
        cluster = self.cluster
        assert cluster.controller is not None
        now = cluster.clock.now_ms()
        topics = set(cluster.controller.topics)
        node = str(node_id)
        for name, tags, count in broker_counts(broker, topics):
            domain, mbean, tag_names = METER_TYPES[name]
            # the all-topics meter has no tags: zip stops there
            labels = tuple(
                sorted((("broker", node), ("name", name), *zip(tag_names, tags, strict=False)))
            )
            meter = self.sampler.meter(node_id, name, tags) or Meter(now)
            values = (count, meter.mean_rate(count, now), meter.one, meter.five, meter.fifteen)
            for attribute, value in zip(METER_ATTRIBUTES, values, strict=True):
                out.add(f"kafka_{domain}_{mbean}_{attribute}", labels, value)

    def _request_times(self, out: _Sink, node_id: int, broker: Broker) -> None:
        stats = broker.ctx.stats
        for key, buckets in enumerate(stats.request_times):
            count = sum(buckets)
            if not count:
                continue
            labels = (
                ("broker", str(node_id)),
                ("name", "TotalTimeMs"),
                ("request", request_name(key)),
            )
            out.add("kafka_network_RequestMetrics_Count", labels, count)
            out.add(
                "kafka_network_RequestMetrics_Mean",
                labels,
                stats.request_time_ns[key] / count / 1e6,
            )
            for attribute, q in PERCENTILES:
                out.add(
                    f"kafka_network_RequestMetrics_{attribute}", labels, percentile_ms(buckets, q)
                )

    def _brokers(self, out: _Sink) -> None:
        cluster = self.cluster
        controller = cluster.controller
        assert controller is not None
        alive = len(cluster.brokers)
        for view in state.brokers(cluster):
            broker = cluster.brokers.get(view.node_id)
            if broker is None:
                continue
            node = str(view.node_id)
            offline = len(broker.replicas.partitions) if broker.replicas.offline else 0
            for name, value in (
                ("LeaderCount", view.leaders),
                ("PartitionCount", view.partitions),
                ("UnderReplicatedPartitions", view.under_replicated),
                ("UnderMinIsrPartitionCount", view.under_min_isr),
                ("AtMinIsrPartitionCount", view.at_min_isr),
                ("OfflineReplicaCount", offline),
            ):
                labels = (("broker", node), ("name", name))
                out.add("kafka_server_ReplicaManager_Value", labels, value)
            # As ZooKeeper-mode brokers report them: 1 / the cluster's counts on the active
            # controller, 0 elsewhere (so that a sum over brokers is the cluster's figure).
            active = view.controller
            for name, value in (
                ("ActiveControllerCount", 1),
                ("OfflinePartitionsCount", controller.offline_partitions() if active else 0),
                ("GlobalTopicCount", len(controller.topics)),
                (
                    "GlobalPartitionCount",
                    sum(len(t.partitions) for t in controller.topics.values()),
                ),
                ("ActiveBrokerCount", alive),
                ("FencedBrokerCount", len(cluster.infos) - alive),
            ):
                out.add(
                    "kafka_controller_KafkaController_Value",
                    (("broker", node), ("name", name)),
                    value if active else 0,
                )

    def _partitions(self, out: _Sink, node_id: int, broker: Broker) -> None:
        node = str(node_id)
        for tp, part in sorted(broker.replicas.partitions.items()):
            partition = str(tp.partition)
            log = part.log
            for name, value in (
                ("Size", log.size_in_bytes()),
                ("LogStartOffset", log.log_start_offset),
                ("LogEndOffset", log.log_end_offset),
                ("NumLogSegments", len(log.segments)),
            ):
                labels = (
                    ("broker", node),
                    ("name", name),
                    ("partition", partition),
                    ("topic", tp.topic),
                )
                out.add("kafka_log_Log_Value", labels, value)
            if not part.is_leader:
                continue
            isr, replicas = len(part.state.isr), len(part.state.replicas)
            min_isr = part.config.min_insync_replicas
            hw = part.high_watermark
            for name, value in (
                ("UnderReplicated", int(isr < replicas)),
                ("UnderMinIsr", int(isr < min_isr)),
                ("AtMinIsr", int(isr == min_isr)),
                ("InSyncReplicasCount", isr),
                ("ReplicasCount", replicas),
                ("LastStableOffsetLag", hw - log.producer_state.last_stable_offset(hw)),
            ):
                labels = (
                    ("broker", node),
                    ("name", name),
                    ("partition", partition),
                    ("topic", tp.topic),
                )
                out.add("kafka_cluster_Partition_Value", labels, value)

    def _lag(self, out: _Sink) -> None:
        for group in state.groups(self.cluster):
            # MSK emits lag only for groups that are Stable or Empty
            if group.state not in ("Stable", "Empty"):
                continue
            by_topic: dict[str, list[state.PartitionLag]] = {}
            for p in group.lags:
                by_topic.setdefault(p.topic, []).append(p)
            node = str(group.coordinator)
            for topic, lags in by_topic.items():
                for name, value in (
                    ("MaxOffsetLag", max(p.lag for p in lags)),
                    ("SumOffsetLag", sum(p.lag for p in lags)),
                    ("EstimatedMaxTimeLag", max(p.time_lag_ms for p in lags) / 1000),
                ):
                    labels = (
                        ("broker", node),
                        ("groupId", group.group_id),
                        ("name", name),
                        ("topic", topic),
                    )
                    out.add(CONSUMER_LAG, labels, value)
                for p in lags:
                    partition = str(p.partition)
                    for name, value in (
                        ("OffsetLag", p.lag),
                        ("EstimatedTimeLag", p.time_lag_ms / 1000),
                    ):
                        per_partition = (
                            ("broker", node),
                            ("groupId", group.group_id),
                            ("name", name),
                            ("partition", partition),
                            ("topic", topic),
                        )
                        out.add(CONSUMER_LAG, per_partition, value)


class Exposition:
    """The `/metrics` answer of one cluster: the text format written directly (`_Text`),
    the series' rendered names kept from one scrape to the next."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._cache: dict[tuple[str, Labels], str] = {}

    def _start(self, sampler: Sampler) -> tuple[_Text, Iterator[None]]:
        out = _Text(self._cache)
        return out, MskCollector(self.cluster, sampler).steps(out)

    def _done(self, out: _Text) -> bytes:
        if len(self._cache) > 2 * out.samples + 1000:
            self._cache.clear()  # mostly series gone (deleted topics, moved replicas)
        return out.text()

    def render(self, sampler: Sampler) -> bytes:
        out, steps = self._start(sampler)
        for _ in steps:
            pass
        return self._done(out)

    async def arender(self, sampler: Sampler, slice_s: float = SLICE_S) -> bytes:
        """`render`, giving the event loop back between the brokers' parts once it has
        held it `slice_s`: a large cluster's scrape does not stall the brokers' requests,
        and a small one's is not queued behind them several times over."""
        out, steps = self._start(sampler)
        since = time.perf_counter()
        for _ in steps:
            if time.perf_counter() - since >= slice_s:
                await asyncio.sleep(0)
                since = time.perf_counter()
        return self._done(out)


_expositions: weakref.WeakKeyDictionary[Cluster, Exposition] = weakref.WeakKeyDictionary()


def exposition_for(cluster: Cluster) -> Exposition:
    exposition = _expositions.get(cluster)
    if exposition is None:
        exposition = _expositions[cluster] = Exposition(cluster)
    return exposition


def registry_for(cluster: Cluster, sampler: Sampler) -> CollectorRegistry:
    """A registry of the cluster's metrics alone (no process or Python collectors: MSK's
    JMX exporter shows the JVM's, which msklite has none of)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MskCollector(cluster, sampler))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format (CONTENT_TYPE)."""
    return generate_latest(registry)
