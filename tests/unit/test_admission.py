"""Admission of live streams by the engines' reported load, and what a refusal says."""

from __future__ import annotations

import pytest

from gateway import admission as module
from gateway.admission import Admission
from voxmesh import errors


def test_streams_are_admitted_until_the_expected_load_passes_the_limit(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    gate = Admission(admit_utilization=0.6)
    streams = [object() for _ in range(3)]
    for stream in streams:
        gate.admit(stream)  # nothing reported yet: no load known
    clock[0] += module.UTILIZATION_WINDOW_S  # all three are now in the engines' window
    for stream in streams:
        gate.report(stream, 0.5)
    assert gate.expected() == pytest.approx(0.5 * 4 / 3)
    with pytest.raises(errors.ResourceExhausted, match="at capacity") as refused:
        gate.admit(object())
    assert refused.value.retry_after_s == module.RETRY_AFTER_S
    gate.ended(streams[0])
    assert gate.expected() == pytest.approx(0.5 * 3 / 2)
    gate.ended(streams[1])
    gate.report(streams[2], 0.2)
    gate.admit(object())


def test_young_streams_count_as_much_as_the_mature_ones_cost():
    gate = Admission(admit_utilization=0.6)
    old, young = object(), object()
    gate.admit(old)
    gate._live[old].started -= module.UTILIZATION_WINDOW_S
    gate.report(old, 0.2)
    gate.admit(young)
    assert gate.expected() == pytest.approx(0.2 * 3 / 1), "the young stream is not in the figure yet"


def test_old_reports_are_not_trusted(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    gate = Admission(admit_utilization=0.6)
    stream = object()
    gate.admit(stream)
    gate.report(stream, 0.9)
    clock[0] += module.FRESH_S + 1
    assert gate.expected() == 0.0
