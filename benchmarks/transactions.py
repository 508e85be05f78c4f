"""Transactions: a transactional confluent-kafka producer into msklite and into the librdkafka
mock cluster (which serves transactions) in the same run, then read_committed against
read_uncommitted consumers on msklite's data.

Loads: 1 KiB values, topics of 1 and 6 partitions at replication factor 3 (msklite:
min.insync.replicas=2, MSK's default; the mock's replicas do no work), acks=all (what a
transactional producer uses), a commit every 1,000 records.

- produce: a fresh broker per (load, broker) run — msklite (3 brokers) or the mock (3
  brokers) — holding just that load's topic. A fresh `Producer` (transactional.id,
  linger.ms=5, no compression) runs `init_transactions()` and one warm-up transaction (a
  record per partition); then the machine is prepared (`warm.py`, the same size for both
  brokers) and the clock runs from the first timed `begin_transaction()` until the last
  `commit_transaction()` returns. Records go round-robin over the partitions. Figure:
  records/s (median of the rounds), and the ratio msklite/mock (target ≥ 0.8).
- consume (msklite only; the mock keeps ≈ 5 MiB per partition): on the data just produced,
  an assigned `Consumer` reads every partition from its start to its end once at
  `isolation.level=read_uncommitted` and once at `read_committed` (the order alternating
  per round), after one warm-up pass; the records seen must be exactly those produced.
  Figure: records/s of each, and read_committed/read_uncommitted (target ≥ 0.9).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from benchmarks import targets
from benchmarks.procs import BenchError
from benchmarks.report import Section, summary
from benchmarks.targets import TopicSpec
from benchmarks.throughput import RdkafkaLog, reporting_producer
from benchmarks.warm import Preparation, mib_for_load

VALUE_SIZE = 1024
RF = 3
PER_TXN = 1000
PEER = "mock"
ISOLATIONS = ("read_uncommitted", "read_committed")


@dataclass(frozen=True)
class Load:
    partitions: int

    @property
    def name(self) -> str:
        return f"1 KiB x{self.partitions}p RF 3 acks=all, commit/{PER_TXN}"

    @property
    def topic(self) -> str:
        return f"txn-{self.partitions}"


LOADS = (Load(1), Load(6))


def produce(
    target: targets.Target,
    load: Load,
    messages: int,
    timeout: float,
    prepare: Preparation,
    log: RdkafkaLog,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    failures: list[str] = []
    producer = reporting_producer(
        target,
        log,
        failures,
        {
            "client.id": "msklite-bench-txn",
            "transactional.id": f"bench-{load.topic}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        },
    )
    value = os.urandom(VALUE_SIZE)
    topic, parts = load.topic, load.partitions

    def left() -> float:
        return max(deadline - time.monotonic(), 0.1)

    producer.init_transactions(left())
    producer.begin_transaction()
    for p in range(parts):  # opens the connection to every leader
        producer.produce(topic, value, partition=p)
    producer.commit_transaction(left())
    preparation = prepare()
    produce_ = producer.produce
    cpu0, t0 = target.cpu_times(), time.perf_counter()
    for i in range(messages):
        if i % PER_TXN == 0:
            if i:
                producer.commit_transaction(left())
            producer.begin_transaction()
            if time.monotonic() > deadline:
                raise BenchError(f"time limit hit after {i} of {messages} records")
        while True:
            try:
                produce_(topic, value, partition=i % parts)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                producer.poll(0.001)
    producer.commit_transaction(left())
    elapsed = time.perf_counter() - t0
    cpu1 = target.cpu_times()
    if failures:
        raise BenchError(f"{len(failures)} delivery failures, first: {failures[0]}")
    cpu = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
    return {
        "elapsed_s": elapsed,
        "msg_per_s": messages / elapsed,
        "transactions": -(-messages // PER_TXN),
        "broker_cpu_s": cpu,
        "broker_cpu_cores": cpu / elapsed,
        "preparation": preparation,
    }


def read_all(
    target: targets.Target, load: Load, isolation: str, expect: int, timeout: float
) -> dict[str, Any]:
    """One pass over every partition, start to end, at `isolation`: records/s."""
    deadline = time.monotonic() + timeout
    consumer = Consumer(
        {
            "bootstrap.servers": target.bootstrap,
            "group.id": "msklite-bench-txn",  # required by librdkafka; assign() uses no group
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "fetch.wait.max.ms": 1,
            "fetch.queue.backoff.ms": 1,
            "log_level": 3,
        }
    )
    try:
        t0 = time.perf_counter()
        consumer.assign([TopicPartition(load.topic, p, 0) for p in range(load.partitions)])
        left, seen = set(range(load.partitions)), 0
        while left:
            if time.monotonic() > deadline:
                raise BenchError(f"{isolation}: time limit hit with {seen} records read")
            for m in consumer.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is None:
                    seen += 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    left.discard(m.partition() or 0)
                else:
                    raise BenchError(f"{isolation}: {err}")
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    if seen != expect:
        raise BenchError(f"{isolation}: read {seen} records, {expect} were produced")
    return {"elapsed_s": elapsed, "messages": seen, "msg_per_s": seen / elapsed}


def run(
    messages: int,
    rounds: int,
    timeout: float = 120.0,
    loop: str = "default",
    with_mock: bool = True,
    warm: bool = True,
) -> Section:
    section = Section("transactions")
    labels = ["msklite", PEER] if with_mock else ["msklite"]
    produced: dict[str, dict[str, list[dict[str, Any]]]] = {x: {} for x in labels}
    consumed: dict[str, dict[str, list[dict[str, Any]]]] = {x: {} for x in ISOLATIONS}
    # every replica, and the client's buffers; the same size for both brokers
    mib = mib_for_load(messages * VALUE_SIZE, RF + 1)
    for r in range(1, rounds + 1):
        order = labels if r % 2 else labels[::-1]
        for load in LOADS:
            for label in order:
                what = f"{load.name} {label} round {r}"
                log = RdkafkaLog()
                try:
                    spec = TopicSpec(load.topic, load.partitions, RF)
                    with targets.start(label, [spec], loop=loop, label=label) as target:
                        out = produce(target, load, messages, timeout, Preparation(warm, mib), log)
                        produced[label].setdefault(load.name, []).append(out | {"round": r})
                        if label != "msklite":
                            continue
                        expect = messages + load.partitions  # + the warm-up transaction
                        read_all(target, load, ISOLATIONS[0], expect, timeout)  # warm-up pass
                        for isolation in ISOLATIONS if r % 2 else ISOLATIONS[::-1]:
                            got = read_all(target, load, isolation, expect, timeout)
                            consumed[isolation].setdefault(load.name, []).append(got)
                        target.check_alive()
                except (BenchError, KafkaException, OSError) as e:
                    first = f" (librdkafka: {log.lines[0]})" if log.lines else ""
                    section.errors.append(f"{what}: {e}{first}")
                finally:
                    log.detach()
                if log.warnings:
                    section.errors.append(f"{what}: {log.warnings} librdkafka warnings")
    _summarise(section, produced, consumed, labels)
    section.data["warm"] = warm
    return section


def _median(runs: list[dict[str, Any]]) -> float | None:
    return summary([float(x["msg_per_s"]) for x in runs])["median"]


def _summarise(
    section: Section,
    produced: dict[str, dict[str, list[dict[str, Any]]]],
    consumed: dict[str, dict[str, list[dict[str, Any]]]],
    labels: list[str],
) -> None:
    produce_rows: dict[str, dict[str, float | None]] = {}
    consume_rows: dict[str, dict[str, float | None]] = {}
    for load in LOADS:
        row = {label: _median(produced[label].get(load.name, [])) for label in labels}
        mine, peer = row.get("msklite"), row.get(PEER)
        ratio = mine / peer if mine and peer else None
        produce_rows[load.name] = row | {f"ratio msklite/{PEER}": ratio}
        cells = "  ".join(f"{k} {'-' if v is None else f'{v / 1000:.1f}k'}" for k, v in row.items())
        section.row(
            f"transactional produce {load.name}",
            "msg/s",
            cells + ("" if ratio is None else f"; msklite/{PEER} {ratio:.2f}"),
        )
        reads = {i: _median(consumed[i].get(load.name, [])) for i in ISOLATIONS}
        committed, uncommitted = reads["read_committed"], reads["read_uncommitted"]
        read_ratio = committed / uncommitted if committed and uncommitted else None
        consume_rows[load.name] = reads | {"ratio committed/uncommitted": read_ratio}
        section.row(
            f"consume {load.name}, msklite",
            "msg/s",
            "  ".join(f"{k} {'-' if v is None else f'{v / 1000:.0f}k'}" for k, v in reads.items())
            + ("" if read_ratio is None else f"; committed/uncommitted {read_ratio:.2f}"),
        )
    section.data = {
        "loads": [load.name for load in LOADS],
        "columns": labels,
        "median_msg_per_s": {"produce": produce_rows, "consume": consume_rows},
        "produce": produced,
        "consume": consumed,
    }
