"""Produce -> consume latency at a fixed rate, acks=all.

Two loads: 5,000 records/s (producer linger.ms=0) and 50,000 records/s (50 MB/s of 1 KiB
values; linger.ms=1, so that the producer batches as a real one at that rate would).
A confluent-kafka producer (acks=all, no compression) sends `rate` records per
second of `value_size` bytes to a 1-partition topic, each carrying the sender's
`time.perf_counter_ns()` in its first 8 bytes; a consumer in a thread of the same process
(assigned to the partition, default fetch settings: fetch.wait.max.ms=500, so a broker must
answer a waiting fetch as soon as the high watermark moves) reads them and notes the
difference. Send times follow a fixed schedule (record i is due at t0 + i/rate); a late
sender catches up rather than shifting the schedule, so a stall shows as latency.
The first `warmup_s` seconds of records are not counted. The machine is prepared just before
each run (`warm.py`, sized to the records the run stores; `warm=False`: cold).

Brokers: msklite with a replication factor 3 topic (min.insync.replicas=2, so every record
waits for a follower) — the target; and for context, at 5,000/s only, the mock (RF 3,
replication simulated) and Tansu (one broker, RF 1).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from benchmarks import targets
from benchmarks.procs import BenchError
from benchmarks.report import Section, quantile, summary
from benchmarks.targets import Target, TopicSpec
from benchmarks.throughput import RdkafkaLog, reporting_producer
from benchmarks.warm import Preparation, mib_for_load

TOPIC = "latency"
_STAMP = struct.Struct(">q")
SETUPS = (("msklite RF3", "msklite", 3), ("mock RF3", "mock", 3), ("tansu RF1", "tansu", 1))


@dataclass(frozen=True)
class Load:
    rate: int  # records per second
    linger_ms: int  # the producer's linger.ms
    peers: bool = True  # also run the peers (context only: their latency is their fetch wait)

    @property
    def name(self) -> str:
        return f"{self.rate:,}/s"


# The peers only at 5,000/s: at 50 MB/s the mock keeps 0.1 s of records (5 MiB per
# partition) and its consumer, 500 ms behind, reads past what it still has.
LOADS = (Load(5_000, 0), Load(50_000, 1, peers=False))


def setups_for(peers: tuple[str, ...]) -> tuple[tuple[str, str, int], ...]:
    return tuple(s for s in SETUPS if s[1] == "msklite" or s[1] in peers)


class _Receiver(threading.Thread):
    def __init__(self, target: Target, expected: int, log: RdkafkaLog) -> None:
        super().__init__(daemon=True)
        self.expected = expected
        self.latencies_ns: list[tuple[int, int]] = []  # (sent at, latency)
        self.error: str | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": target.bootstrap,
                "group.id": "msklite-bench-latency",
                "enable.auto.commit": False,
                "logger": log.logger,
            }
        )

    def run(self) -> None:
        try:
            self.consumer.assign([TopicPartition(TOPIC, 0, 0)])
            self.ready.set()
            while len(self.latencies_ns) < self.expected and not self.stop.is_set():
                # poll(), not consume(n): consume waits until it has n records or times out
                m = self.consumer.poll(0.05)
                now = time.perf_counter_ns()
                if m is None:
                    continue
                if m.error() is not None:
                    self.error = str(m.error())
                    continue
                (sent,) = _STAMP.unpack_from(m.value() or b"", 0)
                self.latencies_ns.append((sent, now - sent))
        except KafkaException as e:
            self.error = repr(e)
        finally:
            self.ready.set()
            self.consumer.close()


def _one_run(
    target: Target,
    load: Load,
    seconds: float,
    warmup_s: float,
    value_size: int,
    prepare: Preparation,
    log: RdkafkaLog,
) -> dict[str, Any]:
    rate = load.rate
    total = int(rate * (seconds + warmup_s))
    receiver = _Receiver(target, total, log)
    failures: list[str] = []
    producer = reporting_producer(
        target,
        log,
        failures,
        {"acks": "all", "linger.ms": load.linger_ms, "message.timeout.ms": 30000},
    )
    receiver.start()
    try:
        producer.list_topics(TOPIC, timeout=10)
        receiver.ready.wait(10)
        padding = os.urandom(value_size - _STAMP.size)
        preparation = prepare()
        interval_ns = 1_000_000_000 // rate
        t0 = time.perf_counter_ns() + 50_000_000  # start 50 ms out: consumer's first fetch
        warm_end = t0 + int(warmup_s * 1e9)
        late = 0
        for i in range(total):
            due = t0 + i * interval_ns
            now = time.perf_counter_ns()
            if now < due:
                # sleep, never spin: a spinning thread holds the GIL that the consumer thread
                # needs (sleep overshoots by ~0.1 ms; latency counts from the actual send)
                time.sleep((due - now) / 1e9)
            elif now - due > 1_000_000:
                late += 1
            producer.produce(TOPIC, _STAMP.pack(time.perf_counter_ns()) + padding, partition=0)
            producer.poll(0)
        if producer.flush(30):
            raise BenchError("records still undelivered 30 s after the last one")
        receiver.join(10)
    finally:
        receiver.stop.set()
        receiver.join(5)
    if failures:
        raise BenchError(f"{len(failures)} delivery failures: {failures[0]}")
    if receiver.error:
        raise BenchError(f"consumer: {receiver.error}")
    samples = sorted(lat for sent, lat in receiver.latencies_ns if sent >= warm_end)
    if not samples:
        raise BenchError("no records received")
    counted = sum(1 for sent, _ in receiver.latencies_ns if sent >= warm_end)
    return {
        "sent": total,
        "received": len(receiver.latencies_ns),
        "counted": counted,
        "sends_late_over_1ms": late,
        "p50_ms": quantile(samples, 0.5) / 1e6,
        "p99_ms": quantile(samples, 0.99) / 1e6,
        "p999_ms": quantile(samples, 0.999) / 1e6,
        "max_ms": samples[-1] / 1e6,
        "preparation": preparation,
    }


def run(
    rounds: int,
    seconds: float,
    loads: tuple[Load, ...] = LOADS,
    value_size: int = 1024,
    warmup_s: float = 0.5,
    loop: str = "default",
    setups: tuple[tuple[str, str, int], ...] = SETUPS,
    warm: bool = True,
) -> Section:
    section = Section("latency")
    copies = max(rf for _, _, rf in setups) + 1  # every replica, and the client's buffers
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        load.name: {label: [] for label, _, _ in setups} for load in loads
    }
    for r in range(rounds):
        order = setups[r % len(setups) :] + setups[: r % len(setups)]
        for load in loads:
            stored = int(load.rate * (seconds + warmup_s)) * value_size
            prepare = Preparation(warm, mib_for_load(stored, copies))
            for label, kind, rf in order:
                if kind != "msklite" and not load.peers:
                    continue
                log = RdkafkaLog()
                try:
                    with targets.start(kind, [TopicSpec(TOPIC, 1, rf)], loop=loop) as target:
                        result = _one_run(target, load, seconds, warmup_s, value_size, prepare, log)
                        target.check_alive()
                except (BenchError, KafkaException, OSError) as e:
                    section.errors.append(f"{label} {load.name} round {r + 1}: {e}")
                    continue
                finally:
                    log.detach()
                if result["received"] != result["sent"]:
                    section.errors.append(
                        f"{label} {load.name} round {r + 1}:"
                        f" {result['received']} of {result['sent']} received"
                    )
                runs[load.name][label].append(result)
    section.data = {
        "loads": {load.name: load.__dict__ for load in loads},
        "value_size": value_size,
        "seconds": seconds,
        "warmup_s": warmup_s,
        "warm": warm,
        "runs": runs,
        "median": {
            load: {
                label: {
                    k: summary([x[k] for x in rs])["median"]
                    for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms")
                }
                for label, rs in by_label.items()
            }
            for load, by_label in runs.items()
        },
    }
    for load in loads:
        for label, rs in runs[load.name].items():
            if not rs:
                continue
            med = section.data["median"][load.name][label]
            late = sum(x["sends_late_over_1ms"] for x in rs)
            section.row(
                f"{label} {load.name} p50 / p99 / p99.9",
                f"{med['p50_ms']:.2f} / {med['p99_ms']:.2f} / {med['p999_ms']:.2f} ms",
                f"max {med['max_ms']:.1f} ms; median of {len(rs)} runs x {seconds:.0f} s of"
                f" {value_size} B, acks=all, linger.ms={load.linger_ms};"
                f" {late} sends >1 ms late",
            )
    return section
