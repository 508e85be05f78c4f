"""Share-group (KIP-932) consumption against a real `msklite serve --kafka-version 4.2.x`
process, beside a plain consumer group reading the same records:

- one topic, one partition (RF 1), N records of 1 KiB produced once;
- share: two confluent-kafka ShareConsumers in one share group, implicit acknowledgement (each
  poll accepts the previous poll's records), each polled in a thread of its own. The group's
  share partition is set up on the empty topic first (its start offset is the log end then,
  `share.auto.offset.reset=latest`), so the consumers started after the produce read all N;
- plain: two classic-group Consumers (one owns the partition, the other idles, as a group
  with more members than partitions does), `auto.offset.reset=earliest`, no commits.

Each run's clock starts at `subscribe()`; the figure is N divided by the time from the first
record received to the last (steady consumption, joins excluded); the time to the last
record from `subscribe()` is kept too. Every offset must arrive exactly once.

    python -m benchmarks --only share --compare none
"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Consumer, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.procs import BenchError, BrokerProcess, free_port_block, msklite_command
from benchmarks.report import Section, summary

TOPIC = "bench-share"
VALUE = b"x" * 1024


def _produce(bootstrap: str, records: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20})
    for _ in range(records):
        while True:
            try:
                p.produce(TOPIC, VALUE, partition=0)
                break
            except BufferError:
                p.poll(0.01)
    if p.flush(60) != 0:
        raise BenchError("produce did not complete")


def _drain(consumers: list[Any], records: int, timeout: float) -> tuple[float, float]:
    """Poll each consumer in its own thread until every offset arrived once: (first record,
    last record) times, from the start of the call."""
    seen: set[int] = set()
    duplicates: list[int] = []
    lock = threading.Lock()
    first: list[float] = []
    last = [0.0]
    start = time.perf_counter()
    deadline = start + timeout
    stop = threading.Event()

    def pump(c: Any, share: bool) -> None:
        while not stop.is_set() and time.perf_counter() < deadline:
            msgs = c.poll(0.1) if share else c.consume(500, 0.1)
            if not msgs:
                continue
            now = time.perf_counter()
            with lock:
                for m in msgs:
                    if m.error() is not None:
                        continue
                    if m.offset() in seen:
                        duplicates.append(m.offset())
                    seen.add(m.offset())
                if not first:
                    first.append(now)
                last[0] = now
                if len(seen) >= records:
                    stop.set()

    threads = [
        threading.Thread(target=pump, args=(c, isinstance(c, ShareConsumer)), daemon=True)
        for c in consumers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(seen) < records:
        raise BenchError(f"{len(seen)} of {records} records arrived within {timeout} s")
    if duplicates:
        raise BenchError(f"{len(duplicates)} records arrived twice")
    return first[0] - start, last[0] - start


def _share_once(bootstrap: str, group: str, records: int, timeout: float) -> tuple[float, float]:
    consumers = [ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group}) for _ in "ab"]
    try:
        for c in consumers:
            c.subscribe([TOPIC])
        return _drain(consumers, records, timeout)
    finally:
        for c in consumers:
            c.close()


def _plain_once(bootstrap: str, group: str, records: int, timeout: float) -> tuple[float, float]:
    consumers = [
        Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        for _ in "ab"
    ]
    try:
        for c in consumers:
            c.subscribe([TOPIC])
        return _drain(consumers, records, timeout)
    finally:
        for c in consumers:
            c.close()


def _init_share_groups(bootstrap: str, groups: list[str], timeout: float) -> None:
    """Set each share group's partition up at offset 0 of the empty topic, then leave."""
    for group in groups:
        c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            c.subscribe([TOPIC])
            deadline = time.perf_counter() + timeout
            # a few empty polls: the first ShareFetch sets the partition's start offset up
            for _ in range(5):
                c.poll(0.2)
                if time.perf_counter() > deadline:
                    raise BenchError(f"share group {group} did not start")
        finally:
            c.close()


def run(records: int, rounds: int, timeout: float = 120.0) -> Section:
    section = Section("share")
    base = free_port_block(1)
    argv = msklite_command(1, base)
    argv += ["--kafka-version", "4.2.x", "--config", "group.initial.rebalance.delay.ms=0"]
    rates: dict[str, list[float]] = {"share": [], "plain": []}
    totals: dict[str, list[float]] = {"share": [], "plain": []}
    with BrokerProcess("msklite", argv) as broker:
        _, line = broker.wait_line("Bootstrap servers:", timeout)
        bootstrap = line.split(":", 1)[1].strip()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(timeout)
        share_groups = [f"bench-share-{r}" for r in range(rounds)]
        try:
            _init_share_groups(bootstrap, share_groups, timeout)
            _produce(bootstrap, records)
            for r in range(rounds):
                for kind in ("share", "plain"):
                    if kind == "share":
                        first, last = _share_once(bootstrap, share_groups[r], records, timeout)
                    else:
                        first, last = _plain_once(bootstrap, f"bench-plain-{r}", records, timeout)
                    rates[kind].append(records / max(last - first, 1e-9))
                    totals[kind].append(last)
        except BenchError as e:
            section.errors.append(str(e))
        broker.check_alive()
    section.data = {
        "records": records,
        "record_bytes": len(VALUE),
        "rounds": rounds,
        "records_per_s": {k: summary(v) for k, v in rates.items()},
        "subscribe_to_last_s": {k: summary(v) for k, v in totals.items()},
        "raw": {"rates": rates, "totals": totals},
    }
    labels = {
        "share": "share group, 2 ShareConsumers, implicit ack",
        "plain": "consumer group, 2 members (1 active)",
    }
    for kind, values in rates.items():
        s = summary(values)
        t = summary(totals[kind])
        if s["median"] is not None and t["median"] is not None:
            section.row(
                f"records/s, 1 KiB, 1 partition: {labels[kind]}",
                f"{s['median']:,.0f}",
                f"median of {len(values)} x {records}; subscribe -> last {t['median']:.2f} s",
            )
    return section
