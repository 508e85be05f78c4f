"""Small helpers shared by the integration tests."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from msklite import Cluster


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Poll a condition on the cluster's state (no event to await from another thread);
    a longer `interval` for a costly condition (a request to the server under test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


@contextlib.contextmanager
def serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`msklite serve *args` in a process of its own, its output piped as text and unbuffered
    (each line readable as it is printed); killed if it still runs when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "msklite", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def printed_lines(proc: subprocess.Popen[str], n: int) -> list[str]:
    """The next `n` lines the process prints, stripped ("" once it has ended)."""
    assert proc.stdout is not None
    return [proc.stdout.readline().strip() for _ in range(n)]


def stop_cleanly(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Stop the process with `sig` and check that it exits 0; returns the rest of its output."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out


def leader_segments(cluster: Cluster, topic: str, partition: int) -> list[bytes]:
    """The bytes of each log segment of the partition's leader replica, as on disk, without
    the zeros that follow the last batch of the (preallocated) active segment."""
    leader = cluster.partition(topic, partition).leader
    directory = os.path.join(cluster.data_dir, f"broker-{leader}", f"{topic}-{partition}")
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.log"))):
        with open(path, "rb") as f:
            data = f.read()
        end = 0
        while end + 12 <= len(data) and (size := int.from_bytes(data[end + 8 : end + 12])) > 0:
            end += 12 + size  # base offset (8), batch length (4), then the batch
        out.append(data[:end])
    return out
