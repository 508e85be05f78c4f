"""Log compaction: how fast the cleaner cleans, and what it takes from a producer.

1. Cleaner throughput, in process, one thread, no broker: a compacted log of 1 KiB records in
   16-record batches with 10 % unique keys (each key written ten times), cleaned once
   (`LogCleaner.clean_once`); MiB/s of log read by the clean (the source segments).
2. A producer's rate with and without the cleaner, in the same run: a one-broker cluster (in
   this process, on its background thread) holding such a compacted log, never cleaned on its
   own (a long `log.cleaner.backoff.ms`); a confluent-kafka producer sends 1 KiB records to
   another topic (acks=1) for a fixed time, first with the cleaner idle, then while the
   cleaner cleans the compacted log in its slices of the event loop (the time it stayed busy
   inside the window is reported beside the rate).

The machine's 2 cores are shared: figures move with other load (the JSON keeps the load
average before the section).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from benchmarks.report import Section
from msklite import Cluster
from msklite.clock import SystemClock
from msklite.config import BrokerConfigs, TopicConfig
from msklite.log.cleaner import LogCleaner
from msklite.log.manager import LogManager
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import encode_batch, read_header
from msklite.topic_partition import TopicPartition

MIB = 1 << 20
RECORD_BYTES = 1024
PER_BATCH = 16
TOPIC = "compacted"
COMPACT = {"cleanup.policy": "compact", "segment.bytes": str(8 * MIB)}


def _records(mib: int) -> list[tuple[bytes, bytes]]:
    """1 KiB records (key and value), 10 % of them with distinct keys."""
    records = mib * MIB // RECORD_BYTES
    keys = records // 10
    value = os.urandom(RECORD_BYTES // 2).hex().encode()[: RECORD_BYTES - 16]
    return [(b"key-%08d" % ((i * 7919) % keys), value) for i in range(records)]


def _batches(mib: int) -> list[bytes]:
    records = _records(mib)
    now = int(time.time() * 1000)
    return [
        encode_batch(list(records[i : i + PER_BATCH]), timestamp=now)
        for i in range(0, len(records), PER_BATCH)
    ]


def _fill(plog: PartitionLog, batches: list[bytes]) -> None:
    for batch in batches:
        view = memoryview(batch)
        plog.append_as_leader(view, read_header(view), 0)
    plog.roll()  # everything written is cleanable


def cleaner_throughput(mib: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        clock = SystemClock()
        manager = LogManager(root, 1, "bench", clock)
        tp = TopicPartition(TOPIC, 0)
        config = TopicConfig.build(BrokerConfigs({}), COMPACT)
        _fill(manager.open_log(tp, uuid.uuid4(), config), _batches(mib))
        before = manager.logs[tp].size_in_bytes()
        cleaner = LogCleaner(
            manager, BrokerConfigs({}), clock, lambda t, p: p.log_end_offset, print
        )
        t0 = time.perf_counter()
        assert cleaner.clean_once()
        seconds = time.perf_counter() - t0
        after = manager.logs[tp].size_in_bytes()
        manager.shutdown({})
    return {
        "log_mib": before / MIB,
        "cleaned_to_mib": after / MIB,
        "seconds": seconds,
        "mib_per_s": cleaner.bytes_read / MIB / seconds,
    }


def _produce_for(bootstrap: str, seconds: float) -> float:
    """Records per second a producer gets acknowledged in `seconds`."""
    acked = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5})
    value = b"x" * RECORD_BYTES
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            p.produce("load", value=value, on_delivery=delivered)
        except BufferError:
            p.poll(0.001)
        p.poll(0)
    p.flush(30)
    return acked / (time.perf_counter() - t0)


def _prefill(bootstrap: str, mib: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value in _records(mib):
        while True:
            try:
                p.produce(TOPIC, key=key, value=value)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0


def producer_with_and_without(mib: int, seconds: float) -> dict[str, Any]:
    config = {"log.cleaner.backoff.ms": 3_600_000}
    with Cluster(brokers=1, config=config) as cluster:
        cluster.create_topic(TOPIC, configs=COMPACT)
        cluster.create_topic("load")
        broker = next(iter(cluster.brokers.values()))
        _prefill(cluster.bootstrap_servers, mib)
        cluster._call(lambda: broker.logs.logs[TopicPartition(TOPIC, 0)].roll())
        _produce_for(cluster.bootstrap_servers, min(seconds, 1.0))  # warm-up
        alone = _produce_for(cluster.bootstrap_servers, seconds)
        done: list[float] = []

        async def clean() -> None:
            await broker.cleaner.clean_in_slices()
            done.append(time.perf_counter())

        t0 = time.perf_counter()
        cluster._call(lambda: asyncio.get_running_loop().create_task(clean()))
        beside = _produce_for(cluster.bootstrap_servers, seconds)
        busy = min((done[0] if done else time.perf_counter()) - t0, seconds)
    return {
        "records_per_s_alone": alone,
        "records_per_s_with_cleaner": beside,
        "cleaner_busy_s": busy,
        "window_s": seconds,
    }


def run(quick: bool = False) -> Section:
    section = Section("compaction")
    mib = 16 if quick else 64
    seconds = 1.5 if quick else 3.0
    t = cleaner_throughput(mib)
    section.row(
        "cleaner, 1 KiB records, 10 % unique keys",
        f"{t['mib_per_s']:.1f} MiB/s",
        f"{t['log_mib']:.0f} MiB cleaned to {t['cleaned_to_mib']:.1f} MiB in {t['seconds']:.2f} s",
    )
    # enough to keep the cleaner busy through the window
    p = producer_with_and_without(2 * mib if quick else 96, seconds)
    alone, beside = p["records_per_s_alone"], p["records_per_s_with_cleaner"]
    section.row("producer 1 KiB acks=1, cleaner idle", f"{alone:,.0f} rec/s", "same broker")
    section.row(
        "producer 1 KiB acks=1, cleaner running",
        f"{beside:,.0f} rec/s",
        f"{beside / alone:.0%} of idle; cleaner busy {p['cleaner_busy_s']:.1f} s of "
        f"{p['window_s']:.1f} s",
    )
    section.data.update({"cleaner": t, "producer": p, "note": "in process; 2 shared cores"})
    return section
