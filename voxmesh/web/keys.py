"""API keys at the web service (voxmesh/auth.py): where an HTTP or WebSocket caller's key is, and how a
refusal is answered (OpenAI's error shape, HTTP 401, 403 or 429)."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from voxmesh import errors

REFUSED = (errors.Unauthenticated, errors.PermissionDenied, errors.ResourceExhausted)


def authorization(connection: HTTPConnection) -> str:
    """The caller's key: the `authorization` header, or `?token=` for browsers (a WebSocket cannot set headers)."""
    if header := connection.headers.get("authorization", ""):
        return header
    token = connection.query_params.get("token", "")
    return f"Bearer {token}" if token else ""


HTTP_STATUS = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429}


def refusal(exc: errors.VoxmeshError) -> JSONResponse:
    """An API key refused, in OpenAI's error shape."""
    code = exc.code.name
    return JSONResponse(
        {"error": {"message": str(exc), "type": "invalid_request_error", "param": None, "code": code.lower()}},
        status_code=HTTP_STATUS.get(code, 400),
        headers={"WWW-Authenticate": "Bearer"} if code == "UNAUTHENTICATED" else None,
    )
