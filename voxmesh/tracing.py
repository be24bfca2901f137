"""Traces and request ids across the mesh's hops.

- Every servicer call runs in a span (`rpc.servicer_method`), the child of the caller's span when the call's
  metadata carries a W3C `traceparent`; the gateway's downstream calls carry its span's (`outgoing()`), so
  one client stream is one trace across the four services. The gateway adds a span per utterance, with
  speech end, final and processed as events: where an utterance's time went.
- A request id, the client's `x-request-id` or one the gateway makes, travels in the same metadata; every
  log line of the call (in every service) and every error event of the stream carries it.
- Spans leave the process only when the service's `otlp_endpoint` is set (OTLP over gRPC, batched); off by
  default, and then the OpenTelemetry API costs a no-op.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Iterator

from opentelemetry import propagate, trace
from opentelemetry.context import Context

REQUEST_ID = "x-request-id"
MAX_REQUEST_ID = 128

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
tracer = trace.get_tracer("voxmesh")


def configure(service: str, endpoint: str) -> None:
    """Export this process's spans to an OTLP/gRPC collector at `endpoint` (e.g. http://otel-collector:4317)."""
    for handler in logging.getLogger().handlers:  # a logger's own filters miss its children's records
        handler.addFilter(_with_request_id)
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"voxmesh-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(provider)


def shutdown() -> None:
    """Send the spans still batched (at a clean stop)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


def _with_request_id(record: logging.LogRecord) -> bool:
    if (rid := request_id.get()) and not hasattr(record, "request_id"):
        record.request_id = rid
    return True


@contextlib.contextmanager
def server_call(name: str, metadata) -> Iterator[None]:
    """A servicer call's span (the caller's child) and request id, current while the call runs."""
    carrier = {key: value for key, value in (metadata or ()) if isinstance(value, str)}
    rid = carrier.get(REQUEST_ID, "")[:MAX_REQUEST_ID] or request_id.get()
    token = request_id.set(rid)
    try:
        with tracer.start_as_current_span(name, context=propagate.extract(carrier), kind=trace.SpanKind.SERVER) as span:
            if rid:
                span.set_attribute("voxmesh.request_id", rid)
            yield
    finally:
        request_id.reset(token)


def new_request_id(given: str) -> str:
    """The gateway's: the client's id (bounded), or a new one; from here on it is the call's."""
    rid = given[:MAX_REQUEST_ID] or uuid.uuid4().hex
    request_id.set(rid)
    trace.get_current_span().set_attribute("voxmesh.request_id", rid)
    return rid


def outgoing(context: Context | None = None, rid: str | None = None) -> tuple[tuple[str, str], ...]:
    """Metadata for a downstream call: a span's context (the current one unless given) and the request id."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    if rid := request_id.get() if rid is None else rid:
        carrier[REQUEST_ID] = rid
    return tuple(carrier.items())
