"""The PostProcessor servicer: protocol only.

Each stream's transcripts are processed in order by one task, each with the stream's previous transcripts
as context (a stream that continues another after a failover starts with the context its config gives);
streams run concurrently. A stream may have `max_pending` transcripts waiting; one more is answered with
RESOURCE_EXHAUSTED for that utterance, and the stream goes on. When the service drains, every stream is
told `going_away` and still gets the answers to what it has sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import grpc

from voxmesh import errors, rpc, tasks
from voxmesh.channel import Channel
from voxmesh.metrics import UTTERANCE_ERRORS
from voxmesh.services.llm import metrics
from voxmesh.services.llm.engines import Done, LlmEngine, LlmRequest, load_engine
from voxmesh.settings import LlmSettings
from voxmesh.v1 import common_pb2, llm_pb2, llm_pb2_grpc

log = logging.getLogger("voxmesh.llm")

OUTCOMES = {
    "processed": common_pb2.PROCESSING_OUTCOME_PROCESSED,
    "guarded": common_pb2.PROCESSING_OUTCOME_GUARDED,
}


def error_response(utterance_id: int, exc: errors.VoxmeshError) -> llm_pb2.ProcessResponse:
    UTTERANCE_ERRORS.labels("llm", exc.code.name).inc()
    return llm_pb2.ProcessResponse(
        utterance_id=utterance_id,
        error=common_pb2.UtteranceError(stage="llm", code=exc.code.name, message=str(exc)),
    )


class PostProcessorServicer(llm_pb2_grpc.PostProcessorServicer, rpc.Servicer):
    def __init__(self, settings: LlmSettings):
        self.settings = settings
        self.engine: LlmEngine | None = None
        self._outs: set[Channel] = set()  # each open stream's responses

    @property
    def ready(self) -> bool:
        return self.engine is not None

    def drain(self) -> None:
        """Tell every open stream that the service is going away; each still gets its answers."""
        going_away = llm_pb2.ProcessResponse(going_away=common_pb2.GoingAway(reason="the LLM service is stopping"))
        for out in self._outs:
            tasks.spawn(out.put(going_away), name="going-away")

    @rpc.servicer_method("llm")
    async def Process(self, request_iterator, context: grpc.aio.ServicerContext):
        config, rest = await rpc.config_first(request_iterator)
        if config is None:
            return
        if len(config.instruction) > self.settings.max_instruction_chars:
            raise errors.InvalidArgument(
                f"the instruction has {len(config.instruction)} characters; at most "
                f"{self.settings.max_instruction_chars} are accepted"
            )
        await rpc.accepted(context)
        pending: Channel[llm_pb2.TranscriptSegment] = Channel(self.settings.max_pending)
        out: Channel[llm_pb2.ProcessResponse] = Channel(64)
        tasks = [
            asyncio.create_task(self._read(rest, pending, out)),
            asyncio.create_task(self._work(config.instruction or None, list(config.context), pending, out)),
        ]
        self._outs.add(out)
        try:
            async for item in out:
                yield item
        finally:
            self._outs.discard(out)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            metrics.PENDING.dec(len(pending.take_all()))

    async def _read(self, rest, pending: Channel, out: Channel) -> None:
        try:
            async for _, segment in rest:
                if len(segment.text) > self.settings.max_transcript_chars:
                    await out.put(
                        error_response(
                            segment.utterance_id,
                            errors.InvalidArgument(
                                f"transcript of {len(segment.text)} characters; at most "
                                f"{self.settings.max_transcript_chars} are accepted"
                            ),
                        )
                    )
                    continue
                if pending.try_put(segment):
                    metrics.PENDING.inc()
                else:
                    await out.put(
                        error_response(
                            segment.utterance_id,
                            errors.ResourceExhausted(
                                f"this stream already has {self.settings.max_pending} transcripts waiting for the "
                                "post-processor; the transcript stands unprocessed"
                            ),
                        )
                    )
            await pending.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await out.fail(exc)

    async def _work(self, instruction: str | None, earlier: list[str], pending: Channel, out: Channel) -> None:
        context: deque[str] = deque(maxlen=self.settings.context_utterances)
        if context.maxlen:
            context.extend(t[: self.settings.max_transcript_chars] for t in earlier[-context.maxlen :])
        async for segment in pending:
            metrics.PENDING.dec()
            request = LlmRequest(segment.text, instruction, tuple(context))
            await self._process(segment.utterance_id, request, out)
            if context.maxlen:
                context.append(segment.text)
        await out.close()

    async def _process(self, utterance_id: int, request: LlmRequest, out: Channel) -> None:
        started = time.perf_counter()
        first = True
        engine = self.engine
        try:
            assert engine is not None  # set by start(); the servicer refuses calls until then
            async for item in engine.stream(request):
                if isinstance(item, Done):
                    metrics.REQUESTS.labels(item.outcome).inc()
                    metrics.DURATION.observe(time.perf_counter() - started)
                    processed = common_pb2.ProcessedText(
                        done=True,
                        text=item.text,
                        outcome=OUTCOMES[item.outcome],
                        reason=item.reason,
                        engine=engine.name,
                    )
                else:
                    if first:
                        metrics.FIRST_DELTA.observe(time.perf_counter() - started)
                        first = False
                    processed = common_pb2.ProcessedText(delta=item, engine=engine.name)
                await out.put(llm_pb2.ProcessResponse(utterance_id=utterance_id, processed=processed))
        except asyncio.CancelledError:
            raise
        except errors.VoxmeshError as exc:  # a full queue, a time-out, a stopping service: not a crash
            log.warning("transcript not post-processed", extra={"code": exc.code.name, "error": str(exc)})
            metrics.REQUESTS.labels("failed").inc()
            await out.put(error_response(utterance_id, exc))
        except Exception as exc:
            log.error("engine failed on a transcript", exc_info=exc)
            metrics.REQUESTS.labels("failed").inc()
            await out.put(
                error_response(
                    utterance_id, errors.EngineError(f"the post-processing engine failed on this transcript: {exc}")
                )
            )


class LlmService:
    name = "llm"
    grpc_services = (llm_pb2.DESCRIPTOR.services_by_name["PostProcessor"].full_name,)

    def __init__(self, settings: LlmSettings):
        self.settings = settings
        self.servicer = PostProcessorServicer(settings)

    def register(self, server: grpc.aio.Server) -> None:
        rpc.add_servicer(server, self.servicer, llm_pb2.DESCRIPTOR.services_by_name["PostProcessor"])

    def drain(self) -> None:
        self.servicer.drain()

    async def start(self, health) -> None:
        engine = await asyncio.to_thread(load_engine, self.settings)
        await engine.warmup()
        self.servicer.engine = engine
        log.info("engine ready", extra={"engine": engine.name})

    async def close(self) -> None:
        engine, self.servicer.engine = self.servicer.engine, None
        if engine is not None:
            await engine.close()
