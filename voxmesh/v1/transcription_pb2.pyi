from voxmesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_SOURCE_UNSPECIFIED: _ClassVar[AudioSource]
    AUDIO_SOURCE_LIVE: _ClassVar[AudioSource]
    AUDIO_SOURCE_RECORDED: _ClassVar[AudioSource]
AUDIO_SOURCE_UNSPECIFIED: AudioSource
AUDIO_SOURCE_LIVE: AudioSource
AUDIO_SOURCE_RECORDED: AudioSource

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "channels")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[AudioFormat.Encoding]
        LINEAR16: _ClassVar[AudioFormat.Encoding]
        MULAW: _ClassVar[AudioFormat.Encoding]
        ALAW: _ClassVar[AudioFormat.Encoding]
        OGG_OPUS: _ClassVar[AudioFormat.Encoding]
        WEBM_OPUS: _ClassVar[AudioFormat.Encoding]
    ENCODING_UNSPECIFIED: AudioFormat.Encoding
    LINEAR16: AudioFormat.Encoding
    MULAW: AudioFormat.Encoding
    ALAW: AudioFormat.Encoding
    OGG_OPUS: AudioFormat.Encoding
    WEBM_OPUS: AudioFormat.Encoding
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioFormat.Encoding
    sample_rate_hz: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[AudioFormat.Encoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class PostProcessing(_message.Message):
    __slots__ = ("enabled", "instruction")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    instruction: str
    def __init__(self, enabled: _Optional[bool] = ..., instruction: _Optional[str] = ...) -> None: ...

class StreamingConfig(_message.Message):
    __slots__ = ("format", "language", "partial_results", "post_processing", "resume", "source", "word_timings", "phrases", "prompt", "endpointing")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    POST_PROCESSING_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PHRASES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    format: AudioFormat
    language: str
    partial_results: bool
    post_processing: PostProcessing
    resume: ResumeFrom
    source: AudioSource
    word_timings: bool
    phrases: _containers.RepeatedCompositeFieldContainer[_common_pb2.PhraseHint]
    prompt: str
    endpointing: _common_pb2.Endpointing
    def __init__(self, format: _Optional[_Union[AudioFormat, _Mapping]] = ..., language: _Optional[str] = ..., partial_results: _Optional[bool] = ..., post_processing: _Optional[_Union[PostProcessing, _Mapping]] = ..., resume: _Optional[_Union[ResumeFrom, _Mapping]] = ..., source: _Optional[_Union[AudioSource, str]] = ..., word_timings: _Optional[bool] = ..., phrases: _Optional[_Iterable[_Union[_common_pb2.PhraseHint, _Mapping]]] = ..., prompt: _Optional[str] = ..., endpointing: _Optional[_Union[_common_pb2.Endpointing, _Mapping]] = ...) -> None: ...

class ResumeFrom(_message.Message):
    __slots__ = ("offset_s", "next_utterance_id", "pending", "context")
    OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    NEXT_UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    offset_s: float
    next_utterance_id: int
    pending: _containers.RepeatedCompositeFieldContainer[PendingTranscript]
    context: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, offset_s: _Optional[float] = ..., next_utterance_id: _Optional[int] = ..., pending: _Optional[_Iterable[_Union[PendingTranscript, _Mapping]]] = ..., context: _Optional[_Iterable[str]] = ...) -> None: ...

class PendingTranscript(_message.Message):
    __slots__ = ("utterance_id", "start_s", "end_s", "text", "processed_so_far")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_SO_FAR_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    start_s: float
    end_s: float
    text: str
    processed_so_far: str
    def __init__(self, utterance_id: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., processed_so_far: _Optional[str] = ...) -> None: ...

class StreamingTranscribeRequest(_message.Message):
    __slots__ = ("config", "audio", "flush")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    config: StreamingConfig
    audio: bytes
    flush: _common_pb2.Flush
    def __init__(self, config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., flush: _Optional[_Union[_common_pb2.Flush, _Mapping]] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SpeechEnded(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: _common_pb2.SpeechEndReason
    def __init__(self, reason: _Optional[_Union[_common_pb2.SpeechEndReason, str]] = ...) -> None: ...

class TranscriptionEvent(_message.Message):
    __slots__ = ("utterance_id", "start_s", "end_s", "settled_through_s", "speech_started", "speech_ended", "partial", "final", "processed", "error", "progress", "going_away")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    SETTLED_THROUGH_S_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    SPEECH_ENDED_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    GOING_AWAY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    start_s: float
    end_s: float
    settled_through_s: float
    speech_started: SpeechStarted
    speech_ended: SpeechEnded
    partial: _common_pb2.PartialTranscript
    final: _common_pb2.FinalTranscript
    processed: _common_pb2.ProcessedText
    error: _common_pb2.UtteranceError
    progress: StreamProgress
    going_away: _common_pb2.GoingAway
    def __init__(self, utterance_id: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., settled_through_s: _Optional[float] = ..., speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., speech_ended: _Optional[_Union[SpeechEnded, _Mapping]] = ..., partial: _Optional[_Union[_common_pb2.PartialTranscript, _Mapping]] = ..., final: _Optional[_Union[_common_pb2.FinalTranscript, _Mapping]] = ..., processed: _Optional[_Union[_common_pb2.ProcessedText, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.UtteranceError, _Mapping]] = ..., progress: _Optional[_Union[StreamProgress, _Mapping]] = ..., going_away: _Optional[_Union[_common_pb2.GoingAway, _Mapping]] = ...) -> None: ...

class StreamProgress(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("content", "language", "post_processing", "word_timings", "phrases", "prompt")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    POST_PROCESSING_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PHRASES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    language: str
    post_processing: PostProcessing
    word_timings: bool
    phrases: _containers.RepeatedCompositeFieldContainer[_common_pb2.PhraseHint]
    prompt: str
    def __init__(self, content: _Optional[bytes] = ..., language: _Optional[str] = ..., post_processing: _Optional[_Union[PostProcessing, _Mapping]] = ..., word_timings: _Optional[bool] = ..., phrases: _Optional[_Iterable[_Union[_common_pb2.PhraseHint, _Mapping]]] = ..., prompt: _Optional[str] = ...) -> None: ...

class Utterance(_message.Message):
    __slots__ = ("utterance_id", "start_s", "end_s", "final", "processed", "error")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    start_s: float
    end_s: float
    final: _common_pb2.FinalTranscript
    processed: _common_pb2.ProcessedText
    error: _common_pb2.UtteranceError
    def __init__(self, utterance_id: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., final: _Optional[_Union[_common_pb2.FinalTranscript, _Mapping]] = ..., processed: _Optional[_Union[_common_pb2.ProcessedText, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.UtteranceError, _Mapping]] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("utterances", "duration_s", "text")
    UTTERANCES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    utterances: _containers.RepeatedCompositeFieldContainer[Utterance]
    duration_s: float
    text: str
    def __init__(self, utterances: _Optional[_Iterable[_Union[Utterance, _Mapping]]] = ..., duration_s: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...
