"""The HTTP server (aiohttp) behind the routes of msklite/web: bound on the running event loop,
so handlers touch the clusters directly, as the Kafka handlers do."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from msklite.msk import host_port
from msklite.web import Route


class HttpEndpoint:
    def __init__(self, host: str, port: int, routes: Iterable[Route]) -> None:
        self.host = host
        self.port = port  # 0 until started when asked for any free port
        self._app = web.Application()
        for route in routes:
            self._app.router.add_route(route.method, route.path, route.handler)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{host_port(self.host, self.port)}"

    async def start(self) -> None:
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
