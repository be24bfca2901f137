"""Servicer helpers every service uses: registration that survives undecodable requests, config-first
streams with time limits, and the mapping of errors to statuses."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor, duration_pb2, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from voxmesh import SAMPLE_RATE, errors, metrics, tracing

log = logging.getLogger("voxmesh.rpc")


class Undecodable:
    """A request whose bytes are not a valid message of the method's type; the servicer refuses it."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def error(self) -> errors.InvalidArgument:
        return errors.InvalidArgument(
            f"a request was not a valid {self.type_name} protobuf message; build requests from the "
            "voxmesh.v1 protos (protos/voxmesh/v1)"
        )


def _decoder(cls: type[Message]) -> Any:
    def decode(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError:
            return Undecodable(cls.DESCRIPTOR.full_name)

    return decode


_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(server: grpc.aio.Server, servicer: Any, service: descriptor.ServiceDescriptor) -> None:
    """Register a servicer as the generated `add_*Servicer_to_server` does, except that a request whose bytes
    do not decode reaches the servicer as `Undecodable` (and becomes INVALID_ARGUMENT) instead of crashing
    the call with UNKNOWN and a traceback."""
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_decoder(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _decoded(message: Any) -> Any:
    if isinstance(message, Undecodable):
        raise message.error()
    return message


class IdleReads:
    """A stream's reads, each allowed `seconds` (None: no limit): TimeoutError from a read that waited longer.

    One timer per stream, not one per read: `asyncio.timeout` around each read sets and cancels a timer per
    message, and a client stream sends ten a second (`bench/idle_reads.py` times both). When the timer fires
    early for the read waiting then (one that began after the read it was set for), it is set again for that
    read's own deadline; between reads (the reader busy elsewhere, as under backpressure) nothing is timed, as
    with a timer per read."""

    EARLY_S = 1e-3  # the loop may run a timer this much before its time

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task | None = None
        self._since: float | None = None  # when the waiting read began; None between reads
        self._timer: asyncio.TimerHandle | None = None
        self._cancelling = -1  # the task's cancel count before this timed it out; -1 until it does

    async def read(self, iterator: AsyncIterator[Any]) -> Any:
        self._task = asyncio.current_task()
        self._since = self._loop.time()
        if self._timer is None and self.seconds is not None:
            self._timer = self._loop.call_at(self._since + self.seconds, self._fire)
        try:
            return _decoded(await iterator.__anext__())
        except asyncio.CancelledError:
            if self._cancelling >= 0 and self._task is not None and self._task.uncancel() <= self._cancelling:
                self._cancelling = -1
                raise TimeoutError from None
            raise
        finally:
            self._since = None

    def _fire(self) -> None:
        self._timer = None
        if self._since is None or self._task is None or self.seconds is None:
            return  # no read is waiting: the next one sets the timer
        due = self._since + self.seconds
        if self._loop.time() < due - self.EARLY_S:
            self._timer = self._loop.call_at(due, self._fire)
            return
        self._cancelling = self._task.cancelling()
        self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def config_first(
    requests: AsyncIterator[Any],
    config_field: str = "config",
    timeout_s: float | None = None,
    idle_timeout_s: float | None = None,
) -> tuple[Any, AsyncIterator[tuple[str, Any]]]:
    """Split a config-first stream into its config and the (field, value) pairs of the later messages.

    Returns (None, empty) for a stream that ends before its first message (a clean end, no error).
    The first message must set `config_field`; a later one that sets it again is INVALID_ARGUMENT.
    A first message slower than `timeout_s`, or a later one that comes more than `idle_timeout_s` after the
    one before it, is DEADLINE_EXCEEDED. An undecodable message is INVALID_ARGUMENT.
    """
    iterator, opening = requests.__aiter__(), IdleReads(timeout_s)
    try:
        first = await opening.read(iterator)
    except StopAsyncIteration:
        return None, _empty()
    except TimeoutError:
        raise errors.DeadlineExceeded(
            f"the stream sent no `{config_field}` within {timeout_s:g} s of opening; send the config first"
        ) from None
    finally:
        opening.close()
    oneof = first.DESCRIPTOR.oneofs[0].name
    kind = first.WhichOneof(oneof)
    if kind != config_field:
        raise errors.InvalidArgument(
            f"the first message of the stream must carry `{config_field}` and nothing else; "
            f"it carried {('`' + kind + '`') if kind else 'nothing'}"
        )
    return getattr(first, config_field), _rest(iterator, oneof, config_field, idle_timeout_s)


async def _empty() -> AsyncIterator[tuple[str, Any]]:
    return
    yield  # pragma: no cover


async def _rest(
    iterator: AsyncIterator[Any], oneof: str, config_field: str, idle_timeout_s: float | None
) -> AsyncIterator[tuple[str, Any]]:
    idle = IdleReads(idle_timeout_s)
    try:
        while True:
            try:
                message = await idle.read(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise errors.DeadlineExceeded(
                    f"the stream sent no message for {idle_timeout_s:g} s, the longest a stream may stay silent; "
                    "keep sending audio (silence included) or close the stream"
                ) from None
            kind = message.WhichOneof(oneof)
            if kind == config_field:
                raise errors.InvalidArgument(
                    f"`{config_field}` is accepted only in the first message of the stream; this stream sent a "
                    "second one"
                )
            if kind is None:
                raise errors.InvalidArgument("a message after the config must carry data; this one was empty")
            yield kind, getattr(message, kind)
    finally:
        idle.close()


DRAIN_S = 0.2


async def _drain(requests: Any) -> None:
    """Before a streaming call is refused, read what its client is still sending, for a moment: a client
    write that meets an ended call makes grpc report INTERNAL 'Internal error from Core' to that client in
    place of the real status (grpc/grpc#34148)."""
    if not hasattr(requests, "__aiter__"):
        return

    async def read_all() -> None:
        async for _ in requests:
            continue  # discarded: the call is being refused

    with contextlib.suppress(Exception):  # a slow or broken client: the abort goes out regardless
        await asyncio.wait_for(read_all(), DRAIN_S)


async def _abort(service: str, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    code, message = errors.status_of(exc)
    metrics.RPC_ERRORS.labels(service, code.name).inc()
    trace.get_current_span().set_status(trace.StatusCode.ERROR, f"{code.name}: {message}")
    if code == grpc.StatusCode.INTERNAL:
        log.error("call failed", exc_info=exc, extra={"code": code.name})
    else:
        log.info("call refused", extra={"code": code.name, "reason": message})
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is None:
        await context.abort(code, message)
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(retry_after_s), nanos=int(retry_after_s % 1 * 1e9))
        )
    )
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    await context.abort(status.code, status.details, status.trailing_metadata)


class Servicer(abc.ABC):
    """What every voxmesh servicer has: `ready`, which says whether its engine (or, for the gateway, its
    downstream channels) is there. Until it is, `servicer_method` refuses calls with UNAVAILABLE."""

    @property
    @abc.abstractmethod
    def ready(self) -> bool: ...


def servicer_method(service: str):
    """Wrap a servicer method (unary or async-generator): refuse it while the servicer is not ready, count
    it, and turn exceptions into statuses.

    A client that hangs up cancels the handler; that is a normal end, logged at debug level.
    """

    def refuse_unless_ready(servicer: Servicer) -> None:
        if not servicer.ready:
            raise errors.Unavailable(
                f"the {service} service is still starting; retry once its health check says SERVING"
            )

    def wrap(method):
        name = method.__name__
        if inspect.isasyncgenfunction(method):

            @functools.wraps(method)
            async def stream_handler(self, request, context):
                metrics.RPC_STREAMS.labels(service, name).inc()
                metrics.RPC_ACTIVE.labels(service).inc()
                began, code = time.perf_counter(), "OK"
                with tracing.server_call(f"{service}/{name}", context.invocation_metadata()):
                    try:
                        refuse_unless_ready(self)
                        async for response in method(self, request, context):
                            yield response
                    except asyncio.CancelledError:
                        code = "CANCELLED"
                        log.debug("call cancelled by the client", extra={"method": name})
                        raise
                    except grpc.aio.AbortError:
                        raise
                    except Exception as exc:
                        code = errors.status_of(exc)[0].name
                        await _drain(request)
                        await _abort(service, context, exc)
                    finally:
                        metrics.RPC_ACTIVE.labels(service).dec()
                        _ended(name, code, began)

            return stream_handler

        @functools.wraps(method)
        async def unary_handler(self, request, context):
            metrics.RPC_STREAMS.labels(service, name).inc()
            metrics.RPC_ACTIVE.labels(service).inc()
            began, code = time.perf_counter(), "OK"
            with tracing.server_call(f"{service}/{name}", context.invocation_metadata()):
                try:
                    refuse_unless_ready(self)
                    return await method(self, _decoded(request), context)
                except asyncio.CancelledError:
                    code = "CANCELLED"
                    log.debug("call cancelled by the client", extra={"method": name})
                    raise
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    code = errors.status_of(exc)[0].name
                    await _abort(service, context, exc)
                finally:
                    metrics.RPC_ACTIVE.labels(service).dec()
                    _ended(name, code, began)

        return unary_handler

    return wrap


def _ended(method: str, code: str, began: float) -> None:
    """One line per call, in every service: with the request id (tracing), a stream can be followed."""
    log.info("call ended", extra={"method": method, "code": code, "seconds": round(time.perf_counter() - began, 3)})


# The ASR's Recognize answers its config with this initial metadata: when it wants an utterance's audio.
# `as-spoken`: as it comes (a streaming engine, or partials); `at-end`: once the utterance has ended will do
# (finals are decoded whole), so a caller may hold the audio and send it with the end, in fewer messages.
AUDIO_WANTED = "voxmesh-audio-wanted"
AS_SPOKEN, AT_END = "as-spoken", "at-end"
# ... and this: its UtteranceEnd takes the utterance's last audio, so the end and the rest of the audio go in
# one message (a service that predates the field does not say it, and would drop that audio).
END_TAKES_AUDIO = "voxmesh-end-takes-audio"
YES = "yes"


async def accepted(context: grpc.aio.ServicerContext, *metadata: tuple[str, str]) -> None:
    """Say the stream's config was accepted, by sending the initial metadata now (with what the service
    tells the caller about the stream). The caller waits for it before it sends more: a refused config then
    reaches it with its own status, and not as the INTERNAL that grpc reports for a write to a call that has
    already ended."""
    await context.send_initial_metadata(metadata)


def require_internal_rate(sample_rate_hz: int) -> None:
    """Inner services speak 16 kHz only; the gateway converts everything else."""
    if sample_rate_hz != SAMPLE_RATE:
        raise errors.InvalidArgument(
            f"sample_rate_hz {sample_rate_hz} is not accepted: the inner services take {SAMPLE_RATE} Hz mono "
            "LINEAR16 only (the gateway converts client audio to it)"
        )


def require_whole_samples(audio: bytes, channels: int = 1) -> None:
    width = 2 * channels
    if len(audio) % width:
        raise errors.InvalidArgument(
            f"an audio chunk of {len(audio)} bytes is not a whole number of samples: LINEAR16 with {channels} "
            f"channel(s) takes a multiple of {width} bytes per message"
        )
