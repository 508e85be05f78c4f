"""The `msklite serve` fault console: commands typed on standard input while the cluster runs.

    stop-broker N | start-broker N | stop-az AZ | start-az AZ | add-broker [AZ]
    pause N | resume N          (make broker N's follower replicas stop / resume copying)
    create-topic NAME [PARTITIONS [RF]] [KEY=VALUE ...]
    transactions                (list them, as kafka-transactions.sh list/describe)
    topic list | topic describe NAME | group list | group describe GROUP
                                (as `msklite topic ...` / `msklite group ...` print them)
    status | help

Each command takes effect at once and prints what the cluster looks like afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Callable

from msklite.cli.commands import run
from msklite.cluster import Cluster
from msklite.errors import KafkaError
from msklite.msk import host_port

HELP = __doc__.split("\n\n")[1] if __doc__ else ""


def status(cluster: Cluster) -> str:
    controller = cluster.controller
    assert controller is not None
    lines = []
    for info in cluster.infos:
        state = "up" if info.node_id in cluster.brokers else "DOWN"
        lines.append(f"  b-{info.node_id}  {host_port(info.host, info.port)}  {info.rack}  {state}")
    partitions = sum(len(t.partitions) for t in controller.topics.values())
    under = sum(
        1 for t in controller.topics.values() for p in t.partitions if len(p.isr) < len(p.replicas)
    )
    lines.append(
        f"  {len(controller.topics)} topic(s), {partitions} partition(s), "
        f"{under} under-replicated, {controller.offline_partitions()} offline"
    )
    return "\n".join(lines)


def transactions(cluster: Cluster) -> str:
    rows = cluster.transactions()
    if not rows:
        return "  no transactional ids"
    return "\n".join(
        f"  {t.transactional_id}  {t.state}  producer {t.producer_id}/{t.producer_epoch}"
        f"  coordinator b-{t.coordinator}"
        + (f"  open {t.age_ms} ms" if t.age_ms >= 0 else "")
        + (f"  partitions {' '.join(f'{n}-{p}' for n, p in t.partitions)}" if t.partitions else "")
        for t in rows
    )


def _number(what: str, word: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise ValueError(f"{what} is a number, got {word!r}") from None


async def execute(cluster: Cluster, line: str, write: Callable[[str], None]) -> None:
    words = line.split()
    if not words:
        return
    command, args = words[0], words[1:]
    try:
        if command == "stop-broker" and len(args) == 1:
            await cluster.astop_broker(_number("a broker id", args[0]))
        elif command == "start-broker" and len(args) == 1:
            await cluster.astart_broker(_number("a broker id", args[0]))
        elif command == "stop-az" and len(args) == 1:
            await cluster.astop_az(args[0])
        elif command == "start-az" and len(args) == 1:
            await cluster.astart_az(args[0])
        elif command == "add-broker" and len(args) <= 1:
            node_id = await cluster.aadd_broker(args[0] if args else None)
            write(f"added broker {node_id}")
        elif command == "pause" and len(args) == 1:
            cluster.pause_replication(_number("a broker id", args[0]))
        elif command == "resume" and len(args) == 1:
            cluster.resume_replication(_number("a broker id", args[0]))
        elif command == "create-topic" and args:
            _create_topic(cluster, args, write)
        elif command == "transactions" and not args:
            write(transactions(cluster))
            return
        elif command in ("topic", "group") and _verb(command, args) is not None:
            write(await _client_verb(cluster, command, args))
            return
        elif command == "status":
            pass
        else:
            write(HELP)
            return
    except (ValueError, TypeError) as e:
        write(f"error: {e}")
        return
    except KafkaError as e:
        write(f"error: {e.code.name}: {e}")
        return
    write(status(cluster))


def _create_topic(cluster: Cluster, args: list[str], write: Callable[[str], None]) -> None:
    name, rest = args[0], args[1:]
    numbers = [w for w in rest if "=" not in w]
    if len(numbers) > 2:
        raise ValueError(f"create-topic takes NAME [PARTITIONS [RF]] [KEY=VALUE ...], got {args}")
    configs = dict(w.split("=", 1) for w in rest if "=" in w)
    partitions = _number("PARTITIONS", numbers[0]) if numbers else 1
    rf = _number("RF", numbers[1]) if len(numbers) > 1 else None
    topic = cluster.create_topic(name, partitions, rf, configs)
    write(f"created topic {name}: {len(topic.partitions)} partition(s)")


def _verb(command: str, args: list[str]) -> str | None:
    if args == ["list"] or (len(args) == 2 and args[0] == "describe"):
        return args[0]
    return None


async def _client_verb(cluster: Cluster, command: str, args: list[str]) -> str:
    """`topic list|describe`, `group list|describe` as the everyday commands print them: a
    Kafka client in a thread (it blocks) talking to this cluster's first listener."""
    ns = argparse.Namespace(
        command=command,
        verb=args[0],
        bootstrap=cluster.bootstrap_servers,
        command_config=None,
        json=False,
        timeout=10.0,
        internal=False,
        name=args[1:],
        group=args[1:],
    )
    out, err = io.StringIO(), io.StringIO()
    await asyncio.to_thread(run, ns, out, err)
    return (out.getvalue() + err.getvalue()).rstrip("\n")
