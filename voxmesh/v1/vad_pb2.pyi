from voxmesh.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DetectConfig(_message.Message):
    __slots__ = ("sample_rate_hz",)
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    def __init__(self, sample_rate_hz: _Optional[int] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: DetectConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[DetectConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class SpeechStart(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SpeechAudio(_message.Message):
    __slots__ = ("audio",)
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    def __init__(self, audio: _Optional[bytes] = ...) -> None: ...

class SpeechEnd(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: _common_pb2.SpeechEndReason
    def __init__(self, reason: _Optional[_Union[_common_pb2.SpeechEndReason, str]] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("utterance_id", "start_s", "end_s", "input_through_s", "start", "audio", "end")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    INPUT_THROUGH_S_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    start_s: float
    end_s: float
    input_through_s: float
    start: SpeechStart
    audio: SpeechAudio
    end: SpeechEnd
    def __init__(self, utterance_id: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., input_through_s: _Optional[float] = ..., start: _Optional[_Union[SpeechStart, _Mapping]] = ..., audio: _Optional[_Union[SpeechAudio, _Mapping]] = ..., end: _Optional[_Union[SpeechEnd, _Mapping]] = ...) -> None: ...
