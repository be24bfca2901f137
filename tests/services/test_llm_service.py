from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.services.conftest import channel_to, running, settings, status_of, transcript
from tests.services.conftest import process_config as config
from voxmesh.services.llm.engines import Done
from voxmesh.services.llm.service import LlmService
from voxmesh.settings import LlmSettings
from voxmesh.v1 import common_pb2, llm_pb2_grpc


async def process(requests, service: LlmService | None = None, **overrides):
    service = service or LlmService(settings(LlmSettings, **overrides))
    async with running(service, service.settings) as address, channel_to(address) as channel:
        return [r async for r in llm_pb2_grpc.PostProcessorStub(channel).Process(iter(requests))]


async def test_deltas_arrive_before_done_and_add_up_to_the_text():
    responses = await process([config(), transcript(1, "um so we we should uh go now"), transcript(2, "yes")])
    first = [r.processed for r in responses if r.utterance_id == 1]
    assert [p.done for p in first] == [False] * (len(first) - 1) + [True]
    assert [p.delta for p in first] == ["So we should go now.", ""], "the clean text, ready at once, is one delta"
    assert first[-1].text == "So we should go now."
    assert first[-1].outcome == common_pb2.PROCESSING_OUTCOME_PROCESSED
    assert first[-1].engine == "rules"
    assert [r.utterance_id for r in responses if r.processed.done] == [1, 2], "in order"


async def test_an_instruction_the_rules_engine_cannot_follow_is_said_so():
    responses = await process([config("translate to French"), transcript(1, "hello there")])
    done = responses[-1].processed
    assert done.text == "Hello there." and "follows no instructions" in done.reason


class RecordingEngine:
    """Records what it was asked; answers slowly (isolates the servicer's queueing)."""

    name = "recording"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.requests = []

    async def warmup(self):
        pass

    async def stream(self, request):
        self.requests.append(request)
        await asyncio.sleep(self.delay)
        yield request.text
        yield Done(text=request.text)

    async def close(self):
        pass


def with_engine(engine, **overrides) -> LlmService:
    service = LlmService(settings(LlmSettings, **overrides))

    async def start(health=None):
        service.servicer.engine = engine

    service.start = start
    return service


async def test_previous_transcripts_are_context_bounded_by_the_setting():
    engine = RecordingEngine()
    await process([config(), *(transcript(i, f"t{i}") for i in range(1, 6))], with_engine(engine, context_utterances=2))
    assert [r.context for r in engine.requests] == [(), ("t1",), ("t1", "t2"), ("t2", "t3"), ("t3", "t4")]


async def test_too_many_waiting_transcripts_answer_resource_exhausted_and_the_stream_goes_on():
    engine = RecordingEngine(delay=0.3)
    requests = [config(), *(transcript(i, f"t{i}") for i in range(1, 6))]
    responses = await process(requests, with_engine(engine, max_pending=1))
    errors = [r for r in responses if r.WhichOneof("result") == "error"]
    done = [r.utterance_id for r in responses if r.processed.done]
    assert errors and all(e.error.code == "RESOURCE_EXHAUSTED" for e in errors)
    assert sorted(done + [e.utterance_id for e in errors]) == [1, 2, 3, 4, 5], "every transcript answered once"


@pytest.mark.parametrize(
    ("requests", "words"),
    [
        ([transcript(1, "x")], "first message"),
        ([config("x" * 3000)], "at most 2000"),
        ([config(), config()], "only in the first message"),
    ],
)
async def test_bad_input_is_invalid_argument(requests, words):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await process(requests)
    code, details = status_of(caught)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and words in details
