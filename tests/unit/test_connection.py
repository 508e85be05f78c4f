"""KafkaConnection against a fake transport (uvicorn's MockTransport pattern): ordering,
pipelining, and arbitrary bytes that must never escape as an exception."""

from __future__ import annotations

import asyncio
import struct
import tempfile
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs
from msklite.connection import KafkaConnection
from msklite.controller import BrokerInfo, Controller
from msklite.coordinator.coordinator import CoordinatorConfig, GroupCoordinator
from msklite.coordinator.group_runtime import OFFSETS_TOPIC, GroupRuntime
from msklite.handlers.context import BrokerContext
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.handlers.metadata_cache import MetadataCache
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.replication.internal_topic import InternalTopic
from msklite.replication.replica_manager import ReplicaManager
from tests.fakes import NoFetchers


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.aborted = False
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def write(self, data: Any) -> None:
        self.written += data

    def writelines(self, list_of_data: Any) -> None:
        for d in list_of_data:
            self.written += d

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def responses(self) -> list[bytes]:
        out, pos = [], 0
        while pos + 4 <= len(self.written):
            (size,) = struct.unpack_from(">i", self.written, pos)
            out.append(bytes(self.written[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        return out


def _context(root: str) -> BrokerContext:
    info = BrokerInfo(1, "use1-az1", "127.0.0.1", 9092)
    controller = Controller([info], BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), None)
    clock = ManualClock()
    logs = LogManager(root, 1, controller.cluster_id, clock)
    replicas = ReplicaManager(1, controller, logs, clock, NoFetchers())
    controller.on_change(replicas.sync_topic)
    controller.create_topic("t", 2)
    groups = GroupRuntime(
        GroupCoordinator(CoordinatorConfig(), clock.now_ms()),
        InternalTopic(replicas, OFFSETS_TOPIC, clock),
        clock,
    )
    return BrokerContext(
        info,
        controller,
        replicas,
        clock,
        MetadataCache(controller),
        FetchSessionCache(),
        lambda: groups,
        _no_transactions,
    )


def _no_transactions() -> Any:
    raise AssertionError("no transactional requests here")


def _frame(api_key: int, version: int, correlation: int, body: bytes = b"") -> bytes:
    payload = struct.pack(">hhih", api_key, version, correlation, 3) + b"raw" + body
    return struct.pack(">i", len(payload)) + payload


def _receive(conn: KafkaConnection, data: bytes) -> None:
    """What the event loop does with a BufferedProtocol: read into its buffer, report."""
    pos = 0
    while pos < len(data) and not conn.transport.aborted:  # type: ignore[union-attr]
        buf = conn.get_buffer(-1)
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos : pos + n]
        pos += n
        conn.buffer_updated(n)


async def _drive(chunks: list[bytes]) -> tuple[FakeTransport, list[object]]:
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    with tempfile.TemporaryDirectory() as root:
        conn = KafkaConnection(_context(root), 1 << 20, set())
        transport = FakeTransport()
        conn.connection_made(transport)
        for chunk in chunks:
            _receive(conn, chunk)
            for _ in range(5):
                await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        conn.connection_lost(None)
        await asyncio.sleep(0)
    return transport, errors


async def test_pipelined_requests_are_answered_in_order() -> None:
    data = (
        _frame(18, 0, 1)
        + _frame(3, 1, 2, b"\xff\xff\xff\xff")
        + _frame(18, 3, 3, b"\x00\x02a\x021\x00")
    )
    transport, errors = await _drive([data])
    assert not errors and not transport.aborted
    assert [struct.unpack_from(">i", r)[0] for r in transport.responses()] == [1, 2, 3]


async def test_split_requests_are_reassembled() -> None:
    data = _frame(18, 0, 7) + _frame(18, 0, 8)
    transport, _ = await _drive([data[i : i + 1] for i in range(len(data))])
    assert [struct.unpack_from(">i", r)[0] for r in transport.responses()] == [7, 8]


async def test_unknown_api_key_aborts() -> None:
    transport, errors = await _drive([_frame(999, 0, 1)])
    assert transport.aborted and not transport.responses() and not errors


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.builds(
                _frame,
                st.sampled_from([0, 1, 2, 3, 18, 19, 20, 22, 32, 37, 60]),
                st.integers(-1, 14),
                st.integers(0, 100),
                st.binary(max_size=80),
            ),
        ),
        max_size=6,
    )
)
def test_arbitrary_input_never_escapes_as_an_exception(chunks: list[bytes]) -> None:
    _, errors = asyncio.run(_drive(chunks))
    assert errors == []


async def test_every_spec_codec_handler_answers_a_valid_request() -> None:
    from msklite.protocol import messages

    def body(key: int, version: int, **fields: object) -> bytes:
        req = messages.request_class(key)(version=version, **fields)
        return bytes(req.encode(version=version))

    frames: list[bytes] = []
    for v in (0, 1):
        for ops in (False, True):
            frames.append(
                _frame(
                    60,
                    v,
                    len(frames),
                    b"\x00" + body(60, v, include_cluster_authorized_operations=ops),
                )
            )
    frames.append(
        _frame(22, 0, len(frames), body(22, 0, transactional_id=None, transaction_timeout_ms=1))
    )
    transport, errors = await _drive([b"".join(frames)])
    assert not errors and not transport.aborted
    assert len(transport.responses()) == len(frames)
