"""One Recognize stream: its open utterances, and how they become text.

`Session` holds what every engine shares; `RedecodeSession` serves engines that transcribe whole
utterances (see services/asr/live_session.py for streaming engines). Utterances grow as audio arrives. When the stream asked for partials, an utterance is re-decoded each
time `partial_interval_s` of new audio has arrived and no re-decode of it is in flight; a partial that
comes back after its utterance ended is dropped. Partials follow LocalAgreement-2: the words two
consecutive decodes agree on from the start are committed, a partial carries only the committed text
(it grows, it never takes words back), and its stability is the committed share of the latest decode. At the utterance's end its final is queued, and answered
with the transcript or with the error that prevented one.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.asr import metrics
from services.asr.engines import AsrRequest
from services.asr.scheduler import Scheduler
from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors, text
from voxmesh.audio import pcm_to_float
from voxmesh.metrics import UTTERANCE_ERRORS
from voxmesh.v1 import asr_pb2, common_pb2

log = logging.getLogger("voxmesh.asr.session")

Emit = Callable[[asr_pb2.RecognizeResponse], Awaitable[None]]


@dataclass
class Utterance:
    id: int
    received: int = 0  # bytes of audio
    failed: bool = False

    @property
    def seconds(self) -> float:
        return self.received / (SAMPLE_WIDTH * SAMPLE_RATE)


class Session(abc.ABC):
    """What every kind of session does: validate the stream's order of messages, bound utterance
    length and the utterances in flight, answer every utterance exactly once (a final or an error), and
    drain at the stream's end. Subclasses say how audio becomes text: `_open_utterance`, `_grow`,
    `_finish`, `_stop`.

    A stream may have `max_in_flight` utterances open or waiting for their answer. One more is refused
    (RESOURCE_EXHAUSTED) on a live stream; on a recorded one, `admit` waits for room, and with it the
    reading of the stream's requests: the caller's sends wait (flow control) instead of anything being shed.
    """

    def __init__(self, emit: Emit, *, engine_name: str, max_utterance_s: float, recorded: bool = False,
                 max_in_flight: int = 8):
        self.emit = emit
        self.engine_name = engine_name
        self.max_bytes = int(max_utterance_s * SAMPLE_RATE) * SAMPLE_WIDTH
        self.max_utterance_s = max_utterance_s
        self.recorded = recorded
        self.max_in_flight = max_in_flight
        self._open: dict[int, Utterance] = {}
        self._ended: set[int] = set()
        self._in_flight: set[int] = set()  # seen and not yet answered
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task] = set()

    async def admit(self, utterance_id: int) -> None:
        """Before a message of an utterance: on a recorded stream, wait until a new utterance has room."""
        if self.recorded and utterance_id not in self._in_flight and utterance_id not in self._ended:
            while len(self._in_flight) >= self.max_in_flight:
                self._room.clear()
                await self._room.wait()

    def audio(self, utterance_id: int, pcm: bytes) -> None:
        if utterance_id in self._ended:
            raise errors.InvalidArgument(f"audio for utterance {utterance_id} arrived after its end")
        utterance = self._open.get(utterance_id)
        if utterance is None:
            utterance = self._open[utterance_id] = self._new(utterance_id)
        if utterance.failed:
            return
        metrics.AUDIO_SECONDS.inc(len(pcm) / (SAMPLE_WIDTH * SAMPLE_RATE))
        utterance.received += len(pcm)
        if utterance.received > self.max_bytes:
            self._give_up(utterance, errors.InvalidArgument(
                f"utterance {utterance_id} is longer than {self.max_utterance_s:g} s, the longest this service "
                "accepts (VOXMESH_ASR_MAX_UTTERANCE_S); split speech into shorter utterances"
            ))
            return
        self._grow(utterance, pcm)

    def end(self, utterance_id: int) -> None:
        if utterance_id in self._ended:
            raise errors.InvalidArgument(f"utterance {utterance_id} was ended twice")
        self._ended.add(utterance_id)
        utterance = self._open.pop(utterance_id, None) or self._new(utterance_id)
        if not utterance.failed:
            self._finish(utterance)

    def _new(self, utterance_id: int) -> Utterance:
        full = len(self._in_flight) >= self.max_in_flight
        self._in_flight.add(utterance_id)
        if full:  # a live stream (a recorded one waited in `admit`): refuse it, the stream goes on
            utterance = Utterance(utterance_id)
            self._give_up(utterance, errors.ResourceExhausted(
                f"this stream already has {self.max_in_flight} utterances open or waiting for the engine, the "
                "most one stream may have (VOXMESH_ASR_MAX_STREAM_UTTERANCES); send recorded audio as "
                "recorded, or slower"
            ))
            return utterance
        return self._open_utterance(utterance_id)

    def _answered(self, utterance: Utterance) -> None:
        self._in_flight.discard(utterance.id)
        self._room.set()

    async def drain(self) -> None:
        """Wait until every ended utterance has been answered; answer the ones never ended as failed."""
        for utterance in list(self._open.values()):
            if not utterance.failed:
                self._give_up(utterance, errors.InvalidArgument(
                    f"the stream closed before utterance {utterance.id} was ended"
                ))
        self._open.clear()
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def cancel(self) -> None:
        for utterance in self._open.values():
            self._stop(utterance)
        for task in self._tasks:
            task.cancel()

    def _give_up(self, utterance: Utterance, exc: errors.VoxmeshError) -> None:
        utterance.failed = True
        self._stop(utterance)
        self._spawn(self._fail(utterance, exc))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fail(self, utterance: Utterance, exc: errors.VoxmeshError) -> None:
        self._answered(utterance)
        UTTERANCE_ERRORS.labels("asr", exc.code.name).inc()
        log.info("utterance failed", extra={"utterance": utterance.id, "code": exc.code.name, "reason": str(exc)})
        await self.emit(asr_pb2.RecognizeResponse(
            utterance_id=utterance.id,
            audio_s=utterance.seconds,
            error=common_pb2.UtteranceError(stage="asr", code=exc.code.name, message=str(exc)),
        ))

    async def _final(self, utterance: Utterance, transcript_text: str, language: str, compute_s: float,
                     queue_wait_s: float) -> None:
        self._answered(utterance)
        await self.emit(asr_pb2.RecognizeResponse(
            utterance_id=utterance.id,
            audio_s=utterance.seconds,
            final=common_pb2.FinalTranscript(
                text=transcript_text, language=language, engine=self.engine_name,
                engine_compute_s=compute_s, queue_wait_s=queue_wait_s,
            ),
        ))

    async def _partial_text(self, utterance: Utterance, audio_s: float, partial_text: str, stability: float) -> None:
        await self.emit(asr_pb2.RecognizeResponse(
            utterance_id=utterance.id, audio_s=audio_s,
            partial=common_pb2.PartialTranscript(text=partial_text, stability=stability),
        ))

    @abc.abstractmethod
    def _open_utterance(self, utterance_id: int) -> Utterance:
        """A new utterance's state."""

    @abc.abstractmethod
    def _grow(self, utterance: Utterance, pcm: bytes) -> None:
        """More audio of an utterance (within the length limit)."""

    @abc.abstractmethod
    def _finish(self, utterance: Utterance) -> None:
        """The utterance ended: make sure its final (or error) will be emitted."""

    @abc.abstractmethod
    def _stop(self, utterance: Utterance) -> None:
        """Stop any work in flight for the utterance (its stream is going away or it failed)."""


@dataclass
class _Redecoded(Utterance):
    audio: bytearray = field(default_factory=bytearray)
    decoded_bytes: int = 0  # audio length at the last partial re-decode
    partial: asyncio.Task | None = None
    previous_decode: str = ""
    committed: str = ""


class RedecodeSession(Session):
    """Engines that transcribe whole utterances (whisper, voxtral) through the batching scheduler."""

    def __init__(self, scheduler: Scheduler, emit: Emit, *, engine_name: str, language: str | None,
                 partials: bool, partial_interval_s: float, **limits):
        super().__init__(emit, engine_name=engine_name, **limits)
        self.scheduler = scheduler
        self.language = language
        self.partials = partials
        self.partial_interval = int(partial_interval_s * SAMPLE_RATE) * SAMPLE_WIDTH

    def _open_utterance(self, utterance_id: int) -> _Redecoded:
        return _Redecoded(utterance_id)

    def _grow(self, utterance: _Redecoded, pcm: bytes) -> None:
        utterance.audio += pcm
        if (
            self.partials
            and utterance.partial is None
            and len(utterance.audio) - utterance.decoded_bytes >= self.partial_interval
        ):
            utterance.decoded_bytes = len(utterance.audio)
            utterance.partial = asyncio.create_task(self._partial(utterance))

    def _finish(self, utterance: _Redecoded) -> None:
        self._stop(utterance)
        self._spawn(self._transcribe(utterance))

    def _stop(self, utterance: _Redecoded) -> None:
        if utterance.partial is not None:
            utterance.partial.cancel()
            utterance.partial = None

    def _request(self, utterance: _Redecoded, final: bool) -> AsrRequest:
        return AsrRequest(pcm_to_float(utterance.audio), self.language, final=final)

    async def _partial(self, utterance: _Redecoded) -> None:
        audio_s = utterance.seconds
        try:
            future = self.scheduler.submit(self._request(utterance, final=False), stream=self)
            if future is None:
                return  # skipped under load
            try:
                transcript = await future
            except asyncio.CancelledError:
                future.cancel()  # frees the queue slot: the scheduler drops cancelled requests
                raise
            except errors.VoxmeshError:
                return  # a failed partial is not reported; the final will be
            agreed = text.agreed_prefix(utterance.previous_decode, transcript.text)
            utterance.previous_decode = transcript.text
            if not text.extends(agreed, utterance.committed):
                return  # nothing new is settled
            utterance.committed = agreed
            await self._partial_text(utterance, audio_s, agreed, len(agreed) / len(transcript.text))
        finally:
            if utterance.partial is asyncio.current_task():
                utterance.partial = None

    async def _transcribe(self, utterance: _Redecoded) -> None:
        try:
            future = self.scheduler.submit(self._request(utterance, final=True), stream=self, recorded=self.recorded)
            try:
                transcript = await future
            except asyncio.CancelledError:
                future.cancel()
                raise
        except errors.VoxmeshError as exc:
            await self._fail(utterance, exc)
            return
        await self._final(utterance, transcript.text, transcript.language, transcript.compute_s, transcript.queue_wait_s)
