"""The command mux node's logic without any transport (numpy only, like control/): twist_mux for arm commands.

Inputs arrive as decoded values with the time they arrived (the node's clock); `tick(now)` picks the source
with control.CommandMux (policy < teleop < locks, hand-over ramps) and passes it through the same
SafetyFilter the policy node uses. What this adds over the policy node's own loop:

- the policy *stream* has a timeout (`policy_timeout`): a policy node that dies or stalls loses control;
- teleop (absolute joint targets, JointJog displacements or velocities, or twists for a Servo robot);
- the e-stop latch (a lock from mux.yaml) with its reset;
- a hold while the robot's joint states are stale (joint-position robots): the filter's relative-target
  check needs the measured joints, and a silent driver is a fault.

Freshness is measured from arrival times, as twist_mux does, so a driver's clock offset cannot hold the arm.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_policy_node.control.command import ArmTarget, Command, CommandSpace
from vla_policy_node.control.config import ControlConfig, MuxConfig, SafetyConfig
from vla_policy_node.control.latency import RateMeter
from vla_policy_node.control.loop import FAULT_DISPLAY_TIME, build_command_mux
from vla_policy_node.control.safety import CLAMP_NAMES, SafetyFilter
from vla_policy_node.control.status import ClampReport, ControlStatus, Diagnostic, Level
from vla_policy_node.spec.embodiment import Embodiment

POLICY_INPUT = "policy_command"
JOINT_STATES = "joint_states"


class TeleopError(ValueError):
    """A teleop message this robot cannot follow (wrong joints, a twist for a joint-space controller)."""


@dataclass(frozen=True)
class MuxCoreConfig:
    mux: MuxConfig = field(default_factory=MuxConfig)
    policy_timeout: float = 0.5
    control_hz: float | None = None  # None: the embodiment's rates.control_hz
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    hold_on_stale_joint_states: bool = True

    def __post_init__(self) -> None:
        if not self.policy_timeout > 0:
            raise ValueError("policy_timeout must be positive")
        if self.control_hz is not None and not self.control_hz > 0:
            raise ValueError("control_hz must be positive")


class MuxCore:
    """Thread-safe: input methods and `tick` may run on different threads."""

    def __init__(self, embodiment: Embodiment, config: MuxCoreConfig | None = None) -> None:
        self.embodiment = embodiment
        self.config = config = config or MuxCoreConfig()
        self.space = CommandSpace.from_embodiment(embodiment)
        self.control_hz = config.control_hz or embodiment.rates.control_hz
        self.period = 1.0 / self.control_hz
        self.filter = SafetyFilter(embodiment, self.space, self.period, config.safety)
        self.mux = build_command_mux(embodiment, self.space, ControlConfig(mux=config.mux, safety=config.safety))
        self.tick_rate = RateMeter(200)
        self._lock = threading.Lock()
        self._n = self.space.arm_dim
        self._arm_index = {name: i for i, name in enumerate(self.space.arm_names)}
        self._state_names = embodiment.state_names
        self._policy_arm: np.ndarray | None = None
        self._policy_gripper: float | None = None
        self._policy_time = -math.inf
        self._state: np.ndarray | None = None
        self._state_time = -math.inf
        self._jog_velocity: np.ndarray | None = None
        self._jog_time = -math.inf
        self._jog_until = -math.inf
        self._last_held = True
        self._last_source = "hold"
        self._hold_reason = "not started"
        self._fault = ""
        self._fault_time = -math.inf
        self._clamp_report = ClampReport()
        self.ticks = 0
        self.policy_commands = 0
        self.teleop_commands = 0

    # -------------------------------------------------------------------------------------------- inputs
    def on_policy(self, arm: np.ndarray, now: float) -> None:
        arm = np.asarray(arm, dtype=np.float64).reshape(-1)
        if arm.shape != (self._n,):
            raise ValueError(f"policy command needs {self._n} values {self.space.arm_names}, got {arm.size}")
        with self._lock:
            self._policy_arm, self._policy_time = arm, now
            self.policy_commands += 1

    def on_policy_gripper(self, position: float) -> None:
        with self._lock:
            self._policy_gripper = float(position)

    def on_joint_state(self, names: Sequence[str], positions: np.ndarray, now: float) -> None:
        """Measured joints (any order, extra names ignored); ValueError if joints are missing or not finite."""
        index = {name: i for i, name in enumerate(names)}
        missing = [name for name in self._state_names if name not in index]
        if missing:
            raise ValueError(f"joint state lacks {missing}")
        state = np.asarray(positions, dtype=np.float64)[[index[name] for name in self._state_names]]
        if not np.all(np.isfinite(state)):
            raise ValueError("joint state has NaN/inf positions")
        with self._lock:
            self._state, self._state_time = state, now

    def on_teleop_joints(self, names: Sequence[str], positions: np.ndarray, now: float) -> None:
        """Absolute joint targets (sensor_msgs/JointState); the gripper joint is optional."""
        if self.space.kind != "joint_position":
            raise TeleopError(f"joint teleop needs a joint-space controller; this robot takes {self.space.kind}")
        index = {name: i for i, name in enumerate(names)}
        missing = [name for name in self.space.arm_names if name not in index]
        if missing:
            raise TeleopError(f"teleop joint command lacks {missing}")
        values = np.asarray(positions, dtype=np.float64)
        arm = values[[index[name] for name in self.space.arm_names]]
        gripper_name = self.space.gripper_name
        gripper = float(values[index[gripper_name]]) if gripper_name in index else None
        self._teleop(ArmTarget(arm, gripper), now)

    def on_teleop_twist(self, linear: np.ndarray, angular: np.ndarray, now: float) -> None:
        if self.space.kind != "ee_twist":
            raise TeleopError(f"twist teleop needs a servo_twist controller; this robot takes {self.space.kind}")
        self._teleop(ArmTarget(np.concatenate([linear, angular])), now)

    def on_teleop_jog(self, names: Sequence[str], displacements: np.ndarray | None,
                      velocities: np.ndarray | None, duration: float, now: float) -> None:
        """control_msgs/JointJog: displacements move the target once from the last command; velocities are
        integrated every tick while the message is younger than the teleop timeout (or its `duration`)."""
        if self.space.kind != "joint_position":
            raise TeleopError(f"joint jog needs a joint-space controller; this robot takes {self.space.kind}")
        unknown = [name for name in names if name not in self._arm_index]
        if unknown:
            raise TeleopError(f"joint jog names unknown joints {unknown}")
        columns = [self._arm_index[name] for name in names]
        with self._lock:
            if not self.filter.initialized:
                return
            if displacements is not None:
                target = self.filter.last_arm
                target[columns] += displacements
                self._jog_velocity = None
                self.mux.on_teleop(ArmTarget(target), now)
            elif velocities is not None:
                velocity = np.zeros(self._n)
                velocity[columns] = velocities
                self._jog_velocity, self._jog_time = velocity, now
                horizon = duration if duration > 0 else self.config.mux.teleop_timeout
                self._jog_until = now + min(horizon, self.config.mux.teleop_timeout)
            self.teleop_commands += 1

    def _teleop(self, target: ArmTarget, now: float) -> None:
        with self._lock:
            self._jog_velocity = None
            self.mux.on_teleop(target, now)
            self.teleop_commands += 1

    def on_lock(self, name: str, value: bool, now: float) -> None:
        with self._lock:
            self.mux.on_lock(name, value, now)

    def on_deadman(self, pressed: bool, now: float) -> None:
        with self._lock:
            self.mux.on_deadman(pressed, now)

    def reset_estop(self, now: float) -> tuple[bool, str]:
        with self._lock:
            return self.mux.reset_estop(now)

    # ---------------------------------------------------------------------------------------------- tick
    def tick(self, now: float, measured_ee_pose: np.ndarray | None = None) -> Command | None:
        """One control period; None until the robot's state is known (then every tick returns a command)."""
        with self._lock:
            self.ticks += 1
            self.tick_rate.mark(now)
            state = self._state if now - self._state_time <= self.embodiment.joint_states.max_age else None
            if not self.filter.initialized and not self._initialize(state, measured_ee_pose):
                return None
            policy_arm = self._policy_arm if now - self._policy_time <= self.config.policy_timeout else None
            if self._jog_velocity is not None and now <= self._jog_until:
                self.mux.on_teleop(ArmTarget(self.filter.last_arm + self._jog_velocity * self.period), now)
            filt = self.filter
            velocity = None if self.space.is_velocity else filt.last_velocity
            decision = self.mux.select(now, policy_arm, self._policy_gripper, filt.last_arm, filt.last_gripper,
                                       self._last_held, velocity)
            arm, reason = decision.arm, decision.reason
            blind = (self.config.hold_on_stale_joint_states and self.space.kind == "joint_position"
                     and state is None)
            if blind and arm is not None:
                arm, reason = None, "joint states stale: holding"
            ee_position = None if measured_ee_pose is None else np.asarray(measured_ee_pose, dtype=np.float64)[:3]
            out = filt.apply(arm, decision.gripper if arm is not None else None, hold=arm is None,
                             source=decision.source, measured_state=state, ee_position=ee_position)
            self._last_held = out.held
            self._last_source = "hold" if out.held else decision.source
            self._hold_reason = reason if arm is None else ""
            if out.fault:
                self._fault, self._fault_time = out.fault, now
                self._hold_reason = out.fault
            return Command(now, self.space.kind, self.space.arm_names, out.arm, out.gripper, self._last_source,
                           out.held)

    def _initialize(self, state: np.ndarray | None, ee_pose: np.ndarray | None) -> bool:
        gripper = None
        if self.space.gripper_name is not None:
            if state is None:
                self._hold_reason = "waiting for joint states"
                return False
            gripper = float(state[len(self.embodiment.joints)])
        if self.space.kind == "joint_position":
            if state is None:
                self._hold_reason = "waiting for joint states"
                return False
            self.filter.reset(state[: self._n], gripper)
        elif self.space.kind == "ee_pose":
            if ee_pose is None:
                self._hold_reason = "waiting for the end-effector pose (needs the robot description)"
                return False
            self.filter.reset(np.asarray(ee_pose, dtype=np.float64)[:6], gripper)
        else:
            self.filter.reset(np.zeros(6), gripper)
        return True

    @property
    def measured_state(self) -> np.ndarray | None:
        """The newest measured joints (state_names order), however old."""
        return self._state

    # -------------------------------------------------------------------------------------------- status
    def input_ages(self, now: float) -> dict[str, float]:
        return {POLICY_INPUT: now - self._policy_time, JOINT_STATES: now - self._state_time}

    def status(self, now: float) -> ControlStatus:
        with self._lock:
            ages = self.input_ages(now)
            limits = {POLICY_INPUT: self.config.policy_timeout, JOINT_STATES: self.embodiment.joint_states.max_age}
            stale = tuple(name for name, age in ages.items() if age > limits[name])
            fault = self._fault if now - self._fault_time <= FAULT_DISPLAY_TIME else ""
            return ControlStatus(
                stamp=now,
                active_source=self._last_source,
                paused=False,
                estop_latched=self.mux.estop_latched,
                starved=POLICY_INPUT in stale,
                fault=fault,
                instruction="",
                control_rate=self.tick_rate.rate(now),
                inference_rate=0.0,
                inference_latency_p50=math.nan,
                inference_latency_p99=math.nan,
                stale_inputs=stale,
                input_ages=tuple(ages[name] for name in stale),
                clamp_names=CLAMP_NAMES,
                clamp_counts=tuple(self.filter.counts[name] for name in CLAMP_NAMES),
                hold=self._last_held,
                hold_reasons=(self._hold_reason,) if self._last_held and self._hold_reason else (),
                active_locks=tuple(self.mux.active_locks(now)),
                all_input_ages=tuple(ages.items()),
            )

    def diagnostics(self, now: float) -> list[Diagnostic]:
        st = self.status(now)
        out = []
        rate_ok = st.control_rate >= 0.8 * self.control_hz or self.ticks < 10
        out.append(Diagnostic(
            Level.OK if rate_ok else Level.WARN, "control loop",
            f"{st.control_rate:.0f} Hz, source {st.active_source}",
            (("control_rate", f"{st.control_rate:.1f}"), ("nominal_rate", f"{self.control_hz:.1f}"),
             ("active_source", st.active_source), ("hold", str(st.hold)), ("hold_reasons", "; ".join(st.hold_reasons)),
             ("policy_commands", str(self.policy_commands)), ("teleop_commands", str(self.teleop_commands)))))
        ages = tuple((name, f"{age:.3f}") for name, age in st.all_input_ages)
        out.append(Diagnostic(Level.WARN if st.stale_inputs else Level.OK, "inputs",
                              ("stale: " + ", ".join(st.stale_inputs)) if st.stale_inputs else "all inputs fresh",
                              ages))
        out.append(self._clamp_report.diagnostic(st.clamp_names, st.clamp_counts))
        if st.estop_latched:
            level, msg = Level.ERROR, "e-stop latched: reset required"
        elif st.active_locks:
            level, msg = Level.WARN, "locked by " + ", ".join(st.active_locks)
        else:
            level, msg = Level.OK, f"source {st.active_source}"
        out.append(Diagnostic(level, "command mux", msg,
                              (("active_source", st.active_source), ("estop_latched", str(st.estop_latched)),
                               ("active_locks", ", ".join(st.active_locks)))))
        return out
