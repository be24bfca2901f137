"""The web service: browsers and OpenAI clients reach the mesh through it, over HTTP and WebSocket; it calls
the gateway over gRPC with the client library (round-robin over the gateway's replicas, streams resumed when
a gateway goes away), so the gateway stays the one place that validates and transcribes.

Starlette on uvicorn: Starlette is a small, well-kept ASGI toolkit with WebSocket, multipart forms,
streaming responses and static files built in (FastAPI adds a validation layer on top that the OpenAI
shapes here do not need); uvicorn is its reference server, run in this process's event loop. The runtime
(voxmesh/runtime.py) gives it what every service has: grpc.health.v1 on its gRPC port (SERVING while the
gateway is), /metrics, logs, and the SIGTERM drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import uvicorn
from starlette.applications import Starlette

from voxmesh import auth, errors
from voxmesh.client import Client
from voxmesh.settings.web import WebSettings
from voxmesh.web import realtime
from voxmesh.web.app import make_app

log = logging.getLogger("voxmesh.web")

GATEWAY_CHECK_S = 2.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the runtime's event loop: the runtime owns SIGTERM and SIGINT, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class WebService:
    name = "web"
    grpc_services: tuple[str, ...] = ()

    def __init__(self, settings: WebSettings):
        self.settings = settings
        self.client: Client | None = None
        self.app: Starlette | None = None
        self._server: _EmbeddedServer | None = None
        self._tasks: list[asyncio.Task] = []
        self.http_port = settings.http_port  # the port bound, once started (a free one for 0)

    def register(self, server: grpc.aio.Server) -> None:
        pass  # no gRPC servicers: its gRPC port carries health and reflection only

    async def start(self, health) -> None:
        self.client = Client(self.settings.gateway_target, api_key=self.settings.gateway_api_key)
        app = self.app = make_app(self.client, self.settings)
        app.state.keys = auth.KeyRing(self.settings.api_keys_file, self.settings.api_keys)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.http_port,
            log_config=None,
            lifespan="off",
            ws="websockets-sansio",
            ws_max_size=realtime.MAX_MESSAGE_BYTES,
            timeout_graceful_shutdown=round(self.settings.grace_s),
        )
        self._server = _EmbeddedServer(config)
        self._tasks.append(asyncio.create_task(self._server.serve(), name="http"))
        while not self._server.started:
            if self._tasks[0].done():
                raise errors.FailedPrecondition(
                    f"the web service cannot serve HTTP on {self.settings.host}:{self.settings.http_port}; is the "
                    "port taken? (VOXMESH_WEB_HTTP_PORT)"
                )
            await asyncio.sleep(0.05)
        self.http_port = self._server.servers[0].sockets[0].getsockname()[1]
        log.info("http", extra={"url": f"http://{self.settings.host}:{self.http_port}/"})
        self._tasks.append(asyncio.create_task(self._follow(health), name="gateway-health"))

    async def _follow(self, health) -> None:
        """SERVING while the gateway says it is."""
        assert self.client is not None and self.app is not None
        while True:
            try:
                serving = await self.client.health(timeout=GATEWAY_CHECK_S) == "SERVING"
            except Exception:  # the gateway unreachable: not serving, try again
                serving = False
            self.app.state.serving = serving
            await health.follow(serving)
            await asyncio.sleep(GATEWAY_CHECK_S)

    def drain(self) -> None:
        if self.app is not None:
            self.app.state.serving = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
