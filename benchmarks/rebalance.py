"""Rebalance cost when a 4th member joins a 3-member group: the classic protocol (librdkafka's
default eager `range,roundrobin` assignment) against KIP-848's consumer protocol, in the same
run against one `msklite serve --kafka-version 4.1.x` process.

Three confluent-kafka consumers share a 12-partition topic until every partition has an owner;
then a 4th subscribes. Two figures per protocol, per round:
- new member -> assigned: from the 4th member's `subscribe()` until it owns partitions and the
  four members' shares cover every partition exactly once;
- others paused: for each of the first three members, how long the partitions it still owns
  after the rebalance were not owned by it (revoked, then given back); the figure is the
  longest of the three. Eager classic rebalances revoke everything (stop-the-world); the
  consumer protocol revokes only what moves, so a member that keeps a partition never pauses.
  Also reported: how many of the partitions the three kept were revoked and given back.

Both protocols heartbeat every 500 ms (classic: the client's `heartbeat.interval.ms`; consumer:
the broker's `group.consumer.heartbeat.interval.ms`), so the comparison is of the protocols,
not of their default intervals (3 s and 5 s). The first three subscribe a third of an interval
apart (classic members fall back in step anyway: the sync that ends a rebalance restarts
their heartbeat timers together, so all three hear of the next rebalance at once and their
pause is about one join and sync round trip). A new group per round.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from benchmarks.procs import BenchError, BrokerProcess, free_port_block, msklite_command
from benchmarks.report import Section, ms, summary

PARTITIONS = 12
TOPIC = "bench-rebalance"
HEARTBEAT_MS = 500
PROTOCOLS = ("classic", "consumer")


class _Member:
    """A consumer that timestamps when each partition leaves and comes back."""

    def __init__(self, bootstrap: str, group: str, protocol: str) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": protocol,
            "enable.auto.commit": False,
        }
        if protocol == "classic":
            conf.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": HEARTBEAT_MS})
        self.consumer = Consumer(conf)
        self.lost_at: dict[int, float] = {}
        self.paused: dict[int, float] = {}

    def subscribe(self) -> None:
        def on_assign(_: Consumer, parts: list[TopicPartition]) -> None:
            now = time.perf_counter()
            for tp in parts:
                lost = self.lost_at.pop(tp.partition, None)
                if lost is not None:
                    self.paused[tp.partition] = self.paused.get(tp.partition, 0.0) + now - lost

        def on_revoke(_: Consumer, parts: list[TopicPartition]) -> None:
            now = time.perf_counter()
            for tp in parts:
                self.lost_at[tp.partition] = now

        self.consumer.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke)

    def owned(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}


def _covered(members: list[_Member]) -> bool:
    owned = [m.owned() for m in members]
    return (
        all(owned)
        and sum(map(len, owned)) == PARTITIONS
        and set().union(*owned) == set(range(PARTITIONS))
    )


def _poll_until(members: list[_Member], deadline: float, what: str) -> None:
    while not _covered(members):
        if time.perf_counter() > deadline:
            raise BenchError(f"{what}: no full assignment in time")
        for m in members:
            m.consumer.poll(0.002)


def _round(bootstrap: str, group: str, protocol: str, timeout: float) -> tuple[float, float, int]:
    """(new member -> assigned, longest pause of a kept partition in seconds, how many kept
    partitions were revoked and given back)."""
    first = [_Member(bootstrap, group, protocol) for _ in range(3)]
    newcomer = _Member(bootstrap, group, protocol)
    everyone = [*first, newcomer]
    try:
        for m in first:
            # staggered by a third of the heartbeat interval: members of a real group do not
            # heartbeat in step (in step, they would all hear of a rebalance at once)
            m.subscribe()
            stagger = time.perf_counter() + HEARTBEAT_MS / 3000
            while time.perf_counter() < stagger:
                for other in first:
                    other.consumer.poll(0.002)
        _poll_until(first, time.perf_counter() + timeout, f"{protocol}: 3 members")
        for m in first:
            m.paused.clear()
            m.lost_at.clear()
        start = time.perf_counter()
        newcomer.subscribe()
        _poll_until(everyone, start + timeout, f"{protocol}: 4th member")
        joined = time.perf_counter() - start
        paused, interrupted = 0.0, 0
        for m in first:
            kept = m.owned()
            paused = max(paused, *(m.paused.get(p, 0.0) for p in kept), 0.0)
            interrupted += sum(1 for p in kept if p in m.paused)
        return joined, paused, interrupted
    finally:
        for m in everyone:
            m.consumer.close()


def run(rounds: int, timeout: float = 60.0, loop: str = "default") -> Section:
    section = Section("rebalance")
    base = free_port_block(3)
    argv = msklite_command(3, base, loop)
    argv += ["--kafka-version", "4.1.x"]
    argv += ["--config", f"group.consumer.heartbeat.interval.ms={HEARTBEAT_MS}"]
    argv += ["--config", "group.initial.rebalance.delay.ms=0"]
    joined: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
    paused: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
    interrupted: dict[str, list[int]] = {p: [] for p in PROTOCOLS}
    with BrokerProcess("msklite", argv) as broker:
        _, line = broker.wait_line("Bootstrap servers:", timeout)
        bootstrap = line.split(":", 1)[1].strip()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout)
        try:
            for r in range(rounds):
                for protocol in PROTOCOLS:
                    took, pause, count = _round(
                        bootstrap, f"bench-{protocol}-{r}", protocol, timeout
                    )
                    joined[protocol].append(took)
                    paused[protocol].append(pause)
                    interrupted[protocol].append(count)
        except (BenchError, KafkaException) as e:
            section.errors.append(str(e))
        broker.check_alive()
    section.data = {
        "rounds": rounds,
        "partitions": PARTITIONS,
        "heartbeat_interval_ms": HEARTBEAT_MS,
        "new_member_assigned_s": {p: summary(v) for p, v in joined.items()},
        "others_paused_s": {p: summary(v) for p, v in paused.items()},
        "kept_partitions_interrupted": interrupted,
        "raw": {"joined": joined, "paused": paused},
    }
    for protocol in PROTOCOLS:
        j, p = summary(joined[protocol]), summary(paused[protocol])
        section.row(
            f"4th member joins 3, {protocol}: new member assigned",
            ms(j["median"]),
            f"median of {len(joined[protocol])}, max {ms(j['max'])}",
        )
        section.row(
            f"4th member joins 3, {protocol}: others paused (longest kept partition)",
            ms(p["median"]),
            f"median of {len(paused[protocol])}, max {ms(p['max'])}; kept partitions "
            f"revoked and given back per round: {interrupted[protocol]}",
        )
    return section
