"""A Recognize stream on an engine that transcribes whole utterances (whisper, voxtral), through the batching
scheduler.

Utterances grow as audio arrives. When the stream asked for partials, an utterance is re-decoded each time
`partial_interval_s` of new audio has arrived, no re-decode of it is in flight, and the speaker is not in a
pause (the VAD's `pause_s`): a pause may be the utterance's end coming, and a final that arrived while its
partial ran would wait behind it on the engine. A partial that comes back after its utterance ended is
dropped. Partials follow LocalAgreement-2: the words two consecutive decodes
agree on from the start are committed, a partial carries only the committed text (it grows, it never takes
words back), and its stability is the committed share of the latest decode. At the utterance's end its final
is queued, and answered with the transcript or with the error that prevented one.

With context on (`context_chars` > 0), the session keeps the stream's latest final text, at most that many
characters, and gives it to the engine with every request, partials included; the engine bounds it in
tokens. With `lead_samples` too, the latest utterances (up to that much audio) are kept with their audio: the
lead, which the engine hears again before the utterance, with the text it said for them. An
utterance's final is asked for only once the utterance before it has been answered, so that each final is
conditioned on what came before it. The context is this stream's alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors, text
from voxmesh.audio import pcm_to_float
from voxmesh.services.asr.engines import AsrRequest
from voxmesh.services.asr.scheduler import BatchScheduler
from voxmesh.services.asr.session import Emit, Session, SessionUtterance


@dataclass
class _Redecoded(SessionUtterance):
    audio: bytearray = field(default_factory=bytearray)
    decoded_bytes: int = 0  # audio length at the last partial re-decode
    partial: asyncio.Task[None] | None = None
    previous_decode: str = ""
    committed: str = ""


class RedecodeSession(Session[_Redecoded]):
    """Engines that transcribe whole utterances (whisper, voxtral) through the batching scheduler."""

    def __init__(
        self,
        scheduler: BatchScheduler,
        emit: Emit,
        *,
        engine_name: str,
        language: str | None,
        partials: bool,
        partial_interval_s: float,
        context_chars: int = 0,
        lead_samples: int = 0,
        words: bool = False,
        hints: str = "",
        **limits,
    ):
        super().__init__(emit, engine_name=engine_name, **limits)
        self.scheduler = scheduler
        self.language = language
        self.words = words  # finals carry word timings
        self.hints = hints  # the stream's phrase hints and prompt, for the engine
        self.partials = partials
        self.partial_interval = int(partial_interval_s * SAMPLE_RATE) * SAMPLE_WIDTH
        self.context_chars = context_chars
        self.lead_samples = lead_samples
        self.context = ""  # the stream's final text before the lead's, for the engine
        self.lead: deque[tuple[bytes, str]] = deque()  # the latest utterances' audio and final text, oldest first
        self._previous_final: asyncio.Event | None = None  # set once the latest ended utterance is answered

    def _open_utterance(self, utterance_id: int) -> _Redecoded:
        return _Redecoded(utterance_id)

    def _blank_utterance(self, utterance_id: int) -> _Redecoded:
        return _Redecoded(utterance_id)

    def _grow(self, utterance: _Redecoded, pcm: bytes, pause_s: float) -> None:
        utterance.audio += pcm
        if (
            self.partials
            and utterance.partial is None
            and not pause_s  # in a pause the end may be near: a running partial would make the final wait
            and len(utterance.audio) - utterance.decoded_bytes >= self.partial_interval
        ):
            utterance.decoded_bytes = len(utterance.audio)
            utterance.partial = asyncio.create_task(self._partial(utterance))

    def _finish(self, utterance: _Redecoded) -> None:
        self._stop(utterance)
        previous, self._previous_final = self._previous_final, asyncio.Event()
        self._spawn(self._transcribe(utterance, previous, self._previous_final))

    def _stop(self, utterance: _Redecoded) -> None:
        if utterance.partial is not None:
            utterance.partial.cancel()
            utterance.partial = None

    def _request(self, utterance: _Redecoded, final: bool) -> AsrRequest:
        lead = tuple((pcm_to_float(audio), final_text) for audio, final_text in self.lead)
        return AsrRequest(
            pcm_to_float(utterance.audio),
            self.language,
            final=final,
            context=self.context,
            lead=lead,
            words=final and self.words,  # a partial's words are not sent: they would cost for nothing
            hints=self.hints,
        )

    def continue_from(self, context: list[str]) -> None:
        """Finals of this stream answered elsewhere (before a failover): text context, without their audio."""
        for final_text in context:
            self._remember(final_text, None)

    def _remember(self, final_text: str, audio: bytes | bytearray | None) -> None:
        if not self.context_chars or not final_text:
            return
        if audio is None or len(audio) // SAMPLE_WIDTH > self.lead_samples:
            while self.lead:  # the lead is the latest utterances: what comes before this one becomes text
                self._add_text(self.lead.popleft()[1])
            self._add_text(final_text)
            return
        self.lead.append((bytes(audio), final_text))
        while sum(len(audio) for audio, _ in self.lead) // SAMPLE_WIDTH > self.lead_samples:
            self._add_text(self.lead.popleft()[1])

    def _add_text(self, final_text: str) -> None:
        self.context = f"{self.context} {final_text}".strip()[-self.context_chars :]

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

    async def _transcribe(self, utterance: _Redecoded, previous: asyncio.Event | None, done: asyncio.Event) -> None:
        try:
            if previous is not None and self.context_chars:
                await previous.wait()  # the text before this utterance is its context
            await self._transcribe_now(utterance)
        finally:
            done.set()

    async def _transcribe_now(self, utterance: _Redecoded) -> None:
        try:
            future = self.scheduler.submit(self._request(utterance, final=True), stream=self, recorded=self.recorded)
            assert future is not None  # only a partial is skipped under load; a final is queued or refused
            try:
                transcript = await future
            except asyncio.CancelledError:
                future.cancel()
                raise
        except errors.VoxmeshError as exc:
            await self._fail(utterance, exc)
            return
        await self._final(
            utterance,
            transcript.text,
            transcript.result.language,
            transcript.compute_s,
            transcript.queue_wait_s,
            transcript.busy_wait_s,
            words=transcript.result.words,
            confidence=transcript.result.confidence,
        )
        self._remember(transcript.text, utterance.audio)  # after the final is out; before the next one begins
