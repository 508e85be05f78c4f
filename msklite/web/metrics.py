"""GET /metrics[?cluster=NAME]: the Prometheus endpoint (MSK's open monitoring, as
msklite/metrics/exporter.py renders it) of one of the process's running clusters (default: the
one `msklite serve` started).

Without prometheus-client (the `metrics` extra) the route answers 501 saying so.
"""

from __future__ import annotations

from aiohttp import web

from msklite.metrics import available
from msklite.metrics.meters import sampler_for
from msklite.web import METRICS_PATH, Route
from msklite.web.fleet import DEFAULT_CLUSTER_NAME, Fleet


def routes(fleet: Fleet) -> list[Route]:
    return [Route("GET", METRICS_PATH, _Metrics(fleet).scrape)]


class _Metrics:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def scrape(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("cluster", DEFAULT_CLUSTER_NAME)
        cluster = self.fleet.running().get(name)
        if cluster is None:
            raise web.HTTPNotFound(text=f"no running cluster named {name!r}\n")
        if not available():
            raise web.HTTPNotImplemented(
                text="metrics need prometheus-client: pip install 'msklite[metrics]'\n"
            )
        from msklite.metrics.exporter import CONTENT_TYPE, exposition_for

        # a long scrape lets the brokers' requests run between the brokers' parts
        body = await exposition_for(cluster).arender(sampler_for(cluster))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
