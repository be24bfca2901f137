"""The Recognizer servicer: protocol only. Engine work goes through a scheduler (batching for engines
that transcribe whole utterances, rounds of steps for streaming engines); state per stream lives in a session."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import grpc

from voxmesh import SAMPLE_RATE, errors, rpc, tasks
from voxmesh.channel import Channel
from voxmesh.load import Window
from voxmesh.services.asr.engines import AsrEngine, BatchAsrEngine, EngineCapabilities, load_engine
from voxmesh.services.asr.live_session import LiveSession
from voxmesh.services.asr.redecode_session import RedecodeSession
from voxmesh.services.asr.rounds import RoundScheduler
from voxmesh.services.asr.scheduler import BatchScheduler
from voxmesh.services.asr.session import Session
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2, asr_pb2_grpc, common_pb2

log = logging.getLogger("voxmesh.asr")


def context_bounds(settings: AsrSettings, capabilities: EngineCapabilities) -> tuple[int, int]:
    """A RedecodeSession's bounds on a stream's context for an engine (`context_chars`, `lead_samples`):
    characters of final text enough for its token bound (English BPE: about 4 characters a token), and
    samples of the lead's audio; 0 where the engine takes none."""
    context_chars = 8 * settings.context_tokens if capabilities.context else 0
    return context_chars, int(settings.context_audio_s * SAMPLE_RATE) if capabilities.context_audio else 0


class RecognizerServicer(asr_pb2_grpc.RecognizerServicer, rpc.Servicer):
    def __init__(self, settings: AsrSettings):
        self.settings = settings
        self.engine: AsrEngine | None = None
        self.scheduler: BatchScheduler | RoundScheduler | None = None
        self._outs: set[Channel] = set()  # each open stream's responses
        self.live_streams = Window()  # live Recognize streams open, for the load each answer reports

    @property
    def ready(self) -> bool:
        return self.scheduler is not None

    def drain(self) -> None:
        """Tell every open stream that the service is going away; each still gets its answers."""
        going_away = asr_pb2.RecognizeResponse(going_away=common_pb2.GoingAway(reason="the ASR service is stopping"))
        for out in self._outs:
            tasks.spawn(out.put(going_away), name="going-away")

    def _ready(self) -> tuple[AsrEngine, BatchScheduler | RoundScheduler]:
        """The engine and its scheduler, from a call (the servicer refuses calls until start() set them; close()
        comes after the server stopped)."""
        assert self.engine is not None and self.scheduler is not None
        return self.engine, self.scheduler

    def _check_language(self, language: str) -> str | None:
        engine, _ = self._ready()
        languages = engine.capabilities.languages
        if language and languages is not None and language not in languages:
            raise errors.InvalidArgument(
                f"language {errors.quote(language)} is not available: the engine {engine.name} transcribes "
                f"{', '.join(sorted(languages))} only"
            )
        return language or None

    @rpc.servicer_method("asr")
    async def Recognize(self, request_iterator, context: grpc.aio.ServicerContext):
        config, rest = await rpc.config_first(request_iterator)
        if config is None:
            return
        rpc.require_internal_rate(config.sample_rate_hz)
        language = self._check_language(config.language)
        hints = self._check_asks(config)
        await rpc.accepted(context, (rpc.AUDIO_WANTED, self._audio_wanted(config)), (rpc.END_TAKES_AUDIO, rpc.YES))
        out: Channel[asr_pb2.RecognizeResponse] = Channel(64)
        session = self._session(out.put, language, config, hints)
        session.continue_from(list(config.context))
        reader = asyncio.create_task(self._read(rest, session, out))
        self._outs.add(out)
        _, scheduler = self._ready()
        live = 0 if config.recorded else 1
        self.live_streams.add(live)
        try:
            async for item in out:
                item.engine_utilization = scheduler.utilization()
                item.engine_live_streams = self.live_streams.average()
                yield item
        finally:
            self.live_streams.add(-live)
            self._outs.discard(out)
            reader.cancel()
            session.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    def _audio_wanted(self, config: asr_pb2.RecognizeConfig) -> str:
        """When the stream's audio is of use: as it is spoken (a streaming engine, or partials to re-decode),
        or only once its utterance has ended (finals decoded whole)."""
        _, scheduler = self._ready()
        return rpc.AS_SPOKEN if isinstance(scheduler, RoundScheduler) or config.partial_results else rpc.AT_END

    def _check_asks(self, config: asr_pb2.RecognizeConfig) -> str:
        """Refuse what the engine cannot do for the stream; the hints text (phrases, then the prompt)."""
        engine, _ = self._ready()
        if config.word_timings and not engine.capabilities.word_timings:
            raise errors.InvalidArgument(
                f"word timings are not available: the engine {engine.name} gives no time for its words; "
                "leave word_timings off, or use the whisper or voxtral-realtime engine"
            )
        phrases = [hint.phrase.strip() for hint in config.phrases]
        if (phrases or config.prompt.strip()) and not engine.capabilities.hints:
            raise errors.InvalidArgument(
                f"phrase hints and prompts are not available: the engine {engine.name} takes neither; leave "
                "phrases and prompt empty, or use the whisper engine"
            )
        head = ", ".join(p for p in phrases if p)
        return " ".join(part for part in (f"{head}." if head else "", config.prompt.strip()) if part)

    def _session(self, emit, language: str | None, config: asr_pb2.RecognizeConfig, hints: str) -> Session:
        partials, recorded = config.partial_results, config.recorded
        limits = {
            "max_utterance_s": self.settings.max_utterance_s,
            "recorded": recorded,
            "max_in_flight": self.settings.max_stream_utterances,
        }
        engine, scheduler = self._ready()
        if isinstance(scheduler, RoundScheduler):
            return LiveSession(
                scheduler, emit, engine_name=engine.name, partials=partials, words=config.word_timings, **limits
            )
        context_chars, lead_samples = context_bounds(self.settings, engine.capabilities)
        return RedecodeSession(
            scheduler,
            emit,
            engine_name=engine.name,
            language=language,
            partials=partials,
            partial_interval_s=self.settings.partial_interval_s,
            context_chars=context_chars,
            lead_samples=lead_samples,
            words=config.word_timings,
            hints=hints,
            **limits,
        )

    @staticmethod
    async def _read(rest, session: Session, out: Channel) -> None:
        try:
            async for kind, message in rest:
                await session.admit(message.utterance_id)
                if kind == "audio":
                    rpc.require_whole_samples(message.audio)
                    session.audio(message.utterance_id, message.audio, message.pause_s)
                else:
                    if message.audio:  # the utterance's last audio, with its end
                        rpc.require_whole_samples(message.audio)
                        session.audio(message.utterance_id, message.audio, 0.0)
                    session.end(message.utterance_id)
            await session.drain()
            await out.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await out.fail(exc)


class AsrService:
    name = "asr"
    grpc_services = (asr_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name,)

    def __init__(self, settings: AsrSettings):
        self.settings = settings
        self.servicer = RecognizerServicer(settings)

    def register(self, server: grpc.aio.Server) -> None:
        rpc.add_servicer(server, self.servicer, asr_pb2.DESCRIPTOR.services_by_name["Recognizer"])

    def drain(self) -> None:
        self.servicer.drain()

    async def start(self, health) -> None:
        engine = await asyncio.to_thread(load_engine, self.settings)
        await asyncio.to_thread(engine.warmup)
        scheduler: BatchScheduler | RoundScheduler
        if engine.capabilities.streaming:
            scheduler = RoundScheduler(
                engine, max_streams=self.settings.queue_size, batch_wait_s=self.settings.batch_wait_ms / 1000
            )
        else:
            scheduler = BatchScheduler(
                cast(BatchAsrEngine, engine),  # an engine that does not stream transcribes whole utterances
                queue_size=self.settings.queue_size,
                max_batch_size=self.settings.max_batch_size,
                hurry_above=self.settings.hurry_above,
            )
        scheduler.start()
        self.servicer.engine = engine
        self.servicer.scheduler = scheduler
        log.info("engine ready", extra={"engine": engine.name, "max_batch_size": engine.capabilities.max_batch_size})

    async def close(self) -> None:
        scheduler, self.servicer.scheduler = self.servicer.scheduler, None
        if scheduler is not None:
            await scheduler.close()
            scheduler.engine.close()
