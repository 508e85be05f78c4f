"""One client connection: bytes → frames → handler → response buffers → transport.

An `asyncio.BufferedProtocol` (≈3 µs a request, against ≈15 µs with streams; the socket reads
straight into the frame decoder's buffers, see protocol/frame.py). Requests are handled
one at a time and answered in order, as Kafka does. Most requests complete synchronously, and
they are handled right in `data_received`: every complete request in the chunk is answered and
the responses leave in one `writelines` (one system call for a whole pipelined burst). A
handler that must wait (acks=all, a long-polling fetch, a group join) returns an awaitable
instead; a task then awaits it, and the requests queued behind it wait their turn, as in Kafka.

Reading pauses while too many requests are queued, the transport's write buffer is full, or
a large request must wait for the broker's request memory (protocol/frame.py, MemoryPool).

Closing the connection is Kafka's answer to bytes it cannot use: an oversize or negative frame,
a malformed header or body, an unknown API key, an unsupported version of any API but
ApiVersions (which gets the KIP-511 answer instead). Those are the peer's errors
(`ProtocolError`), logged at INFO. An exception of a handler's own is ours: it is counted per
broker (`BrokerStats.internal_errors`), logged with its traceback, and answered as Kafka answers
it, with UNKNOWN_SERVER_ERROR where the response has a top-level error code, and otherwise by
closing the connection.

A client over a quota (msklite.throttle) is muted as Kafka mutes its channel: its response
leaves at once with throttle_time_ms, and nothing more is read or handled until that time has
passed on the clock. Once a request_percentage quota exists, the handler's time (measured
for the metrics anyway) is also recorded against it (without one, a request pays a single
attribute check for it).

A connection belongs to one listener (its name rides on every request header). On a SASL
listener it holds an `Authenticator` (msklite.security) until the client has authenticated:
every request but ApiVersions goes to it instead of the handlers, and its principal then rides
on every request header.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Protocol, cast

from msklite.errors import ProtocolError
from msklite.handlers import HANDLERS
from msklite.handlers.api_versions import unsupported_version_body
from msklite.handlers.context import BrokerContext
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.frame import FrameDecoder, MemoryPool
from msklite.protocol.header import RequestHeader, parse_request_header, response_header
from msklite.protocol.primitives import Buffer, Reader
from msklite.protocol.throttle_field import write_throttle
from msklite.throttle import user_of

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
MAX_QUEUED_REQUESTS = 100

Response = list[Buffer] | None
ANONYMOUS = "User:ANONYMOUS"
# answered without request-time quotas, as Kafka answers them (sendResponseExemptThrottle)
_EXEMPT = frozenset({ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})


class Authenticator(Protocol):
    """A connection's authentication before dispatch (msklite.security.authenticator)."""

    principal: str | None  # who, once authenticated
    failed: bool  # the last answer is the connection's last
    close_delay_ms: int  # after a failure (connection.failed.authentication.delay.ms)
    raw_tokens: bool  # the next frame is a raw SASL token (after SaslHandshake v0)
    session_lifetime_ms: int  # of the last authentication; 0: the session never expires

    def authenticate(self, header: RequestHeader, r: Reader) -> list[Buffer]:
        """Answer a request made before authentication (a ProtocolError closes the
        connection unanswered)."""
        ...

    def authenticate_raw(self, token: bytes) -> bytes:
        """Answer a raw SASL token with the server's."""
        ...

    def reauthenticate(self) -> None:
        """Start over on an authenticated connection (KIP-368)."""
        ...


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(
        self,
        ctx: BrokerContext,
        max_frame: int,
        on_close: set[KafkaConnection],
        pool: MemoryPool | None = None,
        listener: str = "CLIENT",
        authenticator: Authenticator | None = None,
        principal_of: Callable[[object], str | None] | None = None,
    ) -> None:
        """`principal_of`: names the client from its TLS certificate (an mTLS listener)."""
        self.ctx = ctx
        self.listener = listener
        self.authenticator = authenticator
        # kept once authenticated: a SaslHandshake then re-authenticates (KIP-368)
        self._sasl = authenticator
        self._session_end_ms = 0  # when the SASL session expires (0: never)
        # read since the listener's last idle sweep (connections.max.idle.ms), and the time
        # of the last sweep that saw it active
        self.active = True
        self.active_at_ms = 0
        self.principal = ANONYMOUS
        self._principal_of = principal_of
        self.decoder = FrameDecoder(max_frame, pool)
        self.pool = self.decoder.pool
        self.queue: deque[memoryview] = deque()
        self.transport: asyncio.Transport | None = None
        self._registry = on_close
        self._waiting: asyncio.Task[None] | None = None  # a request that is awaiting
        self._write_paused = False
        self._read_paused = False
        self._closed = False
        self._last_answer = False  # close once what is answered so far is written
        self._throttled = 0  # quota throttles in force: nothing more is read or handled
        self.peer: str = "?"
        self.host: str = ""

    # ---- transport callbacks ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.host = peer[0] if peer else ""
        if self._principal_of is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            cert = None if ssl_object is None else ssl_object.getpeercert()
            self.principal = self._principal_of(cert) or ANONYMOUS
        self._registry.add(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.active = True
        try:
            frames = self.decoder.buffer_updated(nbytes)
        except ProtocolError as e:
            self._abort(f"bad frame: {e}")
            return
        if self.decoder.waiting:
            self.pool.wait(self._memory_granted)
            self._flow_control()
        if frames:
            self.queue.extend(frames)
            self._pump()

    def _memory_granted(self) -> None:
        # Called from inside another connection's release: reserve now, read on the next turn.
        frames = self.decoder.admit()
        asyncio.get_running_loop().call_soon(self._resume_granted, frames)

    def _resume_granted(self, frames: list[memoryview]) -> None:
        if self._closed:
            for frame in frames:
                self._release(frame)
            return
        if self.decoder.waiting:
            self.pool.wait(self._memory_granted)
        self.queue.extend(frames)
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._registry.discard(self)
        self._drop_queue()
        if self._waiting is not None:
            self._waiting.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._pump()

    # ---- request processing ----

    def _abort(self, why: str, quiet: bool = False) -> None:
        if not quiet:
            log.info("closing connection from %s: %s", self.peer, why)
        self._closed = True
        self._drop_queue()
        if self.transport is not None:
            self.transport.abort()

    def _release(self, frame: memoryview) -> None:
        self.pool.release(len(frame), len(frame))

    def _release_after(self, frame: memoryview, _: asyncio.Task[None]) -> None:
        self._release(frame)

    def _drop_queue(self) -> None:
        """Give back the memory of every request not yet handled and of a partial one."""
        while self.queue:
            self._release(self.queue.popleft())
        self.pool.forget(self._memory_granted)
        self.decoder.discard()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _pump(self) -> None:
        """Answer queued requests in order until one has to wait (or writing must)."""
        out: list[Buffer] = []
        while (
            self.queue
            and self._waiting is None
            and not self._write_paused
            and not self._last_answer
            and not self._throttled
        ):
            frame = self.queue.popleft()
            try:
                result = self._dispatch(frame)
            except ProtocolError as e:
                self._release(frame)
                self._abort(str(e))
                return
            except _Failed:
                self._release(frame)
                self._abort("internal error", quiet=True)
                return
            except Exception:
                self._release(frame)
                self._failed("handling a request")
                self._abort("internal error", quiet=True)
                return
            if result is None or type(result) is list:
                self._release(frame)
                if result is not None:
                    out += result
            else:
                self._waiting = asyncio.get_running_loop().create_task(
                    self._finish(cast(Awaitable[Response], result))
                )
                # Done callbacks run even for a task cancelled before it started.
                self._waiting.add_done_callback(functools.partial(self._release_after, frame))
        if out and self.transport is not None and not self._closed:
            self.transport.writelines(out)
        if self._last_answer and not self._closed:
            # Kafka's answer to a failed authentication: the error, then, a moment later (so
            # that the client reads the error before it sees the connection go), the close.
            self._closed = True
            self._drop_queue()
            if self.transport is not None:
                self.transport.pause_reading()
            assert self.authenticator is not None
            self.ctx.clock.call_later(self.authenticator.close_delay_ms, self.close)
            return
        self._flow_control()

    def _flow_control(self) -> None:
        if self.transport is None or self._closed:
            return
        hold = len(self.queue) >= MAX_QUEUED_REQUESTS or self.decoder.waiting or self._throttled
        if hold and not self._read_paused:
            self.transport.pause_reading()
            self._read_paused = True
        elif not hold and self._read_paused:
            self.transport.resume_reading()
            self._read_paused = False

    def _request_time(self, header: RequestHeader, took_ns: int) -> None:
        """The request_percentage quota (ClientRequestQuotaManager): the time the handler
        took, as a percentage of one thread, recorded for the client; a throttle longer
        than a byte-rate quota's replaces it (Kafka answers with the larger one). acks=0
        produces (no answer) are exempt, as in Kafka."""
        if header.api_key in _EXEMPT:
            return
        percent_seconds = took_ns * 1e-7
        throttle = self.ctx.quotas.request.record(
            user_of(header.principal), header.client_id, percent_seconds, self.ctx.clock.now_ms()
        )
        header.throttle_ms = max(header.throttle_ms, throttle)

    def _answer_throttled(self, header: RequestHeader, flexible: bool, body: Response) -> None:
        """A client over a quota: its response says for how long, and it is muted."""
        if body is not None:
            write_throttle(header.api_key, header.api_version, flexible, body, header.throttle_ms)
        self._throttle(header.throttle_ms)

    def _throttle(self, ms: int) -> None:
        """A client over its quota: as Kafka mutes its channel, nothing more is read from it
        or handled until `ms` has passed on the clock; its response leaves at once (every
        version: the client waits too where it knows how, KIP-219)."""
        self._throttled += 1
        self.ctx.clock.call_later(ms, self._unthrottle)

    def _unthrottle(self) -> None:
        self._throttled -= 1
        if not self._throttled and not self._closed:
            self._pump()

    async def _finish(self, pending: Awaitable[Response]) -> None:
        try:
            out = await pending
        except ProtocolError as e:
            self._waiting = None
            self._abort(str(e))
            return
        except _Failed:
            self._waiting = None
            self._abort("internal error", quiet=True)
            return
        except Exception:
            self._waiting = None
            self._failed("handling a request")
            self._abort("internal error", quiet=True)
            return
        self._waiting = None
        if out is not None and self.transport is not None and not self._closed:
            self.transport.writelines(out)
        if not self._closed:
            self._pump()

    def _dispatch(self, frame: memoryview) -> Response | Awaitable[Response]:
        authenticator = self.authenticator
        if authenticator is not None and authenticator.raw_tokens:
            return self._raw_token(authenticator, frame)
        header, reader = parse_request_header(frame)
        header.client_host = self.host
        header.listener = self.listener
        header.principal = self.principal
        served = self.ctx.api_versions.get(header.api_key)
        if served is None:
            raise ProtocolError(f"unknown api key {header.api_key}")
        if not served[0] <= header.api_version <= served[1]:
            if header.api_key != ApiKey.API_VERSIONS:
                raise ProtocolError(
                    f"unsupported version {header.api_version} of api key {header.api_key}"
                )
            return _framed(header.correlation_id, False, [unsupported_version_body(self.ctx)])
        spec = HANDLERS[header.api_key]
        flexible = spec.is_flexible(header.api_version)
        if flexible:
            reader.skip_tagged_fields()
        # ApiVersions answers with header v0 whatever its version (KIP-511).
        flexible_response = flexible and header.api_key != ApiKey.API_VERSIONS
        # Kafka's RequestsPerSec and TotalTimeMs (from here to the answer: msklite has no
        # request queue): plain ints that msklite.metrics reads at scrape time
        stats = self.ctx.stats
        stats.requests[header.api_key][header.api_version] += 1
        if self.authenticator is not None and header.api_key != ApiKey.API_VERSIONS:
            return _framed(
                header.correlation_id, flexible_response, self._authenticate(header, reader)
            )
        if self._sasl is not None and self._reauthenticating(header):
            return _framed(
                header.correlation_id, flexible_response, self._authenticate(header, reader)
            )
        started = perf_counter_ns()
        hook = self.ctx.request_hook
        try:
            if hook is None:
                result = spec.handler(self.ctx, header, reader)
            else:
                result = hook(spec.handler, self.ctx, header, reader)
        except ProtocolError:
            raise
        except Exception:
            return self._error_response(header, flexible_response)
        if self.ctx.quotas.request_timed and result is not None:
            self._request_time(header, perf_counter_ns() - started)
        if result is not None and type(result) is not list:
            # its throttle is known once it completes (_framed_later)
            return self._framed_later(
                header, flexible_response, cast(Awaitable[Response], result), started
            )
        took = perf_counter_ns() - started
        stats.request_time_ns[header.api_key] += took
        stats.request_times[header.api_key][(took >> 10).bit_length()] += 1
        if header.throttle_ms:
            self._answer_throttled(header, flexible_response, result)
        if result is None:
            return None
        return _framed(header.correlation_id, flexible_response, result)

    async def _framed_later(
        self, header: RequestHeader, flexible: bool, pending: Awaitable[Response], started: int
    ) -> Response:
        try:
            body = await pending
        except ProtocolError:
            raise
        except Exception:
            return self._error_response(header, flexible)
        took = perf_counter_ns() - started
        stats = self.ctx.stats
        stats.request_time_ns[header.api_key] += took
        stats.request_times[header.api_key][(took >> 10).bit_length()] += 1
        if header.throttle_ms:
            self._answer_throttled(header, flexible, body)
        return None if body is None else _framed(header.correlation_id, flexible, body)

    def _authenticate(self, header: RequestHeader, reader: Reader) -> list[Buffer]:
        authenticator = self.authenticator
        assert authenticator is not None
        body = authenticator.authenticate(header, reader)
        self._after_exchange(authenticator)
        return body

    def _raw_token(self, authenticator: Authenticator, frame: memoryview) -> Response:
        """A raw SASL token (after SaslHandshake v0), answered with a raw size-prefixed one."""
        token = authenticator.authenticate_raw(bytes(frame))
        self._after_exchange(authenticator)
        return [] if authenticator.failed else [_SIZE.pack(len(token)) + token]

    def _after_exchange(self, authenticator: Authenticator) -> None:
        if authenticator.failed:
            log.info("closing connection from %s: authentication failed", self.peer)
            self._last_answer = True
        elif authenticator.principal is not None:
            self.principal = authenticator.principal
            self.authenticator = None
            lifetime = authenticator.session_lifetime_ms
            self._session_end_ms = self.ctx.clock.now_ms() + lifetime if lifetime > 0 else 0

    def _reauthenticating(self, header: RequestHeader) -> bool:
        """On an authenticated SASL connection: a SaslHandshake starts a re-authentication
        (KIP-368); any other request after the session's end closes the connection, as
        Kafka closes a client that did not re-authenticate in time."""
        if header.api_key == ApiKey.SASL_HANDSHAKE and header.api_version >= 1:
            assert self._sasl is not None
            self._sasl.reauthenticate()
            self.authenticator = self._sasl
            return True
        if self._session_end_ms and self.ctx.clock.now_ms() > self._session_end_ms:
            raise ProtocolError("its SASL session expired without a re-authentication")
        return False

    def idle_sweep(self, now_ms: int, max_idle_ms: int) -> None:
        """connections.max.idle.ms: close once the listener's sweeps have seen nothing read
        and no request waiting for max_idle_ms."""
        if self.active or self._waiting is not None or self.queue:
            self.active = False
            self.active_at_ms = now_ms
        elif now_ms - self.active_at_ms >= max_idle_ms:
            log.debug("closing connection from %s: idle past connections.max.idle.ms", self.peer)
            self.close()

    # ---- our own failures ----

    def _failed(self, doing: str) -> None:
        """Count and log (with its traceback) an exception of ours: a bug, never the peer's
        fault; the peer's bad bytes are ProtocolErrors and are logged at INFO."""
        self.ctx.internal_error("%s from %s", doing, self.peer)

    def _error_response(self, header: RequestHeader, flexible: bool) -> list[Buffer]:
        """Kafka's answer to a handler's own exception: UNKNOWN_SERVER_ERROR where the
        response has a top-level error code; where it has none, the connection closes."""
        name = _api_name(header.api_key)
        self._failed(f"in {name} v{header.api_version}")
        try:
            from msklite.protocol import messages  # the spec codec: off the start-up path

            body = messages.error_response(header.api_key, header.api_version)
        except Exception:
            self._failed(f"building the error response to {name}")
            body = None
        if body is None:
            raise _Failed
        return _framed(header.correlation_id, flexible, [body])


class _Failed(Exception):
    """A request failed on our own error (already counted and logged) and got no answer."""


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return str(api_key)


def _framed(correlation_id: int, flexible: bool, body: list[Buffer]) -> list[Buffer]:
    head = response_header(correlation_id, flexible)
    size = len(head) + sum(len(b) for b in body)
    return [_SIZE.pack(size) + head, *body]
