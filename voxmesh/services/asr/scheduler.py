"""The scheduler: one engine per process, shared by every stream.

Requests wait in three classes, each a queue per stream: finals of live streams, finals of recorded
streams, partial re-decodes. One worker takes up to the engine's batch size at a time and runs the engine
on a dedicated thread so the event loop never blocks. It batches continuously: an idle engine takes a
request at once, and what queued while the engine was busy goes in the next batch together. It serves
live finals first, then recorded ones, and partials only while no final waits; within a class it takes
streams in turn (round-robin), so one stream's burst delays only that stream.
Live requests share a bounded queue: under load partials are skipped rather than delaying finals (a live
final that finds the queue full evicts the oldest waiting partial), and only a queue full of live finals
refuses one. Recorded finals are never refused here: each recorded stream may have only a few utterances
in flight (the session waits for room), so they are bounded per stream instead.
A batch that runs out of GPU memory (torch.OutOfMemoryError) is split in halves and retried, once the
failure's traceback (which holds the batch's activations and cache) is gone and the CUDA cache is emptied
on the engine thread; a single request that still runs out is answered RESOURCE_EXHAUSTED. Any other
failure answers its batch's requests with the error (INTERNAL), unsplit. Either way the worker goes on.
`live_busy` follows when the engine computes for live streams: its average is what the gateway admits new
live streams by. When that average is above `hurry_above`, live finals go to the engine with `hurry` set,
and an engine with a cheaper way to decode uses it (whisper: a narrower beam): past its capacity the
engine's queue would grow without end, and every final would wait longer than the one before.
Each answer says how long its request waited, and how much of that wait the engine was computing other
requests (`busy_wait_s`, the engine's contention, apart from the mesh's own delay).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field, replace

from voxmesh import errors
from voxmesh.engine_thread import EngineThread
from voxmesh.load import Window
from voxmesh.services.asr import metrics
from voxmesh.services.asr.engines import AsrRequest, AsrResult, BatchAsrEngine

log = logging.getLogger("voxmesh.asr.scheduler")


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's out-of-memory error (without importing torch where no engine did)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def empty_device_cache() -> None:
    """Hand the CUDA caching allocator's free blocks back, so that a smaller batch can use them."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass(frozen=True)
class Transcript:
    result: AsrResult  # the engine's answer: text, language, words when asked for, confidence
    compute_s: float  # engine time of the batch that carried the request
    queue_wait_s: float
    busy_wait_s: float  # the part of queue_wait_s the engine computed other requests
    batch_size: int

    @property
    def text(self) -> str:
        return self.result.text


@dataclass
class _Job:
    request: AsrRequest
    future: asyncio.Future
    stream: Hashable
    recorded: bool = False
    busy_at_enqueue: float = 0.0  # the engine's busy seconds so far, when the job was queued
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def kind(self) -> str:
        return "final" if self.request.final else "partial"


class _Turns:
    """Jobs of one class, a queue per stream, taken a stream at a time in turn."""

    def __init__(self) -> None:
        self._queues: OrderedDict[Hashable, deque[_Job]] = OrderedDict()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        return (job for queue in self._queues.values() for job in queue)

    def append(self, job: _Job) -> None:
        self._queues.setdefault(job.stream, deque()).append(job)
        self.size += 1

    def pop(self) -> _Job:
        """The oldest job of the stream whose turn it is; that stream goes to the back."""
        stream, queue = next(iter(self._queues.items()))
        job = queue.popleft()
        self.size -= 1
        if queue:
            self._queues.move_to_end(stream)
        else:
            del self._queues[stream]
        return job

    def pop_oldest(self) -> _Job:
        """The job waiting longest, whatever its stream."""
        stream = min(self._queues, key=lambda s: self._queues[s][0].enqueued)
        queue = self._queues[stream]
        job = queue.popleft()
        self.size -= 1
        if not queue:
            del self._queues[stream]
        return job

    def clear(self) -> None:
        self._queues.clear()
        self.size = 0


class BatchScheduler:
    def __init__(self, engine: BatchAsrEngine, *, queue_size: int, max_batch_size: int, hurry_above: float = 1.0):
        self.engine = engine
        self.hurry_above = hurry_above
        self.hurrying = False
        self.queue_size = queue_size
        self.max_batch_size = max(1, min(max_batch_size, engine.capabilities.max_batch_size))
        self._busy_s = 0.0  # seconds the engine has computed, batches done
        self._batch_started: float | None = None  # when the running batch began
        self._finals = _Turns()  # live streams' finals
        self._recorded = _Turns()  # recorded streams' finals
        self._partials = _Turns()
        self.live_busy = Window()  # 1 while the engine computes a batch with live streams' work
        self._thread = EngineThread("asr-engine")

    def _busy(self) -> float:
        """Seconds the engine has computed so far, the running batch included."""
        running = time.perf_counter() - self._batch_started if self._batch_started is not None else 0.0
        return self._busy_s + running

    def utilization(self) -> float:
        """What the gateway admits live streams by: the engine's busy share for live streams."""
        return self.live_busy.average()

    @property
    def depth(self) -> int:
        return len(self._finals) + len(self._recorded) + len(self._partials)

    def start(self) -> None:
        self._thread.start(self._run)

    async def close(self) -> None:
        """Refuse new requests, answer the waiting ones as UNAVAILABLE, let the running batch finish."""
        self._thread.stopping = True
        for job in (*self._finals, *self._recorded, *self._partials):
            if not job.future.done():
                job.future.set_exception(errors.Unavailable("the ASR service is stopping"))
        for turns in (self._finals, self._recorded, self._partials):
            turns.clear()
        await self._thread.stop()

    def submit(self, request: AsrRequest, stream: Hashable = None, recorded: bool = False) -> asyncio.Future | None:
        """Queue a request of a stream. For a live stream, a full queue raises RESOURCE_EXHAUSTED for a final
        and skips a partial (None); a recorded stream's final always waits its turn."""
        if self._thread.stopping:
            raise errors.Unavailable("the ASR service is stopping; its engine takes no more requests")
        job = _Job(
            request, asyncio.get_running_loop().create_future(), stream, recorded and request.final, self._busy()
        )
        if request.final and recorded:
            self._recorded.append(job)
        else:
            live = len(self._finals) + len(self._partials)
            if live >= self.queue_size and request.final and self._partials:
                evicted = self._partials.pop_oldest()
                evicted.future.cancel()
                metrics.REQUESTS.labels("partial", "evicted").inc()
                live -= 1
            if live >= self.queue_size:
                metrics.REQUESTS.labels(job.kind, "rejected").inc()
                if not request.final:
                    return None
                raise errors.ResourceExhausted(
                    f"the ASR queue is full ({self.queue_size} finals of live streams waiting for the engine); "
                    "retry later or add ASR replicas"
                )
            (self._finals if request.final else self._partials).append(job)
        metrics.QUEUE_DEPTH.set(self.depth)
        self._thread.wake()
        return job.future

    async def _run(self) -> None:
        while not self._thread.stopping:
            while not self.depth and not self._thread.stopping:
                await self._thread.idle()
            batch = self._take()
            metrics.QUEUE_DEPTH.set(self.depth)
            if not batch:
                continue
            try:
                await self._execute(batch)
            except Exception as exc:
                log.error("scheduler failed on a batch", exc_info=exc)
                self._fail(batch, exc)

    @staticmethod
    def _fail(jobs: list[_Job], exc: BaseException) -> None:
        if not isinstance(exc, errors.VoxmeshError):
            exc = errors.EngineError(f"the ASR engine failed on this utterance: {exc}")
        for job in jobs:
            metrics.REQUESTS.labels(job.kind, "failed").inc()
            if not job.future.done():
                job.future.set_exception(exc)

    def _take(self) -> list[_Job]:
        """Live finals, then recorded finals, each a stream at a time in turn; partials only while no final
        waits. Jobs whose stream went away are dropped."""
        batch: list[_Job] = []
        for turns in (self._finals, self._recorded, self._partials):
            if batch and turns is self._partials:
                break
            while turns and len(batch) < self.max_batch_size:
                job = turns.pop()
                if job.future.cancelled():
                    metrics.REQUESTS.labels(job.kind, "cancelled").inc()
                    continue
                batch.append(job)
        return batch

    async def _execute(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        busy = self._busy()
        live = any(not job.recorded for job in jobs)
        if live:
            self.live_busy.set(1)
        self._batch_started = started
        failure: str | None = None
        out_of_memory = False
        try:
            results = await self._thread.call(self.engine.transcribe, self._requests(jobs))
        except Exception as exc:
            # Only words leave this block: the exception's traceback holds the failed batch's frames, and
            # with them its tensors, which must be freed before anything runs again.
            failure, out_of_memory = f"{type(exc).__name__}: {exc}", is_out_of_memory(exc)
        if failure is not None:
            self.live_busy.set(0)
            self._batch_done()
            await self._recover(jobs, failure, out_of_memory)
            return
        self.live_busy.set(0)
        self._batch_done()
        compute = time.perf_counter() - started
        metrics.BATCH_SIZE.observe(len(jobs))
        metrics.COMPUTE.labels(jobs[0].kind).observe(compute)
        for job, result in zip(jobs, results, strict=True):
            wait = started - job.enqueued
            busy_wait = min(wait, busy - job.busy_at_enqueue)
            metrics.QUEUE_WAIT.labels(job.kind).observe(wait)
            metrics.BUSY_WAIT.labels(job.kind).observe(busy_wait)
            metrics.REQUESTS.labels(job.kind, "done").inc()
            if not job.future.done():
                job.future.set_result(Transcript(result, compute, wait, busy_wait, len(jobs)))

    def _requests(self, jobs: list[_Job]) -> list[AsrRequest]:
        """The batch's requests, live finals marked `hurry` while the engine is busier than hurry_above."""
        utilization = self.utilization()
        hurry = utilization > self.hurry_above
        if hurry != self.hurrying:
            self.hurrying = hurry
            log.info(
                "live finals decode the cheaper way" if hurry else "live finals decode the full way again",
                extra={"utilization": round(utilization, 3), "hurry_above": self.hurry_above},
            )
        if not hurry:
            return [job.request for job in jobs]
        hurried = [job.request.final and not job.recorded for job in jobs]
        metrics.HURRIED.inc(sum(hurried))
        return [replace(job.request, hurry=True) if h else job.request for job, h in zip(jobs, hurried, strict=True)]

    async def _recover(self, jobs: list[_Job], failure: str, out_of_memory: bool) -> None:
        if not out_of_memory:
            log.error("engine failed on a batch", extra={"batch_size": len(jobs), "error": failure})
            self._fail(jobs, errors.EngineError(f"the ASR engine failed on this utterance: {failure}"))
            return
        await asyncio.sleep(0)  # let the loop turn once: the failed call's frames are gone
        await self._thread.call(empty_device_cache)
        if len(jobs) == 1:
            log.error("out of GPU memory on a single request", extra={"error": failure})
            self._fail(
                jobs,
                errors.ResourceExhausted(
                    "the ASR engine ran out of GPU memory on this utterance alone; retry later, send shorter "
                    "utterances, or give the service a larger GPU"
                ),
            )
            return
        log.warning("out of GPU memory; retrying the batch in halves", extra={"batch_size": len(jobs)})
        half = len(jobs) // 2
        await self._execute(jobs[:half])
        await self._execute(jobs[half:])

    def _batch_done(self) -> None:
        if self._batch_started is not None:
            self._busy_s += time.perf_counter() - self._batch_started
            self._batch_started = None
