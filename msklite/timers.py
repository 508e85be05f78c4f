"""The cluster's periodic work (retention, ISR expiry) as tasks that wait on the injected
clock, so that a test with a `ManualClock` fires them by advancing time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from msklite.clock import Clock

log = logging.getLogger(__name__)


class Timers:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []

    def every(self, interval_ms: int, fn: Callable[[], object]) -> None:
        """Call `fn` every `interval_ms` on the running loop until `cancel_all`."""
        self._tasks.append(asyncio.get_running_loop().create_task(self._run(interval_ms, fn)))

    async def _run(self, interval_ms: int, fn: Callable[[], object]) -> None:
        while True:
            await self._clock.sleep(interval_ms)
            try:
                fn()
            except Exception:
                # One failed pass must not end the timer: the next one may well succeed.
                log.exception("periodic task %s failed", getattr(fn, "__name__", fn))

    async def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
