"""What a Prometheus scrape costs the brokers: a producer's rate with the `/metrics` endpoint
scraped every second, beside the same producer with no scrape, in the same run.

A 3-broker cluster with its HTTP endpoint (`msklite.web.service.Service`, in this process on
its background thread, as `msklite serve` runs it) and a topic of 6 partitions at RF 3 (so
that every broker leads and follows, and a scrape has partitions, logs and meters to render);
a consumer group commits offsets on it, so the lag metrics are rendered too. A confluent-kafka
producer sends 1 KiB records (acks=all) for a fixed window; the windows alternate quiet /
scraped / scraped / quiet, in blocks (ABBA: a trend over the block, such as the log growing or
the shared machine's load drifting, hits both alike); each block gives the ratio of its
scraped windows' records to its quiet ones', and the figure is the median block's. A scraper
thread GETs `/metrics` over HTTP once a second during the scraped windows and reads the whole
answer (its wall time, queued behind the produce traffic, is reported); the metrics sampler
ticks (every 5 s) in both. Last, the scrape's own cost: the answer rendered 20 times on the
idle loop.

The machine's 2 cores are shared: figures move with other load (the JSON keeps the load
average before the section).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.report import Section
from msklite import Cluster
from msklite.web.service import Service

RECORD_BYTES = 1024
TOPIC = "load"
PARTITIONS = 6
SCRAPE_EVERY_S = 1.0
BLOCKS = 3


def _produce_for(bootstrap: str, seconds: float) -> float:
    """Records per second a producer gets acknowledged in `seconds`."""
    acked = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    value = b"x" * RECORD_BYTES
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            p.produce(TOPIC, value=value, on_delivery=delivered)
        except BufferError:
            p.poll(0.001)
        p.poll(0)
    p.flush(30)
    return acked / (time.perf_counter() - t0)


class _Scraper:
    """GETs `url` every SCRAPE_EVERY_S while running; counts scrapes, bytes and their time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.scrapes = 0
        self.bytes = 0
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=10) as resp:
                self.bytes += len(resp.read())
            took = time.perf_counter() - t0
            self.seconds += took
            self.scrapes += 1
            self.stop.wait(max(SCRAPE_EVERY_S - took, 0))

    def __enter__(self) -> _Scraper:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


def _commit_group(bootstrap: str) -> None:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)], asynchronous=False)
    c.close()


def _block_ratios(quiet: list[float], scraped: list[float]) -> list[float]:
    """Per ABBA block: scraped records per second over quiet ones (two windows each)."""
    return [
        (scraped[i] + scraped[i + 1]) / (quiet[i] + quiet[i + 1]) for i in range(0, len(quiet), 2)
    ]


def _render_ms(service: Service, times: int) -> float:
    """Milliseconds one /metrics answer takes to render (call on the service's loop)."""
    from msklite.metrics.exporter import registry_for, render
    from msklite.metrics.meters import sampler_for

    cluster = service.cluster
    t0 = time.perf_counter()
    for _ in range(times):
        render(registry_for(cluster, sampler_for(cluster)))
    return (time.perf_counter() - t0) * 1000 / times


def scrape_cost(seconds: float) -> dict[str, Any]:
    with Service(Cluster(brokers=3), aws_port=0) as service:
        cluster = service.cluster
        # on the service's loop, where the cluster runs
        service._bridge.call(lambda: cluster.create_topic(TOPIC, PARTITIONS, 3))
        bootstrap = cluster.bootstrap_servers
        url = f"{service.url}/metrics"
        _commit_group(bootstrap)
        _produce_for(bootstrap, min(seconds, 1.0))  # warm-up
        quiet: list[float] = []
        scraped: list[float] = []
        scraper_stats: list[dict[str, float]] = []
        for scrape in (False, True, True, False) * BLOCKS:
            if not scrape:
                quiet.append(_produce_for(bootstrap, seconds))
                continue
            with _Scraper(url) as s:
                scraped.append(_produce_for(bootstrap, seconds))
            scraper_stats.append(
                {"scrapes": s.scrapes, "bytes": s.bytes, "mean_ms": 1000 * s.seconds / s.scrapes}
            )
        render_ms = service._bridge.call(lambda: _render_ms(service, 20))
    return {
        "render_ms": render_ms,
        "records_per_s_quiet": quiet,
        "records_per_s_scraped": scraped,
        "block_ratios": (blocks := _block_ratios(quiet, scraped)),
        "ratio": sorted(blocks)[len(blocks) // 2],
        "scrapes": scraper_stats,
        "window_s": seconds,
    }


def run(quick: bool = False) -> Section:
    section = Section("metrics")
    r = scrape_cost(1.0 if quick else 2.0)
    quiet = sum(r["records_per_s_quiet"]) / len(r["records_per_s_quiet"])
    scraped = sum(r["records_per_s_scraped"]) / len(r["records_per_s_scraped"])
    s = r["scrapes"]
    section.row("producer 1 KiB acks=all x6p RF 3, no scrape", f"{quiet:,.0f} rec/s", "")
    section.row(
        "producer 1 KiB acks=all x6p RF 3, /metrics every 1 s",
        f"{scraped:,.0f} rec/s",
        f"{r['ratio']:.3f} of unscraped (median of {len(r['block_ratios'])} ABBA blocks: "
        f"{', '.join(f'{b:.2f}' for b in r['block_ratios'])}; target ≥ 0.97); "
        f"{sum(x['scrapes'] for x in s)} "
        f"scrapes of ≈{s[0]['bytes'] // max(s[0]['scrapes'], 1):,} B, answered in "
        f"{sum(x['mean_ms'] for x in s) / len(s):.0f} ms; {r['render_ms']:.1f} ms to render",
    )
    section.data.update({"scrape": r, "note": "in process; 2 shared cores"})
    return section
