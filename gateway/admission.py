"""Admission of new live streams by what the mesh can take, not by a count alone.

Every ASR response says how busy its replica's engine was over the last seconds (`engine_utilization`).
The gateway keeps the latest figure of each live stream's replica, and admits one more live stream only
while the busy share it expects with that stream stays at or under `admit_utilization`:

    expected = mean utilization x (live streams + 1) / live streams old enough to be in the figure

A stream counts in the figure once it is as old as the engine's window; a younger one has not had its
utterances transcribed yet, so until then each stream is taken to cost as much as a mature one costs
on average, or more (the division by the mature ones only). A refusal is RESOURCE_EXHAUSTED with
google.rpc.RetryInfo. Recorded streams are not counted: they wait for capacity instead (asr.proto).
`max_streams` stays as the hard cap on every call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from voxmesh import errors
from voxmesh.engine_thread import UTILIZATION_WINDOW_S

FRESH_S = 5.0  # how old a utilization figure may be
RETRY_AFTER_S = 5.0


@dataclass
class _Live:
    started: float
    utilization: float | None = None
    reported: float = 0.0


class Admission:
    def __init__(self, admit_utilization: float):
        self.admit_utilization = admit_utilization
        self._live: dict[object, _Live] = {}

    def expected(self, now: float | None = None) -> float:
        """The engines' busy share expected with one more live stream."""
        now = time.monotonic() if now is None else now
        reports = [s.utilization for s in self._live.values()
                   if s.utilization is not None and now - s.reported <= FRESH_S]
        if not reports:
            return 0.0
        mature = sum(1 for s in self._live.values() if now - s.started >= UTILIZATION_WINDOW_S)
        return sum(reports) / len(reports) * (len(self._live) + 1) / max(1, mature)

    def admit(self, stream: object) -> None:
        """Count a new live stream in, or RESOURCE_EXHAUSTED with a retry hint."""
        expected = self.expected()
        if expected > self.admit_utilization:
            raise errors.ResourceExhausted(
                f"the mesh is at capacity for live streams: its speech engines would be {expected:.0%} busy with "
                f"one more, over the {self.admit_utilization:.0%} that keeps every stream's latency "
                f"(VOXMESH_GATEWAY_ADMIT_UTILIZATION); retry in {RETRY_AFTER_S:g} s or on another gateway",
                retry_after_s=RETRY_AFTER_S,
            )
        self._live[stream] = _Live(time.monotonic())

    def report(self, stream: object, utilization: float) -> None:
        """What the ASR replica of a live stream said of its engine."""
        live = self._live.get(stream)
        if live is not None:
            live.utilization, live.reported = utilization, time.monotonic()

    def ended(self, stream: object) -> None:
        self._live.pop(stream, None)
