"""What the gateway knows of one utterance while its chain runs, and the events it makes about it."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway import metrics
from voxmesh.metrics import UTTERANCE_ERRORS
from voxmesh.v1 import common_pb2, transcription_pb2


@dataclass
class Utterance:
    id: int
    start_s: float
    started_at: float  # the VAD's speech start arrived (gateway clock)
    end_s: float = 0.0
    audio: bytearray | None = field(default_factory=bytearray)  # held until the final arrives
    ended_at: float | None = None  # the VAD's speech end arrived
    end_sent_at: float | None = None  # the end was sent to the ASR
    partial_seen: bool = False
    final_at: float | None = None  # a final or an error arrived (or the watchdog gave up on it)
    llm_sent_at: float | None = None
    processing: bool = False  # sent to the LLM, done not yet arrived
    first_delta_seen: bool = False

    @property
    def finished(self) -> bool:
        """Nothing more can happen to it: ended, answered, and not waiting for processed text."""
        return self.ended_at is not None and self.final_at is not None and not self.processing

    def event(self, **kwargs) -> transcription_pb2.TranscriptionEvent:
        return transcription_pb2.TranscriptionEvent(
            utterance_id=self.id, start_s=self.start_s, end_s=self.end_s, **kwargs
        )

    def resolve(self, now: float, outcome: str) -> None:
        """The final (or the error that stands for it) arrived: the held audio can go."""
        self.final_at = now
        metrics.UTTERANCES.labels(outcome).inc()
        self.release()

    def release(self) -> None:
        if self.audio is not None:
            metrics.HELD_AUDIO.dec(len(self.audio))
            self.audio = None

    def hold(self, pcm: bytes) -> None:
        if self.audio is not None:
            self.audio += pcm
            metrics.HELD_AUDIO.inc(len(pcm))

    def failed(self, now: float, stage: str, code: str, message: str) -> transcription_pb2.TranscriptionEvent:
        """Resolve it as failed; the error event to send."""
        self.resolve(now, "error")
        UTTERANCE_ERRORS.labels("gateway", code).inc()
        return self.event(error=common_pb2.UtteranceError(stage=stage, code=code, message=message))

    def processing_failed(self, reason: str) -> transcription_pb2.TranscriptionEvent:
        """No processed text will come; the done event that says why (the final stands)."""
        self.processing = False
        return self.event(processed=common_pb2.ProcessedText(
            done=True, outcome=common_pb2.PROCESSING_OUTCOME_FAILED, reason=reason
        ))
