"""Per-request fault hooks for your own tests (franz-go kfake's `ControlKey`): intercept,
delay or fail one kind of request, on one broker or all of them.

    from msklite.protocol.api_keys import ApiKey
    from msklite.testing.control import RequestControl

    with RequestControl(cluster) as control:
        control.fail(ApiKey.PRODUCE, ErrorCode.NOT_LEADER_OR_FOLLOWER)  # the next Produce
        control.delay(ApiKey.FETCH, 0.5, times=None)                      # every Fetch
        ...

A rule matches requests of its API key (on `broker`, or on any broker when None) and acts on
the next `times` of them (None: on all of them until removed); rules are tried in the order
they were added and the first that matches acts. Leaving the `with` block (or `clear()`)
removes every rule. Rules may be added from any thread; they act on the cluster's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from msklite.cluster import Cluster
from msklite.errors import ErrorCode, ProtocolError
from msklite.handlers.context import BrokerContext, Handler, Response
from msklite.protocol import produce as produce_codec
from msklite.protocol.api_keys import ApiKey
from msklite.protocol.header import RequestHeader
from msklite.protocol.primitives import Buffer, Reader

Action = Callable[[Handler, BrokerContext, RequestHeader, Reader], Response | Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Request:
    """What an `intercept` function sees of a request."""

    broker: int
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: bytes  # the request body after the header (tagged fields of the header skipped)


@dataclass(eq=False, slots=True)
class Rule:
    api_key: int
    broker: int | None
    times: int | None  # requests still to act on; None: every one
    action: Action
    hits: int = 0  # requests this rule acted on

    def matches(self, broker: int, api_key: int) -> bool:
        return self.api_key == api_key and self.broker in (None, broker)


class RequestControl:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        cluster.set_request_hook(self._hook)

    def __enter__(self) -> RequestControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def clear(self) -> None:
        """Remove every rule and the hook: requests go straight to the handlers again."""
        with self._lock:
            self._rules.clear()
        self._cluster.set_request_hook(None)

    def remove(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    # ---- rules ----

    def fail(
        self,
        api_key: int,
        error: ErrorCode,
        *,
        broker: int | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Answer with `error` for every partition, without touching the log. Produce only:
        other APIs fail with `disconnect`, or answer what you choose with `intercept`."""
        if api_key != ApiKey.PRODUCE:
            raise ValueError(
                f"fail() answers Produce ({int(ApiKey.PRODUCE)}) requests, not api key "
                f"{int(api_key)}: use disconnect() or intercept() for other APIs"
            )
        return self._add(api_key, broker, times, _produce_error(ErrorCode(error)))

    def delay(
        self,
        api_key: int,
        seconds: float,
        *,
        broker: int | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Handle the request as usual, `seconds` later. Kafka answers a connection's
        requests in order, so the requests behind it on that connection wait too."""
        if seconds < 0:
            raise ValueError(f"a delay is at least 0 seconds, got {seconds}")
        return self._add(api_key, broker, times, _delayed(seconds))

    def disconnect(self, api_key: int, *, broker: int | None = None, times: int | None = 1) -> Rule:
        """Close the connection instead of answering, as Kafka does with a request it cannot
        parse."""
        return self._add(api_key, broker, times, _disconnect)

    def intercept(
        self,
        api_key: int,
        answer: Callable[[Request], list[bytes] | None],
        *,
        broker: int | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Call `answer` (on the cluster's loop) with each matching request. It returns the
        response body (the header is added for you), or None to let the broker handle the
        request as usual; only answered requests count towards `times`."""
        return self._add(api_key, broker, times, _intercepting(answer))

    def _add(self, api_key: int, broker: int | None, times: int | None, action: Action) -> Rule:
        if times is not None and times < 1:
            raise ValueError(f"times is at least 1 (or None for every request), got {times}")
        ids = [i.node_id for i in self._cluster.infos]
        if broker is not None and broker not in ids:
            raise ValueError(f"no broker {broker}: the cluster's brokers are {ids}")
        rule = Rule(int(api_key), broker, times, action)
        with self._lock:
            self._rules.append(rule)
        return rule

    # ---- on the cluster's loop ----

    def _hook(
        self, handler: Handler, ctx: BrokerContext, header: RequestHeader, reader: Reader
    ) -> Response | Awaitable[Response]:
        with self._lock:
            rule = next((r for r in self._rules if r.matches(ctx.node_id, header.api_key)), None)
        if rule is None:
            return handler(ctx, header, reader)
        try:
            result = rule.action(handler, ctx, header, reader)
        except ProtocolError:
            self._acted(rule)  # a disconnect
            raise
        if result is _PASSED:
            return handler(ctx, header, reader)
        self._acted(rule)
        return result

    def _acted(self, rule: Rule) -> None:
        with self._lock:
            rule.hits += 1
            if rule.times is not None:
                rule.times -= 1
                if rule.times == 0 and rule in self._rules:
                    self._rules.remove(rule)


# An intercept function that declined: the broker handles the request as usual.
_PASSED: list[Buffer] = []


def _produce_error(error: ErrorCode) -> Action:
    def answer(
        handler: Handler, ctx: BrokerContext, header: RequestHeader, reader: Reader
    ) -> Response:
        req = produce_codec.decode_request(reader, header.api_version)
        if req.acks == 0:
            return None
        responses = [
            (
                t.name,
                [produce_codec.PartitionProduceResponse(p.index, error) for p in t.partition_data],
            )
            for t in req.topic_data
        ]
        return [produce_codec.encode_response(header.api_version, responses)]

    return answer


def _delayed(seconds: float) -> Action:
    async def answer(
        handler: Handler, ctx: BrokerContext, header: RequestHeader, reader: Reader
    ) -> Response:
        await asyncio.sleep(seconds)
        result = handler(ctx, header, reader)
        if result is None or type(result) is list:
            return result
        return await cast(Awaitable[Response], result)

    def start(
        handler: Handler, ctx: BrokerContext, header: RequestHeader, reader: Reader
    ) -> Awaitable[Response]:
        return answer(handler, ctx, header, reader)

    return start


def _disconnect(
    handler: Handler, ctx: BrokerContext, header: RequestHeader, reader: Reader
) -> Response:
    raise ProtocolError(f"api key {header.api_key} disconnected by the test kit")


def _intercepting(fn: Callable[[Request], list[bytes] | None]) -> Action:
    def answer(
        handler: Handler, ctx: BrokerContext, header: RequestHeader, reader: Reader
    ) -> Response:
        request = Request(
            ctx.node_id,
            header.api_key,
            header.api_version,
            header.correlation_id,
            header.client_id,
            bytes(reader.data[reader.pos :]),
        )
        out = fn(request)
        if out is None:
            return _PASSED
        body: list[Buffer] = list(out)
        return body

    return answer
