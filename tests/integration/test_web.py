"""The HTTP endpoint of `msklite serve` (msklite/web): when it starts, how it is named, how
routes register, and that aiohttp stays out of the cold start."""

from __future__ import annotations

import os
import signal
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

    endpoint = HttpEndpoint("127.0.0.1", 0, [Route("GET", "/hello/{name}", hello)])
    await endpoint.start()
    try:
        assert endpoint.port != 0
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{endpoint.url}/hello/b-1") as answer:
                assert answer.status == 200
                assert await answer.json() == {"name": "b-1"}
            async with session.post(f"{endpoint.url}/hello/b-1") as answer:
                assert answer.status == 405
    finally:
        await endpoint.stop()


async def test_service_on_the_callers_loop() -> None:
    async with Service(Cluster(brokers=1), aws_port=0) as service:
        assert service.url is not None
        async with aiohttp.ClientSession() as session, session.get(service.url) as answer:
            assert answer.status == 404
