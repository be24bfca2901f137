"""Admission of new live streams by what the mesh can take, not by a count alone.

Every ASR answer says how busy its replica's engine was over the last seconds (`engine_utilization`).
The gateway learns what one live stream costs, and admits one more only while the engines' busy share it
expects with that stream stays at or under `admit_utilization`:

    expected = cost of one live stream x (live streams + 1)

The cost is learned from the streams old enough to be in the engines' window: the mean utilization their
replicas report, over their number (a younger stream, whose utterances are not all in the figure yet, is
left out of the count but its load is in the figure: the cost comes out high rather than low). Until a
stream is that old the cost is `PRIOR_COST` (a tenth of an engine), and it is then updated as a moving
average, so a gateway admits its first streams cautiously and then by what it has seen. A refusal is
RESOURCE_EXHAUSTED with google.rpc.RetryInfo. Recorded streams are not counted: they wait for capacity
instead (asr.proto). `max_streams` stays the hard cap on every call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from voxmesh import errors
from voxmesh.engine_thread import UTILIZATION_WINDOW_S

FRESH_S = 5.0  # how old a utilization figure may be
RETRY_AFTER_S = 5.0
PRIOR_COST = 0.1  # an engine's busy share per live stream, until one has been measured
LEARNING = 0.2  # weight of each new measurement of the cost in its moving average


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
        return self.cost * (len(self._live) + 1)

    def _learn(self, now: float) -> None:
        reports = [s.utilization for s in self._live.values()
                   if s.utilization is not None and now - s.reported <= FRESH_S]
        mature = sum(1 for s in self._live.values() if now - s.started >= UTILIZATION_WINDOW_S)
        if reports and mature:
            measured = sum(reports) / len(reports) / mature
            self.cost += LEARNING * (measured - self.cost)

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
            self._learn(live.reported)

    def ended(self, stream: object) -> None:
        self._live.pop(stream, None)
