"""Typed events of a transcription stream, as clients see them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from voxmesh.v1 import common_pb2, transcription_pb2


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]
    utterance: int
    start_s: float
    end_s: float

    def to_dict(self) -> dict:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class SpeechStart(Event):
    type: ClassVar[str] = "speech_start"


@dataclass(frozen=True)
class SpeechEnd(Event):
    type: ClassVar[str] = "speech_end"
    reason: str  # "silence", "max_length", "stream_end" or "flush"


@dataclass(frozen=True)
class Partial(Event):
    type: ClassVar[str] = "partial"
    text: str
    stability: float


@dataclass(frozen=True)
class Word:
    """A word of a final and when it was said: offsets in seconds in the stream's audio."""

    text: str
    start_s: float
    end_s: float
    confidence: float | None = None  # 0 to 1, where the engine has one


@dataclass(frozen=True)
class Final(Event):
    type: ClassVar[str] = "final"
    text: str
    language: str
    engine: str
    engine_compute_s: float
    queue_wait_s: float
    engine_busy_wait_s: float  # the part of queue_wait_s the ASR engine computed other requests
    language_tag: str = ""  # BCP-47: the stream's own tag ("en-US") when it gave one, else `language`
    words: tuple[Word, ...] = ()  # when the stream asked for word timings
    confidence: float | None = None  # of the whole text, 0 to 1, where the engine has one


@dataclass(frozen=True)
class Processed(Event):
    type: ClassVar[str] = "processed"
    text: str  # the processed text so far (on done: all of it)
    delta: str
    done: bool
    outcome: str  # on done: "processed", "guarded" or "failed"
    reason: str
    engine: str
    # The text was post-processed again (after a failover) and came out different: `text` starts over with
    # `delta`, and what earlier deltas said is void.
    restart: bool = False


@dataclass(frozen=True)
class UtteranceFailed(Event):
    type: ClassVar[str] = "error"
    stage: str
    code: str
    message: str


_END_REASONS = {
    common_pb2.SPEECH_END_REASON_SILENCE: "silence",
    common_pb2.SPEECH_END_REASON_MAX_LENGTH: "max_length",
    common_pb2.SPEECH_END_REASON_STREAM_END: "stream_end",
    common_pb2.SPEECH_END_REASON_FLUSH: "flush",
}
_OUTCOMES = {
    common_pb2.PROCESSING_OUTCOME_PROCESSED: "processed",
    common_pb2.PROCESSING_OUTCOME_GUARDED: "guarded",
    common_pb2.PROCESSING_OUTCOME_FAILED: "failed",
}


class EventDecoder:
    """Turns TranscriptionEvent messages into typed events; keeps each utterance's processed text so far."""

    def __init__(self) -> None:
        self._processed: dict[int, str] = {}

    def __call__(self, message: transcription_pb2.TranscriptionEvent) -> Event:
        base = (message.utterance_id, message.start_s, message.end_s)
        kind = message.WhichOneof("event")
        if kind == "speech_started":
            return SpeechStart(*base)
        if kind == "speech_ended":
            return SpeechEnd(*base, reason=_END_REASONS.get(message.speech_ended.reason, "unspecified"))
        if kind == "partial":
            return Partial(*base, text=message.partial.text, stability=message.partial.stability)
        if kind == "final":
            final = message.final
            return Final(
                *base,
                text=final.text,
                language=final.language,
                engine=final.engine,
                engine_compute_s=final.engine_compute_s,
                queue_wait_s=final.queue_wait_s,
                engine_busy_wait_s=final.engine_busy_wait_s,
                language_tag=final.language_tag,
                words=tuple(
                    Word(w.word, w.start_s, w.end_s, w.confidence if w.HasField("confidence") else None)
                    for w in final.words
                ),
                confidence=final.confidence if final.HasField("confidence") else None,
            )
        if kind == "processed":
            processed = message.processed
            so_far = "" if processed.restart else self._processed.get(message.utterance_id, "")
            so_far += processed.delta
            if processed.done:
                self._processed.pop(message.utterance_id, None)
                so_far = processed.text
            else:
                self._processed[message.utterance_id] = so_far
            return Processed(
                *base,
                text=so_far,
                delta=processed.delta,
                done=processed.done,
                outcome=_OUTCOMES.get(processed.outcome, ""),
                reason=processed.reason,
                engine=processed.engine,
                restart=processed.restart,
            )
        if kind == "error":
            error = message.error
            return UtteranceFailed(*base, stage=error.stage, code=error.code, message=error.message)
        raise ValueError(f"unknown event {kind!r}")
