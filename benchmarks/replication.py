"""Replication figures (issue 4): acks=1 vs acks=all at RF 3, failover time, follower
catch-up rate.

- acks: the confluent-kafka producer of `throughput.py` (1 partition, linger.ms=5) into a
  `msklite serve` process, RF 3 topic, acks=1 and acks=all runs interleaved.
- failover: an in-process 3-broker cluster; the leader of an RF 3 partition is stopped and a
  client polls Metadata until another leader shows. Reported: the stop_broker call itself and
  the time from calling it to the first Metadata answer naming the new leader.
- catch-up: a follower is stopped, `catchup_mb` of 1 KiB records are produced (acks=1), the
  follower restarts, and the time until its log end offset equals the leader's gives MB/s.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from benchmarks.procs import BenchError
from benchmarks.report import Section, summary
from benchmarks.throughput import RdkafkaLog, _run_msklite
from msklite import Cluster


def _acks(messages: int, rounds: int, value_size: int, timeout: float) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"1": [], "all": []}
    errors: list[str] = []
    for r in range(rounds):
        for acks in runs:
            log = RdkafkaLog()
            try:
                result = _run_msklite(messages, value_size, 5, timeout, 3, "default", log, acks, 3)
            except (BenchError, KafkaException, OSError) as e:
                errors.append(f"acks={acks} round {r + 1}: {e!r}")
                continue
            finally:
                log.detach()
            runs[acks].append(result)
    return {"runs": runs, "errors": errors}


def _failover(repeats: int) -> dict[str, list[float]]:
    stop_calls, visible = [], []
    for _ in range(repeats):
        with Cluster(brokers=3) as cluster:
            cluster.create_topic("failover")
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
            old = cluster.partition("failover", 0).leader
            t0 = time.perf_counter()
            cluster.stop_broker(old)
            stop_calls.append(time.perf_counter() - t0)
            while True:
                md = admin.list_topics("failover", timeout=5)
                leader = md.topics["failover"].partitions[0].leader
                if leader not in (-1, old):
                    visible.append(time.perf_counter() - t0)
                    break
    return {"stop_broker_s": stop_calls, "metadata_s": visible}


def _catchup(megabytes: int) -> dict[str, float]:
    with Cluster(brokers=3) as cluster:
        cluster.create_topic("catchup", configs={"min.insync.replicas": "1"})
        view = cluster.partition("catchup", 0)
        follower = next(r for r in view.replicas if r != view.leader)
        cluster.stop_broker(follower)
        p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 5})
        value = b"x" * 1024
        for _ in range(megabytes * 1024):
            while True:
                try:
                    p.produce("catchup", value)
                    break
                except BufferError:
                    p.poll(0.001)
        if p.flush(60):
            raise BenchError("catch-up fill not delivered")
        target = cluster.partition("catchup", 0).log_end_offsets[view.leader]
        t0 = time.perf_counter()
        cluster.start_broker(follower)
        while cluster.partition("catchup", 0).log_end_offsets.get(follower, -1) < target:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
    return {"mb": float(megabytes), "seconds": elapsed, "mb_per_s": megabytes * 1.048576 / elapsed}


def run(messages: int, rounds: int, value_size: int, timeout: float, quick: bool) -> Section:
    section = Section("replication")
    acks = _acks(messages, rounds, value_size, timeout)
    section.errors += acks["errors"]
    failover = _failover(3 if quick else 7)
    catchup = _catchup(50 if quick else 200)
    med = {k: summary([x["msg_per_s"] for x in v])["median"] for k, v in acks["runs"].items()}
    section.data = {"acks": acks["runs"], "failover": failover, "catchup": catchup}
    for k in ("1", "all"):
        rate = med[k]
        section.row(
            f"RF 3 acks={k} msg/s",
            "failed" if rate is None else f"{rate:,.0f}",
            f"median of {len(acks['runs'][k])}, {value_size} B records",
        )
    if med["1"] and med["all"]:
        section.row("acks=all / acks=1", f"{med['all'] / med['1']:.2f}", "same run")
    section.row(
        "stop_broker call",
        f"{(summary(failover['stop_broker_s'])['median'] or 0) * 1000:.1f} ms",
        "median: listeners closed, leaders moved",
    )
    section.row(
        "stop -> new leader in Metadata",
        f"{(summary(failover['metadata_s'])['median'] or 0) * 1000:.1f} ms",
        "median, client-side polling",
    )
    section.row(
        "follower catch-up", f"{catchup['mb_per_s']:.0f} MB/s", f"{catchup['mb']:.0f} MiB behind"
    )
    return section
