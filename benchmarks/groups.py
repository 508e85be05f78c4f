"""Consumer-group figures against a real `msklite serve` process:

- rebalance latency: N confluent-kafka consumers (N = 1, 3, 10) subscribe to a 12-partition
  topic under a fresh group id; the clock runs from the last `subscribe()` call until every
  consumer holds its share and the shares cover every partition exactly once. The server runs
  with the pytest fixture's `group.initial.rebalance.delay.ms` (100 ms), so the figure includes
  that deliberate wait (and its one extension when later members arrive within it).
- commit throughput: one consumer with an assigned partition (no group membership) commits a
  new offset per call, synchronously (one round trip each) and asynchronously (pipelined, then
  waiting for every commit callback).
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.procs import BenchError, BrokerProcess, free_port_block, msklite_command
from benchmarks.report import Section, ms, summary

PARTITIONS = 12
REBALANCE_DELAY_MS = 100  # msklite.testing.plugin's fixture value
TOPIC = "bench-groups"


def _consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return Consumer(conf)


def _rebalance_once(bootstrap: str, group: str, members: int, timeout: float) -> float:
    consumers = [_consumer(bootstrap, group) for _ in range(members)]
    try:
        for c in consumers:
            c.subscribe([TOPIC])
        start = time.perf_counter()
        deadline = start + timeout
        while True:
            owned = [{tp.partition for tp in c.assignment()} for c in consumers]
            if (
                all(owned)
                and sum(map(len, owned)) == PARTITIONS
                and set().union(*owned) == set(range(PARTITIONS))
            ):
                return time.perf_counter() - start
            if time.perf_counter() > deadline:
                raise BenchError(f"{members} members: no full assignment within {timeout} s")
            for c in consumers:
                c.poll(0.002)
    finally:
        for c in consumers:
            c.close()


def _commits(bootstrap: str, count: int, asynchronous: bool) -> float:
    done: list[int] = []
    c = _consumer(
        bootstrap,
        f"bench-commit-{'async' if asynchronous else 'sync'}",
        on_commit=lambda err, _parts: done.append(0 if err is None else 1),
    )
    try:
        c.assign([TopicPartition(TOPIC, 0)])
        c.commit(offsets=[TopicPartition(TOPIC, 0, 0)], asynchronous=False)  # warm-up
        c.poll(0)
        done.clear()
        start = time.perf_counter()
        if asynchronous:
            for i in range(1, count + 1):
                c.commit(offsets=[TopicPartition(TOPIC, 0, i)], asynchronous=True)
            while len(done) < count:
                c.poll(0.01)
        else:
            for i in range(1, count + 1):
                # raises on error, and reports to no callback
                c.commit(offsets=[TopicPartition(TOPIC, 0, i)], asynchronous=False)
        elapsed = time.perf_counter() - start
        if any(done):
            raise BenchError(f"{sum(done)} commits failed")
        committed = c.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset
        if committed != count:
            raise BenchError(f"committed offset {committed}, expected {count}")
        return count / elapsed
    finally:
        c.close()


def run(rounds: int, commits: int, timeout: float = 60.0, loop: str = "default") -> Section:
    section = Section("groups")
    base = free_port_block(3)
    argv = msklite_command(3, base, loop)
    argv += ["--config", f"group.initial.rebalance.delay.ms={REBALANCE_DELAY_MS}"]
    latencies: dict[int, list[float]] = {1: [], 3: [], 10: []}
    rates: dict[str, list[float]] = {"sync": [], "async": []}
    with BrokerProcess("msklite", argv) as broker:
        _, line = broker.wait_line("Bootstrap servers:", timeout)
        bootstrap = line.split(":", 1)[1].strip()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout)
        try:
            for r in range(rounds):
                for n in latencies:
                    latencies[n].append(_rebalance_once(bootstrap, f"bench-{n}-{r}", n, timeout))
                for mode in rates:
                    rates[mode].append(_commits(bootstrap, commits, mode == "async"))
        except (BenchError, KafkaException) as e:
            section.errors.append(str(e))
        broker.check_alive()
    section.data = {
        "rounds": rounds,
        "commits_per_run": commits,
        "rebalance_delay_ms": REBALANCE_DELAY_MS,
        "partitions": PARTITIONS,
        "last_join_to_assigned_s": {str(n): summary(v) for n, v in latencies.items()},
        "commits_per_s": {m: summary(v) for m, v in rates.items()},
        "raw": {"latencies": latencies, "rates": rates},
    }
    for n, values in latencies.items():
        s = summary(values)
        section.row(
            f"last join -> all assigned, {n} member{'s' if n > 1 else ''}",
            ms(s["median"]),
            f"median of {len(values)}, min {ms(s['min'])}; {REBALANCE_DELAY_MS} ms initial delay",
        )
    for mode, values in rates.items():
        s = summary(values)
        if s["median"] is not None:
            section.row(
                f"offset commits/s, one client, {mode}",
                f"{s['median']:,.0f}",
                f"median of {len(values)} x {commits} commits",
            )
    return section
