"""One client stream's chain: client audio -> VAD -> ASR -> LLM -> client events.

The chain runs a hop per inner service (voxmesh/gateway/hops.py; the LLM only when post-processing is asked for),
each of which fails over to another replica when its stream is lost or its service goes away, and two
tasks:
- pump:     client audio (already 16 kHz mono) -> the VAD hop; its end half-closes the VAD.
- watchdog: what is overdue (voxmesh/gateway/watchdog.py) is reported failed, so nothing is lost silently; a
            VAD that stays unreachable for `final_timeout_s` ends the call.
The hops' readers call back `on_vad`, `on_asr` and `on_llm`, which move utterances through their states
(voxmesh/gateway/lifecycle.py) and emit the client's events. Finals and errors are released in utterance order, and
every event says how far the stream is settled, so a client that loses its gateway can resume (see
voxmesh/resume.py). The chain ends once the VAD has answered all of the input and every utterance is done.
A VAD or ASR answer with a status that is not failed over (a client input error, say) reports every open
utterance as failed and ends the call with that status; the same from the LLM fails post-processing only.
A client that hangs up cancels every task and downstream call of its chain.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator

import grpc
from opentelemetry import context as otel_context

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors, tasks, tracing
from voxmesh.channel import Channel
from voxmesh.gateway import metrics, watchdog
from voxmesh.gateway.admission import Admission
from voxmesh.gateway.config import ChainConfig, Flush
from voxmesh.gateway.downstream import NAMES, Downstream
from voxmesh.gateway.hop import Refused, now
from voxmesh.gateway.hops import AsrHop, LlmHop, VadHop, samples
from voxmesh.gateway.lifecycle import ChainUtterance, State
from voxmesh.gateway.spans import UtteranceSpans
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import asr_pb2, common_pb2, llm_pb2, transcription_pb2, vad_pb2

log = logging.getLogger("voxmesh.gateway.chain")


RECENT_FINALS = 8  # finals kept for a new ASR stream's context (the ASR keeps what its engine uses)


class Chain:
    def __init__(
        self, config: ChainConfig, downstream: Downstream, settings: GatewaySettings, admission: Admission | None = None
    ):
        """`admission`: where a live stream reports its ASR replica's load (voxmesh/gateway/admission.py)."""
        self.config = config
        self.downstream = downstream
        self.settings = settings
        self.admission = admission
        self.final_timeout_s = settings.recorded_final_timeout_s if config.recorded else settings.final_timeout_s
        self.timeout: float | None = None  # every downstream call's deadline
        self.utterances: dict[int, ChainUtterance] = {}
        self.request_id = tracing.request_id.get()
        self.spans = UtteranceSpans(otel_context.get_current())  # the call's span: each utterance's is its child
        self._unreleased: deque[int] = deque()  # announced utterances whose final or error is not out, in order
        self._releasing = asyncio.Lock()
        self._out: Channel[transcription_pb2.TranscriptionEvent] = Channel(settings.event_queue_size)
        self._llm_failure = ""
        self._done = False
        resume = config.resume
        offset_s = resume.offset_s if resume else 0.0
        self.settled_s = offset_s
        # the latest finals released: the context a new ASR stream (a failover) starts from
        self.finals: deque[str] = deque(resume.context if resume else (), maxlen=RECENT_FINALS)
        self.vad = VadHop(self, samples(offset_s), max(1, resume.next_utterance_id) if resume else 1)
        self.asr = AsrHop(self)
        self.llm = LlmHop(self, list(resume.context) if resume else []) if config.post_processing else None
        if resume and self.llm is not None:
            for pending in resume.pending:
                self._adopt(pending)

    def _adopt(self, pending: transcription_pb2.PendingTranscript) -> None:
        """A final the client has whose processed text its earlier call did not finish."""
        utterance = ChainUtterance(
            pending.utterance_id,
            pending.start_s,
            now(),
            end_s=pending.end_s,
            state=State.PROCESSING,
            final=common_pb2.FinalTranscript(text=pending.text),
        )
        utterance.resolved_at = utterance.released_at = now()
        utterance.processed.sent = pending.processed_so_far
        self.utterances[utterance.id] = utterance
        assert self.llm is not None  # adopted only with post-processing
        self.llm.history.append((utterance.id, pending.text))

    @property
    def hops(self) -> list:
        return [hop for hop in (self.vad, self.asr, self.llm) if hop is not None]

    async def start(self, deadline_s: float | None = None) -> None:
        """Open a stream to each inner service; return once the VAD and the ASR have accepted theirs (the
        LLM may come later). Raises the status of a service that refused its config (a language the ASR
        lacks, say), or UNAVAILABLE naming the service that did not answer in `replica_wait_s`.
        `deadline_s`: the client's remaining time, passed on to every downstream call."""
        self.timeout = min(self.settings.max_stream_s, deadline_s if deadline_s is not None else math.inf)
        for hop in self.hops:
            hop.connect()
        try:
            opened = await asyncio.gather(*(hop.opened(self.settings.replica_wait_s) for hop in self.hops))
        except Refused as refused:
            await self.close()
            stage = next(hop.name for hop in self.hops if hop.refused is refused)
            raise errors.DownstreamError(stage, refused.code, refused.details) from None
        missing = [hop.name for hop, ok in zip(self.hops, opened, strict=True) if not ok and hop.name != "llm"]
        if missing:
            await self.close()
            raise errors.Unavailable(
                f"the {' and the '.join(NAMES[name] for name in missing)} service did not take the stream within "
                f"{self.settings.replica_wait_s:g} s; retry later"
            )

    async def close(self) -> None:
        await asyncio.gather(*(hop.close() for hop in self.hops), return_exceptions=True)

    async def run(self, audio: AsyncIterator[bytes | Flush]) -> AsyncIterator[transcription_pb2.TranscriptionEvent]:
        """Events of the stream, once `start` has returned, in order; raises the error that ended it early."""
        tasks = [
            asyncio.create_task(self._guard(self._pump(audio)), name="pump"),
            asyncio.create_task(self._guard(self._watchdog()), name="watchdog"),
        ]
        try:
            async for event in self._out:
                yield event
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()
            for utterance in self.utterances.values():
                utterance.release_audio()
            self.spans.end_all()

    def going_away(self) -> None:
        """The gateway is stopping: tell the client to resume the stream on a new call."""
        event = transcription_pb2.TranscriptionEvent(
            going_away=common_pb2.GoingAway(reason="the gateway is stopping; resume the stream on a new call")
        )
        tasks.spawn(self._emit(event), name="going-away")

    # -- tasks ----------------------------------------------------------------------------------

    async def _guard(self, work) -> None:
        """Run a task; a failure (a client input error, a bug) ends the call with its status."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(exc)

    async def _pump(self, audio: AsyncIterator[bytes | Flush]) -> None:
        """Client audio (and flushes) to the VAD; a live stream that runs more than `live_burst_s` ahead of real
        time is read no faster than it plays (its client's sends wait), so that it cannot flood the engines."""
        started, heard_s = time.monotonic(), 0.0
        async for pcm in audio:
            if isinstance(pcm, Flush):
                await self.vad.flush()
                continue
            if not pcm:
                continue
            await self.vad.push(pcm)
            heard_s += len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)
            ahead = heard_s - (time.monotonic() - started) - self.settings.live_burst_s
            if ahead > 0 and not self.config.recorded:
                await asyncio.sleep(ahead)
        await self.vad.end_input()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(watchdog.INTERVAL_S)
            at = now()
            for late in watchdog.overdue(self, at):
                if late.stage == "asr":
                    late.utterance.fail(at, "asr", late.code, late.message)
                else:
                    await self._emit_processing_failed(late.utterance, f"{late.code}: {late.message}")
            await self._release()
            watchdog.check_vad(self, at)

    # -- what the hops report -------------------------------------------------------------------

    async def on_vad(self, response: vad_pb2.DetectResponse) -> None:
        self.settled_s = max(self.settled_s, response.settled_through_s)
        kind = response.WhichOneof("event")
        if kind == "start":
            if response.utterance_id in self.utterances:
                return
            started = ChainUtterance(response.utterance_id, response.start_s, now(), end_s=response.start_s)
            self.utterances[started.id] = started
            self._unreleased.append(started.id)
            await self._emit(started.event(speech_started=transcription_pb2.SpeechStarted()))
            return
        if kind == "progress":
            await self._emit(transcription_pb2.TranscriptionEvent(progress=transcription_pb2.StreamProgress()))
            return
        utterance = self.utterances.get(response.utterance_id)
        if utterance is None:
            return  # going_away, or an utterance the chain no longer has
        if kind == "audio":
            # The spans come without samples (caller_holds_audio); a VAD that predates the field sends them.
            pcm = response.audio.audio or self.vad.audio(response.start_s, response.end_s)
            utterance.hold(pcm, response.end_s, response.audio.pause_s)
            await self.asr.sync(utterance)
        elif kind == "end":
            if response.start_s < response.end_s and utterance.ended_at is None:  # its last audio (end_carries_audio)
                utterance.hold(self.vad.audio(response.start_s, response.end_s), response.end_s)
            if not utterance.end(response.end_s, now()):
                return
            await self._emit(utterance.event(speech_ended=transcription_pb2.SpeechEnded(reason=response.end.reason)))
            await self.asr.sync(utterance)
            self._retire(utterance)
            await self._maybe_end()

    async def vad_finished(self) -> None:
        await self._maybe_end()

    def on_asr_load(self, response: asr_pb2.RecognizeResponse) -> None:
        if self.admission is not None:
            self.admission.report(self, response.engine_utilization, response.engine_live_streams)

    async def on_asr(self, utterance: ChainUtterance, response: asr_pb2.RecognizeResponse) -> None:
        at = now()
        kind = response.WhichOneof("result")
        if kind == "partial":
            if utterance.state in (State.OPEN, State.ENDED):
                if not utterance.partial_seen:
                    utterance.partial_seen = True
                    metrics.SPEECH_START_TO_FIRST_PARTIAL.observe(at - utterance.started_at)
                await self._emit(
                    transcription_pb2.TranscriptionEvent(
                        utterance_id=utterance.id,
                        start_s=utterance.start_s,
                        end_s=utterance.start_s + response.audio_s,
                        partial=response.partial,
                    )
                )
        elif kind == "final":
            response.final.language_tag = self.config.language_tag or response.final.language
            for word in response.final.words:  # the ASR times words in the utterance; clients in the stream
                word.start_s = round(word.start_s + utterance.start_s, 3)
                word.end_s = round(word.end_s + utterance.start_s, 3)
            if utterance.resolve(at, final=response.final):
                if utterance.ended_at is not None:
                    latency = at - utterance.ended_at
                    metrics.SPEECH_END_TO_FINAL.observe(latency)
                    metrics.MESH_OVERHEAD.observe(max(0.0, latency - response.final.engine_compute_s))
                if utterance.end_sent_at is not None:
                    metrics.HOP.labels("asr").observe(at - utterance.end_sent_at)
                await self._release()
        elif kind == "error" and utterance.resolve(at, error=response.error):
            await self._release()

    async def on_llm(self, utterance: ChainUtterance, response: llm_pb2.ProcessResponse) -> None:
        if utterance.state is not State.PROCESSING:
            return
        at = now()
        if response.WhichOneof("result") == "error":
            await self._emit_processing_failed(utterance, f"{response.error.code}: {response.error.message}")
            return
        processed = response.processed
        # PROCESSING: released, and sent to the LLM (an answer comes only from the stream it was sent on)
        assert utterance.released_at is not None and utterance.llm_sent_at is not None
        if not utterance.first_delta_seen:
            utterance.first_delta_seen = True
            metrics.FINAL_TO_FIRST_DELTA.observe(at - utterance.released_at)
            metrics.HOP.labels("llm").observe(at - utterance.llm_sent_at)
        if processed.done:
            delta, restart = utterance.processed.done(processed.text)
            utterance.processing_done()
            metrics.FINAL_TO_PROCESSED.observe(at - utterance.released_at)
        else:
            forward = utterance.processed.delta(processed.delta)
            if forward is None:
                return  # the client has it from the attempt before a failover
            delta, restart = forward
        out = common_pb2.ProcessedText()
        out.CopyFrom(processed)
        out.delta, out.restart = delta, restart
        await self._emit(utterance.event(processed=out))
        self._retire(utterance)
        await self._maybe_end()

    async def hop_failed(self, stage: str, code: grpc.StatusCode, details: str) -> None:
        """A downstream answered with a status that is not failed over."""
        if stage != "llm":
            await self._fail(errors.DownstreamError(stage, code, details))
            return
        self._llm_failure = f"{code.name}: the post-processor failed: {details}"
        for utterance in list(self.utterances.values()):
            if utterance.state is State.PROCESSING:
                await self._emit_processing_failed(utterance, self._llm_failure)

    # -- utterances -------------------------------------------------------------------------------

    async def _release(self) -> None:
        """Send out finals and errors in utterance order, each once every earlier one is out; then the finals
        to post-process to the LLM."""
        async with self._releasing:
            to_process: list[ChainUtterance] = []
            while self._unreleased:
                utterance = self.utterances.get(self._unreleased[0])
                if utterance is not None and utterance.resolved_at is None:
                    break
                self._unreleased.popleft()
                if utterance is None:
                    continue
                await self._emit(utterance.release(now(), post_processing=self.llm is not None))
                if utterance.final is not None:
                    self.finals.append(utterance.final.text)
                if utterance.state is State.PROCESSING:
                    if self._llm_failure:
                        await self._emit_processing_failed(utterance, self._llm_failure)
                    else:
                        to_process.append(utterance)
                self._retire(utterance)
            if to_process:
                assert self.llm is not None  # PROCESSING only with post-processing
                # The client's events go first: this task's write to the LLM would run before the task that
                # writes them to the client, and hold the final back by that write's own work.
                await asyncio.sleep(0)
                for utterance in to_process:
                    await self.llm.submit(utterance)
        await self._maybe_end()

    async def _emit_processing_failed(self, utterance: ChainUtterance, reason: str) -> None:
        event = utterance.processing_failed(reason)
        if event is not None:
            await self._emit(event)
            self._retire(utterance)

    def _retire(self, utterance: ChainUtterance) -> None:
        """Forget an utterance nothing more can happen to (keeps the chain's state bounded)."""
        if utterance.finished:
            self.utterances.pop(utterance.id, None)
            self.spans.end(utterance.id)

    # -- ends -----------------------------------------------------------------------------------

    async def _maybe_end(self) -> None:
        if self._done or not self.vad.finished or self.utterances:
            return
        self._done = True
        await self._out.close()

    async def _fail(self, exc: BaseException) -> None:
        """Report every utterance still open as failed, then end the call with the error."""
        if self._done:
            return
        code, message = errors.status_of(exc)
        stage = getattr(exc, "stage", "gateway")
        self._llm_failure = f"{code.name}: {message}"
        at = now()
        for utterance in list(self.utterances.values()):
            utterance.fail(at, stage, code.name, message)
        await self._release()
        for utterance in list(self.utterances.values()):
            await self._emit_processing_failed(utterance, f"{code.name}: {message}")
        self._done = True
        await self._out.fail(exc)

    async def _emit(self, event: transcription_pb2.TranscriptionEvent) -> None:
        event.settled_through_s = self.settled_s
        if event.WhichOneof("event") == "error":
            event.error.request_id = self.request_id
        if event.utterance_id:
            self.spans.record(event)
        await self._out.put(event)

    def outgoing(self) -> tuple[tuple[str, str], ...]:
        """Metadata for the chain's downstream calls: its call's span and request id, whatever task calls."""
        return tracing.outgoing(self.spans.call, self.request_id)
