"""The ASR scheduler with a recording engine (isolates scheduling from any model)."""

from __future__ import annotations

import asyncio
import threading
import weakref

import numpy as np
import pytest
import torch

from tests.conftest import MetricsDelta
from voxmesh import errors
from voxmesh.services.asr.engines import AsrRequest, AsrResult, EngineCapabilities
from voxmesh.services.asr.scheduler import BatchScheduler


class RecordingEngine:
    name = "recording"

    def __init__(self, max_batch_size: int = 4, fail_on: set[float] = frozenset()):
        self.capabilities = EngineCapabilities(streaming=False, max_batch_size=max_batch_size, languages=None)
        self.batches: list[list[str]] = []
        self.hurried: list[bool] = []  # each request's hurry, in the order the engine saw them
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = fail_on

    def transcribe(self, batch):
        self.gate.wait(5)
        tags = [f"{'F' if r.final else 'P'}{int(r.audio[0])}" for r in batch]
        if any(r.audio[0] in self.fail_on for r in batch):
            raise RuntimeError("out of memory")
        self.batches.append(tags)
        self.hurried.extend(r.hurry for r in batch)
        return [AsrResult(text=t, language="en") for t in tags]


def request(tag: int, final: bool = True) -> AsrRequest:
    return AsrRequest(np.full(10, tag, dtype=np.float32), None, final=final)


async def scheduler_for(engine, **kwargs) -> BatchScheduler:
    options = {"queue_size": 16, "max_batch_size": 8, **kwargs}
    scheduler = BatchScheduler(engine, **options)
    scheduler.start()
    return scheduler


async def test_requests_from_many_streams_share_batches():
    engine = RecordingEngine(max_batch_size=4)
    scheduler = await scheduler_for(engine)
    seen = MetricsDelta()
    results = await asyncio.gather(*(scheduler.submit(request(i)) for i in range(8)))
    assert [r.text for r in results] == [f"F{i}" for i in range(8)]
    assert max(len(b) for b in engine.batches) == 4, "the engine's batch size caps the scheduler's"
    assert seen.value("voxmesh_asr_batch_size_sum") == 8 and seen.largest_bucket("voxmesh_asr_batch_size") == 4
    assert all(r.batch_size >= 1 and r.compute_s >= 0 for r in results)
    await scheduler.close()


async def test_finals_go_before_partials_and_partials_do_not_share_a_batch_with_waiting_finals():
    engine = RecordingEngine(max_batch_size=4)
    scheduler = await scheduler_for(engine)
    engine.gate.clear()
    busy = scheduler.submit(request(0, final=False))
    await asyncio.sleep(0.05)  # the worker is now inside the engine with P0
    later = [scheduler.submit(request(1, final=False)), scheduler.submit(request(2)), scheduler.submit(request(3))]
    engine.gate.set()
    await asyncio.gather(busy, *later)
    assert engine.batches == [["P0"], ["F2", "F3"], ["P1"]]
    await scheduler.close()


async def test_a_full_queue_refuses_finals_and_skips_partials():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine, queue_size=2)
    engine.gate.clear()
    first = scheduler.submit(request(0))
    await asyncio.sleep(0.05)
    queued = [scheduler.submit(request(1)), scheduler.submit(request(2))]
    with pytest.raises(errors.ResourceExhausted, match="queue is full"):
        scheduler.submit(request(3))
    assert scheduler.submit(request(4, final=False)) is None
    engine.gate.set()
    await asyncio.gather(first, *queued)
    await scheduler.close()


class OutOfMemoryOverSize(RecordingEngine):
    """Raises torch.OutOfMemoryError on batches larger than `fits` (and on any batch holding `never_fits`),
    recording every call's size; whether the failed call's frames were freed before the next call runs."""

    def __init__(self, fits: int, never_fits: float = -1.0):
        super().__init__(max_batch_size=8)
        self.fits, self.never_fits = fits, never_fits
        self.sizes: list[int] = []
        self.failed_frames_alive: list[bool] = []
        self._last_failed: weakref.ref | None = None

    def transcribe(self, batch):
        self.sizes.append(len(batch))
        if self._last_failed is not None:
            self.failed_frames_alive.append(self._last_failed() is not None)
        if len(batch) > self.fits or any(r.audio[0] == self.never_fits for r in batch):
            activations = Activations()  # what a real batch's tensors would be: referenced from this frame
            self._last_failed = weakref.ref(activations)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().transcribe(batch)


class Activations:
    pass


async def test_out_of_memory_splits_the_batch_after_freeing_it_until_every_request_is_answered():
    engine = OutOfMemoryOverSize(fits=2)
    scheduler = await scheduler_for(engine)
    answers = await asyncio.gather(*(scheduler.submit(request(i)) for i in range(8)))
    assert [a.text for a in answers] == [f"F{i}" for i in range(8)]
    assert engine.sizes == [8, 4, 2, 2, 4, 2, 2]
    assert engine.failed_frames_alive and not any(engine.failed_frames_alive), (
        "a failed batch's frames (and tensors) are freed before the halves run"
    )
    await scheduler.close()


async def test_out_of_memory_on_one_request_alone_is_resource_exhausted_and_the_others_are_answered():
    engine = OutOfMemoryOverSize(fits=4, never_fits=2.0)
    scheduler = await scheduler_for(engine)
    outcomes = await asyncio.gather(*(scheduler.submit(request(i)) for i in range(4)), return_exceptions=True)
    assert isinstance(outcomes[2], errors.ResourceExhausted) and "out of GPU memory" in str(outcomes[2])
    assert [o.text for i, o in enumerate(outcomes) if i != 2] == ["F0", "F1", "F3"]
    await scheduler.close()


async def test_any_other_engine_error_fails_its_batch_unsplit():
    engine = RecordingEngine(max_batch_size=4, fail_on={2.0})
    scheduler = await scheduler_for(engine)
    outcomes = await asyncio.gather(*(scheduler.submit(request(i)) for i in range(4)), return_exceptions=True)
    assert all(isinstance(o, errors.EngineError) for o in outcomes), outcomes
    assert "RuntimeError: out of memory" in str(outcomes[0]), "the engine's own words are passed on"
    assert engine.batches == [], "no retry in halves for an error that is not out-of-memory"
    assert (await scheduler.submit(request(5))).text == "F5", "the worker goes on"
    await scheduler.close()


async def test_cancelled_requests_are_dropped_before_the_engine_sees_them():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine)
    engine.gate.clear()
    first = scheduler.submit(request(0))
    await asyncio.sleep(0.05)
    dropped = scheduler.submit(request(1))
    dropped.cancel()
    kept = scheduler.submit(request(2))
    engine.gate.set()
    await asyncio.gather(first, kept)
    assert engine.batches == [["F0"], ["F2"]]
    await scheduler.close()


async def test_a_final_evicts_a_waiting_partial_rather_than_being_refused():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine, queue_size=2)
    engine.gate.clear()
    running = scheduler.submit(request(0))
    await asyncio.sleep(0.05)
    partials = [scheduler.submit(request(1, final=False)), scheduler.submit(request(2, final=False))]
    final = scheduler.submit(request(3))
    assert partials[0].cancelled() and not partials[1].cancelled()
    engine.gate.set()
    await asyncio.gather(running, final, partials[1])
    assert engine.batches == [["F0"], ["F3"], ["P2"]]
    await scheduler.close()


class WrongCountEngine(RecordingEngine):
    def transcribe(self, batch):
        if batch[0].audio[0] == 0:
            return []  # a broken engine: no result for the request
        return super().transcribe(batch)


async def test_the_worker_survives_a_broken_batch():
    engine = WrongCountEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine)
    with pytest.raises(errors.EngineError):
        await scheduler.submit(request(0))
    assert (await scheduler.submit(request(1))).text == "F1", "the next request is still served"
    await scheduler.close()


async def test_close_answers_waiting_requests_and_lets_the_running_batch_finish():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine)
    engine.gate.clear()
    running = scheduler.submit(request(0))
    await asyncio.sleep(0.05)
    waiting = scheduler.submit(request(1))
    closing = asyncio.create_task(scheduler.close())
    await asyncio.sleep(0.05)
    engine.gate.set()
    await closing
    assert (await running).text == "F0"
    with pytest.raises(errors.Unavailable):
        await waiting
    with pytest.raises(errors.Unavailable):
        scheduler.submit(request(2))


async def test_streams_take_turns_so_one_streams_burst_delays_only_that_stream():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine)
    engine.gate.clear()
    running = scheduler.submit(request(0), stream="burst")
    await asyncio.sleep(0.05)
    burst = [scheduler.submit(request(i), stream="burst") for i in range(1, 5)]
    other = scheduler.submit(request(9), stream="other")
    engine.gate.set()
    await asyncio.gather(running, *burst, other)
    assert engine.batches[:3] == [["F0"], ["F1"], ["F9"]], "the other stream's final came second, not fifth"


async def test_live_finals_go_before_recorded_ones_and_recorded_ones_are_never_refused():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine, queue_size=1)
    engine.gate.clear()
    running = scheduler.submit(request(0), stream="file", recorded=True)
    await asyncio.sleep(0.05)
    recorded = [scheduler.submit(request(i), stream="file", recorded=True) for i in range(1, 6)]
    live = scheduler.submit(request(7), stream="call")
    with pytest.raises(errors.ResourceExhausted):
        scheduler.submit(request(8), stream="another call")  # live work is bounded by the queue
    engine.gate.set()
    await asyncio.gather(running, *recorded, live)
    assert engine.batches[:2] == [["F0"], ["F7"]]
    assert len(engine.batches) == 7, "every recorded final was served"


async def test_live_busy_follows_the_engine_working_for_live_streams_only():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine)
    engine.gate.clear()
    recorded = scheduler.submit(request(0), stream="file", recorded=True)
    await asyncio.sleep(0.05)
    assert scheduler.live_busy.level == 0, "recorded work leaves live capacity alone"
    live = scheduler.submit(request(1), stream="call")
    engine.gate.set()
    await recorded
    await asyncio.sleep(0)
    engine.gate.clear()
    second = scheduler.submit(request(2), stream="call")
    await asyncio.sleep(0.05)
    assert scheduler.live_busy.level == 1
    engine.gate.set()
    await asyncio.gather(live, second)
    assert scheduler.live_busy.level == 0
    await scheduler.close()


async def test_an_idle_engine_starts_at_once_and_what_queued_while_it_was_busy_shares_the_next_batch():
    engine = RecordingEngine(max_batch_size=4)
    engine.gate.clear()
    scheduler = await scheduler_for(engine)
    first = scheduler.submit(request(0))
    while not scheduler._batch_started:  # the engine took the first request alone, not waiting for company
        await asyncio.sleep(0.001)
    later = [scheduler.submit(request(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0.05)  # the engine is busy with request 0 all this while
    engine.gate.set()
    answers = await asyncio.gather(first, *later)
    assert engine.batches == [["F0"], ["F1", "F2", "F3"]]
    assert answers[0].busy_wait_s == 0.0, "nothing was computing when request 0 arrived"
    for answer in answers[1:]:
        assert 0.04 <= answer.busy_wait_s <= answer.queue_wait_s, "their wait was the engine computing request 0"
    await scheduler.close()


async def test_past_hurry_above_live_finals_are_hurried_and_partials_and_recorded_finals_are_not():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine, hurry_above=0.02)
    seen = MetricsDelta()
    await scheduler.submit(request(0), stream="call")
    assert engine.hurried == [False], "an idle engine decodes the full way"
    scheduler.live_busy.set(1)  # as if the engine had computed for live streams for the next 0.4 s
    await asyncio.sleep(0.4)
    scheduler.live_busy.set(0)
    assert scheduler.utilization() > 0.02
    await scheduler.submit(request(1), stream="call")
    await scheduler.submit(request(2, final=False), stream="call")
    await scheduler.submit(request(3), stream="file", recorded=True)
    assert engine.hurried == [False, True, False, False]
    assert seen.value("voxmesh_asr_hurried_total") == 1
    await scheduler.close()


async def test_a_scheduler_never_hurries_with_hurry_above_at_1():
    engine = RecordingEngine(max_batch_size=1)
    scheduler = await scheduler_for(engine)  # the constructor's default: never
    scheduler.live_busy.set(1)
    await asyncio.sleep(0.2)
    await scheduler.submit(request(0), stream="call")
    assert engine.hurried == [False]
    await scheduler.close()
