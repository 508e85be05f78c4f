"""SharePartition (KIP-932 delivery state) against a naive model: every offset of the log with
its delivery count and whether it is free, held by a member until a deadline, or done."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from msklite.coordinator.share_partition import AckType, RecordState, SharePartition, StateBatch
from msklite.errors import ErrorCode

LIMIT = 3  # group.share.delivery.count.limit
MAX_IN_FLIGHT = 8
MAX_BATCH = 6
LOCK_MS = 100
MEMBERS = ("a", "b")


@dataclass
class Rec:
    count: int = 0
    holder: str | None = None
    deadline: int = 0
    done: bool = False
    archived: bool = False


class Model:
    """What a share group must guarantee, written the plain way."""

    def __init__(self) -> None:
        self.recs: list[Rec] = []  # index = offset; the log starts at 0
        self.end = 0  # the SPEO: offsets at or past it were never acquired

    def start(self) -> int:
        return next((o for o, r in enumerate(self.recs[: self.end]) if not r.done), self.end)

    def give_back(self, r: Rec) -> None:
        r.holder = None
        if r.count >= LIMIT:
            r.done = r.archived = True


class ShareMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sp = SharePartition(0, LIMIT, MAX_IN_FLIGHT, LOCK_MS)
        self.model = Model()
        self.now = 0
        self.log_end = 0
        self.batch_ends: list[int] = []  # the last offset of each produced batch

    @rule(n=st.integers(1, MAX_BATCH))
    def produce(self, n: int) -> None:
        self.log_end += n
        self.batch_ends.append(self.log_end - 1)
        self.model.recs.extend(Rec() for _ in range(n))

    @rule(member=st.sampled_from(MEMBERS), max_records=st.integers(1, 10))
    def acquire(self, member: str, max_records: int) -> None:
        got = self.sp.acquire(member, self.log_end, max_records, self.now, self.batch_ends)
        offsets = [o for a in got for o in range(a.first_offset, a.last_offset + 1)]
        m = self.model
        start, old_end = m.start(), m.end
        assert offsets == sorted(set(offsets))
        free = [o for o in range(start, old_end) if not m.recs[o].done and m.recs[o].holder is None]
        # redeliveries first, in order, at most max_records of them
        redelivered = free[:max_records]
        assert offsets[: len(redelivered)] == redelivered
        new = offsets[len(redelivered) :]
        if new:
            # new records: from the SPEO on, in whole batches, each begun within both limits
            assert new == list(range(old_end, new[-1] + 1))
            assert new[-1] in self.batch_ends
            last_batch = max([e + 1 for e in self.batch_ends if e < new[-1]] + [old_end])
            assert len(redelivered) + last_batch - old_end < max_records
            assert last_batch - start < MAX_IN_FLIGHT
        end = old_end + len(new)
        # and they stop only at the log end or at a limit
        assert end == self.log_end or len(offsets) >= max_records or end - start >= MAX_IN_FLIGHT
        for o in offsets:
            r = m.recs[o]
            assert not r.done and r.holder is None, f"offset {o} handed out twice"
            r.count += 1
            r.holder, r.deadline = member, self.now + LOCK_MS
        for a in got:
            for o in range(a.first_offset, a.last_offset + 1):
                assert m.recs[o].count == a.delivery_count
        m.end = end

    @rule(
        member=st.sampled_from(MEMBERS),
        data=st.data(),
        ack=st.sampled_from([AckType.ACCEPT, AckType.RELEASE, AckType.REJECT, AckType.RENEW]),
    )
    @precondition(lambda self: self.model.end > 0)
    def acknowledge(self, member: str, data: st.DataObject, ack: AckType) -> None:
        m = self.model
        first = data.draw(st.integers(0, m.end - 1))
        last = data.draw(st.integers(first, min(first + 3, m.end - 1)))
        error = self.sp.acknowledge(member, first, last, [ack], self.now)
        recs = m.recs[first : last + 1]
        if any(r.holder != member or r.done for r in recs):
            assert error == ErrorCode.INVALID_RECORD_STATE
            return
        assert error == ErrorCode.NONE
        for r in recs:
            if ack == AckType.ACCEPT:
                r.holder, r.done = None, True
            elif ack == AckType.REJECT:
                r.holder, r.done, r.archived = None, True, True
            elif ack == AckType.RELEASE:
                m.give_back(r)
            else:
                r.deadline = self.now + LOCK_MS

    @rule(ms=st.integers(1, 150))
    def time_passes(self, ms: int) -> None:
        self.now += ms
        changed = self.sp.expire(self.now)
        expired = [r for r in self.model.recs if r.holder is not None and r.deadline <= self.now]
        assert changed == bool(expired)
        for r in expired:
            self.model.give_back(r)

    @rule(member=st.sampled_from(MEMBERS))
    def member_leaves(self, member: str) -> None:
        self.sp.release_member(member)
        for r in self.model.recs:
            if r.holder == member:
                self.model.give_back(r)

    @rule()
    def leader_moves(self) -> None:
        """A new leader rebuilds the partition from what was persisted: locks are gone, the
        delivery counts stay."""
        self.sp = SharePartition.restore(
            self.sp.start_offset, self.sp.state_batches(), LIMIT, MAX_IN_FLIGHT, LOCK_MS
        )
        for r in self.model.recs:
            r.holder = None  # no give_back: a lost lock does not count against the limit

    @invariant()
    def same_state(self) -> None:
        m = self.model
        assert self.sp.start_offset == m.start()
        # a batch begun within the in-flight limit is taken whole
        assert self.sp.end_offset - self.sp.start_offset < MAX_IN_FLIGHT + MAX_BATCH
        for o in range(m.start(), self.sp.end_offset):
            rec, r = self.sp.in_flight[o], m.recs[o]
            assert rec.delivery_count == r.count
            if r.archived:
                assert rec.state == RecordState.ARCHIVED
            elif r.done:
                assert rec.state == RecordState.ACKNOWLEDGED
            elif r.holder is not None:
                assert (rec.state, rec.member_id) == (RecordState.ACQUIRED, r.holder)
            else:
                assert rec.state == RecordState.AVAILABLE
        assert self.sp.acquired_count() == sum(1 for r in m.recs if r.holder is not None)


TestShareMachine = ShareMachine.TestCase
TestShareMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_redelivery_raises_the_delivery_count_until_archived() -> None:
    sp = SharePartition(0, 2, 100, 10)
    assert [(a.first_offset, a.delivery_count) for a in sp.acquire("a", 1, 5, 0)] == [(0, 1)]
    assert sp.expire(10)
    assert [(a.first_offset, a.delivery_count) for a in sp.acquire("b", 1, 5, 10)] == [(0, 2)]
    assert sp.acknowledge("b", 0, 0, [AckType.RELEASE], 11) == ErrorCode.NONE
    # the limit was reached: archived, never delivered again, and the SPSO moved past it
    assert sp.acquire("a", 1, 5, 12) == []
    assert sp.start_offset == 1


def test_state_batches_round_trip_as_the_persister_stores_them() -> None:
    sp = SharePartition(5, 5, 100, 10)
    sp.acquire("a", 10, 5, 0)
    sp.acknowledge("a", 6, 6, [AckType.ACCEPT], 0)
    sp.acknowledge("a", 7, 8, [AckType.REJECT], 0)
    assert sp.state_batches() == [
        StateBatch(5, 5, RecordState.AVAILABLE, 1),
        StateBatch(6, 6, RecordState.ACKNOWLEDGED, 1),
        StateBatch(7, 8, RecordState.ARCHIVED, 1),
        StateBatch(9, 9, RecordState.AVAILABLE, 1),
    ]
    restored = SharePartition.restore(5, sp.state_batches(), 5, 100, 10)
    got = restored.acquire("b", 10, 10, 0)
    assert [(a.first_offset, a.last_offset, a.delivery_count) for a in got] == [
        (5, 5, 2),
        (9, 9, 2),
    ]


def test_per_offset_acknowledgement_is_all_or_nothing() -> None:
    sp = SharePartition(0, 5, 100, 10)
    sp.acquire("a", 3, 10, 0)
    sp.acquire("b", 4, 10, 0)  # offset 3 is b's
    mixed = [AckType.ACCEPT, AckType.REJECT, AckType.RELEASE, AckType.ACCEPT]
    assert sp.acknowledge("a", 0, 3, mixed, 1) == ErrorCode.INVALID_RECORD_STATE
    assert sp.acquired_count() == 4  # nothing applied
    assert sp.acknowledge("a", 0, 2, mixed[:2], 1) == ErrorCode.INVALID_REQUEST
    assert sp.acknowledge("a", 0, 2, mixed[:3], 1) == ErrorCode.NONE
    assert [sp.in_flight[o].state for o in (2, 3)] == [RecordState.AVAILABLE, RecordState.ACQUIRED]
    assert sp.start_offset == 2


def test_new_records_are_acquired_in_whole_batches() -> None:
    sp = SharePartition(0, 5, 4, 10)
    # batches 0-2, 3-7, 8-9: max_records 4 takes two whole batches (8 records)
    got = sp.acquire("a", 10, 4, 0, [2, 7, 9])
    assert [(a.first_offset, a.last_offset) for a in got] == [(0, 7)]
    # 8 in flight, past the limit of 4: nothing new until the window moves
    assert sp.acquire("b", 10, 4, 0, [2, 7, 9]) == []
    assert sp.acknowledge("a", 0, 7, [AckType.ACCEPT], 1) == ErrorCode.NONE
    got = sp.acquire("b", 10, 4, 1, [2, 7, 9])
    assert [(a.first_offset, a.last_offset) for a in got] == [(8, 9)]


def test_record_limit_mode_splits_a_batch_at_max_records() -> None:
    """KIP-1206: max_records is strict; the batch's rest stays for the next fetch."""
    sp = SharePartition(0, 5, 100, 10)
    got = sp.acquire("a", 10, 4, 0, [2, 7, 9], record_limit=True)
    assert [(a.first_offset, a.last_offset) for a in got] == [(0, 3)]
    got = sp.acquire("b", 10, 3, 0, [2, 7, 9], record_limit=True)
    assert [(a.first_offset, a.last_offset) for a in got] == [(4, 6)]
    # a release: redeliveries first, still at most max_records
    assert sp.acknowledge("a", 0, 3, [AckType.RELEASE], 1) == ErrorCode.NONE
    got = sp.acquire("b", 10, 5, 1, [2, 7, 9], record_limit=True)
    assert [(a.first_offset, a.last_offset, a.delivery_count) for a in got] == [
        (0, 3, 2),
        (7, 7, 1),
    ]
