"""The HTTP server (aiohttp) behind the routes of msklite/web: bound on the running event loop,
so handlers touch the clusters directly, as the Kafka handlers do. It serves on a socket the
`Service` bound and listened on already (connections made meanwhile wait in its backlog)."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from aiohttp import web

from msklite.web import Route


class HttpEndpoint:
    def __init__(self, sock: socket.socket, routes: Iterable[Route]) -> None:
        self._sock = sock
        self._app = web.Application()
        for route in routes:
            self._app.router.add_route(route.method, route.path, route.handler)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.SockSite(runner, self._sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
