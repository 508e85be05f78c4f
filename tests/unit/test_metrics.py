"""The metrics' pure parts: Yammer-style meters, percentiles from the time buckets, the
consumer-protocol assignment decoder and Kafka's request names."""

from __future__ import annotations

import math
import struct

import pytest
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from msklite.handlers.context import TIME_BUCKETS
from msklite.metrics.exporter import _series, percentile_ms
from msklite.metrics.meters import Meter, request_name
from msklite.metrics.state import consumer_assignment
from msklite.protocol.api_keys import ApiKey

TICK = 5_000


def test_a_steady_rate_is_every_average_from_the_first_tick() -> None:
    meter = Meter(0)
    for i in range(1, 13):
        meter.tick(50 * i, i * TICK, TICK)  # 10 a second
        assert meter.last == meter.one == meter.five == meter.fifteen == pytest.approx(10.0)
    assert meter.mean_rate(600, 12 * TICK) == pytest.approx(10.0)


def test_the_one_minute_rate_decays_as_yammers() -> None:
    meter = Meter(0)
    meter.tick(50, TICK, TICK)  # 10/s, then nothing for a minute
    for i in range(2, 14):
        meter.tick(50, i * TICK, TICK)
    # twelve ticks of exp(-5/60) each: e^-1 of the rate is left, as Yammer's 1-minute EWMA
    assert meter.one == pytest.approx(10 * math.exp(-1))
    assert meter.fifteen == pytest.approx(10 * math.exp(-12 * 5 / 900))
    assert meter.last == 0


def test_a_counter_that_starts_again_restarts_its_meter() -> None:
    meter = Meter(0)
    meter.tick(1000, TICK, TICK)
    meter.tick(30, 2 * TICK, TICK)  # the broker restarted: 30 since
    assert meter.count == 30 and meter.started_ms == 2 * TICK
    assert meter.one == pytest.approx(6.0)


def test_a_meter_started_late_rates_only_what_follows() -> None:
    meter = Meter(10_000, base=700, count=700)
    meter.tick(750, 10_000 + TICK, TICK)
    assert meter.last == pytest.approx(10.0)
    assert meter.mean_rate(750, 10_000 + TICK) == pytest.approx(10.0)


def _buckets(times_ns: list[int]) -> list[int]:
    """As the connection counts them."""
    buckets = [0] * TIME_BUCKETS
    for t in times_ns:
        buckets[(t >> 10).bit_length()] += 1
    return buckets


def test_percentiles_fall_in_the_right_power_of_two() -> None:
    times = [1_000_000] * 90 + [50_000_000] * 10  # 90 at 1 ms, 10 at 50 ms
    b = _buckets(times)
    assert 0.5 <= percentile_ms(b, 0.5) <= 1.05  # [2^9, 2^10) x 1024 ns = [0.52, 1.05) ms
    assert 33 <= percentile_ms(b, 0.99) <= 67.2  # [2^15, 2^16) x 1024 ns
    assert percentile_ms([0] * TIME_BUCKETS, 0.99) == 0.0
    assert percentile_ms(_buckets([100]), 0.5) < 0.001  # under a microsecond: bucket 0


def test_consumer_assignment_decodes_every_version() -> None:
    def assignment(version: int, topics: dict[str, list[int]], tail: bytes) -> bytes:
        out = struct.pack(">hi", version, len(topics))
        for name, parts in topics.items():
            out += struct.pack(">h", len(name)) + name.encode()
            out += struct.pack(">i", len(parts)) + b"".join(struct.pack(">i", p) for p in parts)
        return out + tail

    no_user_data = struct.pack(">i", -1)
    assert consumer_assignment(assignment(0, {"b": [1], "a": [2, 0]}, no_user_data)) == [
        ("a", 0),
        ("a", 2),
        ("b", 1),
    ]
    assert consumer_assignment(assignment(3, {"t": [5]}, no_user_data)) == [("t", 5)]
    assert consumer_assignment(b"") == []
    assert consumer_assignment(b"\x00\x00\x00\x00\x00\x05\x00") == []  # truncated


def test_request_names_are_kafkas() -> None:
    assert request_name(ApiKey.PRODUCE) == "Produce"
    assert request_name(ApiKey.FETCH) == "FetchConsumer"
    assert request_name(ApiKey.API_VERSIONS) == "ApiVersions"
    assert request_name(ApiKey.OFFSET_FOR_LEADER_EPOCH) == "OffsetForLeaderEpoch"
    assert request_name(ApiKey.INIT_PRODUCER_ID) == "InitProducerId"
    assert request_name(999) == "999"


@pytest.mark.parametrize("group", ["plain", 'quo"te', "back\\slash", "new\nline", "ünï"])
def test_a_series_is_written_as_prometheus_client_writes_it(group: str) -> None:
    labels = (("broker", "1"), ("groupId", group), ("name", "OffsetLag"))
    metric = Metric("kafka_lag", "help", "unknown")
    metric.add_sample("kafka_lag", dict(labels), 1.0)

    class One:
        def collect(self) -> list[Metric]:
            return [metric]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())
    line = generate_latest(registry).decode().splitlines()[-1]
    assert line == f"{_series('kafka_lag', labels)} 1.0"
