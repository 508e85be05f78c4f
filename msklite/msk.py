"""MSK's personality: its default broker configuration, availability-zone ids and bootstrap
strings.

MSK's default configuration differs from Apache Kafka's in a handful of settings (the MSK
developer guide, "Default Amazon MSK configuration"). The replication defaults depend on the
number of AZs and are derived in `msklite.cluster.msk_defaults`.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

DEFAULT_AZS = ("use1-az1", "use1-az2", "use1-az4")

# MSK's server.properties, as far as they differ from Kafka's defaults.
MSK_BROKER_DEFAULTS: dict[str, str] = {
    "allow.everyone.if.no.acl.found": "true",
    "auto.create.topics.enable": "false",
    "auto.leader.rebalance.enable": "true",
    "num.io.threads": "8",
    "num.network.threads": "5",
    "num.partitions": "1",
    "num.replica.fetchers": "2",
    "replica.lag.time.max.ms": "30000",
    "socket.receive.buffer.bytes": "102400",
    "socket.request.max.bytes": "104857600",
    "socket.send.buffer.bytes": "102400",
    "unclean.leader.election.enable": "true",
    "zookeeper.set.acl": "false",
}


def broker_name(node_id: int) -> str:
    """MSK's broker naming: b-1, b-2, …"""
    return f"b-{node_id}"


def spread_over_azs(items: list[tuple[T, str | None]]) -> list[T]:
    """Items ordered so that neighbours sit in different AZs: one from each AZ in turn, in
    the order the AZs first appear."""
    by_az: dict[str | None, list[T]] = {}
    for item, az in items:
        by_az.setdefault(az, []).append(item)
    queues = list(by_az.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def bootstrap_string(addresses: list[tuple[str, int, str | None]]) -> str:
    """`host:port,...` for MSK-style bootstrap: every broker, one per AZ in turn (MSK's
    bootstrap strings list one broker per AZ first)."""
    ordered = spread_over_azs([((host, port), rack) for host, port, rack in addresses])
    return ",".join(host_port(h, p) for h, p in ordered)


def host_port(host: str, port: int) -> str:
    """`host:port` as clients parse it: an IPv6 address goes in brackets (`[::1]:9092`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
