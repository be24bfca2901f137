"""The one thread a model runs on, and the asyncio task that decides what it runs next.

Every scheduler (ASR batching, ASR lockstep, LLM continuous batching) owns one: `start(loop)` runs the
scheduler's loop as a task, `call` runs model work on the thread so the event loop never blocks, `wake`
and `idle` let the loop sleep until there is work, and `stop` ends the loop after its current call and
then the thread. `utilization` is the share of the last seconds the model was computing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

UTILIZATION_WINDOW_S = 10.0
UTILIZATION_EVERY_S = 0.1


class EngineThread:
    def __init__(self, name: str):
        self.name = name
        self.stopping = False
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.running_since: float | None = None  # when the model call in progress began
        self._busy: deque[tuple[float, float]] = deque()  # (start, end) of recent model calls
        self._utilization = (-UTILIZATION_EVERY_S, 0.0)  # (when measured, value)
        self._task: asyncio.Task | None = None

    def start(self, loop: Callable[[], Awaitable[None]]) -> None:
        self._task = asyncio.create_task(loop(), name=self.name)

    def wake(self) -> None:
        """There may be work: an `idle()` in progress (or the next one) returns."""
        self._wake.set()

    async def idle(self) -> None:
        """Sleep until the next `wake()` (at once if one came since the last `idle()`)."""
        await self._wake.wait()
        self._wake.clear()

    async def call(self, fn, *args):
        self.running_since = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._busy.append((self.running_since, time.perf_counter()))
            self.running_since = None

    @property
    def utilization(self) -> float:
        """The share of the last UTILIZATION_WINDOW_S the model spent computing (0 to 1), computed at most
        every UTILIZATION_EVERY_S."""
        now = time.perf_counter()
        if now - self._utilization[0] >= UTILIZATION_EVERY_S:
            self._utilization = (now, self._measure(now))
        return self._utilization[1]

    def _measure(self, now: float) -> float:
        since = now - UTILIZATION_WINDOW_S
        while self._busy and self._busy[0][1] < since:
            self._busy.popleft()
        busy = sum(end - max(start, since) for start, end in self._busy)
        if self.running_since is not None:
            busy += now - max(self.running_since, since)
        return min(1.0, busy / UTILIZATION_WINDOW_S)

    async def stop(self) -> None:
        self.stopping = True
        self.wake()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
