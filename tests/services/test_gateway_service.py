"""The gateway on an in-process server, in front of the real VAD, ASR (whisper) and LLM (rules) servicers."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.conftest import JFK_TEXT, SAMPLE_TEXT, chunks
from tests.services.conftest import audio_requests, channel_to, finals, mesh, run_stream, status_of
from tests.services.conftest import stream_events as stream
from tests.services.conftest import streaming_config as config
from voxmesh import metrics as shared_metrics
from voxmesh import text
from voxmesh.v1 import transcription_pb2 as pb
from voxmesh.v1 import transcription_pb2_grpc


async def test_sample_through_the_whole_chain(sample_pcm):
    async with mesh() as (address, _):
        events = await stream(address, [config(partials=True), *audio_requests(sample_pcm)])
    assert text.wer(SAMPLE_TEXT, " ".join(finals(events))) <= 0.1
    for utterance in {e.utterance_id for e in events if e.utterance_id}:  # progress events belong to none
        kinds = [e.WhichOneof("event") for e in events if e.utterance_id == utterance]
        assert kinds[0] == "speech_started" and "speech_ended" in kinds
        assert kinds.index("speech_ended") < kinds.index("final") < kinds.index("processed")
        processed = [
            e.processed for e in events if e.utterance_id == utterance and e.WhichOneof("event") == "processed"
        ]
        assert processed[-1].done and "".join(p.delta for p in processed) == processed[-1].text
        final = next(e for e in events if e.utterance_id == utterance and e.WhichOneof("event") == "final")
        assert final.end_s > final.start_s and final.final.engine_compute_s > 0


async def test_a_final_goes_to_the_client_before_the_post_processor(sample_pcm, monkeypatch):
    from voxmesh.gateway.chain import Chain
    from voxmesh.gateway.hops import LlmHop

    order: list[tuple[int, str]] = []  # (utterance, where the gateway sent its final), in the order it sent them
    run, write = Chain.run, LlmHop.write

    async def spy_run(self, audio):
        async for event in run(self, audio):
            if event.WhichOneof("event") == "final":
                order.append((event.utterance_id, "client"))
            yield event

    async def spy_write(self, stream, request):
        if request.WhichOneof("request") == "transcript":
            order.append((request.transcript.utterance_id, "llm"))
        return await write(self, stream, request)

    monkeypatch.setattr(Chain, "run", spy_run)
    monkeypatch.setattr(LlmHop, "write", spy_write)
    async with mesh() as (address, _):
        events = await stream(address, [config(), *audio_requests(sample_pcm)])
    utterances = sorted({u for u, _ in order})
    assert len(utterances) == len(finals(events)) == 4
    for utterance in utterances:
        assert [where for u, where in order if u == utterance] == ["client", "llm"]


async def test_stereo_44k_is_converted_once_and_transcribed(jfk_path):
    from voxmesh import audio

    samples, rate = audio.read_file(jfk_path)
    async with mesh() as (address, _):
        events = await stream(
            address, [config(rate=rate, channels=2, post=False), *audio_requests(samples.tobytes(), 17640)]
        )
    assert text.wer(JFK_TEXT, " ".join(finals(events))) <= 0.1
    assert not [e for e in events if e.WhichOneof("event") == "processed"], "post-processing was off"


async def test_unary_transcribe_of_a_file(jfk_path):
    async with mesh() as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        reply = await stub.Transcribe(
            pb.TranscribeRequest(content=jfk_path.read_bytes(), post_processing=pb.PostProcessing(enabled=True))
        )
    assert reply.duration_s == pytest.approx(11.0, abs=0.1)
    assert text.wer(JFK_TEXT, reply.text) <= 0.1
    assert all(u.HasField("final") and u.processed.done for u in reply.utterances)


BAD_STREAMS = [
    ("audio first", [pb.StreamingTranscribeRequest(audio=b"\0\0")], "first message"),
    ("second config", [config(), config()], "only in the first message"),
    ("encoding", [config(encoding=pb.AudioFormat.ENCODING_UNSPECIFIED)], "LINEAR16"),
    ("rate too low", [config(rate=4000)], "8000 to 48000"),
    ("rate too high", [config(rate=96000)], "8000 to 48000"),
    ("channels", [config(channels=6)], "1 (mono) or 2 (stereo"),
    ("odd bytes", [config(), pb.StreamingTranscribeRequest(audio=b"\0\0\0")], "multiple of 2 bytes"),
    ("half a stereo frame", [config(channels=2), pb.StreamingTranscribeRequest(audio=b"\0\0")], "multiple of 4 bytes"),
    ("chunk too big", [config(), pb.StreamingTranscribeRequest(audio=bytes(200_000))], "over the limit of 131072"),
    ("language", [config(language="English")], "ISO 639-1"),
    ("language the engine lacks", [config(language="fr")], "transcribes en only"),
    ("unknown encoding number", [config(encoding=7)], "number 7 (unknown)"),
]


async def test_bad_input_gets_invalid_argument_while_a_good_stream_goes_on(sample_pcm, no_crash_logs):
    async with mesh() as (address, _):
        good = asyncio.create_task(stream(address, [config(post=False), *audio_requests(sample_pcm)]))
        for name, requests, words in BAD_STREAMS:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stream(address, requests)
            code, details = status_of(caught)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, name
            assert words in details, (name, details)
        events = await good
    assert text.wer(SAMPLE_TEXT, " ".join(finals(events))) <= 0.1


async def test_an_empty_stream_ends_cleanly_with_no_events():
    async with mesh() as (address, _):
        assert await stream(address, []) == []
        assert await stream(address, [config()]) == []


async def test_more_streams_than_the_limit_are_resource_exhausted(sample_pcm):
    async with mesh(gateway={"max_streams": 1}) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        paused = asyncio.Event()

        async def slow():
            yield config()
            yield pb.StreamingTranscribeRequest(audio=sample_pcm[:3200])
            await paused.wait()

        holding = stub.StreamingTranscribe(slow())
        await asyncio.sleep(0.3)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream(address, [config()])
        code, details = status_of(caught)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 1 concurrent streams" in details
        paused.set()
        assert [e async for e in holding] == []
        again = await stream(address, [config(post=False), *audio_requests(sample_pcm[:64000])])
        assert finals(again), "the slot was freed: the next stream is served"


async def test_a_client_that_hangs_up_mid_utterance_cancels_everything_downstream(sample_pcm, no_crash_logs):
    async with mesh() as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        started = asyncio.Event()

        async def live():
            yield config(partials=True)
            for piece in chunks(sample_pcm, 3200):
                yield pb.StreamingTranscribeRequest(audio=piece)
                await asyncio.sleep(0.02)
            await asyncio.sleep(60)

        call = stub.StreamingTranscribe(live())
        async for event in call:
            if event.WhichOneof("event") == "speech_started":
                started.set()
                break
        call.cancel()
        active = shared_metrics.RPC_ACTIVE
        for _ in range(100):
            if all(active.labels(s)._value.get() == 0 for s in ("gateway", "vad", "asr", "llm")):
                break
            await asyncio.sleep(0.05)
        assert started.is_set()
        assert {s: active.labels(s)._value.get() for s in ("gateway", "vad", "asr", "llm")} == dict.fromkeys(
            ("gateway", "vad", "asr", "llm"), 0
        ), "every downstream call of the chain ended"


async def test_asr_failure_is_reported_per_utterance_not_lost(sample_pcm):
    async with mesh(asr={"queue_size": 1}) as (address, _):
        results = await asyncio.gather(
            *(stream(address, [config(post=False), *audio_requests(sample_pcm, 64000)]) for _ in range(4))
        )
    for events in results:
        ended = {e.utterance_id for e in events if e.WhichOneof("event") == "speech_ended"}
        answered = [e.utterance_id for e in events if e.WhichOneof("event") in ("final", "error")]
        assert sorted(answered) == sorted(ended), "each utterance gets exactly one final or one error"
    errors = [e.error for events in results for e in events if e.WhichOneof("event") == "error"]
    assert errors and {e.code for e in errors} == {"RESOURCE_EXHAUSTED"} and {e.stage for e in errors} == {"asr"}


@pytest.mark.parametrize("partials", [False, True])
async def test_without_partials_an_utterances_audio_goes_to_the_asr_with_its_end(sample_pcm, monkeypatch, partials):
    from voxmesh.gateway.chain import Chain
    from voxmesh.gateway.hops import AsrHop
    from voxmesh.services.asr.redecode_session import RedecodeSession

    received: list[tuple[int, str, int]] = []  # what the ASR's sessions were given, in order
    audio, end = RedecodeSession.audio, RedecodeSession.end

    def spy_audio(self, utterance_id, pcm, pause_s):
        received.append((utterance_id, "audio", len(pcm)))
        return audio(self, utterance_id, pcm, pause_s)

    def spy_end(self, utterance_id):
        received.append((utterance_id, "end", 0))
        return end(self, utterance_id)

    sent: list[tuple[int, str]] = []  # what the gateway did, in order: its writes to the ASR, the VAD's ends
    write, on_vad = AsrHop.write, Chain.on_vad

    async def spy_write(self, stream, request):
        kind = request.WhichOneof("request")
        if kind in ("audio", "end"):
            sent.append((getattr(request, kind).utterance_id, "end with audio" if request.end.audio else kind))
        return await write(self, stream, request)

    async def spy_on_vad(self, response):
        if response.WhichOneof("event") == "end":
            sent.append((response.utterance_id, "vad end"))
        return await on_vad(self, response)

    monkeypatch.setattr(RedecodeSession, "audio", spy_audio)
    monkeypatch.setattr(RedecodeSession, "end", spy_end)
    monkeypatch.setattr(AsrHop, "write", spy_write)
    monkeypatch.setattr(Chain, "on_vad", spy_on_vad)
    async with mesh() as (address, _):
        events = await stream(address, [config(partials=partials), *audio_requests(sample_pcm)])
    assert text.wer(SAMPLE_TEXT, " ".join(finals(events))) <= 0.1
    spans = {e.utterance_id: (e.start_s, e.end_s) for e in events if e.WhichOneof("event") == "final"}
    for utterance in sorted({u for u, _, _ in received}):
        mine = [(kind, size) for u, kind, size in received if u == utterance]
        pieces, total = sum(kind == "audio" for kind, _ in mine), sum(size for _, size in mine)
        assert mine[-1][0] == "end" and total > 0
        start_s, end_s = spans[utterance]  # the VAD's bounds; its last piece of audio came with its end
        assert total == 2 * (round(end_s * 16000) - round(start_s * 16000)), "all of the utterance's audio, once"
        if partials:
            assert pieces > -(-total // 32000), "audio goes on as it is spoken, in 300 ms pieces"
        else:
            assert pieces == -(-total // 32000), "audio goes in messages of 1 s"
            sizes = [size for kind, size in mine if kind == "audio"]
            assert all(size == 32000 for size in sizes[:-1]), "whole seconds, the rest at the end"
            order = [kind for u, kind in sent if u == utterance]
            after_end = len(order) - 1 - order.index("vad end")  # the gateway's writes after the VAD's end
            assert after_end <= 2, "after the VAD's end: at most a whole second, then the end with the rest"
            assert order[-1] == "end with audio" or total % 32000 == 0, "the end carries the last audio"
            if total >= 2 * 32000:
                assert order[0] == "audio", "whole seconds go as soon as they are held, before the end"


async def test_without_partials_the_vad_gets_speech_in_fewer_messages_and_says_the_same_bounds(sample_pcm, monkeypatch):
    from voxmesh.gateway.hops import VadHop

    sizes: list[int] = []  # the audio messages the gateway wrote to the VAD
    write = VadHop.write

    async def spy_write(self, stream, request):
        if request.WhichOneof("request") == "audio":
            sizes.append(len(request.audio))
        return await write(self, stream, request)

    monkeypatch.setattr(VadHop, "write", spy_write)
    runs = {}
    async with mesh() as (address, _):
        for partials in (True, False):
            sizes.clear()
            events = await run_stream(address, sample_pcm, speed=5.0, partials=partials, post_processing=False)
            bounds = [
                (e.type, e.utterance, e.start_s, e.end_s) for e in events if e.type in ("speech_start", "speech_end")
            ]
            runs[partials] = (list(sizes), bounds, [e.text for e in events if e.type == "final"])
    chunks_sent = -(-len(sample_pcm) // 3200)
    with_partials, without = runs[True], runs[False]
    assert sum(with_partials[0]) == sum(without[0]) == len(sample_pcm), "every sample reaches the VAD once"
    assert len(with_partials[0]) >= 0.9 * chunks_sent, "with partials the audio goes as it comes"
    assert len(without[0]) <= 0.7 * chunks_sent, "without, the audio before the VAD's next boundary goes together"
    assert without[1] == with_partials[1] and len(without[1]) == 8, "the same starts and ends, at the same offsets"
    assert text.wer(SAMPLE_TEXT, " ".join(without[2])) <= 0.1
