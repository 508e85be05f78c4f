"""`msklite serve` as a library: the default cluster, the clusters the MSK API manages (fleet.py)
and the HTTP endpoint serving the routes of msklite/web on the same event loop.

    async with Service(Cluster(brokers=3), aws_port=0) as svc:
        svc.url   # http://127.0.0.1:PORT, for boto3's endpoint_url

or `svc = Service(...).start()` / `svc.stop()` from synchronous code (a loop in a background
thread, as `Cluster.start()`). The HTTP port is bound after the default cluster's listeners
accept connections; aiohttp, botocore's service model and the routes load in a worker thread
on its first connection (≈ 20 MB and ≈ 0.25 CPU-s a process that never uses them does not
pay), which waits in the socket's backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from msklite.cluster import Cluster
from msklite.loop_thread import LoopThread
from msklite.msk import host_port
from msklite.web import DEFAULT_AWS_PORT, Route
from msklite.web.fleet import Fleet

if TYPE_CHECKING:
    from msklite.web.endpoint import HttpEndpoint

T = TypeVar("T")
logger = logging.getLogger(__name__)


def http_routes(fleet: Fleet) -> list[Route]:
    """Every route provider's routes (a provider imports aiohttp: called off the event loop).
    A new provider adds its `routes(fleet)` here."""
    from msklite.web import console, metrics, msk_api

    return [*msk_api.routes(fleet), *console.routes(fleet), *metrics.routes(fleet)]


def _load_endpoint(sock: socket.socket, fleet: Fleet) -> HttpEndpoint:
    from msklite.web.endpoint import HttpEndpoint

    return HttpEndpoint(sock, http_routes(fleet))


async def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on the first address `host` resolves to (as asyncio's servers:
    SO_REUSEADDR, non-blocking)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Service:
    def __init__(
        self,
        cluster: Cluster,
        *,
        aws_host: str | None = None,
        aws_port: int | None = DEFAULT_AWS_PORT,
        transition_delay: float = 0.0,
        scram_secrets: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        """`aws_port=None`: no HTTP endpoint (nor MSK API); 0: any free port. `aws_host`
        defaults to the cluster's host. `transition_delay`: seconds the MSK API's clusters
        stay in a transitional state (CREATING, UPDATING, ...) beyond the work itself.
        `scram_secrets`: Secrets Manager secret name (`AmazonMSK_...`) -> (user, password),
        for BatchAssociateScramSecret."""
        self.cluster = cluster
        self.fleet = Fleet(cluster, cluster.host, transition_delay, scram_secrets)
        self.aws_host = aws_host or cluster.host
        self.aws_port = aws_port
        self._socket: socket.socket | None = None
        self._opening: asyncio.Task[None] | None = None
        self._endpoint: HttpEndpoint | None = None
        self._bridge = LoopThread("msklite-service")

    @property
    def url(self) -> str | None:
        """The AWS endpoint (`http://host:port`) once it listens; None without one."""
        if self._socket is None:
            return None
        return f"http://{host_port(self.aws_host, self._socket.getsockname()[1])}"

    async def astart(self) -> None:
        """The default cluster, then the HTTP endpoint."""
        await self.cluster.astart()
        try:
            await self.astart_http()
        except BaseException:
            await self.astop()
            raise

    async def astart_http(self) -> None:
        """Start the clusters the MSK API created (saved in the data directory), then listen
        on the HTTP port (no-op without one); the default cluster is running. ImportError
        when the HTTP side's libraries are not installed."""
        if self.aws_port is None or self._socket is not None:
            return
        for name in ("aiohttp", "botocore"):
            if importlib.util.find_spec(name) is None:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        await self.fleet.open()
        self._socket = await _listen(self.aws_host, self.aws_port)
        asyncio.get_running_loop().add_reader(self._socket.fileno(), self._first_connection)
        # imported here, as the endpoint: after the Kafka listeners answer
        from msklite.metrics.meters import sampler_for

        # the console's rates and lag history, and the meters' rates, from now on
        sampler_for(self.cluster)

    def _first_connection(self) -> None:
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._socket.fileno())
        self._opening = loop.create_task(self._open(self._socket))

    async def _open(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            endpoint = await loop.run_in_executor(None, _load_endpoint, sock, self.fleet)
            await endpoint.start()
        except Exception:
            # our bug or a broken install: refuse the connections rather than leave them hanging
            logger.exception("the HTTP endpoint could not start")
            sock.close()
            return
        self._endpoint = endpoint

    async def astop(self) -> None:
        from msklite.metrics.meters import stop_sampler

        if self._socket is not None:
            if self._opening is None:
                asyncio.get_running_loop().remove_reader(self._socket.fileno())
            else:
                await self._opening
                self._opening = None
            if self._endpoint is not None:
                await self._endpoint.stop()
                self._endpoint = None
            self._socket.close()
            self._socket = None
        for cluster in {self.cluster, *self.fleet.running().values()}:
            await stop_sampler(cluster)
        await self.fleet.close()
        await self.cluster.astop()

    async def __aenter__(self) -> Service:
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the service's event loop (from synchronous code, after `start()`)."""
        return self._bridge.call(fn)

    def start(self) -> Service:
        """Start on a private event loop in a background thread; returns when serving."""
        self._bridge.start(self.astart)
        return self

    def stop(self) -> None:
        self._bridge.stop(self.astop())

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
