"""Domain errors, and the one mapping from them to gRPC status codes."""

from __future__ import annotations

import grpc


class VoxmeshError(Exception):
    """An error whose message is meant for the caller: say what was wrong and what is accepted."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(VoxmeshError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhausted(VoxmeshError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(VoxmeshError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(VoxmeshError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(VoxmeshError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class EngineError(VoxmeshError):
    """The engine failed on a request (not the caller's fault)."""

    code = grpc.StatusCode.INTERNAL


class DownstreamError(VoxmeshError):
    """A downstream service answered with an error status; the gateway passes its code on."""

    def __init__(self, stage: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{stage} service: {details}")
        self.stage = stage
        self.code = code


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller gets for an exception."""
    if isinstance(exc, VoxmeshError):
        return exc.code, str(exc)
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code(), exc.details() or exc.code().name
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); the service logged the details"
