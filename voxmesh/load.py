"""How loaded a service has been over the last seconds: a level's time average over a sliding window.

A `Window` follows a level that changes now and then: 1 while an engine computes and 0 while it waits
gives the share of the window it was busy; the number of open streams gives how many there were on
average. The ASR reports both with every answer, and the gateway admits live streams by them
(voxmesh/gateway/admission.py). Reading is cheap: the average is computed at most every EVERY_S.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW_S = 10.0
EVERY_S = 0.1


class Window:
    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.level = 0.0
        self._changes: deque[tuple[float, float]] = deque()  # (when, level from then on)
        self._since = time.perf_counter()  # before it, the level was 0
        self._cached = (-EVERY_S, 0.0)

    def set(self, level: float) -> None:
        self.level = level
        self._changes.append((time.perf_counter(), level))

    def add(self, delta: float) -> None:
        self.set(self.level + delta)

    def average(self) -> float:
        now = time.perf_counter()
        if now - self._cached[0] >= EVERY_S:
            self._cached = (now, self._measure(now))
        return self._cached[1]

    def _measure(self, now: float) -> float:
        start = now - self.window_s
        while len(self._changes) > 1 and self._changes[1][0] <= start:
            self._changes.popleft()  # the level it set ended before the window
        area, at, level = 0.0, start, 0.0
        for when, value in self._changes:
            if when > at:
                area += level * (when - at)
                at = when
            level = value
        area += level * (now - at)
        return area / self.window_s
