"""The thread bridge: an event loop of its own in a background thread, for synchronous callers.

`Cluster.start()` runs the cluster here so that plain (non-async) code and tests on any other
loop can drive it; `call` and `run` hop onto the loop and wait for the answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def on_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def start(self, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start the thread and run `main()` on its loop; returns once `main` has returned
        (raising what it raised, after the thread has ended), and the loop keeps running."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} already started")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop

            async def first() -> None:
                try:
                    await main()
                except BaseException as e:
                    ready.set_exception(e)
                    return
                ready.set_result(None)

            loop.run_until_complete(first())
            if ready.exception() is None:
                loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        try:
            ready.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            self.loop = None
            raise

    def stop(self, last: Coroutine[Any, Any, None]) -> None:
        """Run `last` on the loop, then stop the loop and join the thread."""
        thread, loop = self._thread, self.loop
        if thread is None or loop is None:
            last.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(last, loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            self._thread = None
            self.loop = None

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` on the loop (directly when already on its thread), waiting for the result."""
        loop = self.loop
        if loop is None or self.on_loop_thread():
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the loop from another thread and return its result."""
        loop = self.loop
        if loop is None or self.on_loop_thread():
            coro.close()
            raise RuntimeError(
                "on the cluster's own event loop, await the a-prefixed method instead "
                "(e.g. `await cluster.astop_broker(1)`)"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
