"""Request timeouts run on the injected clock: an acks=all produce's timeout_ms and a fetch's
max_wait_ms end when a ManualClock is advanced past them, not when wall time passes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from kafka.protocol.consumer.fetch import FetchResponse
from kafka.protocol.producer.produce import ProduceResponse

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode
from msklite.handlers import fetch, produce
from msklite.handlers.context import BrokerContext
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.handlers.metadata_cache import MetadataCache
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Reader
from msklite.protocol.records import encode_batch
from msklite.replication.replica_manager import ReplicaManager
from tests.fakes import NoFetchers
from tests.requests import fetch_request, produce_request


def _context(tmp_path: Path, clock: ManualClock) -> BrokerContext:
    """Broker 1 leads "t" with broker 2 in the ISR, and broker 2 never fetches: acks=all
    can only time out."""
    infos = [BrokerInfo(1, "az1"), BrokerInfo(2, "az2")]
    controller = Controller(infos, BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), None)
    logs = LogManager(str(tmp_path), 1, controller.cluster_id, clock)
    replicas = ReplicaManager(1, controller, logs, clock, NoFetchers())
    controller.on_change(replicas.sync_topic)
    controller.create_topic("t", assignments={0: [1, 2]})

    def no_groups() -> Any:
        raise AssertionError("no group requests here")

    return BrokerContext(
        infos[0],
        controller,
        replicas,
        clock,
        MetadataCache(controller),
        FetchSessionCache(),
        no_groups,
        no_groups,
        {},  # handlers are called directly, not through a connection
    )


async def _call(ctx: BrokerContext, api_key: int, req: Any, version: int) -> asyncio.Task[Any]:
    handler = produce.handle if api_key == 0 else fetch.handle
    header = RequestHeader(api_key, version, 1, "test")
    out = handler(ctx, header, Reader(memoryview(bytes(req.encode(version=version)))))
    assert isinstance(out, Awaitable), "the request should wait"

    async def wait() -> Any:
        return await out

    task = asyncio.get_running_loop().create_task(wait())
    for _ in range(5):
        await asyncio.sleep(0)
    return task


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_acks_all_produce_times_out_on_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    ctx = _context(tmp_path, clock)
    req = produce_request("t", {0: encode_batch([(None, b"v")])}, acks=-1, timeout_ms=30_000)
    task = await _call(ctx, 0, req, 9)
    clock.advance(29_999)
    await _settle()
    assert not task.done()
    clock.advance(1)
    await _settle()
    assert task.done()
    body = b"".join(bytes(b) for b in task.result())
    resp = ProduceResponse.decode(body, version=9)
    p = resp.responses[0].partition_responses[0]
    assert (p.error_code, p.base_offset) == (ErrorCode.REQUEST_TIMED_OUT, -1)


async def test_a_long_poll_ends_at_max_wait_on_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    ctx = _context(tmp_path, clock)
    req = fetch_request("t", max_wait_ms=500, min_bytes=1)
    task = await _call(ctx, 1, req, 12)
    clock.advance(499)
    await _settle()
    assert not task.done()
    clock.advance(1)
    await _settle()
    assert task.done()
    body = b"".join(bytes(b) for b in task.result())
    resp = FetchResponse.decode(body, version=12)
    [p] = resp.responses[0].partitions
    assert p.error_code == ErrorCode.NONE and not p.records
    assert len(ctx.replicas.fetch_waiters) == 0  # nothing left parked
