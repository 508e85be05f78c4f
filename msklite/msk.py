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
# How the local cluster is named where MSK names a cluster: its ARN, its brokers' host names.
REGION = "us-east-1"
ACCOUNT = "000000000000"
CLUSTER_NAME = "msklite"

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
    "zookeeper.session.timeout.ms": "18000",
    "zookeeper.set.acl": "false",
}


def broker_name(node_id: int) -> str:
    """MSK's broker naming: b-1, b-2, …"""
    return f"b-{node_id}"


def msk_hostname(node_id: int, cluster_id: str) -> str:
    """An MSK broker's host name, `b-1.<cluster-name>.<id>.c1.kafka.<region>.amazonaws.com`,
    with the 6-character id (MSK's is random) taken from the cluster id."""
    short = "".join(c for c in cluster_id.lower() if c.isalnum())[:6] or "local"
    return f"{broker_name(node_id)}.{CLUSTER_NAME}.{short}.c1.kafka.{REGION}.amazonaws.com"


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


# The Apache Kafka properties an MSK custom configuration may set (Standard brokers; the MSK
# developer guide, "Custom MSK configurations"). MSK refuses any other key in a
# configuration's serverProperties.
MSK_CONFIGURABLE = frozenset(
    {
        "allow.everyone.if.no.acl.found",
        "auto.create.topics.enable",
        "compression.type",
        "connections.max.idle.ms",
        "default.replication.factor",
        "delete.topic.enable",
        "group.initial.rebalance.delay.ms",
        "group.max.session.timeout.ms",
        "group.min.session.timeout.ms",
        "leader.imbalance.per.broker.percentage",
        "log.cleaner.delete.retention.ms",
        "log.cleaner.min.cleanable.ratio",
        "log.cleanup.policy",
        "log.flush.interval.messages",
        "log.flush.interval.ms",
        "log.message.timestamp.difference.max.ms",
        "log.message.timestamp.type",
        "log.retention.bytes",
        "log.retention.hours",
        "log.retention.minutes",
        "log.retention.ms",
        "log.roll.ms",
        "log.segment.bytes",
        "max.incremental.fetch.session.cache.slots",
        "message.max.bytes",
        "min.insync.replicas",
        "num.io.threads",
        "num.network.threads",
        "num.partitions",
        "num.recovery.threads.per.data.dir",
        "num.replica.fetchers",
        "offsets.retention.minutes",
        "offsets.topic.replication.factor",
        "replica.fetch.max.bytes",
        "replica.fetch.response.max.bytes",
        "replica.lag.time.max.ms",
        "replica.selector.class",
        "replica.socket.receive.buffer.bytes",
        "socket.receive.buffer.bytes",
        "socket.request.max.bytes",
        "socket.send.buffer.bytes",
        "transaction.max.timeout.ms",
        "transaction.state.log.min.isr",
        "transaction.state.log.replication.factor",
        "transactional.id.expiration.ms",
        "unclean.leader.election.enable",
        "zookeeper.connection.timeout.ms",
        "zookeeper.session.timeout.ms",
    }
)
# MSK's own bounds on some values, tighter than Kafka's.
_MSK_BOUNDS = {
    "replica.lag.time.max.ms": (10_000, 30_000),
    "zookeeper.session.timeout.ms": (6_000, 18_000),
}
# The Kafka version msklite serves; MSK names the versions it checked a key against.
KAFKA_VERSION = "3.9.x"


def parse_server_properties(text: str) -> dict[str, str]:
    """`server.properties` text (Java properties: `key=value`, `key: value` or `key value`,
    `#`/`!` comments, a trailing backslash continuing a line) as a dict."""
    out: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.lstrip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            key, _, value = line.partition(" ")
        else:
            key, value = line[:cut], line[cut + 1 :]
        out[key.strip()] = value.strip()
    if pending:
        key, _, value = pending.partition("=")
        out[key.strip()] = value.strip()
    return out


def msk_configuration(text: str) -> dict[str, str]:
    """The broker configs of an MSK custom configuration's serverProperties, refused as MSK
    refuses them (ValueError, one line per key, MSK's wording)."""
    props = parse_server_properties(text)
    errors = []
    for key, value in props.items():
        if key not in MSK_CONFIGURABLE:
            errors.append(
                f"Key '{key}' is not supported by at least one Apache Kafka version. "
                f"Key checked against versions: [{KAFKA_VERSION}]"
            )
        elif key in _MSK_BOUNDS:
            lo, hi = _MSK_BOUNDS[key]
            if not (value.lstrip("-").isdigit() and lo <= int(value) <= hi):
                errors.append(
                    f"Value '{value}' of key '{key}' is not valid: MinValue = {lo}, "
                    f"MaxValue (inclusive) = {hi}"
                )
    if errors:
        raise ValueError("\n".join(errors))
    return props
