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
from voxmesh.services.asr.engines.whisper import LEAD_UNDER_S, WhisperEngine
from voxmesh.services.asr.engines.whisper_answers import repetitive
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


@pytest.fixture
def jfk_halves(jfk_pcm) -> tuple[np.ndarray, np.ndarray]:
    audio = pcm_to_float(jfk_pcm)
    cut = int(2.2 * 16000)  # between "Americans" and "ask"
    return audio[:cut], audio[cut : int(8.1 * 16000)]  # "... for you", as the VAD ends it


def test_whisper_decodes_an_utterance_after_its_lead_and_answers_only_its_own_words(jfk_halves):
    whisper = WhisperEngine(settings(AsrSettings))
    assert whisper.capabilities.context_audio
    first, second = jfk_halves
    lead = ((first, "And so my fellow Americans,"),)
    result = whisper.transcribe([AsrRequest(second, "en", final=True, lead=lead)])[0]
    words = text.words(result.text)
    assert words[:3] == ["ask", "not", "what"], result.text
    assert "americans" not in words, "the lead's text is not answered again"
    assert not WhisperEngine(settings(AsrSettings, context_audio_s=0)).capabilities.context_audio


def test_whisper_hears_as_much_lead_as_fits_in_context_audio_s_and_the_window(jfk_halves):
    first, second = jfk_halves  # 2.2 s and 5.9 s
    lead = ((first, "And so my fellow Americans,"),)
    gap = 16000 // 5  # 0.2 s of silence between the lead and the utterance
    for context_audio_s, heard in ((3, True), (2, False), (29, True)):
        whisper = WhisperEngine(settings(AsrSettings, context_audio_s=context_audio_s))
        plan = whisper._plan(AsrRequest(second, "en", True, lead=lead))
        prompt = whisper.model.hf_tokenizer.decode(plan.prompt)
        assert prompt.strip().endswith("Americans."), "the lead's text ends the prompt, heard or not"
        assert (plan.lead is not None) == heard, context_audio_s
        assert len(plan.audio) == (len(first) + gap + len(second) if heard else len(second))
        assert plan.start == (len(first) + gap if heard else 0), "the decoder starts where the utterance does"
    # three lead utterances of 7.9 s: two fit with the utterance in one 30 s window
    pieces = tuple((np.resize(first, int(7.9 * 16000)), f"piece {n}.") for n in range(3))
    plan = whisper._plan(AsrRequest(second, "en", True, lead=pieces))
    assert plan.lead == "piece 1. piece 2." and len(plan.audio) == 2 * (int(7.9 * 16000) + gap) + len(second)
    long = np.resize(second, int(LEAD_UNDER_S * 16000))
    assert whisper._plan(AsrRequest(long, "en", True, lead=lead)).lead is None, "a long utterance is heard alone"


def test_whisper_decodes_an_utterance_alone_when_its_answer_after_the_lead_says_the_lead_again(jfk_halves, monkeypatch):
    whisper = WhisperEngine(settings(AsrSettings))
    _, second = jfk_halves
    alone = []
    decode = whisper._decode
    monkeypatch.setattr(whisper, "_decode", lambda audio, *rest: alone.append(len(audio)) or decode(audio, *rest))
    # the same speech as its lead, with the lead's text: the answer starts with the lead's words
    lead = ((second, "And so my fellow Americans, ask not what your country can do for you."),)
    result = whisper.transcribe([AsrRequest(second, "en", final=True, lead=lead)])[0]
    # decoded again without the lead's audio; its answer says the lead's text again (as the speaker did), so
    # once more without the context
    assert alone == [len(second)] * 2
    assert text.words(result.text)[:3] == ["ask", "not", "what"], result.text


@pytest.mark.parametrize(
    ("context", "echo", "seconds"),
    [
        (
            "Seven small boats waited. Our train left twenty minutes late, because of a signal out here in the middle.",
            "The train left twenty minutes late, because of a signal out here in the middle.",
            4.0,
        ),
        (
            "A cold wind blew across the empty market square.",
            "A cold wind blew across the park. A cold wind blew across the park.",
            1.15,
        ),
        (  # a copy of a sentence older than the last, after the answer's own first words
            "At all wind blew across the end the market's way up. She didn't look at your nail shade.",
            "The end the nearest wind back in the front blew across the end the market's way up.",
            3.2,
        ),
    ],
)
def test_a_final_that_echoes_its_context_is_decoded_again_without_it(context, echo, seconds):
    """In noise Whisper may say its prompt again instead of the audio (seen through the mesh at 10 dB): the
    utterance is decoded again with no context, and that answer is taken."""
    whisper = WhisperEngine(settings(AsrSettings))
    prompts = []

    def decode(audio, language, beam_size, prompt) -> AsrResult:
        prompts.append(prompt)
        return AsrResult(echo if prompt else "She painted the kitchen.", "en", confidence=0.5)

    whisper._decode = decode  # type: ignore[method-assign]
    audio = np.zeros(int(seconds * 16000), np.float32)
    result = whisper.transcribe([AsrRequest(audio, "en", final=True, context=context)])[0]
    assert result.text == "She painted the kitchen."
    assert prompts[0] is not None and prompts[1:] == [None], "decoded once with the context, then without"
    whisper.transcribe([AsrRequest(audio, "en", final=False, context=context)])
    assert len(prompts) == 3, "a partial is not checked: it is decoded once"


def test_a_list_read_aloud_is_answered_as_heard_not_sampled_as_a_loop():
    """A list repeats itself as a loop does (alsa_channels' text compresses 2.7 times, Whisper's loop bound is
    2.4), at a speaker's pace: its answer at temperature 0 is kept, not sampled again at random."""
    whisper = WhisperEngine(settings(AsrSettings))
    first = pcm_to_float(real(ALSA))[: 10 * 16000]  # "front, center, front, left, front, right, rear, ..."
    audio = np.concatenate([first, np.zeros(8000, np.float32), first])
    heard = whisper._decode_at(audio, "en", whisper.beam_size, None, (0.0,))[0].text
    assert repetitive(heard) and len(text.words(heard)) >= 20, heard
    answers = {whisper.transcribe([AsrRequest(audio, "en", final=True)])[0].text for _ in range(3)}
    assert answers == {heard}


def test_finals_of_several_streams_decoded_together_are_each_their_own(jfk_halves):
    """One CTranslate2 call for a batch: each answer is its request's words, a lead's text stays in its own
    request's answer, and the answers match decoding one by one."""
    whisper = WhisperEngine(settings(AsrSettings, context_audio_s=12))
    assert whisper.capabilities.max_batch_size > 1
    first, second = jfk_halves
    batch = [
        AsrRequest(second, "en", final=True, lead=((first, "And so my fellow Americans,"),)),
        AsrRequest(first, "en", final=True),
        AsrRequest(second, "en", final=True),
    ]
    together = whisper.transcribe(batch)
    alone = [whisper.transcribe([request])[0] for request in batch]
    starts = [text.words(r.text)[:2] for r in together]
    assert starts == [["ask", "not"], ["and", "so"], ["ask", "not"]], together
    assert "americans" not in text.words(together[0].text), "the lead's words are not answered again"
    for pair in zip(together, alone, strict=True):
        assert text.wer(pair[1].text, pair[0].text) <= 0.1, pair


@pytest.mark.parametrize(("seconds", "decodes"), [(3.0, 1), (4.5, 2)])
def test_only_a_final_long_enough_for_its_word_rate_to_tell_is_decoded_again_when_sparse(seconds, decodes):
    # every decode answers one word: sparse, but under 4 s that says nothing (a slow list is 2 words in 2.3 s)
    whisper = WhisperEngine(settings(AsrSettings))
    calls = []

    def decode(*args, **kwargs) -> AsrResult:
        calls.append(args)
        return AsrResult("right", "en", confidence=0.8)

    whisper._decode = decode  # type: ignore[method-assign]
    audio = np.zeros(int(seconds * 16000), np.float32)
    whisper.transcribe([AsrRequest(audio, "en", final=True, context="rear, left, rear, right")])
    assert len(calls) == decodes
