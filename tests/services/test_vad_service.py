from __future__ import annotations

import grpc
import pytest

from services.vad.service import VadService
from tests.conftest import chunks
from tests.services.conftest import channel_to, running, settings, status_of
from voxmesh.settings import VadSettings
from voxmesh.v1 import common_pb2, vad_pb2, vad_pb2_grpc

CONFIG = vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=16000))


async def detect(requests):
    service = VadService(settings(VadSettings))
    async with running(service, service.servicer.settings) as address, channel_to(address) as channel:
        return [r async for r in vad_pb2_grpc.VoiceActivityStub(channel).Detect(iter(requests))]


async def test_sample_gives_start_audio_end_per_sentence(sample_pcm):
    responses = await detect([CONFIG, *(vad_pb2.DetectRequest(audio=c) for c in chunks(sample_pcm, 3000))])
    kinds = [(r.utterance_id, r.WhichOneof("event")) for r in responses]
    starts = [u for u, k in kinds if k == "start"]
    ends = [r for r in responses if r.WhichOneof("event") == "end"]
    assert starts == [1, 2, 3, 4]
    assert [e.end.reason for e in ends] == [common_pb2.SPEECH_END_REASON_SILENCE] * 4
    for utterance in starts:
        mine = [r for r in responses if r.utterance_id == utterance]
        assert mine[0].WhichOneof("event") == "start" and mine[-1].WhichOneof("event") == "end"
        audio = [r for r in mine if r.WhichOneof("event") == "audio"]
        assert audio[0].start_s == mine[0].start_s
        assert sum(len(r.audio.audio) for r in audio) == round((mine[-1].end_s - mine[0].start_s) * 16000) * 2
    through = [r.input_through_s for r in responses]
    assert through == sorted(through)


@pytest.mark.parametrize(("requests", "words"), [
    ([vad_pb2.DetectRequest(audio=b"\0\0")], "first message"),
    ([vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=8000))], "16000"),
    ([CONFIG, CONFIG], "only in the first message"),
    ([CONFIG, vad_pb2.DetectRequest(audio=b"\0\0\0")], "whole number of samples"),
])
async def test_bad_input_is_invalid_argument(requests, words):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await detect(requests)
    code, details = status_of(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details


async def test_empty_stream_ends_cleanly():
    assert await detect([]) == []
    assert await detect([CONFIG]) == []
