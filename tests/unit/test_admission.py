"""Admission of live streams by the engines' reported load, and what a refusal says."""

from __future__ import annotations

import pytest

from voxmesh import errors
from voxmesh.gateway import admission as module
from voxmesh.gateway.admission import Admission


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    return now


def test_until_a_stream_is_measured_each_new_one_costs_the_prior(clock):
    gate = Admission(admit_utilization=0.35)
    for _ in range(2):
        gate.admit(object())  # streams of this very moment: in no engine's figure yet
    assert gate.expected() == pytest.approx(module.PRIOR_COST * 3)
    gate.admit(object())
    with pytest.raises(errors.ResourceExhausted, match="at capacity for live streams") as refused:
        gate.admit(object())
    assert refused.value.retry_after_s == module.RETRY_AFTER_S


def test_the_cost_is_learned_from_the_replicas_figures_and_old_streams_count_by_them(clock):
    gate = Admission(admit_utilization=0.48)
    streams = [object(), object()]
    for stream in streams:
        gate.admit(stream)
    clock[0] += module.WINDOW_S  # both are now wholly in the figures
    for _ in range(60):
        for stream in streams:
            gate.report(stream, 0.1, 2.0)  # two live streams keep the engine 10% busy: 5% each
    assert gate.cost == pytest.approx(0.05, rel=0.01)
    assert gate.expected() == pytest.approx(0.1 + 0.05, rel=0.01)
    for _ in range(7):
        gate.admit(object())  # young ones count in full: the 8th would make 0.1 + 0.05 x 8 = 0.5
    with pytest.raises(errors.ResourceExhausted):
        gate.admit(object())
    clock[0] += module.WINDOW_S / 2
    gate.admit(object())  # half of the young ones' cost is in the figures now


def test_a_resumed_stream_is_not_new_load(clock):
    gate = Admission(admit_utilization=0.15)
    gate.admit(object())
    with pytest.raises(errors.ResourceExhausted):
        gate.admit(object())
    gate.admit(object(), resumed=True)


def test_stale_figures_and_other_streams_figures_are_not_used(clock):
    gate = Admission(admit_utilization=0.5)
    stream = object()
    gate.admit(stream)
    clock[0] += module.WINDOW_S
    gate.report(stream, 0.9, 3.0)
    clock[0] += module.FRESH_S + 1
    gate.report(object(), 0.0, 1.0)  # not a live stream of this gateway
    assert gate.expected() == pytest.approx(gate.cost)
