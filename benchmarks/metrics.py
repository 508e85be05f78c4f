"""What a Prometheus scrape costs the brokers: a producer's rate with the `/metrics` endpoint
scraped every second, beside the same producer with no scrape, in the same run.

`msklite serve` (3 brokers, its HTTP endpoint on a free port) in a process of its own, as users
run it; a topic of 6 partitions at RF 3 (every broker leads and follows, so a scrape has
partitions, logs and meters to render) and a consumer group's committed offsets on it (so
the lag metrics are rendered too). A confluent-kafka producer in this process sends 1 KiB
records (acks=all) for a fixed window; the windows alternate quiet / scraped / scraped /
quiet, in blocks (ABBA: a trend over the block, such as the log growing or the shared
machine's load drifting, hits both alike); each block gives the ratio of its scraped windows'
records to its quiet ones', and the figure is the median block's. A scraper process, started
before the first window, GETs `/metrics` once a second during the scraped windows and reads the
whole answer (its wall time, queued behind the produce traffic, is reported); the metrics
sampler ticks (every 5 s) in both. The broker process's CPU per record is read around every
window. Last, the scrape's own cost: 20 scrapes of the idle broker, their wall time and the
broker's CPU time.

The machine's 2 cores are shared: figures move with other load (the JSON keeps the load
average before the section).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.procs import BrokerProcess, free_port_block, msklite_command
from benchmarks.report import Section

RECORD_BYTES = 1024
TOPIC = "load"
PARTITIONS = 6
SCRAPE_EVERY_S = 1.0
BLOCKS = 3
START_TIMEOUT_S = 60.0


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


def _scrape(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return len(resp.read())


# The scraper is a process of its own, as Prometheus is: in this one it would take the GIL from
# the producer's loop and slow the client instead of the broker. It starts once, before the
# windows (an interpreter starting inside a scraped window took its CPU from the broker), and
# scrapes for as long as each line it reads says.
_SCRAPER = """
import json, sys, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    until = time.perf_counter() + float(line)
    scrapes = size = 0
    spent = 0.0
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as resp:
            size += len(resp.read())
        took = time.perf_counter() - t0
        spent += took
        scrapes += 1
        time.sleep(max(min(every - took, until - time.perf_counter()), 0))
    print(json.dumps({"scrapes": scrapes, "bytes": size,
                      "mean_ms": 1000 * spent / max(scrapes, 1)}), flush=True)
"""


class _Scraper:
    """A process GETting `url` every SCRAPE_EVERY_S during each `scraping` window."""

    def __init__(self, url: str) -> None:
        self.argv = [sys.executable, "-c", _SCRAPER, url, str(SCRAPE_EVERY_S)]

    def __enter__(self) -> _Scraper:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the scraper did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.communicate(timeout=30)

    @contextlib.contextmanager
    def scraping(self, seconds: float) -> Iterator[dict[str, float]]:
        """Scrape for `seconds` from now; the window's stats fill the dict at the end."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        stats: dict[str, float] = {}
        yield stats
        stats.update(json.loads(self.proc.stdout.readline()))


def _prepare(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 3)])[TOPIC].result(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)], asynchronous=False)
    c.close()


def _block_ratios(quiet: list[float], scraped: list[float]) -> list[float]:
    """Per ABBA block: scraped records per second over quiet ones (two windows each)."""
    return [
        (scraped[i] + scraped[i + 1]) / (quiet[i] + quiet[i + 1]) for i in range(0, len(quiet), 2)
    ]


def scrape_cost(seconds: float) -> dict[str, Any]:
    port = free_port_block(3)
    with BrokerProcess("msklite", msklite_command(3, port)) as broker:
        bootstrap = broker.wait_line("Bootstrap servers: ", START_TIMEOUT_S)[1].split(": ")[1]
        url = broker.wait_line("Metrics: ", START_TIMEOUT_S)[1].split(": ", 1)[1].strip()
        _prepare(bootstrap)
        _produce_for(bootstrap, min(seconds, 1.0))  # warm-up
        quiet: list[float] = []
        scraped: list[float] = []
        cpu_per_krec: dict[str, list[float]] = {"quiet": [], "scraped": []}
        scraper_stats: list[dict[str, float]] = []
        with _Scraper(url) as scraper:
            for scrape in (False, True, True, False) * BLOCKS:
                cpu0 = broker.cpu_seconds()
                if scrape:
                    with scraper.scraping(seconds) as stats:
                        rate = _produce_for(bootstrap, seconds)
                    scraper_stats.append(stats)
                else:
                    rate = _produce_for(bootstrap, seconds)
                (scraped if scrape else quiet).append(rate)
                cpu = broker.cpu_seconds() - cpu0
                kind = "scraped" if scrape else "quiet"
                cpu_per_krec[kind].append(1e6 * cpu / (rate * seconds))  # ms / 1,000 records
        time.sleep(2 * SCRAPE_EVERY_S)  # the acks=all tail settles: the broker goes idle
        cpu0, t0 = broker.cpu_seconds(), time.perf_counter()
        for _ in range(20):
            size = _scrape(url)
        idle_ms = (time.perf_counter() - t0) * 1000 / 20
        idle_cpu_ms = (broker.cpu_seconds() - cpu0) * 1000 / 20
    blocks = _block_ratios(quiet, scraped)
    return {
        "records_per_s_quiet": quiet,
        "records_per_s_scraped": scraped,
        "block_ratios": blocks,
        "ratio": sorted(blocks)[len(blocks) // 2],
        "broker_cpu_ms_per_1000_records": cpu_per_krec,
        "scrapes": scraper_stats,
        "idle_scrape_ms": idle_ms,
        "idle_scrape_broker_cpu_ms": idle_cpu_ms,
        "scrape_bytes": size,
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
        f"{sum(x['scrapes'] for x in s)} scrapes answered in "
        f"{sum(x['mean_ms'] for x in s) / len(s):.0f} ms under load",
    )
    section.row(
        "one /metrics scrape, idle broker",
        f"{r['idle_scrape_ms']:.1f} ms",
        f"{r['scrape_bytes']:,} B; {r['idle_scrape_broker_cpu_ms']:.1f} ms of broker CPU",
    )
    section.data.update({"scrape": r, "note": "msklite serve in its own process; 2 shared cores"})
    return section
