"""What the gateway refuses and how its health follows the inner services: each answer has a precise status
and a sentence, and nothing is lost when a client reads slowly."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.services.conftest import asr, audio_requests, channel_to, gateway, live, llm, mesh, status_of, vad
from tests.services.conftest import streaming_config as config
from voxmesh.client import Client, StreamOptions
from voxmesh.v1 import transcription_pb2_grpc

NOT_A_MESSAGE = b"\xff\xff\xff\xff"


async def test_bytes_that_are_not_a_protobuf_message_are_invalid_argument_and_one_log_line(no_crash_logs):
    no_crash_logs.set_level(logging.INFO, logger="voxmesh")
    async with mesh() as (address, _), channel_to(address) as channel:
        streaming = channel.stream_stream("/voxmesh.v1.Transcription/StreamingTranscribe")
        unary = channel.unary_unary("/voxmesh.v1.Transcription/Transcribe")
        with pytest.raises(grpc.aio.AioRpcError) as in_a_stream:
            [m async for m in streaming(iter([NOT_A_MESSAGE]))]
        with pytest.raises(grpc.aio.AioRpcError) as unary_call:
            await unary(NOT_A_MESSAGE)
    for caught, message in ((in_a_stream, "StreamingTranscribeRequest"), (unary_call, "TranscribeRequest")):
        code, details = status_of(caught)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"not a valid voxmesh.v1.{message} protobuf message" in details
    refused = [r for r in no_crash_logs.records if r.getMessage() == "call refused"]
    assert len(refused) == 2 and not any(r.exc_info for r in no_crash_logs.records), "one line each, no traceback"


async def test_a_stream_that_goes_silent_after_its_config_is_ended_and_frees_its_slot(sample_pcm):
    async with mesh(gateway={"idle_timeout_s": 0.5, "max_streams": 1}) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)

        async def config_then_nothing():
            yield config()
            await asyncio.sleep(30)

        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.StreamingTranscribe(config_then_nothing())]
        assert time.monotonic() - started < 5
        code, details = status_of(caught)
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "sent no message for 0.5 s" in details
        served = [
            e async for e in stub.StreamingTranscribe(iter([config(post=False), *audio_requests(sample_pcm[:64000])]))
        ]
        assert any(e.WhichOneof("event") == "final" for e in served), "the slot was freed"


async def test_an_instruction_longer_than_the_llm_takes_is_refused_at_config_time():
    async with mesh() as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        request = config()
        request.config.post_processing.instruction = "x" * 1_000_000
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.StreamingTranscribe(iter([request]))]
    code, details = status_of(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "1000000 characters; at most 2000 are accepted" in details


async def gateway_health(channel) -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def wait_for_health(channel, wanted: str, within_s: float) -> float:
    started = time.monotonic()
    while (status := await gateway_health(channel)) != wanted:
        assert time.monotonic() - started < within_s, f"health still {status} after {within_s} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_health_follows_the_asr_and_a_replica_that_comes_back_serves_within_a_second(sample_pcm):
    lone = asr()
    async with gateway([vad()], [lone], [llm()], replica_wait_s=0.5) as address, channel_to(address) as channel:
        assert await gateway_health(channel) == "SERVING"
        await lone.stop()
        await wait_for_health(channel, "NOT_SERVING", within_s=2)

        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.StreamingTranscribe(iter([config(), *audio_requests(sample_pcm[:32000])]))]
        code, details = status_of(caught)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "no replica of the ASR service is ready" in details and "127.0.0.1" not in details

        await lone.start()
        assert await wait_for_health(channel, "SERVING", within_s=1.0) < 1.0
        async with Client(address) as client:
            events = [
                e
                async for e in client.stream(
                    live(sample_pcm[: 16000 * 2 * 4], 10.0), options=StreamOptions(post_processing=False)
                )
            ]
        assert [e.type for e in events if e.type == "final"] == ["final"]


async def test_a_client_that_reads_slowly_loses_no_processed_text(sample_pcm):
    async with mesh(gateway={"event_queue_size": 1}) as (address, _), Client(address) as client:
        events = []
        async for event in client.stream(live(sample_pcm, 10.0), options=StreamOptions(partials=True)):
            events.append(event)
            await asyncio.sleep(0.05)  # the chain's one-event queue stays full while the mesh works
    finals = [e.utterance for e in events if e.type == "final"]
    done = [e for e in events if e.type == "processed" and e.done]
    assert finals == [1, 2, 3, 4]
    assert [d.utterance for d in done] == finals and all(d.outcome == "processed" and d.text for d in done)
