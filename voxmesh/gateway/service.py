"""The Transcription servicer: validates client input, converts audio once, runs a Chain per call.

A call waits up to `replica_wait_s` for a ready replica of the VAD and the ASR, and fails UNAVAILABLE
naming the missing service. When the gateway drains, every open stream is told `going_away` (the client
library resumes it on another replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import AsyncIterator, Sequence

import grpc

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH, audio, auth, errors, rpc, text, tracing
from voxmesh.gateway import codecs, metrics
from voxmesh.gateway.admission import Admission
from voxmesh.gateway.chain import Chain, ChainConfig, Flush
from voxmesh.gateway.downstream import REQUIRED, Downstream
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import common_pb2, transcription_pb2, transcription_pb2_grpc

log = logging.getLogger("voxmesh.gateway")

# A BCP-47 tag's shape: a primary language subtag of 2 or 3 letters, then subtags of 1 to 8 letters or digits
# (script, region, variant: "en-US", "zh-Hant-TW", "sr-Latn"); case does not matter.
_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2,3})(-[A-Za-z0-9]{1,8})*")
FILE_CHUNK_BYTES = SAMPLE_RATE * SAMPLE_WIDTH // 2  # a recording goes to the VAD in half seconds
MAX_RESUME_PENDING = 64  # finals a resumed stream may hand back for post-processing
MAX_TRANSCRIPT_CHARS = 20_000
MAX_PHRASES = 100
MAX_PHRASE_CHARS = 100
MAX_BOOST = 20.0
MAX_PROMPT_CHARS = 1000


def encoding_name(value: int) -> str:
    if value in transcription_pb2.AudioFormat.Encoding.values():
        return transcription_pb2.AudioFormat.Encoding.Name(value)
    return f"number {value} (unknown)"


def chain_config(
    settings: GatewaySettings,
    language: str,
    partials: bool,
    post: transcription_pb2.PostProcessing,
    resume: transcription_pb2.ResumeFrom | None = None,
    recorded: bool = False,
    *,
    word_timings: bool = False,
    phrases: Sequence[common_pb2.PhraseHint] = (),
    prompt: str = "",
    endpointing: common_pb2.Endpointing | None = None,
) -> ChainConfig:
    tag = language_tag(language)
    if post.enabled and len(post.instruction) > settings.max_instruction_chars:
        raise errors.InvalidArgument(
            f"the post-processing instruction has {len(post.instruction)} characters; at most "
            f"{settings.max_instruction_chars} are accepted (VOXMESH_GATEWAY_MAX_INSTRUCTION_CHARS)"
        )
    if resume is not None:
        check_resume(resume)
    return ChainConfig(
        tag.split("-")[0].lower(),
        partials,
        post.enabled,
        post.instruction if post.enabled else "",
        resume,
        recorded,
        word_timings=word_timings,
        phrases=check_phrases(phrases),
        prompt=check_prompt(prompt),
        language_tag=tag,
        endpointing=endpointing,
    )


def language_tag(language: str) -> str:
    """The stream's language as a BCP-47 tag in its usual case ("en-US", "zh-Hant-TW"); "" for none."""
    if not language:
        return ""
    if not _LANGUAGE_TAG.fullmatch(language):
        raise errors.InvalidArgument(
            f"language {errors.quote(language)} is neither a BCP-47 tag such as 'en-US' nor an ISO 639-1 code such "
            "as 'en'; leave it empty to let the engine detect it"
        )
    primary, *rest = language.split("-")
    # BCP-47's conventions: language lower case, script title case, region upper case
    cased = [s.title() if len(s) == 4 else s.upper() if len(s) == 2 or s.isdigit() else s.lower() for s in rest]
    return "-".join([primary.lower(), *cased])


def check_phrases(phrases: Sequence[common_pb2.PhraseHint]) -> tuple[tuple[str, float], ...]:
    if len(phrases) > MAX_PHRASES:
        raise errors.InvalidArgument(f"{len(phrases)} phrase hints were given; at most {MAX_PHRASES} are accepted")
    checked = []
    for hint in phrases:
        phrase = hint.phrase.strip()
        if not 0 < len(phrase) <= MAX_PHRASE_CHARS:
            raise errors.InvalidArgument(
                f"phrase hint {errors.quote(hint.phrase)} is not accepted: a phrase has 1 to {MAX_PHRASE_CHARS} "
                "characters"
            )
        if not (math.isfinite(hint.boost) and 0 <= hint.boost <= MAX_BOOST):
            raise errors.InvalidArgument(
                f"the boost {hint.boost:g} of phrase hint {errors.quote(phrase)} is not accepted: give 0 to "
                f"{MAX_BOOST:g} (0: the engine's default weight)"
            )
        checked.append((phrase, float(hint.boost)))
    return tuple(checked)


def check_prompt(prompt: str) -> str:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise errors.InvalidArgument(
            f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are accepted"
        )
    return prompt.strip()


def check_resume(resume: transcription_pb2.ResumeFrom) -> None:
    if not (math.isfinite(resume.offset_s) and resume.offset_s >= 0):
        raise errors.InvalidArgument(f"resume.offset_s {resume.offset_s} is not accepted: give 0 or a positive offset")
    if len(resume.pending) > MAX_RESUME_PENDING:
        raise errors.InvalidArgument(
            f"resume.pending has {len(resume.pending)} transcripts; at most {MAX_RESUME_PENDING} are accepted"
        )
    ids = [p.utterance_id for p in resume.pending]
    if len(set(ids)) != len(ids) or any(not 0 < i < max(1, resume.next_utterance_id) for i in ids):
        raise errors.InvalidArgument(
            "resume.pending must name distinct utterances, each before resume.next_utterance_id"
        )
    if any(len(t) > MAX_TRANSCRIPT_CHARS for t in [*(p.text for p in resume.pending), *resume.context]):
        raise errors.InvalidArgument(f"a resumed transcript is longer than {MAX_TRANSCRIPT_CHARS} characters")


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
