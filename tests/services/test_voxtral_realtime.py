"""The voxtral-realtime engine (tiny random model, real processor and model) and the round scheduler."""

from __future__ import annotations

import asyncio
import itertools
import time

import numpy as np
import pytest

from tests.conftest import MetricsDelta, chunks
from tests.services.conftest import assert_one_final_per_utterance, channel_to, running, settings, stream_through_mesh
from tests.services.conftest import recognize_config as config
from tests.services.conftest import utterance_audio as audio
from tests.services.conftest import utterance_end as end
from voxmesh import errors
from voxmesh.services.asr.engines import load_engine
from voxmesh.services.asr.rounds import LiveUtterance, RoundScheduler
from voxmesh.services.asr.service import AsrService
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2_grpc

REALTIME = {"engine": "voxtral-realtime"}


@pytest.fixture(scope="module")
def engine(tiny_voxtral_realtime):
    return load_engine(AsrSettings(model=str(tiny_voxtral_realtime), **REALTIME))


def step_by_step(engine, signal: np.ndarray) -> list[int]:
    padded = np.concatenate([signal, np.zeros(engine.right_pad_samples + engine.window_samples, np.float32)])
    rows, tokens = engine.start([padded[: engine.first_samples]])
    for k in range(engine.windows_available(len(signal), finished=True)):
        start = engine.window_start(k)
        tokens += engine.step(rows, [padded[start : start + engine.window_samples]])
    return tokens


def reference(engine, signal: np.ndarray) -> list[int]:
    """transformers' own streaming path: generate() fed by a generator of windows (one stream at a time)."""
    padded = np.concatenate([signal, np.zeros(engine.right_pad_samples + engine.window_samples, np.float32)])
    processor, model = engine.processor, engine.model
    first = processor(padded[: engine.first_samples], is_streaming=True, is_first_audio_chunk=True, return_tensors="pt")

    def windows():
        yield first["input_features"]
        for k in range(engine.windows_available(len(signal), finished=True)):
            start = engine.window_start(k)
            yield processor(
                padded[start : start + engine.window_samples],
                is_streaming=True,
                is_first_audio_chunk=False,
                return_tensors="pt",
            )["input_features"]

    out = model.generate(
        input_ids=first["input_ids"],
        input_features=windows(),
        num_delay_tokens=first["num_delay_tokens"],
        do_sample=False,
    )
    return out[0, first["input_ids"].shape[1] :].tolist()


def test_steps_give_the_tokens_of_transformers_streaming_generate(engine, jfk_pcm):
    signal = np.frombuffer(jfk_pcm[: 16000 * 2 * 3], "<i2").astype(np.float32) / 32768
    ours = step_by_step(engine, signal)
    assert len(set(ours)) > 3, "the tiny model's output varies, so the comparison can fail"
    assert ours == reference(engine, signal)


@pytest.fixture(scope="module")
def sliding_engine(tmp_path_factory):
    """The tiny model with sliding windows of a few steps (24 encoder frames, 8 tokens), so that seconds of
    audio slide them."""
    from tests.tiny_models import build_voxtral_realtime

    model = build_voxtral_realtime(tmp_path_factory.mktemp("tiny-sliding"), audio_window=24, text_window=8)
    return load_engine(AsrSettings(model=str(model), **REALTIME))


@pytest.mark.parametrize("windows", ["full", "sliding"])
def test_rows_at_different_positions_in_one_forward_match_one_by_one(engine, sliding_engine, windows):
    """Utterances starting at different rounds, one sitting some rounds out, share forwards: every row's
    tokens equal what it gets alone, with windows that never fill and with windows that slide."""
    engine = engine if windows == "full" else sliding_engine
    rng = np.random.default_rng(3)
    signals = [rng.normal(0, 0.1, 30000).astype(np.float32) for _ in range(3)]
    alone = [step_by_step(engine, s) for s in signals]
    padded = [
        np.concatenate([s, np.zeros(engine.right_pad_samples + engine.window_samples, np.float32)]) for s in signals
    ]
    total = engine.windows_available(30000, finished=True)
    states, rows, done, sizes = {}, {}, {}, []
    for round_ in range(3 * total):
        if round_ % 4 == 0 and round_ // 4 < 3:  # a new utterance every fourth round
            i = round_ // 4
            [states[i]], rows[i] = engine.start([padded[i][: engine.first_samples]])
            done[i] = 0
        members = [i for i in states if done[i] < total and not (i == 1 and round_ % 3 == 0)]  # 1 lags now and then
        if not members:
            continue
        starts = [engine.window_start(done[i]) for i in members]
        windows = [padded[i][start : start + engine.window_samples] for i, start in zip(members, starts, strict=True)]
        for i, token in zip(members, engine.step([states[i] for i in members], windows), strict=True):
            rows[i].append(token)
            done[i] += 1
        sizes.append(len(members))
    assert max(sizes) == 3, "the three were in forwards together"
    assert [rows[i] for i in range(3)] == alone


def test_the_transcription_delay_is_a_setting(tiny_voxtral_realtime):
    slow = load_engine(AsrSettings(model=str(tiny_voxtral_realtime), transcription_delay_ms=960, **REALTIME))
    assert slow.delay_tokens == 12
    assert load_engine(AsrSettings(model=str(tiny_voxtral_realtime), **REALTIME)).delay_tokens == 6


def test_a_missing_model_directory_fails_start_up_naming_it(tmp_path):
    with pytest.raises(errors.FailedPrecondition, match=str(tmp_path / "nothing")):
        load_engine(AsrSettings(model=str(tmp_path / "nothing"), **REALTIME))


async def recognize_all(service, streams: list[list]) -> list[list]:
    async with running(service, service.settings) as address, channel_to(address) as channel:
        stub = asr_pb2_grpc.RecognizerStub(channel)

        async def one(requests):
            async def paced():
                for request in requests:
                    yield request
                    await asyncio.sleep(0.01)

            return [r async for r in stub.Recognize(paced())]

        results = await asyncio.gather(*(one(r) for r in streams))
    return results


async def test_text_streams_while_audio_arrives_then_the_final(tiny_voxtral_realtime, jfk_pcm):
    service = AsrService(settings(AsrSettings, model=str(tiny_voxtral_realtime), **REALTIME))
    utterance = jfk_pcm[: 16000 * 2 * 4]
    requests = [config(partials=True), *(audio(1, c) for c in chunks(utterance, 3200)), end(1)]
    [responses] = await recognize_all(service, [requests])
    kinds = [r.WhichOneof("result") for r in responses]
    assert kinds[-1] == "final" and kinds.count("final") == 1 and "partial" in kinds
    partials = [r.partial.text for r in responses if r.WhichOneof("result") == "partial"]
    assert all(b.startswith(a) for a, b in itertools.pairwise(partials)), "streamed text only grows"
    assert responses[-1].final.text.startswith(partials[-1])
    assert responses[-1].final.engine.startswith("voxtral-realtime:")


async def test_sixteen_streams_that_start_together_share_steps(tiny_voxtral_realtime, jfk_pcm):
    service = AsrService(
        settings(AsrSettings, model=str(tiny_voxtral_realtime), max_batch_size=16, batch_wait_ms=50, **REALTIME)
    )
    utterance = jfk_pcm[: 16000 * 2 * 2]
    streams = [[config(), audio(1, utterance), end(1)] for _ in range(16)]
    seen = MetricsDelta()
    results = await recognize_all(service, streams)
    assert all([r.WhichOneof("result") for r in responses] == ["final"] for responses in results)
    assert len({r[0].final.text for r in results}) == 1, "identical audio, identical text in every row"
    assert seen.largest_bucket("voxmesh_asr_batch_size") > 1, "forwards were shared across streams"


async def test_more_utterances_than_the_limit_answer_resource_exhausted(tiny_voxtral_realtime, jfk_pcm):
    service = AsrService(settings(AsrSettings, model=str(tiny_voxtral_realtime), queue_size=2, **REALTIME))
    requests = [config()]
    for utterance in (1, 2, 3):
        requests.append(audio(utterance, jfk_pcm[:32000]))
    requests += [end(1), end(2), end(3)]
    [responses] = await recognize_all(service, [requests])
    outcome = {r.utterance_id: r for r in responses}
    assert sorted(outcome) == [1, 2, 3]
    assert outcome[3].error.code == "RESOURCE_EXHAUSTED" and "limit of 2 utterances" in outcome[3].error.message
    assert outcome[1].WhichOneof("result") == outcome[2].WhichOneof("result") == "final"


async def test_real_speech_through_the_mesh_one_final_per_utterance(tiny_voxtral_realtime, sample_pcm):
    events = await stream_through_mesh(sample_pcm, asr={"model": str(tiny_voxtral_realtime), **REALTIME})
    assert_one_final_per_utterance(events, 4, "voxtral-realtime:")


class Counting:
    """The tiny realtime engine, counting its forwards: the batch size of each step."""

    def __init__(self, engine):
        self.engine = engine
        self.steps: list[int] = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def step(self, states, windows):
        self.steps.append(len(states))
        return self.engine.step(states, windows)


async def test_utterances_starting_at_different_times_advance_in_one_forward_per_round(engine):
    counting = Counting(engine)
    scheduler = RoundScheduler(counting, max_streams=8, batch_wait_s=0)
    scheduler.start()
    pcm = (np.random.default_rng(4).normal(0, 0.05, 64000) * 32767).astype("<i2").tobytes()
    started: dict[LiveUtterance, int] = {}  # each utterance and the round it started in
    for round_ in range(16):
        if round_ % 3 == 0 and len(started) < 5:  # a new utterance every third round
            started[scheduler.open()] = round_
        before = len(counting.steps)
        for utterance, first in started.items():  # every utterance's next window arrives at once
            need = engine.window_start(round_ - first) + engine.window_samples
            scheduler.feed(utterance, pcm[len(utterance.pcm) : 2 * need])
        while any(u.steps_done < round_ - first + 1 for u, first in started.items()):
            await asyncio.sleep(0.005)
        assert counting.steps[before:] == [len(started)], f"round {round_}: one forward of every utterance"
    for utterance in started:
        scheduler.finish(utterance)
    texts = await asyncio.gather(*(u.done for u in started))
    assert len(texts) == 5 and all(isinstance(t, str) for t in texts)
    await scheduler.close()


async def test_text_grown_token_by_token_is_the_text_of_all_the_tokens(engine):
    """Incremental detokenizing (only the tokens since the last whole character) gives what decoding the
    whole list gives, random tokens of the real tokenizer included (bytes split across tokens)."""
    scheduler = RoundScheduler(engine, max_streams=4, batch_wait_s=0)
    rng = np.random.default_rng(5)
    vocabulary = len(engine.processor.tokenizer)
    for _ in range(5):
        utterance = LiveUtterance(done=asyncio.get_running_loop().create_future())
        tokens = [int(t) for t in rng.integers(1000, min(vocabulary, 60000), 40)]
        for count, token in enumerate(tokens, start=1):
            scheduler._take(utterance, token)
            whole = engine.decode_piece(tokens[:count])
            if not whole.endswith("\ufffd"):
                assert utterance.text == whole.strip(), (count, utterance.text, whole)


class FailsOnLoudRows:
    """The tiny realtime engine, except that a step or prefill whose audio is loud fails."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def start(self, chunks):
        if any(np.abs(c).max() > 0.5 for c in chunks):
            raise RuntimeError("device-side assert triggered")
        return self.engine.start(chunks)

    def step(self, state, windows):
        if any(np.abs(w).max() > 0.5 for w in windows):
            raise RuntimeError("device-side assert triggered")
        return self.engine.step(state, windows)


async def test_a_failing_forward_fails_only_the_utterances_in_it(engine):
    scheduler = RoundScheduler(FailsOnLoudRows(engine), max_streams=8, batch_wait_s=0)
    scheduler.start()
    rng = np.random.default_rng(7)
    quiet = (rng.normal(0, 0.05, 32000) * 32767).astype("<i2").tobytes()
    loud = (np.full(32000, 0.9) * 32767).astype("<i2").tobytes()
    calm = scheduler.open()
    scheduler.feed(calm, quiet[: len(quiet) // 2])
    while not calm.tokens:  # calm is stepping
        await asyncio.sleep(0.01)
    doomed = scheduler.open()  # starts later: its prefill fails
    scheduler.feed(doomed, loud)
    scheduler.finish(doomed)
    with pytest.raises(errors.EngineError, match="device-side assert"):
        await doomed.done
    scheduler.feed(calm, quiet[len(quiet) // 2 :])
    scheduler.finish(calm)
    assert isinstance(await calm.done, str), "the utterance in another forward is answered"
    late = scheduler.open()  # and the scheduler goes on
    scheduler.feed(late, quiet)
    scheduler.finish(late)
    assert isinstance(await late.done, str)
    await scheduler.close()


class SlowSteps(FailsOnLoudRows):
    """Steps that take longer than the 80 ms of audio they advance, as an overloaded GPU's would."""

    def step(self, state, windows):
        time.sleep(0.1)
        return self.engine.step(state, windows)


async def test_rounds_slower_than_the_audio_report_the_engine_over_capacity(engine):
    for wrapped, over in ((FailsOnLoudRows(engine), False), (SlowSteps(engine), True)):
        scheduler = RoundScheduler(wrapped, max_streams=8, batch_wait_s=0)
        scheduler.start()
        utterance = scheduler.open()
        scheduler.feed(utterance, (np.random.default_rng(2).normal(0, 0.05, 24000) * 32767).astype("<i2").tobytes())
        while utterance.steps_done < 3:
            await asyncio.sleep(0.01)
        assert (scheduler.utilization() > 1) is over, scheduler.round_load
        scheduler.finish(utterance)
        await utterance.done
        await scheduler.close()


def test_the_spectrogram_is_computed_on_the_models_device(engine, monkeypatch):
    """The processor is told the model's device (a GPU computes the round's log-mel, not the host)."""
    devices = []
    processor = engine.processor

    def recording(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return processor(*args, **kwargs)

    monkeypatch.setattr(engine, "processor", recording)
    rows, _ = engine.start([np.zeros(engine.first_samples, np.float32)])
    engine.step(rows, [np.zeros(engine.window_samples, np.float32)])
    assert devices == [engine.place.device] * 2


async def test_words_asked_for_are_the_finals_words_timed_within_the_utterance(tiny_voxtral_realtime, jfk_pcm):
    service = AsrService(settings(AsrSettings, model=str(tiny_voxtral_realtime), **REALTIME))
    request = config()
    request.config.word_timings = True
    utterance = jfk_pcm[: 16000 * 2 * 3]
    [responses] = await recognize_all(service, [[request, *(audio(1, c) for c in chunks(utterance, 3200)), end(1)]])
    final = responses[-1].final
    assert final.text, "the tiny model writes something, so the words can be checked"
    assert [w.word for w in final.words] == final.text.split()
    assert all(0 <= w.start_s <= w.end_s <= 3.0 for w in final.words)
    assert [w.start_s for w in final.words] == sorted(w.start_s for w in final.words)
