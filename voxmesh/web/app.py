"""The web service's routes (Starlette): the page, OpenAI's audio API, its realtime WebSocket, health and
metrics."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from voxmesh import auth
from voxmesh.client import Client
from voxmesh.settings.web import WebSettings
from voxmesh.web import openai_api, realtime

STATIC = Path(__file__).resolve().parent / "static"


async def page(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")


async def healthz(request: Request) -> JSONResponse:
    serving = request.app.state.serving
    return JSONResponse({"status": "SERVING" if serving else "NOT_SERVING"}, status_code=200 if serving else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def make_app(client: Client, settings: WebSettings) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/v1/models", openai_api.models),
            Route("/v1/audio/transcriptions", openai_api.transcriptions, methods=["POST"]),
            WebSocketRoute("/v1/realtime", realtime.session),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.state.client = client
    app.state.settings = settings
    app.state.serving = False
    app.state.keys = auth.KeyRing()  # the service's start reads the configured ones
    return app
