"""Controller decisions: placement across AZs, clean/unclean elections, preferred leaders,
reassignment completion."""

from __future__ import annotations

from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode
from msklite.msk import MSK_BROKER_DEFAULTS


def _controller(n: int = 3, config: dict[str, str] | None = None) -> Controller:
    azs = ["use1-az1", "use1-az2", "use1-az4"]
    infos = [BrokerInfo(i, azs[(i - 1) % 3]) for i in range(1, n + 1)]
    return Controller(infos, BrokerConfigs({**MSK_BROKER_DEFAULTS, **(config or {})}), None)


def test_replicas_land_in_distinct_azs_and_leaders_spread() -> None:
    c = _controller(6)
    topic = c.create_topic("t", 6, 3)
    for p in topic.partitions:
        assert len({c.brokers[r].rack for r in p.replicas}) == 3
        assert p.leader == p.replicas[0] and p.isr == p.replicas
    assert len({p.leader for p in topic.partitions}) == 6


def test_clean_election_picks_a_live_isr_member() -> None:
    c = _controller()
    p = c.create_topic("t", 1, 3).partitions[0]
    old = p.leader
    c.broker_down(old)
    assert p.leader in p.replicas and p.leader != old
    assert old not in p.isr and p.leader_epoch == 1


def test_follower_loss_shrinks_the_isr_at_once() -> None:
    c = _controller()
    p = c.create_topic("t", 1, 3).partitions[0]
    follower = p.replicas[1]
    c.broker_down(follower)
    assert follower not in p.isr and p.leader_epoch == 0


def test_no_live_isr_member_offline_or_unclean() -> None:
    c = _controller(config={"unclean.leader.election.enable": "false"})
    p = c.create_topic("t", 1, 3).partitions[0]
    leader = p.leader
    p.isr = [leader]
    c.broker_down(leader)
    assert p.leader == -1 and p.isr == [leader] and c.offline_partitions() == 1
    c.broker_up(leader)
    assert p.leader == leader

    u = _controller(config={"unclean.leader.election.enable": "true"})
    q = u.create_topic("t", 1, 3).partitions[0]
    leader = q.leader
    q.isr = [leader]
    u.broker_down(leader)
    assert q.leader not in (-1, leader) and q.isr == [q.leader]


def test_preferred_leader_returns_when_back_in_sync() -> None:
    c = _controller()
    p = c.create_topic("t", 1, 3).partitions[0]
    preferred = p.replicas[0]
    c.broker_down(preferred)
    c.broker_up(preferred)
    assert p.leader != preferred
    c.alter_isr("t", 0, [*p.isr, preferred])
    assert p.leader == preferred


def test_preferred_leader_returns_when_seen_alive_after_rejoining_the_isr() -> None:
    c = _controller()
    p = c.create_topic("t", 1, 3).partitions[0]
    preferred = p.replicas[0]
    c.broker_down(preferred)
    # Its fetcher caught up while the broker was still starting: not yet alive to lead.
    c.alter_isr("t", 0, [*p.isr, preferred])
    assert p.leader != preferred
    c.broker_up(preferred)
    assert p.leader == preferred

    off = _controller(config={"auto.leader.rebalance.enable": "false"})
    q = off.create_topic("t", 1, 3).partitions[0]
    preferred = q.replicas[0]
    off.broker_down(preferred)
    off.alter_isr("t", 0, [*q.isr, preferred])
    off.broker_up(preferred)
    assert q.leader != preferred


def test_elect_leaders_api_results() -> None:
    c = _controller(config={"auto.leader.rebalance.enable": "false"})
    p = c.create_topic("t", 1, 3).partitions[0]
    assert c.elect_leaders("t", 0, unclean=False) == ErrorCode.ELECTION_NOT_NEEDED
    c.broker_down(p.replicas[0])
    assert c.elect_leaders("t", 0, unclean=False) == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert c.elect_leaders("t", 0, unclean=True) == ErrorCode.ELECTION_NOT_NEEDED
    assert c.elect_leaders("nope", 0, unclean=False) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_reassignment_completes_when_new_replicas_are_in_sync() -> None:
    c = _controller(4)
    p = c.create_topic("t", 1, 3).partitions[0]
    old = list(p.replicas)
    target = [*old[1:], 4]
    assert c.reassign("t", 0, target) == ErrorCode.NONE
    assert p.adding_replicas == [4] and p.removing_replicas == [old[0]]
    assert sorted(p.replicas) == sorted({*old, 4})
    c.alter_isr("t", 0, [*p.isr, 4])
    assert p.replicas == target and p.adding_replicas == [] and p.leader in target
    assert c.reassign("t", 0, None) == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
