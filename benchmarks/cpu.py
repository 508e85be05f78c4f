"""CPU per request on msklite's produce path, by measures that other load on the machine does
not change: `python -m benchmarks.cpu [--requests N] [--top K]`.

An in-process 3-broker `Cluster` and a raw client share one event loop (no threads); the
client keeps one Produce v8 request in flight (one pre-encoded v2 batch of ≈ 1 KiB records)
and, for the latency path, a consumer with one Fetch v11 parked at the log end (max_wait
500 ms) that the produce's high watermark wakes. For each path, after a warm-up:

- function calls per request, all of them and those in msklite's own code (cProfile:
  deterministic for a given code path, whatever the machine is doing), and the functions
  called most per request (`--top`);
- CPU per request (`time.process_time`, without the profiler): the broker and this small
  client together, so compare builds with it rather than read it as the broker's alone.

Paths: RF 1 acks=1 and RF 3 acks=all with 16 KiB batches (the throughput loads), and
RF 3 acks=all with 48 KiB batches and a consumer (≈ what 50,000 records/s of 1 KiB with
linger.ms=1 sends per request: the latency load).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.loadgen import make_batch
from benchmarks.wire import (
    FETCH_KEY,
    FETCH_VERSION,
    PRODUCE_KEY,
    PRODUCE_VERSION,
    fetch_body,
    parse_fetch_v11,
    parse_produce_v8,
    produce_body_prefix,
    request_header,
)
from msklite import Cluster

_SIZE = struct.Struct(">i")


@dataclass(frozen=True)
class Path:
    name: str
    replication_factor: int
    acks: int
    batch_bytes: int
    consumer: bool = False

    @property
    def topic(self) -> str:
        return f"cpu-rf{self.replication_factor}-{self.batch_bytes}-{int(self.consumer)}"


PATHS = (
    Path("RF 1 acks=1, 16 KiB batches", 1, 1, 16 << 10),
    Path("RF 3 acks=all, 16 KiB batches", 3, -1, 16 << 10),
    Path("RF 3 acks=all, 48 KiB batches, consumer", 3, -1, 48 << 10, consumer=True),
)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.correlation = 0

    async def call(self, api_key: int, version: int, body: list[bytes]) -> bytes:
        self.correlation += 1
        size = sum(len(b) for b in body)
        self.writer.writelines([request_header(api_key, version, self.correlation, size), *body])
        (n,) = _SIZE.unpack(await self.reader.readexactly(4))
        return await self.reader.readexactly(n)

    def close(self) -> None:
        self.writer.close()


async def _connect(cluster: Cluster, topic: str) -> _Conn:
    assert cluster.controller is not None
    leader = cluster.controller.topics[topic].partitions[0].leader
    info = next(i for i in cluster.infos if i.node_id == leader)
    return _Conn(*await asyncio.open_connection(info.host, info.port))


class _Load:
    """One path's client: `run(n)` sends n produce requests one after the other (and, with a
    consumer, reads each produced batch through a parked fetch)."""

    def __init__(self, path: Path, producer: _Conn, consumer: _Conn | None) -> None:
        self.path = path
        self.batch, _ = make_batch(path.batch_bytes)
        self.prefix = produce_body_prefix(path.topic, 0, path.acks, 30000, len(self.batch))
        self.producer, self.consumer = producer, consumer
        self.fetch_offset = 0

    async def _fetch(self) -> None:
        assert self.consumer is not None
        body = fetch_body(self.path.topic, 0, self.fetch_offset, 1 << 20, max_wait_ms=500)
        answer = parse_fetch_v11(await self.consumer.call(FETCH_KEY, FETCH_VERSION, [body]))
        if answer.error_code or answer.records_bytes == 0:
            raise RuntimeError(f"fetch: error {answer.error_code}, {answer.records_bytes} B")
        self.fetch_offset = answer.high_watermark

    async def _produce(self) -> None:
        answer = await self.producer.call(PRODUCE_KEY, PRODUCE_VERSION, [self.prefix, self.batch])
        _, error, _ = parse_produce_v8(answer)
        if error:
            raise RuntimeError(f"produce: error {error}")

    async def run(self, n: int) -> None:
        for _ in range(n):
            if self.consumer is None:
                await self._produce()
            else:
                # the fetch parks first (at the log end), as a consumer's does
                fetch = asyncio.ensure_future(self._fetch())
                await asyncio.sleep(0)
                await self._produce()
                await fetch


def _per_request(stats: pstats.Stats, n: int, top: int) -> dict[str, Any]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = own = 0
    rows: list[tuple[int, str]] = []
    for (filename, line, func), (_cc, ncalls, *_rest) in raw.items():
        total += ncalls
        if "/msklite/" in filename:
            own += ncalls
            short = filename[filename.rindex("/msklite/") + 1 :]
            rows.append((ncalls, f"{short}:{line}({func})"))
    rows.sort(reverse=True)
    return {
        "calls_per_request": total / n,
        "msklite_calls_per_request": own / n,
        "top": [(calls / n, where) for calls, where in rows[:top]],
    }


async def measure(path: Path, requests: int, top: int) -> dict[str, Any]:
    async with Cluster(brokers=3) as cluster:
        assert cluster.controller is not None
        configs = {"min.insync.replicas": "1"} if path.replication_factor == 1 else {}
        cluster.controller.create_topic(path.topic, 1, path.replication_factor, None, configs)
        producer = await _connect(cluster, path.topic)
        consumer = await _connect(cluster, path.topic) if path.consumer else None
        load = _Load(path, producer, consumer)
        try:
            await load.run(200)  # warm-up: connections, caches, first segment pages
            t0 = time.process_time()
            await load.run(requests)
            cpu = time.process_time() - t0
            profile = cProfile.Profile()
            profile.enable()
            await load.run(requests)
            profile.disable()
        finally:
            producer.close()
            if consumer is not None:
                consumer.close()
    return {"cpu_us_per_request": cpu / requests * 1e6} | _per_request(
        pstats.Stats(profile), requests, top
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpu", description=__doc__)
    p.add_argument("--requests", type=int, default=2000, help="requests per path (2000)")
    p.add_argument("--top", type=int, default=0, help="list the K msklite functions called most")
    p.add_argument("--only", type=int, action="append", help="path number (1-3), repeatable")
    args = p.parse_args(argv)
    for i, path in enumerate(PATHS, 1):
        if args.only and i not in args.only:
            continue
        out = asyncio.run(measure(path, args.requests, args.top))
        print(
            f"{i}. {path.name}: {out['calls_per_request']:.0f} calls/request"
            f" ({out['msklite_calls_per_request']:.0f} in msklite),"
            f" {out['cpu_us_per_request']:.0f} us CPU/request (broker and client)",
            flush=True,
        )
        for calls, where in out["top"]:
            print(f"     {calls:6.2f}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
