"""The HTTP side of `msklite serve`: one aiohttp server on the clusters' event loop, started
after the Kafka listeners answer, serving the MSK control plane (`msk_api.py`) and whatever
else registers routes (metrics, the web console).

The interface others build on:
- a route is `Route(method, path, handler)`: an aiohttp handler (`async (request) -> response`)
  on an aiohttp path pattern (`/metrics`, `/v1/clusters/{clusterArn}`);
- a route provider is a function `routes(fleet: Fleet) -> list[Route]`, called once when the
  endpoint starts; `Fleet` (`fleet.py`) holds the clusters this process serves (`fleet.default`
  is the one `msklite serve` started itself). Providers are listed in `service.http_routes`;
- nothing in this package imports aiohttp at module level except `endpoint.py` and the route
  modules, which `Service` imports in a worker thread on the HTTP port's first connection, so
  that neither the cold start nor a process whose HTTP side nobody calls pays for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

# LocalStack's edge port: tooling set up for an AWS emulator (`AWS_ENDPOINT_URL`,
# `--endpoint-url http://localhost:4566`) finds msklite unchanged, and it clashes with no port
# a Kafka or MSK cluster uses (9092-9098, 2181, 11001-11002).
DEFAULT_AWS_PORT = 4566

# where the web console (console.py) and the Prometheus endpoint (metrics.py) answer
CONSOLE_PATH = "/console/"
METRICS_PATH = "/metrics"

__all__ = ["CONSOLE_PATH", "DEFAULT_AWS_PORT", "METRICS_PATH", "Handler", "Route"]

Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str  # an HTTP method, or "*" for any
    path: str  # an aiohttp path pattern; `{name}` segments reach the handler as match_info
    handler: Handler
