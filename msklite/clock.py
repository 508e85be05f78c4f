"""Time as an injected dependency, so state that ages (segments, retention), periodic work and
request timeouts are testable without sleeping: code reads `clock.now_ms()`, waits with
`clock.sleep()` and sets timeouts with `clock.call_later()`; tests drive
`ManualClock.advance()`."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep(self, ms: int) -> None: ...

    def call_later(self, ms: int, callback: Callable[[], object]) -> Timer:
        """Call `callback` on the running loop once `ms` have passed, unless cancelled."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)

    def call_later(self, ms: int, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(ms / 1000, callback)


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
        self.loop = loop
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        if not self.cancelled:
            self.callback()


class ManualClock:
    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._order = itertools.count()
        self._timers: list[tuple[int, int, _ManualTimer]] = []

    def now_ms(self) -> int:
        return self._now

    async def sleep(self, ms: int) -> None:
        """Returns once `advance` has moved the clock `ms` past now."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_later(ms, lambda: _wake(fut))
        try:
            await fut
        finally:
            timer.cancel()

    def call_later(self, ms: int, callback: Callable[[], object]) -> Timer:
        """Calls `callback` once `advance` has moved the clock `ms` past now."""
        timer = _ManualTimer(asyncio.get_running_loop(), callback)
        heapq.heappush(self._timers, (self._now + ms, next(self._order), timer))
        return timer

    def advance(self, ms: int) -> None:
        """Move time on and fire the timers that are due, on their loops (from any thread)."""
        self._now += ms
        while self._timers and self._timers[0][0] <= self._now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                timer.loop.call_soon_threadsafe(timer.fire)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
