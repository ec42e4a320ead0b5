"""The safety filter: the last word on every command, whatever its source.

Joint commands: position limits (shrunk by the margin), velocity, acceleration and (best effort) jerk, all
derived from consecutive *sent* commands and the nominal control period, plus LeRobot's max_relative_target.
The position limit is braking-aware (see braking.py): velocity is capped so the joint can always still stop
inside the limit at max deceleration, so position, velocity and acceleration hold together for any input.

The limits are applied as nested clamps on the step velocity, lowest priority first:
  jerk -> no-overshoot approach -> relative target -> braking position -> velocity/acceleration.
Clamping a value that lies in one interval to an interval that intersects it lands in the intersection, so
each clamp keeps all earlier ones whenever they are jointly feasible, and the hard ones (last) always hold.

A clamp restricts motion towards a target; it never creates motion of its own. The jerk clamp's result stays
between standing still and the step asked for: it shapes how motion starts and speeds up, never delays a stop
(a stop it delayed would carry the command past the target, and a second filter following this one's stream,
the command mux, would pass that stream's stop). Off the target, the approach aims short of where the target
would stop if it braked now at max deceleration, so a filter following another's stream stops with it, even
when a message came late (the target's speed is then the smaller of its last two steps). The relative-target interval
(around the *measured* position) always admits standing still, so a reading far from the command (a lagging
arm, or a wrong reading that got past the plausibility check) can stop motion away from it but never pull
the command towards it; and a command outside the position limits (anchored there at start) holds where it
is, moving back inside only while a source asks for motion.

Cartesian commands: workspace box and linear/angular speed (ee_pose: step towards the target; ee_twist:
velocity norms, and velocities that would leave the box). Gripper: range, then speed.
Non-finite values anywhere: hold and fault. Every clamp is counted once per tick by name.

Per-joint arithmetic is plain Python floats: for <= ~10 joints it is faster than numpy's per-call overhead. The
joint step itself lives in joint_limits.py, which setup_env.sh compiles with mypyc (control/native.py runs its
source wherever that build is missing or stale).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from vla_policy_node.control.braking import stopping_distance
from vla_policy_node.control.command import CommandSpace
from vla_policy_node.control.config import SafetyConfig
from vla_policy_node.control.joint_limits import limit_joint_step
from vla_policy_node.kinematics.rotation import quat_from_rpy, rotate_towards, rpy_from_quat
from vla_policy_node.spec.embodiment import ConfigError, Embodiment

CLAMP_NAMES = (
    "position",
    "velocity",
    "acceleration",
    "jerk",
    "jerk_yielded",
    "relative_target",
    "gripper_range",
    "gripper_speed",
    "workspace",
    "workspace_unverified",
    "linear_speed",
    "angular_speed",
    "nonfinite",
)


class FilterOutput(NamedTuple):
    arm: np.ndarray
    gripper: float | None
    held: bool
    fault: str


class SafetyFilter:
    """Stateful: remembers the last two sent commands. Call `reset` with the robot's state before the first
    `apply` (the robot is assumed at rest then)."""

    def __init__(self, embodiment: Embodiment, space: CommandSpace, period: float, config: SafetyConfig) -> None:
        if not period > 0:
            raise ValueError("control period must be positive")
        self.space = space
        self.period = float(period)
        self.config = config
        self._inv_t = 1.0 / self.period
        margin = embodiment.safety.position_margin
        # floats throughout (a YAML limit may be an int): the per-joint step takes lists of floats
        self._lo = [float(j.lower) + margin for j in embodiment.joints]
        self._hi = [float(j.upper) - margin for j in embodiment.joints]
        for spec, lo, hi in zip(embodiment.joints, self._lo, self._hi, strict=True):
            if not lo < hi:
                raise ConfigError(f"safety.position_margin leaves no range for joint {spec.name}")
        self._vmax = [float(j.max_velocity) for j in embodiment.joints]
        self._amax = [float(j.max_acceleration) for j in embodiment.joints]
        self._a_t = [a * self.period for a in self._amax]
        self._a_tol = [a * (1.0 + 1e-9) for a in self._a_t]  # a step change within acceleration
        jerk = [j.max_jerk if (config.enforce_jerk and j.max_jerk) else math.inf for j in embodiment.joints]
        self._j_t = [jk * self.period for jk in jerk]
        step = embodiment.safety.max_relative_target
        self._step = math.inf if step is None else float(step)
        if step is not None and not config.relative_target_from_measured:
            self._vmax = [min(v, step * self._inv_t) for v in self._vmax]
        # Beyond this distance from a limit the braking bound cannot bind (it exceeds max velocity).
        self._brake_zone = [
            stopping_distance(v, a, self.period) for v, a in zip(self._vmax, self._amax, strict=True)
        ]
        self.lower = np.array(self._lo)
        self.upper = np.array(self._hi)
        self.max_velocity = np.array(self._vmax)
        self.max_acceleration = np.array(self._amax)
        aspace = embodiment.action_space
        self._ws_lo = list(aspace.workspace_min)
        self._ws_hi = list(aspace.workspace_max)
        self._lin = aspace.max_linear_speed
        self._ang = aspace.max_angular_speed
        self._base_speeds = (list(self._vmax), self._lin, self._ang)
        self.velocity_scale = 1.0
        g = embodiment.gripper
        self._g_lo = g.lower if g else 0.0
        self._g_hi = g.upper if g else 0.0
        self._g_step = g.max_velocity * self.period if g else 0.0
        self.counts: dict[str, int] = dict.fromkeys(CLAMP_NAMES, 0)
        self.faults = 0
        self.last_fault = ""
        n = space.arm_dim
        self._q = [0.0] * n
        self._v = [0.0] * n
        self._a = [0.0] * n
        self._prev_target = [math.nan] * n
        self._last_step = [0.0] * n
        self._on_target = [False] * n
        self._gripper: float | None = None
        self.initialized = False

    # --------------------------------------------------------------------------------------------- state
    def reset(self, arm: np.ndarray, gripper: float | None) -> None:
        """Start from `arm` (command space) at rest, e.g. the measured joint positions."""
        start = [float(x) for x in np.asarray(arm, dtype=np.float64).reshape(-1)]
        if len(start) != self.space.arm_dim or not all(math.isfinite(x) for x in start):
            raise ValueError(f"reset needs {self.space.arm_dim} finite values, got {start}")
        n = len(start)
        self._q = start
        self._v = [0.0] * n
        self._a = [0.0] * n
        self._prev_target = [math.nan] * n
        self._last_step = [0.0] * n
        self._on_target = [False] * n
        if self.space.gripper_name is not None:
            g = float(gripper) if gripper is not None and math.isfinite(gripper) else self._g_lo
            self._gripper = min(max(g, self._g_lo), self._g_hi)  # every gripper command in range, the first too
        self.initialized = True

    @property
    def last_arm(self) -> np.ndarray:
        """The last command sent (command space)."""
        return np.array(self._q)

    @property
    def last_gripper(self) -> float | None:
        return self._gripper

    @property
    def last_velocity(self) -> np.ndarray:
        return np.array(self._v)

    def set_velocity_scale(self, scale: float) -> None:
        """Tighten the speed limits while running: joint max velocities and the Cartesian linear/angular speeds
        become `scale` times the robot's. Only ever tighter (ValueError for a larger scale than the current one:
        loosening needs a new filter, i.e. a restart). A joint moving faster than its new limit is braked at its
        max acceleration (the velocity clamp allows that), and the braking zones stay those of the robot's own
        speeds, so the position limits keep holding on the way down."""
        scale = float(scale)
        if not (0.0 < scale <= 1.0) or not math.isfinite(scale):
            raise ValueError(f"velocity scale must be in (0, 1], got {scale}")
        if scale > self.velocity_scale + 1e-12:
            raise ValueError(f"velocity scale can only decrease while running ({self.velocity_scale} -> {scale})")
        vmax, lin, ang = self._base_speeds
        self._vmax = [v * scale for v in vmax]
        self._lin, self._ang = lin * scale, ang * scale
        self.max_velocity = np.array(self._vmax)
        self.velocity_scale = scale

    def hold_target(self) -> np.ndarray:
        """What 'hold' means in this command space: the last position, or zero velocity for twists."""
        return np.zeros(len(self._q)) if self.space.is_velocity else np.array(self._q)

    # ---------------------------------------------------------------------------------------------- apply
    def apply(
        self,
        arm: np.ndarray | None,
        gripper: float | None,
        hold: bool = False,
        source: str = "",
        measured_state: np.ndarray | None = None,
        ee_position: np.ndarray | None = None,
    ) -> FilterOutput:
        """Filter one target (None or hold=True: the safe state) and return what is actually sent."""
        if not self.initialized:
            raise RuntimeError("SafetyFilter.apply before reset")
        fault = ""
        target: list[float] | None = None
        if not hold and arm is not None:
            values: list[float] = arm.tolist()
            target = values
            finite = len(values) == len(self._q) and all(map(math.isfinite, values))
            if gripper is not None and not math.isfinite(gripper):
                finite = False
            if not finite:
                self.counts["nonfinite"] += 1
                self.faults += 1
                fault = f"non-finite or malformed command from {source or 'unknown source'}: held"
                self.last_fault = fault
                target = None
        held = target is None
        flags: set[str] = set()
        kind = self.space.kind
        if kind == "joint_position":
            measured = None
            if measured_state is not None and self._step != math.inf and self.config.relative_target_from_measured:
                measured = np.asarray(measured_state, dtype=np.float64)[: len(self._q)].tolist()
            self._joint_step(target, measured, flags)
        elif kind == "ee_pose":
            self._pose_step(target, flags)
        else:
            self._twist_step(target, ee_position, flags)
        g_out = self._gripper_step(None if held else gripper, flags)
        if not held:
            for name in flags:
                self.counts[name] += 1
        return FilterOutput(np.array(self._q), g_out, held, fault)

    # ----------------------------------------------------------------------------------------- joints
    def _joint_step(self, target: list[float] | None, measured: list[float] | None, flags: set[str]) -> None:
        limit_joint_step(target, measured, flags, self._q, self._v, self._a, self._prev_target, self._last_step,
                         self._on_target, self._lo, self._hi, self._vmax, self._amax, self._a_t, self._a_tol,
                         self._j_t, self._brake_zone, self.period, self._step)

    # -------------------------------------------------------------------------------------- Cartesian
    def _pose_step(self, target: list[float] | None, flags: set[str]) -> None:
        if target is None:
            return  # hold the last pose
        last = self._q
        p = [min(max(target[i], self._ws_lo[i]), self._ws_hi[i]) for i in range(3)]
        if p != target[:3]:
            flags.add("workspace")
        delta = [p[i] - last[i] for i in range(3)]
        dist = math.sqrt(sum(d * d for d in delta))
        max_dist = self._lin * self.period
        if dist > max_dist:
            scale = max_dist / dist
            p = [last[i] + delta[i] * scale for i in range(3)]
            flags.add("linear_speed")
        q_last = quat_from_rpy(last[3], last[4], last[5])
        q_goal = quat_from_rpy(target[3], target[4], target[5])
        q_new, limited = rotate_towards(q_last, q_goal, self._ang * self.period)
        if limited:
            flags.add("angular_speed")
            rpy = list(rpy_from_quat(q_new))
        else:
            rpy = target[3:6]
        self._q = p + rpy

    def _twist_step(self, target: list[float] | None, ee_position: np.ndarray | None, flags: set[str]) -> None:
        if target is None:
            self._q = [0.0] * 6  # holding a velocity command means standing still
            return
        lin, ang = target[:3], target[3:6]
        speed = math.sqrt(sum(x * x for x in lin))
        if speed > self._lin:
            lin = [x * self._lin / speed for x in lin]
            flags.add("linear_speed")
        rate = math.sqrt(sum(x * x for x in ang))
        if rate > self._ang:
            ang = [x * self._ang / rate for x in ang]
            flags.add("angular_speed")
        if ee_position is None:
            flags.add("workspace_unverified")
        else:
            pos = np.asarray(ee_position, dtype=np.float64).tolist()
            for i in range(3):
                up = max((self._ws_hi[i] - pos[i]) * self._inv_t, 0.0)
                down = min((self._ws_lo[i] - pos[i]) * self._inv_t, 0.0)
                if lin[i] > up:
                    lin[i] = up
                    flags.add("workspace")
                elif lin[i] < down:
                    lin[i] = down
                    flags.add("workspace")
        self._q = list(lin) + list(ang)

    # ----------------------------------------------------------------------------------------- gripper
    def _gripper_step(self, gripper: float | None, flags: set[str]) -> float | None:
        last = self._gripper
        if last is None:
            return None
        if gripper is None:
            goal = min(max(last, self._g_lo), self._g_hi)
        else:
            goal = min(max(gripper, self._g_lo), self._g_hi)
            if goal != gripper:
                flags.add("gripper_range")
        if goal > last + self._g_step:
            goal = last + self._g_step
            if gripper is not None:
                flags.add("gripper_speed")
        elif goal < last - self._g_step:
            goal = last - self._g_step
            if gripper is not None:
                flags.add("gripper_speed")
        self._gripper = goal
        return goal
