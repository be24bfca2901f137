"""What survives what, with real processes: a replica of each service is SIGKILLed (or SIGTERMed, as a
rolling update does) while real speech streams through the mesh, and every utterance still gets exactly one
final. bench/chaos.py runs the same faults many times at the largest stream count this machine serves."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JFK_TEXT
from voxmesh import text
from voxmesh.client import Client, StreamOptions
from voxmesh.stack import LocalStack, Member

pytestmark = pytest.mark.e2e

REPLICAS = {"vad": 2, "asr": 2, "llm": 2, "gateway": 2}


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    # Admission by capacity is off: these tests are about failover, on a machine their own processes load.
    local = LocalStack(
        gateway_port=0,
        log_dir=tmp_path_factory.mktemp("replicated-logs"),
        replicas=REPLICAS,
        env={"VOXMESH_GATEWAY_ADMIT_UTILIZATION": "2"},
    )
    try:
        asyncio.run(local.start())
    except BaseException:
        local.stop()
        raise
    yield local
    local.stop()


def gauge(stack: LocalStack, member: Member, name: str) -> float:
    body = urllib.request.urlopen(stack.metrics_url(member.name, member.index), timeout=5).read().decode()
    return sum(s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name == name)


def carrier(stack: LocalStack, service: str) -> Member:
    """The replica of `service` that serves the stream now."""
    metric = "voxmesh_gateway_active_streams" if service == "gateway" else "voxmesh_rpc_active_calls"
    busy = [m for m in stack.replicas_of(service) if gauge(stack, m, metric) > 0]
    assert busy, f"no {service} replica carries a stream"
    return busy[0]


async def stream_with_fault(target: str, path, fault=None, when=("speech_start", 1), delay_s: float = 1.0) -> list:
    """Stream a file at real-time pace; `fault()` runs `delay_s` after the event `when` (kind, utterance)."""
    events, task = [], None
    async with Client(target) as client:
        async for event in client.stream_file(path, pace="realtime", options=StreamOptions(partials=True)):
            events.append(event)
            if fault is not None and task is None and (event.type, event.utterance) == when:

                async def later():
                    await asyncio.sleep(delay_s)
                    await fault()

                task = asyncio.create_task(later())
    if task is not None:
        await task
    return events


def assert_exactly_one_final_each(events) -> None:
    started = [e.utterance for e in events if e.type == "speech_start"]
    finals = [e.utterance for e in events if e.type == "final"]
    assert started == sorted(set(started)), "no utterance announced twice"
    assert finals == started, "every utterance got exactly one final"
    assert not [e for e in events if e.type == "error"], "no error events"


def transcript(events) -> str:
    return " ".join(e.text for e in events if e.type == "final")


def killer(stack: LocalStack, service: str, restart: bool = True):
    killed: list[Member] = []

    async def fault():
        member = carrier(stack, service)
        stack.kill(member)
        killed.append(member)
        if restart:
            await stack.restart(member)

    return fault, killed


async def test_asr_killed_mid_utterance_with_two_replicas(replicated, jfk_path):
    fault, killed = killer(replicated, "asr")
    events = await stream_with_fault(replicated.gateway, jfk_path, fault)
    assert killed
    assert_exactly_one_final_each(events)
    assert text.wer(JFK_TEXT, transcript(events)) <= 0.10


async def test_a_lone_asr_killed_and_back_within_ten_seconds_and_the_gateway_serves_again_within_a_second(
    stack, jfk_path
):
    asr = stack.replicas_of("asr")[0]
    back = {}

    async def fault():
        stack.kill(asr)
        started = time.monotonic()
        await stack.restart(asr)
        back["restart_s"] = time.monotonic() - started
        async with grpc.aio.insecure_channel(stack.gateway) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while (
                await health.Check(health_pb2.HealthCheckRequest())
            ).status != health_pb2.HealthCheckResponse.SERVING:
                await asyncio.sleep(0.02)
        back["gateway_s"] = time.monotonic() - started - back["restart_s"]

    events = await stream_with_fault(stack.gateway, jfk_path, fault)
    assert back["restart_s"] < 10
    assert back["gateway_s"] < 1.0, "the gateway used the replica within a second of its SERVING"
    assert_exactly_one_final_each(events)


async def test_vad_killed_no_utterance_announced_twice_and_wer_within_two_points(replicated, jfk_path):
    undisturbed = await stream_with_fault(replicated.gateway, jfk_path)
    fault, killed = killer(replicated, "vad")
    events = await stream_with_fault(replicated.gateway, jfk_path, fault, delay_s=2.0)
    assert killed
    assert_exactly_one_final_each(events)
    assert text.wer(JFK_TEXT, transcript(events)) <= text.wer(JFK_TEXT, transcript(undisturbed)) + 0.02


async def test_llm_killed_every_final_arrives_and_post_processing_comes_back(replicated, jfk_path):
    fault, killed = killer(replicated, "llm")
    # the first final is being post-processed when its LLM dies
    events = await stream_with_fault(replicated.gateway, jfk_path, fault, when=("final", 1), delay_s=0.0)
    assert killed
    assert_exactly_one_final_each(events)
    done = [e for e in events if e.type == "processed" and e.done]
    finals = [e.utterance for e in events if e.type == "final"]
    assert len(finals) >= 2 and [d.utterance for d in done] == finals, "every final was post-processed, in order"
    assert all(d.outcome == "processed" for d in done), "the other replica post-processed them all"


async def test_a_rolling_sigterm_of_every_service_loses_no_final_and_no_event(replicated, jfk_path):
    async def roll():
        for service in ("vad", "asr", "llm", "gateway"):
            for member in replicated.replicas_of(service):
                await asyncio.to_thread(replicated.terminate, member)
                assert member.process.returncode == 0, f"{member.label} drained and stopped cleanly"
                await replicated.restart(member)

    async def two_files(target):
        events = await stream_with_fault(target, jfk_path)
        return events, await stream_with_fault(target, jfk_path)

    rolling = asyncio.create_task(roll())
    streams = await asyncio.gather(two_files(replicated.gateway), two_files(replicated.gateway))
    await rolling
    for first, second in streams:
        for events in (first, second):
            assert_exactly_one_final_each(events)
            assert all(e.outcome == "processed" for e in events if e.type == "processed" and e.done)
            assert text.wer(JFK_TEXT, transcript(events)) <= 0.10


async def test_gateway_killed_the_client_resumes_on_the_other_with_no_final_lost_or_repeated(replicated, jfk_path):
    fault, killed = killer(replicated, "gateway")
    events = await stream_with_fault(replicated.gateway, jfk_path, fault, delay_s=2.0)
    assert killed
    assert_exactly_one_final_each(events)
    assert [e.utterance for e in events if e.type == "processed" and e.done] == [1, 2]
    assert text.wer(JFK_TEXT, transcript(events)) <= 0.10
