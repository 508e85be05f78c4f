"""`msklite serve`: run an emulated MSK cluster until SIGINT/SIGTERM.

Prints `Bootstrap servers: host:port,...` (flushed) once every listener accepts connections,
then one status line per broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from msklite.cluster import Cluster, default_data_dir
from msklite.msk import DEFAULT_AZS, broker_name


def _parse_config(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--config expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msklite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run an emulated MSK cluster")
    serve.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    serve.add_argument(
        "--port",
        type=int,
        default=9092,
        help="port of broker 1; broker i listens on PORT+i-1 (0: any free port)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise")
    serve.add_argument(
        "--data-dir", default=None, help=f"where the logs live (default {default_data_dir()})"
    )
    serve.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep data in a temporary directory, removed on exit",
    )
    serve.add_argument(
        "--azs",
        default=",".join(DEFAULT_AZS),
        help="availability-zone ids, comma-separated (brokers are spread over them)",
    )
    serve.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker config, e.g. auto.create.topics.enable=true (repeatable)",
    )
    serve.add_argument("--log-level", default="WARNING")
    return parser


async def serve(args: argparse.Namespace) -> int:
    data_dir = None if args.ephemeral else (args.data_dir or default_data_dir())
    try:
        cluster = Cluster(
            brokers=args.brokers,
            data_dir=data_dir,
            config=_parse_config(args.config),
            host=args.host,
            port=args.port,
            azs=[a for a in args.azs.split(",") if a],
        )
    except ValueError as e:
        print(f"msklite: {e}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.astart()
    except OSError as e:
        print(f"msklite: cannot listen: {e}", file=sys.stderr)
        return 1
    print(f"Bootstrap servers: {cluster.bootstrap_servers}", flush=True)
    for b in cluster.brokers.values():
        print(
            f"  {broker_name(b.info.node_id)}  id={b.info.node_id}  {b.info.host}:{b.info.port}"
            f"  rack={b.info.rack}"
        )
    assert cluster.controller is not None
    print(
        f"  cluster id {cluster.controller.cluster_id}, {len(cluster.controller.topics)} topic(s),"
        f" data in {'(temporary)' if args.ephemeral else cluster.data_dir}",
        flush=True,
    )
    await stop.wait()
    await cluster.astop()
    print("msklite stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runner: asyncio.Runner
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner, contextlib.suppress(KeyboardInterrupt):
        return runner.run(serve(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
