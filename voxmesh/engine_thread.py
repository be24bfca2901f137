"""The one thread a model runs on, and the asyncio task that decides what it runs next.

Every scheduler (ASR batching, ASR rounds, LLM continuous batching) owns one: `start(loop)` runs the
scheduler's loop as a task, `call` runs model work on the thread so the event loop never blocks, `wake`
and `idle` let the loop sleep until there is work, and `stop` ends the loop after its current call and
then the thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class EngineThread:
    def __init__(self, name: str):
        self.name = name
        self.stopping = False
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._task: asyncio.Task | None = None

    def start(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._task = asyncio.create_task(loop(), name=self.name)

    def wake(self) -> None:
        """There may be work: an `idle()` in progress (or the next one) returns."""
        self._wake.set()

    async def idle(self) -> None:
        """Sleep until the next `wake()` (at once if one came since the last `idle()`)."""
        await self._wake.wait()
        self._wake.clear()

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def stop(self) -> None:
        self.stopping = True
        self.wake()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
