"""The whisper engine's use of a stream's context: an utterance heard after its lead, the answers that are
decoded again (a lead said again, an echo of the context, a sparse answer), a list that is not a loop,
finals of several streams decoded together."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ALSA, real
from tests.services.conftest import settings
from voxmesh import text
from voxmesh.audio import pcm_to_float
from voxmesh.services.asr.engines import AsrRequest, AsrResult
from voxmesh.services.asr.engines.whisper import LEAD_UNDER_S, WhisperEngine, _Rest
from voxmesh.services.asr.engines.whisper_answers import repetitive
from voxmesh.services.asr.engines.whisper_decode import decoded_once
from voxmesh.settings import AsrSettings


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
    heard = decoded_once(whisper.model, audio, "en", whisper.beam_size, None, (0.0,))[0].text
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


@pytest.mark.parametrize(
    ("alone", "taken"),
    [
        ("Front. Front.", "Front. Right."),  # alone, no "front left" first: Whisper said it again after the lead
        ("Front, left. Front, right.", "Front, left. Front, right."),  # the speaker said it again: heard alone too
    ],
)
def test_an_answer_after_the_lead_that_says_its_last_words_first_keeps_its_rest_unless_heard_alone(alone, taken):
    # alsa_channels in white noise at 10 dB (fidelity.py --seed 3): after a lead ending "Front. Left.", the
    # utterance "front right" came back as "Front. Left. Front. Right."; decoded alone, as "Front. Front."
    whisper = WhisperEngine(settings(AsrSettings))
    audio = np.zeros(16000, np.float32)
    request = AsrRequest(audio, "en", final=True, lead=((audio, "Front. Center. Front. Left."),))
    plan = whisper._plan(request)
    decodes = []
    whisper._alone = lambda *args: decodes.append(args) or AsrResult(alone, "en", 0.8)  # type: ignore[method-assign]
    rest = _Rest(["front", "left"], AsrResult("Front. Right.", "en", 0.5))
    assert whisper._settled(request, plan, rest).text == taken
    assert whisper._settled(request, plan, None).text == alone
    assert len(decodes) == 2, "the decode alone is the witness, as it is the fallback"


def test_an_answer_after_the_lead_that_starts_with_its_last_words_is_settled_by_the_real_decode_alone(jfk_halves):
    # The real engine on both sides of `_settled`: the lead's text ends in "what", the word the utterance's
    # own words start with once Whisper, prompted with "ask not", skips those. The answer after the lead says
    # "What" first and goes on, a `_Rest`; the decode alone starts with "What" too, so the speaker said it and
    # the answer alone is taken, whole.
    whisper = WhisperEngine(settings(AsrSettings))
    first, second = jfk_halves
    request = AsrRequest(second, "en", final=True, lead=((first, "And so my fellow Americans ask not what"),))
    plan = whisper._plan(request)
    assert plan.lead is not None
    answer = whisper._together([(request, plan)])[0]
    assert isinstance(answer, _Rest), answer
    assert answer.said_first == ["what"]
    assert text.words(answer.result.text)[:2] == ["your", "country"], answer.result.text
    result = whisper._settled(request, plan, answer)
    assert text.words(result.text)[:3] == ["what", "your", "country"], result.text
