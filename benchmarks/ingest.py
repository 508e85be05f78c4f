"""Broker-bound ingest and fetch: raw pipelined requests, so the client costs next to nothing.

For each broker (msklite RF 1 acks=1, msklite RF 3 acks=all, Tansu, the librdkafka mock) and
each batch size (16 KiB, 1 MiB), within one broker process per round:
- produce: `connections` connections, each to the leader of its own partition of topic
  `ingest`, keep `depth` Produce v8 requests in flight for `seconds`, each carrying one
  pre-encoded v2 batch (≈1 KiB records). Measured: record bytes acknowledged per second,
  requests per second, the broker's CPU (utime+stime from /proc) per GiB, its peak RSS
  (sampled every 50 ms), and this process's CPU (the load generator's cost). The machine is
  prepared just before each window (`warm.py`; sized to all a broker can write in the window,
  ≈ 2 GiB for 1.5 s, the same for every broker), or left cold with `warm=False`.
- fetch: a second topic is filled with the same batches (`fill_mib` per partition; the mock
  keeps only ≈5 MiB per partition, so it gets 4), then `connections` consumers read it with
  pipelined Fetch v11 requests of `FETCH_MAX` bytes at known batch boundaries, cycling over
  the log for `seconds`. Measured: record bytes received per second, requests per second.
Rounds interleave the brokers (the starting one rotates) so background load hits all alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks import targets
from benchmarks.loadgen import LoadResult, fetch_job, make_batch, produce_job, run_load
from benchmarks.procs import BenchError
from benchmarks.report import GIB, Section, quantile, summary
from benchmarks.targets import Target, TopicSpec
from benchmarks.warm import Preparation, mib_for_window

KIB, MIB = 1024, 1 << 20
BATCH_SIZES = {"16 KiB": 16 * KIB, "1 MiB": MIB}
FETCH_MAX = MIB  # bytes asked per Fetch (partition and request maximum)
MOCK_FILL_MIB = 4  # the mock drops batches beyond ≈5 MiB per partition


@dataclass(frozen=True)
class Setup:
    label: str
    kind: str
    replication_factor: int
    acks: int


SETUPS = (
    Setup("msklite", "msklite", 1, 1),
    Setup("msklite RF3 acks=all", "msklite", 3, -1),
    Setup("tansu", "tansu", 1, 1),
    Setup("mock", "mock", 1, 1),
)


def setups_for(peers: tuple[str, ...], rf3: bool = True) -> tuple[Setup, ...]:
    return tuple(
        s
        for s in SETUPS
        if (s.kind == "msklite" and (rf3 or s.replication_factor == 1)) or s.kind in peers
    )


class RssSampler:
    """Peak RSS of a process, sampled every `interval` s on a thread while in the block."""

    def __init__(self, read: Callable[[], int], interval: float = 0.05) -> None:
        self.read = read
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self.peak_kib = max(self.peak_kib, self.read())
            except (OSError, BenchError):
                return
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


def _figures(load: LoadResult) -> dict[str, Any]:
    lat = sorted(load.latencies())
    return {
        "seconds": load.elapsed_s,
        "requests": load.requests,
        "bytes": load.bytes,
        "mb_per_s": load.bytes / load.elapsed_s / 1e6,
        "mib_per_s": load.bytes / load.elapsed_s / MIB,
        "requests_per_s": load.requests / load.elapsed_s,
        "client_cpu_cores": load.client_cpu_s / load.elapsed_s,
        "request_latency_p50_ms": quantile(lat, 0.5) * 1000 if lat else None,
        "errors": {str(k): v for k, v in load.errors.items()},
    }


def _produce(
    target: Target,
    setup: Setup,
    batch: bytes,
    connections: int,
    depth: int,
    seconds: float,
    timeout: float,
    prepare: Preparation,
) -> dict[str, Any]:
    leaders = target.leaders("ingest")
    jobs = [
        produce_job(leaders[i % len(leaders)], "ingest", i % len(leaders), batch, setup.acks)
        for i in range(connections)
    ]
    run_load(jobs, depth, max_requests=4, timeout=timeout)  # warm-up: connections, followers
    preparation = prepare()
    user0, sys0 = target.cpu_times()
    with RssSampler(target.rss_kib) as rss:
        load = run_load(jobs, depth, seconds=seconds, timeout=timeout)
    user1, sys1 = target.cpu_times()
    out = _figures(load)
    cpu = (user1 - user0) + (sys1 - sys0)
    gib = load.bytes / GIB
    out |= {
        "broker_cpu_s": cpu,
        "broker_user_s": user1 - user0,
        "broker_sys_s": sys1 - sys0,
        "broker_cpu_s_per_gib": cpu / gib if gib else None,
        "broker_cpu_cores": cpu / load.elapsed_s,
        "peak_rss_kib": rss.peak_kib,
        "preparation": preparation,
    }
    return out


def _fetch(
    target: Target,
    topic: str,
    acks: int,
    batch: bytes,
    records_per_batch: int,
    fill_mib: int,
    connections: int,
    depth: int,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    leaders = target.leaders(topic)
    batches = max(1, fill_mib * MIB // len(batch))
    # acks=all at RF 3: every batch is below the high watermark, so readable, once filled
    fill = [produce_job(leaders[i], topic, i, batch, acks) for i in range(connections)]
    filled = run_load(fill, 4, max_requests=batches, timeout=timeout)
    if filled.errors:
        raise BenchError(f"filling {topic}: errors {filled.errors}")
    per_fetch = max(1, FETCH_MAX // len(batch))  # whole batches per answer
    offsets = [b * records_per_batch for b in range(0, batches - per_fetch + 1, per_fetch)] or [0]
    jobs = [fetch_job(leaders[i], topic, i, offsets, FETCH_MAX) for i in range(connections)]
    load = run_load(jobs, depth, seconds=seconds, timeout=timeout)
    out = _figures(load)
    out["filled_mib_per_partition"] = batches * len(batch) / MIB
    return out


def _one_target(
    setup: Setup,
    batches: dict[str, tuple[bytes, int]],
    connections: int,
    depth: int,
    seconds: float,
    fill_mib: int,
    timeout: float,
    loop: str,
    prepare: Preparation,
) -> dict[str, dict[str, Any]]:
    rf = setup.replication_factor
    topics = [TopicSpec("ingest", connections, rf)] + [
        TopicSpec(f"fetch-{i}", connections, rf) for i in range(len(batches))
    ]
    out: dict[str, dict[str, Any]] = {}
    with targets.start(setup.kind, topics, loop=loop, label=setup.label) as target:
        for name, (batch, _count) in batches.items():
            out[f"produce {name}"] = _produce(
                target, setup, batch, connections, depth, seconds, timeout, prepare
            )
        fill = MOCK_FILL_MIB if setup.kind == "mock" else fill_mib
        for i, (name, (batch, count)) in enumerate(batches.items()):
            out[f"fetch {name}"] = _fetch(
                target,
                f"fetch-{i}",
                setup.acks,
                batch,
                count,
                fill,
                connections,
                depth,
                seconds,
                timeout,
            )
        target.check_alive()
    return out


def run(
    rounds: int,
    seconds: float,
    connections: int = 4,
    depth: int = 4,
    fill_mib: int = 32,
    timeout: float = 60.0,
    loop: str = "default",
    setups: tuple[Setup, ...] = SETUPS,
    sizes: tuple[str, ...] = tuple(BATCH_SIZES),
    warm: bool = True,
) -> Section:
    section = Section("ingest")
    # one size for every broker: all that any of them can write in the window
    prepare = Preparation(warm, mib_for_window(seconds))
    batches = {name: make_batch(BATCH_SIZES[name]) for name in sizes}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s.label: {} for s in setups}
    for r in range(rounds):
        order = setups[r % len(setups) :] + setups[: r % len(setups)]
        for setup in order:
            try:
                result = _one_target(
                    setup, batches, connections, depth, seconds, fill_mib, timeout, loop, prepare
                )
            except (BenchError, OSError) as e:
                section.errors.append(f"{setup.label} round {r + 1}: {e}")
                continue
            for load, figures in result.items():
                if figures["errors"]:
                    section.errors.append(
                        f"{setup.label} {load} round {r + 1}: error codes {figures['errors']}"
                    )
                runs[setup.label].setdefault(load, []).append(figures)

    def med(label: str, load: str, key: str) -> float | None:
        values = [x[key] for x in runs[label].get(load, []) if x.get(key) is not None]
        return summary(values)["median"]

    section.data = {
        "connections": connections,
        "depth": depth,
        "seconds": seconds,
        "fill_mib": fill_mib,
        "warm": warm,
        "batches": {n: {"bytes": len(b), "records": c} for n, (b, c) in batches.items()},
        "fetch_max_bytes": FETCH_MAX,
        "setups": [s.__dict__ for s in setups],
        "runs": runs,
        "median": {
            label: {
                load: {
                    key: med(label, load, key)
                    for key in (
                        "mib_per_s",
                        "requests_per_s",
                        "broker_cpu_s_per_gib",
                        "broker_cpu_cores",
                        "client_cpu_cores",
                        "peak_rss_kib",
                    )
                }
                for load in loads
            }
            for label, loads in runs.items()
        },
    }
    for load in [f"{kind} {size}" for kind in ("produce", "fetch") for size in sizes]:
        for s in setups:
            mib = med(s.label, load, "mib_per_s")
            if mib is None:
                continue
            n = len(runs[s.label][load])
            note = f"{med(s.label, load, 'requests_per_s') or 0:,.0f} req/s"
            if load.startswith("produce"):
                note += (
                    f", broker {med(s.label, load, 'broker_cpu_s_per_gib') or 0:.2f} CPU-s/GiB"
                    f" ({med(s.label, load, 'broker_cpu_cores') or 0:.2f} cores),"
                    f" peak RSS {(med(s.label, load, 'peak_rss_kib') or 0) / 1024:.0f} MiB"
                )
            note += f", client {med(s.label, load, 'client_cpu_cores') or 0:.2f} cores; n={n}"
            section.row(f"{load} {s.label}", f"{mib:,.0f} MiB/s", note)
        ratios: dict[str, float] = {}
        mine = med("msklite", load, "mib_per_s") if "msklite" in runs else None
        for peer in ("tansu", "mock"):
            theirs = med(peer, load, "mib_per_s") if peer in runs else None
            if mine and theirs:
                ratios[f"msklite/{peer}"] = mine / theirs
        if ratios:
            section.data.setdefault("ratios", {})[load] = ratios
            text = ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            section.row(f"{load} ratios", "", f"{text} (median MiB/s, RF 1)")
    return section
