"""The brokers under comparison, started the same way for every load.

- msklite: `python -m msklite serve --ephemeral --brokers 3 --port 0`; topics are created with
  the confluent `AdminClient` (CreateTopics), at the replication factor asked for;
- mock: librdkafka's mock cluster (`rdkafka_mock_broker.py` in the peers directory), 3 brokers,
  topics passed on its command line (it has no CreateTopics);
- tansu: Tansu 0.6.0, one broker, memory storage (`tansu_broker.py` in the peers directory),
  topics created by the launcher; replication factor 1 only.
The peers directory is `../shared/peers` beside the repository, or `--peers-dir`.

A `Target` hides those differences: bootstrap string, and CPU/RSS of the process that does the
broker's work (for Tansu the `tansu` child of the Python launcher, not the launcher).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from benchmarks.procs import (
    BenchError,
    BrokerProcess,
    cpu_times,
    free_port_block,
    mock_command,
    msklite_command,
    rss_kib,
    tansu_command,
)
from benchmarks.wire import PartitionMeta, metadata_full

KINDS = ("msklite", "mock", "tansu")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


@dataclass
class Target:
    kind: str
    label: str  # kind, plus " RF 3" style detail when a load needs it
    bootstrap: str
    process: BrokerProcess
    pid: int  # where the broker's CPU and memory are accounted

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.pid)

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def check_alive(self) -> None:
        self.process.check_alive()

    def first_address(self) -> tuple[str, int]:
        host, port = self.bootstrap.split(",")[0].rsplit(":", 1)
        return host, int(port)

    def metadata(
        self, timeout: float = 10.0
    ) -> tuple[dict[int, tuple[str, int]], dict[str, list[PartitionMeta]]]:
        """(broker id -> address, topic -> partitions) from a raw Metadata v1 request."""
        with socket.create_connection(self.first_address(), timeout=timeout) as sock:
            meta, topics = metadata_full(sock)
        return {b[0]: (b[1], b[2]) for b in meta.brokers}, topics

    def leaders(self, topic: str, timeout: float = 10.0) -> list[tuple[str, int]]:
        """Address of each partition's leader, by partition index; waits until all have one."""
        deadline = time.monotonic() + timeout
        while True:
            brokers, topics = self.metadata(timeout)
            parts = sorted(topics.get(topic, []), key=lambda p: p.index)
            if parts and all(p.leader in brokers and not p.error_code for p in parts):
                return [brokers[p.leader] for p in parts]
            if time.monotonic() > deadline:
                raise BenchError(f"{self.label}: topic {topic} has no leaders after {timeout} s")
            time.sleep(0.05)


def create_topics(
    bootstrap: str, topics: Sequence[TopicSpec], timeout: float = 60.0
) -> dict[str, float]:
    """CreateTopics through the confluent AdminClient; returns seconds per call (all topics)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    t0 = time.perf_counter()
    # MSK's default min.insync.replicas=2 would make acks=all fail on an RF 1 topic
    # (NOT_ENOUGH_REPLICAS, retried until the message times out), as it does on MSK
    new = [
        NewTopic(
            t.name,
            t.partitions,
            t.replication_factor,
            config={"min.insync.replicas": "1"} if t.replication_factor < 2 else {},
        )
        for t in topics
    ]
    futures = admin.create_topics(
        new,
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    try:
        for f in futures.values():
            f.result(timeout=timeout)
    except (KafkaException, TimeoutError) as e:
        raise BenchError(f"CreateTopics failed: {e!r}") from e
    return {"create_topics_s": time.perf_counter() - t0}


@contextlib.contextmanager
def start(
    kind: str,
    topics: Sequence[TopicSpec] = (),
    *,
    brokers: int = 3,
    loop: str = "default",
    label: str | None = None,
    start_timeout: float = 60.0,
) -> Iterator[Target]:
    """A running broker of `kind` with `topics`, stopped (for sure) on leaving the block."""
    if kind == "msklite":
        argv = msklite_command(brokers, 0, loop)
        prefix = "Bootstrap servers:"
    elif kind == "mock":
        argv = mock_command(
            brokers, [f"{t.name}:{t.partitions}:{t.replication_factor}" for t in topics]
        )
        prefix = "BOOTSTRAP "
    elif kind == "tansu":
        if any(t.replication_factor != 1 for t in topics):
            raise BenchError("tansu runs one broker: replication factor 1 only")
        argv = tansu_command(free_port_block(1), [f"{t.name}:{t.partitions}" for t in topics])
        prefix = "BOOTSTRAP "
    else:
        raise ValueError(f"unknown broker kind {kind!r}")
    with BrokerProcess(kind, argv) as proc:
        _, line = proc.wait_line(prefix, start_timeout)
        bootstrap = line[len(prefix) :].strip()
        if kind == "msklite" and topics:
            create_topics(bootstrap, topics, start_timeout)
        target = Target(kind, label or kind, bootstrap, proc, proc.worker_pid())
        for t in topics:
            target.leaders(t.name, start_timeout)
        yield target
