"""The VoiceActivity servicer: protocol only; the segmenter and webrtcvad do the work.

webrtcvad classifies a 30 ms frame in microseconds, so segmenting runs inline on the event loop: a
worker thread would cost more in hand-offs than the work it moves.
"""

from __future__ import annotations

import time

import grpc
import webrtcvad

from services.vad import metrics
from services.vad.segmenter import Segmenter, SegmenterConfig, SpeechAudio, SpeechEnded, SpeechStarted
from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors, rpc
from voxmesh.settings import VadSettings
from voxmesh.v1 import common_pb2, vad_pb2, vad_pb2_grpc

END_REASONS = {
    "silence": common_pb2.SPEECH_END_REASON_SILENCE,
    "max_length": common_pb2.SPEECH_END_REASON_MAX_LENGTH,
    "stream_end": common_pb2.SPEECH_END_REASON_STREAM_END,
}


def _seconds(samples: int) -> float:
    return samples / SAMPLE_RATE


def to_proto(event, input_through: int) -> vad_pb2.DetectResponse:
    through = _seconds(input_through)
    if isinstance(event, SpeechStarted):
        at = _seconds(event.start)
        return vad_pb2.DetectResponse(
            utterance_id=event.utterance, start_s=at, end_s=at, input_through_s=through, start=vad_pb2.SpeechStart()
        )
    if isinstance(event, SpeechAudio):
        return vad_pb2.DetectResponse(
            utterance_id=event.utterance,
            start_s=_seconds(event.start),
            end_s=_seconds(event.end),
            input_through_s=through,
            audio=vad_pb2.SpeechAudio(audio=event.pcm),
        )
    assert isinstance(event, SpeechEnded)
    at = _seconds(event.end)
    return vad_pb2.DetectResponse(
        utterance_id=event.utterance,
        start_s=at,
        end_s=at,
        input_through_s=through,
        end=vad_pb2.SpeechEnd(reason=END_REASONS[event.reason]),
    )


class VadServicer(vad_pb2_grpc.VoiceActivityServicer):
    def __init__(self, settings: VadSettings):
        self.settings = settings
        self.config = SegmenterConfig(
            frame_ms=settings.frame_ms,
            speech_start_ms=settings.speech_start_ms,
            speech_end_ms=settings.speech_end_ms,
            pre_roll_ms=settings.pre_roll_ms,
            max_utterance_s=settings.max_utterance_s,
        )
        self.ready = False

    def segmenter(self) -> Segmenter:
        vad = webrtcvad.Vad(self.settings.aggressiveness)
        return Segmenter(lambda frame: vad.is_speech(frame, SAMPLE_RATE), self.config)

    @rpc.servicer_method("vad")
    async def Detect(self, request_iterator, context: grpc.aio.ServicerContext):
        if not self.ready:
            raise errors.Unavailable("the VAD service is still starting; retry once its health check says SERVING")
        config, rest = await rpc.config_first(request_iterator)
        if config is None:
            return
        rpc.require_internal_rate(config.sample_rate_hz)
        segmenter = self.segmenter()
        async for _, audio in rest:
            rpc.require_whole_samples(audio)
            began = time.perf_counter()
            events = segmenter.push(audio)
            metrics.CHUNK_SECONDS.observe(time.perf_counter() - began)
            metrics.AUDIO_SECONDS.inc(len(audio) / (SAMPLE_WIDTH * SAMPLE_RATE))
            for event in events:
                yield self._response(event, segmenter.position)
        for event in segmenter.flush():
            yield self._response(event, segmenter.position)

    @staticmethod
    def _response(event, position: int) -> vad_pb2.DetectResponse:
        if isinstance(event, SpeechEnded):
            metrics.UTTERANCES.labels(event.reason).inc()
        return to_proto(event, position)


class VadService:
    name = "vad"
    grpc_services = (vad_pb2.DESCRIPTOR.services_by_name["VoiceActivity"].full_name,)

    def __init__(self, settings: VadSettings):
        self.servicer = VadServicer(settings)

    def register(self, server: grpc.aio.Server) -> None:
        vad_pb2_grpc.add_VoiceActivityServicer_to_server(self.servicer, server)

    async def start(self) -> None:
        # Warm-up: one classification proves the native module loads and works.
        self.servicer.segmenter().push(bytes(SAMPLE_WIDTH * SAMPLE_RATE // 10))
        self.servicer.ready = True

    async def close(self) -> None:
        self.servicer.ready = False
