"""What a client keeps so that its stream survives the loss of a gateway.

The client library sends its audio through a `Resumption`, which keeps the audio a new call might need and
follows the events to know what has been delivered:
- Audio is kept from the earlier of the start of the oldest utterance that has no final (or error) and the
  last `settled_through_s` the gateway sent: before that point the VAD has decided everything, and every
  utterance there has its final.
- A new call's config says where its audio starts (`resume.offset_s`) and which utterance id comes next;
  finals whose processed text did not finish go with it, and what the client has of that text.
- Events the new call repeats are dropped: a speech start or end already seen, a final (or error) for an
  utterance that has one. The gateway releases finals and errors in utterance order, so "resolved" is
  simply every id below a watermark.

Offsets are in seconds of the stream's audio, the same on every call; sample positions here are in the
client's own format (rate and channels). `ResumableSource` reads the caller's audio into the Resumption.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterable, Iterable

from voxmesh.v1 import transcription_pb2 as pb

CONTEXT = 8  # latest finals handed to a new call as the post-processor's context


class Resumption:
    def __init__(self, sample_rate_hz: int, channels: int, post_processing: bool, sample_bytes: int = 2):
        self.rate = sample_rate_hz
        self.frame_bytes = sample_bytes * channels  # 2 per sample for LINEAR16, 1 for G.711
        self.post_processing = post_processing
        self.buffer = bytearray()  # the stream's audio from sample `start` to `received`
        self.start = 0
        self.received = 0
        self.flushes: list[int] = []  # sample positions where the caller asked for the utterance to end
        self.settled_s = 0.0
        self.resolved_below = 1  # every utterance with a smaller id has its final or error
        self.announced: dict[int, float] = {}  # utterances started and not yet resolved: id -> start_s
        self.last_started = 0
        self.last_ended = 0
        self.pending: dict[int, pb.PendingTranscript] = {}  # finals whose processed text is not done
        self.context: deque[str] = deque(maxlen=CONTEXT)

    # -- audio ------------------------------------------------------------------------------------

    def add(self, chunk: bytes) -> None:
        self.buffer += chunk
        self.received += len(chunk) // self.frame_bytes

    def flush(self) -> None:
        self.flushes.append(self.received)

    def next_flush(self, after: int) -> int | None:
        """The first flush a call that has sent up to sample `after` (and its flushes before it) still owes."""
        return next((at for at in self.flushes if at > after), None)

    def audio_from(self, sample: int, max_bytes: int) -> bytes:
        """Up to `max_bytes` of kept audio from a sample position."""
        offset = (sample - self.start) * self.frame_bytes
        return bytes(self.buffer[offset : offset + max_bytes])

    @property
    def keep_from(self) -> int:
        """The first sample a new call would need."""
        oldest = min((s for i, s in self.announced.items() if i >= self.resolved_below), default=math.inf)
        seconds = min(oldest, self.settled_s)
        return max(self.start, min(self.received, int(seconds * self.rate + 1e-6)))

    def _trim(self) -> None:
        keep = self.keep_from
        if keep > self.start:
            del self.buffer[: (keep - self.start) * self.frame_bytes]
            self.start = keep
            self.flushes = [at for at in self.flushes if at >= keep]

    # -- events -----------------------------------------------------------------------------------

    def accept(self, event: pb.TranscriptionEvent) -> bool:
        """Note an event; False when it repeats one already delivered (drop it)."""
        self.settled_s = max(self.settled_s, event.settled_through_s)
        kind = event.WhichOneof("event")
        id_ = event.utterance_id
        fresh = True
        if kind == "speech_started":
            fresh = id_ > self.last_started and id_ >= self.resolved_below
            if fresh:
                self.last_started = id_
                self.announced[id_] = event.start_s
        elif kind == "speech_ended":
            fresh = id_ > self.last_ended and id_ >= self.resolved_below
            self.last_ended = max(self.last_ended, id_)
        elif kind == "partial":
            fresh = id_ >= self.resolved_below
        elif kind in ("final", "error"):
            fresh = id_ >= self.resolved_below
            if fresh:
                self._resolved(event)
        elif kind == "processed":
            self._processed(event)
        self._trim()
        return fresh

    def _resolved(self, event: pb.TranscriptionEvent) -> None:
        id_ = event.utterance_id
        self.resolved_below = id_ + 1
        self.last_started = max(self.last_started, id_)
        for earlier in [i for i in self.announced if i <= id_]:
            del self.announced[earlier]
        if event.WhichOneof("event") == "final":
            self.context.append(event.final.text)
            if self.post_processing:
                self.pending[id_] = pb.PendingTranscript(
                    utterance_id=id_, start_s=event.start_s, end_s=event.end_s, text=event.final.text
                )

    def _processed(self, event: pb.TranscriptionEvent) -> None:
        pending = self.pending.get(event.utterance_id)
        if pending is None:
            return
        processed = event.processed
        if processed.done:
            del self.pending[event.utterance_id]
        elif processed.restart:
            pending.processed_so_far = processed.delta
        else:
            pending.processed_so_far += processed.delta

    # -- a new call -------------------------------------------------------------------------------

    def resume_from(self) -> pb.ResumeFrom:
        """Where a new call picks the stream up: it then sends the kept audio from `keep_from`."""
        unresolved = [i for i in self.announced if i >= self.resolved_below]
        next_id = min(unresolved) if unresolved else max(self.last_started + 1, self.resolved_below)
        pending = sorted(self.pending.values(), key=lambda p: p.utterance_id)
        return pb.ResumeFrom(
            offset_s=self.keep_from / self.rate,
            next_utterance_id=next_id,
            pending=pending,
            context=list(self.context),
        )


class Flush:
    """Yielded among a stream's audio chunks: end the current utterance here (push-to-talk released)."""


FLUSH = Flush()


class ResumableSource:
    """Reads the caller's audio into the stream's `Resumption`, on its own task, so that a call that is
    replaced never interrupts the caller's iterator; it stays at most `max_ahead` bytes ahead of the sending."""

    def __init__(
        self, chunks: Iterable[bytes | Flush] | AsyncIterable[bytes | Flush], state: Resumption, max_ahead: int
    ):
        self.state = state
        self.max_ahead = max_ahead
        self.done = False
        self._sent = 0
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._task = asyncio.create_task(self._read(chunks))

    async def _read(self, chunks) -> None:
        try:
            if isinstance(chunks, AsyncIterable):
                async for chunk in chunks:
                    await self._add(chunk)
            else:
                iterator = iter(chunks)
                end = object()
                while (chunk := await asyncio.to_thread(next, iterator, end)) is not end:
                    await self._add(chunk)
        finally:
            self.done = True
            self._arrived.set()

    async def _add(self, chunk: bytes | Flush) -> None:
        if isinstance(chunk, Flush):
            self.state.flush()
            self._arrived.set()
            return
        if len(chunk) % self.state.frame_bytes:
            raise ValueError(
                f"an audio chunk of {len(chunk)} bytes is not a whole number of samples: a multiple of "
                f"{self.state.frame_bytes} bytes is (one sample of every channel)"
            )
        while (self.state.received - self._sent) * self.state.frame_bytes >= self.max_ahead:
            self._taken.clear()
            await self._taken.wait()
        if chunk:
            self.state.add(chunk)
        self._arrived.set()

    def sent_through(self, position: int) -> None:
        self._sent = max(self._sent, position)
        self._taken.set()

    async def more(self) -> None:
        """Wait for audio (or the end) beyond what is there now; re-raise the source's failure."""
        self._arrived.clear()
        if self._task.done() and (failure := self._task.exception()) is not None:
            raise failure
        await self._arrived.wait()
        if self._task.done() and not self._task.cancelled() and (failure := self._task.exception()) is not None:
            raise failure

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
