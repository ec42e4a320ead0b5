"""Is a joint reading a measurement, or a sensor fault? Everything downstream anchors on measurements (the
filter's relative-target check, where a command starts, what the policy observes), so a wrong one must never
get that far.

A reading is a sensor fault when any value is NaN/Inf, when a joint (or the gripper) lies outside its limits by
more than the tolerance (absurd values included), or when a joint moved from the last good reading faster than
`jump_factor` times its max velocity (plus a slack for noise). The fault names the joint and why; it ends after
`recovery_readings` plausible readings in a row. Jumps are judged against the last good reading and the time
since it, so a glitch of one sample and a sensor stuck at a wrong value are both caught, and a joint that was
really moved while the sensor was faulty is accepted once it could have got there.
"""

from __future__ import annotations

import math

import numpy as np

from vla_policy_node.control.config import PlausibilityConfig
from vla_policy_node.spec.embodiment import Embodiment

# Readings delivered in a burst (a stalled process catching up) arrive together but were taken apart: their
# stamps may widen the time a jump is judged over, by at most this much beyond the arrival times (s).
STAMP_LEAD = 0.1


class Plausibility:
    def __init__(self, embodiment: Embodiment, config: PlausibilityConfig) -> None:
        self.config = config
        joints = embodiment.joints
        self.names = [j.name for j in joints]
        tol = config.position_tolerance
        self._lo = [j.lower for j in joints]
        self._hi = [j.upper for j in joints]
        self._tol = [tol] * len(joints)
        self._vmax = [j.max_velocity for j in joints]
        if embodiment.gripper is not None:
            g = embodiment.gripper
            self.names.append(g.name)
            self._lo.append(g.lower)
            self._hi.append(g.upper)
            self._tol.append(config.gripper_tolerance)
            self._vmax.append(math.inf)  # fingers may be pushed open or shut fast: range only
        self._lo_ok = [lo - tol for lo, tol in zip(self._lo, self._tol, strict=True)]
        self._hi_ok = [hi + tol for hi, tol in zip(self._hi, self._tol, strict=True)]
        self._jump_speed = [config.jump_factor * v for v in self._vmax]
        self.fault = ""  # "" while readings are plausible
        self.faults = 0
        self._last_good: list[float] | None = None
        self._last_time = -math.inf
        self._last_stamp = math.nan
        self._good_run = 0

    def check(self, state: np.ndarray, t: float, stamp: float = math.nan) -> str:
        """'' if `state` (state_names order) arriving at `t` (header `stamp`) may be used; else the fault (also
        kept in `fault`)."""
        elapsed = max(t - self._last_time, 0.0)
        taken_apart = stamp - self._last_stamp
        if taken_apart > elapsed:  # NaN compares False: no stamps, arrival times only
            elapsed = min(taken_apart, elapsed + STAMP_LEAD)
        problem = self._problem(state.tolist(), elapsed)
        if problem:
            if problem != self.fault:
                self.faults += 1
            self.fault = problem
            self._good_run = 0
            return problem
        self._last_good, self._last_time, self._last_stamp = state.tolist(), t, stamp
        if self.fault:
            self._good_run += 1
            if self._good_run < self.config.recovery_readings:
                return self.fault
            self.fault = ""
        return ""

    def _problem(self, values: list[float], elapsed: float) -> str:
        """The tick path: one pass of comparisons (NaN fails them too); the wording only on a fault."""
        last = self._last_good
        slack = self.config.jump_slack
        if last is None:
            for x, lo, hi in zip(values, self._lo_ok, self._hi_ok, strict=True):
                if not lo <= x <= hi:
                    return self._explain(values, elapsed)
            return ""
        for x, lo, hi, prev, speed in zip(values, self._lo_ok, self._hi_ok, last, self._jump_speed, strict=True):
            if not lo <= x <= hi or abs(x - prev) > speed * elapsed + slack:
                return self._explain(values, elapsed)
        return ""

    def _explain(self, values: list[float], elapsed: float) -> str:
        cfg = self.config
        last = self._last_good
        for i, x in enumerate(values):
            name = self.names[i]
            if not math.isfinite(x):
                return f"{name} reads {x}"
            lo, hi, tol = self._lo[i], self._hi[i], self._tol[i]
            if abs(x) > cfg.absurd:
                return f"{name} reads an absurd {x:.3g}"
            if x > hi + tol:
                return f"{name} reads {x:.3f}, {x - hi:.3f} past its upper limit {hi:.3f} (tolerance {tol:g})"
            if x < lo - tol:
                return f"{name} reads {x:.3f}, {lo - x:.3f} past its lower limit {lo:.3f} (tolerance {tol:g})"
            if last is not None:
                allowed = self._jump_speed[i] * elapsed + cfg.jump_slack
                if abs(x - last[i]) > allowed:
                    return (f"{name} jumped {x - last[i]:+.3f} in {elapsed * 1e3:.0f} ms (at most {allowed:.3f} "
                            "is physical)")
        return ""

    def rebase(self, shift: float) -> None:
        """The clock jumped by `shift`: keep the time since the last good reading."""
        self._last_time += shift
