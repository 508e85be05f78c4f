"""`python -m benchmarks [--quick] [--only coldstart,throughput]`: run, print, write JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks import coldstart, groups, throughput
from benchmarks.procs import SERVER_LOOPS
from benchmarks.report import Section, machine, machine_line, print_table, write_json

BENCHMARKS = ("coldstart", "throughput", "groups")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer runs and messages (< 60 s total)")
    p.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    p.add_argument("--runs", type=int, help="cold-start runs (default 7, quick 5)")
    p.add_argument(
        "--messages", type=int, help="messages per throughput run (default 200000, quick 100000)"
    )
    p.add_argument("--rounds", type=int, help="throughput rounds per broker (default 3)")
    p.add_argument("--value-size", type=int, default=1024, help="bytes per message (1024)")
    p.add_argument("--brokers", type=int, default=3, help="brokers per cluster (3)")
    p.add_argument(
        "--timeout", type=float, help="time limit per throughput run, s (default 180, quick 30)"
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    settings: dict[str, Any] = {
        "quick": args.quick,
        "only": only,
        "coldstart_runs": args.runs or (5 if args.quick else 7),
        "messages": args.messages or (100_000 if args.quick else 200_000),
        "rounds": args.rounds or 3,
        "value_size": args.value_size,
        "brokers": args.brokers,
        "server_loop": args.server_loop,
        "timeout_s": args.timeout or (30.0 if args.quick else 180.0),
    }
    info = machine()
    print(machine_line(info), flush=True)
    sections: list[Section] = []
    if "coldstart" in only:
        print(f"cold start: {settings['coldstart_runs']} runs (+1 warm-up) ...", flush=True)
        sections.append(
            coldstart.run(settings["coldstart_runs"], brokers=args.brokers, loop=args.server_loop)
        )
    if "throughput" in only:
        print(
            f"throughput: {settings['rounds']} rounds x {settings['messages']:,} messages"
            f" of {settings['value_size']} B into msklite and the mock ...",
            flush=True,
        )
        sections.append(
            throughput.run(
                settings["messages"],
                settings["rounds"],
                value_size=settings["value_size"],
                timeout=settings["timeout_s"],
                brokers=args.brokers,
                loop=args.server_loop,
            )
        )
    if "groups" in only:
        rounds = 3 if args.quick else 5
        commits = 500 if args.quick else 2000
        print(f"groups: {rounds} rounds of rebalances (1, 3, 10 members) and commits ...")
        sections.append(groups.run(rounds, commits, loop=args.server_loop))
    print_table(sections)
    path = write_json(sections, info, settings, args.output)
    print(f"\nwrote {path}")
    return 1 if any(s.errors for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
