"""Time series read from a bag in time order, sampled at other times, with bounded memory.

A replay or a conversion needs a signal (the recorded commands, the joint states) at times that are not its
sample times, a little *ahead* of the message being read. `Signal` keeps only a sliding window (old samples
are dropped explicitly), so a long bag never accumulates its whole history.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

SampleMode = Literal["linear", "hold"]
_TIME_TOLERANCE = 1e-6  # stamps of one instant seen through float seconds and int nanoseconds differ by ~1e-9


class Signal:
    """Samples (t, values[dim]) appended in time order.

    linear: interpolates between the samples around t, if they are at most `max_gap` apart.
    hold: the newest sample at or before t (a controller holds its last command), if at most `max_age` old.
    Samples out of time order are dropped and counted (`out_of_order`), or with `reorder` inserted where their
    stamp belongs (counted in `reordered`): a recorder receives messages in arrival order, not stamp order.
    """

    def __init__(self, dim: int, mode: SampleMode = "linear", max_gap: float = 0.25, max_age: float = math.inf,
                 reorder: bool = False):
        self.reorder = reorder
        self.reordered = 0
        self.dim = dim
        self.mode = mode
        self.max_gap = max_gap
        self.max_age = max_age
        self._t = np.empty(256)
        self._v = np.empty((256, dim))
        self._start = 0
        self._end = 0
        self.count = 0
        self.out_of_order = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def latest_time(self) -> float:
        return float(self._t[self._end - 1]) if self._end > self._start else -math.inf

    @property
    def first_time(self) -> float:
        return float(self._t[self._start]) if self._end > self._start else math.inf

    def append(self, t: float, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != self.dim:
            raise ValueError(f"signal has {self.dim} dims, got {values.shape[0]} values")
        if self._end > self._start:
            last = self._t[self._end - 1]
            if t < last:
                if self.reorder and t > self._t[self._start]:
                    self._insert(t, values)
                else:
                    self.out_of_order += 1
                return
            if t == last:  # same instant: the newer message wins
                self._v[self._end - 1] = values
                return
        if self._end == len(self._t):
            self._make_room()
        self._t[self._end] = t
        self._v[self._end] = values
        self._end += 1
        self.count += 1

    def _insert(self, t: float, values: np.ndarray) -> None:
        times = self._t[self._start:self._end]
        k = self._start + int(np.searchsorted(times, t))
        if abs(self._t[k] - t) <= _TIME_TOLERANCE:  # same instant: the newer message wins
            self._v[k] = values
            return
        if self._end == len(self._t):
            self._make_room()
            k = self._start + int(np.searchsorted(self._t[self._start:self._end], t))
        self._t[k + 1:self._end + 1] = self._t[k:self._end].copy()
        self._v[k + 1:self._end + 1] = self._v[k:self._end].copy()
        self._t[k] = t
        self._v[k] = values
        self._end += 1
        self.count += 1
        self.reordered += 1

    def _make_room(self) -> None:
        live = self._end - self._start
        if live * 2 > len(self._t):  # mostly live: grow
            size = len(self._t) * 2
            t, v = np.empty(size), np.empty((size, self.dim))
        else:  # mostly dropped: compact in place
            t, v = self._t, self._v
        t[:live] = self._t[self._start:self._end]
        v[:live] = self._v[self._start:self._end]
        self._t, self._v, self._start, self._end = t, v, 0, live

    def drop_before(self, t: float) -> None:
        """Forget samples no longer needed for times >= t (the last one at or before t is kept)."""
        times = self._t[self._start:self._end]
        keep_from = int(np.searchsorted(times, t, side="right")) - 1
        if keep_from > 0:
            self._start += keep_from

    def sample(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values [n, dim], ok [n]): the signal at `times`; rows with ok False have no defined value (NaN)."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        out = np.full((times.shape[0], self.dim), np.nan)
        ts = self._t[self._start:self._end]
        vs = self._v[self._start:self._end]
        n = ts.shape[0]
        if n == 0 or times.shape[0] == 0:
            return out, np.zeros(times.shape[0], bool)
        i = np.searchsorted(ts, times + _TIME_TOLERANCE, side="right") - 1
        has_before = i >= 0
        i0 = np.clip(i, 0, n - 1)
        if self.mode == "hold":
            ok = has_before & (times - ts[i0] <= self.max_age)
            out[ok] = vs[i0[ok]]
            return out, ok
        exact = has_before & (np.abs(times - ts[i0]) <= _TIME_TOLERANCE)
        i1 = np.clip(i0 + 1, 0, n - 1)
        between = has_before & (i + 1 < n) & ~exact
        gap = ts[i1] - ts[i0]
        between &= gap <= self.max_gap
        out[exact] = vs[i0[exact]]
        if np.any(between):
            w = ((times[between] - ts[i0[between]]) / gap[between])[:, None]
            out[between] = (1.0 - w) * vs[i0[between]] + w * vs[i1[between]]
        return out, exact | between


    def sample_at(self, t: float) -> np.ndarray | None:
        """`sample` at one time (the same arithmetic, so the same bits): values [dim], or None where the signal
        has no defined value. For callers asking one time per message (plots), without `sample`'s array work."""
        n = self._end - self._start
        if n == 0:
            return None
        start = self._start
        ts = self._t[start:self._end]
        i = int(np.searchsorted(ts, t + _TIME_TOLERANCE, side="right")) - 1
        if i < 0:
            return None
        t0 = ts[i]
        if self.mode == "hold":
            return self._v[start + i].copy() if t - t0 <= self.max_age else None
        if abs(t - t0) <= _TIME_TOLERANCE:
            return self._v[start + i].copy()
        if i + 1 >= n:
            return None
        gap = ts[i + 1] - t0
        if not gap <= self.max_gap:
            return None
        w = (t - t0) / gap
        return (1.0 - w) * self._v[start + i] + w * self._v[start + i + 1]


class PlotSeries:
    """A decimated copy of a signal for plots: at most one sample per `min_dt` seconds."""

    def __init__(self, dim: int, min_dt: float) -> None:
        self.dim = dim
        self.min_dt = min_dt
        self._times: list[float] = []
        self._values: list[np.ndarray] = []

    def wants(self, t: float) -> bool:
        """Whether a sample at t would be kept (callers skip computing values otherwise)."""
        return not self._times or t - self._times[-1] >= self.min_dt

    def add(self, t: float, values: np.ndarray) -> None:
        if not self.wants(t):
            return
        self._times.append(float(t))
        self._values.append(np.asarray(values, dtype=np.float32).reshape(-1).copy())

    def __getstate__(self) -> tuple[int, float, np.ndarray, np.ndarray]:
        """Two arrays instead of one small array per sample: a replay's series cross from its comparison
        process in a few hundred microseconds, not milliseconds."""
        return self.dim, self.min_dt, self.times, self.values

    def __setstate__(self, state: tuple[int, float, np.ndarray, np.ndarray]) -> None:
        self.dim, self.min_dt, times, values = state
        self._times = times.tolist()
        self._values = list(values)

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self._times)

    @property
    def values(self) -> np.ndarray:
        return np.stack(self._values) if self._values else np.zeros((0, self.dim), np.float32)
