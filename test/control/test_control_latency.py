"""Latency quantiles and rate measurement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_policy_node.control.latency import LatencyTracker, RateMeter, percentiles


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


def test_percentiles_are_numpys_bit_for_bit():
    """The tracker's plain-Python quantiles equal np.percentile exactly (executor timing and replays depend on
    them), on spread, tied, repeated and heavy-tailed samples of every window size."""
    rng = np.random.default_rng(0)
    for trial in range(4000):
        n = int(rng.integers(1, 101))
        kind = trial % 4
        if kind == 0:
            values = rng.random(n)
        elif kind == 1:
            values = rng.choice([0.05, 0.0123, 0.3, 1e-9], n)
        elif kind == 2:
            values = rng.lognormal(-3.0, 2.0, n)
        else:
            values = rng.integers(0, 6, n) * 0.01
        qs = (50.0, 99.0) if trial % 2 else (float(rng.uniform(0, 100)), 50.0)
        expected = tuple(float(v) for v in np.percentile(values, qs))
        assert percentiles(values.tolist(), qs) == expected, (values, qs)


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
