"""Broker subprocesses: spawn, watch stdout, read /proc figures, stop for sure."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
REPO_DIR = Path(__file__).resolve().parent.parent
MOCK_LAUNCHER = "rdkafka_mock_broker.py"
TANSU_LAUNCHER = "tansu_broker.py"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
SETPRIV = shutil.which("setpriv")  # util-linux


class BenchError(RuntimeError):
    """A benchmark run could not complete (timeout, broker died, client error)."""


def default_peers_dir() -> Path:
    """`../shared/peers` beside the repository; from a git worktree, beside its main
    checkout (the directory holding the shared `.git`) when the first does not exist."""
    here = REPO_DIR.parent / "shared" / "peers"
    if here.is_dir():
        return here
    try:
        common = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return here
    main_checkout = Path(common).parent
    beside_main = main_checkout.parent / "shared" / "peers"
    return beside_main if beside_main.is_dir() else here


_peers_dir: Path | None = None


def set_peers_dir(path: Path | None) -> Path:
    """Where the peer launchers are (None: `default_peers_dir()`); returns it."""
    global _peers_dir
    _peers_dir = path.resolve() if path is not None else default_peers_dir()
    return _peers_dir


def _launcher(name: str) -> str:
    path = (_peers_dir or set_peers_dir(None)) / name
    if not path.is_file():
        raise BenchError(f"no peer launcher {path}: pass --peers-dir")
    return str(path)


def free_port_block(count: int, attempts: int = 50) -> int:
    """A port P such that P..P+count-1 are all free on 127.0.0.1 right now (racy, as always)."""
    for _ in range(attempts):
        with socket.socket() as first:
            first.bind((HOST, 0))
            base: int = first.getsockname()[1]
            if base + count - 1 > 65535:
                continue
            held: list[socket.socket] = []
            try:
                for port in range(base + 1, base + count):
                    s = socket.socket()
                    held.append(s)
                    s.bind((HOST, port))
            except OSError:
                continue
            finally:
                for s in held:
                    s.close()
            return base
    raise BenchError(f"no block of {count} free ports found")


# `python -c` stand-in for `python -m msklite` that makes `import uvloop` fail, so that the
# CLI falls back to the standard asyncio loop.
_WITHOUT_UVLOOP = (
    "import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'msklite'; "
    "from msklite.__main__ import main; sys.exit(main())"
)
SERVER_LOOPS = ("default", "asyncio")


def msklite_command(brokers: int, port: int, loop: str = "default") -> list[str]:
    """`python -m msklite serve ...`; loop="asyncio" hides uvloop from the server process."""
    if loop not in SERVER_LOOPS:
        raise ValueError(f"loop must be one of {SERVER_LOOPS}, not {loop!r}")
    launcher = ["-m", "msklite"] if loop == "default" else ["-c", _WITHOUT_UVLOOP]
    return [
        sys.executable,
        *launcher,
        "serve",
        "--ephemeral",
        "--brokers",
        str(brokers),
        "--port",
        str(port),
        "--host",
        HOST,
        "--aws-port",
        "0",
    ]


def mock_command(brokers: int, topics: Sequence[str]) -> list[str]:
    cmd = [sys.executable, _launcher(MOCK_LAUNCHER), "--brokers", str(brokers)]
    for topic in topics:
        cmd += ["--topic", topic]
    return cmd


def tansu_command(port: int, topics: Sequence[str]) -> list[str]:
    """The Tansu launcher; it runs the `tansu` binary as its child (`BrokerProcess.worker_pid`)."""
    cmd = [sys.executable, _launcher(TANSU_LAUNCHER), "--port", str(port)]
    for topic in topics:
        cmd += ["--topic", topic]
    return cmd


def children(pid: int) -> list[int]:
    """Direct children of a live process (Linux `/proc/<pid>/task/<tid>/children`)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


class BrokerProcess:
    """A broker subprocess whose stdout lines are timestamped by a reader thread.

    stderr goes to a temporary file so that errors the broker logs can be reported.
    Use as a context manager: leaving it always stops the process (SIGTERM, then SIGKILL).
    """

    def __init__(self, name: str, argv: Sequence[str], die_with_parent: bool = True) -> None:
        self.name = name
        self.argv = list(argv)
        if die_with_parent and SETPRIV:
            # the kernel SIGKILLs the broker when the benchmark dies, even by SIGKILL (the
            # signal follows the thread that spawned it: spawn from the main thread only)
            self.argv = [SETPRIV, "--pdeathsig", "KILL", *self.argv]
        self._lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        # closed in close(); the Popen below writes into it
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=tempfile.gettempdir(),
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def worker_pid(self) -> int:
        """The process that does the broker's work: the launcher itself, or its only child
        when it has one (the Tansu launcher is a Python wrapper around the `tansu` binary)."""
        kids = children(self.pid)
        return kids[0] if len(kids) == 1 else self.pid

    def _read_stdout(self) -> None:
        out = self.proc.stdout
        assert out is not None
        for raw in out:
            self._lines.put((time.perf_counter(), raw.decode(errors="replace").rstrip("\n")))
        self._lines.put((time.perf_counter(), None))

    def wait_line(self, prefix: str, timeout: float) -> tuple[float, str]:
        """(perf_counter when read, line) of the first stdout line starting with prefix."""
        deadline = time.perf_counter() + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise BenchError(f"no {prefix!r} line within {timeout:.0f} s from {self.name}")
            try:
                at, line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                raise BenchError(
                    f"{self.name} exited (rc={self.proc.poll()}) before printing {prefix!r}: "
                    f"{self.stderr_tail()}"
                )
            if line.startswith(prefix):
                return at, line

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"broker exited early (rc={self.proc.returncode}): {self.stderr_tail()}"
            )

    def stderr_tail(self, limit: int = 2000) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        data = self._stderr.read().decode(errors="replace")
        self._stderr.seek(0, os.SEEK_END)
        return data[-limit:].strip()

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_times(self) -> tuple[float, float]:
        return cpu_times(self.pid)

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM, wait up to `grace` seconds, then SIGKILL; then SIGKILL whatever children
        the launcher left behind (a killed Tansu launcher would orphan `tansu`). Returns the
        exit code."""
        kids: list[tuple[int, str]] = []
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                kids = [(k, _start_time(k)) for k in children(self.pid)]
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(timeout=grace)
        for kid, started in kids:
            # same pid and start time: still that child, not a recycled pid
            with contextlib.suppress(OSError):
                if _start_time(kid) == started:
                    os.kill(kid, signal.SIGKILL)
        self._reader.join(timeout=1.0)
        self.returncode = self.proc.returncode
        return self.returncode

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._stderr.close()

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_time(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()[19]  # field 22 of proc(5): starttime


def rss_kib(pid: int) -> int:
    """VmRSS of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process (all its threads, not its children), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK  # fields 14, 15 of proc(5)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds (resolution 1/SC_CLK_TCK, usually 10 ms)."""
    return sum(cpu_times(pid))
