"""Follower fetchers without sockets: copying, HW propagation, ISR expansion, and truncation of
a returning leader's divergent tail (KIP-101)."""

from __future__ import annotations

from pathlib import Path

from msklite.clock import ManualClock
from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.log.manager import LogManager
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol.records import (
    encode_batch,
    iter_records,
    read_header,
    validate_produced_batch,
)
from msklite.replication.follower import ReplicaFetcher
from msklite.replication.replica_manager import ReplicaManager
from msklite.topic_partition import TopicPartition


class Rig:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = ManualClock()
        infos = [BrokerInfo(i, f"az{i}") for i in (1, 2, 3)]
        config = {**MSK_BROKER_DEFAULTS, "auto.leader.rebalance.enable": "false"}
        self.controller = Controller(infos, BrokerConfigs(config), None)
        self.managers: dict[int, ReplicaManager] = {}
        self.fetchers: dict[int, ReplicaFetcher] = {}
        for i in (1, 2, 3):
            self.start(i)

    def start(self, i: int) -> None:
        logs = LogManager(str(self.root / f"b{i}"), i, self.controller.cluster_id, self.clock)
        rm = ReplicaManager(i, self.controller, logs, self.clock, self)
        fetcher = ReplicaFetcher(rm, self.managers)
        self.managers[i], self.fetchers[i] = rm, fetcher
        for name in list(self.controller.topics):
            rm.sync_topic(name)
        self.controller.on_change(rm.sync_topic)

    # The rig is the replica managers' notifier; `pump` does the copying.
    def wake(self, tp: TopicPartition, brokers: list[int]) -> None:
        for r in brokers:
            if r in self.fetchers:
                self.fetchers[r].wake(tp)

    replicate_now = wake

    def stop(self, i: int) -> None:
        rm = self.managers.pop(i)
        del self.fetchers[i]
        self.controller.off_change(rm.sync_topic)
        self.controller.broker_down(i)
        rm.shutdown()

    def pump(self) -> None:
        for _ in range(20):
            for f in list(self.fetchers.values()):
                f.step()

    def produce(self, value: bytes) -> None:
        leader = self.controller.topics["t"].partitions[0].leader
        rm = self.managers[leader]
        part = rm.leader_partition("t", 0)
        batch = memoryview(encode_batch([(None, value)]))
        rm.append(part, batch, validate_produced_batch(batch, 10**6), acks=1)

    def values(self, i: int) -> list[bytes | None]:
        log = self.managers[i].partitions[TopicPartition("t", 0)].log
        out: list[bytes | None] = []
        offset = log.log_start_offset
        while offset < log.log_end_offset:  # a read covers one segment
            for view in log.read(offset, 10**7, log.log_end_offset, True):
                pos = 0
                while pos < len(view):
                    h = read_header(view, pos)
                    out += [r.value for r in iter_records(view[pos : pos + h.size])]
                    pos += h.size
                    offset = h.last_offset + 1
        return out


def test_followers_copy_and_propagate_the_high_watermark(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.controller.create_topic("t", 1, 3)
    for i in range(5):
        rig.produce(b"%d" % i)
    rig.pump()
    for i in (1, 2, 3):
        part = rig.managers[i].partitions[TopicPartition("t", 0)]
        assert part.log.log_end_offset == 5 and part.high_watermark == 5


def test_a_returning_leader_truncates_what_the_new_leader_never_had(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.controller.create_topic("t", 1, 3)
    p = rig.controller.topics["t"].partitions[0]
    old = p.leader
    for i in range(3):
        rig.produce(b"common%d" % i)
    rig.pump()
    for f in (f for i, f in rig.fetchers.items() if i != old):
        f.pause()
    rig.produce(b"divergent")  # acks=1: only the old leader has it
    rig.stop(old)
    new = p.leader
    assert new != old and p.leader_epoch == 1
    for f in rig.fetchers.values():
        f.resume()
    rig.produce(b"new-epoch")
    rig.start(old)
    rig.pump()
    expected = [b"common0", b"common1", b"common2", b"new-epoch"]
    assert rig.values(old) == expected == rig.values(new)
    assert sorted(p.isr) == [1, 2, 3]  # the returning broker caught up and rejoined
    assert rig.managers[old].partitions[TopicPartition("t", 0)].log.epochs.entries == [
        (0, 0),
        (1, 3),
    ]


def test_idle_in_sync_followers_stay_in_the_isr_when_data_arrives(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.controller.create_topic("t", 1, 3)
    p = rig.controller.topics["t"].partitions[0]
    rig.produce(b"first")
    rig.pump()
    lag_ms = rig.controller.configs.get_int("replica.lag.time.max.ms")
    rig.clock.advance(lag_ms * 3)  # idle: nothing to copy, so no follower fetched
    rig.produce(b"after a quiet spell")
    # the ISR check runs before the followers' turn comes
    rig.managers[p.leader].check_isr(lag_ms)
    assert sorted(p.isr) == [1, 2, 3]
    rig.pump()
    assert sorted(p.isr) == [1, 2, 3]


def test_acks_all_followers_take_the_new_high_watermark_without_a_fetcher_pass(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.controller.create_topic("t", 1, 3)
    tp = TopicPartition("t", 0)
    leader = rig.controller.topics["t"].partitions[0].leader
    first, last = (r for r in (1, 2, 3) if r != leader)

    def replicate_now(tp: TopicPartition, brokers: list[int]) -> None:
        for r in (first, last):  # as the brokers do: each copies at once, in turn
            rig.fetchers[r].fetch_now(tp)

    rig.replicate_now = replicate_now  # type: ignore[method-assign]
    rig.pump()
    for fetcher in rig.fetchers.values():
        fetcher._event.clear()  # what their tasks would do; the rig runs none
    rm = rig.managers[leader]
    batch = memoryview(encode_batch([(None, b"v")]))
    rm.append(rm.leader_partition("t", 0), batch, validate_produced_batch(batch, 10**6), -1)
    # the last copy moved the HW and took it in the same fetch; the first copied before the
    # HW moved and, level with the leader, takes it from the wake: neither task is scheduled
    for r in (first, last):
        assert rig.managers[r].partitions[tp].high_watermark == 1
        assert not rig.fetchers[r]._event.is_set() and not rig.fetchers[r].dirty
    # a follower that is behind is still woken for a pass of its task
    rig.fetchers[first].pause(tp)
    rig.produce(b"w")
    rig.fetchers[first].resume(tp)
    assert rig.fetchers[first].dirty == {tp}
    rig.pump()
    assert rig.managers[first].partitions[tp].log.log_end_offset == 2
