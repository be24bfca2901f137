"""Context across a stream's utterances: the ASR gives the engine the stream's latest final text, bounded,
and only that stream's; with the lead, the latest utterances' audio with their text."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import ALSA, real
from tests.services.conftest import channel_to, running, settings
from tests.services.conftest import recognize_config as config
from tests.services.conftest import utterance_audio as audio
from tests.services.conftest import utterance_end as end
from voxmesh import text
from voxmesh.audio import pcm_to_float
from voxmesh.services.asr.engines import AsrRequest, AsrResult, EngineCapabilities
from voxmesh.services.asr.engines.whisper import WhisperEngine
from voxmesh.services.asr.service import AsrService
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2_grpc


def word(audio: np.ndarray) -> str:
    level = round(float(np.abs(audio).max()) * 100)
    return f"{'alpha' if level < 20 else 'beta'}{level}"


class WordPerLevelEngine:
    """Answers a word that names the utterance's loudness, and records the context of every request (and
    its lead: the word for each lead utterance's audio, with the text it came with)."""

    name = "word-per-level"
    capabilities = EngineCapabilities(streaming=False, max_batch_size=1, languages=None, context=True)

    def __init__(self, context_audio: bool = False):
        self.seen: list[tuple[str, bool, str]] = []  # (answer, final, context)
        self.leads: list[tuple[str, bool, list[tuple[str, str]]]] = []  # (answer, final, [(audio's word, text)])
        self.lock = threading.Lock()
        if context_audio:
            self.capabilities = replace(self.capabilities, context_audio=True)

    def warmup(self):
        pass

    def transcribe(self, batch):
        results = []
        for request in batch:
            answer = word(request.audio)
            with self.lock:
                self.seen.append((answer, request.final, request.context))
                self.leads.append((answer, request.final, [(word(audio), text) for audio, text in request.lead]))
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


@pytest.fixture
def hearing_engine(monkeypatch) -> WordPerLevelEngine:
    engine = WordPerLevelEngine(context_audio=True)
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
    decode = whisper.model.hf_tokenizer.decode
    prompt = whisper._prompt(context)
    assert prompt is not None and len(prompt) == 8
    assert decode(prompt).strip().endswith("word199."), "the prompt ends a sentence"
    for closed in ("Is it?", 'He said "yes."', "Wait…"):
        assert decode(whisper._prompt(closed) or []).strip() == closed
    assert whisper._prompt("") is None
    assert decode(whisper._prompt("", hints="Voxmesh, Kubernetes") or []).strip() == "Voxmesh, Kubernetes."
    assert decode(whisper._prompt("so on", hints="Voxmesh, Kubernetes") or []).strip() == "Voxmesh, Kubernetes so on."
    assert WhisperEngine(settings(AsrSettings, context_tokens=0)).capabilities.context is False


def test_a_prompt_that_ends_in_the_words_the_audio_starts_with_does_not_cost_them():
    # alsa_channels says "side left, side right" twice; the second time starts this utterance (the mesh's own
    # cut, 15.72-20.64 s), after a context that ends in the first. Whisper, prompted with it as text that runs
    # on, skips them; prompted with it as a closed sentence, it hears them in one decode.
    audio = pcm_to_float(real(ALSA))[int(15.72 * 16000) : int(20.64 * 16000)]
    context = "Front, center, front, left, front, right rear, center, rear, left, rear, right, side, left side, right"
    whisper = WhisperEngine(settings(AsrSettings))
    decode, decodes = whisper._decode, []
    whisper._decode = lambda *args: decodes.append(args) or decode(*args)  # type: ignore[method-assign]
    words = text.words(whisper.transcribe([AsrRequest(audio, "en", final=True, context=context)])[0].text)
    assert "side" in words and words[-2:] == ["front", "right"], words
    assert len(decodes) == 1, "heard without decoding again"


def test_whisper_punctuates_after_hints_that_end_the_prompt(jfk_pcm):
    # Whisper writes as its prompt does: after hints with no closing mark it answered with no punctuation
    whisper = WhisperEngine(settings(AsrSettings))
    request = AsrRequest(pcm_to_float(jfk_pcm), "en", final=True, hints="fellow Americans")
    said = whisper.transcribe([request])[0].text
    assert any(mark in said for mark in ".,?!"), said


def test_whisper_decodes_hurried_live_finals_with_the_busy_beam():
    whisper = WhisperEngine(settings(AsrSettings, beam_size=5, busy_beam_size=2, partial_beam_size=1))
    audio = np.zeros(1600, dtype=np.float32)
    assert whisper._beam(AsrRequest(audio, "en", final=True)) == 5
    assert whisper._beam(AsrRequest(audio, "en", final=True, hurry=True)) == 2
    assert whisper._beam(AsrRequest(audio, "en", final=False, hurry=True)) == 1


async def test_the_service_hands_hurry_above_to_its_scheduler(engine):
    service = AsrService(settings(AsrSettings, hurry_above=0.4))
    async with running(service, service.settings):
        assert service.servicer.scheduler.hurry_above == 0.4


async def test_a_stream_continued_on_a_new_call_starts_from_the_finals_it_is_given(engine):
    await run_streams({"a": [0.05, 0.06]}, context=("and so my fellow", "americans"))
    finals = [(answer, context) for answer, final, context in engine.seen if final]
    assert finals == [("alpha5", "and so my fellow americans"), ("alpha6", "and so my fellow americans alpha5")]


async def test_the_lead_is_the_latest_utterances_audio_with_their_text_bounded_in_seconds(hearing_engine):
    # each utterance is 1 s; 2.5 s of lead keeps the last two, and the text before them is the context
    await run_streams({"a": [0.05, 0.06, 0.07, 0.08]}, context_audio_s=2.5)
    finals = [(answer, lead) for answer, final, lead in hearing_engine.leads if final]
    assert finals == [
        ("alpha5", []),
        ("alpha6", [("alpha5", "alpha5")]),
        ("alpha7", [("alpha5", "alpha5"), ("alpha6", "alpha6")]),
        ("alpha8", [("alpha6", "alpha6"), ("alpha7", "alpha7")]),
    ]
    assert [context for _, final, context in hearing_engine.seen if final][-1] == "alpha5"


async def test_a_streams_lead_never_reaches_another_stream(hearing_engine):
    await run_streams(
        {"quiet": [0.05, 0.06, 0.07, 0.08, 0.09], "loud": [0.5, 0.6, 0.7, 0.8, 0.9]},
        partials=True,
        partial_interval_s=0.2,
    )
    assert any(lead for _, _, lead in hearing_engine.leads)
    for answer, _, lead in hearing_engine.leads:
        family = answer[:4]
        assert all(heard[:4] == family and text[:4] == family for heard, text in lead), (answer, lead)


async def test_without_audio_context_or_after_a_failover_the_context_is_text_only(hearing_engine):
    await run_streams({"a": [0.05, 0.06]}, context_audio_s=0)
    assert [lead for _, _, lead in hearing_engine.leads] == [[], []]
    hearing_engine.leads.clear()
    await run_streams({"a": [0.05, 0.06]}, context=("americans",))
    assert [lead for _, final, lead in hearing_engine.leads if final] == [[], [("alpha5", "alpha5")]]
