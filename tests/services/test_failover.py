"""Failover inside the gateway, with every service on an in-process server: replicas stop, drain and come
back while a stream runs, and every utterance still gets exactly one final. (tests/e2e/test_failover.py
does the same with real processes and SIGKILL.)"""

from __future__ import annotations

import asyncio

import pytest

from tests.services.conftest import asr, assert_exactly_one_final_each, gateway, llm, run_stream, vad
from voxmesh.gateway import metrics
from voxmesh.services.asr.redecode_session import RedecodeSession
from voxmesh.services.llm.engines import Done


async def test_the_asr_replica_carrying_a_stream_stops_mid_utterance_and_the_other_takes_over(sample_pcm):
    asrs = [asr(), asr()]
    stopped = []

    async def stop_the_carrier(event):
        if event.type == "speech_start" and event.utterance == 2:
            carrier = next(r for r in asrs if r.server is not None and r.open_streams)
            stopped.append(carrier)
            await carrier.stop()  # GOAWAY and every call cancelled: a crash, as the gateway sees it

    async with gateway([vad()], asrs, [llm()]) as address:
        events = await run_stream(address, sample_pcm, stop_the_carrier)
    assert stopped
    assert_exactly_one_final_each(events, 4)
    assert all(e.outcome == "processed" for e in events if e.type == "processed" and e.done)


async def test_the_asr_replica_that_takes_over_a_stream_starts_from_its_latest_finals(monkeypatch, sample_pcm):
    asrs = [asr(), asr()]
    contexts = []
    continue_from = RedecodeSession.continue_from

    def record(session, context):
        contexts.append(list(context))
        continue_from(session, context)

    monkeypatch.setattr(RedecodeSession, "continue_from", record)

    async def stop_the_carrier(event):
        if event.type == "final" and event.utterance == 1:
            await next(r for r in asrs if r.server is not None and r.open_streams).stop()

    async with gateway([vad()], asrs, [llm()]) as address:
        events = await run_stream(address, sample_pcm, stop_the_carrier)
    assert_exactly_one_final_each(events, 4)
    first_final = next(e.text for e in events if e.type == "final" and e.utterance == 1)
    assert contexts[0] == [], "the stream's first ASR call starts with no context"
    assert len(contexts) == 2 and contexts[1][:1] == [first_final], "the new call starts from the finals released"


async def test_a_lone_asr_replica_that_comes_back_gets_the_open_utterances_again(sample_pcm):
    lone = asr()

    async def bounce(event):
        if event.type == "speech_start" and event.utterance == 2:
            await lone.stop()
            await asyncio.sleep(1.0)
            await lone.start()  # same port: the gateway's channel reconnects within its backoff

    async with gateway([vad()], [lone], [llm()]) as address:
        events = await run_stream(address, sample_pcm, bounce)
    assert_exactly_one_final_each(events, 4)


async def test_a_lone_asr_replica_that_never_comes_back_fails_each_utterance_and_the_call_goes_on(sample_pcm):
    lone = asr()

    async def stop(event):
        if event.type == "speech_start" and event.utterance == 2 and lone.server is not None:
            await lone.stop()

    async with gateway([vad()], [lone], [llm()], final_timeout_s=1.0) as address:
        events = await run_stream(address, sample_pcm, stop)
    started = [e.utterance for e in events if e.type == "speech_start"]
    answered = [e.utterance for e in events if e.type in ("final", "error")]
    assert started == answered == [1, 2, 3, 4], "every utterance was answered, the stream ended normally"
    failed = [e for e in events if e.type == "error"]
    assert failed and all(e.code == "UNAVAILABLE" and "no ASR replica was reachable" in e.message for e in failed)


async def test_the_vad_going_away_moves_the_stream_with_no_utterance_announced_twice(sample_pcm):
    async with gateway([vad()], [asr()], [llm()]) as address:
        undisturbed = await run_stream(address, sample_pcm, post_processing=False)
    vads = [vad(), vad()]

    async def roll(event):
        # Each replica in turn drains (SIGTERM's first step: its streams are told going_away), stops and
        # comes back, as in a rolling update; the stream rides on one of them, so it moves at least once.
        if event.type == "speech_start" and event.utterance in (2, 3):
            replica = vads[event.utterance - 2]
            await replica.server.drain()
            await asyncio.sleep(0.2)
            await replica.stop(grace_s=1.0)
            await replica.start()

    failovers = metrics.FAILOVERS.labels("vad")._value.get()
    async with gateway(vads, [asr()], [llm()]) as address:
        events = await run_stream(address, sample_pcm, roll, post_processing=False)
    assert metrics.FAILOVERS.labels("vad")._value.get() > failovers
    assert_exactly_one_final_each(events, 4)

    def spans(evs):
        return [(e.utterance, round(e.start_s, 2), round(e.end_s, 2), e.text) for e in evs if e.type == "final"]

    assert spans(events) == spans(undisturbed), "the same utterances, offsets and text as without the failover"


async def test_the_asr_going_away_finishes_its_utterances_and_new_ones_go_to_another_replica(sample_pcm):
    asrs = [asr(), asr()]
    drained, seen = [], {}

    async def drain_the_carrier(event):
        if event.type == "speech_start" and event.utterance == 2:
            carrier = next(r for r in asrs if r.open_streams)
            drained.append(carrier)
            await carrier.server.drain()  # SIGTERM's first step: its streams are told going_away
        elif event.type == "speech_start" and event.utterance == 4:
            other = next(r for r in asrs if r is not drained[0])
            seen.update(drained=drained[0].open_streams, other=other.open_streams)

    async with gateway([vad()], asrs, [llm()]) as address:
        events = await run_stream(address, sample_pcm, drain_the_carrier)
    assert_exactly_one_final_each(events, 4)
    assert seen == {"drained": 0, "other": 1}, "the draining replica finished its stream; new utterances moved"


class Stalling:
    """An LLM engine that streams a first delta and then never finishes."""

    name = "stalling"

    def __init__(self, first: str):
        self.first = first
        self.started = asyncio.Event()

    async def warmup(self):
        pass

    async def stream(self, request):
        yield self.first
        self.started.set()
        await asyncio.sleep(3600)

    async def close(self):
        pass


class Fixed:
    """An LLM engine that answers every transcript with the same text, word by word."""

    name = "fixed"

    def __init__(self, text: str):
        self.text = text

    async def warmup(self):
        pass

    async def stream(self, request):
        words = self.text.split(" ")
        for i, word in enumerate(words):
            yield word + (" " if i < len(words) - 1 else "")
        yield Done(self.text)

    async def close(self):
        pass


@pytest.mark.parametrize(("second", "restart"), [("Hello world.", False), ("Goodbye.", True)])
async def test_a_transcript_sent_again_after_a_failover_never_delivers_its_deltas_twice(sample_pcm, second, restart):
    # The LLM replica stalls after its first delta and dies; the one that comes back on its port answers
    # `second`: the client gets only what it lacks, or a restart when the text came out different.
    lone = llm(Stalling("Hello "), Fixed(second))

    async def replace_the_stalled(event):
        if event.type == "processed" and event.delta == "Hello " and not event.restart:
            await lone.stop()
            await lone.start()

    async with gateway([vad()], [asr()], [lone]) as address:
        events = await run_stream(address, sample_pcm[: 16000 * 2 * 3], replace_the_stalled)
    processed = [e for e in events if e.type == "processed"]
    assert processed[0].delta == "Hello " and not processed[0].restart
    assert processed[-1].done and processed[-1].text == second and processed[-1].outcome == "processed"
    assert any(p.restart for p in processed) == restart
    assert processed[-1].text == second, "the client library's text is the new attempt's"
    if not restart:
        assert "".join(p.delta for p in processed) == second, "what the client had was not sent again"


async def test_post_processing_resumes_once_an_llm_replica_is_back(sample_pcm):
    lone = llm()

    async def bounce(event):
        if event.type == "speech_start" and event.utterance == 2 and lone.server is not None:
            await lone.stop()
            asyncio.get_running_loop().call_later(2.5, lambda: asyncio.ensure_future(lone.start()))

    async with gateway([vad()], [asr()], [lone], processed_timeout_s=1.5) as address:
        events = await run_stream(address, sample_pcm, bounce, speed=2.0)
    assert len([e for e in events if e.type == "final"]) == 4, "every final still arrives"
    done = {e.utterance: e for e in events if e.type == "processed" and e.done}
    assert sorted(done) == [1, 2, 3, 4]
    assert done[4].outcome == "processed", "post-processing came back for the later transcripts"
