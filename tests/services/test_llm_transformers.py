"""The transformers LLM engine (a tiny random causal LM, the real tokenizer -> chat template -> model ->
continuous batch -> detokenizer path) behind the real LLM service, and once behind the whole mesh."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import grpc
import pytest
from prometheus_client import REGISTRY

from tests.conftest import MetricsDelta, chunks
from tests.services.conftest import channel_to, mesh, running, settings, transcript
from tests.services.conftest import process_config as config
from voxmesh import errors
from voxmesh.services.llm.engines import LlmRequest, load_engine
from voxmesh.services.llm.engines.rules import clean_up
from voxmesh.services.llm.service import LlmService
from voxmesh.settings import LlmSettings
from voxmesh.v1 import common_pb2, llm_pb2_grpc, transcription_pb2_grpc
from voxmesh.v1 import transcription_pb2 as pb

pytest.importorskip("transformers", reason="the transformers engine needs the test extra (torch, transformers)")

INSTRUCTION = "Translate the transcript into French."


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """Ministral's architecture, 2 layers, random weights, a tekken tokenizer read by mistral-common."""
    from tests.tiny_models import build_causal_lm

    return build_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def tiny_chat_template_lm(tmp_path_factory):
    """The same model with a Hugging Face tokenizer and a Jinja chat template."""
    from tests.tiny_models import build_causal_lm

    return build_causal_lm(tmp_path_factory.mktemp("tiny-lm-ct"), tokenizer="chat-template")


def service_for(model, **overrides) -> LlmService:
    return LlmService(settings(LlmSettings, engine="transformers", model=str(model), **overrides))


async def one_stream(stub, requests, keep_open: asyncio.Event | None = None):
    async def messages():
        for request in requests:
            yield request
        if keep_open is not None:
            await keep_open.wait()

    return [r async for r in stub.Process(messages())]


def guarded_count() -> float:
    return REGISTRY.get_sample_value("voxmesh_llm_requests_total", {"outcome": "guarded"}) or 0.0


@pytest.mark.parametrize("model", ["tiny_lm", "tiny_chat_template_lm"])
async def test_deltas_arrive_before_done_and_concatenate_to_the_text(model, request):
    service = service_for(request.getfixturevalue(model))
    async with running(service, service.settings) as address, channel_to(address) as channel:
        responses = await one_stream(
            llm_pb2_grpc.PostProcessorStub(channel),
            [config(INSTRUCTION), transcript(1, "hello there"), transcript(2, "bye now")],
        )
    for utterance in (1, 2):
        processed = [r.processed for r in responses if r.utterance_id == utterance]
        assert [p.done for p in processed] == [False] * (len(processed) - 1) + [True]
        assert len(processed) > 2, "streamed as several deltas"
        done = processed[-1]
        assert "".join(p.delta for p in processed) == done.text and done.text
        assert done.outcome == common_pb2.PROCESSING_OUTCOME_PROCESSED
        assert done.engine == f"transformers:{request.getfixturevalue(model).name}"


async def test_the_default_clean_up_of_a_model_that_invents_words_is_guarded(tiny_lm):
    before = guarded_count()
    service = service_for(tiny_lm, guard_threshold=0.3)
    text = "um so we we should uh go now"
    async with running(service, service.settings) as address, channel_to(address) as channel:
        responses = await one_stream(llm_pb2_grpc.PostProcessorStub(channel), [config(), transcript(1, text)])
    deltas, done = [r.processed for r in responses[:-1]], responses[-1].processed
    assert deltas and all(not p.done for p in deltas), "the model's deltas were streamed before the verdict"
    assert done.outcome == common_pb2.PROCESSING_OUTCOME_GUARDED
    assert done.text == clean_up(text) == "So we should go now."
    assert "guard threshold 0.3" in done.reason
    assert guarded_count() == before + 1


async def test_concurrent_streams_share_batched_steps(tiny_lm):
    service = service_for(tiny_lm, max_batch_size=8, max_new_tokens_extra=120)
    async with running(service, service.settings) as address, channel_to(address) as channel:
        stub = llm_pb2_grpc.PostProcessorStub(channel)
        seen = MetricsDelta()  # after the warm-up
        results = await asyncio.gather(
            *(one_stream(stub, [config(INSTRUCTION), transcript(1, f"stream {n} says hello")]) for n in range(4))
        )
    assert all(r[-1].processed.done and r[-1].processed.text for r in results)
    assert seen.value("voxmesh_llm_batch_size_sum", phase="prefill") == 4, "four transcripts joined the batch"
    assert seen.largest_bucket("voxmesh_llm_batch_size", phase="decode") >= 4, "decode steps ran 3 or 4 rows together"


async def test_the_context_is_the_streams_previous_transcripts_bounded(tiny_lm):
    service = service_for(tiny_lm, context_utterances=2, max_new_tokens_extra=2, max_new_tokens_factor=0)
    prompts = []
    async with running(service, service.settings) as address, channel_to(address) as channel:
        engine = service.servicer.engine
        encode = engine.encode

        def spy(request: LlmRequest, system_role=None):
            prompts.append(engine.tokenizer.decode(encode(request, system_role)))
            return encode(request, system_role)

        engine.encode = spy
        await one_stream(
            llm_pb2_grpc.PostProcessorStub(channel),
            [config(), *(transcript(i, f"utterance {i} said") for i in range(1, 6))],
        )
    assert len(prompts) == 5
    assert "Earlier utterances" not in prompts[0]
    last = prompts[-1]
    assert "utterance 3 said" in last and "utterance 4 said" in last and "utterance 5 said" in last
    assert "utterance 1 said" not in last and "utterance 2 said" not in last
    assert last.index("utterance 3 said") < last.index("utterance 4 said") < last.index("utterance 5 said")


async def test_a_cancelled_stream_frees_its_row(tiny_lm):
    service = service_for(tiny_lm, max_batch_size=1, max_new_tokens_extra=150)
    async with running(service, service.settings) as address, channel_to(address) as channel:
        stub = llm_pb2_grpc.PostProcessorStub(channel)
        scheduler = service.servicer.engine.scheduler
        seen = MetricsDelta()
        generations = []
        submit = scheduler.submit
        scheduler.submit = lambda *args: generations.append(submit(*args)) or generations[-1]

        hanging = asyncio.Event()

        async def messages():
            yield config(INSTRUCTION)
            yield transcript(1, "a long answer please")
            await hanging.wait()

        call = stub.Process(messages())
        first = await call.read()
        assert not first.processed.done
        call.cancel()
        responses = await one_stream(stub, [config(INSTRUCTION), transcript(1, "next stream")])
        cancelled, after = generations
        assert cancelled.end == "cancelled" and cancelled.generated < cancelled.max_new_tokens
        assert seen.value("voxmesh_llm_generations_total", end="cancelled") == 1
        assert after.end == "length" and responses[-1].processed.done
        assert scheduler.running == 0 and scheduler.waiting == 0


async def test_a_full_queue_answers_resource_exhausted_for_that_transcript(tiny_lm):
    """One row and one place in the queue: while one stream's transcript runs, of two more streams' one
    waits and one is refused; every call ends normally."""
    service = service_for(tiny_lm, max_batch_size=1, queue_size=1, max_new_tokens_extra=150)
    async with running(service, service.settings) as address, channel_to(address) as channel:
        stub = llm_pb2_grpc.PostProcessorStub(channel)
        call = stub.Process(iter([config(INSTRUCTION), transcript(1, "stream 0")]))
        first = [await call.read()]  # its first delta: it holds the row
        others = await asyncio.gather(
            *(one_stream(stub, [config(INSTRUCTION), transcript(1, f"stream {n}")]) for n in (1, 2))
        )
        while (response := await call.read()) is not grpc.aio.EOF:
            first.append(response)
    answers = [
        next(r for r in responses if r.WhichOneof("result") == "error" or r.processed.done)
        for responses in (first, *others)
    ]
    assert sorted(a.WhichOneof("result") for a in answers) == ["error", "processed", "processed"]
    refused = next(a for a in answers if a.WhichOneof("result") == "error")
    assert refused.error.code == "RESOURCE_EXHAUSTED" and "queue is full" in refused.error.message


async def test_a_transcript_over_its_time_limit_fails_and_the_stream_goes_on(tiny_lm):
    service = service_for(tiny_lm, request_timeout_s=0.3, max_new_tokens_extra=3000)
    async with running(service, service.settings) as address, channel_to(address) as channel:
        responses = await one_stream(
            llm_pb2_grpc.PostProcessorStub(channel), [config(INSTRUCTION), transcript(1, "one"), transcript(2, "two")]
        )
        assert service.servicer.engine.scheduler.running == 0
    errors_ = [r for r in responses if r.WhichOneof("result") == "error"]
    assert [e.utterance_id for e in errors_] == [1, 2]
    assert all(e.error.code == "DEADLINE_EXCEEDED" and "0.3 s" in e.error.message for e in errors_)


def test_batched_rows_give_the_tokens_they_give_alone(tiny_lm):
    """Rows that join a running batch, and a row that leaves it, change no row's greedy tokens."""
    engine = load_engine(LlmSettings(engine="transformers", model=str(tiny_lm)))
    prompts = [
        engine.encode(LlmRequest(text, None)) for text in ("first one", "the second, longer transcript", "third")
    ]
    batch = engine.batch

    def alone(prompt, n):
        tokens = batch.add([prompt])
        while len(tokens) < n:
            tokens += batch.step()
        batch.reset()
        return tokens

    expected = [alone(p, 12) for p in prompts]
    got = [[] for _ in prompts]
    got[0] += batch.add([prompts[0]])
    for _ in range(3):
        got[0] += batch.step()
    for i, token in enumerate(batch.add(prompts[1:]), 1):
        got[i].append(token)
    rows = [0, 1, 2]
    while any(len(got[r]) < 12 for r in rows):
        for r, token in zip(rows, batch.step()):
            got[r].append(token)
        if len(got[1]) == 6:  # the longer row leaves; the others go on in a narrower cache
            batch.retain([0, 2])
            rows = [0, 2]
    assert got[0][:12] == expected[0] and got[2][:12] == expected[2]
    assert got[1] == expected[1][:6]


def test_a_missing_model_directory_fails_start_up_naming_it(tmp_path):
    missing = tmp_path / "no-llm-here"
    with pytest.raises(errors.FailedPrecondition, match="VOXMESH_LLM_MODEL"):
        load_engine(LlmSettings(engine="transformers", model=str(missing)))


def test_a_hub_model_missing_from_the_cache_fails_start_up_saying_where_it_looked(tmp_path):
    """As a deployment runs it: a real `voxmesh serve llm` process, offline, with an empty cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "VOXMESH_LLM_ENGINE": "transformers"}
    done = subprocess.run(
        [sys.executable, "-m", "voxmesh", "serve", "llm", "--port", "0", "--metrics-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "could not load the LLM from the hub id 'mistralai/Ministral-8B-Instruct-2410'" in done.stderr
    assert str(tmp_path) in done.stderr and "HF_HUB_OFFLINE=1" in done.stderr


def test_a_tokenizer_without_a_chat_template_fails_start_up(tiny_chat_template_lm, tmp_path):
    import shutil

    copy = shutil.copytree(tiny_chat_template_lm, tmp_path / "no-template")
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(errors.FailedPrecondition, match="no chat template"):
        load_engine(LlmSettings(engine="transformers", model=str(copy)))


async def test_every_final_gets_processed_text_through_the_mesh(tiny_lm, sample_pcm):
    llm = service_for(tiny_lm)
    async with mesh(llm_service=llm) as (address, _), channel_to(address) as channel:
        stub = transcription_pb2_grpc.TranscriptionStub(channel)
        requests = [
            pb.StreamingTranscribeRequest(
                config=pb.StreamingConfig(
                    format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=16000, channels=1),
                    post_processing=pb.PostProcessing(enabled=True),
                )
            )
        ] + [pb.StreamingTranscribeRequest(audio=c) for c in chunks(sample_pcm, 3200)]
        events = [e async for e in stub.StreamingTranscribe(iter(requests))]
    finals = {e.utterance_id: e.final.text for e in events if e.WhichOneof("event") == "final"}
    done = {e.utterance_id: e.processed for e in events if e.WhichOneof("event") == "processed" and e.processed.done}
    assert len(finals) == 4 and set(done) == set(finals)
    for utterance, processed in done.items():
        assert processed.engine == f"transformers:{tiny_lm.name}"
        # a random model invents words: the guard hands back the rule-based clean-up of each final
        assert processed.outcome == common_pb2.PROCESSING_OUTCOME_GUARDED
        assert processed.text == clean_up(finals[utterance])
