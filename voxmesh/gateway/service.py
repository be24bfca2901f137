"""The Transcription servicer: validates client input, converts audio once, runs a Chain per call.

A call waits up to `replica_wait_s` for a ready replica of the VAD and the ASR, and fails UNAVAILABLE
naming the missing service. When the gateway drains, every open stream is told `going_away` (the client
library resumes it on another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, audio, auth, errors, rpc, text, tracing
from voxmesh.gateway import codecs, metrics
from voxmesh.gateway.admission import Admission
from voxmesh.gateway.chain import Chain
from voxmesh.gateway.config import Flush, chain_config
from voxmesh.gateway.downstream import REQUIRED, Downstream
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import common_pb2, transcription_pb2, transcription_pb2_grpc

log = logging.getLogger("voxmesh.gateway")

FILE_CHUNK_BYTES = SAMPLE_RATE * SAMPLE_WIDTH // 2  # a recording goes to the VAD in half seconds


def encoding_name(value: int) -> str:
    if value in transcription_pb2.AudioFormat.Encoding.values():
        return transcription_pb2.AudioFormat.Encoding.Name(value)
    return f"number {value} (unknown)"


class TranscriptionServicer(transcription_pb2_grpc.TranscriptionServicer, rpc.Servicer):
    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.downstream: Downstream | None = None
        self.active = 0
        self.chains: set[Chain] = set()
        self.admission = Admission(settings.admit_utilization)
        self.keys = auth.KeyRing()  # none until the service starts (a key file that cannot be read fails start-up)

    @property
    def ready(self) -> bool:
        return self.downstream is not None

    def _ready_downstream(self) -> Downstream:
        """The downstream services, from a call (the servicer refuses calls until start() set them)."""
        assert self.downstream is not None
        return self.downstream

    def drain(self) -> None:
        """Tell every client stream to resume on another replica."""
        for chain in self.chains:
            chain.going_away()

    @contextlib.contextmanager
    def _admit(self, method: str):
        """Count the call against the stream limit, and record how it ended."""
        if self.active >= self.settings.max_streams:
            metrics.STREAMS.labels(method, "RESOURCE_EXHAUSTED").inc()
            raise errors.ResourceExhausted(
                f"the gateway is serving its limit of {self.settings.max_streams} concurrent streams "
                "(VOXMESH_GATEWAY_MAX_STREAMS); retry later or add gateway replicas"
            )
        self.active += 1
        metrics.ACTIVE_STREAMS.inc()
        code = "OK"
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except Exception as exc:
            code = errors.status_of(exc)[0].name
            raise
        finally:
            self.active -= 1
            metrics.ACTIVE_STREAMS.dec()
            metrics.STREAMS.labels(method, code).inc()

    @rpc.servicer_method("gateway")
    async def StreamingTranscribe(self, request_iterator, context: grpc.aio.ServicerContext):
        tracing.new_request_id(tracing.request_id.get())  # the client's x-request-id, or a new one
        key = self.keys.admit(auth.bearer(context.invocation_metadata()), "StreamingTranscribe")
        with key, self._admit("StreamingTranscribe"):
            config, rest = await rpc.config_first(
                request_iterator,
                timeout_s=self.settings.first_message_timeout_s,
                idle_timeout_s=self.settings.idle_timeout_s,
            )
            if config is None:
                return
            decoder = codecs.open_decoder(
                encoding_name(config.format.encoding), config.format.sample_rate_hz, config.format.channels
            )
            recorded = config.source == transcription_pb2.AUDIO_SOURCE_RECORDED
            downstream = self._ready_downstream()
            chain = Chain(
                chain_config(
                    self.settings,
                    config.language,
                    config.partial_results,
                    config.post_processing,
                    config.resume if config.HasField("resume") else None,
                    recorded,
                    word_timings=config.word_timings,
                    phrases=config.phrases,
                    prompt=config.prompt,
                    endpointing=config.endpointing if config.HasField("endpointing") else None,
                ),
                downstream,
                self.settings,
                None if recorded else self.admission,
            )
            await downstream.require(REQUIRED, self.settings.replica_wait_s)
            if not recorded:
                self.admission.admit(chain, resumed=config.HasField("resume"))
            self.chains.add(chain)
            try:
                await chain.start(context.time_remaining())
                await rpc.accepted(context)  # a client moving its stream here may now leave the gateway it was on
                async for event in chain.run(self._converted(rest, decoder)):
                    yield event
            finally:
                self.chains.discard(chain)
                self.admission.ended(chain)

    async def _converted(self, rest, decoder: codecs.Decoder) -> AsyncIterator[bytes | Flush]:
        """The client's audio, decoded once to 16 kHz mono LINEAR16, and its flushes in their place."""
        async for kind, chunk in rest:
            if kind == "flush":
                yield Flush()
                continue
            if len(chunk) > self.settings.max_chunk_bytes:
                raise errors.InvalidArgument(
                    f"an audio chunk of {len(chunk)} bytes is over the limit of {self.settings.max_chunk_bytes} "
                    "bytes per message; send smaller chunks (100 ms each is typical)"
                )
            pcm = await decoder.decode(chunk)
            metrics.AUDIO_SECONDS.inc(len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH))
            yield pcm
        yield await decoder.finish()

    @rpc.servicer_method("gateway")
    async def Transcribe(self, request, context: grpc.aio.ServicerContext):
        tracing.new_request_id(tracing.request_id.get())
        with self.keys.admit(auth.bearer(context.invocation_metadata()), "Transcribe"), self._admit("Transcribe"):
            if not request.content:
                raise errors.InvalidArgument("content is empty: send the bytes of an audio file (WAV, FLAC, OGG, ...)")
            config = chain_config(
                self.settings,
                request.language,
                False,
                request.post_processing,
                recorded=True,
                word_timings=request.word_timings,
                phrases=request.phrases,
                prompt=request.prompt,
            )
            decoder = audio.RecordingDecoder(request.content, self.settings.max_file_s, self.settings.decode_block_s)
            downstream = self._ready_downstream()
            await downstream.require(REQUIRED, self.settings.replica_wait_s)
            metrics.AUDIO_SECONDS.inc(decoder.seconds)

            async def chunks() -> AsyncIterator[bytes]:
                blocks = decoder.blocks()
                while (block := await asyncio.to_thread(next, blocks, None)) is not None:
                    for offset in range(0, len(block), FILE_CHUNK_BYTES):
                        yield block[offset : offset + FILE_CHUNK_BYTES]

            utterances: dict[int, transcription_pb2.Utterance] = {}
            chain = Chain(config, downstream, self.settings)
            await chain.start(context.time_remaining())
            async for event in chain.run(chunks()):
                if not event.utterance_id:
                    continue  # progress and going_away: a unary call has nothing to resume
                utterance = utterances.setdefault(
                    event.utterance_id, transcription_pb2.Utterance(utterance_id=event.utterance_id)
                )
                utterance.start_s, utterance.end_s = event.start_s, event.end_s
                kind = event.WhichOneof("event")
                if kind in ("final", "error"):
                    getattr(utterance, kind).CopyFrom(getattr(event, kind))
                elif kind == "processed" and event.processed.done:
                    utterance.processed.CopyFrom(event.processed)
            ordered = [utterances[k] for k in sorted(utterances)]
            return transcription_pb2.TranscribeResponse(
                utterances=ordered, duration_s=decoder.seconds, text=joined_text(ordered)
            )


def joined_text(utterances: list[transcription_pb2.Utterance]) -> str:
    return text.transcript(
        (
            u.final.text if u.HasField("final") else None,
            u.processed.text if u.processed.outcome not in (0, common_pb2.PROCESSING_OUTCOME_FAILED) else None,
        )
        for u in utterances
    )


class GatewayService:
    name = "gateway"
    grpc_services = (transcription_pb2.DESCRIPTOR.services_by_name["Transcription"].full_name,)

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.servicer = TranscriptionServicer(settings)
        self._downstream: Downstream | None = None

    def register(self, server: grpc.aio.Server) -> None:
        rpc.add_servicer(server, self.servicer, transcription_pb2.DESCRIPTOR.services_by_name["Transcription"])

    async def start(self, health) -> None:
        """Read the API keys; serve once the VAD and the ASR have a ready replica; from then on, say NOT_SERVING
        while either has none."""
        self.servicer.keys = auth.KeyRing(self.settings.api_keys_file, self.settings.api_keys)
        self._downstream = Downstream(self.settings)
        self._downstream.watch(health.follow)
        await self._downstream.wait_ready()
        self.servicer.downstream = self._downstream

    def drain(self) -> None:
        self.servicer.drain()

    async def close(self) -> None:
        self.servicer.downstream = None
        if self._downstream is not None:
            await self._downstream.close()
