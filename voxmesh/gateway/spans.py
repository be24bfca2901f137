"""Each utterance's trace span at the gateway: the child of the call's span, opened at its speech start, with
its end, final, error and processed text as events, closed when the chain retires it (or the call ends)."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode

from voxmesh import tracing
from voxmesh.v1 import transcription_pb2


class UtteranceSpans:
    def __init__(self, call: Context):
        self.call = call
        self._open: dict[int, Span] = {}  # utterance id -> its span

    def record(self, event: transcription_pb2.TranscriptionEvent) -> None:
        """An event the client is sent, on its utterance's span."""
        kind, utterance_id = event.WhichOneof("event"), event.utterance_id
        if kind == "speech_started":
            self._open[utterance_id] = tracing.tracer.start_span(
                "utterance", context=self.call, attributes={"voxmesh.utterance": utterance_id}
            )
            return
        span = self._open.get(utterance_id)
        if span is None or kind == "partial" or (kind == "processed" and not event.processed.done):
            return
        if kind == "final":
            span.add_event("final", {"engine_compute_s": event.final.engine_compute_s, "end_s": event.end_s})
        elif kind == "error":
            span.add_event("error", {"stage": event.error.stage, "code": event.error.code})
            span.set_status(StatusCode.ERROR, event.error.message)
        elif kind == "processed":
            span.add_event("processed", {"outcome": event.processed.outcome})
        elif kind is not None:
            span.add_event(kind)

    def end(self, utterance_id: int) -> None:
        span = self._open.pop(utterance_id, None)
        if span is not None:
            span.end()

    def end_all(self) -> None:
        for utterance_id in list(self._open):
            self.end(utterance_id)
