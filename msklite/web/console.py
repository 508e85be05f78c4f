"""The web console: pages under /console/ (static HTML, JS and CSS shipped in
msklite/web/static, no dependency), the JSON they poll, and the fault buttons' actions.

    GET  /console/                         the page (brokers, topics, groups, transactions)
    GET  /console/api/state[?cluster=N]    everything the page shows, as JSON
    POST /console/api/brokers/{id}/{stop|start}
    POST /console/api/azs/{az}/{stop|start}

`cluster` picks one of the process's running clusters by name (default: the one `msklite
serve` started). The page refreshes by polling the state every two seconds; the rates and the
lag history come from the cluster's metrics sampler (msklite/metrics/meters.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import asdict
from importlib import resources
from typing import Any

from aiohttp import web

from msklite.cluster import Cluster
from msklite.errors import KafkaError
from msklite.metrics import state
from msklite.metrics.meters import Sampler, sampler_for
from msklite.web import CONSOLE_PATH, Route
from msklite.web.fleet import DEFAULT_CLUSTER_NAME, Fleet

STATIC = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}


def routes(fleet: Fleet) -> list[Route]:
    console = _Console(fleet)
    return [
        Route("GET", "/console", console.redirect),
        Route("GET", CONSOLE_PATH, console.page),
        Route("GET", "/console/api/state", console.state),
        Route("POST", "/console/api/brokers/{id}/{action}", console.broker_action),
        Route("POST", "/console/api/azs/{az}/{action}", console.az_action),
        Route("GET", "/console/{file}", console.static),
    ]


def _read_static(name: str) -> bytes:
    return resources.files("msklite.web").joinpath("static", name).read_bytes()


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), status=status, content_type="application/json"
    )


def _rate(sampler: Sampler, node_id: int, name: str) -> float:
    """The one-minute rate, as MSK's dashboards show BytesInPerSec."""
    meter = sampler.meter(node_id, name)
    return 0.0 if meter is None else meter.one


def snapshot(cluster: Cluster, sampler: Sampler, name: str, names: list[str]) -> dict[str, Any]:
    """What the page shows of one cluster (call on its loop)."""
    controller = cluster.controller
    assert controller is not None
    brokers = []
    for view in state.brokers(cluster):
        row: dict[str, Any] = asdict(view)
        row["bytes_in_per_sec"] = _rate(sampler, view.node_id, "BytesInPerSec")
        row["bytes_out_per_sec"] = _rate(sampler, view.node_id, "BytesOutPerSec")
        row["messages_in_per_sec"] = _rate(sampler, view.node_id, "MessagesInPerSec")
        brokers.append(row)
    groups = []
    for group in state.groups(cluster):
        row = asdict(group)
        row["total_lag"] = sum(p.lag for p in group.lags)
        row["history"] = [
            {"t": s.at_ms, "lags": {f"{t}-{p}": lag for (t, p), lag in s.lags.items()}}
            for s in sampler.lag_history.get(group.group_id, ())
        ]
        groups.append(row)
    return {
        "cluster": {
            "name": name,
            "id": controller.cluster_id,
            "kafka_version": cluster.kafka_version,
            "bootstrap": cluster.bootstrap_servers,
        },
        "clusters": names,
        "azs": list(cluster.azs),
        "now": cluster.clock.now_ms(),
        "brokers": brokers,
        "topics": [asdict(t) for t in state.topics(cluster)],
        "groups": groups,
        "transactions": [asdict(t) for t in cluster.transactions()],
    }


class _Console:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.files: dict[str, bytes] = {}

    def _cluster(self, request: web.Request) -> tuple[str, Cluster]:
        name = request.query.get("cluster", DEFAULT_CLUSTER_NAME)
        cluster = self.fleet.running().get(name)
        if cluster is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no running cluster named {name!r}"}),
                content_type="application/json",
            )
        return name, cluster

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(CONSOLE_PATH)

    async def page(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        body = self.files.get(name)
        if body is None:
            body = self.files[name] = _read_static(name)
        return web.Response(
            body=body,
            content_type=STATIC[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def state(self, request: web.Request) -> web.StreamResponse:
        name, cluster = self._cluster(request)
        names = sorted(self.fleet.running())
        return _json(snapshot(cluster, sampler_for(cluster), name, names))

    async def broker_action(self, request: web.Request) -> web.StreamResponse:
        _, cluster = self._cluster(request)
        try:
            node_id = int(request.match_info["id"])
        except ValueError:
            return _json({"error": "a broker id is a number"}, 400)
        action = request.match_info["action"]
        if action == "stop":
            return await self._act(cluster.astop_broker(node_id))
        if action == "start":
            return await self._act(cluster.astart_broker(node_id))
        return _json({"error": f"unknown action {action!r}: stop or start"}, 404)

    async def az_action(self, request: web.Request) -> web.StreamResponse:
        _, cluster = self._cluster(request)
        az = request.match_info["az"]
        action = request.match_info["action"]
        if action == "stop":
            return await self._act(cluster.astop_az(az))
        if action == "start":
            return await self._act(cluster.astart_az(az))
        return _json({"error": f"unknown action {action!r}: stop or start"}, 404)

    async def _act(self, change: Awaitable[None]) -> web.StreamResponse:
        try:
            await change
        except (ValueError, TypeError, RuntimeError, OSError) as e:
            return _json({"error": str(e)}, 400)
        except KafkaError as e:
            return _json({"error": f"{e.code.name}: {e}"}, 400)
        return _json({"ok": True})
