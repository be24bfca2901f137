"""The client library backend services import: stream audio to a voxmesh gateway, get typed events.

    async with Client("localhost:50051") as client:
        async for event in client.stream_file("call.wav", partials=True):
            if event.type == "final":
                print(event.text)

Calls raise grpc.aio.AioRpcError with the gateway's status code and message when the gateway refuses
them (INVALID_ARGUMENT for bad input, RESOURCE_EXHAUSTED over its stream limit, ...). `SyncClient` offers
the same calls for code without an event loop.

Streams resume by themselves (`StreamOptions(resume=True)`, the default): when the call ends UNAVAILABLE
(its gateway died or stopped) or the gateway says it is going away, the client opens a new call to its
target, which may land on any gateway replica, resends the audio the stream still needs and goes on; no
final is delivered twice (see voxmesh/resume.py). A target may name several gateways
(`ipv4:10.0.0.1:50051,10.0.0.2:50051`): calls go round-robin to those whose health says SERVING.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh import SAMPLE_RATE, pacing
from voxmesh.events import Event, EventDecoder
from voxmesh.options import StreamOptions as StreamOptions  # re-exported: part of the client's API
from voxmesh.pacing import Progress
from voxmesh.resume import FLUSH as FLUSH  # re-exported: yield it among a stream's chunks
from voxmesh.resume import Flush, ResumableSource, Resumption
from voxmesh.v1 import common_pb2, transcription_pb2_grpc
from voxmesh.v1 import transcription_pb2 as pb

log = logging.getLogger("voxmesh.client")


SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": pb.DESCRIPTOR.services_by_name["Transcription"].full_name},
    }
)
# grpc's own status for a write to a call whose connection broke (grpc/grpc#34148): the gateway is gone.
BROKEN_WRITE = (grpc.StatusCode.INTERNAL, "Internal error from Core")
MAX_RESUMES_WITHOUT_EVENTS = 5
FIRST_RETRY_S, LONGEST_RETRY_S = 0.1, 2.0
MAX_AHEAD_S = 30.0  # audio read from the source ahead of what the gateway has taken
MAX_MESSAGE_S = 0.25  # longest audio message when audio is sent again (48 kHz stereo: 48 KB)


SAMPLE_BYTES = {"LINEAR16": 2, "MULAW": 1, "ALAW": 1}  # the encodings the library streams (and resumes)

MOVE_RETRY_S = 1.0  # how often to look for another gateway while the one going away still serves
MOVE_TIMEOUT_S = 2.0  # how long a gateway may take to accept a moved stream


def _resumable(exc: grpc.aio.AioRpcError) -> bool:
    """The call ended because its gateway went away (not because the gateway refused something)."""
    return exc.code() == grpc.StatusCode.UNAVAILABLE or (exc.code(), exc.details()) == BROKEN_WRITE


class _Call:
    """One call of a stream, and the task that sends its requests."""

    def __init__(self, call: grpc.aio.StreamStreamCall, sender: asyncio.Task, resumed: bool):
        self.call = call
        self.sender = sender
        self.resumed = resumed  # it picks up a stream an earlier call began (until its first message)
        # The caller's audio source failed: end the call, so that its reader raises that failure.
        sender.add_done_callback(lambda task: task.cancelled() or task.exception() is None or call.cancel())

    async def read(self) -> pb.TranscriptionEvent | None:
        """The call's next event; None at its end (grpc.aio.EOF)."""
        message = await self.call.read()
        return None if message is grpc.aio.EOF else cast(pb.TranscriptionEvent, message)

    def raise_source_failure(self) -> None:
        if self.sender.done() and not self.sender.cancelled():
            failure = self.sender.exception()
            if failure is not None and not isinstance(failure, (grpc.aio.AioRpcError, asyncio.InvalidStateError)):
                raise failure

    async def stop(self) -> None:
        self.call.cancel()
        self.sender.cancel()
        await asyncio.gather(self.sender, return_exceptions=True)


class Client:
    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        credentials: grpc.ChannelCredentials | None = None,
        max_message_bytes: int = 64 << 20,
        api_key: str | None = None,
    ):
        """`credentials`: None for plaintext, or e.g. voxmesh.tls.channel_credentials(ca, cert, key) for (m)TLS.
        `api_key`: sent as `authorization: Bearer <key>` on every transcription call (None: VOXMESH_API_KEY)."""
        self.target = target
        key = os.environ.get("VOXMESH_API_KEY", "") if api_key is None else api_key
        self._auth: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {key}"),) if key else ()
        options = [
            ("grpc.service_config", SERVICE_CONFIG),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1000),
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
        chunks: Iterable[bytes | Flush] | AsyncIterable[bytes | Flush],
        *,
        sample_rate_hz: int = SAMPLE_RATE,
        channels: int = 1,
        encoding: str = "LINEAR16",
        options: StreamOptions = StreamOptions(),
        timeout: float | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Stream chunks of audio in the given format (LINEAR16, or G.711: MULAW, ALAW); yields events as they
        arrive. A sync iterable is read on a worker thread, so it may block (a microphone, a paced reader).
        Opus containers go through the stubs: a container cannot be resumed mid-way."""
        if encoding not in SAMPLE_BYTES:
            raise ValueError(f"encoding must be one of {', '.join(SAMPLE_BYTES)}, not {encoding!r}")
        config = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=encoding, sample_rate_hz=sample_rate_hz, channels=channels),
            language=options.language,
            partial_results=options.partials,
            post_processing=options.post(),
            source=pb.AUDIO_SOURCE_RECORDED if options.recorded else pb.AUDIO_SOURCE_LIVE,
            word_timings=options.word_timings,
            phrases=[common_pb2.PhraseHint(phrase=phrase, boost=boost) for phrase, boost in options.phrases],
            prompt=options.prompt,
            endpointing=options.endpointing(),
        )
        state = Resumption(sample_rate_hz, channels, options.post_processing, SAMPLE_BYTES[encoding])
        source = ResumableSource(chunks, state, int(MAX_AHEAD_S * sample_rate_hz) * state.frame_bytes)
        decode = EventDecoder()
        deadline = None if timeout is None else time.monotonic() + timeout
        retry_s, give_up_at = FIRST_RETRY_S, time.monotonic() + options.resume_timeout_s
        move_at: float | None = None  # the gateway is going away: when to try moving to another
        resumes = 0  # calls ended and resumed since the last event
        call: _Call | None = None
        try:
            while True:
                if call is None:
                    call = self._call(
                        config, state, source, deadline, resumed=state.received > 0, metadata=options.metadata()
                    )
                try:
                    message = await call.read()
                except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
                    call.raise_source_failure()
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    resumes += 1
                    if (
                        not options.resume
                        or not _resumable(exc)
                        or time.monotonic() > give_up_at
                        or resumes > MAX_RESUMES_WITHOUT_EVENTS
                    ):
                        raise
                    log.warning(
                        "the stream's call ended %s; resuming from %.2f s",
                        exc.code().name,
                        state.keep_from / sample_rate_hz,
                        extra={"details": exc.details()},
                    )
                    await call.stop()
                    call, move_at = None, None
                    if resumes > 1:  # the first try goes at once: round_robin picks another gateway
                        await asyncio.sleep(retry_s * random.uniform(0.5, 1.0))
                        retry_s = min(2 * retry_s, LONGEST_RETRY_S)
                    continue
                if message is None:
                    return
                if call.resumed:
                    call.resumed = False
                    log.info("the stream resumed on a new call", extra={"from_s": state.keep_from / sample_rate_hz})
                kind = message.WhichOneof("event")
                if kind == "going_away" and options.resume:
                    move_at = move_at or time.monotonic()
                elif state.accept(message) and kind not in ("progress", "going_away"):
                    retry_s, give_up_at, resumes = FIRST_RETRY_S, time.monotonic() + options.resume_timeout_s, 0
                    yield decode(message)
                if move_at is not None and time.monotonic() >= move_at:
                    moved = await self._move(config, state, source, deadline, options.metadata())
                    if moved is None:  # no other gateway took it: stay while this one finishes the stream
                        move_at = time.monotonic() + MOVE_RETRY_S
                    else:
                        await call.stop()
                        call, move_at = moved, None
        finally:
            if call is not None:
                await call.stop()
            await source.close()

    def _call(
        self,
        config: pb.StreamingConfig,
        state: Resumption,
        source: ResumableSource,
        deadline: float | None,
        resumed: bool,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> _Call:
        """A new call for the stream; a resumed one says where it picks up."""
        request = pb.StreamingConfig()
        request.CopyFrom(config)
        if resumed:
            request.resume.CopyFrom(state.resume_from())
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        call = self._stub.StreamingTranscribe(timeout=remaining, metadata=self._auth + metadata)
        return _Call(call, asyncio.create_task(self._send(call, request, state, source)), resumed)

    async def _move(
        self, config, state: Resumption, source: ResumableSource, deadline: float | None, metadata=()
    ) -> _Call | None:
        """Resume the stream on another gateway if one accepts it (sends its initial metadata) in time."""
        call = self._call(config, state, source, deadline, resumed=True, metadata=metadata)
        try:
            await asyncio.wait_for(call.call.initial_metadata(), MOVE_TIMEOUT_S)
            accepted = not call.call.done()  # a refused call ends with its status, its metadata empty
        except TimeoutError:
            accepted = False
        if not accepted:
            await call.stop()
            return None
        return call

    @staticmethod
    async def _send(call, config: pb.StreamingConfig, state: Resumption, source: ResumableSource) -> None:
        """One call's requests: the config, then (once the gateway accepted it) the kept audio the stream
        still needs, then new audio. Waiting for the acceptance means a refused config reaches the caller
        with its own status: grpc reports a write to a call that has ended as INTERNAL, hiding the real one."""
        await call.write(pb.StreamingTranscribeRequest(config=config))
        await call.initial_metadata()
        if call.done():
            return
        position = flushed = state.keep_from
        step = max(1, int(MAX_MESSAGE_S * state.rate)) * state.frame_bytes
        while True:
            while position < state.received or state.next_flush(flushed) is not None:
                flush = state.next_flush(flushed)
                until = state.received if flush is None else flush
                while position < until:
                    chunk = state.audio_from(position, min(step, (until - position) * state.frame_bytes))
                    await call.write(pb.StreamingTranscribeRequest(audio=chunk))
                    position += len(chunk) // state.frame_bytes
                    source.sent_through(position)
                if flush is not None:
                    await call.write(pb.StreamingTranscribeRequest(flush=common_pb2.Flush()))
                    flushed = flush
            if source.done:
                await call.done_writing()
                return
            await source.more()

    async def stream_file(
        self,
        path: str | Path,
        *,
        pace: str = "realtime",
        chunk_ms: int = 100,
        options: StreamOptions = StreamOptions(),
        progress: Progress | None = None,
        timeout: float | None = None,
        raw: tuple[str, int] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Stream a file any libsndfile format (WAV, FLAC, OGG, ...), at real-time pace or as fast as the
        mesh takes it. Files in a format the gateway takes (8-48 kHz, mono or stereo) go as they are, so
        the gateway converts them once; others are converted to 16 kHz mono here. `raw=("MULAW", 8000)`: the
        file is headerless mono G.711 (MULAW or ALAW) at that rate, sent as it is for the gateway to decode."""
        if pace not in ("realtime", "fast"):
            raise ValueError(f"pace must be 'realtime' or 'fast', not {pace!r}")
        if pace == "fast":
            options = dataclasses.replace(options, recorded=True)
        if raw is not None:
            source = await pacing.raw_file(Path(path), *raw)
        else:
            source = await pacing.audio_file(path)
        chunks = source.chunks(chunk_ms, realtime=pace == "realtime", progress=progress)
        async for event in self.stream(
            chunks,
            sample_rate_hz=source.rate,
            channels=source.channels,
            encoding=source.encoding,
            options=options,
            timeout=timeout,
        ):
            yield event

    async def transcribe(
        self, content: bytes | str | Path, *, options: StreamOptions = StreamOptions(), timeout: float | None = None
    ) -> pb.TranscribeResponse:
        """Transcribe a whole recording (its file bytes, or a path) in one call."""
        data = await asyncio.to_thread(Path(content).read_bytes) if isinstance(content, (str, Path)) else content
        request = pb.TranscribeRequest(
            content=data,
            language=options.language,
            post_processing=options.post(),
            word_timings=options.word_timings,
            phrases=[common_pb2.PhraseHint(phrase=phrase, boost=boost) for phrase, boost in options.phrases],
            prompt=options.prompt,
        )
        return await self._stub.Transcribe(request, timeout=timeout, metadata=self._auth + options.metadata())

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

    def _iterate(self, iterator: AsyncGenerator[Event, None]) -> Iterator[Event]:
        try:
            while True:
                try:
                    yield self._call(iterator.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._call(iterator.aclose())

    def stream(self, chunks: Iterable[bytes | Flush], **kwargs) -> Iterator[Event]:
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
