"""One client stream's chain: client audio -> VAD -> ASR -> LLM -> client events.

For each client stream the chain opens one stream to each inner service (the LLM only when
post-processing is asked for) and runs one task per hop:
- pump:     client audio (already 16 kHz mono) -> VAD; half-closes VAD when the client is done.
- vad:      speech start / audio / end -> client events, and the utterance's audio and end -> ASR;
            half-closes ASR when VAD has ended.
- asr:      partials and finals -> client events, finals -> LLM; half-closes LLM when ASR has ended.
- llm:      processed deltas and done -> client events.
- watchdog: an utterance with no final within `final_timeout_s` of its end (or no processed text within
            `processed_timeout_s` of its final) is reported failed, so nothing is lost silently; a stage
            that keeps its stream open with nothing left to answer is abandoned.
The chain ends when ASR and (if used) LLM have ended. Each utterance's audio is held until its final
arrives. A VAD or ASR failure reports every open utterance as failed, then ends the client call with the
downstream's status; an LLM failure only fails post-processing (the finals stand and the call goes on).
A client that hangs up cancels every task and downstream call of its chain.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from gateway import metrics
from gateway.downstream import Downstream
from gateway.utterance import Utterance
from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import asr_pb2, llm_pb2, transcription_pb2, vad_pb2

log = logging.getLogger("voxmesh.gateway.chain")

_END = object()
WATCHDOG_INTERVAL_S = 0.25
MAX_SENT_MARKS = 1024  # send times kept for the VAD hop's latency (~100 s of 100 ms chunks)


@dataclass(frozen=True)
class ChainConfig:
    language: str = ""
    partials: bool = False
    post_processing: bool = False
    instruction: str = ""


def _now() -> float:
    return time.perf_counter()


class Chain:
    def __init__(self, config: ChainConfig, downstream: Downstream, settings: GatewaySettings):
        self.config = config
        self.downstream = downstream
        self.settings = settings
        self._out: asyncio.Queue = asyncio.Queue(maxsize=settings.event_queue_size)
        self._utterances: dict[int, Utterance] = {}
        self._sent: deque[tuple[int, float]] = deque(maxlen=MAX_SENT_MARKS)  # (samples sent so far, when)
        self._calls: dict[str, grpc.aio.StreamStreamCall] = {}
        self._readers: dict[str, asyncio.Task] = {}
        self._ended: set[str] = set()  # stages whose downstream stream has ended
        self._idle_since: dict[str, float] = {}
        self._llm_failure = ""
        self._done = False

    async def run(
        self, audio: AsyncIterator[bytes], deadline_s: float | None = None
    ) -> AsyncIterator[transcription_pb2.TranscriptionEvent]:
        """Events of the stream, in order; raises the error that ended it early. `deadline_s`: the
        client's remaining time, passed on to every downstream call."""
        timeout = min(self.settings.max_stream_s, deadline_s if deadline_s is not None else math.inf)
        self._calls["vad"] = self.downstream.vad.Detect(timeout=timeout)
        self._calls["asr"] = self.downstream.asr.Recognize(timeout=timeout)
        if self.config.post_processing:
            self._calls["llm"] = self.downstream.llm.Process(timeout=timeout)
        readers = {"vad": self._read_vad, "asr": self._read_asr, "llm": self._read_llm}
        self._readers = {stage: asyncio.create_task(self._guard(stage, readers[stage]())) for stage in self._calls}
        tasks = [
            asyncio.create_task(self._guard("vad", self._pump(audio))),
            asyncio.create_task(self._watchdog()),
            *self._readers.values(),
        ]
        try:
            while (item := await self._out.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            for call in self._calls.values():
                call.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for utterance in self._utterances.values():
                utterance.release()

    # -- stages ---------------------------------------------------------------------------------

    async def _guard(self, stage: str, work) -> None:
        """Run a stage; turn its failure into events (and, but for the LLM, the call's end)."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or exc.code().name
            if stage == "llm":
                await self._llm_failed(f"{exc.code().name}: the post-processor failed: {details}")
            else:
                await self._fail(errors.DownstreamError(stage, exc.code(), details))
        except Exception as exc:  # noqa: BLE001 - client input errors and bugs end the call with a status
            await self._fail(exc)

    async def _write(self, stage: str, request) -> bool:
        """Send to a downstream; False when its call has ended (its reader reports how)."""
        try:
            await self._calls[stage].write(request)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            return False
        return True

    async def _pump(self, audio: AsyncIterator[bytes]) -> None:
        await self._write("vad", vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=SAMPLE_RATE)))
        await self._write("asr", asr_pb2.RecognizeRequest(config=asr_pb2.RecognizeConfig(
            sample_rate_hz=SAMPLE_RATE, language=self.config.language, partial_results=self.config.partials,
        )))
        if self.config.post_processing:
            await self._write("llm", llm_pb2.ProcessRequest(
                config=llm_pb2.ProcessConfig(instruction=self.config.instruction)
            ))
        samples = 0
        async for pcm in audio:
            if not pcm:
                continue
            samples += len(pcm) // SAMPLE_WIDTH
            self._sent.append((samples, _now()))
            if not await self._write("vad", vad_pb2.DetectRequest(audio=pcm)):
                return
        await self._half_close("vad")

    async def _read_vad(self) -> None:
        vad = self._calls["vad"]
        while (response := await vad.read()) is not grpc.aio.EOF:
            now = _now()
            self._observe_vad_hop(response.input_through_s, now)
            kind = response.WhichOneof("event")
            if kind == "start":
                utterance = Utterance(response.utterance_id, response.start_s, now, end_s=response.start_s)
                self._utterances[utterance.id] = utterance
                await self._emit(utterance.event(speech_started=transcription_pb2.SpeechStarted()))
                continue
            utterance = self._utterances[response.utterance_id]
            if kind == "audio":
                utterance.hold(response.audio.audio)
                utterance.end_s = response.end_s
                await self._write("asr", asr_pb2.RecognizeRequest(audio=asr_pb2.UtteranceAudio(
                    utterance_id=utterance.id, audio=response.audio.audio
                )))
            elif kind == "end":
                utterance.end_s = response.end_s
                utterance.ended_at = now
                await self._emit(utterance.event(speech_ended=transcription_pb2.SpeechEnded(reason=response.end.reason)))
                utterance.end_sent_at = _now()
                await self._write("asr", asr_pb2.RecognizeRequest(end=asr_pb2.UtteranceEnd(utterance_id=utterance.id)))
                self._retire(utterance)
        await self._finish_stage("vad")

    async def _read_asr(self) -> None:
        asr = self._calls["asr"]
        while (response := await asr.read()) is not grpc.aio.EOF:
            now = _now()
            utterance = self._utterances.get(response.utterance_id)
            if utterance is None or utterance.final_at is not None:
                continue  # a result for an utterance already reported (the watchdog gave up on it)
            kind = response.WhichOneof("result")
            if kind == "partial":
                if not utterance.partial_seen:
                    utterance.partial_seen = True
                    metrics.SPEECH_START_TO_FIRST_PARTIAL.observe(now - utterance.started_at)
                await self._emit(transcription_pb2.TranscriptionEvent(
                    utterance_id=utterance.id, start_s=utterance.start_s,
                    end_s=utterance.start_s + response.audio_s, partial=response.partial,
                ))
            elif kind == "final":
                utterance.resolve(now, "final")
                if utterance.ended_at is not None:
                    latency = now - utterance.ended_at
                    metrics.SPEECH_END_TO_FINAL.observe(latency)
                    metrics.MESH_OVERHEAD.observe(max(0.0, latency - response.final.engine_compute_s))
                if utterance.end_sent_at is not None:
                    metrics.HOP.labels("asr").observe(now - utterance.end_sent_at)
                await self._emit(utterance.event(final=response.final))
                if self.config.post_processing:
                    await self._post_process(utterance, response.final.text)
            else:
                utterance.resolve(now, "error")
                await self._emit(utterance.event(error=response.error))
            self._retire(utterance)
        await self._finish_stage("asr")

    async def _post_process(self, utterance: Utterance, text: str) -> None:
        if self._llm_failure:
            await self._emit(utterance.processing_failed(self._llm_failure))
            return
        utterance.processing = True
        utterance.llm_sent_at = _now()
        request = llm_pb2.ProcessRequest(transcript=llm_pb2.TranscriptSegment(utterance_id=utterance.id, text=text))
        await self._write("llm", request)  # a failed call is reported by the LLM reader

    async def _read_llm(self) -> None:
        llm = self._calls["llm"]
        while (response := await llm.read()) is not grpc.aio.EOF:
            now = _now()
            utterance = self._utterances.get(response.utterance_id)
            if utterance is None or not utterance.processing:
                continue
            if not utterance.first_delta_seen:
                utterance.first_delta_seen = True
                metrics.FINAL_TO_FIRST_DELTA.observe(now - utterance.final_at)
                metrics.HOP.labels("llm").observe(now - utterance.llm_sent_at)
            if response.WhichOneof("result") == "error":
                await self._emit(utterance.processing_failed(f"{response.error.code}: {response.error.message}"))
            else:
                if response.processed.done:
                    utterance.processing = False
                    metrics.FINAL_TO_PROCESSED.observe(now - utterance.final_at)
                await self._emit(utterance.event(processed=response.processed))
            self._retire(utterance)
        await self._finish_stage("llm")

    async def _watchdog(self) -> None:
        """Report overdue finals and processed texts; abandon a stage that keeps its stream open with
        nothing left to answer after the stage before it ended, so that a stuck service cannot hold the call."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            now = _now()
            for utterance in list(self._utterances.values()):
                if utterance.final_at is None and utterance.ended_at is not None:
                    if now - utterance.ended_at > self.settings.final_timeout_s:
                        await self._emit(utterance.failed(
                            now, "asr", "DEADLINE_EXCEEDED",
                            f"no final transcript within {self.settings.final_timeout_s:g} s of speech end",
                        ))
                elif utterance.processing and now - utterance.llm_sent_at > self.settings.processed_timeout_s:
                    await self._emit(utterance.processing_failed(
                        f"DEADLINE_EXCEEDED: no processed text within {self.settings.processed_timeout_s:g} s "
                        "of the final transcript"
                    ))
                self._retire(utterance)
            await self._abandon_idle("asr", "vad", lambda u: u.final_at is None, self.settings.final_timeout_s, now)
            await self._abandon_idle("llm", "asr", lambda u: u.processing, self.settings.processed_timeout_s, now)

    async def _abandon_idle(self, stage: str, previous: str, open_work, grace_s: float, now: float) -> None:
        if stage not in self._calls or stage in self._ended or previous not in self._ended:
            return
        if any(open_work(u) for u in self._utterances.values()):
            self._idle_since.pop(stage, None)
            return
        if now - self._idle_since.setdefault(stage, now) > grace_s:
            log.warning("abandoning a downstream stream that did not end", extra={"stage": stage})
            self._readers[stage].cancel()
            self._calls[stage].cancel()
            await self._finish_stage(stage)

    # -- ends -----------------------------------------------------------------------------------

    async def _half_close(self, stage: str) -> None:
        try:
            await self._calls[stage].done_writing()
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            pass  # the call already ended; its reader reports how

    async def _finish_stage(self, stage: str) -> None:
        """A stage's downstream ended: answer what it left unanswered, half-close the next one, maybe end."""
        self._ended.add(stage)
        now = _now()
        if stage == "vad":
            await self._half_close("asr")
        elif stage == "asr":
            for utterance in list(self._utterances.values()):
                if utterance.final_at is None:
                    await self._emit(utterance.failed(
                        now, "asr", "INTERNAL", "the ASR service ended the stream without answering this utterance"
                    ))
            if "llm" in self._calls and "llm" not in self._ended:
                await self._half_close("llm")
        elif stage == "llm":
            for utterance in list(self._utterances.values()):
                if utterance.processing:
                    await self._emit(utterance.processing_failed(
                        "INTERNAL: the post-processor ended the stream without answering this transcript"
                    ))
        await self._maybe_end()

    async def _llm_failed(self, reason: str) -> None:
        """Post-processing is gone for this stream: say so for every transcript, now and to come."""
        self._llm_failure = reason
        self._ended.add("llm")
        for utterance in list(self._utterances.values()):
            if utterance.processing:
                await self._emit(utterance.processing_failed(reason))
            self._retire(utterance)
        await self._maybe_end()

    async def _maybe_end(self) -> None:
        if self._done or "asr" not in self._ended or ("llm" in self._calls and "llm" not in self._ended):
            return
        self._done = True
        await self._out.put(_END)

    async def _fail(self, exc: BaseException) -> None:
        """Report every utterance still open as failed, then end the call with the error."""
        code, message = errors.status_of(exc)
        stage = getattr(exc, "stage", "gateway")
        now = _now()
        for utterance in list(self._utterances.values()):
            if utterance.final_at is None:
                await self._emit(utterance.failed(now, stage, code.name, message))
            elif utterance.processing:
                await self._emit(utterance.processing_failed(f"{code.name}: {message}"))
        await self._out.put(exc)

    # -- helpers --------------------------------------------------------------------------------

    def _observe_vad_hop(self, input_through_s: float, now: float) -> None:
        through = round(input_through_s * SAMPLE_RATE)
        while len(self._sent) > 1 and self._sent[0][0] < through:
            self._sent.popleft()
        if self._sent and self._sent[0][0] >= through:
            metrics.HOP.labels("vad").observe(now - self._sent[0][1])

    def _retire(self, utterance: Utterance) -> None:
        """Forget an utterance nothing more can happen to (keeps the chain's state bounded)."""
        if utterance.finished:
            self._utterances.pop(utterance.id, None)

    async def _emit(self, event: transcription_pb2.TranscriptionEvent) -> None:
        await self._out.put(event)
