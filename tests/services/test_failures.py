"""Failures inside the mesh are reported per utterance, and the call goes on where it can."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from tests.conftest import chunks
from tests.services.conftest import channel_to, finals, mesh, settings
from tests.services.conftest import streaming_config as config
from voxmesh.services.asr.engines import AsrResult, EngineCapabilities
from voxmesh.services.llm.service import LlmService
from voxmesh.settings import LlmSettings
from voxmesh.v1 import common_pb2, transcription_pb2_grpc
from voxmesh.v1 import transcription_pb2 as pb


class SlowAsrEngine:
    """Answers every request after `delay` seconds (a stuck GPU, say)."""

    name = "slow"
    capabilities = EngineCapabilities(streaming=False, max_batch_size=1, languages=None)

    def __init__(self, delay: float):
        self.delay = delay

    def warmup(self):
        pass

    def transcribe(self, batch):
        time.sleep(self.delay)
        return [AsrResult("late", "en") for _ in batch]

    def close(self):
        pass


async def stream(address, requests):
    async with channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        return [e async for e in stub.StreamingTranscribe(iter(requests))]


async def test_a_final_that_does_not_come_in_time_is_reported_and_the_call_ends(monkeypatch, sample_pcm):
    monkeypatch.setattr("voxmesh.services.asr.service.load_engine", lambda _settings: SlowAsrEngine(delay=1.5))
    requests = [
        config(post=False),
        *(pb.StreamingTranscribeRequest(audio=c) for c in chunks(sample_pcm[: 16000 * 2 * 4], 3200)),
    ]
    async with mesh(gateway={"final_timeout_s": 0.5}) as (address, _):
        started = time.monotonic()
        events = await stream(address, requests)
    errors = [e for e in events if e.WhichOneof("event") == "error"]
    assert len(errors) == 1 and errors[0].error.code == "DEADLINE_EXCEEDED" and errors[0].error.stage == "asr"
    assert len(errors[0].error.request_id) == 32, "the gateway made the stream a request id, and the error says it"
    assert finals(events) == [], "the late final is not sent after the utterance was reported failed"
    assert time.monotonic() - started < 10, "the stuck ASR stream was abandoned, the call ended"


class FailingLlmEngine:
    name = "failing"

    async def warmup(self):
        pass

    async def stream(self, request):
        yield "Half"
        raise RuntimeError("the model fell over")

    async def close(self):
        pass


async def test_a_failing_post_processor_fails_processed_text_only(sample_pcm):
    llm = LlmService(settings(LlmSettings))

    async def start(health=None):
        llm.servicer.engine = FailingLlmEngine()

    llm.start = start
    requests = [config(), *(pb.StreamingTranscribeRequest(audio=c) for c in chunks(sample_pcm, 3200))]
    async with mesh(llm_service=llm) as (address, _):
        events = await stream(address, requests)
    assert len(finals(events)) == 4, "finals stand"
    done = [e.processed for e in events if e.WhichOneof("event") == "processed" and e.processed.done]
    assert len(done) == 4
    assert all(d.outcome == common_pb2.PROCESSING_OUTCOME_FAILED and "the model fell over" in d.reason for d in done)


async def test_the_llm_service_gone_for_good_fails_post_processing_only_and_the_call_goes_on(sample_pcm):
    async with mesh(gateway={"processed_timeout_s": 1.0}) as (address, servers), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)

        async def live():
            yield config()
            for piece in chunks(sample_pcm, 3200):
                yield pb.StreamingTranscribeRequest(audio=piece)
                await asyncio.sleep(0.01)

        events = []
        async for event in stub.StreamingTranscribe(live()):
            events.append(event)
            if event.WhichOneof("event") == "speech_started" and event.utterance_id == 2:
                await servers["llm"].server.stop(None)
    assert len(finals(events)) == 4, "every utterance was still transcribed"
    done = {e.utterance_id: e.processed for e in events if e.WhichOneof("event") == "processed" and e.processed.done}
    assert sorted(done) == [1, 2, 3, 4], "every final got a done message"
    assert done[4].outcome == common_pb2.PROCESSING_OUTCOME_FAILED
    assert done[4].reason.startswith("UNAVAILABLE") and "no LLM replica was reachable" in done[4].reason


async def test_a_client_that_sends_no_config_is_cut_off():
    async with mesh(gateway={"first_message_timeout_s": 0.3}) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)

        async def silent():
            await asyncio.sleep(5)
            yield config()

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.StreamingTranscribe(silent())]
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "send the config first" in caught.value.details()
