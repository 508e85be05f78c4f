"""Hypothesis state machine: the group coordinator under any interleaving of joins, syncs,
heartbeats, leaves, commits, deletes and time passing, from well-behaved and confused clients
alike. It must never raise, answer a request twice, leave a request parked forever, or break
its own bookkeeping; and a replay of what it wrote must rebuild the same offsets."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from msklite.clock import ManualClock
from msklite.coordinator.coordinator import (
    CoordinatorConfig,
    GroupCoordinator,
    JoinRequest,
    JoinResponse,
    OffsetCommit,
    Output,
)
from msklite.coordinator.group import GroupState
from msklite.topic_partition import TopicPartition

GROUPS = st.sampled_from(["g1", "g2", ""])
INSTANCES = st.sampled_from([None, None, "i1", "i2"])
PROTOCOLS = st.sampled_from(
    [
        [("range", b"r")],
        [("roundrobin", b"x"), ("range", b"r2")],
        [("sticky", b"s")],
        [],
    ]
)


class CoordinatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.config = CoordinatorConfig(
            initial_rebalance_delay_ms=50,
            offsets_retention_ms=20_000,
            offsets_retention_check_interval_ms=1_000,
        )
        self.gc = GroupCoordinator(self.config, self.clock.now_ms())
        self.waiter = 0
        self.open_waiters: set[int] = set()
        self.member_ids: list[str] = ["", "bogus"]
        self.records: list[tuple[int, bytes, bytes | None]] = []

    def _run(self, out: Output) -> None:
        self.records.extend(out.records)
        for waiter, response in out.completions:
            assert waiter in self.open_waiters, f"waiter {waiter} answered twice or unknown"
            self.open_waiters.discard(waiter)
            if isinstance(response, JoinResponse) and response.member_id:
                self.member_ids.append(response.member_id)

    def _next(self) -> int:
        self.waiter += 1
        self.open_waiters.add(self.waiter)
        return self.waiter

    @rule(
        group=GROUPS,
        member=st.integers(0, 30),
        instance=INSTANCES,
        protocols=PROTOCOLS,
        session=st.sampled_from([6000, 10_000, 100]),
        rebalance=st.sampled_from([1000, 5000, -1]),
        v4=st.booleans(),
    )
    def join(
        self,
        group: str,
        member: int,
        instance: str | None,
        protocols: list[tuple[str, bytes]],
        session: int,
        rebalance: int,
        v4: bool,
    ) -> None:
        member_id = self.member_ids[member % len(self.member_ids)]
        req = JoinRequest(
            group, member_id, instance, session, rebalance, "consumer", protocols, "c", "h", v4
        )
        self._run(self.gc.join(req, self._next(), self.clock.now_ms()))

    @rule(
        group=GROUPS, member=st.integers(0, 30), generation=st.integers(-1, 4), lead=st.booleans()
    )
    def sync(self, group: str, member: int, generation: int, lead: bool) -> None:
        member_id = self.member_ids[member % len(self.member_ids)]
        g = self.gc.groups.get(group)
        if lead and g is not None and g.leader is not None:
            member_id, generation = g.leader, g.generation
        assignments = {m: m.encode() for m in self.member_ids[-3:]}
        out = self.gc.sync(
            group,
            generation,
            member_id,
            None,
            None,
            None,
            assignments,
            self._next(),
            self.clock.now_ms(),
        )
        self._run(out)

    @rule(group=GROUPS, member=st.integers(0, 30), generation=st.integers(-1, 4))
    def heartbeat(self, group: str, member: int, generation: int) -> None:
        member_id = self.member_ids[member % len(self.member_ids)]
        self.gc.heartbeat(group, generation, member_id, None, self.clock.now_ms())

    @rule(group=GROUPS, member=st.integers(0, 30), instance=INSTANCES)
    def leave(self, group: str, member: int, instance: str | None) -> None:
        member_id = self.member_ids[member % len(self.member_ids)]
        _, errors, out = self.gc.leave(group, [(member_id, instance)], self.clock.now_ms())
        assert len(errors) == (1 if group else 0)
        self._run(out)

    @rule(
        group=GROUPS,
        member=st.integers(0, 30),
        generation=st.integers(-1, 4),
        partition=st.integers(0, 2),
        offset=st.integers(-1, 100),
    )
    def commit(self, group: str, member: int, generation: int, partition: int, offset: int) -> None:
        member_id = self.member_ids[member % len(self.member_ids)]
        errors, out = self.gc.commit(
            group,
            generation,
            member_id,
            None,
            [OffsetCommit("t", partition, offset)],
            self.clock.now_ms(),
        )
        assert len(errors) == 1
        self._run(out)

    @rule(group=GROUPS)
    def delete_group(self, group: str) -> None:
        self._run(self.gc.delete_groups([group])[1])

    @rule(group=GROUPS, partition=st.integers(0, 2))
    def delete_offset(self, group: str, partition: int) -> None:
        self._run(self.gc.delete_offsets(group, [TopicPartition("t", partition)])[2])

    @rule(ms=st.sampled_from([1, 50, 1000, 6000, 30_000]))
    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self._run(self.gc.tick(self.clock.now_ms()))

    @rule()
    def nothing_stays_parked(self) -> None:
        """Left alone long enough, every parked JoinGroup and SyncGroup gets its answer."""
        for _ in range(10):
            self.clock.advance(10_000)
            self._run(self.gc.tick(self.clock.now_ms()))
        assert not self.open_waiters

    @invariant()
    def bookkeeping(self) -> None:
        for g in self.gc.groups.values():
            assert g.state != GroupState.DEAD
            if g.state == GroupState.EMPTY:
                assert not g.members
            elif g.state != GroupState.PREPARING_REBALANCE:
                assert g.members
            # Kafka too lets the last member leave during the initial delay: the group stays
            # PreparingRebalance, memberless, until the delay ends.
            assert g.leader in g.members if g.members else g.leader is None
            for instance, member_id in g.static_members.items():
                assert g.members[member_id].group_instance_id == instance
            waiting = {m.join_waiter for m in g.members.values()} | {
                m.sync_waiter for m in g.members.values()
            }
            assert waiting - {None} <= self.open_waiters

    @invariant()
    def replay_rebuilds_the_offsets(self) -> None:
        restored = GroupCoordinator(self.config, self.clock.now_ms())
        for p in {p for p, _, _ in self.records}:
            restored.load(
                p, [(k, v, -1, -1, -1) for q, k, v in self.records if q == p], self.clock.now_ms()
            )
        expect = {g: dict(x.offsets) for g, x in self.gc.groups.items() if x.offsets}
        got = {g: dict(x.offsets) for g, x in restored.groups.items() if x.offsets}
        assert got == expect


CoordinatorMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestCoordinator = CoordinatorMachine.TestCase
