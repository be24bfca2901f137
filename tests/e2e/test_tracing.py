"""Traces and request ids across the four services as processes: each exports OTLP to a receiver in this
test, and one stream's spans from all four join in one trace."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.conftest import SAMPLE
from voxmesh.client import Client, StreamOptions
from voxmesh.stack import LocalStack

pytestmark = pytest.mark.e2e
SERVICES = ("gateway", "vad", "asr", "llm")


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps (service name, span) for every span exported to it."""

    def __init__(self):
        self.spans: list[tuple[str, object]] = []

    async def Export(self, request, context):
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans += [(attributes.get("service.name", ""), span) for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_one_streams_spans_from_all_four_services_join_in_one_trace(tmp_path):
    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {f"VOXMESH_{name.upper()}_OTLP_ENDPOINT": endpoint for name in SERVICES}
    env["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # export every 200 ms, not every 5 s
    request_id = "test-trace-4711"
    try:
        async with LocalStack(gateway_port=0, log_dir=tmp_path, env=env) as stack:
            async with Client(stack.gateway) as client:
                options = StreamOptions(request_id=request_id, post_processing=True)
                events = [e async for e in client.stream_file(SAMPLE, pace="fast", options=options)]
            for _ in range(50):  # until every service has exported this stream's spans
                services = {name for name, span in receiver.spans}
                if services >= {f"voxmesh-{s}" for s in SERVICES}:
                    break
                await asyncio.sleep(0.2)
        logs = {path.stem: path.read_text(errors="replace") for path in tmp_path.glob("*.log")}
    finally:
        await server.stop(None)
    assert len([e for e in events if e.type == "final"]) == 4
    call = [s for name, s in receiver.spans if name == "voxmesh-gateway" and s.name == "gateway/StreamingTranscribe"]
    assert len(call) == 1
    trace_id = call[0].trace_id
    in_trace = [(name, s) for name, s in receiver.spans if s.trace_id == trace_id]
    assert {name for name, _ in in_trace} == {f"voxmesh-{s}" for s in SERVICES}, "all four services in one trace"
    names = {s.name for _, s in in_trace}
    assert {"vad/Detect", "asr/Recognize", "llm/Process"} <= names
    utterances = [s for _, s in in_trace if s.name == "utterance"]
    assert len(utterances) == 4 and all(s.parent_span_id == call[0].span_id for s in utterances)
    for span in utterances:
        assert {"speech_ended", "final", "processed"} <= {e.name for e in span.events}
    inner = [s for name, s in in_trace if s.name in ("vad/Detect", "asr/Recognize", "llm/Process")]
    assert all(s.parent_span_id == call[0].span_id for s in inner), "the inner calls are the gateway call's children"
    for name in SERVICES:  # the request id is in every service's log lines for the stream
        service_log = next(text for stem, text in logs.items() if stem.startswith(name))
        assert request_id in service_log, name
