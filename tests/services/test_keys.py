"""API keys at the gateway (gRPC) and at the web service (HTTP and WebSocket): missing, unknown, revoked,
not allowed and over-limit keys are refused with their own status; health stays open."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import httpx
import pytest
import websockets
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.services.conftest import audio_requests, channel_to, mesh, status_of, streaming_config, web
from voxmesh.v1 import transcription_pb2_grpc

KEYS = "vm-good 1 ; vm-files-only 0 Transcribe"


async def stream(address: str, key: str | None, *requests) -> grpc.aio.StreamStreamCall:
    async with channel_to(address) as channel:
        metadata = (("authorization", f"Bearer {key}"),) if key else ()
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        return [e async for e in stub.StreamingTranscribe(iter(requests), metadata=metadata)]


@pytest.mark.parametrize(
    ("key", "code", "says"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED, "an API key is required"),
        ("vm-wrong", grpc.StatusCode.UNAUTHENTICATED, "not known here"),
        (
            "vm-files-only",
            grpc.StatusCode.PERMISSION_DENIED,
            "may not call StreamingTranscribe; it may call Transcribe",
        ),
    ],
)
async def test_the_gateway_refuses_a_missing_unknown_or_unallowed_key(key, code, says):
    async with mesh(gateway={"api_keys": KEYS}) as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream(address, key, streaming_config(post=False), *audio_requests(bytes(3200)))
        assert status_of(refused)[0] == code and says in status_of(refused)[1]
        async with channel_to(address) as channel:  # health stays open
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        events = await stream(address, "vm-good", streaming_config(post=False), *audio_requests(bytes(3200)))
        assert not [e for e in events if e.WhichOneof("event") == "error"], "a good key streams"


async def test_a_key_over_its_stream_limit_is_refused_until_its_stream_ends():
    async with mesh(gateway={"api_keys": KEYS}) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        auth = (("authorization", "Bearer vm-good"),)
        held = stub.StreamingTranscribe(metadata=auth)
        await held.write(streaming_config(post=False))
        await held.initial_metadata()  # accepted: the key's one stream is taken
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream(address, "vm-good", streaming_config(post=False))
        assert status_of(refused)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 1 open calls" in status_of(refused)[1]
        await held.done_writing()
        async for _ in held:
            pass
        await stream(address, "vm-good", streaming_config(post=False), *audio_requests(bytes(3200)))


async def test_a_key_removed_from_the_key_file_is_refused_without_a_restart(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("vm-alice 2\nvm-bob 2\n")
    async with mesh(gateway={"api_keys_file": str(keys)}) as (address, _):
        await stream(address, "vm-bob", streaming_config(post=False))
        await asyncio.sleep(1.1)  # the file is looked at once a second at most
        keys.write_text("vm-alice 2\n")  # bob's key revoked
        await asyncio.sleep(1.1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream(address, "vm-bob", streaming_config(post=False))
        assert status_of(refused)[0] == grpc.StatusCode.UNAUTHENTICATED
        await stream(address, "vm-alice", streaming_config(post=False))


async def test_the_web_service_refuses_keys_with_401_403_and_429(jfk_path):
    async with web(api_keys="vm-web 1 ; vm-live 1 StreamingTranscribe") as base:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            files = {"file": ("jfk.flac", jfk_path.read_bytes())}

            async def post(key: str | None):
                headers = {"authorization": f"Bearer {key}"} if key else {}
                return await http.post(
                    "/v1/audio/transcriptions", data={"model": "voxmesh"}, files=files, headers=headers
                )

            missing, wrong, denied, fine = [await post(key) for key in (None, "x", "vm-live", "vm-web")]
            page = await http.get("/")
        assert missing.status_code == 401 and wrong.status_code == 401 and denied.status_code == 403
        assert "an API key is required" in missing.json()["error"]["message"]
        assert fine.status_code == 200 and "country" in fine.json()["text"]
        assert page.status_code == 200, "the page itself is open: it asks for the key"
        url = base.replace("http", "ws") + "/v1/realtime"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url + "?token=nope"):
                pass
        assert refused.value.response.status_code == 401
        async with websockets.connect(url + "?token=vm-live") as first:  # the key's one session
            assert json.loads(await first.recv())["type"] == "session.created"
            with pytest.raises(websockets.InvalidStatus) as over:
                async with websockets.connect(url + "?token=vm-live"):
                    pass
            assert over.value.response.status_code == 429
            await first.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"").decode()}))


async def test_the_client_library_sends_its_key_given_or_from_the_environment(monkeypatch, sample_pcm):
    from tests.services.conftest import run_stream

    async with mesh(gateway={"api_keys": KEYS}) as (address, _):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await run_stream(address, sample_pcm[:32000], resume=False, post_processing=False)
        assert status_of(refused)[0] == grpc.StatusCode.UNAUTHENTICATED
        monkeypatch.setenv("VOXMESH_API_KEY", "vm-good")
        events = await run_stream(address, sample_pcm, post_processing=False)
    assert [e for e in events if e.type == "final"]
