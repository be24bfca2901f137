"""The batch scheduler: one model per process, its rows shared by the transcripts of every stream.

Continuous batching. Transcripts wait in one bounded queue (full: RESOURCE_EXHAUSTED). One worker runs the
model one call at a time on a dedicated thread, so the event loop never blocks; between any two calls,
rows that ended leave the batch and waiting transcripts join it:

- while the batch has room and transcripts wait, the next call prefills them (as many as fit, together)
  and they join the running rows with their first token;
- otherwise the next call is one decode step: one token for every running row.

A row ends at an end-of-sequence token, at its token budget, at its deadline (DEADLINE_EXCEEDED), or when
its consumer cancels it (the stream went away): a cancelled transcript leaves the queue at once, or its row
leaves the batch before the next step. A call that fails fails the rows it ran (the running batch is
rebuilt from the next arrivals) and the worker goes on.

The scheduler knows nothing of tensors: it drives a `ContinuousBatch`-like object (add, step, retain,
reset, size, eos_ids) and hands each transcript's token ids to its `Generation`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from voxmesh import errors
from voxmesh.engine_thread import EngineThread
from voxmesh.services.llm import metrics

log = logging.getLogger("voxmesh.llm.scheduler")

_END = object()


class Batch(Protocol):
    eos_ids: frozenset[int]

    @property
    def size(self) -> int: ...
    def add(self, prompts: Sequence[Sequence[int]]) -> list[int]: ...
    def step(self) -> list[int]: ...
    def retain(self, rows: Sequence[int]) -> None: ...
    def reset(self) -> None: ...


class Generation:
    """One transcript's generation: an async iterator of token ids, ended by the model, its budget, a
    deadline, a failure (raised to the consumer) or `cancel()`."""

    def __init__(self, prompt: Sequence[int], max_new_tokens: int, timeout_s: float, on_cancel):
        self.prompt = list(prompt)
        self.max_new_tokens = max_new_tokens
        self.timeout_s = timeout_s
        self.enqueued = time.monotonic()
        self.deadline = self.enqueued + timeout_s
        self.generated = 0
        self.end: str | None = None  # eos, length, cancelled, timeout, failed
        self._tokens: asyncio.Queue = asyncio.Queue()
        self._on_cancel = on_cancel

    @property
    def active(self) -> bool:
        return self.end is None

    def cancel(self) -> None:
        """Stop this generation: it leaves the queue now, or the batch before the next step."""
        if self.end is None:
            self._finish("cancelled")
            self._on_cancel(self)

    def __aiter__(self):
        return self

    async def __anext__(self) -> int:
        item = await self._tokens.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def _deliver(self, token: int, eos_ids: frozenset[int]) -> str | None:
        """Hand over one token; returns how the generation ended if this token ended it."""
        if self.end is not None:
            return None
        if token in eos_ids:
            self._finish("eos")
            return "eos"
        self.generated += 1
        self._tokens.put_nowait(token)
        if self.generated >= self.max_new_tokens:
            self._finish("length")
            return "length"
        return None

    def _finish(self, end: str, error: BaseException | None = None) -> None:
        if self.end is not None:
            return
        self.end = end
        metrics.GENERATIONS.labels(end).inc()
        self._tokens.put_nowait(error if error is not None else _END)


class GenerationScheduler:
    def __init__(self, batch: Batch, *, queue_size: int, max_batch_size: int, timeout_s: float):
        self.batch = batch
        self.queue_size = queue_size
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        # model calls by number of rows, for tests and logs: decode steps, and prefills of joining rows
        self._waiting: deque[Generation] = deque()
        self._running: list[Generation] = []  # in the batch's row order
        self._thread = EngineThread("llm-engine")

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return sum(g.active for g in self._running)

    def start(self) -> None:
        self._thread.start(self._run)

    async def close(self) -> None:
        """Refuse new transcripts, end the waiting and running ones as UNAVAILABLE, stop the worker."""
        self._thread.stopping = True
        stopping = errors.Unavailable("the LLM service is stopping")
        for generation in (*self._waiting, *self._running):
            self._end(generation, "failed", stopping)
        self._waiting.clear()
        await self._thread.stop()

    def submit(self, prompt: Sequence[int], max_new_tokens: int, timeout_s: float | None = None) -> Generation:
        """Queue a transcript's prompt (with the scheduler's time limit unless given one); a full queue raises
        RESOURCE_EXHAUSTED."""
        if self._thread.stopping:
            raise errors.Unavailable("the LLM service is stopping; its engine takes no more transcripts")
        if len(self._waiting) >= self.queue_size:
            metrics.GENERATIONS.labels("rejected").inc()
            raise errors.ResourceExhausted(
                f"the LLM queue is full ({self.queue_size} transcripts waiting for a place in the batch); "
                "the transcript stands unprocessed; add LLM replicas"
            )
        generation = Generation(
            prompt, max_new_tokens, self.timeout_s if timeout_s is None else timeout_s, self._cancelled
        )
        self._waiting.append(generation)
        metrics.PENDING.inc()
        self._thread.wake()
        return generation

    def _cancelled(self, generation: Generation) -> None:
        try:
            self._waiting.remove(generation)
            metrics.PENDING.dec()
        except ValueError:
            pass  # running: its row leaves before the next step

    def _end(self, generation: Generation, end: str, error: BaseException | None = None) -> None:
        if generation.active:
            generation._finish(end, error)
            if generation in self._waiting:
                metrics.PENDING.dec()

    async def _run(self) -> None:
        while not self._thread.stopping:
            if not self._waiting and not self._running:
                await self._thread.idle()
                continue
            self._expire()
            keep = [i for i, g in enumerate(self._running) if g.active]
            self._running = [self._running[i] for i in keep]
            joining = self._take(self.max_batch_size - len(keep))
            metrics.BATCH_ROWS.set(len(self._running) + len(joining))
            if joining:
                await self._call("prefill", joining, self._prefill, keep, [g.prompt for g in joining])
            elif self._running:
                await self._call("decode", self._running, self._decode, keep)
            else:
                await self._thread.call(self.batch.reset)
        metrics.BATCH_ROWS.set(0)

    def _expire(self) -> None:
        now = time.monotonic()
        for generation in [g for g in (*self._waiting, *self._running) if g.active and now >= g.deadline]:
            self._end(
                generation,
                "timeout",
                errors.DeadlineExceeded(
                    f"no processed text within {generation.timeout_s:g} s (VOXMESH_LLM_REQUEST_TIMEOUT_S); "
                    "the final transcript stands"
                ),
            )
        self._waiting = deque(g for g in self._waiting if g.active)

    def _take(self, room: int) -> list[Generation]:
        taken: list[Generation] = []
        now = time.monotonic()
        while self._waiting and len(taken) < room:
            generation = self._waiting.popleft()
            metrics.PENDING.dec()
            metrics.QUEUE_WAIT.observe(now - generation.enqueued)
            taken.append(generation)
        return taken

    # -- model calls, on the worker thread ----------------------------------------------------------

    def _prefill(self, keep: list[int], prompts: list[list[int]]) -> list[int]:
        self.batch.retain(keep)
        return self.batch.add(prompts)

    def _decode(self, keep: list[int]) -> list[int]:
        self.batch.retain(keep)
        return self.batch.step()

    async def _call(self, phase: str, rows: list[Generation], work, *args) -> None:
        started = time.perf_counter()
        try:
            tokens = await self._thread.call(work, *args)
        except Exception as exc:
            self._failed(phase, rows, exc)
            return
        metrics.STEP.labels(phase).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(phase).observe(len(rows))
        metrics.TOKENS.inc(len(rows))
        if phase == "prefill":
            self._running.extend(rows)
        for generation, token in zip(rows, tokens, strict=True):
            generation._deliver(token, self.batch.eos_ids)

    def _failed(self, phase: str, rows: list[Generation], exc: Exception) -> None:
        log.error("model call failed", extra={"phase": phase, "rows": len(rows)}, exc_info=exc)
        failure = errors.EngineError(f"the LLM failed on this transcript: {exc}")
        if phase == "decode" or self.batch.size != len(self._running):
            # a decode step may have left the cache half-updated: the running rows end with this one
            rows = [*rows, *(g for g in self._running if g not in rows)]
            self._running = []
            self.batch.reset()
        for generation in rows:
            self._end(generation, "failed", failure)
