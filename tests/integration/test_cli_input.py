"""`msklite serve`: bad input named with what is allowed, the console, terminals it does not own."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

import msklite

SERVE = [sys.executable, "-m", "msklite", "serve"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        stdin=subprocess.DEVNULL,
    )


def test_version_and_log_level_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "msklite", "--version"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and out.stdout.strip() == f"msklite {msklite.__version__}"
    helptext = subprocess.run([*SERVE, "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "--log-level" in helptext and "how much the brokers log" in helptext
    bad = _run("--ephemeral", "--log-level", "LOUD")
    assert bad.returncode == 2 and "invalid choice: 'LOUD'" in bad.stderr


def test_ports_that_do_not_fit_are_refused() -> None:
    for port, brokers in (("65535", "3"), ("99999", "1")):
        out = _run("--ephemeral", "--port", port, "--brokers", brokers)
        assert out.returncode == 2, out
        assert f"port {port} does not fit {brokers} broker(s)" in out.stderr


def _serve_until_ready(*args: str) -> tuple[subprocess.Popen[str], str]:
    """The server and what it printed up to its status line."""
    proc = subprocess.Popen(
        [*SERVE, "--port", "0", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if line.startswith("  cluster id"):
            return proc, seen
    proc.kill()
    raise AssertionError(proc.communicate())


def _read_until(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(seen)


def test_a_saved_cluster_keeps_its_size(tmp_path: Path) -> None:
    proc, _ = _serve_until_ready("--data-dir", str(tmp_path), "--brokers", "3")
    proc.terminate()
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    out = _run("--data-dir", str(tmp_path), "--brokers", "1", "--port", "0")
    assert out.returncode == 2
    assert "holds a cluster of 3 brokers; brokers=1 would leave out broker(s) 2, 3" in out.stderr
    # Without --brokers, the saved size is used.
    proc, started = _serve_until_ready("--data-dir", str(tmp_path))
    proc.terminate()
    proc.communicate(timeout=30)
    assert "b-3" in started


def test_console_commands_name_bad_values() -> None:
    proc, _ = _serve_until_ready("--ephemeral", "--brokers", "1")
    assert proc.stdin is not None
    proc.stdin.write(
        "pause 7\npause x\nstop-az nope\ncreate-topic orders 3 1 retention.ms=1000\n"
        "create-topic orders\n"
    )
    proc.stdin.flush()
    out = _read_until(proc, "TOPIC_ALREADY_EXISTS")
    proc.terminate()
    proc.communicate(timeout=30)
    assert "error: no broker 7: the cluster's brokers are 1" in out
    assert "error: a broker id is a number, got 'x'" in out
    assert "error: no AZ 'nope': the cluster's AZs are use1-az1" in out
    assert "created topic orders: 3 partition(s)" in out
    assert "error: TOPIC_ALREADY_EXISTS" in out


def test_serve_in_the_background_of_a_terminal_keeps_serving() -> None:
    """`msklite serve &` in an interactive shell: the terminal belongs to the shell's
    foreground job, and reading it would stop the whole cluster (SIGTTIN)."""
    master, slave = pty.openpty()
    ready_r, ready_w = os.pipe()
    # A session that owns the terminal, with the server in a background process group of it
    # (what a shell's `&` does).
    launcher = (
        "import fcntl, os, sys, termios\n"
        "os.setsid()\n"
        f"fcntl.ioctl({slave}, termios.TIOCSCTTY, 0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.setpgid(0, 0)\n"
        f"    os.dup2({slave}, 0)\n"
        f"    os.dup2({ready_w}, 1)\n"
        "    os.execv(sys.executable, sys.argv[1:])\n"
        "print(pid, file=sys.stderr, flush=True)\n"
        "os.waitpid(pid, os.WUNTRACED)\n"
    )
    shell = subprocess.Popen(
        [sys.executable, "-c", launcher, *SERVE, "--ephemeral", "--port", "0", "--brokers", "1"],
        pass_fds=(slave, ready_w),
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    os.close(ready_w)
    os.close(slave)
    assert shell.stderr is not None
    server = int(shell.stderr.readline())
    seen = b""
    try:
        while b"no console" not in seen:  # printed once serving (the AWS endpoint too)
            chunk = _read_within(ready_r, 30)
            assert chunk, seen
            seen += chunk
        os.write(master, b"status\n")
        # A stopped process does not act on SIGTERM; a serving one shuts down cleanly.
        os.kill(server, signal.SIGTERM)
        while chunk := _read_within(ready_r, 30):
            seen += chunk
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)
        os.close(ready_r)
    assert b"no console" in seen and b"msklite stopped" in seen
    shell.wait(30)
    os.close(master)


def _read_within(fd: int, seconds: float) -> bytes:
    """What `fd` gives within `seconds` (b"" at its end); fails the test past that."""
    ready, _, _ = select.select([fd], [], [], seconds)
    assert ready, f"nothing within {seconds} s (stopped?)"
    return os.read(fd, 65536)


def test_kafka_version_is_chosen_and_checked() -> None:
    bad = _run("--ephemeral", "--kafka-version", "3.6.1")
    assert bad.returncode == 2, bad
    assert "unknown Kafka version '3.6.1'" in bad.stderr and "2.8.1, 3.3.2" in bad.stderr
    proc, seen = _serve_until_ready("--ephemeral", "--kafka-version", "2.8.1")
    proc.terminate()
    proc.communicate(timeout=30)
    assert seen.rstrip().endswith("Kafka 2.8.1")
