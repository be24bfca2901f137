"""One Recognize stream: its utterances, what every engine's session shares (`Session`). How audio becomes
text is the subclass's: RedecodeSession (voxmesh/services/asr/redecode_session.py) for engines that
transcribe whole utterances, LiveSession (voxmesh/services/asr/live_session.py) for streaming engines.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors
from voxmesh.metrics import UTTERANCE_ERRORS
from voxmesh.services.asr import metrics
from voxmesh.services.asr.engines import Word
from voxmesh.v1 import asr_pb2, common_pb2

log = logging.getLogger("voxmesh.asr.session")

Emit = Callable[[asr_pb2.RecognizeResponse], Awaitable[None]]


@dataclass
class SessionUtterance:
    id: int
    received: int = 0  # bytes of audio
    failed: bool = False

    @property
    def seconds(self) -> float:
        return self.received / (SAMPLE_WIDTH * SAMPLE_RATE)


U = TypeVar("U", bound=SessionUtterance)


class Session(abc.ABC, Generic[U]):
    """What every kind of session does: validate the stream's order of messages, bound utterance
    length and the utterances in flight, answer every utterance exactly once (a final or an error), and
    drain at the stream's end. Subclasses say how audio becomes text: `_open_utterance`, `_blank_utterance`,
    `_grow`, `_finish`, `_stop`, on their own kind of utterance (`U`).

    A stream may have `max_in_flight` utterances open or waiting for their answer. One more is refused
    (RESOURCE_EXHAUSTED) on a live stream; on a recorded one, `admit` waits for room, and with it the
    reading of the stream's requests: the caller's sends wait (flow control) instead of anything being shed.
    """

    def __init__(
        self, emit: Emit, *, engine_name: str, max_utterance_s: float, recorded: bool = False, max_in_flight: int = 8
    ):
        self.emit = emit
        self.engine_name = engine_name
        self.max_bytes = int(max_utterance_s * SAMPLE_RATE) * SAMPLE_WIDTH
        self.max_utterance_s = max_utterance_s
        self.recorded = recorded
        self.max_in_flight = max_in_flight
        self._open: dict[int, U] = {}
        self._ended: set[int] = set()
        self._in_flight: set[int] = set()  # seen and not yet answered
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def admit(self, utterance_id: int) -> None:
        """Before a message of an utterance: on a recorded stream, wait until a new utterance has room."""
        if self.recorded and utterance_id not in self._in_flight and utterance_id not in self._ended:
            while len(self._in_flight) >= self.max_in_flight:
                self._room.clear()
                await self._room.wait()

    def audio(self, utterance_id: int, pcm: bytes, pause_s: float = 0.0) -> None:
        """More of an utterance's audio; `pause_s`: how long the speaker has paused at its end (the VAD's
        judgement, 0 while speech goes on)."""
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
            self._give_up(
                utterance,
                errors.InvalidArgument(
                    f"utterance {utterance_id} is longer than {self.max_utterance_s:g} s, the longest this service "
                    "accepts (VOXMESH_ASR_MAX_UTTERANCE_S); split speech into shorter utterances"
                ),
            )
            return
        self._grow(utterance, pcm, pause_s)

    def end(self, utterance_id: int) -> None:
        if utterance_id in self._ended:
            raise errors.InvalidArgument(f"utterance {utterance_id} was ended twice")
        self._ended.add(utterance_id)
        utterance = self._open.pop(utterance_id, None) or self._new(utterance_id)
        if not utterance.failed:
            self._finish(utterance)

    def _new(self, utterance_id: int) -> U:
        full = len(self._in_flight) >= self.max_in_flight
        self._in_flight.add(utterance_id)
        if full:  # a live stream (a recorded one waited in `admit`): refuse it, the stream goes on
            utterance = self._blank_utterance(utterance_id)
            self._give_up(
                utterance,
                errors.ResourceExhausted(
                    f"this stream already has {self.max_in_flight} utterances open or waiting for the engine, the "
                    "most one stream may have (VOXMESH_ASR_MAX_STREAM_UTTERANCES); send recorded audio as "
                    "recorded, or slower"
                ),
            )
            return utterance
        return self._open_utterance(utterance_id)

    def continue_from(self, context: list[str]) -> None:
        """The stream's finals before this call (a continued stream); sessions whose engine takes context
        start from them."""

    def _answered(self, utterance: SessionUtterance) -> None:
        self._in_flight.discard(utterance.id)
        self._room.set()

    async def drain(self) -> None:
        """Wait until every ended utterance has been answered; answer the ones never ended as failed."""
        for utterance in list(self._open.values()):
            if not utterance.failed:
                self._give_up(
                    utterance, errors.InvalidArgument(f"the stream closed before utterance {utterance.id} was ended")
                )
        self._open.clear()
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def cancel(self) -> None:
        for utterance in self._open.values():
            self._stop(utterance)
        for task in self._tasks:
            task.cancel()

    def _give_up(self, utterance: U, exc: errors.VoxmeshError) -> None:
        utterance.failed = True
        self._stop(utterance)
        self._spawn(self._fail(utterance, exc))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fail(self, utterance: SessionUtterance, exc: errors.VoxmeshError) -> None:
        self._answered(utterance)
        UTTERANCE_ERRORS.labels("asr", exc.code.name).inc()
        log.info("utterance failed", extra={"utterance": utterance.id, "code": exc.code.name, "reason": str(exc)})
        await self.emit(
            asr_pb2.RecognizeResponse(
                utterance_id=utterance.id,
                audio_s=utterance.seconds,
                error=common_pb2.UtteranceError(stage="asr", code=exc.code.name, message=str(exc)),
            )
        )

    async def _final(
        self,
        utterance: SessionUtterance,
        transcript_text: str,
        language: str,
        compute_s: float,
        queue_wait_s: float,
        busy_wait_s: float = 0.0,
        words: Sequence[Word] = (),
        confidence: float | None = None,
    ) -> None:
        self._answered(utterance)
        final = common_pb2.FinalTranscript(
            text=transcript_text,
            language=language,
            engine=self.engine_name,
            engine_compute_s=compute_s,
            queue_wait_s=queue_wait_s,
            engine_busy_wait_s=busy_wait_s,
            words=[
                common_pb2.WordInfo(word=w.text, start_s=w.start_s, end_s=w.end_s, confidence=w.confidence)
                for w in words
            ],
            confidence=confidence,
        )
        await self.emit(asr_pb2.RecognizeResponse(utterance_id=utterance.id, audio_s=utterance.seconds, final=final))

    async def _partial_text(
        self, utterance: SessionUtterance, audio_s: float, partial_text: str, stability: float
    ) -> None:
        await self.emit(
            asr_pb2.RecognizeResponse(
                utterance_id=utterance.id,
                audio_s=audio_s,
                partial=common_pb2.PartialTranscript(text=partial_text, stability=stability),
            )
        )

    @abc.abstractmethod
    def _open_utterance(self, utterance_id: int) -> U:
        """A new utterance's state."""

    @abc.abstractmethod
    def _blank_utterance(self, utterance_id: int) -> U:
        """An utterance's state with no work started for it: one refused before it began."""

    @abc.abstractmethod
    def _grow(self, utterance: U, pcm: bytes, pause_s: float) -> None:
        """More audio of an utterance (within the length limit), ending in a pause of `pause_s`."""

    @abc.abstractmethod
    def _finish(self, utterance: U) -> None:
        """The utterance ended: make sure its final (or error) will be emitted."""

    @abc.abstractmethod
    def _stop(self, utterance: U) -> None:
        """Stop any work in flight for the utterance (its stream is going away or it failed)."""
