"""Scale: many partitions over 3 brokers, and many idle connections.

partitions — one `msklite serve --brokers 3` process (and the mock, for context):
- creation: `partitions` partitions at replication factor `rf`, as topics of `chunk`
  partitions each, one CreateTopics call (confluent AdminClient) per topic; the time of each
  call is recorded. Every replica costs the broker open files; before each call the broker's
  open file count and its RLIMIT_NOFILE are read from /proc and, when the next topic would
  not fit (at the files-per-replica rate seen so far, keeping room for connections), creation
  stops there and the shortfall is reported instead of letting the broker fail.
- Metadata: raw Metadata v1 requests for all topics on a connection opened beforehand; the
  first answer after creation (cold caches), then, SETTLE_S later, the median of
  `metadata_repeats` more (cached): the brokers open the last topic's replicas on later turns
  of their loop after CreateTopics answers (≈60 ms here), which the first answer meets and
  the cached figure is not about.
- produce to all: a confluent producer (acks=all, linger.ms=5) sends one 100-byte record to
  every partition created; time from the first produce() to the last delivery.
connections — a fresh msklite process with no topics: `connections` TCP connections spread
over its 3 brokers, each sends ApiVersions and reads the answer, and all stay open; measured:
the broker's RSS before and after, a Metadata round trip on a new connection while they are
held, and that every held connection still answers.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from benchmarks import targets
from benchmarks.procs import BenchError
from benchmarks.report import Section
from benchmarks.targets import Target, TopicSpec, create_topics
from benchmarks.throughput import RdkafkaLog, reporting_producer
from benchmarks.wire import (
    api_versions,
    metadata_full,
    metadata_v1_request,
    parse_metadata_v1_full,
    recv_frame,
)

FD_HEADROOM = 300  # files kept free for connections, checkpoints and the like
SETTLE_S = 0.5


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limit(pid: int) -> int:
    """The soft RLIMIT_NOFILE of a live process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise BenchError(f"no open-files limit for pid {pid}")


def _metadata_times(sock: socket.socket, repeats: int) -> dict[str, Any]:
    times, sizes = [], []
    partitions = 0
    for i in range(repeats + 1):
        if i == 1:
            time.sleep(SETTLE_S)
        t0 = time.perf_counter()
        sock.sendall(metadata_v1_request(1000 + i))
        frame = recv_frame(sock)
        times.append(time.perf_counter() - t0)
        sizes.append(len(frame) + 4)
        if i == 0:  # parsed after the clock stopped
            _meta, topics = parse_metadata_v1_full(frame)
            partitions = sum(len(p) for p in topics.values())
    return {
        "first_s": times[0],
        "median_s": statistics.median(times[1:]) if repeats else times[0],
        "all_s": times,
        "response_bytes": sizes[0],
        "partitions_listed": partitions,
    }


def _create(target: Target, partitions: int, rf: int, chunk: int, timeout: float) -> dict[str, Any]:
    limit = nofile_limit(target.pid)
    files0 = open_files(target.pid)
    created = 0
    calls: list[dict[str, Any]] = []
    per_replica: float | None = None
    stopped: str | None = None
    while created < partitions:
        n = min(chunk, partitions - created)
        files = open_files(target.pid)
        if per_replica is not None and files + per_replica * n * rf + FD_HEADROOM > limit:
            stopped = (
                f"stopped at {created:,} partitions: {per_replica:.1f} open files per replica,"
                f" {files:,} open, limit {limit:,}; {partitions:,} x RF {rf} would need"
                f" ≈{files0 + per_replica * partitions * rf:,.0f}"
            )
            break
        spec = TopicSpec(f"scale-{len(calls)}", n, rf)
        seconds = create_topics(target.bootstrap, [spec], timeout)["create_topics_s"]
        created += n
        calls.append({"partitions": n, "seconds": seconds})
        per_replica = (open_files(target.pid) - files0) / (created * rf)
    return {
        "requested": partitions,
        "created": created,
        "rf": rf,
        "calls": calls,
        "seconds": sum(c["seconds"] for c in calls),
        "open_files_before": files0,
        "open_files_after": open_files(target.pid),
        "nofile_limit": limit,
        "files_per_replica": per_replica,
        "stopped": stopped,
        "rss_kib": target.rss_kib(),
    }


def _produce_all(target: Target, topics: dict[str, int], timeout: float) -> dict[str, Any]:
    log = RdkafkaLog()
    failures: list[str] = []
    producer = reporting_producer(
        target,
        log,
        failures,
        {"acks": "all", "linger.ms": 5, "message.timeout.ms": int(timeout * 1000)},
    )
    try:
        for topic in topics:
            producer.list_topics(topic, timeout=timeout)
        value = b"x" * 100
        t0 = time.perf_counter()
        total = 0
        for topic, n in topics.items():
            for p in range(n):
                while True:
                    try:
                        producer.produce(topic, value, partition=p)
                        break
                    except BufferError:
                        producer.poll(0.001)
                total += 1
        left = producer.flush(timeout)
        elapsed = time.perf_counter() - t0
    finally:
        log.detach()
    if left or failures:
        raise BenchError(f"produce to all: {left} undelivered, {len(failures)} failed")
    return {"records": total, "seconds": elapsed, "rdkafka_warnings": log.warnings}


def _partitions(
    partitions: int, rf: int, chunk: int, repeats: int, timeout: float, loop: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with targets.start("msklite", [], loop=loop) as target:
        # opened before the topics exist: it keeps working even if the broker runs out of files
        sock = socket.create_connection(target.first_address(), timeout=timeout)
        try:
            out["create"] = _create(target, partitions, rf, chunk, timeout)
            out["metadata"] = _metadata_times(sock, repeats)
        finally:
            sock.close()
        names = {f"scale-{i}": c["partitions"] for i, c in enumerate(out["create"]["calls"])}
        out["produce_all"] = _produce_all(target, names, timeout)
        out["rss_kib_after"] = target.rss_kib()
        target.check_alive()
    return out


def _mock(partitions: int, chunk: int, rf: int, repeats: int, timeout: float) -> dict[str, Any]:
    topics = [
        TopicSpec(f"scale-{i}", min(chunk, partitions - i * chunk), rf)
        for i in range((partitions + chunk - 1) // chunk)
    ]
    with targets.start("mock", topics) as mock:
        with socket.create_connection(mock.first_address(), timeout=30) as sock:
            metadata = _metadata_times(sock, repeats)
        names = {t.name: t.partitions for t in topics}
        return metadata | {"produce_all": _produce_all(mock, names, timeout)}


def _connections(count: int, timeout: float, loop: str) -> dict[str, Any]:
    held: list[socket.socket] = []
    with targets.start("msklite", [], loop=loop) as target:
        brokers, _ = target.metadata()
        addresses = list(brokers.values())
        rss0 = target.rss_kib()
        files0 = open_files(target.pid)
        t0 = time.perf_counter()
        try:
            for i in range(count):
                s = socket.create_connection(addresses[i % len(addresses)], timeout=timeout)
                held.append(s)
                api_versions(s, 1)
            opened = time.perf_counter() - t0
            time.sleep(0.2)
            rss1 = target.rss_kib()
            files1 = open_files(target.pid)
            with socket.create_connection(addresses[0], timeout=timeout) as fresh:
                t1 = time.perf_counter()
                metadata_full(fresh, 7)
                fresh_s = time.perf_counter() - t1
            t2 = time.perf_counter()
            for s in held:  # all at once, then all answers: the broker serves them together
                s.sendall(metadata_v1_request(2))
            answered = sum(1 for s in held if recv_frame(s))
            all_s = time.perf_counter() - t2
        finally:
            for s in held:
                s.close()
        target.check_alive()
    return {
        "connections": count,
        "open_s": opened,
        "rss_kib_before": rss0,
        "rss_kib_held": rss1,
        "rss_kib_per_connection": (rss1 - rss0) / count,
        "broker_open_files": [files0, files1],
        "fresh_metadata_s": fresh_s,
        "all_answered": answered,
        "all_metadata_s": all_s,
    }


def run(
    partitions: int = 10_000,
    rf: int = 3,
    chunk: int = 500,
    connections: int = 1000,
    metadata_repeats: int = 10,
    timeout: float = 120.0,
    loop: str = "default",
    with_mock: bool = True,
) -> Section:
    section = Section("scale")
    data: dict[str, Any] = {"partitions_requested": partitions, "rf": rf, "chunk": chunk}
    try:
        data["msklite"] = _partitions(partitions, rf, chunk, metadata_repeats, timeout, loop)
    except (BenchError, KafkaException, OSError) as e:
        section.errors.append(f"partitions: {e}")
    if with_mock:
        try:
            data["mock"] = _mock(partitions, chunk, rf, metadata_repeats, timeout)
        except (BenchError, KafkaException, OSError) as e:
            section.errors.append(f"mock metadata: {e}")
    try:
        data["connections"] = _connections(connections, timeout, loop)
    except (BenchError, OSError) as e:
        section.errors.append(f"connections: {e}")
    section.data = data
    m = data.get("msklite")
    if m:
        c = m["create"]
        per_call = c["seconds"] / max(len(c["calls"]), 1)
        section.row(
            f"create {c['created']:,} partitions (RF {rf})",
            f"{c['seconds']:.1f} s",
            f"{len(c['calls'])} CreateTopics of {chunk}, {per_call:.2f} s each; "
            f"{c['files_per_replica'] or 0:.1f} open files per replica, "
            f"RSS {c['rss_kib'] / 1024:.0f} MiB",
        )
        if c["stopped"]:
            section.errors.append(c["stopped"])
        md = m["metadata"]
        section.row(
            f"Metadata, all {md['partitions_listed']:,} partitions",
            f"{md['median_s'] * 1000:.2f} ms",
            f"median of {metadata_repeats}; first after creation {md['first_s'] * 1000:.1f} ms;"
            f" {md['response_bytes'] / 1024:.0f} KiB",
        )
        pa = m["produce_all"]
        section.row(
            f"produce 1 record to each of {pa['records']:,}",
            f"{pa['seconds'] * 1000:.0f} ms",
            "acks=all, confluent producer, first produce() to last delivery",
        )
    mm = data.get("mock")
    if mm:
        section.row(
            f"mock Metadata, all {mm['partitions_listed']:,} partitions",
            f"{mm['median_s'] * 1000:.2f} ms",
            f"median of {metadata_repeats}; {mm['response_bytes'] / 1024:.0f} KiB",
        )
        section.row(
            f"mock: produce 1 record to each of {mm['produce_all']['records']:,}",
            f"{mm['produce_all']['seconds'] * 1000:.0f} ms",
            "the same client and load, for context",
        )
    cn = data.get("connections")
    if cn:
        section.row(
            f"{cn['connections']:,} idle connections: RSS",
            f"{cn['rss_kib_held'] / 1024:.1f} MiB",
            f"from {cn['rss_kib_before'] / 1024:.1f} MiB, "
            f"{cn['rss_kib_per_connection']:.1f} KiB each; opened in {cn['open_s']:.2f} s",
        )
        section.row(
            "  Metadata while they are held",
            f"{cn['fresh_metadata_s'] * 1000:.1f} ms",
            f"new connection; all {cn['all_answered']:,} held ones answered a Metadata"
            f" request in {cn['all_metadata_s'] * 1000:.0f} ms",
        )
    return section
