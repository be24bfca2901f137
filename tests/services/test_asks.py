"""What a stream may ask of the mesh: word timings (with confidences) and phrase hints, through the real
services in this process with the real whisper engine, on real speech (jfk) and on synthetic speech
(samples/names.flac: espeak-ng naming a person tiny.en does not know)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.conftest import internal_pcm
from tests.services.conftest import (
    audio_requests,
    channel_to,
    mesh,
    run_stream,
    running,
    settings,
    status_of,
    stream_events,
)
from tests.services.conftest import recognize_config as config
from voxmesh import text
from voxmesh.client import FLUSH, Client, StreamOptions
from voxmesh.services.asr.rounds import LiveUtterance, RoundScheduler
from voxmesh.services.asr.service import AsrService
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2_grpc, common_pb2
from voxmesh.v1 import transcription_pb2 as pb

NAMES = Path(__file__).resolve().parents[2] / "samples" / "names.flac"
NO_LLM = {"post_processing": False}


async def test_finals_carry_their_words_timed_in_the_stream(jfk_pcm):
    silence = bytes(2 * 16000)  # the second utterance starts 1 s into the stream: offsets must say so
    async with mesh() as (address, _):
        events = await run_stream(address, silence + jfk_pcm, speed=20, word_timings=True, **NO_LLM)
        plain = await run_stream(address, silence + jfk_pcm, speed=20, **NO_LLM)
    finals = [e for e in events if e.type == "final"]
    assert finals and all(f.words for f in finals)
    for final in finals:
        assert text.words(" ".join(w.text for w in final.words)) == text.words(final.text)
        starts = [w.start_s for w in final.words]
        assert starts == sorted(starts) and all(w.start_s <= w.end_s for w in final.words)
        assert final.start_s - 0.3 <= starts[0] and final.words[-1].end_s <= final.end_s + 0.3, "stream offsets"
        assert all(0 < w.confidence <= 1 for w in final.words if w.confidence is not None)
        assert final.confidence is not None and 0 < final.confidence <= 1
    assert finals[0].words[0].start_s >= 0.7, "the leading second of silence is in the offsets"
    assert [f for f in plain if f.type == "final"] and not any(f.words for f in plain if f.type == "final")


async def test_a_phrase_hint_gets_a_name_right_that_the_engine_gets_wrong_without_it():
    pcm = internal_pcm(NAMES)
    async with mesh() as (address, _):
        without = await run_stream(address, pcm, speed=20, **NO_LLM)
        hinted = await run_stream(address, pcm, speed=20, phrases=(("Siobhan Quaid", 5.0),), **NO_LLM)
    said = " ".join(e.text for e in without if e.type == "final")
    assert "Siobhan Quaid" not in said, f"the name must be hard for the test to mean anything: {said!r}"
    assert "Siobhan Quaid" in " ".join(e.text for e in hinted if e.type == "final")


async def test_a_prompt_steers_the_engine_as_a_hint_does():
    pcm = internal_pcm(NAMES)
    async with mesh() as (address, _):
        prompted = await run_stream(address, pcm, speed=20, prompt="A note from Siobhan Quaid's team.", **NO_LLM)
    assert "Siobhan Quaid" in " ".join(e.text for e in prompted if e.type == "final")


@pytest.mark.parametrize(
    ("phrases", "prompt", "expected"),
    [
        ([common_pb2.PhraseHint(phrase="Siobhan", boost=25)], "", "boost 25 of phrase hint 'Siobhan'"),
        ([common_pb2.PhraseHint(phrase="Siobhan", boost=-1)], "", "give 0 to 20"),
        ([common_pb2.PhraseHint(phrase=" ")], "", "a phrase has 1 to 100 characters"),
        ([common_pb2.PhraseHint(phrase="x")] * 101, "", "101 phrase hints"),
        ([], "x" * 1001, "the prompt has 1001 characters"),
    ],
)
async def test_bad_hints_are_refused_saying_what_is_accepted(phrases, prompt, expected):
    request = pb.StreamingTranscribeRequest(
        config=pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=16000, channels=1),
            phrases=phrases,
            prompt=prompt,
        )
    )
    async with mesh() as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream_events(address, [request, *audio_requests(bytes(3200))])
    code, details = status_of(refused)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in details


@pytest.mark.parametrize(
    ("engine", "ask", "expected"),
    [
        ("voxtral", {"word_timings": True}, "gives no time for its words"),
        ("voxtral-realtime", {"phrases": [common_pb2.PhraseHint(phrase="Siobhan")]}, "takes neither"),
        ("voxtral-realtime", {"prompt": "a call"}, "takes neither"),
    ],
)
async def test_an_engine_refuses_an_ask_it_cannot_serve(engine, ask, expected, tiny_voxtral, tiny_voxtral_realtime):
    model = tiny_voxtral if engine == "voxtral" else tiny_voxtral_realtime
    service = AsrService(settings(AsrSettings, engine=engine, model=str(model)))
    request = config()
    request.config.MergeFrom(type(request.config)(**ask))
    async with running(service, service.settings) as address, channel_to(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in asr_pb2_grpc.RecognizerStub(channel).Recognize(iter([request])):
                pass
    code, details = status_of(refused)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in details


def test_realtime_words_are_timed_by_the_steps_of_their_tokens_less_the_delay():
    class Engine:
        delay_tokens = 6

        class capabilities:
            step_samples = 1280  # 80 ms

    scheduler = RoundScheduler(Engine(), max_streams=1, batch_wait_s=0)
    utterance = LiveUtterance(done=None)  # type: ignore[arg-type]  # no event loop needed here
    utterance.said, utterance.said_steps = " ab cd", [10, 10, 11, 20, 20, 25]
    words = scheduler.words(utterance, audio_s=1.5)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [("ab", 0.32, 0.48), ("cd", 1.12, 1.5)]


async def test_a_bcp47_tag_reaches_the_engine_as_its_language_and_comes_back_on_finals(jfk_pcm):
    async with mesh() as (address, _):
        events = await run_stream(address, jfk_pcm, speed=20, language="en-us", **NO_LLM)
    finals = [e for e in events if e.type == "final"]
    assert finals and all(f.language == "en" and f.language_tag == "en-US" for f in finals)


async def test_without_a_tag_the_finals_tag_is_the_language_detected(jfk_pcm):
    async with mesh() as (address, _):
        events = await run_stream(address, jfk_pcm, speed=20, **NO_LLM)
    assert all(f.language_tag == f.language == "en" for f in events if f.type == "final")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("pt-BR", "language 'pt' is not available: the engine whisper:tiny.en transcribes en only"),
        ("english!", "neither a BCP-47 tag such as 'en-US' nor an ISO 639-1 code"),
        ("e", "neither a BCP-47 tag"),
    ],
)
async def test_a_tag_the_engine_lacks_or_that_is_no_tag_is_refused(language, expected):
    async with mesh() as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await run_stream(address, bytes(3200), language=language, resume=False, **NO_LLM)
    code, details = status_of(refused)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in details


async def test_a_streams_end_silence_changes_where_its_utterances_end(sample_pcm):
    """samples/welcome.flac: four sentences 1.3 s apart. The service's 500 ms ends each; a stream asking
    for 2000 ms hears them as one."""
    async with mesh() as (address, _):
        default = await run_stream(address, sample_pcm, speed=20, **NO_LLM)
        long = await run_stream(address, sample_pcm, speed=20, end_silence_ms=2000, **NO_LLM)
    assert len([e for e in default if e.type == "final"]) == 4
    assert len([e for e in long if e.type == "final"]) == 1


@pytest.mark.parametrize(
    ("endpointing", "expected"),
    [
        ({"end_silence_ms": 50}, "endpointing.end_silence_ms 50 is not accepted: give 100 to 5000 ms"),
        ({"start_ms": 5000}, "endpointing.start_ms 5000 is not accepted: give 30 to 1000 ms"),
        ({"max_utterance_s": 60}, "endpointing.max_utterance_s 60 is not accepted: give 1 to 30 s"),
    ],
)
async def test_endpointing_outside_the_vads_bounds_is_refused(endpointing, expected):
    async with mesh() as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await run_stream(address, bytes(3200), resume=False, **endpointing, **NO_LLM)
    code, details = status_of(refused)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and expected in details


async def test_a_flush_ends_the_utterance_at_once_and_the_stream_goes_on(jfk_pcm):
    cut = 16000 * 2 * 3  # 3 s into jfk: mid-sentence ("... ask not what your country")

    async def audio():
        for piece in (jfk_pcm[:cut], FLUSH, jfk_pcm[cut:]):
            yield piece

    async with mesh() as (address, _), Client(address) as client:
        events = [e async for e in client.stream(audio(), options=StreamOptions(resume=False, **NO_LLM))]
    ends = [e for e in events if e.type == "speech_end"]
    assert ends[0].reason == "flush" and ends[0].end_s == pytest.approx(3.0, abs=0.01)
    assert len([e for e in events if e.type == "final"]) >= 2, "speech after the flush is transcribed too"
    said = " ".join(e.text for e in events if e.type == "final")
    assert "country" in said and not [e for e in events if e.type == "error"]
