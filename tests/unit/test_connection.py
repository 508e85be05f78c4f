"""KafkaConnection against a fake transport (uvicorn's MockTransport pattern): ordering,
pipelining, and arbitrary bytes that must never escape as an exception."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import struct
import tempfile
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs
from msklite.connection import KafkaConnection
from msklite.controller import BrokerInfo, Controller
from msklite.coordinator.coordinator import CoordinatorConfig, GroupCoordinator
from msklite.coordinator.group_runtime import OFFSETS_TOPIC, GroupRuntime
from msklite.coordinator.transaction import TxnConfig, TxnCoordinator
from msklite.coordinator.txn_runtime import TXN_TOPIC, TxnRuntime
from msklite.errors import ErrorCode
from msklite.handlers import HANDLERS
from msklite.handlers.context import BrokerContext, BrokerStats, Handler
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.handlers.metadata_cache import MetadataCache
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol import messages, schemas
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader, parse_request_header
from msklite.protocol.primitives import Buffer, Reader
from msklite.replication.internal_topic import InternalTopic
from msklite.replication.replica_manager import ReplicaManager
from tests.fakes import NoFetchers, one_broker_share


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
    # Kafka 4.2: every API a handler serves is reachable, share groups included
    controller = Controller([info], BrokerConfigs(dict(MSK_BROKER_DEFAULTS), "4.2.x"), None)
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
    txn = TxnRuntime(
        TxnCoordinator(TxnConfig(), controller.allocate_producer_id, clock.now_ms()),
        InternalTopic(replicas, TXN_TOPIC, clock),
        clock,
        _NoMarkers(),
    )
    return BrokerContext(
        info,
        controller,
        replicas,
        clock,
        MetadataCache(controller),
        FetchSessionCache(),
        lambda: groups,
        lambda: txn,
        # every version a handler serves, whatever release it came in
        {key: (spec.min_version, spec.max_version) for key, spec in HANDLERS.items()},
        start_share=lambda: one_broker_share(controller, replicas, clock),
    )


class _NoMarkers:
    async def write_marker(self, *args: object) -> ErrorCode:
        return ErrorCode.NONE


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
    transport, errors, _ = await _drive_stats(chunks)
    return transport, errors


async def _drive_stats(chunks: list[bytes]) -> tuple[FakeTransport, list[object], BrokerStats]:
    """Feed the chunks to one connection; (its transport, loop errors, the broker's stats)."""
    loop = asyncio.get_running_loop()
    errors: list[object] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    with tempfile.TemporaryDirectory() as root:
        ctx = _context(root)
        conn = KafkaConnection(ctx, 1 << 20, set())
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
    return transport, errors, ctx.stats


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
    _, errors, stats = asyncio.run(_drive_stats(chunks))
    assert errors == []
    assert stats.internal_errors == 0


def _failing_handler(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    raise TypeError("a bug of ours")


async def _failing_later(ctx: BrokerContext, header: RequestHeader, r: Reader) -> list[Buffer]:
    await asyncio.sleep(0)
    raise KeyError("a bug of ours, after a wait")


@pytest.mark.parametrize("handler", [_failing_handler, _failing_later])
async def test_a_handlers_own_error_is_counted_logged_and_answered_as_kafka_does(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, handler: Handler
) -> None:
    for key in (ApiKey.HEARTBEAT, ApiKey.CREATE_TOPICS):
        monkeypatch.setitem(HANDLERS, key, dataclasses.replace(HANDLERS[key], handler=handler))
    heartbeat = _encode(schemas.HeartbeatRequest(group_id="g", generation_id=1, member_id="m"), 0)
    # Heartbeat has a top-level error code: UNKNOWN_SERVER_ERROR, and the connection stays
    transport, errors, stats = await _drive_stats(
        [_frame(ApiKey.HEARTBEAT, 0, 1, heartbeat) + _frame(ApiKey.API_VERSIONS, 0, 2)]
    )
    assert not errors and not transport.aborted
    [answer, versions] = transport.responses()
    assert answer == struct.pack(">ih", 1, ErrorCode.UNKNOWN_SERVER_ERROR)
    assert struct.unpack_from(">i", versions)[0] == 2
    assert stats.internal_errors == 1
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "HEARTBEAT v0" in record.getMessage()
    # CreateTopics has none (errors are per topic): the connection closes, as in Kafka when
    # no error response can be built
    topics = _encode(schemas.CreateTopicsRequest(topics=[], timeout_ms=1), 2)
    transport, errors, stats = await _drive_stats([_frame(ApiKey.CREATE_TOPICS, 2, 1, topics)])
    assert not errors and transport.aborted and not transport.responses()
    assert stats.internal_errors == 1


async def test_a_null_where_the_spec_forbids_one_is_bad_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "msklite.connection")
    body = _encode(schemas.DeleteGroupsRequest(groups_names=None), 0)  # type: ignore[arg-type]
    transport, errors, stats = await _drive_stats([_frame(ApiKey.DELETE_GROUPS, 0, 1, body)])
    assert not errors and transport.aborted and not transport.responses()
    assert stats.internal_errors == 0
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert (
        "non-nullable field groups_names of DeleteGroupsRequest v0 is null" in record.getMessage()
    )


async def test_a_client_id_is_read_as_kafka_reads_it() -> None:
    # bytes that are not UTF-8 are replaced, a null client id is the empty one; both answered
    frames = b""
    for correlation, (client_id, read) in enumerate(
        [(b"\x00\x04a\xff\xfeb", "a\ufffd\ufffdb"), (b"\xff\xff", "")]
    ):
        payload = struct.pack(">hhi", ApiKey.API_VERSIONS, 0, correlation) + client_id
        assert parse_request_header(memoryview(payload))[0].client_id == read
        frames += struct.pack(">i", len(payload)) + payload
    transport, errors, _ = await _drive_stats([frames])
    assert not errors and not transport.aborted
    assert [struct.unpack_from(">i", r)[0] for r in transport.responses()] == [0, 1]


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


# ---- well-framed requests of every served API with mutated bodies ----

_TEXT = st.one_of(
    st.sampled_from(["", "t", "g", "__consumer_offsets", "a.b", "a_b", "-"]), st.text(max_size=6)
)
_INT = st.one_of(st.integers(-2, 4), st.integers(-128, 127))  # fits every width, int8 included


def _scalar(annotation: str) -> st.SearchStrategy[object]:
    if annotation.startswith("bool"):
        return st.booleans()
    if annotation.startswith("uuid"):
        return st.one_of(st.just(uuid.UUID(int=0)), st.uuids())
    if annotation.startswith("float"):
        return st.floats(-1e3, 1e3)
    return _INT


def _or_null(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Null now and then, where the spec allows it and where it forbids it alike: the broker
    must refuse the forbidden ones as bad input, never trip over them."""
    return st.one_of(st.none(), *[values] * 15)


def _struct(cls: type[schemas.Struct], version: int) -> st.SearchStrategy[Any]:
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in cls.FIELDS:
        if not f.versions[0] <= version <= f.versions[1]:
            continue
        annotation = cls.__annotations__[f.name]
        inner = annotation.removeprefix("list[")
        if f.kind in (schemas.SCALAR, schemas.UUID):
            parts[f.name] = _scalar(annotation)
        elif f.kind == schemas.STRING:
            parts[f.name] = _or_null(_TEXT)
        elif f.kind == schemas.BYTES:
            parts[f.name] = _or_null(st.binary(max_size=12))
        elif f.kind == schemas.ARRAY:
            parts[f.name] = _or_null(st.lists(_scalar(inner), max_size=3))
        elif f.kind == schemas.STRING_ARRAY:
            parts[f.name] = _or_null(st.lists(_or_null(_TEXT), max_size=3))
        elif f.kind == schemas.STRUCT:
            # kafka-python cannot write a null for a struct the spec makes non-nullable
            parts[f.name] = _struct(f.struct, version)  # type: ignore[arg-type]
        else:
            parts[f.name] = _or_null(st.lists(_struct(f.struct, version), max_size=3))  # type: ignore[arg-type]
    return st.fixed_dictionaries(parts).map(lambda values: cls(**values))


def _encode(message: schemas.Message, version: int) -> bytes:
    present = {
        f.name: getattr(message, f.name)
        for f in message.FIELDS
        if f.versions[0] <= version <= f.versions[1]
    }
    # kafka-python's encoder reads nested structs by attribute, so the schemas' objects serve
    kafka = messages.kafka_class(type(message))(version=version, **present)
    return bytes(kafka.encode(version=version))


@st.composite
def _mutated_request(draw: st.DrawFn, correlation: int) -> bytes:
    key = draw(st.sampled_from(sorted(schemas.REQUESTS)))
    version = draw(st.integers(HANDLERS[key].min_version, HANDLERS[key].max_version))
    body = bytearray(_encode(draw(_struct(schemas.REQUESTS[key], version)), version))
    mode = draw(st.sampled_from(["as built", "as built", "patched", "cut"]))
    if mode == "patched":  # random lengths: overwrite a few bytes, length prefixes among them
        for pos, patch in draw(
            st.lists(
                st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=4)),
                min_size=1,
                max_size=2,
            )
        ):
            at = pos % (len(body) + 1)
            body[at : at + len(patch)] = patch
    elif mode == "cut":
        del body[draw(st.integers(0, max(len(body) - 1, 0))) :]
    tags = b"\x00" if HANDLERS[key].is_flexible(version) else b""
    return _frame(key, version, correlation, tags + bytes(body))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 1000).flatmap(_mutated_request), min_size=1, max_size=4))
def test_well_framed_requests_of_every_api_never_trip_a_handler(frames: list[bytes]) -> None:
    _, errors, stats = asyncio.run(_drive_stats(frames))
    assert errors == []
    assert stats.internal_errors == 0


async def test_a_partitions_own_error_is_counted_and_answered_unknown_server_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from msklite.handlers import list_offsets

    def broken(*args: object) -> tuple[int, int, int]:
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(list_offsets, "_lookup", broken)
    Topic = schemas.ListOffsetsRequest.ListOffsetsTopic
    req = schemas.ListOffsetsRequest(
        replica_id=-1,
        topics=[
            Topic(
                name="t", partitions=[Topic.ListOffsetsPartition(partition_index=0, timestamp=-1)]
            )
        ],
    )
    frame = _frame(ApiKey.LIST_OFFSETS, 1, 1, messages.encode(req, 1))
    transport, errors, stats = await _drive_stats([frame])
    assert not errors and not transport.aborted
    [answer] = transport.responses()
    resp = messages.kafka_class(schemas.ListOffsetsResponse).decode(answer[4:], version=1)
    assert resp.topics[0].partitions[0].error_code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert stats.internal_errors == 1
