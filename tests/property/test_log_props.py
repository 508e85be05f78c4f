"""Hypothesis state machine: a PartitionLog against a list model, across appends, rolls,
reads at any offset, truncation and reopening."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from msklite.clock import ManualClock
from msklite.config import TopicConfig
from msklite.log.partition_log import PartitionLog
from msklite.protocol.records import (
    encode_batch,
    iter_records,
    read_header,
    validate_produced_batch,
)

CONFIG = TopicConfig(segment_bytes=600, index_interval_bytes=150)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="msklite-prop-")
        self.clock = ManualClock()
        self.log = PartitionLog(self.dir, CONFIG, self.clock)
        self.values: list[bytes] = []  # value of each offset

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(n=st.integers(1, 5), size=st.integers(0, 120))
    def append(self, n: int, size: int) -> None:
        vals = [f"{len(self.values) + i}:".encode() + b"x" * size for i in range(n)]
        batch = memoryview(encode_batch([(None, v) for v in vals], timestamp=len(self.values)))
        info = self.log.append_as_leader(batch, validate_produced_batch(batch, 10**6), 0)
        assert info.base_offset == len(self.values)
        self.values += vals

    @precondition(lambda self: self.values)
    @rule(data=st.data())
    def read_any_offset(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(0, len(self.values) - 1))
        views = self.log.read(offset, data.draw(st.integers(1, 2000)), len(self.values), True)
        assert views
        first = read_header(views[0], 0)
        assert first.base_offset <= offset <= first.last_offset  # starts at the batch holding it
        got = {}
        for v in views:
            pos = 0
            while pos < len(v):
                h = read_header(v, pos)
                for r in iter_records(v[pos : pos + h.size]):
                    got[r.offset] = r.value
                pos += h.size
        assert got[offset] == self.values[offset]
        assert all(self.values[o] == val for o, val in got.items())

    @precondition(lambda self: self.values)
    @rule(data=st.data())
    def truncate_at_a_batch_boundary(self, data: st.DataObject) -> None:
        starts = [0]
        pos_offset = 0
        for seg in self.log.segments:
            for _, h in seg.batches():
                pos_offset = h.last_offset + 1
                starts.append(pos_offset)
        cut = data.draw(st.sampled_from(starts))
        self.log.truncate_to(cut)
        del self.values[cut:]

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = PartitionLog(self.dir, CONFIG, self.clock, recovery_point=None)

    @rule()
    def reopen_after_a_clean_stop(self) -> None:
        """Segments below the recovery point are opened from their index files."""
        self.log.close()
        self.log = PartitionLog(self.dir, CONFIG, self.clock, recovery_point=len(self.values))

    @invariant()
    def end_offset_matches(self) -> None:
        assert self.log.log_end_offset == len(self.values)


LogMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestLog = LogMachine.TestCase
