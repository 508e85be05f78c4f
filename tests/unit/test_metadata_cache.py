"""MetadataCache: encoded topic fragments stay until the controller reports a change of their
topic — its own changes, and a broker holding replicas of it stopping or starting — with no
invalidation by hand."""

from __future__ import annotations

from msklite.config import BrokerConfigs
from msklite.controller import BrokerInfo, Controller
from msklite.errors import ErrorCode
from msklite.handlers.metadata_cache import MetadataCache
from msklite.msk import MSK_BROKER_DEFAULTS
from msklite.protocol import metadata as codec

V = 12


def _setup() -> tuple[Controller, MetadataCache]:
    infos = [BrokerInfo(i, f"az{i}") for i in (1, 2, 3)]
    config = {**MSK_BROKER_DEFAULTS, "auto.leader.rebalance.enable": "false"}
    controller = Controller(infos, BrokerConfigs(config), None)
    return controller, MetadataCache(controller)


def _fresh(controller: Controller, name: str) -> bytes:
    return MetadataCache(controller).fragment(controller.topics[name], V)


def test_fragments_are_kept_until_their_topic_changes() -> None:
    controller, cache = _setup()
    controller.create_topic("a", assignments={0: [1, 2, 3]})
    controller.create_topic("b", assignments={0: [2, 3, 1]})
    a, b = (cache.fragment(controller.topics[n], V) for n in ("a", "b"))
    assert cache.fragment(controller.topics["a"], V) is a  # cached

    controller.alter_isr("a", 0, [1, 2])
    assert cache.fragment(controller.topics["a"], V) == _fresh(controller, "a") != a
    assert cache.fragment(controller.topics["b"], V) is b  # untouched

    controller.create_partitions("a", 2, None, False)
    assert cache.fragment(controller.topics["a"], V) == _fresh(controller, "a")


def test_a_broker_stopping_or_starting_refreshes_the_topics_it_replicates() -> None:
    controller, cache = _setup()
    # Broker 3 is a replica of "t" outside its ISR: its stop changes no leader or ISR of "t",
    # only what Metadata reports (offline_replicas).
    controller.create_topic("t", assignments={0: [1, 2, 3]})
    controller.alter_isr("t", 0, [1, 2])
    before = cache.fragment(controller.topics["t"], V)

    controller.broker_down(3)
    down = cache.fragment(controller.topics["t"], V)
    assert down == _fresh(controller, "t") != before

    controller.broker_up(3)
    assert cache.fragment(controller.topics["t"], V) == before


def test_offline_replicas_are_those_the_controller_counts_offline() -> None:
    """A stopped broker and a broker whose log directory is offline: each partition lists
    exactly `Controller.offline_replicas` (the encoder tests them as one set per topic)."""
    controller, cache = _setup()
    controller.create_topic("t", assignments={0: [1, 2, 3], 1: [2, 3, 1]})
    controller.broker_down(3)
    controller.log_dir_offline(2)
    topic = controller.topics["t"]
    alive = {n for n, b in controller.brokers.items() if b.alive}
    expected = codec.encode_topic(
        V,
        0,
        "t",
        topic.topic_id,
        False,
        [
            codec.PartitionMetadata(
                0 if p.leader in alive else ErrorCode.LEADER_NOT_AVAILABLE,
                p.partition,
                p.leader if p.leader in alive else -1,
                p.leader_epoch,
                p.replicas,
                p.isr,
                controller.offline_replicas(p),
            )
            for p in topic.partitions
        ],
    )
    assert [controller.offline_replicas(p) for p in topic.partitions] == [[2, 3], [2, 3]]
    assert cache.fragment(topic, V) == expected
