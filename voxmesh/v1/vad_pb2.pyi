from voxmesh.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectConfig(_message.Message):
    __slots__ = ("sample_rate_hz", "offset_s", "next_utterance_id", "open_utterance", "warmup_s", "endpointing", "caller_holds_audio", "end_carries_audio")
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    NEXT_UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    WARMUP_S_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    CALLER_HOLDS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_CARRIES_AUDIO_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    offset_s: float
    next_utterance_id: int
    open_utterance: OpenUtterance
    warmup_s: float
    endpointing: _common_pb2.Endpointing
    caller_holds_audio: bool
    end_carries_audio: bool
    def __init__(self, sample_rate_hz: _Optional[int] = ..., offset_s: _Optional[float] = ..., next_utterance_id: _Optional[int] = ..., open_utterance: _Optional[_Union[OpenUtterance, _Mapping]] = ..., warmup_s: _Optional[float] = ..., endpointing: _Optional[_Union[_common_pb2.Endpointing, _Mapping]] = ..., caller_holds_audio: _Optional[bool] = ..., end_carries_audio: _Optional[bool] = ...) -> None: ...

class OpenUtterance(_message.Message):
    __slots__ = ("start_s",)
    START_S_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    def __init__(self, start_s: _Optional[float] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("config", "audio", "flush")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    config: DetectConfig
    audio: bytes
    flush: _common_pb2.Flush
    def __init__(self, config: _Optional[_Union[DetectConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., flush: _Optional[_Union[_common_pb2.Flush, _Mapping]] = ...) -> None: ...

class SpeechStart(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SpeechAudio(_message.Message):
    __slots__ = ("audio", "pause_s")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    PAUSE_S_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    pause_s: float
    def __init__(self, audio: _Optional[bytes] = ..., pause_s: _Optional[float] = ...) -> None: ...

class SpeechEnd(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: _common_pb2.SpeechEndReason
    def __init__(self, reason: _Optional[_Union[_common_pb2.SpeechEndReason, str]] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("utterance_id", "start_s", "end_s", "input_through_s", "settled_through_s", "next_boundary_s", "start", "audio", "end", "progress", "going_away")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    INPUT_THROUGH_S_FIELD_NUMBER: _ClassVar[int]
    SETTLED_THROUGH_S_FIELD_NUMBER: _ClassVar[int]
    NEXT_BOUNDARY_S_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    GOING_AWAY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    start_s: float
    end_s: float
    input_through_s: float
    settled_through_s: float
    next_boundary_s: float
    start: SpeechStart
    audio: SpeechAudio
    end: SpeechEnd
    progress: DetectProgress
    going_away: _common_pb2.GoingAway
    def __init__(self, utterance_id: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., input_through_s: _Optional[float] = ..., settled_through_s: _Optional[float] = ..., next_boundary_s: _Optional[float] = ..., start: _Optional[_Union[SpeechStart, _Mapping]] = ..., audio: _Optional[_Union[SpeechAudio, _Mapping]] = ..., end: _Optional[_Union[SpeechEnd, _Mapping]] = ..., progress: _Optional[_Union[DetectProgress, _Mapping]] = ..., going_away: _Optional[_Union[_common_pb2.GoingAway, _Mapping]] = ...) -> None: ...

class DetectProgress(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
