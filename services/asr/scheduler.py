"""The scheduler: one engine per process, shared by every stream through one bounded queue.

Requests from all streams wait in two queues (finals first, then partial re-decodes). One worker takes up
to the engine's batch size at a time, after waiting at most `batch_wait_ms` for a batch to fill, and runs
the engine on a dedicated thread so the event loop never blocks. Under load partials are skipped rather
than delaying finals: a final that finds the queue full evicts the oldest waiting partial, and only a
queue full of finals refuses a final. A batch that fails is split in halves and retried (an out-of-memory
on a large batch may pass in smaller ones); a request that still fails is answered with its error, and
the worker goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from services.asr import metrics
from services.asr.engines import AsrEngine, AsrRequest
from voxmesh import errors
from voxmesh.engine_thread import EngineThread

log = logging.getLogger("voxmesh.asr.scheduler")


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    compute_s: float  # engine time of the batch that carried the request
    queue_wait_s: float
    batch_size: int


@dataclass
class _Job:
    request: AsrRequest
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def kind(self) -> str:
        return "final" if self.request.final else "partial"


class Scheduler:
    def __init__(self, engine: AsrEngine, *, queue_size: int, max_batch_size: int, batch_wait_s: float):
        self.engine = engine
        self.queue_size = queue_size
        self.max_batch_size = max(1, min(max_batch_size, engine.max_batch_size))
        self.batch_wait_s = batch_wait_s
        self.batch_sizes: Counter[int] = Counter()  # engine calls by batch size, for tests and logs
        self._finals: deque[_Job] = deque()
        self._partials: deque[_Job] = deque()
        self._thread = EngineThread("asr-engine")

    @property
    def depth(self) -> int:
        return len(self._finals) + len(self._partials)

    def start(self) -> None:
        self._thread.start(self._run)

    async def close(self) -> None:
        """Refuse new requests, answer the waiting ones as UNAVAILABLE, let the running batch finish."""
        self._thread.stopping = True
        for job in (*self._finals, *self._partials):
            if not job.future.done():
                job.future.set_exception(errors.Unavailable("the ASR service is stopping"))
        self._finals.clear()
        self._partials.clear()
        await self._thread.stop()

    def submit(self, request: AsrRequest) -> asyncio.Future | None:
        """Queue a request. A full queue raises RESOURCE_EXHAUSTED for a final and skips a partial (None)."""
        if self._thread.stopping:
            raise errors.Unavailable("the ASR service is stopping; its engine takes no more requests")
        if self.depth >= self.queue_size and request.final and self._partials:
            evicted = self._partials.popleft()
            evicted.future.cancel()
            metrics.REQUESTS.labels("partial", "evicted").inc()
        if self.depth >= self.queue_size:
            kind = "final" if request.final else "partial"
            metrics.REQUESTS.labels(kind, "rejected").inc()
            if not request.final:
                return None
            raise errors.ResourceExhausted(
                f"the ASR queue is full ({self.queue_size} finals waiting for the engine); "
                "retry later or add ASR replicas"
            )
        job = _Job(request, asyncio.get_running_loop().create_future())
        (self._finals if request.final else self._partials).append(job)
        metrics.QUEUE_DEPTH.set(self.depth)
        self._thread.wake()
        return job.future

    async def _run(self) -> None:
        while not self._thread.stopping:
            while not self.depth and not self._thread.stopping:
                await self._thread.idle()
            if self.max_batch_size > 1 and self.depth < self.max_batch_size and self.batch_wait_s:
                await asyncio.sleep(self.batch_wait_s)
            batch = self._take()
            metrics.QUEUE_DEPTH.set(self.depth)
            if not batch:
                continue
            try:
                await self._execute(batch)
            except Exception as exc:  # noqa: BLE001 - a broken batch must not stop the worker
                log.error("scheduler failed on a batch", exc_info=exc)
                self._fail(batch, exc)

    @staticmethod
    def _fail(jobs: list[_Job], exc: BaseException) -> None:
        for job in jobs:
            metrics.REQUESTS.labels(job.kind, "failed").inc()
            if not job.future.done():
                job.future.set_exception(errors.EngineError(f"the ASR engine failed on this utterance: {exc}"))

    def _take(self) -> list[_Job]:
        """Finals first; partials only while no final waits. Jobs whose stream went away are dropped."""
        batch: list[_Job] = []
        for queue in (self._finals, self._partials):
            while queue and len(batch) < self.max_batch_size:
                job = queue.popleft()
                if job.future.cancelled():
                    metrics.REQUESTS.labels(job.kind, "cancelled").inc()
                    continue
                batch.append(job)
            if batch and queue is self._finals:
                break
        return batch

    async def _execute(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            results = await self._thread.call(self.engine.transcribe, [j.request for j in jobs])
        except Exception as exc:  # noqa: BLE001 - the engine's failure goes to the requests, never lost
            if len(jobs) > 1:
                log.warning("batch failed; retrying in halves", extra={"batch_size": len(jobs), "error": repr(exc)})
                half = len(jobs) // 2
                await self._execute(jobs[:half])
                await self._execute(jobs[half:])
                return
            log.error("engine failed on a request", exc_info=exc)
            self._fail(jobs, exc)
            return
        compute = time.perf_counter() - started
        self.batch_sizes[len(jobs)] += 1
        metrics.BATCH_SIZE.observe(len(jobs))
        metrics.COMPUTE.labels(jobs[0].kind).observe(compute)
        for job, result in zip(jobs, results, strict=True):
            wait = started - job.enqueued
            metrics.QUEUE_WAIT.labels(job.kind).observe(wait)
            metrics.REQUESTS.labels(job.kind, "done").inc()
            if not job.future.done():
                job.future.set_result(Transcript(result.text, result.language, compute, wait, len(jobs)))
