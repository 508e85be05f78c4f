"""Machine preparation before each measured run: write, then delete, a file in $TMPDIR.

Why: the project's VMs hand memory the guest frees back to the host within 1-3 s (virtio
free page reporting), and the first touch of such a page then costs ≈ 2.5 sys-s per GiB
instead of ≈ 0.15 for a page the guest still holds. A broker that stores what it receives
(msklite writes every byte into new page-cache pages, once per replica) pays that per byte;
the librdkafka mock keeps ≤ 5 MiB per partition in a ring that stays warm and never does.
Without preparation a figure measures the host's memory handback as much as the broker.

What: just before the clock of a measured run starts, `warm_up` writes `mib` MiB into a new
file in $TMPDIR (where `msklite serve --ephemeral` keeps its logs) and deletes it. The freed
page-cache pages go back to the guest's free lists, backed by the host, for the next
second or so: the run that follows takes its new pages from them. Every broker of a load
(msklite and the peers alike) gets the same preparation, sized to the load
(`mib_for_load`). `python -m benchmarks --no-warm` skips it, to see the cold figure.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import dataclass
from typing import Any

MIB = 1 << 20
MIN_MIB = 64
MAX_MIB = 1024
COLD_SETTLE_S = 3.0  # idle time before a cold run: what earlier runs freed is handed back

_CHUNK = os.urandom(MIB)


def mib_for_load(stored_bytes: int, copies: int) -> int:
    """Warm-up size for a run that stores `stored_bytes` of records `copies` times (replicas,
    plus one for the client's own buffers), with a quarter of headroom; 64 MiB to 1 GiB.

    300,000 records of 1 KiB at RF 1 give ≈ 740 MiB."""
    want = stored_bytes * copies * 5 // 4
    return max(MIN_MIB, min(MAX_MIB, -(-want // MIB)))


# The most one broker process writes into new page-cache pages per second here, all its replicas
# together (raw ingest of 1 MiB batches: ≈ 1.1 GiB/s at RF 1, 3 x ≈ 0.4 at RF 3).
PAGE_CACHE_GIB_PER_S = 1.25


def mib_for_window(seconds: float) -> int:
    """Warm-up size for a timed window of raw ingest: all a broker can write in it, with a
    tenth of headroom (1.5 s: 2,112 MiB). A warm-up smaller than the window's writes leaves
    the rest of them to whatever warm memory earlier work happened to free, so the figure
    depends on what ran before (1 GiB before 1.5 s windows of 1 MiB batches: 0.5-1.0 sys-s
    per GiB written after different histories, 0.2-0.3 with 2 GiB)."""
    return max(MIN_MIB, int(seconds * PAGE_CACHE_GIB_PER_S * 1.1 * 1024))


def warm_up(mib: int) -> dict[str, Any]:
    """Write `mib` MiB into a new file in $TMPDIR, then delete it; returns what it took.

    `sys_s_per_gib` says how cold the machine was: ≈ 2-7 on a VM that had handed its free
    memory back, ≈ 0.2 when the pages were still the guest's."""
    t0, sys0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    with tempfile.TemporaryFile() as f:  # unlinked at once: deleted even if we die
        fd = f.fileno()
        for i in range(mib):
            os.pwrite(fd, _CHUNK, i * MIB)
    sys1, t1 = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
    return {"mib": mib, "seconds": t1 - t0, "sys_s_per_gib": (sys1 - sys0) / (mib / 1024)}


@dataclass(frozen=True)
class Preparation:
    """What runs before a measured run: a warm-up of `mib` MiB, or (cold) an idle pause of
    `settle_s` so that earlier runs' freed memory has gone back to the host; no pause for
    small loads (`mib` at the minimum), which never store enough for it to matter."""

    warm: bool
    mib: int = 0
    settle_s: float = COLD_SETTLE_S

    def __call__(self) -> dict[str, Any]:
        if self.warm:
            return {"warm": True} | warm_up(self.mib)
        settle = self.settle_s if self.mib > MIN_MIB else 0.0
        time.sleep(settle)
        return {"warm": False, "settle_s": settle}

    @property
    def label(self) -> str:
        return "warm" if self.warm else "cold"


def describe(warm: bool) -> str:
    """One line for the printed output: what the preparation does and why."""
    if warm:
        return (
            "machine preparation: before each measured run, 64 MiB-1 GiB (sized to the load)"
            " is written to a file in $TMPDIR and deleted, the same for every broker: this VM"
            " hands freed memory back to the host within 1-3 s and the first touch of such a"
            " page costs ≈ 2.5 sys-s/GiB instead of ≈ 0.15; `--no-warm` measures cold"
        )
    return (
        f"machine preparation off (--no-warm): each measured run that stores more than"
        f" {MIN_MIB} MiB follows {COLD_SETTLE_S:.0f} s of idle, so the pages it takes are new"
        " to the guest (cold)"
    )
