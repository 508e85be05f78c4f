"""Quota enforcement on one broker: sampled rates and throttle times, as Kafka's
ClientQuotaManager (produce and fetch byte rates) and ClientRequestQuotaManager
(request_percentage) compute them.

- A rate is Kafka's `Rate` over a `SampledStat`: `quota.window.num` samples (11) of
  `quota.window.size.seconds` (1 s); a sample starts at its first record and is complete a
  window later; samples idle for the whole span are reset; the rate divides the sum by the
  time since the oldest sample, counted as at least `num - 1` full windows.
- After a record pushes the rate over the bound, the client is throttled for
  `(rate - bound) / bound * window` ms, rounded (QuotaUtils.throttleTime); request-time
  throttles are capped at one window (ClientRequestQuotaManager).
- Which quota applies to a (user, client-id) follows DefaultQuotaCallback: the eight levels
  from /users/<user>/clients/<client-id> down to /clients/<default>, and clients resolving to
  the same metric tags share one rate (every client-id of a user with a user quota, say).
- request_percentage counts the time a client's requests took their handler, as a
  percentage of one thread (the connection measures it: msklite.connection).
- Kafka turns a quota type on for good when its first quota of that shape is set (its
  `quotaTypesEnabled` is only ever or-ed); so does this. Until then the managers are off and
  the produce and fetch paths pay one attribute check (`BrokerQuotas.active`), every request
  another (`request_timed`).

Time is the injected clock's milliseconds, passed in by the callers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from msklite.client_quotas import (
    CLIENT_ID,
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    Entity,
    QuotaTable,
)

# quotaTypesEnabled bits
_USER, _CLIENT, _USER_CLIENT = 1, 2, 4
_SINGLE_SHAPES = (0, _USER, _CLIENT, _USER_CLIENT)

Tags = tuple[str, str]  # (user, client-id) as Kafka's metric tags hold them; "" when unused


class SampledRate:
    """Kafka's Rate (per second) over a WindowedSum: samples are [start, last event, sum,
    count] lists, one more than `num_samples` kept (the overlapping one)."""

    __slots__ = ("current", "num_samples", "samples", "window_ms")

    def __init__(self, num_samples: int, window_ms: int) -> None:
        self.num_samples = num_samples
        self.window_ms = window_ms
        self.samples: list[list[float]] = []
        self.current = 0

    def record(self, value: float, now: int) -> None:
        if not self.samples:
            self.samples.append([now, now, 0.0, 0])
        sample = self.samples[self.current]
        if now - sample[0] >= self.window_ms:
            self.current = (self.current + 1) % (self.num_samples + 1)
            if self.current >= len(self.samples):
                sample = [now, now, 0.0, 0]
                self.samples.append(sample)
            else:
                sample = self.samples[self.current]
                sample[:] = [now, now, 0.0, 0]
        sample[2] += value
        sample[3] += 1
        sample[1] = now

    def _purge(self, now: int) -> None:
        expire = self.num_samples * self.window_ms
        for sample in self.samples:
            if now - sample[1] >= expire:
                sample[:] = [now, now, 0.0, 0]

    def window_size(self, now: int) -> int:
        """The span the rate divides by (Rate.windowSize), in ms."""
        self._purge(now)
        if not self.samples:
            self.samples.append([now, now, 0.0, 0])
        elapsed = now - min(s[0] for s in self.samples)
        full = int(elapsed // self.window_ms)
        if full < self.num_samples - 1:
            elapsed += (self.num_samples - 1 - full) * self.window_ms
        return max(int(elapsed), 1)

    def measure(self, now: int) -> float:
        self._purge(now)
        total = sum(s[2] for s in self.samples)
        return total / (self.window_size(now) / 1000.0)


def throttle_time(rate: float, bound: float, window_ms: int) -> int:
    """QuotaUtils.throttleTime: how long to hold a client back so that its rate falls to the
    bound (Java's Math.round: NaN, from a NaN quota Kafka accepts, is 0), at most an int32."""
    ms = (rate - bound) / bound * window_ms
    if math.isnan(ms):
        return 0
    return math.floor(min(ms + 0.5, 2**31 - 1))


class QuotaManager:
    """One broker's manager of one quota key: the rates of the clients it has seen, keyed
    by their metric tags, and the limits the quota table gives them."""

    def __init__(
        self, key: str, num_samples: int, window_ms: int, max_throttle_ms: int | None = None
    ) -> None:
        self.key = key
        self.num_samples = num_samples
        self.window_ms = window_ms
        self.max_throttle_ms = max_throttle_ms
        self.enabled_types = 0
        self.overrides: dict[Entity, float] = {}
        self.rates: dict[Tags, SampledRate] = {}
        self._tags: dict[tuple[str, str], tuple[Tags, float | None]] = {}

    @property
    def enabled(self) -> bool:
        return self.enabled_types != 0

    def update(self, table: Mapping[Entity, Mapping[str, float]]) -> None:
        """Take the quota table's values of this key (after every AlterClientQuotas)."""
        overrides = {e: q[self.key] for e, q in table.items() if self.key in q}
        for entity in overrides.keys() | self.overrides.keys():
            types = dict(entity)
            if USER in types:
                self.enabled_types |= _USER_CLIENT if CLIENT_ID in types else _USER
            elif CLIENT_ID in types:
                self.enabled_types |= _CLIENT
        self.overrides = overrides
        self._tags.clear()

    def _resolve(self, user: str, client_id: str) -> tuple[Tags, float | None]:
        """DefaultQuotaCallback's quotaMetricTags, then its quotaLimit for those tags."""
        found = self._tags.get((user, client_id))
        if found is None:
            tags = self._metric_tags(user, client_id)
            found = self._tags[user, client_id] = (tags, self._limit(*tags))
        return found

    def _has(
        self, user: str | None, client_id: str | None, with_user: bool, with_client: bool
    ) -> bool:
        pairs: list[tuple[str, str | None]] = []
        if with_client:
            pairs.append((CLIENT_ID, client_id))
        if with_user:
            pairs.append((USER, user))
        return tuple(pairs) in self.overrides

    def _metric_tags(self, user: str, client_id: str) -> Tags:
        enabled = self.enabled_types
        if enabled in (0, _CLIENT):
            return "", client_id
        if enabled == _USER:
            return user, ""
        if enabled == _USER_CLIENT:
            return user, client_id
        has = self._has
        if has(user, client_id, True, True) or has(user, None, True, True):
            return user, client_id  # 1) /users/<user>/clients/<client-id>, 2) …/<default>
        if has(user, None, True, False):
            return user, ""  # 3) /users/<user>
        if has(None, client_id, True, True) or has(None, None, True, True):
            return user, client_id  # 4) /users/<default>/clients/<client-id>, 5) …/<default>
        if has(None, None, True, False):
            return user, ""  # 6) /users/<default>
        return "", client_id  # 7) /clients/<client-id>, 8) /clients/<default>

    def _limit(self, user: str, client_id: str) -> float | None:
        o = self.overrides

        def first(*entities: Entity) -> float | None:
            for entity in entities:
                if entity in o:
                    return o[entity]
            return None

        u, c = (USER, user), (CLIENT_ID, client_id)
        du, dc = (USER, None), (CLIENT_ID, None)
        if user and client_id:
            return first((c, u), (dc, u), (c, du), (dc, du))
        if user:
            return first((u,), (du,))
        if client_id:
            return first((c,), (dc,))
        return None

    def record(self, user: str, client_id: str, value: float, now: int) -> int:
        """Record `value` for the client and return how long to throttle it (0: not)."""
        tags, bound = self._resolve(user, client_id)
        rate = self.rates.get(tags)
        if rate is None:
            rate = self.rates[tags] = SampledRate(self.num_samples, self.window_ms)
        rate.record(value, now)
        if bound is None:
            return 0
        measured = rate.measure(now)
        if measured <= bound:
            return 0
        throttle = throttle_time(measured, bound, rate.window_size(now))
        if self.max_throttle_ms is not None:
            throttle = min(throttle, self.max_throttle_ms)
        return throttle

    def unrecord(self, user: str, client_id: str, value: float, now: int) -> None:
        """Take back a recorded value (a fetch answered empty because it was throttled)."""
        tags, _ = self._resolve(user, client_id)
        rate = self.rates.get(tags)
        if rate is not None:
            rate.record(-value, now)

    def max_value_in_window(self, user: str, client_id: str) -> float:
        """The most a client may take in one quota span (getMaxValueInQuotaWindow): a fetch
        never asks for more."""
        _, bound = self._resolve(user, client_id)
        if bound is None:
            return math.inf
        return bound * (self.num_samples - 1) * self.window_ms / 1000


def user_of(principal: str) -> str:
    """The user name a quota knows a principal by ("User:alice" → "alice")."""
    return principal.partition(":")[2]


class BrokerQuotas:
    """One broker's quota managers (QuotaFactory): produce, fetch and request time."""

    def __init__(self, num_samples: int = 11, window_seconds: int = 1) -> None:
        window_ms = window_seconds * 1000
        self.produce = QuotaManager(PRODUCER_BYTE_RATE, num_samples, window_ms)
        self.fetch = QuotaManager(CONSUMER_BYTE_RATE, num_samples, window_ms)
        self.request = QuotaManager(REQUEST_PERCENTAGE, num_samples, window_ms, window_ms)
        # the checks the hot paths make: some quota was ever set; a request_percentage one
        self.active = False
        self.request_timed = False

    def update(self, table: QuotaTable) -> None:
        for manager in (self.produce, self.fetch, self.request):
            manager.update(table.entities)
        self.active = any(m.enabled for m in (self.produce, self.fetch, self.request))
        self.request_timed = self.request.enabled
