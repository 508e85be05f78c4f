"""The quota math of msklite.throttle against Kafka's (Rate over SampledStat, QuotaUtils,
DefaultQuotaCallback), on explicit millisecond timestamps: no clock, no sleeps."""

from __future__ import annotations

import math

import pytest

from msklite.client_quotas import QuotaTable, entity_of
from msklite.throttle import BrokerQuotas, QuotaManager, SampledRate, throttle_time, user_of

KEY = "producer_byte_rate"


def test_a_young_rate_counts_the_whole_span() -> None:
    """Fewer than num-1 full windows count as num-1 (Rate.windowSize): 1000 bytes at once
    over 11 windows of 1 s are 100 B/s, not 1000/1 ms."""
    rate = SampledRate(11, 1000)
    rate.record(1000, 0)
    assert rate.window_size(0) == 10_000
    assert rate.measure(0) == 100.0
    # 5.5 s elapsed: 5 full windows, padded to 10, plus the half
    rate.record(1000, 5_500)
    assert rate.window_size(5_500) == 10_500
    assert rate.measure(5_500) == pytest.approx(2000 / 10.5)
    # past num-1 full windows the real span counts
    rate.record(1000, 10_000)
    assert rate.window_size(10_250) == 10_250


def test_samples_roll_and_expire() -> None:
    rate = SampledRate(3, 1000)  # 4 samples kept (one overlapping)
    for t in range(0, 4000, 1000):
        rate.record(100, t)
    # the sample whose last event is num windows old (t=0) is reset: 1.0-3.5 s remain
    assert rate.window_size(3_500) == 2_500
    assert rate.measure(3_500) == pytest.approx(300 / 2.5)
    rate.record(100, 4_000)  # the next slot round the ring (the reset one) starts again
    assert rate.window_size(4_000) == 2_000  # t=1000 expired now
    assert rate.measure(4_000) == pytest.approx(300 / 2.0)
    assert rate.measure(4_000 + 3_000) == 0.0  # all idle for num windows


def test_throttle_time_is_kafkas() -> None:
    # (rate - bound) / bound * window, rounded half up (Java's Math.round)
    assert throttle_time(200.0, 100.0, 10_000) == 10_000
    assert throttle_time(100.05, 100.0, 10_000) == 5
    assert throttle_time(100.0125, 100.0, 10_000) == 1  # 1.25 → 1
    assert throttle_time(100.015, 100.0, 10_000) == 2  # 1.5 → 2
    # Kafka accepts a NaN quota (no check refuses it); Math.round(NaN) is 0
    assert throttle_time(5.0, math.nan, 10_000) == 0
    assert throttle_time(1e300, 1e-300, 10_000) == 2**31 - 1


def _manager(quotas: dict[tuple[tuple[str, str | None], ...], float], **kw: int) -> QuotaManager:
    m = QuotaManager(KEY, 11, 1000, **kw)
    m.update({entity_of(e): {KEY: v} for e, v in quotas.items()})
    return m


def test_record_throttles_over_the_bound_only() -> None:
    m = _manager({(("client-id", "app"),): 100.0})
    assert m.record("ANONYMOUS", "app", 1000, 0) == 0  # exactly at the bound: 100 B/s
    assert m.record("ANONYMOUS", "app", 1000, 0) == 10_000  # 200 B/s
    assert m.record("ANONYMOUS", "other", 10**9, 0) == 0  # no quota for it
    m.unrecord("ANONYMOUS", "app", 1000, 0)
    assert m.rates["", "app"].measure(0) == 100.0


def test_request_time_throttle_is_capped_at_one_window() -> None:
    m = QuotaManager("request_percentage", 11, 1000, max_throttle_ms=1000)
    m.update({entity_of([("user", None)]): {"request_percentage": 1.0}})
    assert m.record("alice", "c", 500.0, 0) == 1000


U, C = "user", "client-id"


@pytest.mark.parametrize(
    ("quotas", "expected_tags", "expected_limit"),
    [
        # 1) /users/<user>/clients/<client-id> beats everything
        (
            {((U, "alice"), (C, "app")): 1, ((U, "alice"), (C, None)): 2, ((U, "alice"),): 3},
            ("alice", "app"),
            1,
        ),
        # 2) /users/<user>/clients/<default>
        ({((U, "alice"), (C, None)): 2, ((U, "alice"),): 3}, ("alice", "app"), 2),
        # 3) /users/<user>: every client of alice shares it
        ({((U, "alice"),): 3, ((U, None), (C, "app")): 4}, ("alice", ""), 3),
        # 4) /users/<default>/clients/<client-id>
        ({((U, None), (C, "app")): 4, ((U, None), (C, None)): 5}, ("alice", "app"), 4),
        # 5) /users/<default>/clients/<default>
        ({((U, None), (C, None)): 5, ((U, None),): 6}, ("alice", "app"), 5),
        # 6) /users/<default>
        ({((U, None),): 6, ((C, "app"),): 7}, ("alice", ""), 6),
        # 7) /clients/<client-id>
        ({((C, "app"),): 7, ((C, None),): 8, ((U, "bob"),): 9}, ("", "app"), 7),
        # 8) /clients/<default>
        ({((C, None),): 8, ((U, "bob"),): 9}, ("", "app"), 8),
        # nothing applies
        ({((U, "bob"),): 9, ((C, "other"),): 10}, ("", "app"), None),
    ],
)
def test_the_eight_levels(
    quotas: dict[tuple[tuple[str, str | None], ...], float],
    expected_tags: tuple[str, str],
    expected_limit: float | None,
) -> None:
    m = _manager(quotas)
    tags, limit = m._resolve("alice", "app")
    assert (tags, limit) == (expected_tags, expected_limit)


def test_single_shape_tags_and_sticky_enabling() -> None:
    """With quotas of one shape only, Kafka keys rates by that shape alone; a quota type
    stays on after its last quota is removed (quotaTypesEnabled is only or-ed)."""
    m = _manager({((U, "alice"),): 10})
    assert m._resolve("alice", "app") == (("alice", ""), 10)
    assert m._resolve("bob", "app") == (("bob", ""), None)
    m.update({})
    assert m.enabled and m._resolve("alice", "app") == (("alice", ""), None)


def test_broker_quotas_switch_on_with_the_first_quota() -> None:
    quotas = BrokerQuotas(11, 1)
    table = QuotaTable()
    quotas.update(table)
    assert not quotas.active
    table.replace({entity_of([(C, "app")]): {"consumer_byte_rate": 100.0}})
    quotas.update(table)
    assert quotas.active and quotas.fetch.enabled and not quotas.produce.enabled
    assert quotas.fetch.max_value_in_window("ANONYMOUS", "app") == 1000.0


def test_user_of_principal() -> None:
    assert user_of("User:alice") == "alice"
    assert user_of("User:ANONYMOUS") == "ANONYMOUS"
