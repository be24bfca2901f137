"""rpc.IdleReads: one timer per stream times each read, as a timer per read did."""

import asyncio
import time

import pytest

from voxmesh.rpc import IdleReads


async def messages(gaps_s: list[float]):
    for gap in gaps_s:
        await asyncio.sleep(gap)
        yield gap


async def test_a_read_that_waits_longer_than_the_limit_times_out():
    idle = IdleReads(0.2)
    stream = messages([0.01, 5.0])
    began = time.monotonic()
    assert await idle.read(stream) == 0.01
    with pytest.raises(TimeoutError):
        await idle.read(stream)
    assert 0.15 < time.monotonic() - began < 1.0
    idle.close()


async def test_reads_that_keep_coming_are_never_timed_out_by_the_timer_set_for_the_first():
    idle = IdleReads(0.25)
    stream = messages([0.02] * 40)  # 0.8 s of reads, each far within the limit; the timer fires three times
    got = [await idle.read(stream) for _ in range(40)]
    assert got == [0.02] * 40
    idle.close()


async def test_time_between_reads_is_not_counted():
    idle = IdleReads(0.2)
    stream = messages([0.01, 0.01])
    await idle.read(stream)
    await asyncio.sleep(0.5)  # the reader is busy elsewhere (backpressure) longer than the limit
    assert await idle.read(stream) == 0.01
    idle.close()


async def test_a_read_after_a_slow_start_gets_its_own_deadline():
    idle = IdleReads(0.3)
    stream = messages([0.01, 0.25])
    await idle.read(stream)
    await asyncio.sleep(0.2)  # the timer set at the first read fires during the second, early for it
    assert await idle.read(stream) == 0.25  # 0.25 s waited: within its own 0.3 s
    idle.close()


async def test_a_cancel_from_elsewhere_stays_a_cancel():
    idle = IdleReads(0.2)
    reader = asyncio.create_task(idle.read(messages([5.0])))
    await asyncio.sleep(0.05)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    idle.close()
