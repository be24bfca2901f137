from voxmesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessConfig(_message.Message):
    __slots__ = ("instruction", "context")
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    instruction: str
    context: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instruction: _Optional[str] = ..., context: _Optional[_Iterable[str]] = ...) -> None: ...

class TranscriptSegment(_message.Message):
    __slots__ = ("utterance_id", "text")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    text: str
    def __init__(self, utterance_id: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class ProcessRequest(_message.Message):
    __slots__ = ("config", "transcript")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    config: ProcessConfig
    transcript: TranscriptSegment
    def __init__(self, config: _Optional[_Union[ProcessConfig, _Mapping]] = ..., transcript: _Optional[_Union[TranscriptSegment, _Mapping]] = ...) -> None: ...

class ProcessResponse(_message.Message):
    __slots__ = ("utterance_id", "processed", "error", "going_away")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GOING_AWAY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    processed: _common_pb2.ProcessedText
    error: _common_pb2.UtteranceError
    going_away: _common_pb2.GoingAway
    def __init__(self, utterance_id: _Optional[int] = ..., processed: _Optional[_Union[_common_pb2.ProcessedText, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.UtteranceError, _Mapping]] = ..., going_away: _Optional[_Union[_common_pb2.GoingAway, _Mapping]] = ...) -> None: ...
