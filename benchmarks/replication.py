"""Replication figures: failover time, follower catch-up rate. (Producer rates at
RF 3 with acks=1 and acks=all are in the `throughput` section.)

- failover: an in-process 3-broker cluster; the leader of an RF 3 partition is stopped and a
  client polls Metadata until another leader shows. Reported: the stop_broker call itself and
  the time from calling it to the first Metadata answer naming the new leader.
- catch-up: a follower is stopped, `catchup_mb` of 1 KiB records are produced (acks=1), the
  follower restarts, and the time until its log end offset equals the leader's gives MB/s.
"""

from __future__ import annotations

import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from benchmarks.procs import BenchError
from benchmarks.report import Section, summary
from msklite import Cluster


def _failover(repeats: int) -> dict[str, list[float]]:
    stop_calls, visible = [], []
    for _ in range(repeats):
        with Cluster(brokers=3) as cluster:
            cluster.create_topic("failover")
            # log_level 0: the stopped broker's refused connections are expected here
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers, "log_level": 0})
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
        p = Producer(
            {"bootstrap.servers": cluster.bootstrap_servers, "linger.ms": 5, "log_level": 0}
        )
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


def run(quick: bool) -> Section:
    section = Section("replication")
    failover = _failover(3 if quick else 7)
    catchup = _catchup(50 if quick else 200)
    section.data = {"failover": failover, "catchup": catchup}
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
