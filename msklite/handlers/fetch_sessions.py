"""Incremental fetch sessions (KIP-227): the broker remembers a consumer's partitions and
answers later fetches with only what changed.

Request metadata → what happens (Kafka's FetchManager.newContext):
- id 0, epoch -1: sessionless full fetch.
- epoch 0: full fetch that opens a new session (closing session `id` if one was named).
- id X, epoch -1: close X; sessionless full fetch.
- id X, epoch N > 0: incremental: X unknown → FETCH_SESSION_ID_NOT_FOUND; N not the expected
  epoch → INVALID_FETCH_SESSION_EPOCH; else the request's partitions are added or updated, its
  forgotten ones dropped, and the response carries only partitions with news (records, an
  error, or a changed high watermark / last stable / log start offset).
Sessions are evicted least-recently-used beyond `max.incremental.fetch.session.cache.slots`
(1000). Synchronous; per broker.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

from msklite.errors import ErrorCode, KafkaError
from msklite.protocol.fetch import FetchPartition, FetchRequest
from msklite.topic_partition import TopicPartition

MAX_SLOTS = 1000
INITIAL_EPOCH = 0
FINAL_EPOCH = -1


@dataclass(slots=True)
class CachedPartition:
    request: FetchPartition
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1


@dataclass(slots=True)
class FetchSession:
    session_id: int
    epoch: int  # the epoch the next request must carry
    partitions: OrderedDict[TopicPartition, CachedPartition]


@dataclass(slots=True)
class FetchContext:
    """What one fetch reads, and whether the response is incremental."""

    session: FetchSession | None
    partitions: list[tuple[TopicPartition, FetchPartition]]
    incremental: bool

    @property
    def response_session_id(self) -> int:
        return self.session.session_id if self.session is not None else 0

    def must_respond(
        self,
        tp: TopicPartition,
        error: int,
        has_records: bool,
        hw: int,
        lso: int,
        log_start: int,
    ) -> bool:
        """Record what this response tells the client; whether an incremental response must
        carry the partition."""
        if self.session is None:
            return True
        cached = self.session.partitions.get(tp)
        if cached is None:
            return True
        changed = (
            cached.high_watermark != hw
            or cached.last_stable_offset != lso
            or cached.log_start_offset != log_start
        )
        cached.high_watermark, cached.last_stable_offset, cached.log_start_offset = (
            hw,
            lso,
            log_start,
        )
        if has_records:
            # Kafka moves a partition that returned data to the end, so one busy partition
            # cannot starve the others of response space.
            self.session.partitions.move_to_end(tp)
        return not self.incremental or changed or has_records or error != ErrorCode.NONE


def _next_epoch(epoch: int) -> int:
    return 1 if epoch >= 2**31 - 1 else epoch + 1


class FetchSessionCache:
    def __init__(self, max_slots: int = MAX_SLOTS) -> None:
        self.max_slots = max_slots
        self.sessions: OrderedDict[int, FetchSession] = OrderedDict()
        self._ids = itertools.count(1)

    def _requested(self, req: FetchRequest) -> list[tuple[TopicPartition, FetchPartition]]:
        return [(TopicPartition(t.topic, p.partition), p) for t in req.topics for p in t.partitions]

    def new_context(self, req: FetchRequest) -> FetchContext:
        sid, epoch = req.session_id, req.session_epoch
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if sid:
                self.sessions.pop(sid, None)
            requested = self._requested(req)
            if epoch == FINAL_EPOCH:
                return FetchContext(None, requested, incremental=False)
            session = self._create(requested)
            return FetchContext(session, requested, incremental=False)
        session = self.sessions.get(sid)
        if session is None:
            raise KafkaError(ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            raise KafkaError(ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        for tp, part in self._requested(req):
            cached = session.partitions.get(tp)
            if cached is None:
                session.partitions[tp] = CachedPartition(part)
            else:
                cached.request = part
        for topic, indexes in req.forgotten_topics_data:
            for index in indexes:
                session.partitions.pop(TopicPartition(topic, index), None)
        session.epoch = _next_epoch(session.epoch)
        self.sessions.move_to_end(sid)
        items = [(tp, c.request) for tp, c in session.partitions.items()]
        return FetchContext(session, items, incremental=True)

    def _create(
        self, requested: list[tuple[TopicPartition, FetchPartition]]
    ) -> FetchSession | None:
        if self.max_slots <= 0:
            return None
        while len(self.sessions) >= self.max_slots:
            self.sessions.popitem(last=False)
        sid = next(self._ids)
        session = FetchSession(sid, 1, OrderedDict((tp, CachedPartition(p)) for tp, p in requested))
        self.sessions[sid] = session
        return session
