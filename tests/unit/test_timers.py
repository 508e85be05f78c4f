"""Periodic work waits on the injected clock: a ManualClock fires it without sleeping."""

from __future__ import annotations

import asyncio

from msklite.clock import ManualClock
from msklite.timers import Timers


async def test_timers_fire_when_the_manual_clock_advances() -> None:
    clock = ManualClock()
    timers = Timers(clock)
    fired = asyncio.Queue[int]()
    timers.every(1000, lambda: fired.put_nowait(clock.now_ms()))
    await asyncio.sleep(0)  # let the timer task start sleeping
    clock.advance(999)
    await asyncio.sleep(0)
    assert fired.empty()
    clock.advance(1)
    assert await asyncio.wait_for(fired.get(), 1) == 1_700_000_001_000
    clock.advance(1000)
    assert await asyncio.wait_for(fired.get(), 1) == 1_700_000_002_000
    await timers.cancel_all()


async def test_a_failing_pass_does_not_end_the_timer() -> None:
    clock = ManualClock()
    timers = Timers(clock)
    calls = asyncio.Queue[int]()

    def flaky() -> None:
        calls.put_nowait(1)
        if calls.qsize() == 1:
            raise OSError("disk hiccup")

    timers.every(10, flaky)
    await asyncio.sleep(0)
    clock.advance(10)
    await asyncio.wait_for(calls.get(), 1)
    await asyncio.sleep(0)
    clock.advance(10)
    await asyncio.wait_for(calls.get(), 1)
    await timers.cancel_all()
