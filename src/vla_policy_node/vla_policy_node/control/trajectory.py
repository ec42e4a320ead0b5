"""Waypoints on a uniform time grid, interpolated: the shape both chunks and the executing plan take.

Polynomial coefficients per segment are computed once when the trajectory is built (when a chunk arrives,
off the control timer), so sampling on the tick is one Horner evaluation into a preallocated buffer. The tick
evaluates it in plain Python floats (the same IEEE operations in the same order as numpy's, so the same bits)
on a segment's coefficients converted once, on its first sample: for a few dims that is twice as fast as numpy's
per-call overhead.
"""

from __future__ import annotations

import math

import numpy as np

from vla_policy_node.control.config import Interpolation


class Trajectory:
    """values[k] is the waypoint at t0 + k*dt; before t0 / after the last waypoint the ends are held.

    interpolation "cubic" is Catmull-Rom (C1: velocity is continuous across waypoints, passes through every
    waypoint); "linear" is piecewise linear. Columns listed in `linear_columns` are always linear (a gripper
    that snaps open/closed should not overshoot).
    """

    __slots__ = ("_c0", "_c1", "_c2", "_c3", "_last", "_rows", "_t_end", "dt", "t0", "values")

    def __init__(
        self,
        t0: float,
        dt: float,
        values: np.ndarray,
        interpolation: Interpolation = "linear",
        linear_columns: tuple[int, ...] = (),
    ) -> None:
        values = np.array(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[0] < 1:
            raise ValueError(f"trajectory values must be [K>=1, D], got {values.shape}")
        if not (dt > 0 and math.isfinite(dt) and math.isfinite(t0)):
            raise ValueError("trajectory needs a finite t0 and a positive dt")
        self.t0 = float(t0)
        self.dt = float(dt)
        self.values = values
        self.values.setflags(write=False)
        self._last = len(values) - 1
        self._t_end = self.t0 + self._last * self.dt
        p = values
        if len(p) == 1:
            p = np.vstack([p, p])
        diff = p[1:] - p[:-1]
        if interpolation == "cubic" and len(p) > 2:
            tangent = np.empty_like(p)
            tangent[1:-1] = 0.5 * (p[2:] - p[:-2])
            tangent[0] = p[1] - p[0]
            tangent[-1] = p[-1] - p[-2]
            m0, m1 = tangent[:-1], tangent[1:]
            c2 = 3.0 * diff - 2.0 * m0 - m1
            c3 = -2.0 * diff + m0 + m1
            c1 = m0.copy()
            for col in linear_columns:
                c1[:, col], c2[:, col], c3[:, col] = diff[:, col], 0.0, 0.0
        else:
            c1, c2, c3 = diff, np.zeros_like(diff), np.zeros_like(diff)
        self._c0, self._c1, self._c2, self._c3 = p[:-1].copy(), c1, c2, c3
        self._rows: dict[int, tuple[tuple[float, float, float, float], ...]] = {}  # segment -> (c0..c3) per dim

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def t_end(self) -> float:
        """Time of the last waypoint."""
        return self._t_end

    def _locate(self, t: float) -> tuple[int, float]:
        x = (t - self.t0) / self.dt
        if x <= 0.0:
            return 0, 0.0
        if x >= self._last:
            return max(self._last - 1, 0), 1.0 if self._last > 0 else 0.0
        k = int(x)
        return k, x - k

    def sample_into(self, t: float, out: np.ndarray) -> np.ndarray:
        """Value at time t written into `out` (shape [D]); the tick path, no allocation."""
        k, s = self._locate(t)
        rows = self._rows.get(k)
        if rows is None:
            rows = tuple(zip(self._c0[k].tolist(), self._c1[k].tolist(), self._c2[k].tolist(), self._c3[k].tolist(),
                             strict=True))
            self._rows[k] = rows
        out[:] = [((c3 * s + c2) * s + c1) * s + c0 for c0, c1, c2, c3 in rows]
        return out

    def sample(self, t: float) -> np.ndarray:
        return self.sample_into(t, np.empty(self.dim))

    def evaluate(self, times: np.ndarray) -> np.ndarray:
        """Values at many times ([N] -> [N, D]), for merging off the tick path."""
        x = (np.asarray(times, dtype=np.float64) - self.t0) / self.dt
        x = np.clip(x, 0.0, float(self._last))
        k = np.minimum(np.floor(x).astype(np.int64), max(self._last - 1, 0))
        s = (x - k)[:, None]
        return self._c0[k] + s * (self._c1[k] + s * (self._c2[k] + s * self._c3[k]))

    def covers(self, t: float) -> bool:
        return self.t0 <= t <= self.t_end
