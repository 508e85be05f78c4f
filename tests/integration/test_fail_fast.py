"""What a broker does not serve fails at once with a clear error, never by a timeout: KIP-848
(`group.protocol=consumer`) consumers of the 4.x releases when the broker's
`group.coordinator.rebalance.protocols` leaves `consumer` out (librdkafka tries the new protocol
only where ConsumerGroupHeartbeat v1 is advertised, as 4.0 and 4.1 advertise it; against 3.9 and
earlier it waits, as against those releases)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError

from msklite import Cluster

FAST = 5.0  # seconds; without an error the consumer would wait forever


@pytest.mark.parametrize(
    "version",
    [
        pytest.param(
            v,
            marks=pytest.mark.msk(
                kafka_version=v, config={"group.coordinator.rebalance.protocols": "classic"}
            ),
        )
        for v in ["4.0.x", "4.1.x"]
    ],
)
def test_confluent_kip848_consumer_fails_fast(
    msk_cluster: Cluster, topic_name: str, version: str
) -> None:
    msk_cluster.create_topic(topic_name)
    consumer = Consumer(
        {
            "bootstrap.servers": msk_cluster.bootstrap_servers,
            "group.id": topic_name,
            "group.protocol": "consumer",
        }
    )
    try:
        consumer.subscribe([topic_name])
        start = time.monotonic()
        error = None
        while error is None and time.monotonic() - start < FAST:
            msg = consumer.poll(0.2)
            error = None if msg is None else msg.error()
        assert error is not None, "no error within the deadline"
        assert error.code() == KafkaError._FATAL
        assert "ConsumerGroupHeartbeat" in error.str() and "version not supported" in error.str()
    finally:
        consumer.close()
