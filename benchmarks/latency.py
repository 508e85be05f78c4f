"""Produce -> consume latency at a fixed rate, acks=all.

Two loads: 5,000 records/s (producer linger.ms=0) and 50,000 records/s (50 MB/s of 1 KiB
values; linger.ms=1, so that the producer batches as a real one at that rate would).
A confluent-kafka producer (acks=all, no compression) sends `rate` records per
second of `value_size` bytes to a 1-partition topic, each carrying the sender's
`time.perf_counter_ns()` in its first 8 bytes; a consumer in a process of its own (assigned
to the partition, default fetch settings: fetch.wait.max.ms=500, so a broker must answer a
waiting fetch as soon as the high watermark moves) reads them and notes the difference
(perf_counter is CLOCK_MONOTONIC on Linux: one clock for every process). Send times follow
a fixed schedule (record i is due at t0 + i/rate); a late sender catches up rather than
shifting the schedule, so a stall shows as latency. The first `warmup_s` seconds of records
are not counted. The machine is prepared just before each run (`warm.py`, sized to the
records the run stores; `warm=False`: cold).

Why a process for the consumer: as a thread of the benchmark's process it shared one GIL
with the sender, each taking it ~50,000 times a second at 50,000/s, and a thread that wants
the GIL back can wait up to the switch interval (5 ms) for it: the figure then held the
client's own GIL hand-offs (the sender late against its schedule, records noted late).
Measured against the same broker, 13 interleaved pairs of 4 s runs at 50,000/s (load average
1-4 on 2 cores), thread then process: sends >1 ms late fewer in 12 of 13 (e.g. 29k -> 16k,
73k -> 41k, 19k -> 3k), p99 lower in 10 of 13, median p99 94 -> 44 ms (the three pairs of a
quiet quarter hour: 191 -> 22.5, 8.4 -> 8.0, 69 -> 4.6 ms).
Every broker gets the same client.

Brokers: msklite with a replication factor 3 topic (min.insync.replicas=2, so every record
waits for a follower) — the target; and for context, at 5,000/s only, the mock (RF 3,
replication simulated) and Tansu (one broker, RF 1).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
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


def _consume(
    bootstrap: str, expected: int, ready: EventType, stop: EventType, out: Connection
) -> None:
    """The consumer process: reads the partition from offset 0 and sends back, through `out`,
    (its pid, send stamps, latencies, error or None) once it has `expected` records or `stop`
    is set."""
    sent_at, latencies = array("q"), array("q")
    error: str | None = None
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "msklite-bench-latency",
            "enable.auto.commit": False,
            "log_level": 3,  # errors only: they end up in `error` through the records
        }
    )
    try:
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        ready.set()
        while len(latencies) < expected:
            # poll(), not consume(n): consume waits until it has n records or times out
            m = consumer.poll(0.05)
            now = time.perf_counter_ns()
            if m is None:
                if stop.is_set():
                    break
                continue
            if m.error() is not None:
                error = str(m.error())
                continue
            (sent,) = _STAMP.unpack_from(m.value() or b"", 0)
            sent_at.append(sent)
            latencies.append(now - sent)
    except KafkaException as e:
        error = repr(e)
    finally:
        ready.set()
        consumer.close()
        out.send((os.getpid(), sent_at, latencies, error))
        out.close()


class _Receiver:
    """The consumer, in a process of its own (see the module docstring: why not a thread)."""

    def __init__(self, target: Target, expected: int) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that runs librdkafka's threads
        self.ready = ctx.Event()
        self.stop = ctx.Event()
        self._results, child_end = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_consume,
            args=(target.bootstrap, expected, self.ready, self.stop, child_end),
            daemon=True,
        )
        self._process.start()
        child_end.close()

    def results(self, timeout: float) -> tuple[int, list[tuple[int, int]], str | None]:
        """The consumer's pid, (send stamp, latency) per record received, and the consumer's
        error; waits up to
        `timeout` s for all of them, then tells the consumer to stop with what it has."""
        if not self._results.poll(timeout):
            self.stop.set()
            if not self._results.poll(10):
                raise BenchError("the consumer process did not answer")
        pid, sent_at, latencies, error = self._results.recv()
        return pid, list(zip(sent_at, latencies, strict=True)), error

    def close(self) -> None:
        self.stop.set()
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._results.close()


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
    failures: list[str] = []
    producer = reporting_producer(
        target,
        log,
        failures,
        {"acks": "all", "linger.ms": load.linger_ms, "message.timeout.ms": 30000},
    )
    receiver = _Receiver(target, total)
    try:
        producer.list_topics(TOPIC, timeout=10)
        if not receiver.ready.wait(30):
            raise BenchError("the consumer process did not start")
        padding = os.urandom(value_size - _STAMP.size)
        preparation = prepare()
        cpu0 = target.cpu_seconds()
        interval_ns = 1_000_000_000 // rate
        t0 = time.perf_counter_ns() + 50_000_000  # start 50 ms out: consumer's first fetch
        warm_end = t0 + int(warmup_s * 1e9)
        late = 0
        for i in range(total):
            due = t0 + i * interval_ns
            now = time.perf_counter_ns()
            if now < due:
                # sleep, never spin: the consumer and the broker share the machine's cores
                # (sleep overshoots by ~0.1 ms; latency counts from the actual send)
                time.sleep((due - now) / 1e9)
            elif now - due > 1_000_000:
                late += 1
            producer.produce(TOPIC, _STAMP.pack(time.perf_counter_ns()) + padding, partition=0)
            producer.poll(0)
        if producer.flush(30):
            raise BenchError("records still undelivered 30 s after the last one")
        broker_cpu_s = target.cpu_seconds() - cpu0
        load_average = os.getloadavg()[0]
        consumer_pid, received, error = receiver.results(10)
    finally:
        receiver.close()
    if failures:
        raise BenchError(f"{len(failures)} delivery failures: {failures[0]}")
    if error:
        raise BenchError(f"consumer: {error}")
    samples = sorted(lat for sent, lat in received if sent >= warm_end)
    if not samples:
        raise BenchError("no records received")
    counted = len(samples)
    return {
        "sent": total,
        "received": len(received),
        "consumer_pid": consumer_pid,
        "counted": counted,
        "sends_late_over_1ms": late,
        "p50_ms": quantile(samples, 0.5) / 1e6,
        "p99_ms": quantile(samples, 0.99) / 1e6,
        "p999_ms": quantile(samples, 0.999) / 1e6,
        "max_ms": samples[-1] / 1e6,
        # the figure follows the machine (README: where the tail comes from): what the broker
        # used and how busy the machine was, to read it by
        "broker_cpu_s": broker_cpu_s,
        "load_average_1m": load_average,
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
            load_average = summary([x["load_average_1m"] for x in rs])["median"]
            section.row(
                f"{label} {load.name} p50 / p99 / p99.9",
                f"{med['p50_ms']:.2f} / {med['p99_ms']:.2f} / {med['p999_ms']:.2f} ms",
                f"max {med['max_ms']:.1f} ms; median of {len(rs)} runs x {seconds:.0f} s of"
                f" {value_size} B, acks=all, linger.ms={load.linger_ms};"
                f" {late} sends >1 ms late; load average {load_average:.1f}",
            )
    return section
