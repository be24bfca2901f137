from voxmesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeConfig(_message.Message):
    __slots__ = ("sample_rate_hz", "language", "partial_results", "recorded", "context", "word_timings", "phrases", "prompt")
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PHRASES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    language: str
    partial_results: bool
    recorded: bool
    context: _containers.RepeatedScalarFieldContainer[str]
    word_timings: bool
    phrases: _containers.RepeatedCompositeFieldContainer[_common_pb2.PhraseHint]
    prompt: str
    def __init__(self, sample_rate_hz: _Optional[int] = ..., language: _Optional[str] = ..., partial_results: _Optional[bool] = ..., recorded: _Optional[bool] = ..., context: _Optional[_Iterable[str]] = ..., word_timings: _Optional[bool] = ..., phrases: _Optional[_Iterable[_Union[_common_pb2.PhraseHint, _Mapping]]] = ..., prompt: _Optional[str] = ...) -> None: ...

class UtteranceAudio(_message.Message):
    __slots__ = ("utterance_id", "audio", "pause_s")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PAUSE_S_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    audio: bytes
    pause_s: float
    def __init__(self, utterance_id: _Optional[int] = ..., audio: _Optional[bytes] = ..., pause_s: _Optional[float] = ...) -> None: ...

class UtteranceEnd(_message.Message):
    __slots__ = ("utterance_id", "audio")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    audio: bytes
    def __init__(self, utterance_id: _Optional[int] = ..., audio: _Optional[bytes] = ...) -> None: ...

class RecognizeRequest(_message.Message):
    __slots__ = ("config", "audio", "end")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    config: RecognizeConfig
    audio: UtteranceAudio
    end: UtteranceEnd
    def __init__(self, config: _Optional[_Union[RecognizeConfig, _Mapping]] = ..., audio: _Optional[_Union[UtteranceAudio, _Mapping]] = ..., end: _Optional[_Union[UtteranceEnd, _Mapping]] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("utterance_id", "audio_s", "engine_utilization", "engine_live_streams", "partial", "final", "error", "going_away")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_S_FIELD_NUMBER: _ClassVar[int]
    ENGINE_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_LIVE_STREAMS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GOING_AWAY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    audio_s: float
    engine_utilization: float
    engine_live_streams: float
    partial: _common_pb2.PartialTranscript
    final: _common_pb2.FinalTranscript
    error: _common_pb2.UtteranceError
    going_away: _common_pb2.GoingAway
    def __init__(self, utterance_id: _Optional[int] = ..., audio_s: _Optional[float] = ..., engine_utilization: _Optional[float] = ..., engine_live_streams: _Optional[float] = ..., partial: _Optional[_Union[_common_pb2.PartialTranscript, _Mapping]] = ..., final: _Optional[_Union[_common_pb2.FinalTranscript, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.UtteranceError, _Mapping]] = ..., going_away: _Optional[_Union[_common_pb2.GoingAway, _Mapping]] = ...) -> None: ...
