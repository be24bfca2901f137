"""The one server runtime of all four services.

grpc.aio server, grpc.health.v1 (NOT_SERVING until the service's engine is loaded and warmed, SERVING
after), server reflection, a Prometheus /metrics endpoint, structured logs, the objects of start-up frozen
out of the garbage collector's full collections (gc.freeze), and the stop sequence:
SIGTERM or SIGINT -> NOT_SERVING, and every open stream is told the service is going away (callers move
new work to another replica) -> drain delay -> stop taking calls, give in-flight ones the grace period ->
close the engine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from voxmesh import errors, logs, tls, tracing
from voxmesh.settings import ServiceSettings

log = logging.getLogger("voxmesh.runtime")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Service(Protocol):
    """What a deployable service gives the runtime."""

    name: str
    # Full names of its gRPC services (for health and reflection), e.g. "voxmesh.v1.Recognizer".
    grpc_services: Sequence[str]

    def register(self, server: grpc.aio.Server) -> None:
        """Add the servicers to the server (before it starts; they refuse calls until start() is done)."""

    async def start(self, health: Health) -> None:
        """Load and warm the engine, off the event loop. Raise VoxmeshError with a clear message on failure.
        The runtime says SERVING once it returns; a service whose readiness changes later (the gateway's
        follows its inner services) keeps `health` and sets it."""

    def drain(self) -> None:
        """The service is stopping: tell every open stream it is going away (it still finishes them)."""

    async def close(self) -> None:
        """Release the engine after the server has stopped."""


class HealthServicer(health.aio.HealthServicer):
    """grpc.health.v1 whose Watch streams end once the service drains: the watcher (a client's health check)
    has seen NOT_SERVING, and a stream left open would be cancelled by the server's stop with an error."""

    def __init__(self) -> None:
        super().__init__()
        self._closing = asyncio.Event()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        if self._closing.is_set():
            await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))
            return
        watch = asyncio.ensure_future(super().Watch(request, context))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({watch, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, closing):
                task.cancel()
                task.add_done_callback(_consume)

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._closing.set()


def _consume(task: asyncio.Task) -> None:
    """Retrieve a finished task's exception: a write to a stopped server's stream fails, and that is fine."""
    if not task.cancelled():
        task.exception()


class Health:
    """What a service's health says, for every name it serves: SERVING once the service has started, while
    what it depends on is ready (the gateway's inner services), and never again once it drains."""

    def __init__(self, servicer: HealthServicer, names: Sequence[str]):
        self._servicer = servicer
        self._names = names
        self._started = False
        self._dependencies_ready = True
        self.serving = False
        self.draining = False

    async def set(self, started: bool) -> None:
        """The runtime's part: the service has started (its engine is loaded and warm)."""
        self._started = started
        await self._apply()

    async def follow(self, dependencies_ready: bool) -> None:
        """The service's part: whether what it depends on is ready."""
        self._dependencies_ready = dependencies_ready
        await self._apply()

    async def _apply(self) -> None:
        serving = self._started and self._dependencies_ready and not self.draining
        if serving == self.serving:
            return
        self.serving = serving
        for name in self._names:
            await self._servicer.set(name, SERVING if serving else NOT_SERVING)

    async def drain(self) -> None:
        self.draining = True
        await self._apply()
        await self._servicer.enter_graceful_shutdown()


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # A port another process holds is an error, not a port silently shared with it.
        ("grpc.so_reuseport", 0),
        # Pings find peers that died without closing their connection (a frozen client, a lost host):
        # their calls end and free what they hold.
        ("grpc.keepalive_time_ms", int(settings.keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.http2.ping_timeout_ms", int(settings.keepalive_timeout_s * 1000)),  # what grpc 1.85 acts on
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # a silent stream is pinged too
        # Callers' own pings (the gateway's channels ping every 30 s) are welcome down to every 10 s.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
    ] + (
        [
            # Clients reconnect (and re-resolve DNS, finding new replicas) after this age; streams in flight
            # get the grace period to finish on the old connection.
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
        ]
        if settings.max_connection_age_s
        else []
    )


class Server:
    """A service on a grpc.aio server with health and reflection: start() binds it (NOT_SERVING),
    ready() loads the engine and says SERVING, stop() says NOT_SERVING, stops and closes the engine."""

    def __init__(self, service: Service, settings: ServiceSettings, freeze_start_up: bool = False):
        """`freeze_start_up`: once the service has started, move every object there is out of the cyclic
        garbage collector's sight (gc.freeze), for a process that serves nothing else."""
        self.service = service
        self.settings = settings
        self.freeze_start_up = freeze_start_up
        self.names = ("", *service.grpc_services)
        self.server = grpc.aio.server(options=server_options(settings))
        self.health_servicer = HealthServicer()
        self.health = Health(self.health_servicer, self.names)
        health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.server)
        service.register(self.server)
        reflection.enable_server_reflection(
            [*service.grpc_services, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = 0
        # Probes that cannot speak TLS (Kubernetes' gRPC probes) get health alone on a plaintext port.
        self.health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)]) if settings.health_port else None
        if self.health_server is not None:
            health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.health_server)

    async def start(self) -> int:
        for name in self.names:
            await self.health_servicer.set(name, NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        credentials = tls.server_credentials(self.settings)
        if credentials is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, credentials)
        await self.server.start()
        if self.health_server is not None:
            self.health_server.add_insecure_port(f"{self.settings.host}:{self.settings.health_port}")
            await self.health_server.start()
        log.info(
            "listening",
            extra={
                "address": f"{self.settings.host}:{self.port}",
                "tls": "off" if credentials is None else ("mtls" if self.settings.tls_ca_file else "tls"),
                "health_port": self.settings.health_port,
            },
        )
        return self.port

    async def ready(self) -> None:
        await self.service.start(self.health)
        if self.freeze_start_up:
            # What start-up made (modules, the engine's objects) stays for the process's life: out of the cyclic
            # collector's sight, a full collection walks only what the streams made since, and stops every
            # stream for a tenth of the time (bench/README.md, "the collector").
            gc.collect()
            gc.freeze()
        await self.health.set(True)
        log.info("serving", extra={"services": ",".join(self.service.grpc_services)})

    async def drain(self) -> None:
        """NOT_SERVING for good, and every open stream told that the service is going away (once)."""
        if not self.health.draining:
            await self.health.drain()
            self.service.drain()

    async def stop(self, grace_s: float | None) -> None:
        await self.drain()
        await self.server.stop(grace_s)
        if self.health_server is not None:
            await self.health_server.stop(None)
        await self.service.close()


async def serve(service: Service, settings: ServiceSettings) -> int:
    """Run the service until SIGTERM or SIGINT; return the process exit code."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
        log.info("metrics", extra={"url": f"http://{settings.host}:{settings.metrics_port}/metrics"})
    server = Server(service, settings, freeze_start_up=True)
    try:
        await server.start()
    except errors.VoxmeshError as exc:
        log.error("start-up failed: %s", exc)
        return 1
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        log.error("start-up failed: cannot listen on %s:%s (%s); is the port taken?", settings.host, settings.port, exc)
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    code = 0
    starting = asyncio.create_task(server.ready())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done() and starting.exception() is None:
        await stopping
    elif starting.done():
        failure = starting.exception()
        message = str(failure) if isinstance(failure, errors.VoxmeshError) else f"{type(failure).__name__}: {failure}"
        log.error(
            "start-up failed: %s", message, exc_info=None if isinstance(failure, errors.VoxmeshError) else failure
        )
        stopping.cancel()
        code = 1
    else:
        starting.cancel()

    await server.drain()
    if code == 0 and settings.drain_delay_s:
        log.info("draining", extra={"delay_s": settings.drain_delay_s})
        await asyncio.sleep(settings.drain_delay_s)
    log.info("stopping", extra={"grace_s": settings.grace_s})
    await server.stop(settings.grace_s)
    log.info("stopped")
    return code


def run(service: Service, settings: ServiceSettings) -> int:
    logs.configure(service.name, settings.log_level, settings.log_format)
    tracing.configure(service.name, settings.otlp_endpoint)
    try:
        return asyncio.run(serve(service, settings))
    finally:
        tracing.shutdown()
