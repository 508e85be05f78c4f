"""The Prometheus endpoint's answer: the metrics MSK's open monitoring exposes (its JMX
exporter's rendering of Kafka's MBeans), computed from the cluster at scrape time.

Names and labels are the JMX exporter's: `kafka_<domain>_<type>_<attribute>{name="<name>",
<other tags>}`, e.g. `kafka_server_BrokerTopicMetrics_Count{name="BytesInPerSec",topic="t"}`,
typed `untyped` as the exporter types them. One endpoint serves every broker: each series
carries a `broker` label (the broker id; MSK's scrape targets tell brokers apart by their
host:port instead). A stopped broker has no series, as a scrape of a stopped MSK broker fails.

prometheus-client is imported here only (the `metrics` extra): the module loads when the HTTP
endpoint starts, never on the brokers' cold start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from msklite.metrics import state
from msklite.metrics.meters import Meter, Sampler, broker_counts, request_name

if TYPE_CHECKING:
    from msklite.cluster import Cluster

__all__ = ["CONTENT_TYPE", "MskCollector", "percentile_ms", "registry_for", "render"]

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


class _Families:
    """Metric families by name, in the order first used."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = Metric(name, _help(name), "unknown")
        family.add_sample(name, labels, value)


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
        cluster = self.cluster
        if cluster.controller is None or not cluster.started:
            return iter(())
        out = _Families()
        self._meters(out)
        self._request_times(out)
        self._brokers(out)
        self._partitions(out)
        self._lag(out)
        return iter(out.by_name.values())

    def _meters(self, out: _Families) -> None:
        cluster = self.cluster
        assert cluster.controller is not None
        now = cluster.clock.now_ms()
        topics = set(cluster.controller.topics)
        for node_id, broker in cluster.brokers.items():
            for name, tags, count in broker_counts(broker, topics):
                domain, mbean, tag_names = METER_TYPES[name]
                # the all-topics meter has no tags: zip stops there
                tagged = dict(zip(tag_names, tags, strict=False))
                labels = {"broker": str(node_id), "name": name, **tagged}
                meter = self.sampler.meter(node_id, name, tags) or Meter(now)
                values = (
                    count,
                    meter.mean_rate(count, now),
                    meter.one,
                    meter.five,
                    meter.fifteen,
                )
                for attribute, value in zip(METER_ATTRIBUTES, values, strict=True):
                    out.add(f"kafka_{domain}_{mbean}_{attribute}", labels, value)

    def _request_times(self, out: _Families) -> None:
        for node_id, broker in self.cluster.brokers.items():
            stats = broker.ctx.stats
            for key, buckets in enumerate(stats.request_times):
                count = sum(buckets)
                if not count:
                    continue
                labels = {"broker": str(node_id), "name": "TotalTimeMs"}
                labels["request"] = request_name(key)
                out.add("kafka_network_RequestMetrics_Count", labels, count)
                out.add(
                    "kafka_network_RequestMetrics_Mean",
                    labels,
                    stats.request_time_ns[key] / count / 1e6,
                )
                for attribute, q in PERCENTILES:
                    out.add(
                        f"kafka_network_RequestMetrics_{attribute}",
                        labels,
                        percentile_ms(buckets, q),
                    )

    def _brokers(self, out: _Families) -> None:
        cluster = self.cluster
        controller = cluster.controller
        assert controller is not None
        topics = controller.topics.values()
        alive = len(cluster.brokers)
        for view in state.brokers(cluster):
            if not view.up:
                continue
            broker = str(view.node_id)
            replicas = cluster.brokers[view.node_id].replicas
            offline = len(replicas.partitions) if replicas.offline else 0
            for name, value in (
                ("LeaderCount", view.leaders),
                ("PartitionCount", view.partitions),
                ("UnderReplicatedPartitions", view.under_replicated),
                ("UnderMinIsrPartitionCount", view.under_min_isr),
                ("AtMinIsrPartitionCount", view.at_min_isr),
                ("OfflineReplicaCount", offline),
            ):
                out.add(
                    "kafka_server_ReplicaManager_Value", {"broker": broker, "name": name}, value
                )
            # As ZooKeeper-mode brokers report them: 1 / the cluster's counts on the active
            # controller, 0 elsewhere (so that a sum over brokers is the cluster's figure).
            active = view.controller
            for name, value in (
                ("ActiveControllerCount", 1),
                ("OfflinePartitionsCount", controller.offline_partitions()),
                ("GlobalTopicCount", len(controller.topics)),
                ("GlobalPartitionCount", sum(len(t.partitions) for t in topics)),
                ("ActiveBrokerCount", alive),
                ("FencedBrokerCount", len(cluster.infos) - alive),
            ):
                out.add(
                    "kafka_controller_KafkaController_Value",
                    {"broker": broker, "name": name},
                    value if active else 0,
                )

    def _partitions(self, out: _Families) -> None:
        for node_id, broker in self.cluster.brokers.items():
            for tp, part in sorted(broker.replicas.partitions.items()):
                base = {"broker": str(node_id), "topic": tp.topic, "partition": str(tp.partition)}
                log = part.log
                for name, value in (
                    ("Size", log.size_in_bytes()),
                    ("LogStartOffset", log.log_start_offset),
                    ("LogEndOffset", log.log_end_offset),
                    ("NumLogSegments", len(log.segments)),
                ):
                    out.add("kafka_log_Log_Value", {**base, "name": name}, value)
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
                    out.add("kafka_cluster_Partition_Value", {**base, "name": name}, value)

    def _lag(self, out: _Families) -> None:
        for group in state.groups(self.cluster):
            # MSK emits lag only for groups that are Stable or Empty
            if group.state not in ("Stable", "Empty"):
                continue
            by_topic: dict[str, list[state.PartitionLag]] = {}
            for p in group.lags:
                by_topic.setdefault(p.topic, []).append(p)
            base = {"broker": str(group.coordinator), "groupId": group.group_id}
            for topic, lags in by_topic.items():
                labels = {**base, "topic": topic}
                for name, value in (
                    ("MaxOffsetLag", max(p.lag for p in lags)),
                    ("SumOffsetLag", sum(p.lag for p in lags)),
                    ("EstimatedMaxTimeLag", max(p.time_lag_ms for p in lags) / 1000),
                ):
                    out.add(CONSUMER_LAG, {**labels, "name": name}, value)
                for p in lags:
                    part = {**labels, "partition": str(p.partition)}
                    out.add(CONSUMER_LAG, {**part, "name": "OffsetLag"}, p.lag)
                    out.add(
                        CONSUMER_LAG, {**part, "name": "EstimatedTimeLag"}, p.time_lag_ms / 1000
                    )


def registry_for(cluster: Cluster, sampler: Sampler) -> CollectorRegistry:
    """A registry of the cluster's metrics alone (no process or Python collectors: MSK's
    JMX exporter shows the JVM's, which msklite has none of)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MskCollector(cluster, sampler))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format (CONTENT_TYPE)."""
    return generate_latest(registry)
