"""KIP-227 fetch session bookkeeping (FetchManager.newContext semantics)."""

from __future__ import annotations

import pytest

from msklite.errors import ErrorCode, KafkaError
from msklite.handlers.fetch_sessions import FetchSessionCache
from msklite.protocol.fetch import FetchPartition, FetchRequest, FetchTopic
from msklite.topic_partition import TopicPartition


def _req(
    session_id: int, epoch: int, parts: list[tuple[str, int, int]], forgotten=()
) -> FetchRequest:
    topics: dict[str, list[FetchPartition]] = {}
    for t, p, off in parts:
        topics.setdefault(t, []).append(FetchPartition(p, -1, off, -1, -1, 1 << 20))
    return FetchRequest(
        -1,
        0,
        0,
        1 << 20,
        0,
        session_id,
        epoch,
        [FetchTopic(t, ps) for t, ps in topics.items()],
        list(forgotten),
        "",
    )


def test_sessionless_fetch_opens_nothing() -> None:
    cache = FetchSessionCache()
    fc = cache.new_context(_req(0, -1, [("a", 0, 5)]))
    assert fc.response_session_id == 0 and not cache.sessions
    assert fc.must_respond(TopicPartition("a", 0), 0, False, 1, 1, 0)


def test_incremental_fetch_sends_only_changes() -> None:
    cache = FetchSessionCache()
    full = cache.new_context(_req(0, 0, [("a", 0, 0), ("a", 1, 0)]))
    sid = full.response_session_id
    assert sid > 0
    for p in (0, 1):
        assert full.must_respond(TopicPartition("a", p), 0, False, 10, 10, 0)  # full: everything
    inc = cache.new_context(_req(sid, 1, []))
    assert [tp for tp, _ in inc.partitions] == [("a", 0), ("a", 1)]
    assert not inc.must_respond(TopicPartition("a", 0), 0, False, 10, 10, 0)  # nothing new
    assert inc.must_respond(TopicPartition("a", 1), 0, False, 11, 11, 0)  # HW moved
    inc2 = cache.new_context(_req(sid, 2, [("a", 0, 7)], forgotten=[("a", [1])]))
    assert [(tp, r.fetch_offset) for tp, r in inc2.partitions] == [(("a", 0), 7)]
    assert inc2.must_respond(TopicPartition("a", 0), 0, True, 10, 10, 0)  # records


def test_session_errors() -> None:
    cache = FetchSessionCache()
    with pytest.raises(KafkaError) as e:
        cache.new_context(_req(12345, 1, []))
    assert e.value.code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    sid = cache.new_context(_req(0, 0, [("a", 0, 0)])).response_session_id
    with pytest.raises(KafkaError) as e:
        cache.new_context(_req(sid, 5, []))
    assert e.value.code == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    cache.new_context(_req(sid, -1, [("a", 0, 0)]))  # close
    assert sid not in cache.sessions


def test_cache_evicts_least_recently_used() -> None:
    cache = FetchSessionCache(max_slots=2)
    a = cache.new_context(_req(0, 0, [("a", 0, 0)])).response_session_id
    b = cache.new_context(_req(0, 0, [("b", 0, 0)])).response_session_id
    cache.new_context(_req(a, 1, []))  # a used more recently than b
    cache.new_context(_req(0, 0, [("c", 0, 0)]))
    assert a in cache.sessions and b not in cache.sessions
