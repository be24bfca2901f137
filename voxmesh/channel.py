"""A bounded channel between asyncio tasks: the one way voxmesh hands a stream's items from the tasks that
make them to the one that sends them.

`put` waits while the channel is full (backpressure, never an unbounded backlog); `close` ends the
iteration once what was put before it is taken; `fail` ends it with an exception, which the iteration
raises where the items are consumed. LiveKit Agents' `aio.Chan` is the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    def __init__(self, failure: BaseException | None = None):
        self.failure = failure


class Channel(Generic[T]):
    def __init__(self, maxsize: int):
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue(maxsize=maxsize)

    async def put(self, item: T) -> None:
        await self._queue.put(item)

    def try_put(self, item: T) -> bool:
        """Put without waiting; False when the channel is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def take_all(self) -> list[T]:
        """What is in the channel now, taken out (the end, if it came, stays)."""
        items = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _End):
                self._queue.put_nowait(item)
                break
            items.append(item)
        return items

    async def close(self) -> None:
        """No more items: the iteration ends after the ones already put."""
        await self._queue.put(_End())

    async def fail(self, failure: BaseException) -> None:
        """The iteration raises `failure` after the items already put."""
        await self._queue.put(_End(failure))

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # a closed channel stays closed for a later reader
            if item.failure is not None:
                raise item.failure
            raise StopAsyncIteration
        return item
