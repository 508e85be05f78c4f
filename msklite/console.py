"""The `msklite serve` fault console: commands typed on standard input while the cluster runs.

    stop-broker N | start-broker N | stop-az AZ | start-az AZ | add-broker [AZ]
    pause N | resume N          (make broker N's follower replicas stop / resume copying)
    status | help

Each command takes effect at once and prints what the cluster looks like afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

from msklite.cluster import Cluster

HELP = __doc__.split("\n\n")[1] if __doc__ else ""


def status(cluster: Cluster) -> str:
    controller = cluster.controller
    assert controller is not None
    lines = []
    for info in cluster.infos:
        state = "up" if info.node_id in cluster.brokers else "DOWN"
        lines.append(f"  b-{info.node_id}  {info.host}:{info.port}  {info.rack}  {state}")
    partitions = sum(len(t.partitions) for t in controller.topics.values())
    under = sum(
        1 for t in controller.topics.values() for p in t.partitions if len(p.isr) < len(p.replicas)
    )
    lines.append(
        f"  {len(controller.topics)} topic(s), {partitions} partition(s), "
        f"{under} under-replicated, {controller.offline_partitions()} offline"
    )
    return "\n".join(lines)


async def execute(cluster: Cluster, line: str, write: Callable[[str], None]) -> None:
    words = line.split()
    if not words:
        return
    command, args = words[0], words[1:]
    try:
        if command == "stop-broker" and len(args) == 1:
            await cluster.astop_broker(int(args[0]))
        elif command == "start-broker" and len(args) == 1:
            await cluster.astart_broker(int(args[0]))
        elif command == "stop-az" and len(args) == 1:
            await cluster.astop_az(args[0])
        elif command == "start-az" and len(args) == 1:
            await cluster.astart_az(args[0])
        elif command == "add-broker" and len(args) <= 1:
            node_id = await cluster.aadd_broker(args[0] if args else None)
            write(f"added broker {node_id}")
        elif command == "pause" and len(args) == 1:
            cluster.brokers[int(args[0])].fetcher.pause()
        elif command == "resume" and len(args) == 1:
            cluster.brokers[int(args[0])].fetcher.resume()
        elif command == "status":
            pass
        else:
            write(HELP)
            return
    except (ValueError, KeyError) as e:
        write(f"error: {e}")
        return
    write(status(cluster))
