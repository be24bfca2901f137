from __future__ import annotations

import grpc
import pytest

from tests.conftest import chunks
from tests.services.conftest import channel_to, running, settings, status_of
from voxmesh.services.vad.service import VadService
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


async def test_a_caller_that_holds_its_audio_gets_the_same_spans_without_samples(sample_pcm):
    audio = [vad_pb2.DetectRequest(audio=c) for c in chunks(sample_pcm, 3000)]
    held = vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=16000, caller_holds_audio=True))
    with_samples, spans_only = await detect([CONFIG, *audio]), await detect([held, *audio])

    def spans(responses):
        return [(r.utterance_id, r.WhichOneof("event"), r.start_s, r.end_s, r.settled_through_s) for r in responses]

    assert spans(spans_only) == spans(with_samples)
    pieces = [r for r in spans_only if r.WhichOneof("event") == "audio"]
    assert pieces and all(r.audio.audio == b"" for r in pieces)
    cut = b"".join(sample_pcm[round(r.start_s * 16000) * 2 : round(r.end_s * 16000) * 2] for r in pieces)
    assert cut == b"".join(r.audio.audio for r in with_samples if r.WhichOneof("event") == "audio")


async def test_an_end_that_carries_its_audio_is_the_last_piece_and_the_end_in_one_response(sample_pcm):
    audio = [vad_pb2.DetectRequest(audio=c) for c in chunks(sample_pcm, 3000)]
    held = vad_pb2.DetectConfig(sample_rate_hz=16000, caller_holds_audio=True)
    apart = await detect([vad_pb2.DetectRequest(config=held), *audio])
    held.end_carries_audio = True
    folded = await detect([vad_pb2.DetectRequest(config=held), *audio])

    ends = [r for r in folded if r.WhichOneof("event") == "end"]
    assert len(ends) == 4 and len(folded) == len(apart) - len(ends)  # one response fewer per utterance
    assert all(r.start_s < r.end_s for r in ends)  # each brought its utterance's last piece

    def audio_spans(responses):  # (utterance, start, end) of all the audio, merged where pieces touch
        merged: list[list] = []
        for r in responses:
            if r.WhichOneof("event") in ("audio", "end") and r.start_s < r.end_s:
                if merged and merged[-1][0] == r.utterance_id and merged[-1][2] == r.start_s:
                    merged[-1][2] = r.end_s
                else:
                    merged.append([r.utterance_id, r.start_s, r.end_s])
        return merged

    assert audio_spans(folded) == audio_spans(apart)
    assert [(r.utterance_id, r.end_s, r.end.reason) for r in ends] == [
        (r.utterance_id, r.end_s, r.end.reason) for r in apart if r.WhichOneof("event") == "end"
    ]


@pytest.mark.parametrize(
    ("requests", "words"),
    [
        ([vad_pb2.DetectRequest(audio=b"\0\0")], "first message"),
        ([vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=8000))], "16000"),
        ([CONFIG, CONFIG], "only in the first message"),
        (
            [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=16000, end_carries_audio=True))],
            "only with caller_holds_audio",
        ),
        ([CONFIG, vad_pb2.DetectRequest(audio=b"\0\0\0")], "whole number of samples"),
        ([vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=16000, offset_s=-1))], "positive offset"),
        (
            [vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=16000, offset_s=1, warmup_s=2))],
            "no more than offset_s",
        ),
        (
            [
                vad_pb2.DetectRequest(
                    config=vad_pb2.DetectConfig(
                        sample_rate_hz=16000, offset_s=1, open_utterance=vad_pb2.OpenUtterance(start_s=2)
                    )
                )
            ],
            "at or before",
        ),
    ],
)
async def test_bad_input_is_invalid_argument(requests, words):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await detect(requests)
    code, details = status_of(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details


async def test_empty_stream_ends_cleanly():
    assert await detect([]) == []
    assert await detect([CONFIG]) == []


async def test_silence_is_settled_by_progress_responses_about_once_a_second():
    responses = await detect([CONFIG, *(vad_pb2.DetectRequest(audio=c) for c in chunks(bytes(16000 * 2 * 5), 3200))])
    progress = [r for r in responses if r.WhichOneof("event") == "progress"]
    assert 4 <= len(progress) <= 5
    settled = [r.settled_through_s for r in progress]
    assert settled == sorted(settled) and settled[-1] > 4.0
    assert all(r.settled_through_s <= r.input_through_s for r in progress)


async def test_a_stream_that_continues_another_keeps_its_offsets_and_ids(sample_pcm):
    whole = await detect([CONFIG, *(vad_pb2.DetectRequest(audio=c) for c in chunks(sample_pcm, 3200))])
    ends = [r for r in whole if r.WhichOneof("event") == "end"]
    cut = ends[1]  # continue after utterance 2, as a failover would from its settled offset
    config = vad_pb2.DetectRequest(
        config=vad_pb2.DetectConfig(
            sample_rate_hz=16000,
            offset_s=cut.settled_through_s,
            next_utterance_id=3,
            warmup_s=1.0,
        )
    )
    rest = sample_pcm[round((cut.settled_through_s - 1.0) * 16000) * 2 :]
    again = await detect([config, *(vad_pb2.DetectRequest(audio=c) for c in chunks(rest, 3200))])

    def said(responses):
        return [
            (r.utterance_id, r.WhichOneof("event"), round(r.start_s, 2), round(r.end_s, 2))
            for r in responses
            if r.WhichOneof("event") in ("start", "end")
        ]

    assert said(again) == said(whole)[4:], "utterances 3 and 4 again, at the same offsets"


async def test_a_draining_vad_tells_each_stream_it_is_going_away(sample_pcm):
    service = VadService(settings(VadSettings))
    async with running(service, service.servicer.settings) as address, channel_to(address) as channel:
        call = vad_pb2_grpc.VoiceActivityStub(channel).Detect()
        await call.write(CONFIG)
        await call.write(vad_pb2.DetectRequest(audio=sample_pcm[:32000]))
        service.drain()
        await call.write(vad_pb2.DetectRequest(audio=sample_pcm[32000:35200]))
        await call.done_writing()
        responses = [r async for r in call]
    going = [r for r in responses if r.WhichOneof("event") == "going_away"]
    assert len(going) == 1 and going[0].settled_through_s > 0
