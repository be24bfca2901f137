"""What `voxmesh transcribe` shows: progress, partials in place, finals as they land, and a summary."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from voxmesh import captions, text
from voxmesh.events import Event, Final, Partial, Processed, SpeechEnd, UtteranceFailed

PROGRESS_EVERY_S = 5.0  # without a terminal, a progress line per this much audio sent


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class Summary:
    """Latency figures measured at the client, on its monotonic clock."""

    utterances: int = 0
    failed: int = 0
    end_to_final: list[float] = field(default_factory=list)  # speech_end event -> final event
    overhead: list[float] = field(default_factory=list)  # the above minus the engine's compute time
    compute: list[float] = field(default_factory=list)
    finals: dict[int, str] = field(default_factory=dict)
    final_events: list[Final] = field(default_factory=list)
    processed: dict[int, str] = field(default_factory=dict)
    _ended_at: dict[int, float] = field(default_factory=dict)

    def add(self, event: Event, now: float) -> None:
        if isinstance(event, SpeechEnd):
            self._ended_at[event.utterance] = now
        elif isinstance(event, Final):
            self.utterances += 1
            self.finals[event.utterance] = event.text
            self.final_events.append(event)
            ended = self._ended_at.pop(event.utterance, None)
            self.compute.append(event.engine_compute_s)
            if ended is not None:
                self.end_to_final.append(now - ended)
                self.overhead.append(max(0.0, now - ended - event.engine_compute_s))
        elif isinstance(event, UtteranceFailed):
            self.utterances += 1
            self.failed += 1
        elif isinstance(event, Processed) and event.done and event.outcome != "failed":
            self.processed[event.utterance] = event.text

    def as_dict(self) -> dict:
        def stats(values: list[float]) -> dict:
            return {"p50": percentile(values, 50), "p95": percentile(values, 95)} if values else {}

        return {
            "type": "summary",
            "utterances": self.utterances,
            "failed": self.failed,
            "speech_end_to_final_s": stats(self.end_to_final),
            "mesh_overhead_s": stats(self.overhead),
            "engine_compute_s": stats(self.compute),
            "transcript": self.text(),
        }

    def text(self) -> str:
        return text.transcript((self.finals[u], self.processed.get(u)) for u in sorted(self.finals))

    def lines(self) -> list[str]:
        out = [f"utterances: {self.utterances} ({self.utterances - self.failed} transcribed, {self.failed} failed)"]
        if self.end_to_final:
            out.append(
                f"speech end -> final: p50 {percentile(self.end_to_final, 50):.3f} s, "
                f"p95 {percentile(self.end_to_final, 95):.3f} s"
            )
            out.append(
                f"mesh overhead (speech end -> final, minus engine compute): p50 "
                f"{percentile(self.overhead, 50) * 1000:.1f} ms, p95 {percentile(self.overhead, 95) * 1000:.1f} ms"
            )
            out.append(f"engine compute per utterance: p50 {percentile(self.compute, 50):.3f} s")
        return out


class Console:
    """Renders events for people (partials in place on a terminal), as JSON lines (`--json`), or as captions
    of the finals at the end (`captions`: "srt" or "vtt"; the run's lines go to `err`)."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr, captions: str | None = None):
        self.as_json = as_json
        self.captions = captions
        self.out = err if captions else out
        self.captions_out = out
        self.err = err
        self.live = self.out.isatty() and not as_json
        self.summary = Summary()
        self._status = ""
        self._progress = ""
        self._reported_s = 0.0

    def progress(self, sent_s: float, total_s: float) -> None:
        self._progress = f"[{sent_s:5.1f}/{total_s:.1f} s]"
        if self.live:
            self._redraw()
        elif not self.as_json and (sent_s - self._reported_s >= PROGRESS_EVERY_S or sent_s >= total_s):
            self._reported_s = sent_s
            print(f"sent {sent_s:.1f} s of {total_s:.1f} s", file=self.err, flush=True)

    def event(self, event: Event) -> None:
        self.summary.add(event, time.monotonic())
        if self.as_json:
            print(json.dumps(event.to_dict()), file=self.out, flush=True)
            return
        if isinstance(event, Partial):
            self._status = event.text
            if self.live:
                self._redraw()
        elif isinstance(event, Final):
            self._print(f"[{event.start_s:6.2f} - {event.end_s:6.2f}] {event.text}")
        elif isinstance(event, Processed) and event.done:
            note = f"  ({event.outcome}: {event.reason})" if event.reason else ""
            self._print(f"{'':17}-> {event.text}{note}")
        elif isinstance(event, UtteranceFailed):
            self._print(
                f"[{event.start_s:6.2f} - {event.end_s:6.2f}] FAILED at {event.stage}: {event.code}: {event.message}"
            )

    def finish(self, wall_s: float, audio_s: float) -> None:
        if self.captions:
            render = captions.srt if self.captions == "srt" else captions.vtt
            print(render(self.summary.final_events), file=self.captions_out, end="", flush=True)
        if self.as_json:
            print(json.dumps({**self.summary.as_dict(), "audio_s": audio_s, "wall_s": wall_s}), file=self.out)
            return
        self._clear()
        print("", file=self.out)
        print("transcript: " + self.summary.text(), file=self.out)
        for line in self.summary.lines():
            print(line, file=self.out)
        print(f"audio: {audio_s:.1f} s streamed in {wall_s:.1f} s", file=self.out)

    def _print(self, line: str) -> None:
        self._clear()
        print(line, file=self.out, flush=True)
        self._status = ""
        if self.live:
            self._redraw()

    def _clear(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K")

    def _redraw(self) -> None:
        width = 120
        line = f"{self._progress} {self._status}"
        if len(line) > width:
            line = line[: width - 3] + "..."
        self.out.write("\r\x1b[K\x1b[2m" + line + "\x1b[0m")
        self.out.flush()
