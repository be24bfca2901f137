"""The VoiceActivity servicer: protocol only; the segmenter and a classifier engine (classifiers.py, chosen by
VOXMESH_VAD_ENGINE) do the work.

webrtcvad classifies a 30 ms frame in microseconds, so its streams are segmented inline on the event loop:
a worker thread would cost more in hand-offs than the work it moves. Silero takes about 0.1 ms a frame, so
its streams are segmented on `classifier_threads` worker threads (onnxruntime releases the GIL while it
runs), so that the event loop stays free for the other streams' messages.

Every response says how far the stream is settled (`settled_through_s`), and a `progress` response says
so when a second of audio has settled with nothing else to report, so that the caller can keep just the
audio a failover would have to send again. Every response also says where the next start or end can fall
at the earliest (`next_boundary_s`, Segmenter.next_boundary), so that a caller may gather the audio before
it into one message. A stream may continue another (config: offset, next utterance
id, open utterance). When the service drains, each stream is told `going_away` with its next chunk. A
caller that keeps its audio (`caller_holds_audio`, as the gateway does) gets the spans of its utterances'
audio without the samples, and, if it asks (`end_carries_audio`), an utterance's last span with its end: one
response where there were two, of which the end waited for the first to be written.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

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
    "flush": common_pb2.SPEECH_END_REASON_FLUSH,
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
MIN_START_MS, MAX_START_MS = 30, 1000  # a stream's start window (endpointing.start_ms)
MIN_UTTERANCE_LIMIT_S = 1.0  # the shortest max_utterance_s a stream may ask for


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
            noise_gate_db=settings.noise_gate_db,
            end_stretch=settings.end_stretch,
        )
        self.started = False
        self.draining = False

    @property
    def ready(self) -> bool:
        return self.started

    def segmenter(
        self, endpointing: common_pb2.Endpointing | None = None, keep_audio: bool = True, **start
    ) -> Segmenter:
        """A segmenter for a new stream, or for one that continues another (see check_resume), with the
        stream's own endpointing; `keep_audio`: whether its audio responses carry the samples."""
        config = self.config if endpointing is None else self.endpointing(endpointing)
        return Segmenter(self.engine.stream(), config, keep_audio=keep_audio, **start)

    def endpointing(self, asked: common_pb2.Endpointing) -> SegmenterConfig:
        """The service's segmenter config with a stream's endpointing, refused outside the service's bounds."""
        s = self.settings
        low, high = s.min_end_silence_ms, s.max_end_silence_ms
        if asked.end_silence_ms and not low <= asked.end_silence_ms <= high:
            raise errors.InvalidArgument(
                f"endpointing.end_silence_ms {asked.end_silence_ms} is not accepted: give {low} to {high} ms "
                "(VOXMESH_VAD_MIN_END_SILENCE_MS, VOXMESH_VAD_MAX_END_SILENCE_MS), or 0 for the service's "
                f"{s.speech_end_ms} ms"
            )
        if asked.start_ms and not MIN_START_MS <= asked.start_ms <= MAX_START_MS:
            raise errors.InvalidArgument(
                f"endpointing.start_ms {asked.start_ms} is not accepted: give {MIN_START_MS} to {MAX_START_MS} ms, "
                f"or 0 for the service's {s.speech_start_ms} ms"
            )
        longest = asked.max_utterance_s
        if longest and not (math.isfinite(longest) and MIN_UTTERANCE_LIMIT_S <= longest <= s.max_utterance_s):
            raise errors.InvalidArgument(
                f"endpointing.max_utterance_s {longest:g} is not accepted: give {MIN_UTTERANCE_LIMIT_S:g} to "
                f"{s.max_utterance_s:g} s (VOXMESH_VAD_MAX_UTTERANCE_S), or 0 for that"
            )
        return replace(
            self.config,
            speech_end_ms=asked.end_silence_ms or self.config.speech_end_ms,
            speech_start_ms=asked.start_ms or self.config.speech_start_ms,
            max_utterance_s=longest or self.config.max_utterance_s,
        )

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
        endpointing = config.endpointing if config.HasField("endpointing") else None
        if config.end_carries_audio and not config.caller_holds_audio:
            raise errors.InvalidArgument(
                "end_carries_audio is accepted only with caller_holds_audio: an end carries the span of its audio, "
                "not samples"
            )
        segmenter = self.segmenter(endpointing, not config.caller_holds_audio, **check_resume(config))
        fold = config.end_carries_audio
        await rpc.accepted(context)
        told = segmenter.settled  # how far the responses sent so far have settled the stream
        going_away_sent = False
        async for kind, message in rest:
            if kind == "flush":
                events = segmenter.cut()
            else:
                rpc.require_whole_samples(message)
                began = time.perf_counter()
                events = await self._push(segmenter, message)
                metrics.CHUNK_SECONDS.observe(time.perf_counter() - began)
                metrics.AUDIO_SECONDS.inc(len(message) / (SAMPLE_WIDTH * SAMPLE_RATE))
            for response in self._responses(events, segmenter, fold):
                told = _samples(response.settled_through_s)
                yield response
            if self.draining and not going_away_sent:
                going_away_sent = True
                yield self._status(segmenter, going_away=common_pb2.GoingAway(reason="the VAD service is stopping"))
            elif segmenter.settled - told >= PROGRESS_EVERY:
                told = segmenter.settled
                yield self._status(segmenter, progress=vad_pb2.DetectProgress())
        for response in self._responses(segmenter.flush(), segmenter, fold):
            yield response

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _responses(events: list, segmenter: Segmenter, fold: bool) -> list[vad_pb2.DetectResponse]:
        """The responses for a push's events; with `fold` (end_carries_audio), an utterance's last audio and
        its end (which the segmenter emits one after the other) are one response: the end, with the audio's span."""
        responses: list[vad_pb2.DetectResponse] = []
        for event in events:
            if isinstance(event, SpeechEnded):
                metrics.UTTERANCES.labels(event.reason).inc()
            response = to_proto(event, segmenter.position)
            response.next_boundary_s = _seconds(segmenter.next_boundary)
            last = responses[-1] if responses else None
            if fold and response.HasField("end") and last is not None and last.HasField("audio"):
                assert last.utterance_id == response.utterance_id  # an end follows its own utterance's audio
                response.start_s = responses.pop().start_s
            responses.append(response)
        for response in responses:
            metrics.ANSWERS.labels(response.WhichOneof("event")).inc()
        return responses

    @staticmethod
    def _status(segmenter: Segmenter, **event) -> vad_pb2.DetectResponse:
        (kind,) = event  # progress or going_away
        metrics.ANSWERS.labels(kind).inc()
        return vad_pb2.DetectResponse(
            input_through_s=_seconds(segmenter.position),
            settled_through_s=_seconds(segmenter.settled),
            next_boundary_s=_seconds(segmenter.next_boundary),
            **event,
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
