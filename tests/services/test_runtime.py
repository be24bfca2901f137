"""The shared runtime: health follows the engine's state; reflection lists the services."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.services.conftest import channel_to, settings
from voxmesh.runtime import Server
from voxmesh.services.vad.service import VadService
from voxmesh.settings import VadSettings


class SlowStartVad(VadService):
    """The real VAD service whose engine takes until `loaded` is set to load."""

    def __init__(self, config):
        super().__init__(config)
        self.loaded = asyncio.Event()

    async def start(self, health):
        await self.loaded.wait()
        await super().start(health)


async def status(channel, service: str = "") -> str:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def test_health_is_not_serving_until_the_engine_is_warm_and_after_stop_begins():
    config = settings(VadSettings)
    service = SlowStartVad(config)
    server = Server(service, config)
    port = await server.start()
    async with channel_to(f"127.0.0.1:{port}") as channel:
        ready = asyncio.create_task(server.ready())
        await asyncio.sleep(0.1)
        assert await status(channel) == "NOT_SERVING"
        assert await status(channel, "voxmesh.v1.VoiceActivity") == "NOT_SERVING"
        service.loaded.set()
        await ready
        assert await status(channel) == "SERVING"
        await server.drain()  # what SIGTERM does first
        assert await status(channel) == "NOT_SERVING"
        await server.health.set(True)  # a late readiness report does not undo the drain
        assert await status(channel) == "NOT_SERVING"
    await server.stop(None)


async def test_a_served_process_freezes_what_start_up_made_before_it_says_serving():
    import gc

    config = settings(VadSettings)
    service = SlowStartVad(config)
    server = Server(service, config, freeze_start_up=True)
    port = await server.start()
    gc.unfreeze()
    try:
        async with channel_to(f"127.0.0.1:{port}") as channel:
            ready = asyncio.create_task(server.ready())
            await asyncio.sleep(0.1)
            assert gc.get_freeze_count() == 0  # the engine is still loading
            service.loaded.set()
            await ready
            assert gc.get_freeze_count() > 0 and await status(channel) == "SERVING"
        await server.stop(None)
    finally:
        gc.unfreeze()  # the rest of the test process collects as before


async def test_reflection_lists_the_service_health_and_reflection():
    config = settings(VadSettings)
    server = Server(VadService(config), config)
    port = await server.start()
    await server.ready()
    async with channel_to(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        reply = await call.read()
        names = {s.name for s in reply.list_services_response.service}
        call.cancel()
    await server.stop(None)
    assert {"voxmesh.v1.VoiceActivity", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_a_taken_port_is_a_clear_start_up_error(caplog):
    from voxmesh.runtime import serve

    config = settings(VadSettings)
    holder = Server(VadService(config), config)
    port = await holder.start()
    taken = settings(VadSettings, port=port)
    assert await asyncio.wait_for(serve(VadService(taken), taken), 30) == 1
    await holder.stop(None)
    assert any("cannot listen on 127.0.0.1" in r.getMessage() for r in caplog.records)
