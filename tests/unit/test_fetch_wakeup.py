"""A long-polling fetch is woken by a produce that the event loop handles in the same turn,
before the fetch's waiting coroutine first runs (two connections whose requests arrive
together: a consumer parked at the log end and the producer it waits for)."""

from __future__ import annotations

import asyncio
import struct
import tempfile

from kafka.protocol.consumer.fetch import FetchRequest
from kafka.protocol.producer.produce import ProduceRequest

from msklite.connection import KafkaConnection
from msklite.protocol.records import encode_batch
from tests.requests import fetch_request, produce_request
from tests.unit.test_connection import FakeTransport, _context, _receive


def _framed(req: FetchRequest | ProduceRequest, version: int, correlation: int) -> bytes:
    req.with_header(correlation_id=correlation, client_id="raw")
    return bytes(req.encode(version=version, header=True, framed=True))


def _fetch(max_wait_ms: int) -> bytes:
    return _framed(fetch_request("t", version=11, max_wait_ms=max_wait_ms, min_bytes=1), 11, 1)


def _produce() -> bytes:
    return _framed(
        produce_request("t", {0: encode_batch([(None, b"v")], timestamp=1)}, version=8), 8, 1
    )


async def test_fetch_parked_in_the_same_turn_as_the_produce_is_answered_at_once() -> None:
    with tempfile.TemporaryDirectory() as root:
        ctx = _context(root)
        consumer, producer = FakeTransport(), FakeTransport()
        fetch_conn = KafkaConnection(ctx, 1 << 20, set())
        produce_conn = KafkaConnection(ctx, 1 << 20, set())
        fetch_conn.connection_made(consumer)
        produce_conn.connection_made(producer)
        # one turn of the loop: the fetch finds nothing and must wait, then the produce
        # appends, before the fetch's coroutine has run at all
        _receive(fetch_conn, _fetch(max_wait_ms=30_000))
        _receive(produce_conn, _produce())
        assert len(producer.responses()) == 1 and not consumer.responses()
        for _ in range(20):  # a few turns, far less than the 30 s it may wait
            await asyncio.sleep(0)
            if consumer.responses():
                break
        [answer] = consumer.responses()
        fetch_conn.connection_lost(None)
        produce_conn.connection_lost(None)
    # correlation id, throttle, error, session id, one topic "t", one partition 0, no error
    assert struct.unpack_from(">iihii", answer) == (1, 0, 0, 0, 1)
    assert struct.unpack_from(">ihq", answer, 4 + 4 + 2 + 4 + 4 + 2 + 1 + 4) == (0, 0, 1)
