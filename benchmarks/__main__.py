"""`python -m benchmarks [--quick] [--only coldstart,throughput,...]`: run, print, write JSON.

Runs msklite and its peers (the librdkafka mock cluster, Tansu) through the same loads in one
run, prints every figure, then the targets with PASS/MISS, and writes everything (raw runs,
medians, machine description) to a JSON file. Before each measured run the machine is
prepared the same way for every broker (see benchmarks/warm.py; `--no-warm` to skip it).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    coldstart,
    compaction,
    goals,
    groups,
    ingest,
    latency,
    metrics,
    procs,
    rebalance,
    replication,
    scale,
    security,
    share,
    throughput,
    transactions,
    validation,
    warm,
)
from benchmarks.procs import SERVER_LOOPS
from benchmarks.report import Section, machine, machine_line, print_table, write_json

BENCHMARKS = (
    "coldstart",
    "throughput",
    "ingest",
    "latency",
    "scale",
    "replication",
    "groups",
    "rebalance",
    "share",
    "validation",
    "compaction",
    "transactions",
    "metrics",
    "security",
)
PEERS = ("mock", "tansu")

# Sizes of the default run and of --quick (≤ 10 min and ≤ 90 s on 2 cores, with margin).
FULL: dict[str, Any] = {
    "coldstart_runs": 7,
    "rounds": 3,
    "messages_small": 300_000,  # 100 B records per producer run
    "messages_large": 300_000,  # 1 KiB records per producer run (≈ 0.4 s at 800k/s)
    # producer loads also measured cold, once (round 1), beside the warm rounds
    "cold_loads": [t.name for t in throughput.LOADS if t.value_size == 1024],
    "readback_s": 1.0,
    "ingest_seconds": 1.5,
    "fill_mib": 32,
    "latency_rounds": 3,
    "latency_seconds": 4.0,
    "scale_partitions": 10_000,
    "connections": 1000,
    "timeout_s": 120.0,
    "txn_messages": 100_000,  # 1 KiB records per transactional producer run (100 commits)
}
QUICK: dict[str, Any] = FULL | {
    "coldstart_runs": 3,
    "rounds": 1,
    "messages_small": 100_000,
    "messages_large": 30_000,
    "cold_loads": ["1 KiB x1p acks=all"],
    "readback_s": 0.3,
    "ingest_seconds": 0.4,
    "fill_mib": 8,
    "latency_rounds": 1,
    "latency_seconds": 2.0,
    "scale_partitions": 2_000,
    "txn_messages": 20_000,
    "timeout_s": 30.0,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one round, small loads (≤ 90 s)")
    p.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    p.add_argument(
        "--compare",
        default=",".join(PEERS),
        help="peers to run beside msklite: mock, tansu, both (default) or 'none'",
    )
    p.add_argument("--runs", type=int, help="cold-start runs (default 7, quick 3)")
    p.add_argument("--rounds", type=int, help="rounds of throughput, ingest, latency (3, quick 1)")
    p.add_argument("--seconds", type=float, help="time window of each ingest/fetch run (1.5 s)")
    p.add_argument(
        "--batch-sizes",
        default=",".join(ingest.BATCH_SIZES),
        help="ingest batch sizes, comma-separated (16 KiB,1 MiB)",
    )
    p.add_argument("--no-rf3", action="store_true", help="skip msklite's RF 3 columns")
    p.add_argument(
        "--no-warm",
        action="store_true",
        help="no machine preparation before measured runs: every figure cold (see warm.py)",
    )
    p.add_argument(
        "--peers-dir",
        type=Path,
        help="directory of the peer launchers (default: ../shared/peers beside the repository)",
    )
    p.add_argument("--partitions", type=int, help="scale: partitions to create (10000)")
    p.add_argument(
        "--timeout", type=float, help="time limit of each single run, s (default 120, quick 30)"
    )
    p.add_argument(
        "--server-loop",
        choices=SERVER_LOOPS,
        default="default",
        help="event loop of the msklite process: as its CLI picks (uvloop if installed), or"
        " plain asyncio (uvloop hidden from it)",
    )
    p.add_argument("--output", type=Path, help="JSON file (default benchmarks/results/...)")
    return p


def _raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard one, for us (1,000 held connections) and for the
    brokers we spawn (they inherit it: every partition replica holds files open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(BENCHMARKS)
    peers = tuple(x.strip() for x in args.compare.split(",") if x.strip() not in ("", "none"))
    sizes = tuple(
        x.strip().replace("KiB", " KiB").replace("MiB", " MiB").replace("  ", " ")
        for x in args.batch_sizes.split(",")
        if x.strip()
    )
    if unknown or set(peers) - set(PEERS) or set(sizes) - set(ingest.BATCH_SIZES):
        print("unknown benchmark, peer or batch size", file=sys.stderr)
        return 2
    settings: dict[str, Any] = dict(QUICK if args.quick else FULL)
    overrides = {
        "coldstart_runs": args.runs,
        "rounds": args.rounds,
        "latency_rounds": args.rounds,
        "ingest_seconds": args.seconds,
        "scale_partitions": args.partitions,
        "timeout_s": args.timeout,
    }
    settings |= {k: v for k, v in overrides.items() if v is not None}
    peers_dir = procs.set_peers_dir(args.peers_dir)
    settings |= {
        "quick": args.quick,
        "warm": not args.no_warm,
        "peers_dir": str(peers_dir),
        "only": only,
        "peers": list(peers),
        "batch_sizes": list(sizes),
        "rf3": not args.no_rf3,
        "server_loop": args.server_loop,
        "open_files_limit": _raise_open_files_limit(),
    }
    info = machine()
    print(machine_line(info), flush=True)
    print(warm.describe(settings["warm"]), flush=True)
    loop, timeout, rounds = args.server_loop, settings["timeout_s"], settings["rounds"]
    warm_ = settings["warm"]
    plan: list[tuple[str, str, Callable[[], Section]]] = [
        (
            "coldstart",
            f"{settings['coldstart_runs']} runs (+1 warm-up)",
            lambda: coldstart.run(settings["coldstart_runs"], loop=loop),
        ),
        (
            "throughput",
            f"{rounds} rounds x 8 loads, confluent producer and consumer",
            lambda: throughput.run(
                settings["messages_small"],
                settings["messages_large"],
                rounds,
                readback_s=settings["readback_s"],
                timeout=timeout,
                loop=loop,
                with_rf3=settings["rf3"],
                peers=peers,
                warm=warm_,
                cold_loads=tuple(settings["cold_loads"]),
            ),
        ),
        (
            "ingest",
            f"{rounds} rounds, raw pipelined Produce/Fetch, {settings['ingest_seconds']} s each",
            lambda: ingest.run(
                rounds,
                settings["ingest_seconds"],
                fill_mib=settings["fill_mib"],
                timeout=timeout,
                loop=loop,
                setups=ingest.setups_for(peers, settings["rf3"]),
                sizes=sizes,
                warm=warm_,
            ),
        ),
        (
            "latency",
            f"{settings['latency_rounds']} rounds x {settings['latency_seconds']} s at"
            f" {' and '.join(load.name for load in latency.LOADS)}",
            lambda: latency.run(
                settings["latency_rounds"],
                settings["latency_seconds"],
                loop=loop,
                setups=latency.setups_for(peers),
                warm=warm_,
            ),
        ),
        (
            "scale",
            f"{settings['scale_partitions']:,} partitions, {settings['connections']:,} connections",
            lambda: scale.run(
                settings["scale_partitions"],
                connections=settings["connections"],
                timeout=timeout,
                loop=loop,
                with_mock="mock" in peers,
            ),
        ),
        ("replication", "failover, follower catch-up", lambda: replication.run(args.quick)),
        (
            "groups",
            "rebalances (1, 3, 10 members) and offset commits",
            lambda: groups.run(3 if args.quick else 5, 500 if args.quick else 2000, loop=loop),
        ),
        (
            "rebalance",
            "a 4th member joins 3: classic vs KIP-848 consumer protocol",
            lambda: rebalance.run(2 if args.quick else 3, timeout, loop=loop),
        ),
        (
            "share",
            "share group (2 ShareConsumers, 1 partition) beside a consumer group",
            lambda: share.run(20_000 if args.quick else 100_000, 1 if args.quick else 3, timeout),
        ),
        (
            "validation",
            "produced-batch validation in process, beside the CRC check alone",
            lambda: validation.run(args.quick),
        ),
        (
            "compaction",
            "log cleaner MiB/s, and a producer's rate with and without the cleaner",
            lambda: compaction.run(args.quick),
        ),
        (
            "transactions",
            f"{rounds} rounds, transactional producer (commit every {transactions.PER_TXN:,}),"
            " read_committed vs read_uncommitted",
            lambda: transactions.run(
                settings["txn_messages"],
                rounds,
                timeout=timeout,
                loop=loop,
                with_mock="mock" in peers,
                warm=warm_,
            ),
        ),
        (
            "metrics",
            "a producer's rate with /metrics scraped every second and without",
            lambda: metrics.run(args.quick),
        ),
        (
            "security",
            "producer over plaintext, TLS, SASL/SCRAM and IAM listeners; handshakes per listener",
            lambda: security.run(args.quick),
        ),
    ]
    sections: list[Section] = []
    started = time.perf_counter()
    for name, what, fn in plan:
        if name not in only:
            continue
        print(f"{name}: {what} ...", flush=True)
        t0, load_before = time.perf_counter(), list(os.getloadavg())
        section = fn()
        section.data["wall_s"] = time.perf_counter() - t0
        section.data["loadavg_before"] = load_before  # others share these cores
        sections.append(section)
    verdicts = goals.evaluate(sections, args.quick)
    sections.append(goals.section(verdicts))
    settings["wall_s"] = time.perf_counter() - started
    print_table(sections)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{settings['wall_s']:.0f} s; load average now {load}")
    path = write_json(sections, info, settings, args.output)
    print(f"wrote {path}")
    return 1 if any(s.errors for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
