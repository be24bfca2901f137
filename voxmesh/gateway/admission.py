"""Admission of new live streams by what the mesh can take, not by a count alone.

Every ASR answer says, over its replica's last 10 s, what share of the time its engine worked for live
streams and how many live streams it served on average (asr.proto). Their ratio is what one live stream
costs; the gateway keeps a moving average of it (`PRIOR_COST`, a tenth of an engine, until one is
measured). It admits one more live stream only while the busy share it expects with it stays at or under
`admit_utilization`:

    expected = how busy its streams' replicas say they are
               + cost x (1 + the part of its young streams the replicas' figures do not hold yet)

A stream younger than the window is in the figures only for the part of the window it has lived (and its
speech takes a few seconds more to reach the engine), so a burst of new streams is not admitted on a figure
that has not seen them. A refusal is RESOURCE_EXHAUSTED with google.rpc.RetryInfo. A stream that resumes
on this gateway (its gateway went away) is not new load and is always admitted. Recorded streams are not
counted: they wait for capacity instead. `max_streams` stays the hard cap on every call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from voxmesh import errors
from voxmesh.load import WINDOW_S

FRESH_S = 5.0  # how old a replica's figure may be
RETRY_AFTER_S = 5.0
PRIOR_COST = 0.1  # an engine's busy share per live stream, until one has been measured
LEARNING = 0.1  # weight of each new measurement of the cost in its moving average


@dataclass
class _Live:
    started: float
    utilization: float | None = None
    reported: float = 0.0


class Admission:
    def __init__(self, admit_utilization: float):
        self.admit_utilization = admit_utilization
        self.cost = PRIOR_COST
        self._live: dict[object, _Live] = {}

    def expected(self) -> float:
        """The engines' busy share expected with one more live stream."""
        now = time.monotonic()
        figures = [
            s.utilization for s in self._live.values() if s.utilization is not None and now - s.reported <= FRESH_S
        ]
        busy = sum(figures) / len(figures) if figures else 0.0
        unseen = sum(1 - min(1.0, (now - s.started) / WINDOW_S) for s in self._live.values())
        return busy + self.cost * (1 + unseen)

    def admit(self, stream: object, resumed: bool = False) -> None:
        """Count a new live stream in, or RESOURCE_EXHAUSTED with a retry hint."""
        if not resumed and self.admit_utilization <= 1 and (expected := self.expected()) > self.admit_utilization:
            raise errors.ResourceExhausted(
                f"the mesh is at capacity for live streams: its speech engines would be {expected:.0%} busy with "
                f"one more, over the {self.admit_utilization:.0%} that keeps every stream's latency "
                f"(VOXMESH_GATEWAY_ADMIT_UTILIZATION); retry in {RETRY_AFTER_S:g} s or on another gateway",
                retry_after_s=RETRY_AFTER_S,
            )
        self._live[stream] = _Live(time.monotonic())

    def report(self, stream: object, utilization: float, live_streams: float) -> None:
        """What the ASR replica of a live stream said of its engine's last seconds."""
        live = self._live.get(stream)
        if live is None:
            return
        live.utilization, live.reported = utilization, time.monotonic()
        if live_streams >= 0.5:
            self.cost += LEARNING * (utilization / live_streams - self.cost)

    def ended(self, stream: object) -> None:
        self._live.pop(stream, None)
