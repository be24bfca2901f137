"""The chain's three hops, each a `Hop` (voxmesh/gateway/hop.py) that knows what its streams carry and what a new
stream must be sent again after a failover.

- VadHop: the client's audio. While the ASR takes the audio at the end (rpc.AUDIO_WANTED), the hop gathers the
  audio that comes before the VAD's next start or end can fall (`next_boundary_s`) and sends it in one message: in
  speech, a message per 400-500 ms instead of one per client chunk, and the chunk that can complete a start or an
  end goes at once. It keeps the audio the VAD has not settled (`settled_through_s`), and the VAD answers with the
  spans of the utterances' audio, which the hop cuts from what it holds; an utterance's last span comes with its
  end (`end_carries_audio`), one answer where the end would wait for the span's to be written. A new VAD stream
  starts at the settled offset with the next utterance id, inside the open utterance when there is one, so times
  and ids continue, no utterance is announced twice and no sample is skipped. The new VAD first listens to the
  open utterance's audio and a few seconds before it (`warmup_s`): a classifier that has not adapted to the
  speaker ends utterances early, and segments differently from the one it replaces.
- AsrHop: each utterance's audio and end: as the VAD hands the audio on, or, when the ASR says it wants
  the audio only at the end (finals decoded whole, no partials: rpc.AUDIO_WANTED), in 1 s messages: each
  whole second as soon as it is held, and the rest with the end. That saves the gateway and the ASR a
  message per 300 ms of speech, and leaves at most a second of audio to send once the end is known
  (sending all of it then put every write of it between the VAD's end and the ASR's). An ASR that
  says so (rpc.END_TAKES_AUDIO) takes that last second in the end message itself. Every utterance rides
  on one stream; when that stream is lost its unanswered utterances are replayed on the next one (held
  audio, then the end if it came), and answers from the lost stream are dropped. When the ASR goes away,
  its stream finishes the utterances it has and new ones go to a new stream: the move happens at an
  utterance boundary.
- LlmHop: finals to post-process, in order. A transcript without its done is sent again to the next stream,
  whose config carries the transcripts before it as context; what the client already has of its processed
  text is not sent twice (voxmesh/gateway/lifecycle.py's DeltaLedger).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH
from voxmesh.gateway import metrics
from voxmesh.gateway.hop import Hop, Stream, now
from voxmesh.gateway.lifecycle import UNRESOLVED, ChainUtterance, State
from voxmesh.v1 import asr_pb2, common_pb2, llm_pb2, vad_pb2

if TYPE_CHECKING:
    from voxmesh.gateway.chain import Chain

log = logging.getLogger("voxmesh.gateway.hops")

MAX_CHUNK_BYTES = SAMPLE_RATE * SAMPLE_WIDTH  # one second per message when audio is sent again
MAX_UNSETTLED_S = 60.0  # audio the VAD may leave unsettled before the client's audio waits for it
WARMUP_S = 3.0  # audio kept before the open utterance (or the settled offset) for a new VAD to listen to
MAX_SENT_MARKS = 1024  # send times kept for the VAD hop's latency (~100 s of 100 ms chunks)
MAX_CONTEXT = 8  # transcripts kept for a new post-processor stream's context (the LLM keeps what it uses)


def samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


class VadHop(Hop):
    name = "vad"

    def __init__(self, chain: Chain, offset: int, next_utterance: int):
        super().__init__(chain)
        self.buffer = bytearray()  # client audio from `_base` (samples); what is kept starts at `start`
        self.start = offset  # the first sample kept: the unsettled audio, and a warm-up before it
        self._base = offset  # the buffer's first sample: what lies before `start` goes once it is half the buffer
        self.settled = offset  # every sample before it is settled (see vad.proto)
        self.received = offset  # samples of client audio so far (the buffer's end)
        self.sent = offset  # samples sent on the current stream
        self.next_utterance = next_utterance
        self.flushes: deque[int] = deque()  # where the client asked for the utterance to end, until settled
        self.flushed_to = offset - 1  # the current stream had the flushes up to here
        self.open_since: int | None = None  # start of the announced utterance the VAD is inside
        self.boundary = offset  # the VAD's next start or end can fall no earlier (vad.proto: next_boundary_s)
        self.input_done = False
        self.finished = False  # the VAD answered all of the input
        self._room = asyncio.Event()
        self._room.set()
        self._marks: deque[tuple[int, float]] = deque(maxlen=MAX_SENT_MARKS)  # (samples sent, when)

    def _call(self, timeout):
        return self.chain.downstream.vad.Detect(timeout=timeout, wait_for_ready=True, metadata=self.chain.outgoing())

    def _config(self) -> vad_pb2.DetectRequest:
        config = vad_pb2.DetectConfig(
            sample_rate_hz=SAMPLE_RATE,
            offset_s=self.settled / SAMPLE_RATE,
            next_utterance_id=self.next_utterance,
            warmup_s=(self.settled - self.start) / SAMPLE_RATE,
            caller_holds_audio=True,
            end_carries_audio=True,
        )
        if self.open_since is not None:
            config.open_utterance.start_s = self.open_since / SAMPLE_RATE
        if self.chain.config.endpointing is not None:
            config.endpointing.CopyFrom(self.chain.config.endpointing)
        return vad_pb2.DetectRequest(config=config)

    def audio(self, start_s: float, end_s: float) -> bytes:
        """The held client audio of [start_s, end_s): the span of an utterance's audio the VAD announced
        (it is not settled before that answer, so the buffer still holds it)."""
        begin, end = samples(start_s), samples(end_s)
        assert self.start <= begin <= end <= self.received, "the VAD announced audio the gateway let go"
        return self._held(begin, end)

    def _held(self, begin: int, end: int) -> bytes:
        """The buffer's samples [begin, end), copied once."""
        with memoryview(self.buffer) as view:
            return bytes(view[(begin - self._base) * SAMPLE_WIDTH : (end - self._base) * SAMPLE_WIDTH])

    async def push(self, pcm: bytes) -> None:
        """Client audio (16 kHz mono): keep it until settled, send it when a stream is up."""
        while (self.received - self.settled) / SAMPLE_RATE >= MAX_UNSETTLED_S and not self.closed:
            self._room.clear()
            await self._room.wait()
        self.buffer += pcm
        self.received += len(pcm) // SAMPLE_WIDTH
        if self.received < self.boundary and self._gathers():
            return  # the VAD can say nothing new before it: gathered, to go in one message
        async with self.lock:
            if self.current is not None:
                await self._send(self.current)

    def _gathers(self) -> bool:
        """Whether audio before the VAD's next boundary may wait for the rest: only while the ASR takes an
        utterance's audio at its end (rpc.AUDIO_WANTED). An ASR that hears it as spoken (partials, or a
        streaming engine, whose final comes from what it has already heard) gets it as it comes."""
        asr = self.chain.asr.current
        return asr is not None and asr.audio_at_end

    async def flush(self) -> None:
        """The client asked for the current utterance to end after the audio it sent so far."""
        self.flushes.append(self.received)
        async with self.lock:
            if self.current is not None:
                await self._send(self.current)

    async def end_input(self) -> None:
        self.input_done = True
        async with self.lock:
            if self.current is not None:
                await self._send(self.current)

    async def _replay(self, stream: Stream) -> None:
        self.sent, self.flushed_to, self.boundary = self.start, self.start - 1, self.start
        await self._send(stream)

    async def _send(self, stream: Stream) -> None:
        """Under the lock: what the stream has not had of the buffer, each flush after the audio before it,
        then its half-close once input is done."""
        while True:
            flush = next((at for at in self.flushes if at > self.flushed_to), None)
            until = self.received if flush is None else flush
            while self.sent < until:
                chunk = self._held(self.sent, min(until, self.sent + MAX_CHUNK_BYTES // SAMPLE_WIDTH))
                if not await self.write(stream, vad_pb2.DetectRequest(audio=chunk)):
                    return
                self.sent += len(chunk) // SAMPLE_WIDTH
                self._marks.append((self.sent, now()))
            if flush is None:
                break
            if not await self.write(stream, vad_pb2.DetectRequest(flush=common_pb2.Flush())):
                return
            self.flushed_to = flush
        if self.input_done:
            await self.half_close(stream)

    async def _handle(self, stream: Stream, response: vad_pb2.DetectResponse) -> None:
        if stream is not self.current:
            return  # a replaced stream's late answer: the new stream says it again
        self._observe_hop(response.input_through_s)
        self.boundary = samples(response.next_boundary_s)
        await self.chain.on_vad(response)
        kind = response.WhichOneof("event")
        if kind == "start":
            self.open_since, self.next_utterance = samples(response.start_s), response.utterance_id
        elif kind == "end":
            self.open_since, self.next_utterance = None, response.utterance_id + 1
        self.settled = max(self.settled, min(self.received, samples(response.settled_through_s)))
        while self.flushes and self.flushes[0] <= self.settled and self.flushes[0] <= self.flushed_to:
            self.flushes.popleft()  # applied: the VAD ended the utterance there (or was quiet)
        keep_from = min(self.settled, self.open_since if self.open_since is not None else self.settled)
        self.start = max(self.start, keep_from - samples(WARMUP_S))
        dead = (self.start - self._base) * SAMPLE_WIDTH
        if dead and 2 * dead >= len(self.buffer):
            # Cut rarely: a bytearray cut at its front copies all it keeps at its next append.
            del self.buffer[:dead]
            self._base = self.start
        self._room.set()

    async def _going_away(self, stream: Stream, response: vad_pb2.DetectResponse) -> None:
        # Segmenting is cheap and its state moves exactly: continue on a new stream from the settled offset.
        await self._handle(stream, response)
        await self._lost(stream, "the VAD service is going away")

    def _unanswered(self, stream: Stream) -> bool:
        return not self.finished

    def _orphaned(self, stream: Stream) -> None:
        pass  # the buffer is what a new stream needs

    def _wants_stream(self) -> bool:
        return not self.finished

    async def _ended(self, stream: Stream) -> bool:
        if stream is self.current and stream.writing_done and self.sent >= self.received:
            self.finished = True
            self.down_since = None
            await self.chain.vad_finished()
            return True
        return False

    def _observe_hop(self, input_through_s: float) -> None:
        """The VAD hop's latency: from sending the chunk holding the last sample it had read to its answer."""
        through = samples(input_through_s)
        while len(self._marks) > 1 and self._marks[0][0] < through:
            self._marks.popleft()
        if self._marks and self._marks[0][0] >= through:
            metrics.HOP.labels("vad").observe(now() - self._marks[0][1])

    async def close(self) -> None:
        await super().close()
        self._room.set()


class AsrHop(Hop):
    name = "asr"

    def _call(self, timeout):
        return self.chain.downstream.asr.Recognize(timeout=timeout, wait_for_ready=True, metadata=self.chain.outgoing())

    def _config(self) -> asr_pb2.RecognizeRequest:
        return asr_pb2.RecognizeRequest(
            config=asr_pb2.RecognizeConfig(
                sample_rate_hz=SAMPLE_RATE,
                language=self.chain.config.language,
                partial_results=self.chain.config.partials,
                recorded=self.chain.config.recorded,
                context=list(self.chain.finals),
                word_timings=self.chain.config.word_timings,
                phrases=[common_pb2.PhraseHint(phrase=p, boost=b) for p, b in self.chain.config.phrases],
                prompt=self.chain.config.prompt,
            )
        )

    def _on(self, stream: Stream, *states: State) -> list[ChainUtterance]:
        return [u for u in self.chain.utterances.values() if u.asr_stream is stream and u.state in states]

    async def sync(self, utterance: ChainUtterance) -> None:
        """Send the utterance's stream what it has not had of it: audio, then the end once it came."""
        async with self.lock:
            await self._sync(utterance)

    async def _sync(self, u: ChainUtterance) -> None:
        if u.state not in UNRESOLVED:
            return
        if u.asr_stream is None:
            if self.current is None:
                self.connect()
                return  # the next stream's replay sends it
            u.asr_stream, u.asr_sent, u.asr_end_sent = self.current, 0, False
        stream = u.asr_stream
        whole_seconds = stream.audio_at_end and u.state is State.OPEN  # the rest goes with the end
        in_the_end = stream.end_takes_audio and u.state is State.ENDED and not u.asr_end_sent
        while u.asr_sent < len(u.audio):
            rest = len(u.audio) - u.asr_sent
            if (whole_seconds and rest < MAX_CHUNK_BYTES) or (in_the_end and rest <= MAX_CHUNK_BYTES):
                break
            chunk = bytes(u.audio[u.asr_sent : u.asr_sent + MAX_CHUNK_BYTES])
            last = u.asr_sent + len(chunk) == len(u.audio)  # the pause is at the end of the held audio
            request = asr_pb2.RecognizeRequest(
                audio=asr_pb2.UtteranceAudio(utterance_id=u.id, audio=chunk, pause_s=u.pause_s if last else 0.0)
            )
            if not await self.write(stream, request):
                return
            u.asr_sent += len(chunk)
        if u.state is State.ENDED and not u.asr_end_sent:
            if u.end_sent_at is None:
                u.end_sent_at = now()
            end = asr_pb2.UtteranceEnd(utterance_id=u.id, audio=bytes(u.audio[u.asr_sent :]) if in_the_end else b"")
            if not await self.write(stream, asr_pb2.RecognizeRequest(end=end)):
                return
            u.asr_sent, u.asr_end_sent = len(u.audio), True
            if stream.retiring and not self._on(stream, State.OPEN):
                await self.half_close(stream)

    async def _replay(self, stream: Stream) -> None:
        for utterance in sorted(self.chain.utterances.values(), key=lambda u: u.id):
            if utterance.asr_stream is None:
                await self._sync(utterance)

    async def _handle(self, stream: Stream, response: asr_pb2.RecognizeResponse) -> None:
        self.chain.on_asr_load(response)
        utterance = self.chain.utterances.get(response.utterance_id)
        if utterance is None or utterance.asr_stream is not stream:
            return  # an utterance answered already, or moved to another stream since
        await self.chain.on_asr(utterance, response)

    async def _retire(self, stream: Stream) -> None:
        await super()._retire(stream)
        if not self._on(stream, State.OPEN):
            await self.half_close(stream)

    def _unanswered(self, stream: Stream) -> bool:
        return bool(self._on(stream, *UNRESOLVED))

    def _orphaned(self, stream: Stream) -> None:
        for utterance in self._on(stream, *UNRESOLVED):
            utterance.asr_stream, utterance.asr_sent, utterance.asr_end_sent = None, 0, False


class LlmHop(Hop):
    name = "llm"

    def __init__(self, chain: Chain, context: list[str]):
        super().__init__(chain)
        self.history: deque[tuple[int, str]] = deque(
            ((0, text) for text in context[-MAX_CONTEXT:]), maxlen=2 * MAX_CONTEXT
        )

    def _call(self, timeout):
        return self.chain.downstream.llm.Process(timeout=timeout, wait_for_ready=True, metadata=self.chain.outgoing())

    def _waiting(self) -> list[ChainUtterance]:
        return sorted(
            (u for u in self.chain.utterances.values() if u.state is State.PROCESSING and u.llm_stream is None),
            key=lambda u: u.id,
        )

    def _config(self) -> llm_pb2.ProcessRequest:
        waiting = self._waiting()
        first = waiting[0].id if waiting else None
        context = [text for id_, text in self.history if first is None or id_ < first][-MAX_CONTEXT:]
        return llm_pb2.ProcessRequest(
            config=llm_pb2.ProcessConfig(instruction=self.chain.config.instruction, context=context)
        )

    async def submit(self, utterance: ChainUtterance) -> None:
        """A released final to post-process."""
        assert utterance.final is not None  # released as a final, not an error
        self.history.append((utterance.id, utterance.final.text))
        async with self.lock:
            await self._sync(utterance)

    async def _sync(self, u: ChainUtterance) -> None:
        if u.state is not State.PROCESSING or u.llm_stream is not None:
            return
        assert u.final is not None  # PROCESSING: its final came (lifecycle.py)
        if self.current is None:
            self.connect()
            return
        u.llm_stream = self.current
        u.processed.again()
        if u.llm_sent_at is None:
            u.llm_sent_at = now()
        request = llm_pb2.ProcessRequest(transcript=llm_pb2.TranscriptSegment(utterance_id=u.id, text=u.final.text))
        await self.write(self.current, request)  # a failed call is seen by its reader, which fails over

    async def _replay(self, stream: Stream) -> None:
        for utterance in self._waiting():
            await self._sync(utterance)

    async def _handle(self, stream: Stream, response: llm_pb2.ProcessResponse) -> None:
        utterance = self.chain.utterances.get(response.utterance_id)
        if utterance is None or utterance.llm_stream is not stream:
            return
        await self.chain.on_llm(utterance, response)

    async def _retire(self, stream: Stream) -> None:
        await super()._retire(stream)
        await self.half_close(stream)  # transcripts are whole: the next one can go to the new stream

    def _unanswered(self, stream: Stream) -> bool:
        return any(u.llm_stream is stream and u.state is State.PROCESSING for u in self.chain.utterances.values())

    def _orphaned(self, stream: Stream) -> None:
        for utterance in self.chain.utterances.values():
            if utterance.llm_stream is stream and utterance.state is State.PROCESSING:
                utterance.llm_stream = None
