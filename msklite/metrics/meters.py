"""Kafka's meters (Count, MeanRate, One/Five/FifteenMinuteRate) over the brokers' plain
counters, and the consumer lag history the web console charts.

The brokers only bump ints (`BrokerStats`, `ReplicaManager.isr_shrinks`, ...). A `Sampler`
reads them every 5 seconds, as Yammer's meters tick in Kafka, and keeps the exponentially
weighted rates Kafka's JMX shows, with Yammer's smoothing constants; counts are read live at
scrape time. A broker that restarts starts its counters again: its meters start over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msklite.metrics import state
from msklite.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from msklite.brokers import Broker
    from msklite.cluster import Cluster

log = logging.getLogger(__name__)

TICK_MS = 5_000  # Yammer's meter tick
HISTORY = 120  # lag samples kept per group: 10 minutes at one a tick

# A meter's key: (broker id, Kafka's metric name, its tags' values).
MeterKey = tuple[int, str, tuple[str, ...]]


def request_name(api_key: int) -> str:
    """Kafka's request name in RequestMetrics tags: the API's name, except that consumer
    fetches are "FetchConsumer" (replica fetches, "FetchFollower", never reach the wire here)."""
    if api_key == ApiKey.FETCH:
        return "FetchConsumer"
    try:
        return "".join(w.capitalize() for w in ApiKey(api_key).name.split("_"))
    except ValueError:
        return str(api_key)


def broker_counts(broker: Broker, topics: set[str]) -> Iterator[tuple[str, tuple[str, ...], int]]:
    """(metric name, tag values, count) of every meter a broker has: the BrokerTopicMetrics
    per topic of `topics` (deleted topics' counters are left out, as Kafka removes their
    metrics) and across all of them (no tags), RequestsPerSec per request and version,
    and the ISR changes."""
    stats = broker.ctx.stats
    for name, counts in (
        ("BytesInPerSec", stats.bytes_in_by_topic),
        ("MessagesInPerSec", stats.messages_in_by_topic),
        ("BytesOutPerSec", stats.bytes_out_by_topic),
    ):
        total = 0
        for topic, n in counts.items():
            if topic in topics:
                total += n
                yield name, (topic,), n
        yield name, (), total
    for key, versions in enumerate(stats.requests):
        for version, n in enumerate(versions):
            if n:
                yield "RequestsPerSec", (request_name(key), str(version)), n
    yield "IsrShrinksPerSec", (), broker.replicas.isr_shrinks
    yield "IsrExpandsPerSec", (), broker.replicas.isr_expands


def _alpha(tick_ms: int, minutes: int) -> float:
    return 1.0 - math.exp(-tick_ms / 60_000 / minutes)


@dataclass(slots=True)
class Meter:
    """The rates of one counter, per second: the last tick's, and the 1, 5 and 15 minute
    exponentially weighted moving averages."""

    started_ms: int
    base: int = 0  # the count when it started (a sampler started late has no rates before)
    count: int = 0  # at the last tick
    last: float = 0.0
    one: float = 0.0
    five: float = 0.0
    fifteen: float = 0.0
    ticked: bool = False

    def tick(self, count: int, now_ms: int, tick_ms: int) -> None:
        if count < self.count:  # its broker restarted: the counter began again
            self.started_ms, self.base, self.count, self.ticked = now_ms, 0, 0, False
        instant = (count - self.count) * 1000.0 / tick_ms
        self.count = count
        self.last = instant
        if not self.ticked:
            self.one = self.five = self.fifteen = instant
            self.ticked = True
            return
        self.one += _alpha(tick_ms, 1) * (instant - self.one)
        self.five += _alpha(tick_ms, 5) * (instant - self.five)
        self.fifteen += _alpha(tick_ms, 15) * (instant - self.fifteen)

    def mean_rate(self, count: int, now_ms: int) -> float:
        elapsed = (now_ms - self.started_ms) / 1000.0
        return (count - self.base) / elapsed if elapsed > 0 else 0.0


@dataclass(slots=True)
class LagSample:
    at_ms: int
    lags: dict[tuple[str, int], int]  # (topic, partition) -> offset lag


class Sampler:
    """Ticks every `tick_ms` on the cluster's clock (a ManualClock drives it in tests)."""

    def __init__(self, cluster: Cluster, tick_ms: int = TICK_MS, history: int = HISTORY) -> None:
        self.cluster = cluster
        self.tick_ms = tick_ms
        self.history = history
        self.meters: dict[MeterKey, Meter] = {}
        self.lag_history: dict[str, deque[LagSample]] = {}
        self._task: asyncio.Task[None] | None = None
        self._first = True

    def start(self) -> None:
        """Start ticking on the running loop (the cluster's), until the cluster stops."""
        if not self.running:
            self.tick()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while self.cluster.started:
            await self.cluster.clock.sleep(self.tick_ms)
            try:
                self.tick()
            except Exception:
                log.exception("metrics sampling failed")

    def tick(self) -> None:
        cluster = self.cluster
        controller = cluster.controller
        if controller is None or not cluster.started:
            return
        now = cluster.clock.now_ms()
        topics = set(controller.topics)
        seen = set()
        for node_id, broker in cluster.brokers.items():
            for name, tags, count in broker_counts(broker, topics):
                key = (node_id, name, tags)
                seen.add(key)
                meter = self.meters.get(key)
                if meter is None:
                    if self._first:
                        # it counted for who knows how long: its rates start from here
                        self.meters[key] = Meter(now, count, count)
                        continue
                    # it appeared since the last tick
                    meter = self.meters[key] = Meter(now - self.tick_ms)
                meter.tick(count, now, self.tick_ms)
        self._first = False
        for key in self.meters.keys() - seen:  # a stopped broker, a deleted topic
            del self.meters[key]
        live = set()
        for group in state.groups(cluster, now):
            live.add(group.group_id)
            samples = self.lag_history.get(group.group_id)
            if samples is None:
                samples = self.lag_history[group.group_id] = deque(maxlen=self.history)
            samples.append(LagSample(now, {(p.topic, p.partition): p.lag for p in group.lags}))
        for group_id in self.lag_history.keys() - live:
            del self.lag_history[group_id]

    def meter(self, node_id: int, name: str, tags: tuple[str, ...] = ()) -> Meter | None:
        return self.meters.get((node_id, name, tags))


_samplers: weakref.WeakKeyDictionary[Cluster, Sampler] = weakref.WeakKeyDictionary()


def sampler_for(cluster: Cluster) -> Sampler:
    """The cluster's sampler, ticking from the first time anyone asks (the HTTP endpoint's
    start, a scrape, the console) until the cluster stops; call it on the cluster's loop."""
    sampler = _samplers.get(cluster)
    if sampler is None:
        sampler = _samplers[cluster] = Sampler(cluster)
    if cluster.started:
        sampler.start()
    return sampler


async def stop_sampler(cluster: Cluster) -> None:
    """Stop the cluster's sampler, if it has one (before the loop that runs it goes)."""
    sampler = _samplers.get(cluster)
    if sampler is not None:
        await sampler.stop()
