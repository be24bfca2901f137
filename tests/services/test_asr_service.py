from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.conftest import JFK_TEXT, chunks
from tests.services.conftest import channel_to, running, settings, status_of
from tests.services.conftest import recognize_config as config
from tests.services.conftest import utterance_audio as audio
from tests.services.conftest import utterance_end as end
from voxmesh import errors, text
from voxmesh.services.asr.engines.whisper import WhisperEngine
from voxmesh.services.asr.service import AsrService
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2, asr_pb2_grpc


async def recognize(requests, paced: float = 0.0, **overrides):
    service = AsrService(settings(AsrSettings, **overrides))

    async def send():
        for request in requests:
            yield request
            if paced:
                await asyncio.sleep(paced)

    async with running(service, service.settings) as address, channel_to(address) as channel:
        return [r async for r in asr_pb2_grpc.RecognizerStub(channel).Recognize(send())]


async def test_one_utterance_of_real_speech_gives_one_final(jfk_pcm):
    responses = await recognize([config(), audio(1, jfk_pcm), end(1)])
    assert [r.WhichOneof("result") for r in responses] == ["final"]
    final = responses[0].final
    assert text.wer(JFK_TEXT, final.text) <= 0.1
    assert final.engine == "whisper:tiny.en" and final.language == "en"
    assert 0 < final.engine_compute_s < 30
    assert responses[0].audio_s == pytest.approx(len(jfk_pcm) / 32000)


async def test_an_end_that_carries_the_last_audio_is_heard_with_the_rest(jfk_pcm):
    half = len(jfk_pcm) // 4 * 2
    last = asr_pb2.RecognizeRequest(end=asr_pb2.UtteranceEnd(utterance_id=1, audio=jfk_pcm[half:]))
    responses = await recognize([config(), audio(1, jfk_pcm[:half]), last])
    assert [r.WhichOneof("result") for r in responses] == ["final"]
    assert responses[0].audio_s == pytest.approx(len(jfk_pcm) / 32000), "the end's audio is the utterance's"
    assert text.wer(JFK_TEXT, responses[0].final.text) <= 0.1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recognize([config(), asr_pb2.RecognizeRequest(end=asr_pb2.UtteranceEnd(utterance_id=1, audio=b"\0"))])
    assert status_of(caught)[0] == grpc.StatusCode.INVALID_ARGUMENT and "whole number" in status_of(caught)[1]


async def test_partials_while_the_utterance_grows_then_the_final(jfk_pcm):
    requests = [config(partials=True), *(audio(1, c) for c in chunks(jfk_pcm[: 16000 * 2 * 6], 16000)), end(1)]
    responses = await recognize(requests, paced=0.4, partial_interval_s=1.0)  # 0.5 s chunks, near real time
    kinds = [r.WhichOneof("result") for r in responses]
    assert kinds[-1] == "final" and kinds.count("final") == 1
    partials = [r for r in responses if r.WhichOneof("result") == "partial"]
    assert partials, "partials arrive before the final"
    assert all(0.0 <= p.partial.stability <= 1.0 for p in partials)
    assert [p.audio_s for p in partials] == sorted(p.audio_s for p in partials)


async def test_no_partial_starts_while_the_speaker_pauses_so_the_final_never_waits_behind_one(jfk_pcm):
    def paused(utterance: int, pcm: bytes, pause_s: float) -> asr_pb2.RecognizeRequest:
        request = audio(utterance, pcm)
        request.audio.pause_s = pause_s
        return request

    pieces = chunks(jfk_pcm[: 16000 * 2 * 6], 16000)  # 0.5 s chunks
    in_pauses = [config(partials=True), *(paused(1, c, 0.2) for c in pieces), end(1)]
    responses = await recognize(in_pauses, paced=0.4, partial_interval_s=1.0)
    assert [r.WhichOneof("result") for r in responses] == ["final"], "no partial in a pause"

    speaking = [config(partials=True), *(paused(1, c, 0.0) for c in pieces[:-1]), paused(1, pieces[-1], 0.3), end(1)]
    responses = await recognize(speaking, paced=0.4, partial_interval_s=1.0)
    assert "partial" in [r.WhichOneof("result") for r in responses], "partials while speech goes on"
    assert responses[-1].WhichOneof("result") == "final"


async def test_a_full_queue_answers_resource_exhausted_for_that_utterance(jfk_pcm):
    pcm = jfk_pcm[: 16000 * 2 * 3]
    requests = [config()]
    for utterance in range(1, 7):
        requests += [audio(utterance, pcm), end(utterance)]
    # without context, one stream's finals are queued together (with it, each waits for the one before)
    responses = await recognize(requests, queue_size=1, context_tokens=0)
    by_utterance = {r.utterance_id: r for r in responses}
    assert sorted(by_utterance) == list(range(1, 7)), "every utterance is answered, none lost"
    assert len(responses) == 6
    exhausted = [r for r in responses if r.WhichOneof("result") == "error"]
    assert exhausted and all(r.error.code == "RESOURCE_EXHAUSTED" for r in exhausted)
    assert "queue is full" in exhausted[0].error.message
    assert any(r.WhichOneof("result") == "final" for r in responses)


async def test_one_utterance_over_the_streams_limit_is_refused_and_the_stream_goes_on(jfk_pcm):
    pcm = jfk_pcm[: 16000 * 2 * 2]
    # utterances 1 and 2 stay open while 3 arrives: one over the limit of 2 a live stream may have in flight
    requests = [config(), audio(1, pcm), audio(2, pcm), audio(3, pcm), end(3), end(1), end(2)]
    responses = await recognize(requests, max_stream_utterances=2)
    results = {r.utterance_id: r.WhichOneof("result") for r in responses}
    assert results == {1: "final", 2: "final", 3: "error"}, "the refusal is answered; the open utterances go on"
    (refused,) = [r for r in responses if r.WhichOneof("result") == "error"]
    assert refused.error.code == "RESOURCE_EXHAUSTED" and "VOXMESH_ASR_MAX_STREAM_UTTERANCES" in refused.error.message


async def test_an_utterance_never_ended_is_reported_not_lost(jfk_pcm):
    responses = await recognize([config(), audio(1, jfk_pcm[:32000])])
    assert [(r.utterance_id, r.WhichOneof("result")) for r in responses] == [(1, "error")]
    assert "closed before utterance 1 was ended" in responses[0].error.message


async def test_an_utterance_over_the_length_limit_fails_alone(jfk_pcm):
    requests = [config(), audio(1, jfk_pcm), end(1), audio(2, jfk_pcm[:32000]), end(2)]
    responses = await recognize(requests, max_utterance_s=5)
    results = {r.utterance_id: r for r in responses}
    assert results[1].error.code == "INVALID_ARGUMENT" and "longer than 5 s" in results[1].error.message
    assert results[2].WhichOneof("result") == "final"


@pytest.mark.parametrize(
    ("requests", "words"),
    [
        ([config(language="fr")], "transcribes en only"),
        ([asr_pb2.RecognizeRequest(config=asr_pb2.RecognizeConfig(sample_rate_hz=44100))], "16000"),
        ([audio(1, b"\0\0")], "first message"),
        ([config(), audio(1, b"\0")], "whole number of samples"),
        ([config(), end(1), audio(1, b"\0\0")], "after its end"),
    ],
)
async def test_bad_input_is_invalid_argument(requests, words):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recognize(requests)
    code, details = status_of(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details


def test_a_missing_model_path_fails_start_up_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(errors.FailedPrecondition, match=str(missing)):
        WhisperEngine(AsrSettings(model=str(missing)))


@pytest.mark.parametrize(("partials", "wanted"), [(False, "at-end"), (True, "as-spoken")])
async def test_the_asr_says_when_it_wants_an_utterances_audio(partials, wanted):
    service = AsrService(settings(AsrSettings))
    async with running(service, service.settings) as address, channel_to(address) as channel:
        call = asr_pb2_grpc.RecognizerStub(channel).Recognize()
        await call.write(config(partials=partials))
        said = tuple(await call.initial_metadata())
        assert ("voxmesh-audio-wanted", wanted) in said and ("voxmesh-end-takes-audio", "yes") in said
        await call.done_writing()
        assert [r async for r in call] == []
