"""Cold start and idle memory of `msklite serve`.

Each run picks free ports, spawns `python -m msklite serve --ephemeral --port P --brokers N`
and polls 127.0.0.1:P with a raw-socket Metadata v1 request until it is answered. It measures,
from just before the spawn: the first accepted TCP connection, the complete Metadata answer and
the `Bootstrap servers:` line on stdout and the `AWS endpoint:` line (the HTTP port listens;
it comes up after the Kafka listeners). After a short idle pause it reads VmRSS and the CPU
time the process has used so far (idle: no HTTP request yet), then times the first HTTP
request, which loads the HTTP side (aiohttp, botocore's service model), and reads VmRSS and
the CPU time again. One extra run first warms caches (page cache) and is not counted.

msklite's bytecode is compiled first (`compileall`), as `pip install` does for a regular
install: with PYTHONDONTWRITEBYTECODE set (as in some sandboxes and CI images) an editable
install would otherwise recompile every module at every start, ≈ 20 ms here.
"""

from __future__ import annotations

import compileall
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msklite
from benchmarks.procs import HOST, BenchError, BrokerProcess, free_port_block, msklite_command
from benchmarks.report import Section, ms, summary
from benchmarks.wire import first_metadata

BOOTSTRAP_PREFIX = "Bootstrap servers:"
AWS_PREFIX = "AWS endpoint:"


def _first_http_answer(url: str, timeout: float) -> float:
    """perf_counter when the endpoint first answered (any HTTP status)."""
    try:
        urllib.request.urlopen(f"{url}/v1/kafka-versions", timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # an answer all the same
    return time.perf_counter()


def _one_run(brokers: int, timeout: float, idle: float, loop: str) -> dict[str, Any]:
    port = free_port_block(brokers)
    # no setpriv wrapper: its exec would be counted in the start time
    argv = msklite_command(brokers, port, loop)
    with BrokerProcess("msklite", argv, die_with_parent=False) as server:
        t0 = server.spawned_at
        try:
            answer = first_metadata(HOST, port, timeout, check_alive=server.check_alive)
        except (TimeoutError, OSError) as e:
            server.check_alive()
            raise BenchError(f"no Metadata answer on port {port}: {e}") from e
        bootstrap_at, line = server.wait_line(BOOTSTRAP_PREFIX, timeout)
        aws_at, aws_line = server.wait_line(AWS_PREFIX, timeout)
        got = len(answer.metadata.brokers)
        if got != brokers:
            raise BenchError(f"Metadata listed {got} brokers, expected {brokers}")
        expected_ports = {f"{HOST}:{port + i}" for i in range(brokers)}
        if set(line.removeprefix(BOOTSTRAP_PREFIX).strip().split(",")) != expected_ports:
            raise BenchError(f"unexpected bootstrap line {line!r} for port {port}")
        time.sleep(idle)
        server.check_alive()
        run: dict[str, Any] = {
            "connect_s": answer.connected_at - t0,
            "metadata_s": answer.answered_at - t0,
            "bootstrap_line_s": bootstrap_at - t0,
            "aws_line_s": aws_at - t0,
            "connect_attempts": answer.attempts,
            "idle_rss_kib": server.rss_kib(),
            "startup_cpu_s": server.cpu_seconds(),
        }
        asked = time.perf_counter()
        run["first_http_request_s"] = (
            _first_http_answer(aws_line.removeprefix(AWS_PREFIX).strip(), timeout) - asked
        )
        run["http_rss_kib"] = server.rss_kib()
        run["http_cpu_s"] = server.cpu_seconds()
        rc = server.stop()
        run["exit_code"] = rc
        if stderr := server.stderr_tail():
            run["stderr_tail"] = stderr
        return run


def _interpreter_floor(runs: int, timeout: float) -> list[float]:
    """Spawn-to-exit of `python -c 'import asyncio'`: what any asyncio server pays first."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import asyncio"], check=True, timeout=timeout)
        times.append(time.perf_counter() - t0)
    return times


def run(
    runs: int, brokers: int = 3, timeout: float = 30.0, idle: float = 0.5, loop: str = "default"
) -> Section:
    section = Section("coldstart")
    compileall.compile_dir(str(Path(msklite.__file__).parent), quiet=1)
    results: list[dict[str, Any]] = []
    stderr_seen = False
    for i in range(runs + 1):  # run 0 is the discarded warm-up
        try:
            one = _one_run(brokers, timeout, idle, loop)
        except (BenchError, OSError) as e:
            section.errors.append(f"run {i}: {e}")
            continue
        if one.get("exit_code") != 0:
            section.errors.append(f"run {i}: msklite exited with code {one['exit_code']}")
        if one.get("stderr_tail"):
            stderr_seen = True
            section.errors.append(f"run {i}: msklite stderr: {one['stderr_tail'][-300:]}")
        if i > 0:
            results.append(one)
    floor = _interpreter_floor(runs, timeout)

    def col(key: str) -> list[float]:
        return [float(r[key]) for r in results]

    metadata = summary(col("metadata_s"))
    connect = summary(col("connect_s"))
    bootstrap = summary(col("bootstrap_line_s"))
    aws_line = summary(col("aws_line_s"))
    http = summary(col("first_http_request_s"))
    rss = summary(col("idle_rss_kib"))
    cpu = summary(col("startup_cpu_s"))
    http_rss = summary(col("http_rss_kib"))
    http_cpu = summary(col("http_cpu_s"))
    floor_s = summary(floor)
    section.data = {
        "runs": results,
        "brokers": brokers,
        "server_loop": loop,
        "idle_pause_s": idle,
        "first_metadata_s": metadata,
        "first_connect_s": connect,
        "bootstrap_line_s": bootstrap,
        "aws_line_s": aws_line,
        "first_http_request_s": http,
        "idle_rss_kib": rss,
        "startup_cpu_s": cpu,
        "http_rss_kib": http_rss,
        "http_cpu_s": http_cpu,
        "interpreter_floor_s": floor_s,
        "stderr_seen": stderr_seen,
    }
    n = f"{len(results)} runs"
    section.row(
        "spawn -> first Metadata answer",
        f"{ms(metadata['median'])}",
        f"median of {n}, min {ms(metadata['min'])}, max {ms(metadata['max'])}",
    )
    section.row("spawn -> first TCP accept", ms(connect["median"]), f"min {ms(connect['min'])}")
    section.row(
        "spawn -> 'Bootstrap servers:' line",
        ms(bootstrap["median"]),
        f"min {ms(bootstrap['min'])}",
    )
    section.row(
        "spawn -> 'AWS endpoint:' line",
        ms(aws_line["median"]),
        f"min {ms(aws_line['min'])}; the HTTP port listens, after the Kafka listeners",
    )
    section.row(
        "first HTTP request (loads the HTTP side)",
        ms(http["median"]),
        f"min {ms(http['min'])}; after the idle pause, not part of the cold start",
    )
    if rss["median"] is not None:
        section.row(
            "idle RSS after start",
            f"{rss['median'] / 1024:.1f} MiB",
            f"median, after {idle:.1f} s idle; min {(rss['min'] or 0) / 1024:.1f} MiB",
        )
    if cpu["median"] is not None:
        section.row("CPU used to start", f"{cpu['median']:.2f} s", "utime+stime, median")
    if http_rss["median"] is not None and http_cpu["median"] is not None:
        section.row(
            "RSS once the HTTP side is loaded",
            f"{http_rss['median'] / 1024:.1f} MiB",
            f"median; CPU used by then {http_cpu['median']:.2f} s",
        )
    section.row(
        "floor: python -c 'import asyncio'",
        ms(floor_s["median"]),
        "spawn to exit, median",
    )
    return section
