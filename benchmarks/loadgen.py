"""Raw-socket load generator: pre-encoded Produce v8 / Fetch v11 requests, pipelined.

Each connection is one thread with a blocking socket that keeps `depth` requests in flight:
it sends `depth` requests, then for every response it reads (in order, checking the
correlation id) sends the next one. A Produce request is a small header built per request
plus one pre-encoded v2 record batch sent as a second buffer of the same `sendmsg` call, so
the batch is never copied or re-encoded on the client side; the CPU the client spends is
the kernel's copy into the socket, and that is measured and reported.

The same batch bytes go out again and again: the broker assigns offsets by rewriting its own
copy of the header, and the batch has no producer id, so it is never deduplicated.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmarks.procs import BenchError
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
from msklite.protocol.records import encode_batch

RECORD_VALUE = 1000  # bytes per record value in generated batches (≈1 KiB records)
_SIZE = struct.Struct(">i")


def make_batch(total_bytes: int, value_size: int = RECORD_VALUE) -> tuple[bytes, int]:
    """A valid uncompressed v2 batch of at most `total_bytes` (header included) made of
    `value_size`-byte records, timestamped now (a batch stamped 0 would be due for time-based
    retention at once). Returns (batch, record count)."""
    now_ms = int(time.time() * 1000)
    value = os.urandom(value_size)
    one = len(encode_batch([(None, value)], timestamp=now_ms))
    per_record = len(encode_batch([(None, value)] * 2, timestamp=now_ms)) - one
    count = max(1, (total_bytes - one) // per_record + 1)
    while True:
        batch = encode_batch([(None, value)] * count, timestamp=now_ms)
        if len(batch) <= total_bytes or count == 1:
            return batch, count
        count -= 1


@dataclass
class ConnStats:
    requests: int = 0
    bytes: int = 0  # record bytes acknowledged (produce) or received (fetch)
    errors: dict[int, int] = field(default_factory=dict)
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list)  # send -> answer, seconds
    first_sent: float = 0.0
    last_answer: float = 0.0
    exception: BaseException | None = None


def _sendmsg_all(sock: socket.socket, parts: list[memoryview]) -> None:
    """sendmsg() until every byte of `parts` is out (a blocking sendmsg may send part)."""
    while parts:
        sent = sock.sendmsg(parts)
        while sent:
            head = parts[0]
            if sent >= len(head):
                sent -= len(head)
                parts.pop(0)
            else:
                parts[0] = head[sent:]
                sent = 0


def _recv_into_exact(sock: socket.socket, buf: memoryview) -> None:
    got, n = 0, len(buf)
    while got < n:
        k = sock.recv_into(buf[got:], n - got)
        if not k:
            raise ConnectionError("connection closed by the broker")
        got += k


class _Framer:
    """Reads whole response frames into one growing buffer (no per-frame allocation)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray(1 << 16)
        self.head = memoryview(bytearray(4))

    def next(self) -> memoryview:
        _recv_into_exact(self.sock, self.head)
        (size,) = _SIZE.unpack(self.head)
        if size > len(self.buf):
            self.buf = bytearray(size)
        view = memoryview(self.buf)[:size]
        _recv_into_exact(self.sock, view)
        return view


# a request maker gets the correlation id and returns the buffers to send
RequestMaker = Callable[[int], list[memoryview]]
# an answer checker gets the frame and returns (correlation id, error code, bytes counted)
AnswerChecker = Callable[[memoryview], tuple[int, int, int]]


def _pipeline(
    address: tuple[str, int],
    make: RequestMaker,
    check: AnswerChecker,
    depth: int,
    stats: ConnStats,
    start: threading.Barrier,
    stop_at: Callable[[], bool],
    max_requests: int | None,
    timeout: float,
) -> None:
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            framer = _Framer(sock)
            in_flight: deque[tuple[int, float]] = deque()
            correlation = 0
            start.wait(timeout)
            stats.first_sent = time.perf_counter()
            while True:
                while (
                    len(in_flight) < depth
                    and not stop_at()
                    and (max_requests is None or correlation < max_requests)
                ):
                    correlation += 1
                    in_flight.append((correlation, time.perf_counter()))
                    _sendmsg_all(sock, make(correlation))
                if not in_flight:
                    break
                frame = framer.next()
                now = time.perf_counter()
                expected, sent_at = in_flight.popleft()
                got, error, counted = check(frame)
                if got != expected:
                    raise BenchError(f"answer {got} arrived where {expected} was due")
                stats.latencies.append(now - sent_at)
                stats.last_answer = now
                stats.requests += 1
                if error:
                    stats.errors[error] = stats.errors.get(error, 0) + 1
                    if stats.first_error is None:
                        stats.first_error = f"error code {error} on request {got}"
                else:
                    stats.bytes += counted
    except BaseException as e:  # reported by the caller: a thread must not die silently
        stats.exception = e
        try:
            start.abort()
        except threading.BrokenBarrierError:
            pass


@dataclass
class LoadResult:
    connections: list[ConnStats]
    elapsed_s: float  # first request sent -> last answer read, over all connections
    client_cpu_s: float  # this process (all its threads) over the same span

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.connections)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.connections)

    @property
    def errors(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for c in self.connections:
            for code, n in c.errors.items():
                out[code] = out.get(code, 0) + n
        return out

    def latencies(self) -> list[float]:
        return [x for c in self.connections for x in c.latencies]


def run_load(
    jobs: Sequence[tuple[tuple[str, int], RequestMaker, AnswerChecker]],
    depth: int,
    seconds: float | None = None,
    max_requests: int | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Run one connection per job until `seconds` have passed or each has sent
    `max_requests`; outstanding answers are always read."""
    if seconds is None and max_requests is None:
        raise ValueError("give seconds or max_requests")
    start = threading.Barrier(len(jobs) + 1)
    stop_event = threading.Event()
    stats = [ConnStats() for _ in jobs]
    threads = [
        threading.Thread(
            target=_pipeline,
            args=(addr, make, check, depth, st, start, stop_event.is_set, max_requests, timeout),
            daemon=True,  # an unanswered socket must not keep the benchmark alive
        )
        for (addr, make, check), st in zip(jobs, stats, strict=True)
    ]
    for t in threads:
        t.start()
    try:
        start.wait(timeout)
    except threading.BrokenBarrierError:
        for t in threads:
            t.join(timeout)
        raise _failure(stats) from None
    t0, cpu0 = time.perf_counter(), _own_cpu()
    deadline = t0 + (seconds if seconds is not None else timeout)
    for t in threads:
        t.join(max(deadline - time.perf_counter(), 0.0))
    stop_event.set()  # the time window is over: send no more, read what is in flight
    for t in threads:
        t.join(timeout)
    cpu1 = _own_cpu()
    if any(t.is_alive() for t in threads):
        raise BenchError(f"load generator: connections still waiting after {timeout} s")
    if any(s.exception for s in stats):
        raise _failure(stats)
    end = max(s.last_answer for s in stats)
    first = min(s.first_sent for s in stats)
    return LoadResult(stats, end - first, cpu1 - cpu0)


def _failure(stats: Sequence[ConnStats]) -> BenchError:
    exc = next((s.exception for s in stats if s.exception), None)
    return BenchError(f"load generator connection failed: {exc!r}")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def produce_job(
    address: tuple[str, int], topic: str, partition: int, batch: bytes, acks: int
) -> tuple[tuple[str, int], RequestMaker, AnswerChecker]:
    prefix = produce_body_prefix(topic, partition, acks, 30000, len(batch))
    body_size = len(prefix) + len(batch)
    batch_view = memoryview(batch)

    def make(correlation: int) -> list[memoryview]:
        head = request_header(PRODUCE_KEY, PRODUCE_VERSION, correlation, body_size) + prefix
        return [memoryview(head), batch_view]

    def check(frame: memoryview) -> tuple[int, int, int]:
        correlation, error, _base = parse_produce_v8(frame)
        return correlation, error, len(batch)

    return address, make, check


def fetch_job(
    address: tuple[str, int],
    topic: str,
    partition: int,
    offsets: Sequence[int],
    max_bytes: int,
) -> tuple[tuple[str, int], RequestMaker, AnswerChecker]:
    """Fetch `offsets` in turn (cycling), `max_bytes` each. The offsets are batch boundaries
    known from how the log was filled, so requests can be pipelined without waiting to learn
    where the previous answer ended; an answer starting elsewhere counts as an error (-2)."""
    requests: list[bytes] = []
    for offset in offsets:
        # min_bytes 1 with a real wait, as consumers send: Tansu answers max_wait_ms=0 with
        # no records at all, even when they are there
        body = fetch_body(topic, partition, offset, max_bytes, max_wait_ms=500)
        requests.append(body)
    due: deque[int] = deque()

    def make(correlation: int) -> list[memoryview]:
        i = (correlation - 1) % len(offsets)
        due.append(offsets[i])
        body = requests[i]
        return [memoryview(request_header(FETCH_KEY, FETCH_VERSION, correlation, len(body)) + body)]

    def check(frame: memoryview) -> tuple[int, int, int]:
        answer = parse_fetch_v11(frame)
        expected = due.popleft()
        if answer.error_code:
            return answer.correlation_id, answer.error_code, 0
        if answer.records_bytes == 0 or answer.first_offset > expected:
            return answer.correlation_id, -2, 0  # data missing where the fill put it
        return answer.correlation_id, 0, answer.records_bytes

    return address, make, check
