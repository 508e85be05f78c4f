"""Where long-polling fetches wait: a future per waiting request, keyed by the partitions it
reads, resolved by the first append to any of them (Kafka's DelayedFetch purgatory, without
polling). Timeouts belong to the waiter (a timer on the injected clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Generic, TypeVar

K = TypeVar("K")


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

    def notify(self, key: K) -> None:
        waiting = self._watchers.pop(key, None)
        if waiting:
            for fut in waiting:
                if not fut.done():
                    fut.set_result(None)

    def __len__(self) -> int:
        return sum(len(w) for w in self._watchers.values())
