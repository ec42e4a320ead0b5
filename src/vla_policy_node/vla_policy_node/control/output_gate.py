"""When a command stream may reach the arm's controller: only while someone commands, and until a hold settles.

The command mux computes a command every tick, holding where the robot is while no source (policy, teleop)
commands. Streaming those holds would put us on the controller topic while nobody asked us to move the arm,
e.g. during a dry run, fighting any other tool that drives the arm. ros2_control's controllers keep their last
setpoint anyway (joint_trajectory_controller holds the trajectory's end, forward_command_controller re-applies
the last command; MoveIt Servo stops on its own timeout), so silence is a hold too. The gate therefore passes:
- nothing before the first command of a source;
- every command while a source commands (not `hold`);
- holds after that only until they have settled (the braking ramp is over: the commanded values have not
  changed for `settle_time`), so a stop is always finished on the controller; then silence again.
"""

from __future__ import annotations

import numpy as np

from vla_policy_node.control.command import Command


class OutputGate:
    def __init__(self, settle_time: float = 0.5, tolerance: float = 1e-9) -> None:
        if not settle_time > 0:
            raise ValueError("settle_time must be positive")
        self.settle_time = float(settle_time)
        self.tolerance = float(tolerance)
        self._engaged = False
        self._last: np.ndarray | None = None
        self._changed = 0.0

    @property
    def engaged(self) -> bool:
        """True while commands pass (a source commands, or a hold is still settling)."""
        return self._engaged

    def offer(self, command: Command, now: float) -> bool:
        """Whether to publish `command` (ticks must be offered in time order)."""
        values = command.values
        changed = self._last is None or values.shape != self._last.shape or bool(
            np.any(np.abs(values - self._last) > self.tolerance))
        self._last = values
        if changed:
            self._changed = now
        if not command.hold:
            self._engaged = True
            return True
        if self._engaged and now - self._changed > self.settle_time:
            self._engaged = False
        return self._engaged
