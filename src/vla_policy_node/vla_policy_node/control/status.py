"""The status record behind vla_msgs/PolicyStatus and the entries behind /diagnostics.

Plain data: the ROS layer copies fields into messages (DiagnosticStatus.level takes `int(level)`: OK=0,
WARN=1, ERROR=2 as in diagnostic_msgs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum


class Level(IntEnum):
    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class Diagnostic:
    level: Level
    name: str
    message: str
    values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ControlStatus:
    """One snapshot. Field names up to clamp_counts match vla_msgs/PolicyStatus; `stale_inputs` and
    `input_ages` are parallel (the stale inputs and how old each one's newest message is; inf = never)."""

    stamp: float
    active_source: str
    paused: bool
    estop_latched: bool
    starved: bool
    fault: str
    instruction: str
    control_rate: float
    inference_rate: float
    inference_latency_p50: float
    inference_latency_p99: float
    stale_inputs: tuple[str, ...]
    input_ages: tuple[float, ...]
    clamp_names: tuple[str, ...]
    clamp_counts: tuple[int, ...]
    hold: bool = False
    hold_reasons: tuple[str, ...] = ()
    active_locks: tuple[str, ...] = ()
    all_input_ages: tuple[tuple[str, float], ...] = ()
    strategy: str = ""
    inference_in_flight: bool = False
    chunks_accepted: int = 0
    chunks_rejected: int = 0
    input_rejections: tuple[tuple[str, int], ...] = ()
    control_reason: str = ""  # who is in control and why, one line
    awaiting_resume: bool = False  # teleop let go: the policy waits for an explicit resume
    sensor_fault: str = ""  # the implausible reading that holds the arm ("" when none)
    joint_state_age: float = math.inf  # of the newest accepted joint state (s, never negative)

    def clamp_count(self, name: str) -> int:
        return dict(zip(self.clamp_names, self.clamp_counts, strict=True)).get(name, 0)


class ClampReport:
    """Turns the safety filter's cumulative clamp counters into a diagnostic about what changed since the last
    report: an operator needs "clamping now", not "clamped once an hour ago"."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def diagnostic(self, names: tuple[str, ...], counts: tuple[int, ...]) -> Diagnostic:
        totals = dict(zip(names, counts, strict=True))
        new = {k: v - self._last.get(k, 0) for k, v in totals.items() if v > self._last.get(k, 0)}
        self._last = totals
        if "nonfinite" in new:
            level, msg = Level.ERROR, f"non-finite commands held ({new['nonfinite']} since last report)"
        elif new:
            level, msg = Level.WARN, "clamping: " + ", ".join(f"{k} x{v}" for k, v in sorted(new.items()))
        else:
            level, msg = Level.OK, "no clamps since last report"
        return Diagnostic(level, "safety filter", msg, tuple((k, str(v)) for k, v in totals.items()))
