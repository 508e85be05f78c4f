"""The HTTP endpoint of `msklite serve` (msklite/web): when it starts, how it is named, how
routes register, and that aiohttp stays out of the cold start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import aiohttp
from aiohttp import web

from msklite import Cluster
from msklite.web import Route
from msklite.web.endpoint import HttpEndpoint
from msklite.web.service import Service


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "msklite", "serve", "--ephemeral", "--brokers", "1", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_serve_prints_the_aws_endpoint_after_the_bootstrap_line() -> None:
    proc = _serve("--port", "0")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while not lines[-1].startswith("AWS endpoint: "):
            assert lines[-1], f"serve ended before the AWS endpoint line: {lines}"
            lines.append(proc.stdout.readline())
        assert lines[0].startswith("Bootstrap servers: 127.0.0.1:")
        url = lines[-1].split(": ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":4566")
        assert _status(f"{url}/no/such/path") == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "msklite stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_without_http() -> None:
    proc = _serve("--port", "0", "--no-http")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while "cluster id" not in lines[-1]:
            assert lines[-1], f"serve ended early: {lines}"
            lines.append(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "AWS endpoint" not in "".join(lines) + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_busy_aws_port() -> None:
    with Service(Cluster(brokers=1), aws_port=0) as busy:
        assert busy.url is not None
        port = busy.url.rsplit(":", 1)[1]
        proc = _serve("--port", "0", "--aws-port", port)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"cannot serve HTTP on port {port}" in err and "--aws-port 0" in err


def test_aws_port_out_of_range() -> None:
    proc = _serve("--port", "0", "--aws-port", "70000")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "a port is 0-65535" in err


def test_aiohttp_is_not_imported_by_the_cold_start() -> None:
    code = "import sys, msklite.__main__, msklite.web.service; print('aiohttp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


_FIRST_CONNECTION = """
import json, sys, urllib.request
from msklite.cluster import Cluster
from msklite.web.service import Service
svc = Service(Cluster(brokers=1), aws_port=0).start()
loaded = [m for m in ("aiohttp", "botocore") if m in sys.modules]
with urllib.request.urlopen(svc.url + "/v1/kafka-versions", timeout=60) as answer:
    versions = json.load(answer)["kafkaVersions"]
print(json.dumps([loaded, answer.status, bool(versions), "aiohttp" in sys.modules]))
svc.stop()
"""


def test_the_http_side_loads_on_its_first_connection() -> None:
    """A service whose endpoint nobody calls never imports aiohttp or botocore (≈ 20 MB);
    the first request, made before they load, is answered all the same."""
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CONNECTION],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == [[], 200, True, True]


def test_service_exposes_its_url_from_synchronous_code() -> None:
    service = Service(Cluster(brokers=1), aws_port=0).start()
    try:
        assert service.url is not None and service.url.startswith("http://127.0.0.1:")
        assert _status(f"{service.url}/nothing-here") == 404
        assert service.cluster.started
    finally:
        service.stop()
    assert service.url is None and not service.cluster.started


def test_service_without_http() -> None:
    with Service(Cluster(brokers=1), aws_port=None) as service:
        assert service.url is None


async def test_routes_register_on_the_endpoint() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["name"]})

    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    endpoint = HttpEndpoint(sock, [Route("GET", "/hello/{name}", hello)])
    await endpoint.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/hello/b-1") as answer:
                assert answer.status == 200
                assert await answer.json() == {"name": "b-1"}
            async with session.post(f"{url}/hello/b-1") as answer:
                assert answer.status == 405
    finally:
        await endpoint.stop()


async def test_service_on_the_callers_loop() -> None:
    async with Service(Cluster(brokers=1), aws_port=0) as service:
        assert service.url is not None
        async with aiohttp.ClientSession() as session, session.get(service.url) as answer:
            assert answer.status == 404
