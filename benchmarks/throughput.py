"""Client throughput: the confluent-kafka producer and consumer against each broker.

Loads (every combination): record values of 100 B and 1 KiB, topics of 1 and 6 partitions,
acks=1 and acks=all; replication factor 1 on every broker, and RF 3 on msklite (the mock's
"replicas" do no work and Tansu runs one broker, so RF 3 has no peer figure).

Each round runs the loads one after the other, each against every broker in turn (the
starting broker rotates per round), so that background load drifting over the run hits all
brokers alike. Every (load, broker) pair gets a fresh broker process — msklite (3 brokers),
the librdkafka mock (3 brokers) or Tansu — holding just that load's topic: produced data
never piles up across loads (on the project's VMs, touching new memory is what costs most:
writing 500 MB into new page-cache pages took 1 s of system time, see README).

- produce: a fresh `Producer` (linger.ms=5, no compression, idempotence off) connects and
  delivers one warm-up record per partition; then the machine is prepared (`warm.py`: a
  file sized to the load written and deleted, the same for every broker of the load), and
  the clock runs from the first timed `produce()` to `flush()` returning with nothing left.
  Round 1 of each load in `cold_loads` also runs every broker cold (no warm-up, after an
  idle pause): a "cold" row beside the warm one. With `warm=False` every run is cold.
  Records go round-robin over the partitions (explicit partition numbers, the same sequence
  for every broker). The broker's CPU (utime+stime from /proc) is read around the same span.
  Afterwards the high watermarks must add up to what was produced (not on Tansu, whose
  watermark is its last batch's base offset + 1).
- read-back (acks=1 loads only; the written data does not depend on acks): a `Consumer`
  assigned to the last `readback_mib` MiB of each partition (the mock keeps only ≈5 MiB per
  partition) reads that range again and again for `readback_s` seconds; one pass first is a
  warm-up. Figure: records (and value bytes) per second over the timed passes.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from benchmarks import targets
from benchmarks.procs import BenchError
from benchmarks.report import GIB, Section, summary
from benchmarks.targets import Target, TopicSpec
from benchmarks.warm import Preparation, mib_for_load

_logger_ids = itertools.count()
MIB = 1 << 20


class RdkafkaLog(logging.Handler):
    """Collects librdkafka's log lines (instead of letting them spray stderr)."""

    KEEP = 20

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.warnings = 0
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"benchmarks.rdkafka.{next(_logger_ids)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if record.levelno >= logging.WARNING:
            self.warnings += 1
        if len(self.lines) < self.KEEP:
            self.lines.append(f"{record.levelname}: {record.getMessage()}")

    def detach(self) -> None:
        self.logger.removeHandler(self)

    def report(self) -> dict[str, Any]:
        return {"count": self.count, "warnings": self.warnings, "first": self.lines}


def reporting_producer(
    target: Target, log: RdkafkaLog, failures: list[str], config: dict[str, Any]
) -> Producer:
    """A confluent Producer for `target` (idempotence off, no compression, librdkafka's log
    into `log`) that reports only failed deliveries, appending them to `failures`; `config`
    adds to or overrides those settings."""

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    return Producer(
        {
            "bootstrap.servers": target.bootstrap,
            "compression.type": "none",
            "enable.idempotence": False,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            "logger": log.logger,
            **config,
        }
    )


@dataclass(frozen=True)
class Load:
    value_size: int
    partitions: int
    acks: str  # "1" or "all"

    @property
    def name(self) -> str:
        size = "1 KiB" if self.value_size == 1024 else f"{self.value_size} B"
        return f"{size} x{self.partitions}p acks={self.acks}"

    def topic(self, rf: int) -> str:
        return f"c-{self.value_size}-{self.partitions}-{self.acks}-rf{rf}"


LOADS = tuple(
    Load(size, parts, acks) for size in (100, 1024) for parts in (1, 6) for acks in ("1", "all")
)
PEERS = ("mock", "tansu")


def _client_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _deliver(producer: Producer, failures: list[str], deadline: float) -> None:
    remaining = len(producer)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(min(1.0, max(deadline - time.monotonic(), 0.01)))
    if remaining:
        raise BenchError(f"time limit hit with {remaining} records undelivered")
    if failures:
        raise BenchError(f"{len(failures)} delivery failures, first: {failures[0]}")


def produce(
    target: Target,
    topic: str,
    load: Load,
    messages: int,
    deadline: float,
    log: RdkafkaLog,
    prepare: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    failures: list[str] = []
    producer = reporting_producer(
        target,
        log,
        failures,
        {
            "client.id": "msklite-bench",
            "acks": load.acks,
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        },
    )
    try:
        value = os.urandom(load.value_size)
        producer.list_topics(topic, timeout=max(deadline - time.monotonic(), 1.0))
        for p in range(load.partitions):  # opens the connection to every leader
            producer.produce(topic, value, partition=p)
        _deliver(producer, failures, deadline)
        preparation = prepare()
        out = _timed_produce(producer, failures, target, topic, load, value, messages, deadline)
        return out | {"preparation": preparation}
    except BaseException:
        producer.purge()  # drop what is still queued so that the producer can go away at once
        producer.flush(0)
        raise


def _timed_produce(
    producer: Producer,
    failures: list[str],
    target: Target,
    topic: str,
    load: Load,
    value: bytes,
    messages: int,
    deadline: float,
) -> dict[str, Any]:
    produce_ = producer.produce
    parts = load.partitions
    (user0, sys0), client0, t0 = target.cpu_times(), _client_cpu(), time.perf_counter()
    for i in range(messages):
        while True:
            try:
                produce_(topic, value, partition=i % parts)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                producer.poll(0.001)
        if i % 4096 == 0:
            producer.poll(0)
            if time.monotonic() > deadline:
                raise BenchError(f"time limit hit after {i} of {messages} produce() calls")
    _deliver(producer, failures, deadline)
    elapsed = time.perf_counter() - t0
    (user1, sys1), client1 = target.cpu_times(), _client_cpu()
    cpu = (user1 - user0) + (sys1 - sys0)
    payload = messages * load.value_size
    return {
        "elapsed_s": elapsed,
        "msg_per_s": messages / elapsed,
        "mb_per_s": payload / elapsed / 1e6,
        "broker_cpu_s": cpu,
        "broker_user_s": user1 - user0,
        "broker_sys_s": sys1 - sys0,
        "broker_cpu_s_per_gib": cpu / (payload / GIB),
        "broker_cpu_cores": cpu / elapsed,
        "client_cpu_cores": (client1 - client0) / elapsed,
    }


def _consumer(target: Target, log: RdkafkaLog, extra: dict[str, Any] | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": target.bootstrap,
            "group.id": "msklite-bench",  # required by librdkafka; assign() uses no group
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "logger": log.logger,
            **(extra or {}),
        }
    )


def watermarks(target: Target, topic: str, partitions: int, log: RdkafkaLog) -> list[int]:
    consumer = _consumer(target, log)
    try:
        return [
            int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1])
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def read_back(
    target: Target,
    topic: str,
    load: Load,
    ends: list[int],
    window_mib: int,
    seconds: float,
    timeout: float,
    log: RdkafkaLog,
) -> dict[str, Any]:
    """Consume offsets [end - window, end) of every partition repeatedly for `seconds`."""
    deadline = time.monotonic() + timeout
    # fetch.wait.max.ms=1: at the end of a pass librdkafka has a fetch waiting at the end of
    # the log, and the next pass's first fetch queues behind it on that connection; with the
    # default 500 ms (or even 100) that wait, the same on every broker, dominated the figure.
    # (0 would not do: Tansu answers max_wait_ms=0 with no records.) fetch.queue.backoff.ms=1:
    # once a partition's local queue passes queued.min.messages (100,000 records, reached
    # with 100 B records) librdkafka pauses its fetches for 1 s by default — 24 MiB passes of
    # 100 B records took 1.15 s instead of 0.25 s, on every broker alike.
    consumer = _consumer(target, log, {"fetch.wait.max.ms": 1, "fetch.queue.backoff.ms": 1})
    try:
        per_part = max(1, window_mib * MIB // load.value_size)
        starts = []
        for p, end in enumerate(ends):
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
            starts.append(max(int(low), end - per_part))
        _one_pass(consumer, topic, starts, ends, deadline)  # warm-up: connections, caches
        passes, total_bytes, total_msgs = 0, 0, 0
        t0 = time.perf_counter()
        while True:
            msgs, nbytes = _one_pass(consumer, topic, starts, ends, deadline)
            passes += 1
            total_msgs += msgs
            total_bytes += nbytes
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        return {
            "passes": passes,
            "elapsed_s": elapsed,
            "messages": total_msgs,
            "msg_per_s": total_msgs / elapsed,
            "mb_per_s": total_bytes / elapsed / 1e6,
            "mib_per_pass": total_bytes / passes / MIB,
        }
    finally:
        consumer.close()


def _one_pass(
    consumer: Consumer, topic: str, starts: list[int], ends: list[int], deadline: float
) -> tuple[int, int]:
    consumer.assign([TopicPartition(topic, p, off) for p, off in enumerate(starts)])
    left = {p for p in range(len(starts)) if ends[p] > starts[p]}
    remaining = sum(max(e - s, 0) for s, e in zip(starts, ends, strict=True))
    msgs = nbytes = 0
    while left:
        if time.monotonic() > deadline:
            raise BenchError(f"read-back: time limit hit, partitions {sorted(left)} unfinished")
        # consume() returns when it has num_messages or at the timeout: ask for no more than
        # are left, or every pass would end by waiting out the timeout
        for m in consumer.consume(num_messages=min(remaining - msgs, 10000) or 1, timeout=0.5):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise BenchError(f"read-back: {err}")
            p = m.partition()
            if p in left:
                msgs += 1
                nbytes += len(m.value() or b"")
                if (m.offset() or 0) >= ends[p] - 1:
                    left.discard(p)
    return msgs, nbytes


@dataclass
class Running:
    label: str
    target: Target
    rf: int


def _produce_checked(
    col: Running,
    load: Load,
    messages: int,
    timeout: float,
    prepare: Preparation,
    log: RdkafkaLog,
) -> dict[str, Any]:
    topic = load.topic(col.rf)
    deadline = time.monotonic() + timeout
    before = watermarks(col.target, topic, load.partitions, log)
    out = produce(col.target, topic, load, messages, deadline, log, prepare)
    expected = messages + load.partitions  # + the warm-up records
    # with acks=1 at RF 3 the followers may still be copying the tail: the high watermark
    # follows them; the clock has stopped already, this only waits for the check
    while True:
        after = watermarks(col.target, topic, load.partitions, log)
        grown = sum(after) - sum(before)
        if col.target.kind == "tansu" or grown == expected:
            break
        if grown > expected or time.monotonic() > deadline:
            raise BenchError(f"high watermarks grew by {grown}, not {expected}")
        time.sleep(0.05)
    # Tansu's watermark is its last batch's base offset + 1: count what was sent instead
    out["ends"] = [
        b + messages // load.partitions + (p < messages % load.partitions) + 1
        for p, b in enumerate(before)
    ]
    col.target.check_alive()
    return out


def run(
    messages_small: int,
    messages_large: int,
    rounds: int,
    readback_mib: int = 4,
    readback_s: float = 1.0,
    timeout: float = 120.0,
    loop: str = "default",
    loads: tuple[Load, ...] = LOADS,
    with_rf3: bool = True,
    peers: tuple[str, ...] = PEERS,
    warm: bool = True,
    cold_loads: tuple[str, ...] = (),
) -> Section:
    section = Section("throughput")
    labels = ["msklite", *peers] + (["msklite RF3"] if with_rf3 else [])
    stores: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        kind: {x: {} for x in labels} for kind in ("produce", "produce cold", "consume")
    }
    logs: list[dict[str, Any]] = []

    def record(
        kind: str, col: Running, load: Load, r: int, fn: Callable[[RdkafkaLog], dict[str, Any]]
    ) -> bool:
        what = f"{kind} {load.name} {col.label} round {r}"
        log = RdkafkaLog()
        try:
            result = fn(log)
        except (BenchError, KafkaException, OSError) as e:
            first = f" (librdkafka: {log.lines[0]})" if log.lines else ""
            section.errors.append(f"{what}: {e}{first}")
            return False
        finally:
            log.detach()
        if log.warnings:
            section.errors.append(f"{what}: {log.warnings} librdkafka warnings: {log.lines[0]}")
        logs.append({"kind": kind, "load": load.name, "label": col.label, **log.report()})
        result["round"] = r
        stores[kind][col.label].setdefault(load.name, []).append(result)
        return True

    def one(label: str, kind: str, rf: int, load: Load, r: int, prepare: Preparation) -> None:
        n = messages_small if load.value_size < 1024 else messages_large
        # a fresh broker per run: every run starts from an empty log and memory, so what
        # earlier runs left (page cache, Tansu's in-memory log) weighs on none
        topic = TopicSpec(load.topic(rf), load.partitions, rf)
        kind_ = "produce" if prepare.warm == warm else "produce cold"
        try:
            with targets.start(kind, [topic], loop=loop, label=label) as target:
                col = Running(label, target, rf)
                produce_ = functools.partial(_produce_checked, col, load, n, timeout, prepare)
                if not record(kind_, col, load, r, produce_) or kind_ != "produce":
                    return
                if load.acks != "1":
                    return  # read back once per data set (acks does not change the data)
                ends = list(stores[kind_][label][load.name][-1]["ends"])
                read = functools.partial(
                    read_back, target, topic.name, load, ends, readback_mib, readback_s, timeout
                )
                record("consume", col, load, r, read)
        except (BenchError, KafkaException, OSError) as e:
            section.errors.append(f"{load.name} {label} round {r}: {e}")

    columns = [("msklite", "msklite", 1)] + [(p, p, 1) for p in peers]
    if with_rf3:
        columns.append(("msklite RF3", "msklite", 3))
    copies = max(rf for _, _, rf in columns) + 1  # every replica, and the client's buffers
    for r in range(1, rounds + 1):
        shift = (r - 1) % len(columns)
        order = columns[shift:] + columns[:shift]
        for load in loads:
            n = messages_small if load.value_size < 1024 else messages_large
            # one size per load: every broker gets the same preparation
            mib = mib_for_load(n * load.value_size, copies)
            for label, kind, rf in order:
                if warm and r == 1 and load.name in cold_loads:
                    one(label, kind, rf, load, r, Preparation(False, mib))
                one(label, kind, rf, load, r, Preparation(warm, mib))
    _summarise(section, stores, loads, labels, logs)
    section.data["warm"] = warm
    return section


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    return summary([float(x[key]) for x in runs])["median"]


RATIOS = (("msklite", "mock"), ("msklite", "tansu"), ("msklite RF3", "mock"))


def _summarise(
    section: Section,
    stores: dict[str, dict[str, dict[str, list[dict[str, Any]]]]],
    loads: tuple[Load, ...],
    labels: list[str],
    logs: list[dict[str, Any]],
) -> None:
    medians: dict[str, dict[str, dict[str, float | None]]] = {}
    for kind, store in stores.items():
        for load in loads:
            row: dict[str, float | None] = {}
            for label in labels:
                runs = store[label].get(load.name, [])
                row[label] = _median(runs, "msg_per_s") if runs else None
            if all(v is None for v in row.values()):
                continue
            ratios: dict[str, float | None] = {}
            for mine, peer in RATIOS:
                a, b = row.get(mine), row.get(peer)
                if a and b:
                    ratios[f"{mine}/{peer}"] = a / b
            medians.setdefault(kind, {})[load.name] = row | {
                f"ratio {k}": v for k, v in ratios.items()
            }
            cells = "  ".join(
                f"{label} {'-' if v is None else f'{v / 1000:.0f}k'}" for label, v in row.items()
            )
            ratio_text = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items() if v is not None)
            name = f"produce {load.name} cold" if kind == "produce cold" else f"{kind} {load.name}"
            section.row(name, "msg/s", f"{cells}; {ratio_text}")
    cpu: dict[str, dict[str, float | None]] = {}
    sys_share: dict[str, dict[str, float | None]] = {}
    for kind in ("produce", "produce cold"):
        cpu[kind], sys_share[kind] = {}, {}
        for label in labels:
            runs = [
                x
                for load in loads
                if load.value_size == 1024
                for x in stores[kind][label].get(load.name, [])
            ]
            total = sum(x["broker_cpu_s"] for x in runs)
            cpu[kind][label] = summary([x["broker_cpu_s_per_gib"] for x in runs])["median"]
            sys_share[kind][label] = sum(x["broker_sys_s"] for x in runs) / total if total else None
        if all(v is None for v in cpu[kind].values()):
            continue
        section.row(
            f"broker CPU-s per GiB (1 KiB loads{', cold' if kind == 'produce cold' else ''})",
            "",
            "  ".join(
                f"{k} {'-' if v is None else f'{v:.1f}'}"
                + (
                    ""
                    if sys_share[kind][k] is None
                    else f" ({100 * (sys_share[kind][k] or 0):.0f}% sys)"
                )
                for k, v in cpu[kind].items()
            ),
        )
    section.data = {
        "loads": [load.__dict__ | {"name": load.name} for load in loads],
        "columns": labels,
        "median_msg_per_s": medians,
        "broker_cpu_s_per_gib_1kib": cpu["produce"],
        "broker_sys_share_1kib": sys_share["produce"],
        "broker_cpu_s_per_gib_1kib_cold": cpu["produce cold"],
        "produce": stores["produce"],
        "produce_cold": stores["produce cold"],
        "consume": stores["consume"],
        "rdkafka_logs": logs,
    }
