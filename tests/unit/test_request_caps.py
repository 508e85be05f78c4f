"""The controller's per-request caps (KRaft's MAX_RECORDS_PER_USER_OP and CreateTopics'
MAX_PARTITIONS_PER_BATCH) at their exact edges, without sockets or log files."""

from __future__ import annotations

from pathlib import Path

import pytest

from msklite.config import BrokerConfigs
from msklite.controller import (
    EXCESSIVE_BATCH,
    EXCESSIVE_PARTITIONS,
    BrokerInfo,
    Controller,
    NewTopic,
    TopicState,
)
from msklite.errors import ErrorCode, KafkaError
from msklite.msk import MSK_BROKER_DEFAULTS


def _controller(path: Path) -> Controller:
    infos = [BrokerInfo(i, f"az{i}") for i in (1, 2, 3)]
    return Controller(infos, BrokerConfigs(dict(MSK_BROKER_DEFAULTS)), str(path / "meta.json"))


def _refused(c: Controller, topics: list[NewTopic], validate_only: bool = False) -> str | None:
    with pytest.raises(KafkaError) as info:
        c.create_topics(topics, validate_only)
    assert info.value.code == ErrorCode.POLICY_VIOLATION
    return info.value.message


def test_partitions_counted_before_any_other_check(tmp_path: Path) -> None:
    c = _controller(tmp_path)
    # Invalid names and replication factors still count: the check comes first, as in Kafka.
    asked = [NewTopic("bad name!", 5000, 99), NewTopic("b", 5001, 1)]
    assert _refused(c, asked) == EXCESSIVE_PARTITIONS
    assert _refused(c, asked, validate_only=True) == EXCESSIVE_PARTITIONS
    # -1 counts the broker's num.partitions; manual assignments count one each.
    many_defaults = [NewTopic(f"t{i}") for i in range(10_001)]
    assert _refused(c, many_defaults) == EXCESSIVE_PARTITIONS
    assigned = NewTopic("m", assignments={p: [1] for p in range(10_001)})
    assert _refused(c, [assigned]) == EXCESSIVE_PARTITIONS
    assert c.topics == {}


def test_records_counted_for_topics_that_pass(tmp_path: Path) -> None:
    c = _controller(tmp_path)
    # 1 topic record + 1 config + 9,999 partitions = 10,001 records.
    over = [NewTopic("a", 9999, 1, configs={"retention.ms": "1"})]
    assert _refused(c, over) == EXCESSIVE_BATCH
    assert _refused(c, over, validate_only=True) == EXCESSIVE_BATCH
    # 9,999 partitions in all, but 2 x (1 + 1 + 4,999) records are already too many.
    pair = [
        NewTopic("b", 4999, 3, configs={"retention.ms": "1"}),
        NewTopic("c", 4999, 3, configs={"retention.ms": "1"}),
        NewTopic("d", 1, 1),
    ]
    assert _refused(c, pair) == EXCESSIVE_BATCH
    assert c.topics == {}
    assert not (tmp_path / "meta.json").exists()  # nothing was saved either
    # A topic that fails its own checks writes no records: the rest fit.
    fits = [NewTopic("x", 9999, 1), NewTopic("y", 1, 99)]
    results = c.create_topics(fits)
    assert isinstance(results[0], TopicState) and len(results[0].partitions) == 9999
    assert isinstance(results[1], KafkaError)
    assert results[1].code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert list(c.topics) == ["x"]


def test_create_partitions_room(tmp_path: Path) -> None:
    c = _controller(tmp_path)
    c.create_topic("t", 1, 1)
    with pytest.raises(KafkaError) as info:
        c.create_partitions("t", 102, None, False, room=100)
    assert (info.value.code, info.value.message) == (ErrorCode.UNKNOWN_SERVER_ERROR, None)
    assert len(c.topics["t"].partitions) == 1
    assert c.create_partitions("t", 101, None, True, room=100) == 100
    assert len(c.topics["t"].partitions) == 1
    assert c.create_partitions("t", 101, None, False, room=100) == 100
    assert len(c.topics["t"].partitions) == 101
