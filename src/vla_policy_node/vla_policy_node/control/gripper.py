"""When a gripper command is worth sending (numpy-free; the node's gripper outputs call it)."""

from __future__ import annotations

import math

from vla_policy_node.spec.embodiment import GripperSpec


class GripperGate:
    """Decides when a gripper command is worth sending: only on change.

    A value is sent when it differs from the last one sent and either `min_interval` has passed since then
    or the value has settled (equal to the previous offer), so the final position of a ramp is always sent
    and a slow action server is not flooded with goals while the command ramps."""

    def __init__(self, min_interval: float = 0.0, tolerance: float = 1e-9) -> None:
        self.min_interval = float(min_interval)
        self.tolerance = float(tolerance)
        self.last_sent: float | None = None
        self._last_time = -math.inf
        self._previous: float | None = None

    def offer(self, value: float, now: float) -> bool:
        previous, self._previous = self._previous, value
        if self.last_sent is not None and abs(value - self.last_sent) <= self.tolerance:
            return False
        settled = previous is not None and abs(value - previous) <= self.tolerance
        elapsed = now - self._last_time  # negative after the clock jumped back: no interval to wait out
        if self.last_sent is not None and 0.0 <= elapsed < self.min_interval and not settled:
            return False
        self.last_sent, self._last_time = value, now
        return True

    def reset(self) -> None:
        """Forget what was sent (e.g. the output changed): the next offer is sent."""
        self.last_sent = None
        self._previous = None


def gripper_gate_for(gripper: GripperSpec | None) -> GripperGate:
    """Topics take every change; an action server gets at most ~10 goals/s plus the settled value."""
    if gripper is not None and gripper.interface == "gripper_action":
        return GripperGate(min_interval=0.1, tolerance=1e-4 * (gripper.upper - gripper.lower))
    return GripperGate()
