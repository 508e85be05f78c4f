"""The Prometheus endpoint and the web console over HTTP (the browser side is
test_console_browser.py): what `msklite serve` prints, what /metrics answers, the console's
JSON and its fault actions, and their errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from msklite import Cluster
from msklite.web.service import Service


def _get(url: str) -> tuple[int, str, str]:
    """(status, content type, body)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def _post(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def service() -> Iterator[Service]:
    with Service(Cluster(brokers=3), aws_port=0) as svc:
        yield svc


def test_serve_prints_the_console_and_metrics_lines() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "msklite", "serve", "--ephemeral", "--brokers", "1", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while not lines[-1].startswith("Metrics: "):
            assert lines[-1], f"serve ended before the Metrics line: {lines}"
            lines.append(proc.stdout.readline())
        aws = next(x for x in lines if x.startswith("AWS endpoint: ")).split(": ", 1)[1].strip()
        console = next(x for x in lines if x.startswith("Console: ")).split(": ", 1)[1].strip()
        metrics = lines[-1].split(": ", 1)[1].strip()
        assert console == f"{aws}/console/" and metrics == f"{aws}/metrics"
        status, kind, body = _get(console)
        assert (status, kind) == (200, "text/html; charset=utf-8") and "console.js" in body
        status, kind, body = _get(metrics)
        assert status == 200 and kind.startswith("text/plain")
        assert (
            'kafka_controller_KafkaController_Value{broker="1",name="ActiveControllerCount"} 1.0'
            in body
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_metrics_endpoint_scraped_over_http(service: Service) -> None:
    cluster = service.cluster
    service.call(lambda: cluster.create_topic("scraped", 1, 3))
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for _ in range(7):
        p.produce("scraped", b"x" * 10)
    assert p.flush(30) == 0
    status, kind, body = _get(f"{service.url}/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body)}
    counts = families["kafka_server_BrokerTopicMetrics_Count"].samples
    messages = sum(
        s.value
        for s in counts
        if s.labels.get("topic") == "scraped" and s.labels["name"] == "MessagesInPerSec"
    )
    assert messages == 7
    assert families["kafka_server_BrokerTopicMetrics_Count"].type == "unknown"  # untyped
    assert _get(f"{service.url}/metrics?cluster=nope")[0] == 404


def test_console_state_and_static_files(service: Service) -> None:
    base = f"{service.url}/console"
    with urllib.request.urlopen(base, timeout=10) as answer:  # redirected to /console/
        assert answer.url == f"{base}/"
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        status, content_type, _ = _get(f"{base}/{name}")
        assert (status, content_type) == (200, f"{kind}; charset=utf-8")
    assert _get(f"{base}/../pyproject.toml")[0] == 404
    assert _get(f"{base}/secret.txt")[0] == 404
    status, _, body = _get(f"{base}/api/state")
    state = json.loads(body)
    assert status == 200
    assert state["cluster"]["name"] == "msklite" and state["clusters"] == ["msklite"]
    assert [b["node_id"] for b in state["brokers"]] == [1, 2, 3]
    assert all(b["up"] for b in state["brokers"])
    assert [b["controller"] for b in state["brokers"]] == [True, False, False]
    assert state["topics"] == [] and state["groups"] == [] and state["transactions"] == []
    status, _, body = _get(f"{base}/api/state?cluster=nope")
    assert status == 404 and "nope" in json.loads(body)["error"]


def test_console_fault_actions(service: Service) -> None:
    api = f"{service.url}/console/api"
    cluster = service.cluster
    service.call(lambda: cluster.create_topic("moved", 1, 3))
    assert _post(f"{api}/brokers/9/stop") == (
        400,
        {"error": "no broker 9: the cluster's brokers are 1, 2, 3"},
    )
    assert _post(f"{api}/brokers/two/stop")[0] == 400
    assert _post(f"{api}/brokers/2/reboot")[0] == 404
    assert _post(f"{api}/brokers/2/start") == (400, {"error": "broker 2 is already running"})

    def leader_now() -> int:  # on the service's loop, where the cluster runs
        return service.call(lambda: cluster.partition("moved", 0).leader)

    leader = leader_now()
    assert _post(f"{api}/brokers/{leader}/stop") == (200, {"ok": True})
    assert leader not in cluster.brokers
    assert leader_now() != leader
    state = json.loads(_get(f"{api}/state")[2])
    assert [b["up"] for b in state["brokers"]] == [n != leader for n in (1, 2, 3)]
    assert _post(f"{api}/brokers/{leader}/stop")[0] == 400  # not running
    az = next(b["az"] for b in state["brokers"] if b["node_id"] == leader)
    assert _post(f"{api}/azs/{az}/start") == (200, {"ok": True})
    assert leader in cluster.brokers
    assert _post(f"{api}/azs/nowhere/stop")[0] == 400
    assert _post(f"{api}/azs/{az}/stop") == (200, {"ok": True})
    assert leader not in cluster.brokers
