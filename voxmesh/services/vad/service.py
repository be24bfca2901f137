"""The VoiceActivity servicer: protocol only; the segmenter and a classifier engine (classifiers.py, chosen by
VOXMESH_VAD_ENGINE) do the work.

webrtcvad classifies a 30 ms frame in microseconds, so its streams are segmented inline on the event loop:
a worker thread would cost more in hand-offs than the work it moves. Silero takes about 0.1 ms a frame, so
its streams are segmented on `classifier_threads` worker threads (onnxruntime releases the GIL while it
runs), so that the event loop stays free for the other streams' messages.

Every response says how far the stream is settled (`settled_through_s`), and a `progress` response says
so when a second of audio has settled with nothing else to report, so that the caller can keep just the
audio a failover would have to send again. A stream may continue another (config: offset, next utterance
id, open utterance). When the service drains, each stream is told `going_away` with its next chunk.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, errors, rpc
from voxmesh.services.vad import classifiers, metrics
from voxmesh.services.vad.segmenter import Segmenter, SegmenterConfig, SpeechAudio, SpeechEnded, SpeechStarted
from voxmesh.settings import VadSettings
from voxmesh.v1 import common_pb2, vad_pb2, vad_pb2_grpc

END_REASONS = {
    "silence": common_pb2.SPEECH_END_REASON_SILENCE,
    "max_length": common_pb2.SPEECH_END_REASON_MAX_LENGTH,
    "stream_end": common_pb2.SPEECH_END_REASON_STREAM_END,
}


PROGRESS_EVERY = SAMPLE_RATE  # samples newly settled, with nothing else said, before a progress response


def _seconds(samples: int) -> float:
    return samples / SAMPLE_RATE


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def to_proto(event, input_through: int) -> vad_pb2.DetectResponse:
    """The response for an event; it settles the stream up to where the event leaves it."""
    through = _seconds(input_through)
    if isinstance(event, SpeechStarted):
        at = _seconds(event.start)
        return vad_pb2.DetectResponse(
            utterance_id=event.utterance,
            start_s=at,
            end_s=at,
            input_through_s=through,
            settled_through_s=at,
            start=vad_pb2.SpeechStart(),
        )
    if isinstance(event, SpeechAudio):
        return vad_pb2.DetectResponse(
            utterance_id=event.utterance,
            start_s=_seconds(event.start),
            end_s=_seconds(event.end),
            input_through_s=through,
            settled_through_s=_seconds(event.end),
            audio=vad_pb2.SpeechAudio(audio=event.pcm, pause_s=_seconds(event.pause)),
        )
    assert isinstance(event, SpeechEnded)
    at = _seconds(event.end)
    return vad_pb2.DetectResponse(
        utterance_id=event.utterance,
        start_s=at,
        end_s=at,
        input_through_s=through,
        settled_through_s=at,
        end=vad_pb2.SpeechEnd(reason=END_REASONS[event.reason]),
    )


MAX_WARMUP_S = 120.0


def check_resume(config: vad_pb2.DetectConfig) -> dict:
    """The segmenter's start of a stream that may continue another: offset, warm-up and open utterance."""
    if not (math.isfinite(config.offset_s) and config.offset_s >= 0):
        raise errors.InvalidArgument(f"offset_s {config.offset_s} is not accepted: give 0 or a positive offset")
    if not (math.isfinite(config.warmup_s) and 0 <= config.warmup_s <= min(config.offset_s, MAX_WARMUP_S)):
        raise errors.InvalidArgument(
            f"warmup_s {config.warmup_s} is not accepted: give 0 to {MAX_WARMUP_S:g} s, and no more than offset_s"
        )
    offset = _samples(config.offset_s)
    open_since = None
    if config.HasField("open_utterance"):
        open_since = _samples(config.open_utterance.start_s)
        if not 0 <= open_since <= offset:
            raise errors.InvalidArgument(
                f"open_utterance.start_s {config.open_utterance.start_s} is not accepted: an open utterance "
                "begins at or before the stream's offset_s"
            )
    return {
        "offset": offset,
        "warmup": _samples(config.warmup_s),
        "next_utterance": max(1, config.next_utterance_id),
        "open_since": open_since,
    }


class VadServicer(vad_pb2_grpc.VoiceActivityServicer, rpc.Servicer):
    def __init__(self, settings: VadSettings):
        self.settings = settings
        self.engine = classifiers.load_engine(settings)
        self._workers = (
            ThreadPoolExecutor(settings.classifier_threads, thread_name_prefix="vad") if self.engine.blocking else None
        )
        self.config = SegmenterConfig(
            frame_ms=self.engine.frame_ms,
            speech_start_ms=settings.speech_start_ms,
            speech_end_ms=settings.speech_end_ms,
            pre_roll_ms=settings.pre_roll_ms,
            max_utterance_s=settings.max_utterance_s,
            min_utterance_s=settings.min_utterance_s,
            merge_pause_ms=settings.merge_pause_ms,
            audio_every_ms=settings.audio_every_ms,
        )
        self.started = False
        self.draining = False

    @property
    def ready(self) -> bool:
        return self.started

    def segmenter(self, **start) -> Segmenter:
        """A segmenter for a new stream, or for one that continues another (see check_resume)."""
        return Segmenter(self.engine.stream(), self.config, **start)

    async def _push(self, segmenter: Segmenter, audio: bytes) -> list:
        if self._workers is None:
            return segmenter.push(audio)
        return await asyncio.get_running_loop().run_in_executor(self._workers, segmenter.push, audio)

    @rpc.servicer_method("vad")
    async def Detect(self, request_iterator, context: grpc.aio.ServicerContext):
        config, rest = await rpc.config_first(request_iterator)
        if config is None:
            return
        rpc.require_internal_rate(config.sample_rate_hz)
        segmenter = self.segmenter(**check_resume(config))
        await rpc.accepted(context)
        told = segmenter.settled  # how far the responses sent so far have settled the stream
        going_away_sent = False
        async for _, audio in rest:
            rpc.require_whole_samples(audio)
            began = time.perf_counter()
            events = await self._push(segmenter, audio)
            metrics.CHUNK_SECONDS.observe(time.perf_counter() - began)
            metrics.AUDIO_SECONDS.inc(len(audio) / (SAMPLE_WIDTH * SAMPLE_RATE))
            for event in events:
                response = self._response(event, segmenter.position)
                told = _samples(response.settled_through_s)
                yield response
            if self.draining and not going_away_sent:
                going_away_sent = True
                yield self._status(segmenter, going_away=common_pb2.GoingAway(reason="the VAD service is stopping"))
            elif segmenter.settled - told >= PROGRESS_EVERY:
                told = segmenter.settled
                yield self._status(segmenter, progress=vad_pb2.DetectProgress())
        for event in segmenter.flush():
            yield self._response(event, segmenter.position)

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _response(event, position: int) -> vad_pb2.DetectResponse:
        if isinstance(event, SpeechEnded):
            metrics.UTTERANCES.labels(event.reason).inc()
        return to_proto(event, position)

    @staticmethod
    def _status(segmenter: Segmenter, **event) -> vad_pb2.DetectResponse:
        return vad_pb2.DetectResponse(
            input_through_s=_seconds(segmenter.position), settled_through_s=_seconds(segmenter.settled), **event
        )


class VadService:
    name = "vad"
    grpc_services = (vad_pb2.DESCRIPTOR.services_by_name["VoiceActivity"].full_name,)

    def __init__(self, settings: VadSettings):
        self.settings = settings
        self.servicer = VadServicer(settings)

    def register(self, server: grpc.aio.Server) -> None:
        rpc.add_servicer(server, self.servicer, vad_pb2.DESCRIPTOR.services_by_name["VoiceActivity"])

    async def start(self, health) -> None:
        # Warm-up: one classification proves the native module loads and works.
        self.servicer.segmenter().push(bytes(SAMPLE_WIDTH * SAMPLE_RATE // 10))
        self.servicer.started = True

    def drain(self) -> None:
        self.servicer.draining = True

    async def close(self) -> None:
        self.servicer.started = False
        self.servicer.close()
