"""Domain errors, and the one mapping from them to gRPC status codes.

Messages say what was wrong and what is accepted, without leaking internals: client input is quoted at
most QUOTE_CHARS characters long (`quote`), and what a downstream service or gRPC itself said passes
through `without_addresses`, so that no inner address reaches a client.
"""

from __future__ import annotations

import re

import grpc

QUOTE_CHARS = 64
_ADDRESS = re.compile(
    r"(?:ipv[46]|unix|dns|unix-abstract):[^\s,;)]*"  # gRPC target URIs
    r"|\[[0-9a-fA-F:]+\](?::\d+)?"  # [IPv6]:port
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?"  # IPv4[:port]
    r"|\blocalhost:\d+"
)


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """Client input as it may appear in a message: repr-quoted, cut to `limit` characters with an ellipsis."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return repr(text)


def without_addresses(text: str) -> str:
    """A message from a downstream service or gRPC, with every network address taken out."""
    return _ADDRESS.sub("<address>", text)


class VoxmeshError(Exception):
    """An error whose message is meant for the caller: say what was wrong and what is accepted."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(VoxmeshError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhausted(VoxmeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float | None = None):
        """`retry_after_s`: when to try again, sent as google.rpc.RetryInfo in the status details."""
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(VoxmeshError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(VoxmeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(VoxmeshError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(VoxmeshError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(VoxmeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class EngineError(VoxmeshError):
    """The engine failed on a request (not the caller's fault)."""

    code = grpc.StatusCode.INTERNAL


class DownstreamError(VoxmeshError):
    """A downstream service answered with an error status; the gateway passes its code on."""

    def __init__(self, stage: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{stage} service: {without_addresses(details)}")
        self.stage = stage
        self.code = code


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller gets for an exception."""
    if isinstance(exc, VoxmeshError):
        return exc.code, str(exc)
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code(), without_addresses(exc.details() or exc.code().name)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); the service logged the details"
