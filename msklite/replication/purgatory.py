"""Where long-polling fetches wait: a future per waiting request, keyed by the partitions it
reads, resolved by the first append to any of them (Kafka's DelayedFetch purgatory, without
polling). Timeouts belong to the waiter (a timer on the injected clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from msklite.clock import Clock

K = TypeVar("K")
T = TypeVar("T")


class Purgatory(Generic[K]):
    def __init__(self) -> None:
        self._watchers: dict[K, set[asyncio.Future[None]]] = {}

    def watch(self, keys: Iterable[K]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._watchers.setdefault(key, set()).add(fut)
        return fut

    def unwatch(self, keys: Iterable[K], fut: asyncio.Future[None]) -> None:
        for key in keys:
            waiting = self._watchers.get(key)
            if waiting is not None:
                waiting.discard(fut)
                if not waiting:
                    del self._watchers[key]

    async def wait(
        self,
        keys: list[K],
        waiter: asyncio.Future[None],
        clock: Clock,
        max_wait_ms: int,
        ready: Callable[[bool], T | None],
    ) -> T:
        """Wait on `waiter` (watching `keys`, set before the caller's first read so that no
        append in between is missed), then ask `ready(expired)` after every wake-up until it
        answers; `expired` turns true max_wait_ms later on the clock, when it must answer."""
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            if not waiter.done():
                waiter.set_result(None)

        timer = clock.call_later(max_wait_ms, expire)
        try:
            while True:
                try:
                    await waiter
                finally:
                    self.unwatch(keys, waiter)
                answer = ready(expired)
                if answer is not None:
                    return answer
                waiter = self.watch(keys)
        finally:
            timer.cancel()

    def notify(self, key: K) -> None:
        waiting = self._watchers.pop(key, None)
        if waiting:
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)

    def __len__(self) -> int:
        return sum(len(w) for w in self._watchers.values())
