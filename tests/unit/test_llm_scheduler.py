"""The LLM batch scheduler's logic against a scripted batch (no model): joins, ends, the queue bound,
cancellation, deadlines and failures. The real model behind it is tested in tests/services."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import MetricsDelta
from voxmesh import errors
from voxmesh.services.llm.engines.transformers.scheduler import GenerationScheduler

EOS = 2


class ScriptedBatch:
    """Rows that answer, for prompt [n, ...], the tokens n*100+1, n*100+2, ... and EOS at step n*100+stop.

    Records every call as (phase, rows in the batch after it)."""

    def __init__(self, stop_after: int | None = None, fail_on: str | None = None, delay: float = 0.0):
        self.eos_ids = frozenset({EOS})
        self.rows: list[list[int]] = []  # each row: [prompt id, tokens so far]
        self.calls: list[tuple[str, int]] = []
        self.stop_after = stop_after
        self.fail_on = fail_on
        self.delay = delay

    @property
    def size(self) -> int:
        return len(self.rows)

    def _next(self, row: list[int]) -> int:
        row[1] += 1
        if self.stop_after is not None and row[1] > self.stop_after:
            return EOS
        return row[0] * 100 + row[1]

    def add(self, prompts):
        import time

        time.sleep(self.delay)
        if self.fail_on == "prefill":
            raise RuntimeError("out of memory")
        new = [[p[0], 0] for p in prompts]
        self.rows += new
        self.calls.append(("prefill", self.size))
        return [self._next(r) for r in new]

    def step(self):
        import time

        time.sleep(self.delay)
        if self.fail_on == "decode" and self.calls:
            raise RuntimeError("device lost")
        self.calls.append(("decode", self.size))
        return [self._next(r) for r in self.rows]

    def retain(self, rows):
        self.rows = [self.rows[i] for i in rows]

    def reset(self):
        self.rows = []


async def collect(generation) -> list[int]:
    return [token async for token in generation]


@pytest.fixture
async def make():
    schedulers = []

    def build(batch, **overrides):
        scheduler = GenerationScheduler(batch, **{"queue_size": 8, "max_batch_size": 4, "timeout_s": 10.0, **overrides})
        scheduler.start()
        schedulers.append(scheduler)
        return scheduler

    yield build
    for scheduler in schedulers:
        await scheduler.close()


async def test_rows_join_a_running_batch_and_end_at_eos_or_their_budget(make):
    batch = ScriptedBatch(stop_after=20, delay=0.002)
    scheduler = make(batch)
    seen = MetricsDelta()
    first = scheduler.submit([1], max_new_tokens=50)
    started = [await anext(first), await anext(first)]
    second = scheduler.submit([2], max_new_tokens=3)  # joins while the first runs
    assert started + await collect(first) == [101 + i for i in range(20)]
    assert await collect(second) == [201, 202, 203]
    assert (first.end, second.end) == ("eos", "length")
    assert ("decode", 2) in batch.calls, "the second row joined the first one's steps"
    ends = {end: seen.value("voxmesh_llm_generations_total", end=end) for end in ("eos", "length", "cancelled")}
    assert ends == {"eos": 1, "length": 1, "cancelled": 0}


async def test_rows_beyond_the_batch_size_wait_for_a_place(make):
    batch = ScriptedBatch(stop_after=3)
    scheduler = make(batch, max_batch_size=2)
    seen = MetricsDelta()
    generations = [scheduler.submit([n], max_new_tokens=10) for n in range(1, 6)]
    results = await asyncio.gather(*(collect(g) for g in generations))
    assert results == [[n * 100 + i for i in (1, 2, 3)] for n in range(1, 6)]
    assert max(size for _, size in batch.calls) == 2
    assert seen.largest_bucket("voxmesh_llm_batch_size", phase="decode") == 2


async def test_a_full_queue_refuses_with_resource_exhausted(make):
    scheduler = make(ScriptedBatch(delay=0.01), queue_size=2, max_batch_size=1)
    scheduler.submit([1], 1000)
    await asyncio.sleep(0.05)  # admitted: it holds the only row
    scheduler.submit([2], 1000)
    scheduler.submit([3], 1000)
    with pytest.raises(errors.ResourceExhausted, match="queue is full"):
        scheduler.submit([4], 1000)


async def test_a_cancelled_waiting_transcript_leaves_the_queue_at_once(make):
    scheduler = make(ScriptedBatch(delay=0.01), queue_size=1, max_batch_size=1)
    scheduler.submit([1], 1000)
    await asyncio.sleep(0.05)
    waiting = scheduler.submit([2], 1000)
    with pytest.raises(errors.ResourceExhausted):
        scheduler.submit([3], 1000)
    waiting.cancel()
    assert scheduler.waiting == 0
    scheduler.submit([3], 1000)  # its place is free


async def test_a_cancelled_row_leaves_the_batch_before_the_next_step(make):
    batch = ScriptedBatch(delay=0.005)
    scheduler = make(batch)
    stays, leaves = scheduler.submit([1], 40), scheduler.submit([2], 1000)
    tokens = []
    async for token in leaves:
        tokens.append(token)
        if len(tokens) == 3:
            leaves.cancel()
            break
    await collect(stays)
    assert leaves.end == "cancelled" and leaves.generated <= 4
    assert batch.calls[-1] == ("decode", 1), "the last steps ran the remaining row alone"
    assert scheduler.running == 0


async def test_a_transcript_past_its_deadline_ends_with_deadline_exceeded(make):
    scheduler = make(ScriptedBatch(delay=0.01), timeout_s=0.1)
    generation = scheduler.submit([1], 10_000)
    with pytest.raises(errors.DeadlineExceeded, match=r"0\.1 s"):
        await collect(generation)
    assert generation.generated < 10_000


async def test_a_failed_step_fails_its_rows_and_the_worker_goes_on(make):
    batch = ScriptedBatch(fail_on="decode")
    scheduler = make(batch)
    with pytest.raises(errors.EngineError, match="device lost"):
        await collect(scheduler.submit([1], 10))
    batch.fail_on = None
    assert await collect(scheduler.submit([2], 2)) == [201, 202]


async def test_a_failed_prefill_fails_only_the_joining_rows(make):
    batch = ScriptedBatch(delay=0.005)
    scheduler = make(batch)
    running = scheduler.submit([1], 50)
    await asyncio.sleep(0.03)
    batch.fail_on = "prefill"
    with pytest.raises(errors.EngineError, match="out of memory"):
        await collect(scheduler.submit([2], 5))
    assert len(await collect(running)) == 50
