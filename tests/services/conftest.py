"""Servicers on in-process grpc.aio servers on port 0, through the same runtime the services use."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from tests.conftest import chunks
from voxmesh.client import Client, StreamOptions
from voxmesh.gateway.service import GatewayService
from voxmesh.runtime import Server
from voxmesh.services.asr.service import AsrService
from voxmesh.services.llm.service import LlmService
from voxmesh.services.vad.service import VadService
from voxmesh.settings import AsrSettings, GatewaySettings, LlmSettings, VadSettings
from voxmesh.v1 import asr_pb2, llm_pb2, transcription_pb2_grpc
from voxmesh.v1 import transcription_pb2 as pb

LOCAL = {"host": "127.0.0.1", "port": 0, "metrics_port": 0}
STOP_GRACE_S = 0.5


@contextlib.asynccontextmanager
async def running(service, settings, servers: dict | None = None):
    """Yield the address of the service, loaded and SERVING (its Server goes into `servers`)."""
    server = Server(service, settings)
    port = await server.start()
    if servers is not None:
        servers[service.name] = server
    try:
        await server.ready()
        yield f"127.0.0.1:{port}"
    finally:
        # A moment's grace: calls that are ending (a health Watch that the drain ended, or that a stopped
        # gateway's channel cancelled) finish instead of being cancelled by the stop, which grpc logs as an
        # ERROR ("Exception not handled by _handle_exceptions"); the stop returns once no call is left.
        await server.stop(STOP_GRACE_S)


@contextlib.asynccontextmanager
async def channel_to(address: str):
    channel = grpc.aio.insecure_channel(address)
    try:
        yield channel
    finally:
        await channel.close()


def settings(cls, **overrides):
    return cls(**{**LOCAL, **overrides})


@contextlib.asynccontextmanager
async def mesh(
    gateway: dict | None = None,
    asr: dict | None = None,
    llm_service=None,
    vad: dict | None = None,
    llm: dict | None = None,
):
    """All four services in this process; yields (gateway address, {name: runtime Server})."""
    vad_service = VadService(settings(VadSettings, **(vad or {})))
    asr_service = AsrService(settings(AsrSettings, **(asr or {})))
    llm_service = llm_service or LlmService(settings(LlmSettings, **(llm or {})))
    servers = {}
    async with (
        running(vad_service, vad_service.servicer.settings, servers) as vad_address,
        running(asr_service, asr_service.settings, servers) as asr_address,
        running(llm_service, llm_service.settings, servers) as llm_address,
    ):
        gateway_settings = settings(
            GatewaySettings, vad_target=vad_address, asr_target=asr_address, llm_target=llm_address, **(gateway or {})
        )
        gateway_service = GatewayService(gateway_settings)
        async with running(gateway_service, gateway_settings, servers) as address:
            yield address, servers


def status_of(exc_info) -> tuple[grpc.StatusCode, str]:
    return exc_info.value.code(), exc_info.value.details()


@pytest.fixture
def no_crash_logs(caplog):
    """Fails the test if anything logged at ERROR level (a crash) while it ran."""
    yield caplog
    crashes = [r for r in caplog.records if r.levelname == "ERROR"]
    assert not crashes, f"errors logged: {[r.getMessage() for r in crashes]}"


async def stream_through_mesh(pcm: bytes, **mesh_options) -> list:
    """Events of one stream of 16 kHz audio (partials and post-processing on) through an in-process mesh."""
    from tests.conftest import chunks
    from voxmesh.v1 import transcription_pb2 as pb
    from voxmesh.v1 import transcription_pb2_grpc

    requests = [
        pb.StreamingTranscribeRequest(
            config=pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=16000, channels=1),
                partial_results=True,
                post_processing=pb.PostProcessing(enabled=True),
            )
        )
    ] + [pb.StreamingTranscribeRequest(audio=c) for c in chunks(pcm, 3200)]
    async with mesh(**mesh_options) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        return [e async for e in stub.StreamingTranscribe(iter(requests))]


def assert_one_final_per_utterance(events, utterances: int, engine_prefix: str) -> None:
    assert "error" not in [e.WhichOneof("event") for e in events]
    ended = [e.utterance_id for e in events if e.WhichOneof("event") == "speech_ended"]
    finals = [e for e in events if e.WhichOneof("event") == "final"]
    assert len(ended) == utterances and sorted(f.utterance_id for f in finals) == ended
    assert all(f.final.engine.startswith(engine_prefix) for f in finals)


# -- replicas that stop, drain and come back (failover tests) ------------------------------------


class Replica:
    """One replica of a service on its own in-process server; it can stop, drain and start again on its port."""

    def __init__(self, make):
        self.make = make  # port -> service
        self.port = 0
        self.server: Server | None = None
        self.service = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Replica:
        self.service = self.make(self.port)
        self.server = Server(self.service, self.service.settings)
        self.port = await self.server.start()
        await self.server.ready()
        return self

    async def stop(self, grace_s: float | None = None) -> None:
        await self.server.stop(grace_s)
        self.server = None

    @property
    def open_streams(self) -> int:
        return len(getattr(self.service.servicer, "_outs", ())) or 0


def vad(**overrides):
    return Replica(lambda port: _with_settings(VadService, VadSettings, port, overrides))


def asr(**overrides):
    return Replica(lambda port: _with_settings(AsrService, AsrSettings, port, overrides))


def llm(*engines, **overrides):
    """An LLM replica with the rules engine, or with each of `engines` in turn, one per start."""
    turns = list(engines)

    def make(port):
        service = _with_settings(LlmService, LlmSettings, port, overrides)
        if turns:
            engine = turns.pop(0)

            async def start(health=None):
                service.servicer.engine = engine

            service.start = start
        return service

    return Replica(make)


def _with_settings(service_cls, settings_cls, port, overrides):
    return service_cls(settings(settings_cls, port=port, **overrides))


def target(replicas: list[Replica]) -> str:
    return "ipv4:" + ",".join(r.address for r in replicas)


@contextlib.asynccontextmanager
async def gateway(vads, asrs, llms, **overrides):
    all_replicas = [*vads, *asrs, *llms]
    for replica in all_replicas:
        await replica.start()
    gateway_settings = settings(
        GatewaySettings, vad_target=target(vads), asr_target=target(asrs), llm_target=target(llms), **overrides
    )
    service = GatewayService(gateway_settings)
    try:
        async with running(service, gateway_settings) as address:
            yield address
    finally:
        for replica in all_replicas:
            if replica.server is not None:
                await replica.stop()


async def live(pcm: bytes, speed: float):
    """The audio in 100 ms chunks, `speed` times faster than real time."""
    for piece in chunks(pcm, 3200):
        yield piece
        await asyncio.sleep(0.1 / speed)


async def run_stream(address, pcm, during=None, speed: float = 5.0, **options) -> list:
    """Every event of one stream through the gateway; `during(event)` is awaited for each as it arrives."""
    events = []
    async with Client(address) as client:
        async for event in client.stream(live(pcm, speed), options=StreamOptions(**options)):
            events.append(event)
            if during is not None:
                await during(event)
    return events


def assert_exactly_one_final_each(events, utterances: int) -> None:
    started = [e.utterance for e in events if e.type == "speech_start"]
    finals = [e.utterance for e in events if e.type == "final"]
    assert started == list(range(1, utterances + 1)), "no utterance announced twice"
    assert finals == started, "every utterance got exactly one final, in order"
    assert not [e for e in events if e.type == "error"]


# -- requests of each protocol, and reading their answers -------------------------------------------


def streaming_config(rate=16000, channels=1, encoding=pb.AudioFormat.LINEAR16, post=True, partials=False, language=""):
    return pb.StreamingTranscribeRequest(
        config=pb.StreamingConfig(
            format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=channels),
            language=language,
            partial_results=partials,
            post_processing=pb.PostProcessing(enabled=post),
        )
    )


def audio_requests(pcm: bytes, size: int = 3200):
    return [pb.StreamingTranscribeRequest(audio=c) for c in chunks(pcm, size)]


async def stream_events(address, requests):
    async with channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        return [e async for e in stub.StreamingTranscribe(iter(requests))]


def finals(events):
    return [e.final.text for e in events if e.WhichOneof("event") == "final"]


def recognize_config(language: str = "", partials: bool = False) -> asr_pb2.RecognizeRequest:
    return asr_pb2.RecognizeRequest(
        config=asr_pb2.RecognizeConfig(sample_rate_hz=16000, language=language, partial_results=partials)
    )


def utterance_audio(utterance: int, pcm: bytes) -> asr_pb2.RecognizeRequest:
    return asr_pb2.RecognizeRequest(audio=asr_pb2.UtteranceAudio(utterance_id=utterance, audio=pcm))


def utterance_end(utterance: int) -> asr_pb2.RecognizeRequest:
    return asr_pb2.RecognizeRequest(end=asr_pb2.UtteranceEnd(utterance_id=utterance))


def process_config(instruction: str = "") -> llm_pb2.ProcessRequest:
    return llm_pb2.ProcessRequest(config=llm_pb2.ProcessConfig(instruction=instruction))


def transcript(utterance: int, text: str) -> llm_pb2.ProcessRequest:
    return llm_pb2.ProcessRequest(transcript=llm_pb2.TranscriptSegment(utterance_id=utterance, text=text))


class _Health:
    async def follow(self, serving: bool) -> None:
        pass


@contextlib.asynccontextmanager
async def web(**overrides):
    """The mesh in this process, and the web service in front of its gateway; yields the web's base URL."""
    from voxmesh.settings.web import WebSettings
    from voxmesh.web.service import WebService

    gateway_overrides = overrides.pop("gateway", None)
    async with mesh(gateway=gateway_overrides) as (gateway_address, _):
        service = WebService(settings(WebSettings, gateway_target=gateway_address, http_port=0, **overrides))
        await service.start(_Health())
        try:
            yield f"http://127.0.0.1:{service.http_port}"
        finally:
            await service.close()
