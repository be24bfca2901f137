"""Admission of live streams by the engines' reported load, and what a refusal says."""

from __future__ import annotations

import pytest

from gateway import admission as module
from gateway.admission import Admission
from voxmesh import errors


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    return now


def test_until_a_stream_is_measured_each_costs_the_prior(clock):
    gate = Admission(admit_utilization=0.45)
    for _ in range(4):
        gate.admit(object())
    assert gate.expected() == pytest.approx(module.PRIOR_COST * 5)
    with pytest.raises(errors.ResourceExhausted, match="at capacity for live streams") as refused:
        gate.admit(object())
    assert refused.value.retry_after_s == module.RETRY_AFTER_S


def test_the_cost_is_learned_from_mature_streams_and_admits_by_it(clock):
    gate = Admission(admit_utilization=0.5)
    streams = [object(), object()]
    for stream in streams:
        gate.admit(stream)
    clock[0] += module.UTILIZATION_WINDOW_S
    for _ in range(15):
        for stream in streams:
            gate.report(stream, 0.1)  # two streams keep the engine 10% busy: 5% each
    assert gate.cost == pytest.approx(0.05, rel=0.01)
    for _ in range(7):
        gate.admit(object())  # 10 streams, then the 11th would make 55%
    with pytest.raises(errors.ResourceExhausted):
        gate.admit(object())


def test_only_live_streams_reports_teach_the_cost(clock):
    gate = Admission(admit_utilization=0.5)
    stream = object()
    gate.admit(stream)
    clock[0] += module.UTILIZATION_WINDOW_S
    gate.report(stream, 0.9)
    learned = gate.cost
    clock[0] += module.FRESH_S + 1
    gate.report(object(), 0.0)  # not a live stream of this gateway
    assert gate.cost == learned
