"""The mesh under overload and abuse: recorded audio waits instead of being shed, streams take turns,
live streams are admitted by capacity, dead peers are found, and no message leaks internals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import SAMPLE, chunks
from tests.services.conftest import audio_requests, channel_to, mesh, status_of
from tests.services.conftest import streaming_config as config
from voxmesh import metrics as shared_metrics
from voxmesh.client import Client, StreamOptions
from voxmesh.gateway import admission
from voxmesh.services.asr.engines import AsrResult, EngineCapabilities
from voxmesh.v1 import transcription_pb2 as pb
from voxmesh.v1 import transcription_pb2_grpc


class FixedCostEngine:
    """An ASR engine that takes `cost_s` per request and answers with the request's length."""

    name = "fixed-cost"
    capabilities = EngineCapabilities(streaming=False, max_batch_size=1, languages=None)

    def __init__(self, cost_s: float):
        self.cost_s = cost_s

    def warmup(self):
        pass

    def transcribe(self, batch):
        time.sleep(self.cost_s)
        return [AsrResult(f"{len(r.audio) / 16000:.1f}s", "en") for r in batch]

    def close(self):
        pass


def fixed_cost(monkeypatch, cost_s: float) -> None:
    monkeypatch.setattr("voxmesh.services.asr.service.load_engine", lambda _settings: FixedCostEngine(cost_s))


async def events_of(address, pcm, **options):
    async with Client(address) as client:
        return [e async for e in client.stream(iter(chunks(pcm, 3200)), options=StreamOptions(**options))]


async def test_recorded_audio_waits_for_the_engine_where_live_audio_is_shed(monkeypatch, sample_pcm):
    fixed_cost(monkeypatch, 0.3)
    four_times = sample_pcm * 4  # 16 utterances sent at once, far faster than the engine takes them
    limits = {"queue_size": 1, "max_stream_utterances": 2}
    async with mesh(asr=limits, gateway={"live_burst_s": 1000}) as (address, _):
        recorded = await events_of(address, four_times, recorded=True, post_processing=False)
        live = await events_of(address, four_times, post_processing=False)
    assert [e.utterance for e in recorded if e.type == "final"] == list(range(1, 17))
    assert not [e for e in recorded if e.type == "error"], "nothing recorded was shed"
    shed = [e for e in live if e.type == "error"]
    assert shed and {e.code for e in shed} == {"RESOURCE_EXHAUSTED"}, "live audio that outruns the engine is shed"


async def test_a_flooding_stream_beside_a_live_one_delays_only_itself(monkeypatch, sample_pcm):
    fixed_cost(monkeypatch, 0.2)
    async with mesh(asr={"max_stream_utterances": 4}) as (address, _):

        async def live_latencies():
            ended, latencies = {}, []
            async with Client(address) as client:
                paced = (c for c in chunks(sample_pcm, 3200))

                async def real_time():
                    for piece in paced:
                        yield piece
                        await asyncio.sleep(0.1)

                async for event in client.stream(real_time(), options=StreamOptions(post_processing=False)):
                    if event.type == "speech_end":
                        ended[event.utterance] = time.monotonic()
                    elif event.type == "final":
                        latencies.append(time.monotonic() - ended[event.utterance])
            return latencies

        flood = asyncio.create_task(events_of(address, sample_pcm * 10, recorded=True, post_processing=False))
        latencies = await live_latencies()
        flooded = await flood
    assert len(latencies) == 4
    assert max(latencies) < 0.2 * 3 + 0.3, "a live final waits for at most the engine call in progress"
    assert len([e for e in flooded if e.type == "final"]) == 40, "the flood got every final, later"


async def test_a_live_stream_is_refused_with_a_retry_hint_when_the_engines_are_busy(monkeypatch, sample_pcm):
    monkeypatch.setattr(admission, "PRIOR_COST", 0.5)  # each live stream keeps the engines half busy
    async with mesh(gateway={"admit_utilization": 0.9}) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        holding = stub.StreamingTranscribe()
        await holding.write(config(post=False))
        await holding.write(pb.StreamingTranscribeRequest(audio=sample_pcm[: 16000 * 2 * 4]))
        await holding.initial_metadata()  # admitted: 50% expected
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.StreamingTranscribe(iter([config(post=False)]))]  # 100% expected
        recorded = config(post=False)
        recorded.config.source = pb.AUDIO_SOURCE_RECORDED
        assert [e async for e in stub.StreamingTranscribe(iter([recorded]))] == [], "recorded streams wait instead"
        await holding.done_writing()
        assert [e async for e in holding if e.WhichOneof("event") == "final"], "the admitted stream is served"
        again = stub.StreamingTranscribe(iter([config(post=False)]))
        assert [e async for e in again] == [], "its slot is free again once it ended"
    code, details = status_of(caught)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at capacity for live streams" in details
    status = rpc_status.from_call(caught.value)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds == admission.RETRY_AFTER_S


async def test_the_gateway_learns_a_live_streams_cost_from_what_the_asr_reports(monkeypatch, sample_pcm):
    fixed_cost(monkeypatch, 0.5)
    async with mesh() as (address, servers):
        gate = servers["gateway"].service.servicer.admission
        events = await events_of(address, sample_pcm, post_processing=False)
    assert len([e for e in events if e.type == "final"]) == 4
    assert gate.cost != admission.PRIOR_COST and 0 < gate.cost < 1


async def test_a_frozen_client_is_found_by_keepalive_and_its_slot_freed(sample_pcm):
    async with mesh(
        gateway={"keepalive_s": 0.5, "keepalive_timeout_s": 0.5, "idle_timeout_s": 300, "max_streams": 1}
    ) as (address, _):
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
            import asyncio, itertools
            from voxmesh.client import Client, StreamOptions
            async def main():
                async def forever():
                    for _ in itertools.count():
                        yield bytes(3200)
                        await asyncio.sleep(0.1)
                async with Client("{address}") as client:
                    async for _ in client.stream(forever(), options=StreamOptions(resume=False)):
                        pass
            asyncio.run(main())
        """),
            ],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            active = shared_metrics.RPC_ACTIVE.labels("gateway")
            for _ in range(100):
                if active._value.get() == 1:
                    break
                await asyncio.sleep(0.1)
            assert active._value.get() == 1, "the client's stream is open"
            client.send_signal(signal.SIGSTOP)  # frozen: its connection stays open, nothing answers pings
            started = time.monotonic()
            while active._value.get() and time.monotonic() - started < 10:
                await asyncio.sleep(0.1)
            assert active._value.get() == 0, "the dead peer's call ended"
            assert time.monotonic() - started < 5
        finally:
            client.kill()
            client.wait()


BAD = [
    ("a 100 KB language", lambda: [config(language="x" * 100_000)]),
    ("an unknown encoding", lambda: [config(encoding=7)]),
    ("a language the engine lacks", lambda: [config(language="fr")]),
    ("a chunk too big", lambda: [config(), pb.StreamingTranscribeRequest(audio=bytes(200_000))]),
]


async def test_no_refusal_leaks_an_object_repr_an_inner_address_or_more_than_64_characters_of_input():
    async with mesh() as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        said = []
        for name, requests in BAD:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                [e async for e in stub.StreamingTranscribe(iter(requests()))]
            said.append((name, *status_of(caught)))
        for name, content in (("bytes that are not audio", b"RIFF not audio"), ("an empty file", b"")):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Transcribe(pb.TranscribeRequest(content=content))
            said.append((name, *status_of(caught)))
    for name, code, details in said:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "0x" not in details and "object at" not in details, name
        assert "127.0.0.1" not in details and "ipv4:" not in details, name
        assert "x" * 65 not in details, name


async def test_a_long_recording_through_transcribe_loses_nothing_on_a_busy_engine(monkeypatch):
    fixed_cost(monkeypatch, 0.05)
    content = SAMPLE.read_bytes()
    async with mesh(asr={"queue_size": 1, "max_stream_utterances": 1}) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        replies = await asyncio.gather(*(stub.Transcribe(pb.TranscribeRequest(content=content)) for _ in range(3)))
    for reply in replies:
        assert [u.utterance_id for u in reply.utterances] == [1, 2, 3, 4]
        assert all(u.HasField("final") and not u.HasField("error") for u in reply.utterances)


async def test_a_language_the_engine_lacks_is_invalid_argument_every_time_not_now_and_then_internal(sample_pcm):
    async with mesh() as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        codes = []
        for _ in range(30):  # the client keeps writing audio while the refusal comes back
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                [
                    e
                    async for e in stub.StreamingTranscribe(
                        iter([config(language="fr"), *audio_requests(sample_pcm[:64000])])
                    )
                ]
            codes.append(caught.value.code())
    assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT}
