"""One Recognize stream: its open utterances and the requests they put to the scheduler.

Utterances grow as audio arrives. When the stream asked for partials, an utterance is re-decoded each
time `partial_interval_s` of new audio has arrived and no re-decode of it is in flight; a partial that
comes back after its utterance ended is dropped. Partials follow LocalAgreement-2: the words two
consecutive decodes agree on from the start are committed, a partial carries only the committed text
(it grows, it never takes words back), and its stability is the committed share of the latest decode. At the utterance's end its final is queued, and answered
with the transcript or with the error that prevented one.
"""

from __future__ import annotations

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
class _Utterance:
    id: int
    audio: bytearray = field(default_factory=bytearray)
    decoded_samples: int = 0  # audio length at the last partial re-decode
    partial: asyncio.Task | None = None
    previous_decode: str = ""
    committed: str = ""
    failed: bool = False

    @property
    def seconds(self) -> float:
        return len(self.audio) / (SAMPLE_WIDTH * SAMPLE_RATE)


class RecognizeSession:
    def __init__(
        self,
        scheduler: Scheduler,
        emit: Emit,
        *,
        engine_name: str,
        language: str | None,
        partials: bool,
        partial_interval_s: float,
        max_utterance_s: float,
    ):
        self.scheduler = scheduler
        self.emit = emit
        self.engine_name = engine_name
        self.language = language
        self.partials = partials
        self.partial_interval = int(partial_interval_s * SAMPLE_RATE) * SAMPLE_WIDTH
        self.max_bytes = int(max_utterance_s * SAMPLE_RATE) * SAMPLE_WIDTH
        self.max_utterance_s = max_utterance_s
        self._open: dict[int, _Utterance] = {}
        self._ended: set[int] = set()
        self._finals: set[asyncio.Task] = set()

    def audio(self, utterance_id: int, pcm: bytes) -> None:
        if utterance_id in self._ended:
            raise errors.InvalidArgument(f"audio for utterance {utterance_id} arrived after its end")
        utterance = self._open.setdefault(utterance_id, _Utterance(utterance_id))
        if utterance.failed:
            return
        metrics.AUDIO_SECONDS.inc(len(pcm) / (SAMPLE_WIDTH * SAMPLE_RATE))
        utterance.audio += pcm
        if len(utterance.audio) > self.max_bytes:
            utterance.failed = True
            self._cancel_partial(utterance)
            self._spawn_final(self._fail(utterance, errors.InvalidArgument(
                f"utterance {utterance_id} is longer than {self.max_utterance_s:g} s, the longest this service "
                "accepts (VOXMESH_ASR_MAX_UTTERANCE_S); split speech into shorter utterances"
            )))
            return
        if (
            self.partials
            and utterance.partial is None
            and len(utterance.audio) - utterance.decoded_samples >= self.partial_interval
        ):
            utterance.decoded_samples = len(utterance.audio)
            utterance.partial = asyncio.create_task(self._partial(utterance))

    def end(self, utterance_id: int) -> None:
        if utterance_id in self._ended:
            raise errors.InvalidArgument(f"utterance {utterance_id} was ended twice")
        self._ended.add(utterance_id)
        utterance = self._open.pop(utterance_id, None) or _Utterance(utterance_id)
        self._cancel_partial(utterance)
        if not utterance.failed:
            self._spawn_final(self._final(utterance))

    async def drain(self) -> None:
        """Wait until every ended utterance has been answered; answer the ones never ended as failed."""
        for utterance in list(self._open.values()):
            self._cancel_partial(utterance)
            if not utterance.failed:
                self._spawn_final(self._fail(utterance, errors.InvalidArgument(
                    f"the stream closed before utterance {utterance.id} was ended"
                )))
        self._open.clear()
        while self._finals:
            await asyncio.gather(*self._finals)

    def cancel(self) -> None:
        for utterance in self._open.values():
            self._cancel_partial(utterance)
        for task in self._finals:
            task.cancel()

    def _spawn_final(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.create_task(coroutine)
        self._finals.add(task)
        task.add_done_callback(self._finals.discard)

    @staticmethod
    def _cancel_partial(utterance: _Utterance) -> None:
        if utterance.partial is not None:
            utterance.partial.cancel()
            utterance.partial = None

    def _request(self, utterance: _Utterance, final: bool) -> AsrRequest:
        return AsrRequest(pcm_to_float(utterance.audio), self.language, final=final)

    async def _partial(self, utterance: _Utterance) -> None:
        audio_s = utterance.seconds
        try:
            future = self.scheduler.submit(self._request(utterance, final=False))
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
            await self.emit(asr_pb2.RecognizeResponse(
                utterance_id=utterance.id,
                audio_s=audio_s,
                partial=common_pb2.PartialTranscript(text=agreed, stability=len(agreed) / len(transcript.text)),
            ))
        finally:
            if utterance.partial is asyncio.current_task():
                utterance.partial = None

    async def _final(self, utterance: _Utterance) -> None:
        try:
            future = self.scheduler.submit(self._request(utterance, final=True))
            try:
                transcript = await future
            except asyncio.CancelledError:
                future.cancel()
                raise
        except errors.VoxmeshError as exc:
            await self._fail(utterance, exc)
            return
        await self.emit(asr_pb2.RecognizeResponse(
            utterance_id=utterance.id,
            audio_s=utterance.seconds,
            final=common_pb2.FinalTranscript(
                text=transcript.text,
                language=transcript.language,
                engine=self.engine_name,
                engine_compute_s=transcript.compute_s,
                queue_wait_s=transcript.queue_wait_s,
            ),
        ))

    async def _fail(self, utterance: _Utterance, exc: errors.VoxmeshError) -> None:
        UTTERANCE_ERRORS.labels("asr", exc.code.name).inc()
        log.info("utterance failed", extra={"utterance": utterance.id, "code": exc.code.name, "reason": str(exc)})
        await self.emit(asr_pb2.RecognizeResponse(
            utterance_id=utterance.id,
            audio_s=utterance.seconds,
            error=common_pb2.UtteranceError(stage="asr", code=exc.code.name, message=str(exc)),
        ))
