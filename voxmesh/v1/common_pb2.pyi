from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpeechEndReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEECH_END_REASON_UNSPECIFIED: _ClassVar[SpeechEndReason]
    SPEECH_END_REASON_SILENCE: _ClassVar[SpeechEndReason]
    SPEECH_END_REASON_MAX_LENGTH: _ClassVar[SpeechEndReason]
    SPEECH_END_REASON_STREAM_END: _ClassVar[SpeechEndReason]
    SPEECH_END_REASON_FLUSH: _ClassVar[SpeechEndReason]

class ProcessingOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROCESSING_OUTCOME_UNSPECIFIED: _ClassVar[ProcessingOutcome]
    PROCESSING_OUTCOME_PROCESSED: _ClassVar[ProcessingOutcome]
    PROCESSING_OUTCOME_GUARDED: _ClassVar[ProcessingOutcome]
    PROCESSING_OUTCOME_FAILED: _ClassVar[ProcessingOutcome]
SPEECH_END_REASON_UNSPECIFIED: SpeechEndReason
SPEECH_END_REASON_SILENCE: SpeechEndReason
SPEECH_END_REASON_MAX_LENGTH: SpeechEndReason
SPEECH_END_REASON_STREAM_END: SpeechEndReason
SPEECH_END_REASON_FLUSH: SpeechEndReason
PROCESSING_OUTCOME_UNSPECIFIED: ProcessingOutcome
PROCESSING_OUTCOME_PROCESSED: ProcessingOutcome
PROCESSING_OUTCOME_GUARDED: ProcessingOutcome
PROCESSING_OUTCOME_FAILED: ProcessingOutcome

class Endpointing(_message.Message):
    __slots__ = ("end_silence_ms", "start_ms", "max_utterance_s")
    END_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_S_FIELD_NUMBER: _ClassVar[int]
    end_silence_ms: int
    start_ms: int
    max_utterance_s: float
    def __init__(self, end_silence_ms: _Optional[int] = ..., start_ms: _Optional[int] = ..., max_utterance_s: _Optional[float] = ...) -> None: ...

class Flush(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PartialTranscript(_message.Message):
    __slots__ = ("text", "stability")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    text: str
    stability: float
    def __init__(self, text: _Optional[str] = ..., stability: _Optional[float] = ...) -> None: ...

class FinalTranscript(_message.Message):
    __slots__ = ("text", "language", "engine", "engine_compute_s", "queue_wait_s", "engine_busy_wait_s", "words", "confidence", "language_tag")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_COMPUTE_S_FIELD_NUMBER: _ClassVar[int]
    QUEUE_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    ENGINE_BUSY_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_TAG_FIELD_NUMBER: _ClassVar[int]
    text: str
    language: str
    engine: str
    engine_compute_s: float
    queue_wait_s: float
    engine_busy_wait_s: float
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    confidence: float
    language_tag: str
    def __init__(self, text: _Optional[str] = ..., language: _Optional[str] = ..., engine: _Optional[str] = ..., engine_compute_s: _Optional[float] = ..., queue_wait_s: _Optional[float] = ..., engine_busy_wait_s: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ..., confidence: _Optional[float] = ..., language_tag: _Optional[str] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("word", "start_s", "end_s", "confidence")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_s: float
    end_s: float
    confidence: float
    def __init__(self, word: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class PhraseHint(_message.Message):
    __slots__ = ("phrase", "boost")
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    BOOST_FIELD_NUMBER: _ClassVar[int]
    phrase: str
    boost: float
    def __init__(self, phrase: _Optional[str] = ..., boost: _Optional[float] = ...) -> None: ...

class ProcessedText(_message.Message):
    __slots__ = ("delta", "done", "text", "outcome", "reason", "engine", "restart")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    delta: str
    done: bool
    text: str
    outcome: ProcessingOutcome
    reason: str
    engine: str
    restart: bool
    def __init__(self, delta: _Optional[str] = ..., done: _Optional[bool] = ..., text: _Optional[str] = ..., outcome: _Optional[_Union[ProcessingOutcome, str]] = ..., reason: _Optional[str] = ..., engine: _Optional[str] = ..., restart: _Optional[bool] = ...) -> None: ...

class UtteranceError(_message.Message):
    __slots__ = ("stage", "code", "message", "request_id")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    stage: str
    code: str
    message: str
    request_id: str
    def __init__(self, stage: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GoingAway(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...
