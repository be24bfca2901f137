"""What a client asks of a stream: `StreamOptions`, turned into the config and metadata of its call."""

from __future__ import annotations

from dataclasses import dataclass

from voxmesh.v1 import common_pb2
from voxmesh.v1 import transcription_pb2 as pb


@dataclass(frozen=True)
class StreamOptions:
    language: str = ""  # a BCP-47 tag ("en-US") or an ISO 639-1 code ("en"); "": the engine detects it
    partials: bool = False
    post_processing: bool = True
    instruction: str = ""
    # Resume the stream on a new call when its gateway goes away; False: the call's end is the stream's end.
    resume: bool = True
    # How long to keep trying to resume after the last event, before the last error is raised.
    resume_timeout_s: float = 30.0
    # The audio was recorded and is sent faster than it plays: it waits for the mesh's capacity instead of
    # being refused, and yields to live streams (stream_file sets it for pace="fast").
    recorded: bool = False
    # Finals carry their words with offsets (Final.words); it costs engine time.
    word_timings: bool = False
    # Phrases the speaker is likely to say, each with its boost (0: the engine's default weight), and a
    # free-text prompt for the engine.
    phrases: tuple[tuple[str, float], ...] = ()
    prompt: str = ""
    # This stream's endpointing (0: the server's): the silence that ends an utterance, the voiced audio
    # that starts one, the longest utterance. Yield `FLUSH` among the chunks to end an utterance at once.
    end_silence_ms: int = 0
    start_ms: int = 0
    max_utterance_s: float = 0.0
    # Sent as x-request-id: every service logs it for this stream, and error events carry it ("": the
    # gateway makes one).
    request_id: str = ""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", self.request_id),) if self.request_id else ()

    def endpointing(self) -> common_pb2.Endpointing | None:
        if not (self.end_silence_ms or self.start_ms or self.max_utterance_s):
            return None
        return common_pb2.Endpointing(
            end_silence_ms=self.end_silence_ms, start_ms=self.start_ms, max_utterance_s=self.max_utterance_s
        )

    def post(self) -> pb.PostProcessing:
        return pb.PostProcessing(enabled=self.post_processing, instruction=self.instruction)
