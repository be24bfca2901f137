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
client's own format (rate and channels).
"""

from __future__ import annotations

import math
from collections import deque

from voxmesh.v1 import transcription_pb2 as pb

CONTEXT = 8  # latest finals handed to a new call as the post-processor's context


class Resumption:
    def __init__(self, sample_rate_hz: int, channels: int, post_processing: bool):
        self.rate = sample_rate_hz
        self.frame_bytes = 2 * channels
        self.post_processing = post_processing
        self.buffer = bytearray()  # the stream's audio from sample `start` to `received`
        self.start = 0
        self.received = 0
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
