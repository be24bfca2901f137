"""The voxtral engine (tiny random model, real processor -> model -> decode path) behind the real ASR
service and the whole mesh."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest

from tests.conftest import MetricsDelta
from tests.services.conftest import assert_one_final_per_utterance, channel_to, running, settings, stream_through_mesh
from tests.services.conftest import recognize_config as config
from tests.services.conftest import utterance_audio as audio
from tests.services.conftest import utterance_end as end
from voxmesh import errors
from voxmesh.services.asr.engines import AsrRequest, load_engine
from voxmesh.services.asr.engines.voxtral import split_language
from voxmesh.services.asr.service import AsrService
from voxmesh.settings import AsrSettings
from voxmesh.v1 import asr_pb2_grpc

TINY = {"engine": "voxtral", "max_new_tokens": 8}


def test_the_language_prefix_is_stripped_and_reported():
    assert split_language("lang:fr Bonjour à tous", None) == ("Bonjour à tous", "fr")
    assert split_language(" Hello", "en") == ("Hello", "en")
    assert split_language("Hello", None) == ("Hello", "")


def test_batched_generation_gives_the_same_tokens_as_one_by_one(tiny_voxtral):
    engine = load_engine(AsrSettings(model=str(tiny_voxtral), **TINY))
    rng = np.random.default_rng(0)
    requests = [
        AsrRequest(rng.normal(0, 0.1, int(16000 * s)).astype(np.float32), language, True)
        for s, language in [(1.5, "en"), (4, None), (2.5, "fr"), (31, "en")]
    ]
    assert engine.transcribe(requests) == [engine.transcribe([r])[0] for r in requests]


def test_a_missing_model_directory_fails_start_up_naming_it(tmp_path):
    missing = tmp_path / "no-voxtral-here"
    with pytest.raises(errors.FailedPrecondition, match=str(missing)):
        load_engine(AsrSettings(model=str(missing), **TINY))


def test_a_hub_model_missing_from_the_cache_fails_start_up_saying_where_it_looked(tmp_path):
    """As a deployment runs it: a real `voxmesh serve asr` process, offline, with an empty cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "VOXMESH_ASR_ENGINE": "voxtral"}
    done = subprocess.run(
        [sys.executable, "-m", "voxmesh", "serve", "asr", "--port", "0", "--metrics-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "could not load the Voxtral model from the hub id 'mistralai/Voxtral-Mini-3B-2507'" in done.stderr
    assert str(tmp_path) in done.stderr and "HF_HUB_OFFLINE=1" in done.stderr


async def test_sixteen_concurrent_streams_share_one_model_in_batches(tiny_voxtral, jfk_pcm):
    service = AsrService(settings(AsrSettings, model=str(tiny_voxtral), max_batch_size=8, batch_wait_ms=50, **TINY))
    utterance = jfk_pcm[: 16000 * 2 * 2]

    async def one_stream(stub):
        return [r async for r in stub.Recognize(iter([config(), audio(1, utterance), end(1)]))]

    async with running(service, service.settings) as address, channel_to(address) as channel:
        stub = asr_pb2_grpc.RecognizerStub(channel)
        seen = MetricsDelta()
        results = await asyncio.gather(*(one_stream(stub) for _ in range(16)))
    assert all([r.WhichOneof("result") for r in responses] == ["final"] for responses in results)
    assert all(r[0].final.engine == f"voxtral:{tiny_voxtral.name}" for r in results)
    assert seen.value("voxmesh_asr_batch_size_sum") == 16, "16 finals through one engine"
    assert seen.largest_bucket("voxmesh_asr_batch_size") > 1, "requests from different streams shared batches"


async def test_a_full_queue_answers_resource_exhausted(tiny_voxtral, jfk_pcm):
    service = AsrService(settings(AsrSettings, model=str(tiny_voxtral), queue_size=2, max_batch_size=1, **TINY))
    requests = [config()]
    for utterance in range(1, 9):
        requests += [audio(utterance, jfk_pcm[:64000]), end(utterance)]
    async with running(service, service.settings) as address, channel_to(address) as channel:
        responses = [r async for r in asr_pb2_grpc.RecognizerStub(channel).Recognize(iter(requests))]
    assert sorted(r.utterance_id for r in responses) == list(range(1, 9))
    assert "RESOURCE_EXHAUSTED" in {r.error.code for r in responses if r.WhichOneof("result") == "error"}


async def test_real_speech_through_the_mesh_one_final_per_utterance(tiny_voxtral, sample_pcm):
    events = await stream_through_mesh(sample_pcm, asr={"model": str(tiny_voxtral), **TINY})
    assert_one_final_per_utterance(events, 4, "voxtral:")


@pytest.mark.parametrize("language", ["eng", "yue", "zh", "xx"])
async def test_a_language_voxtral_does_not_take_is_refused_up_front(tiny_voxtral, language):
    service = AsrService(settings(AsrSettings, model=str(tiny_voxtral), **TINY))
    async with running(service, service.settings) as address, channel_to(address) as channel:
        call = asr_pb2_grpc.RecognizerStub(channel).Recognize(iter([config(language=language)]))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            [r async for r in call]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"language '{language}' is not available" in raised.value.details()
    assert "de, en, es, fr, hi, it, nl, pt only" in raised.value.details()


def test_a_batch_is_generated_in_groups_of_the_same_number_of_windows(tiny_voxtral, monkeypatch):
    engine = load_engine(AsrSettings(model=str(tiny_voxtral), **TINY))
    rng = np.random.default_rng(1)
    requests = [AsrRequest(rng.normal(0, 0.1, int(16000 * s)).astype(np.float32), "en", True) for s in (5, 40, 3, 31)]
    rows = []
    generate = engine.model.generate
    monkeypatch.setattr(engine.model, "generate", lambda **kw: rows.append(len(kw["input_ids"])) or generate(**kw))
    together = engine.transcribe(requests)
    assert sorted(rows) == [2, 2], "the two one-window requests share a call, the two two-window ones another"
    monkeypatch.setattr(engine.model, "generate", generate)
    assert together == [engine.transcribe([r])[0] for r in requests], "answers in request order, as one by one"


def test_a_partials_token_budget_is_capped_and_a_finals_is_not(tiny_voxtral):
    from voxmesh.services.asr.engines.voxtral import PARTIAL_MAX_TOKENS

    engine = load_engine(AsrSettings(model=str(tiny_voxtral), engine="voxtral", max_new_tokens=0))
    long = np.zeros(16000 * 25, np.float32)
    assert engine._budget([AsrRequest(long, "en", final=False)]) == PARTIAL_MAX_TOKENS
    assert engine._budget([AsrRequest(long, "en", final=True)]) > PARTIAL_MAX_TOKENS
