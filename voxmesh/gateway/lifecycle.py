"""One utterance's life in the gateway, as one state machine.

    OPEN -> ENDED -> FINAL -> PROCESSING -> DONE        (FINAL -> DONE without post-processing)
    OPEN | ENDED -> FAILED

- OPEN: the VAD announced its start; its audio arrives and is held (a failover replays it to the ASR).
- ENDED: the VAD ended it; the final is due within `final_timeout_s`.
- FINAL: the final arrived; the held audio goes. Finals and errors reach the client in utterance order, so
  a final waits here until every earlier utterance has its final or error (`released`).
- PROCESSING: released and sent to the post-processor; its deltas go to the client, then done.
- DONE, FAILED: nothing more can happen to it; once released, the chain forgets it.

`advance` is the only place a state changes; a result that comes too late for the state (a final after the
watchdog gave up, an answer from a stream that failed over) is refused there, and the caller drops it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from voxmesh.gateway import metrics
from voxmesh.metrics import UTTERANCE_ERRORS
from voxmesh.v1 import common_pb2, transcription_pb2

if TYPE_CHECKING:
    from voxmesh.gateway.hop import Stream


class State(enum.Enum):
    OPEN = "open"
    ENDED = "ended"
    FINAL = "final"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


TRANSITIONS = {
    State.OPEN: {State.ENDED, State.FAILED},
    State.ENDED: {State.FINAL, State.FAILED},
    State.FINAL: {State.PROCESSING, State.DONE},
    State.PROCESSING: {State.DONE},
    State.DONE: set(),
    State.FAILED: set(),
}
UNRESOLVED = (State.OPEN, State.ENDED)  # no final or error yet


@dataclass(eq=False)
class ChainUtterance:
    id: int
    start_s: float
    started_at: float  # the VAD's speech start arrived (gateway clock)
    end_s: float = 0.0
    state: State = State.OPEN
    audio: bytearray = field(default_factory=bytearray)  # held until the final arrives
    pause_s: float = 0.0  # the VAD's pause at the end of the held audio (vad.proto SpeechAudio.pause_s)
    ended_at: float | None = None  # the VAD's speech end arrived
    end_sent_at: float | None = None  # the end was first sent to the ASR
    resolved_at: float | None = None  # the final or the error arrived
    released_at: float | None = None  # its final or error went to the client
    partial_seen: bool = False
    first_delta_seen: bool = False
    llm_sent_at: float | None = None
    final: common_pb2.FinalTranscript | None = None
    error: common_pb2.UtteranceError | None = None
    processed: DeltaLedger = field(default_factory=lambda: DeltaLedger())
    # Which downstream stream carries it, and how much of it that stream has (see voxmesh/gateway/hops.py).
    asr_stream: Stream | None = None
    asr_sent: int = 0
    asr_end_sent: bool = False
    llm_stream: Stream | None = None

    @property
    def released(self) -> bool:
        return self.released_at is not None

    @property
    def finished(self) -> bool:
        """Released, its end said, and nothing more can happen to it."""
        return self.released and self.ended_at is not None and self.state in (State.DONE, State.FAILED)

    def advance(self, state: State) -> bool:
        """Move to `state` if the machine allows it from where the utterance is; False (nothing changes) if not."""
        if state not in TRANSITIONS[self.state]:
            return False
        self.state = state
        return True

    # -- transitions with what comes with them ----------------------------------------------------

    def end(self, end_s: float, now: float) -> bool:
        """The VAD ended it; True the first time. An utterance the ASR already failed stays FAILED."""
        if self.ended_at is not None:
            return False
        self.end_s = end_s
        self.ended_at = now
        self.advance(State.ENDED)
        return True

    def resolve(
        self,
        now: float,
        final: common_pb2.FinalTranscript | None = None,
        error: common_pb2.UtteranceError | None = None,
    ) -> bool:
        """The final (or the error that stands for it) arrived; the held audio goes."""
        if not self.advance(State.FINAL if final is not None else State.FAILED):
            return False
        self.final, self.error = final, error
        self.resolved_at = now
        metrics.UTTERANCES.labels("final" if final is not None else "error").inc()
        if error is not None:
            UTTERANCE_ERRORS.labels("gateway", error.code).inc()
        self.release_audio()
        return True

    def fail(self, now: float, stage: str, code: str, message: str) -> bool:
        return self.resolve(now, error=common_pb2.UtteranceError(stage=stage, code=code, message=message))

    def release(self, now: float, post_processing: bool) -> transcription_pb2.TranscriptionEvent:
        """Its turn came: the final (or error) event for the client; a final moves on to PROCESSING or DONE."""
        self.released_at = now
        if self.state is State.FAILED:
            return self.event(error=self.error)
        self.advance(State.PROCESSING if post_processing else State.DONE)
        return self.event(final=self.final)

    def processing_done(self) -> bool:
        """The post-processor's done (or its failure) came: PROCESSING -> DONE."""
        return self.state is State.PROCESSING and self.advance(State.DONE)

    # -- held audio -------------------------------------------------------------------------------

    def hold(self, pcm: bytes, end_s: float, pause_s: float = 0.0) -> None:
        if self.state in UNRESOLVED:
            self.audio += pcm
            self.end_s = end_s
            self.pause_s = pause_s
            metrics.HELD_AUDIO.inc(len(pcm))

    def release_audio(self) -> None:
        metrics.HELD_AUDIO.dec(len(self.audio))
        self.audio = bytearray()

    # -- events -----------------------------------------------------------------------------------

    def event(self, **kwargs) -> transcription_pb2.TranscriptionEvent:
        return transcription_pb2.TranscriptionEvent(
            utterance_id=self.id, start_s=self.start_s, end_s=self.end_s, **kwargs
        )

    def processing_failed(self, reason: str) -> transcription_pb2.TranscriptionEvent | None:
        """No processed text will come: the done event that says why (the final stands)."""
        if not self.processing_done():
            return None
        return self.event(
            processed=common_pb2.ProcessedText(done=True, outcome=common_pb2.PROCESSING_OUTCOME_FAILED, reason=reason)
        )


@dataclass
class DeltaLedger:
    """What the client has of an utterance's processed text, so that text post-processed again after a
    failover sends only what is new.

    While an attempt repeats what the client already has, nothing is sent; once it goes beyond, only the
    rest is sent. If it comes out different (a sampling LLM, another replica's model), the message says
    `restart`: the client's deltas so far are void, and the text starts over with this delta. The done
    message carries whatever delta makes the client's text equal its `text`.
    """

    sent: str = ""  # the deltas the client has, concatenated
    attempt: str = ""  # the current attempt's deltas so far
    replaying: bool = False  # the current attempt is not the one that produced `sent`

    def again(self) -> None:
        """The transcript is sent to the post-processor again."""
        self.attempt = ""
        self.replaying = bool(self.sent)

    def delta(self, delta: str) -> tuple[str, bool] | None:
        """(delta to send, restart) for a delta from the post-processor, or None when the client has it."""
        self.attempt += delta
        if not self.replaying:
            self.sent += delta
            return delta, False
        if self.sent.startswith(self.attempt):
            return None
        self.replaying = False
        if self.attempt.startswith(self.sent):
            new, self.sent = self.attempt[len(self.sent) :], self.attempt
            return new, False
        self.sent = self.attempt
        return self.attempt, True

    def done(self, text: str) -> tuple[str, bool]:
        """(delta, restart) for the done message, whose `text` is the whole processed text."""
        sent, self.sent, self.replaying = self.sent, text, False
        if text.startswith(sent):
            return text[len(sent) :], False
        if sent.rstrip() == text.rstrip():
            return "", False  # the deltas said it with a trailing space: no reason to start over
        return text, True
