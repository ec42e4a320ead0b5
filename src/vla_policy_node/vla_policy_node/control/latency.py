"""Rolling measurements: inference latency quantiles and event rates.

Both keep a fixed ring of recent samples so the figures follow the current load (a GPU that warms up, a
camera that slows down) and adding a sample never allocates; quantiles are computed when asked.
"""

from __future__ import annotations

import math

import numpy as np


def percentiles(values: list[float], qs: tuple[float, ...]) -> tuple[float, ...]:
    """`np.percentile(values, qs)` (its default "linear" method), the same bits: numpy's virtual index and its
    two-sided lerp, in plain Python, which for the ~100 samples of a tracker is 10x faster than numpy's
    dispatch (it runs on every chunk). Finite values only."""
    ordered = sorted(values)
    last = len(ordered) - 1
    out = []
    for q in qs:
        virtual = (q / 100) * last
        below = math.floor(virtual)
        gamma = virtual - below
        a, b = ordered[below], ordered[min(below + 1, last)]
        diff = b - a
        out.append(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)
    return tuple(out)


class LatencyTracker:
    """Inference latency (seconds) over the last `window` chunks: p50/p99 for compensation and status."""

    def __init__(self, window: int = 100) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._samples = np.zeros(window)
        self._count = 0
        self._next = 0
        self._p50 = math.nan
        self._p99 = math.nan

    def add(self, latency: float) -> None:
        if not (math.isfinite(latency) and latency >= 0):
            return  # a negative or NaN latency is a clock problem upstream, not a measurement
        self._samples[self._next] = latency
        self._next = (self._next + 1) % len(self._samples)
        self._count = min(self._count + 1, len(self._samples))
        self._p50, self._p99 = percentiles(self._samples[: self._count].tolist(), (50.0, 99.0))

    @property
    def count(self) -> int:
        return self._count

    @property
    def p50(self) -> float:
        """NaN until the first sample."""
        return self._p50

    @property
    def p99(self) -> float:
        return self._p99

    def quantile(self, which: str, default: float = 0.0) -> float:
        """'p50' or 'p99', or `default` while nothing has been measured."""
        value = self._p50 if which == "p50" else self._p99
        return default if math.isnan(value) else value


class RateMeter:
    """Events per second over the last `window` events (e.g. control ticks, accepted chunks)."""

    def __init__(self, window: int = 100) -> None:
        if window < 2:
            raise ValueError("window must be >= 2")
        self._times = np.zeros(window)
        self._count = 0
        self._next = 0

    def reset(self) -> None:
        """Forget every event (the clock jumped: their times are on another timeline)."""
        self._count = 0
        self._next = 0

    def mark(self, now: float) -> None:
        self._times[self._next] = now
        self._next = (self._next + 1) % len(self._times)
        if self._count < len(self._times):
            self._count += 1

    def rate(self, now: float | None = None) -> float:
        """Mean rate over the window; 0 with fewer than two events. With `now`, a silence since the last event
        counts too, so a stopped stream decays towards 0 instead of reporting its old rate forever."""
        if self._count < 2:
            return 0.0
        newest = self._times[(self._next - 1) % len(self._times)]
        oldest = self._times[self._next % len(self._times)] if self._count == len(self._times) else self._times[0]
        end = max(newest, now) if now is not None else newest
        span = end - oldest
        if span <= 0:
            return 0.0
        return (self._count - 1) / span
