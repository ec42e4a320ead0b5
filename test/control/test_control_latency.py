"""Latency quantiles and rate measurement."""

from __future__ import annotations

import math

import pytest

from vla_policy_node.control.latency import LatencyTracker, RateMeter


def test_latency_quantiles_over_window():
    tracker = LatencyTracker(window=5)
    assert math.isnan(tracker.p50) and tracker.quantile("p99", 0.123) == 0.123
    for x in (0.1, 0.2, 0.3, 0.4, 0.5):
        tracker.add(x)
    assert tracker.p50 == pytest.approx(0.3)
    assert tracker.p99 == pytest.approx(0.4 + 0.96 * 0.1)  # numpy linear interpolation
    for x in (1.0, 1.0, 1.0):  # the window forgets the oldest three
        tracker.add(x)
    assert tracker.p50 == pytest.approx(1.0)
    assert tracker.count == 5


def test_latency_ignores_garbage():
    tracker = LatencyTracker(window=3)
    tracker.add(float("nan"))
    tracker.add(-1.0)
    assert tracker.count == 0
    tracker.add(0.2)
    assert tracker.p99 == pytest.approx(0.2)


def test_rate_meter():
    meter = RateMeter(window=10)
    assert meter.rate() == 0.0
    for i in range(25):
        meter.mark(i * 0.004)
    assert meter.rate() == pytest.approx(250.0)
    # a stream that stopped decays when asked with the current time
    assert meter.rate(now=24 * 0.004 + 0.036) == pytest.approx(9 / (9 * 0.004 + 0.036))
