"""`msklite serve`: run an emulated MSK cluster until SIGINT/SIGTERM.

Prints `Bootstrap servers: host:port,...` (flushed) once every listener accepts connections,
then one status line per broker, then `AWS endpoint: http://host:port` once the HTTP endpoint
(msklite/web) answers; then reads fault commands (`help`) from standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from msklite import __version__
from msklite.cli.commands import add_parsers, run
from msklite.cluster import Cluster, default_data_dir, stored_brokers
from msklite.console import execute
from msklite.kafka_releases import RELEASES
from msklite.kafka_version import DEFAULT_KAFKA_VERSION
from msklite.metrics import available as metrics_available
from msklite.msk import DEFAULT_AZS, broker_name, host_port, msk_configuration
from msklite.web import CONSOLE_PATH, DEFAULT_AWS_PORT, METRICS_PATH
from msklite.web.service import Service

if TYPE_CHECKING:
    from msklite.security.iam import IamCredential


def _parse_config(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--config expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _configs(args: argparse.Namespace) -> dict[str, str]:
    """`--config-file` (MSK's rules) under `--config`."""
    config: dict[str, str] = {}
    if args.config_file is not None:
        with open(args.config_file, encoding="utf-8") as f:
            config = msk_configuration(f.read())
    config.update(_parse_config(args.config))
    return config


def _scram_secrets(path: str | None) -> dict[str, tuple[str, str]]:
    """`--scram-secrets FILE`: secret name -> (user, password), as Secrets Manager holds an
    MSK SCRAM secret (`{"username": ..., "password": ...}`)."""
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            secrets = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"msklite: --scram-secrets {path}: {e}") from None
    if not isinstance(secrets, dict):
        raise SystemExit(f"msklite: --scram-secrets {path}: not a JSON object")
    out = {}
    for name, secret in secrets.items():
        if not (isinstance(secret, dict) and {"username", "password"} <= secret.keys()):
            raise SystemExit(
                f"msklite: --scram-secrets {path}: {name} is not "
                '{"username": ..., "password": ...}'
            )
        out[name] = (str(secret["username"]), str(secret["password"]))
    return out


def _port_number(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {port}")
    return port


def _scram_users(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, password = item.partition(":")
        if not sep or not name:
            raise SystemExit(f"--scram-user expects NAME:PASSWORD, got {item!r}")
        out[name] = password
    return out


def _port(args: argparse.Namespace) -> int:
    if args.layout == "msk":
        if args.port is not None:
            raise ValueError("--layout msk listens on MSK's ports; --port is for --layout offset")
        return 0
    return 9092 if args.port is None else int(args.port)


def _iam_policies(items: list[str]) -> dict[str, list[object]]:
    """`--iam-policy ARN=FILE` and `--iam-policy FILE` ({ARN: document or [documents]})."""
    out: dict[str, list[object]] = {}
    for item in items:
        arn, sep, path = item.partition("=")
        if not sep:
            path = item
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"--iam-policy {item}: {e}") from None
        if sep:
            out.setdefault(arn, []).append(data)
        elif isinstance(data, dict):
            for key, value in data.items():
                out.setdefault(key, []).extend(value if isinstance(value, list) else [value])
        else:
            raise ValueError(f"--iam-policy {path}: a JSON object of principal ARN → policy")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msklite", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"msklite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run an emulated MSK cluster")
    serve.add_argument(
        "--brokers",
        type=int,
        default=None,
        help="number of brokers (default: as many as the data directory holds, else 3)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help="port of broker 1; broker i listens on PORT+i-1 (0: any free port; default 9092)",
    )
    serve.add_argument(
        "--layout",
        choices=["offset", "msk"],
        default="offset",
        help="offset (default): every broker on --host, broker i on PORT+i-1 and each listener "
        "kind 100 ports further; msk: broker i on the i-th address from --host (127.0.0.1, "
        "127.0.0.2, ...) with MSK's own ports 9092/9094/9096/9098 (Linux)",
    )
    serve.add_argument(
        "--msk-hostnames",
        action="store_true",
        help="advertise MSK-shaped broker names (b-1.msklite.<id>.c1.kafka.us-east-1."
        "amazonaws.com); prints the /etc/hosts lines that make them resolve",
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
    serve.add_argument(
        "--config-file",
        default=None,
        metavar="FILE",
        help="an MSK custom configuration: server.properties text, as its serverProperties "
        "holds (MSK's rules apply; --config wins over it)",
    )
    serve.add_argument(
        "--auth",
        default="plaintext",
        help="the listeners every broker offers, comma-separated: plaintext (9092), tls (9094), "
        "scram (SASL_SSL with SCRAM-SHA-512, 9096), iam (SASL_SSL with AWS_MSK_IAM and "
        "OAUTHBEARER, 9098); with --port, a kind's ports start at PORT, PORT+100, PORT+200, "
        "PORT+300 (default: plaintext)",
    )
    serve.add_argument(
        "--scram-user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="a SASL/SCRAM user (SCRAM-SHA-512 and SCRAM-SHA-256; repeatable)",
    )
    serve.add_argument(
        "--iam-credentials",
        default=None,
        metavar="FILE",
        help="IAM access keys the IAM listener checks signatures against: a JSON object of "
        'access key id → {"secret_access_key": ..., "principal_arn": ...}',
    )
    serve.add_argument(
        "--iam-strict",
        action="store_true",
        help="the IAM listener refuses access keys --iam-credentials does not list (by "
        "default it accepts them unchecked, named arn:aws:iam::000000000000:user/<key id>)",
    )
    serve.add_argument(
        "--iam-policy",
        action="append",
        default=[],
        metavar="ARN=FILE|FILE",
        help="an IAM policy document (JSON) attached to a principal ARN, or a JSON file "
        "mapping principal ARNs to policy documents (repeatable); with any, the IAM "
        "listener authorizes by policies",
    )
    serve.add_argument(
        "--kafka-version",
        default=DEFAULT_KAFKA_VERSION,
        metavar="VERSION",
        help=f"the MSK Kafka version to emulate: {', '.join(RELEASES)} "
        f"(default {DEFAULT_KAFKA_VERSION})",
    )
    serve.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="how much the brokers log to standard error (default WARNING)",
    )
    serve.add_argument(
        "--tls-client-auth",
        action="store_true",
        help="the TLS listener requires a client certificate from msklite's CA (mTLS; "
        "issue one with `msklite certs client NAME`)",
    )
    serve.add_argument(
        "--aws-port",
        type=_port_number,
        default=None,
        metavar="PORT",
        help=f"port of the HTTP endpoint: the MSK API (boto3's `kafka` client, `aws kafka`) and "
        f"what else msklite serves over HTTP (default {DEFAULT_AWS_PORT}, LocalStack's, or any "
        f"free port with --port 0; 0: any free port)",
    )
    serve.add_argument(
        "--no-http", action="store_true", help="no HTTP endpoint (no MSK API) at all"
    )
    serve.add_argument(
        "--aws-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long the MSK API's clusters stay CREATING, UPDATING, REBOOTING_BROKER or "
        "DELETING beyond the work itself (default 0: near-instant)",
    )
    serve.add_argument(
        "--scram-secrets",
        default=None,
        metavar="FILE",
        help="Secrets Manager's part for BatchAssociateScramSecret: a JSON object mapping "
        'secret names (AmazonMSK_...) to {"username": ..., "password": ...}',
    )
    certs = sub.add_parser(
        "certs", help="print the local CA's path; `certs client NAME`: issue an mTLS certificate"
    )
    certs.add_argument("kind", nargs="?", choices=["client"], help="issue a client certificate")
    certs.add_argument("name", nargs="?", help="the client's name (its certificate's CN)")
    certs.add_argument(
        "--data-dir",
        default=None,
        help=f"the cluster's data directory (default {default_data_dir()})",
    )
    add_parsers(sub)
    return parser


def certs(args: argparse.Namespace) -> int:
    """The CA a TLS client trusts (made now if the data directory has none yet) and, for
    mTLS, a client certificate signed by it."""
    try:
        from msklite.security.tls import issue_client_certificate, load_or_create_ca
    except ImportError:
        print(
            "msklite: TLS needs the cryptography package (pip install msklite[tls])",
            file=sys.stderr,
        )
        return 2
    data_dir = args.data_dir or default_data_dir()
    ca = load_or_create_ca(data_dir)
    print(f"CA certificate: {ca.path}")
    if args.kind == "client":
        if not args.name:
            print("msklite: certs client needs a NAME", file=sys.stderr)
            return 2
        cert, key = issue_client_certificate(ca, data_dir, args.name)
        print(f"Client certificate: {cert}")
        print(f"Client key: {key}")
        print(f"Principal: User:CN={args.name}")
    return 0


def _aws_port(args: argparse.Namespace) -> int | None:
    """The HTTP endpoint's port: None for none; a cluster on free ports gets a free one too."""
    if args.no_http:
        return None
    if args.aws_port is not None:
        return int(args.aws_port)
    return 0 if args.port == 0 else DEFAULT_AWS_PORT


async def serve(args: argparse.Namespace) -> int:
    data_dir = None if args.ephemeral else (args.data_dir or default_data_dir())
    brokers = args.brokers
    if brokers is None:
        brokers = (stored_brokers(data_dir) if data_dir else None) or 3
    try:
        iam_credentials: dict[str, IamCredential] = {}
        if args.iam_credentials:
            from msklite.security.iam import load_credentials

            iam_credentials = load_credentials(args.iam_credentials)
        cluster = Cluster(
            brokers=brokers,
            data_dir=data_dir,
            config=_configs(args),
            host=args.host,
            port=_port(args),
            layout=args.layout,
            msk_hostnames=args.msk_hostnames,
            azs=[a for a in args.azs.split(",") if a],
            auth=args.auth,
            scram_users=_scram_users(args.scram_user),
            tls_client_auth=args.tls_client_auth,
            iam_credentials=iam_credentials,
            iam_permissive=not args.iam_strict,
            iam_policies=_iam_policies(args.iam_policy),
            kafka_version=args.kafka_version,
        )
    except (ValueError, OSError) as e:
        print(f"msklite: {e}", file=sys.stderr)
        return 2
    service = Service(
        cluster,
        aws_port=_aws_port(args),
        transition_delay=args.aws_delay,
        scram_secrets=_scram_secrets(args.scram_secrets),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await cluster.astart()
    except ValueError as e:
        print(f"msklite: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"msklite: cannot listen: {e}", file=sys.stderr)
        return 1
    for label, servers in cluster.bootstrap_lines:
        print(f"Bootstrap servers{f' ({label})' if label else ''}: {servers}", flush=True)
    if cluster.ca_certificate is not None:
        print(f"CA certificate: {cluster.ca_certificate}", flush=True)
    for line in cluster.msk_hosts_lines:
        print(f"/etc/hosts: {line}", flush=True)
    for b in cluster.brokers.values():
        print(
            f"  {broker_name(b.info.node_id)}  id={b.info.node_id}  "
            f"{host_port(b.info.host, b.info.port)}"
            f"  rack={b.info.rack}"
        )
    assert cluster.controller is not None
    print(
        f"  cluster id {cluster.controller.cluster_id}, {len(cluster.controller.topics)} topic(s),"
        f" data in {'(temporary)' if args.ephemeral else cluster.data_dir},"
        f" Kafka {cluster.kafka_version}",
        flush=True,
    )
    try:
        await service.astart_http()
    except ImportError as e:
        print(f"  (no AWS endpoint: {e.name} is missing; pip install 'msklite[http]')", flush=True)
    except OSError as e:
        await service.astop()
        print(
            f"msklite: cannot serve HTTP on port {service.aws_port}: {e} (--aws-port 0 picks "
            f"a free port, --no-http turns it off)",
            file=sys.stderr,
        )
        return 1
    if service.url is not None:
        print(f"AWS endpoint: {service.url}", flush=True)
        print(f"Console: {service.url}{CONSOLE_PATH}", flush=True)
        if metrics_available():
            print(f"Metrics: {service.url}{METRICS_PATH}", flush=True)
        else:
            print("  (no metrics: pip install 'msklite[metrics]' for prometheus-client)")
    console = loop.create_task(_console(cluster, stop))
    await stop.wait()
    console.cancel()
    await service.astop()
    print("msklite stopped", flush=True)
    return 0


async def _console(cluster: Cluster, stop: asyncio.Event) -> None:
    """Read fault commands from standard input (msklite/console.py) until it closes. A daemon
    thread reads, so a terminal waiting for input never holds up the shutdown."""
    if not _stdin_is_ours():
        print(
            "  (no console: standard input is a terminal this process does not own, "
            "e.g. `msklite serve &`)",
            flush=True,
        )
        return
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO: moved to the background while reading
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=read, name="msklite-console", daemon=True).start()
    while not stop.is_set():
        line = await lines.get()
        if not line:
            return  # stdin closed (or /dev/null): keep serving without a console
        await execute(cluster, line, lambda text: print(text, flush=True))


def _stdin_is_ours() -> bool:
    """Whether standard input may be read: a pipe or a file, or a terminal whose foreground
    process group is ours. A process in the background that reads its terminal is stopped
    (SIGTTIN), and with it the whole cluster."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not os.isatty(fd):
        return True
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # a terminal, but not our controlling one
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "certs":
        return certs(args)
    if args.command != "serve":
        return run(args)
    # A terminal read from the background then fails (EIO) instead of stopping the cluster.
    if hasattr(signal, "SIGTTIN"):
        signal.signal(signal.SIGTTIN, signal.SIG_IGN)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
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
