"""Context across a stream's utterances: the ASR gives the engine the stream's latest final text, bounded,
and only that stream's."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tests.services.conftest import channel_to, running, settings
from tests.services.conftest import recognize_config as config
from tests.services.conftest import utterance_audio as audio
from tests.services.conftest import utterance_end as end
from voxmesh.services.asr.engines import AsrResult, EngineCapabilities
from voxmesh.services.asr.engines.whisper import WhisperEngine
from voxmesh.services.asr.service import AsrService
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2_grpc


class WordPerLevelEngine:
    """Answers a word that names the utterance's loudness, and records the context of every request."""

    name = "word-per-level"
    capabilities = EngineCapabilities(streaming=False, max_batch_size=1, languages=None, context=True)

    def __init__(self):
        self.seen: list[tuple[str, bool, str]] = []  # (answer, final, context)
        self.lock = threading.Lock()

    def warmup(self):
        pass

    def transcribe(self, batch):
        results = []
        for request in batch:
            level = round(float(np.abs(request.audio).max()) * 100)
            answer = f"{'alpha' if level < 20 else 'beta'}{level}"
            with self.lock:
                self.seen.append((answer, request.final, request.context))
            results.append(AsrResult(answer, "en"))
        return results

    def close(self):
        pass


def level_pcm(level: float, seconds: float = 0.5) -> bytes:
    return (np.full(int(16000 * seconds), level * 32767)).astype("<i2").tobytes()


@pytest.fixture
def engine(monkeypatch) -> WordPerLevelEngine:
    engine = WordPerLevelEngine()
    monkeypatch.setattr("voxmesh.services.asr.service.load_engine", lambda _settings: engine)
    return engine


async def run_streams(
    streams: dict[str, list[float]], partials: bool = False, context: tuple[str, ...] = (), **overrides
) -> None:
    """One Recognize stream per name, at once: utterance i of a stream has loudness levels[i]."""
    service = AsrService(settings(AsrSettings, **overrides))
    async with running(service, service.settings) as address, channel_to(address) as channel:
        stub = asr_pb2_grpc.RecognizerStub(channel)

        async def one(levels: list[float]):
            first = config(partials=partials)
            first.config.context.extend(context)
            requests = [first]
            for number, level in enumerate(levels, start=1):
                requests += [audio(number, level_pcm(level)), audio(number, level_pcm(level)), end(number)]

            async def paced():
                for request in requests:
                    yield request
                    await asyncio.sleep(0.01)

            return [r async for r in stub.Recognize(paced())]

        answers = await asyncio.gather(*(one(levels) for levels in streams.values()))
    for responses, levels in zip(answers, streams.values(), strict=True):
        assert [r.WhichOneof("result") for r in responses if r.WhichOneof("result") != "partial"] == ["final"] * len(
            levels
        )


async def test_each_final_is_conditioned_on_the_finals_before_it_in_order(engine):
    await run_streams({"a": [0.05, 0.06, 0.07, 0.08]})
    finals = [(answer, context) for answer, final, context in engine.seen if final]
    assert finals == [
        ("alpha5", ""),
        ("alpha6", "alpha5"),
        ("alpha7", "alpha5 alpha6"),
        ("alpha8", "alpha5 alpha6 alpha7"),
    ]


async def test_a_streams_context_never_reaches_another_stream(engine):
    await run_streams(
        {"quiet": [0.05, 0.06, 0.07, 0.08, 0.09], "loud": [0.5, 0.6, 0.7, 0.8, 0.9]},
        partials=True,
        partial_interval_s=0.2,
    )
    assert len({answer[:4] for answer, _, _ in engine.seen}) == 2, "both streams reached the engine"
    assert any(context for _, _, context in engine.seen)
    for answer, _, context in engine.seen:
        other = "beta" if answer.startswith("alpha") else "alpha"
        assert other not in context, f"{answer} was asked with another stream's text as context: {context!r}"


async def test_context_is_bounded_and_can_be_turned_off(engine):
    await run_streams({"a": [0.05 + 0.01 * i for i in range(12)]}, context_tokens=2)
    contexts = [context for _, final, context in engine.seen if final]
    assert max(len(c) for c in contexts) <= 16, "2 tokens keep at most 16 characters in the session"
    assert contexts[-1].endswith("alpha15"), "the latest text is kept"

    engine.seen.clear()
    await run_streams({"a": [0.05, 0.06, 0.07]}, context_tokens=0)
    assert [context for _, _, context in engine.seen] == ["", "", ""]


def test_whisper_prompts_with_at_most_the_last_context_tokens():
    whisper = WhisperEngine(settings(AsrSettings, context_tokens=8))
    context = " ".join(f"word{i}" for i in range(200))
    prompt = whisper._prompt(context)
    assert prompt is not None and len(prompt) == 8
    assert whisper.model.hf_tokenizer.decode(prompt).strip().endswith("word199")
    assert whisper._prompt("") is None
    assert WhisperEngine(settings(AsrSettings, context_tokens=0)).capabilities.context is False


async def test_a_stream_continued_on_a_new_call_starts_from_the_finals_it_is_given(engine):
    await run_streams({"a": [0.05, 0.06]}, context=("and so my fellow", "americans"))
    finals = [(answer, context) for answer, final, context in engine.seen if final]
    assert finals == [("alpha5", "and so my fellow americans"), ("alpha6", "and so my fellow americans alpha5")]
