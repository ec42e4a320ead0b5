"""Teleop inputs -> command-space targets for the mux: absolute joints, JointJog (displacements or velocities),
twists for a Servo robot. A message this robot cannot follow is a TeleopError naming why.

JointJog displacements move the target once from the last command; velocities are integrated every tick
(`jog_target`) while the message is younger than the teleop timeout (or its own `duration`, if shorter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vla_policy_node.control.command import ArmTarget, CommandSpace


class TeleopError(ValueError):
    """A teleop message this robot cannot follow (wrong joints, a twist for a joint-space controller)."""


class TeleopInput:
    def __init__(self, space: CommandSpace, timeout: float, period: float) -> None:
        self.space = space
        self.timeout = timeout
        self.period = period
        self._arm_index = {name: i for i, name in enumerate(space.arm_names)}
        self._jog_velocity: np.ndarray | None = None
        self._jog_until = -math.inf
        self.received = 0

    def joints(self, names: Sequence[str], positions: np.ndarray) -> ArmTarget:
        """Absolute joint targets (sensor_msgs/JointState); the gripper joint is optional."""
        self._need("joint_position", "joint teleop")
        index = {name: i for i, name in enumerate(names)}
        missing = [name for name in self.space.arm_names if name not in index]
        if missing:
            raise TeleopError(f"teleop joint command lacks {missing}")
        values = np.asarray(positions, dtype=np.float64)
        arm = values[[index[name] for name in self.space.arm_names]]
        gripper_name = self.space.gripper_name
        gripper = float(values[index[gripper_name]]) if gripper_name in index else None
        return self.absolute(ArmTarget(arm, gripper))

    def twist(self, linear: np.ndarray, angular: np.ndarray) -> ArmTarget:
        if self.space.kind != "ee_twist":
            raise TeleopError(f"twist teleop needs a servo_twist controller; this robot takes {self.space.kind}")
        return self.absolute(ArmTarget(np.concatenate([linear, angular])))

    def jog(self, names: Sequence[str], displacements: np.ndarray | None, velocities: np.ndarray | None,
            duration: float, now: float, last_arm: np.ndarray | None) -> ArmTarget | None:
        """A displacement: the target (last command + it). Velocities: remembered for `jog_target`; None.
        Before the first command (`last_arm` None) a valid jog is ignored: there is nothing to move from."""
        self._need("joint_position", "joint jog")
        unknown = [name for name in names if name not in self._arm_index]
        if unknown:
            raise TeleopError(f"joint jog names unknown joints {unknown}")
        if last_arm is None:
            return None
        columns = [self._arm_index[name] for name in names]
        self.received += 1
        if displacements is not None:
            target = np.array(last_arm, dtype=np.float64)
            target[columns] += displacements
            self._jog_velocity = None
            return ArmTarget(target)
        if velocities is not None:
            velocity = np.zeros(self.space.arm_dim)
            velocity[columns] = velocities
            self._jog_velocity = velocity
            horizon = duration if duration > 0 else self.timeout
            self._jog_until = now + min(horizon, self.timeout)
        return None

    def jogging(self, now: float) -> bool:
        """A jog velocity is active (cheap: the tick asks every period)."""
        return self._jog_velocity is not None and now <= self._jog_until

    def jog_target(self, now: float, last_arm: np.ndarray) -> ArmTarget | None:
        """This tick's target while a jog velocity is active: one period's travel from the last command."""
        if self._jog_velocity is None or now > self._jog_until:
            return None
        return ArmTarget(last_arm + self._jog_velocity * self.period)

    def rebase(self, shift: float) -> None:
        """The clock jumped by `shift`: keep the jog's remaining time."""
        self._jog_until += shift

    def absolute(self, target: ArmTarget) -> ArmTarget:
        """A target that replaces any jog in progress (counted)."""
        self._jog_velocity = None
        self.received += 1
        return target

    def _need(self, kind: str, what: str) -> None:
        if self.space.kind != kind:
            raise TeleopError(f"{what} needs a joint-space controller; this robot takes {self.space.kind}")
