"""The client library backend services import: stream audio to a voxmesh gateway, get typed events.

    async with Client("localhost:50051") as client:
        async for event in client.stream_file("call.wav", partials=True):
            if event.type == "final":
                print(event.text)

Calls raise grpc.aio.AioRpcError with the gateway's status code and message when the gateway refuses
them (INVALID_ARGUMENT for bad input, RESOURCE_EXHAUSTED over its stream limit, ...). `SyncClient` offers
the same calls for code without an event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh import SAMPLE_RATE, audio
from voxmesh.events import Event, EventDecoder
from voxmesh.v1 import transcription_pb2 as pb
from voxmesh.v1 import transcription_pb2_grpc

Progress = Callable[[float, float], None]  # (seconds sent, seconds in total)


@dataclass(frozen=True)
class StreamOptions:
    language: str = ""
    partials: bool = False
    post_processing: bool = True
    instruction: str = ""

    def post(self) -> pb.PostProcessing:
        return pb.PostProcessing(enabled=self.post_processing, instruction=self.instruction)


class Client:
    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = 64 << 20,
    ):
        """`credentials`: None for plaintext, or e.g. voxmesh.tls.channel_credentials(ca, cert, key) for (m)TLS."""
        self.target = target
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._stub = transcription_pb2_grpc.TranscriptionStub(self._channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def stream(
        self,
        chunks: Iterable[bytes] | AsyncIterable[bytes],
        *,
        sample_rate_hz: int = SAMPLE_RATE,
        channels: int = 1,
        options: StreamOptions = StreamOptions(),
        timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """Stream LINEAR16 chunks in the given format; yields events as they arrive."""
        config = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=sample_rate_hz, channels=channels),
            language=options.language,
            partial_results=options.partials,
            post_processing=options.post(),
        )

        async def requests():
            yield pb.StreamingTranscribeRequest(config=config)
            if isinstance(chunks, AsyncIterable):
                async for chunk in chunks:
                    yield pb.StreamingTranscribeRequest(audio=chunk)
            else:
                for chunk in chunks:
                    yield pb.StreamingTranscribeRequest(audio=chunk)

        call = self._stub.StreamingTranscribe(requests(), timeout=timeout)
        decode = EventDecoder()
        try:
            async for message in call:
                yield decode(message)
        finally:
            call.cancel()

    async def stream_file(
        self,
        path: str | Path,
        *,
        pace: str = "realtime",
        chunk_ms: int = 100,
        options: StreamOptions = StreamOptions(),
        progress: Progress | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """Stream a file any libsndfile format (WAV, FLAC, OGG, ...), at real-time pace or as fast as the
        mesh takes it. Files in a format the gateway takes (8-48 kHz, mono or stereo) go as they are, so
        the gateway converts them once; others are converted to 16 kHz mono here."""
        if pace not in ("realtime", "fast"):
            raise ValueError(f"pace must be 'realtime' or 'fast', not {pace!r}")
        samples, rate = await asyncio.to_thread(audio.read_file, path)
        if not (audio.MIN_RATE <= rate <= audio.MAX_RATE and samples.shape[1] in audio.CHANNELS):
            pcm = await asyncio.to_thread(audio.to_internal, samples, rate)
            samples, rate = audio.from_internal(pcm), SAMPLE_RATE
        total_s = len(samples) / rate
        step = max(1, rate * chunk_ms // 1000)

        async def chunks():
            started = time.monotonic()
            for offset in range(0, len(samples), step):
                sent_s = min(len(samples), offset + step) / rate
                if pace == "realtime":
                    await asyncio.sleep(max(0.0, started + offset / rate - time.monotonic()))
                yield samples[offset : offset + step].tobytes()
                if progress:
                    progress(sent_s, total_s)

        async for event in self.stream(
            chunks(), sample_rate_hz=rate, channels=samples.shape[1], options=options, timeout=timeout
        ):
            yield event

    async def transcribe(
        self, content: bytes | str | Path, *, options: StreamOptions = StreamOptions(), timeout: float | None = None
    ) -> pb.TranscribeResponse:
        """Transcribe a whole recording (its file bytes, or a path) in one call."""
        data = await asyncio.to_thread(Path(content).read_bytes) if isinstance(content, (str, Path)) else content
        request = pb.TranscribeRequest(content=data, language=options.language, post_processing=options.post())
        return await self._stub.Transcribe(request, timeout=timeout)

    async def health(self, timeout: float = 5.0) -> str:
        """The gateway's health status name (SERVING, NOT_SERVING, ...)."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class SyncClient:
    """Blocking wrapper of Client: runs one event loop on a background thread."""

    def __init__(self, target: str = "localhost:50051", **kwargs):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="voxmesh-client", daemon=True)
        self._thread.start()
        self._client: Client = self._call(self._make(target, kwargs))

    @staticmethod
    async def _make(target: str, kwargs: dict) -> Client:
        return Client(target, **kwargs)

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _iterate(self, iterator: AsyncIterator[Event]) -> Iterator[Event]:
        try:
            while True:
                try:
                    yield self._call(iterator.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._call(iterator.aclose())

    def stream(self, chunks: Iterable[bytes], **kwargs) -> Iterator[Event]:
        return self._iterate(self._client.stream(chunks, **kwargs))

    def stream_file(self, path: str | Path, **kwargs) -> Iterator[Event]:
        return self._iterate(self._client.stream_file(path, **kwargs))

    def transcribe(self, content: bytes | str | Path, **kwargs) -> pb.TranscribeResponse:
        return self._call(self._client.transcribe(content, **kwargs))

    def health(self, timeout: float = 5.0) -> str:
        return self._call(self._client.health(timeout))

    def close(self) -> None:
        self._call(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
