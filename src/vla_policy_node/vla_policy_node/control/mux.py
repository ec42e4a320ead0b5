"""Command mux for arm commands, twist_mux's design: sources with priorities and timeouts, and locks.

Sources: policy (lowest) and teleop. A source is a candidate while it is fresh (teleop: younger than its
timeout, and the deadman held when required; policy: the executor has an action for now and it is not
paused). Locks block every source with priority <= theirs; a lock is active while its last value is true or
its heartbeat is older than its timeout (a lock never heard from counts as expired, as in twist_mux). A
latching lock (e-stop) stays engaged until `reset_estop`. With no candidate the mux asks for the safe state:
hold.

Hand-back (`MuxConfig.handback`): by default, once teleop has had control and lets go (or loses it to a lock),
the policy is not a candidate again until an explicit `resume_policy` (a service, or a press on a pedal/button
topic: `on_resume_signal`); "auto" hands back at once, as twist_mux does. An arm that starts moving again by
itself half a second after the operator let go is a surprise.

Hand-over is a ramp, not a jump: when the source changes (or after a hold), the command blends from the
last command (carried on at its velocity) into the new source's target with a smootherstep (quintic) weight
whose duration keeps the offset's speed, acceleration and jerk under `handover_speed_fraction` of each
joint's limits. Position and velocity are continuous at the switch. The new source is in charge from its
first tick; it just starts where the robot is, moving as it was moving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from vla_policy_node.control.command import ArmTarget, CommandSpace
from vla_policy_node.control.config import ControlConfig, LockSpec, MuxConfig
from vla_policy_node.control.small_arrays import all_finite
from vla_policy_node.spec.embodiment import Embodiment

AWAITING_RESUME = "teleop released: the policy waits for resume (set_paused false, or press the resume button)"
RESUME_REPEAT = 0.5  # a resume signal reading true again after this much silence counts as a new press (s)


class MuxDecision(NamedTuple):
    """source: "policy", "teleop" or "hold"; arm/gripper: the target (None for hold); reason: why hold."""

    source: str
    arm: np.ndarray | None
    gripper: float | None
    reason: str


@dataclass
class _Lock:
    spec: LockSpec
    value: bool = False
    stamp: float = -math.inf
    seen: bool = False
    latched: bool = False

    def engaged(self, now: float) -> bool:
        expired = self.spec.timeout > 0 and now - self.stamp > self.spec.timeout
        return self.value or expired


@dataclass
class _Ramp:
    start: float
    duration: float
    arm: np.ndarray  # command when the ramp started
    velocity: np.ndarray  # and its velocity: the ramp leaves the old motion smoothly
    stop_time: np.ndarray  # when the old motion, braking at `decel`, comes to rest
    decel: np.ndarray | None  # None: the old command is taken as standing still
    gripper: float | None


class CommandMux:
    def __init__(
        self,
        config: MuxConfig,
        space: CommandSpace,
        arm_speed: np.ndarray,
        gripper_speed: float | None,
        arm_accel: np.ndarray | None = None,
        arm_jerk: np.ndarray | None = None,
        arm_limits: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """arm_speed/accel/jerk: per-dim limits (units/s, /s^2, /s^3) that a hand-over ramp stays within
        (times handover_speed_fraction); gripper_speed likewise. Accel and jerk are optional (twists).
        arm_limits: (lower, upper) positions; a ramp's length is measured to the target clamped into them (the
        filter clamps it there anyway), so one absurd value cannot stretch a hand-over to hours."""
        self.config = config
        self.space = space
        frac = config.handover_speed_fraction
        self._arm_rate = np.asarray(arm_speed, dtype=np.float64) * frac
        self._arm_accel = None if arm_accel is None else np.asarray(arm_accel, dtype=np.float64) * frac
        self._arm_jerk = None if arm_jerk is None else np.asarray(arm_jerk, dtype=np.float64) * frac
        self._arm_limits = arm_limits
        self._gripper_rate = (gripper_speed or 0.0) * frac
        self._locks = {spec.name: _Lock(spec) for spec in config.locks}
        self._teleop: ArmTarget | None = None
        self._teleop_stamp = -math.inf
        self._deadman = False
        self._deadman_stamp = -math.inf
        self._paused = False
        self._awaiting_resume = False
        self._resume_pressed = False
        self._resume_stamp = -math.inf
        self._source = "hold"
        self._ramp: _Ramp | None = None
        self._ramp_pending = False
        self._out = np.zeros(space.arm_dim)
        self.switches = 0

    # --------------------------------------------------------------------------------------------- inputs
    def on_teleop(self, target: ArmTarget, now: float) -> None:
        if target.arm.shape != (self.space.arm_dim,):
            raise ValueError(f"teleop target needs {self.space.arm_dim} values {self.space.arm_names}")
        self._teleop = target
        self._teleop_stamp = now

    def on_deadman(self, pressed: bool, now: float) -> None:
        self._deadman = bool(pressed)
        self._deadman_stamp = now

    def on_lock(self, name: str, value: bool, now: float) -> None:
        lock = self._locks.get(name)
        if lock is None:
            raise KeyError(f"unknown lock {name!r}; configured: {sorted(self._locks)}")
        lock.value, lock.stamp, lock.seen = bool(value), now, True
        if lock.spec.latching and lock.value:
            lock.latched = True

    def reset_estop(self, now: float) -> tuple[bool, str]:
        """Release latched locks that are no longer engaged; (success, message) for the service reply."""
        latched = [lock for lock in self._locks.values() if lock.latched]
        if not latched:
            return True, "no e-stop latched"
        still = [lock.spec.name for lock in latched if lock.engaged(now)]
        if still:
            return False, f"cannot reset: {', '.join(still)} still engaged (true or heartbeat lost)"
        for lock in latched:
            lock.latched = False
        return True, f"reset {', '.join(lock.spec.name for lock in latched)}"

    def set_paused(self, paused: bool) -> None:
        self._paused = bool(paused)

    def resume_policy(self) -> None:
        """The explicit hand-back after a teleop takeover (and the end of a pause)."""
        self._paused = False
        self._awaiting_resume = False

    def on_resume_signal(self, pressed: bool, now: float) -> bool:
        """A pedal or button (std_msgs/Bool): a press resumes the policy. A press is true after false, or true
        after `RESUME_REPEAT` of silence (a button that only publishes presses); a pedal held down (true
        repeated) is one press, so it cannot hand back by itself after a later takeover. True if it resumed."""
        press = bool(pressed) and (not self._resume_pressed or now - self._resume_stamp > RESUME_REPEAT)
        self._resume_pressed, self._resume_stamp = bool(pressed), now
        if press:
            self.resume_policy()
        return press

    def rebase(self, shift: float) -> None:
        """The node's clock jumped by `shift`: every arrival time moves with it, so ages stay what really passed."""
        self._teleop_stamp += shift
        self._deadman_stamp += shift
        self._resume_stamp += shift
        for lock in self._locks.values():
            lock.stamp += shift
        if self._ramp is not None:
            self._ramp = replace(self._ramp, start=self._ramp.start + shift)

    # --------------------------------------------------------------------------------------------- state
    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def awaiting_resume(self) -> bool:
        return self._awaiting_resume

    @property
    def source(self) -> str:
        return self._source

    @property
    def estop_latched(self) -> bool:
        return any(lock.latched for lock in self._locks.values())

    @property
    def lock_names(self) -> tuple[str, ...]:
        return tuple(self._locks)

    def active_locks(self, now: float) -> list[str]:
        """Locks blocking something now (engaged or latched); latches heartbeat losses of latching locks."""
        active = []
        for lock in self._locks.values():
            engaged = lock.engaged(now)
            if engaged and lock.spec.latching and lock.seen:
                lock.latched = True
            if engaged or lock.latched:
                active.append(lock.spec.name)
        return active

    def teleop_available(self, now: float) -> bool:
        if self._teleop is None or now - self._teleop_stamp > self.config.teleop_timeout:
            return False
        if self.config.require_deadman:
            return self._deadman and now - self._deadman_stamp <= self.config.deadman_timeout
        return True

    # -------------------------------------------------------------------------------------------- select
    def select(
        self,
        now: float,
        policy_arm: np.ndarray | None,
        policy_gripper: float | None,
        current_arm: np.ndarray,
        current_gripper: float | None,
        was_held: bool,
        current_velocity: np.ndarray | None = None,
    ) -> MuxDecision:
        """Pick the source for this tick and its (hand-over ramped) target. current_*: the last command sent
        and its velocity (None: at rest), where a hand-over starts from."""
        level = -math.inf
        locked_by = ""
        for lock in self._locks.values():
            engaged = lock.engaged(now)
            if engaged and lock.spec.latching and lock.seen:
                lock.latched = True
            if (engaged or lock.latched) and lock.spec.priority > level:
                level, locked_by = lock.spec.priority, lock.spec.name
        source, reason = "hold", ""
        arm: np.ndarray | None = None
        gripper: float | None = None
        if self.config.teleop_priority > level and self.teleop_available(now):
            assert self._teleop is not None
            source, arm, gripper = "teleop", self._teleop.arm, self._teleop.gripper
        elif (self.config.policy_priority > level and not self._paused and not self._awaiting_resume
              and policy_arm is not None):
            source, arm, gripper = "policy", policy_arm, policy_gripper
        elif locked_by:
            reason = f"locked by {locked_by}"
        elif self._paused:
            reason = "paused"
        elif self._awaiting_resume:
            reason = AWAITING_RESUME
        else:
            reason = "no command source"
        if self._source == "teleop" and source != "teleop" and self.config.handback == "resume":
            self._awaiting_resume = True
            if source == "policy":  # teleop timed out this very tick: the policy does not get it back
                source, arm, gripper, reason = "hold", None, None, AWAITING_RESUME
        if source != self._source:
            self.switches += 1
            self._ramp_pending = True
            self._ramp = None
        self._source = source
        if arm is None:
            self._ramp = None
            return MuxDecision("hold", None, None, reason)
        if was_held:
            self._ramp_pending = True
            self._ramp = None
        if gripper is None:
            gripper = current_gripper
        return self._ramped(now, source, arm, gripper, current_arm, current_gripper, current_velocity)

    def _ramped(
        self,
        now: float,
        source: str,
        arm: np.ndarray,
        gripper: float | None,
        current_arm: np.ndarray,
        current_gripper: float | None,
        current_velocity: np.ndarray | None,
    ) -> MuxDecision:
        finite = all_finite(arm) and (gripper is None or math.isfinite(gripper))
        if self._ramp_pending and finite:
            self._ramp_pending = False
            self._ramp = self._start_ramp(now, arm, gripper, current_arm, current_gripper, current_velocity)
        ramp = self._ramp
        if ramp is None or not finite:
            return MuxDecision(source, arm, gripper, "")
        tau = (now - ramp.start) / ramp.duration
        if tau >= 1.0:
            self._ramp = None
            return MuxDecision(source, arm, gripper, "")
        # Blend from "the old command braking to a stop" to the new target with 1 - smootherstep:
        # position and velocity are continuous at the start, and the weight leaves with zero slope and
        # curvature at both ends.
        fade = 1.0 - tau * tau * tau * (10.0 + tau * (6.0 * tau - 15.0))
        out = self._old_motion(ramp, now - ramp.start)
        out -= arm
        out *= fade
        out += arm
        if gripper is not None and ramp.gripper is not None:
            gripper = gripper + (ramp.gripper - gripper) * fade
        return MuxDecision(source, out.copy(), gripper, "")

    def _old_motion(self, ramp: _Ramp, elapsed: float) -> np.ndarray:
        """Where the old command would be `elapsed` after the switch, braking at the hand-over deceleration."""
        if ramp.decel is None:
            np.copyto(self._out, ramp.arm)
            return self._out
        t = np.minimum(elapsed, ramp.stop_time)
        out = np.multiply(ramp.velocity, t, out=self._out)
        out -= 0.5 * np.sign(ramp.velocity) * ramp.decel * t * t
        out += ramp.arm
        return out

    def _start_ramp(
        self,
        now: float,
        arm: np.ndarray,
        gripper: float | None,
        current_arm: np.ndarray,
        current_gripper: float | None,
        current_velocity: np.ndarray | None,
    ) -> _Ramp | None:
        start = np.array(current_arm, dtype=np.float64)
        velocity = np.zeros_like(start)
        if current_velocity is not None and self._arm_accel is not None:
            velocity = np.array(current_velocity, dtype=np.float64)
        decel = self._arm_accel if velocity.any() else None
        stop_time = np.abs(velocity) / decel if decel is not None else np.zeros_like(start)
        # the gap the blend must close: the offset plus the old motion's braking distance
        goal = arm if self._arm_limits is None else np.clip(arm, *self._arm_limits)
        size = np.abs(start - goal) + (np.abs(velocity) * stop_time * 0.5)
        g_off = abs(current_gripper - gripper) if gripper is not None and current_gripper is not None else 0.0
        if not size.any() and g_off == 0.0:
            return None
        # smootherstep over D: peak speed 1.875 |o| / D, acceleration 5.774 |o| / D^2, jerk 60 |o| / D^3
        # 4x the old motion's stopping time keeps the blend's own deceleration near the hand-over budget
        duration = max(float(np.max(1.875 * size / self._arm_rate)), 4.0 * float(np.max(stop_time)))
        if self._arm_accel is not None:
            duration = max(duration, float(np.max(np.sqrt(5.7735 * size / self._arm_accel))))
        if self._arm_jerk is not None:
            duration = max(duration, float(np.max(np.cbrt(60.0 * size / self._arm_jerk))))
        if self._gripper_rate > 0:
            duration = max(duration, 1.875 * g_off / self._gripper_rate)
        duration = max(duration, self.config.min_handover_time)
        return _Ramp(now, duration, start, velocity, stop_time, decel, current_gripper)


def build_command_mux(embodiment: Embodiment, space: CommandSpace, config: ControlConfig) -> CommandMux:
    """The CommandMux for `embodiment`, with hand-over ramps bounded by its joint (or Cartesian) limits."""
    if space.kind == "joint_position":
        rates = np.array([j.max_velocity for j in embodiment.joints])
    else:
        aspace = embodiment.action_space
        lin, ang = aspace.max_linear_speed, aspace.max_angular_speed
        if space.kind == "ee_twist":  # the offset is a velocity: ramp it over twist_ramp_time
            ramp = config.mux.twist_ramp_time
            lin, ang = lin / ramp, ang / ramp
        rates = np.array([lin] * 3 + [ang] * 3)
    accel = jerk = limits = None
    if space.kind == "joint_position":
        limits = (np.array([j.lower for j in embodiment.joints]), np.array([j.upper for j in embodiment.joints]))
        accel = np.array([j.max_acceleration for j in embodiment.joints])
        if config.safety.enforce_jerk:
            jerk = np.array([j.max_jerk or np.inf for j in embodiment.joints])
    gripper_rate = embodiment.gripper.max_velocity if embodiment.gripper else None
    return CommandMux(config.mux, space, rates, gripper_rate, accel, jerk, limits)
