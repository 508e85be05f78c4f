"""The server-side assignors of KIP-848 consumer groups (`group.consumer.assignors`): `uniform`
(Kafka's UniformAssignor, the default) and `range` (RangeAssignor). Pure functions from the
members' subscriptions and their previous target to a new target.

- uniform: sticky and balanced. A member keeps the partitions of its previous target that it
  still subscribes to; the rest go one by one to the least-loaded subscriber; then partitions
  move from the most to the least loaded subscriber until no two subscribers of a partition
  differ by more than one. So a member joining a group takes partitions from the others and
  nobody else's partitions move.
- range: for each topic, its subscribers in member-id order get contiguous ranges, the first
  `partitions % members` one more (co-partitioned topics land on the same member).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from msklite.coordinator.consumer_records import Assignment

UNIFORM = "uniform"
RANGE = "range"


@dataclass(frozen=True, slots=True)
class MemberSpec:
    topics: frozenset[uuid.UUID]  # subscribed topics that exist
    previous: Assignment  # the member's previous target


# members' specs, topic id -> partition count: member id -> its new target
Assignor = Callable[[Mapping[str, MemberSpec], Mapping[uuid.UUID, int]], dict[str, Assignment]]


def _freeze(target: dict[str, dict[uuid.UUID, set[int]]]) -> dict[str, Assignment]:
    return {m: {t: frozenset(ps) for t, ps in topics.items() if ps} for m, topics in target.items()}


def uniform(
    members: Mapping[str, MemberSpec], topics: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    target: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
    load = dict.fromkeys(members, 0)
    owner: dict[tuple[uuid.UUID, int], str] = {}
    order = sorted(members)
    for m in order:
        spec = members[m]
        for topic_id, partitions in spec.previous.items():
            if topic_id not in spec.topics:
                continue
            for p in partitions:
                if p < topics.get(topic_id, 0) and (topic_id, p) not in owner:
                    owner[(topic_id, p)] = m
                    target[m].setdefault(topic_id, set()).add(p)
                    load[m] += 1
    subscribers = {t: [m for m in order if t in members[m].topics] for t in topics}
    for topic_id in sorted(topics):
        for p in range(topics[topic_id]):
            candidates = subscribers[topic_id]
            if (topic_id, p) in owner or not candidates:
                continue
            m = min(candidates, key=lambda c: (load[c], c))
            owner[(topic_id, p)] = m
            target[m].setdefault(topic_id, set()).add(p)
            load[m] += 1
    moved = True
    while moved:
        moved = False
        for (topic_id, p), m in sorted(owner.items(), key=lambda kv: (-load[kv[1]], kv[0])):
            least = min(subscribers[topic_id], key=lambda c: (load[c], c))
            if load[least] < load[m] - 1:
                target[m][topic_id].discard(p)
                target[least].setdefault(topic_id, set()).add(p)
                owner[(topic_id, p)] = least
                load[m] -= 1
                load[least] += 1
                moved = True
                break
    return _freeze(target)


def range_(
    members: Mapping[str, MemberSpec], topics: Mapping[uuid.UUID, int]
) -> dict[str, Assignment]:
    target: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
    for topic_id, count in topics.items():
        subscribers = sorted(m for m, spec in members.items() if topic_id in spec.topics)
        if not subscribers:
            continue
        share, extra = divmod(count, len(subscribers))
        start = 0
        for i, m in enumerate(subscribers):
            size = share + (1 if i < extra else 0)
            if size:
                target[m][topic_id] = set(range(start, start + size))
            start += size
    return _freeze(target)


ASSIGNORS: dict[str, Assignor] = {UNIFORM: uniform, RANGE: range_}


def assignor_name(configured: str) -> str:
    """`uniform` for Kafka's class name `org.apache.kafka...UniformAssignor` (or `uniform`)."""
    simple = configured.strip().rsplit(".", 1)[-1]
    return simple.removesuffix("Assignor").lower()
