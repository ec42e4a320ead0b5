"""Tunables of the control runtime that are not properties of the robot (those live in the Embodiment).

Every value has a default that works for the built-in robots, so `ControlConfig()` is a usable start; each
dataclass validates itself on construction so a bad value fails at startup, not on the first tick.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

from vla_policy_node.spec.deployment import Strategy

SyncMode = Literal["approximate", "image_trigger"]
Interpolation = Literal["linear", "cubic"]
LatencyQuantile = Literal["p50", "p99"]
Handback = Literal["resume", "auto"]

# Encodings a ROS image may have been decoded *from* for the sync to accept the RGB array it carries.
# Depth ("16UC1", "32FC1"), bayer and YUV streams are not colour views of the scene the policy was trained on.
DEFAULT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC3", "jpeg", "png")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class SyncConfig:
    """How camera images and joint states are paired into one Observation.

    approximate: message_filters' ApproximateTime over all cameras + joint states (queue_size per input,
        members of a set lie within `slop` seconds of each other).
    image_trigger: every image of `trigger_camera` (default: the first camera) makes a set with the joint state
        nearest before it and the other cameras' images nearest to it, each within `slop`.
    future_tolerance: a message stamped more than this ahead of the node's clock is rejected (counted as
        future_stamp) instead of becoming the newest stamp that later, correct ones would have to beat.
    """

    mode: SyncMode = "approximate"
    queue_size: int = 10
    slop: float = 0.05
    trigger_camera: str | None = None
    accepted_encodings: tuple[str, ...] = DEFAULT_ENCODINGS
    joint_history: int = 256
    future_tolerance: float = 0.1

    def __post_init__(self) -> None:
        _check(self.queue_size >= 1, "sync.queue_size must be >= 1")
        _check(self.slop > 0 and math.isfinite(self.slop), "sync.slop must be positive")
        _check(self.joint_history >= 1, "sync.joint_history must be >= 1")
        _check(self.future_tolerance >= 0 and math.isfinite(self.future_tolerance),
               "sync.future_tolerance must be >= 0")


@dataclass(frozen=True)
class ExecutorConfig:
    """How chunks become a continuous plan.

    execute_steps: synchronous mode executes this many actions of a chunk, then re-plans.
    ensemble_decay: ACT's m in w_i = exp(-m * i), i = 0 for the oldest chunk covering a time.
    blend_steps: after the frozen part, weights decay from 1 to 0 over this many action steps (RTC), and every
        merge blends from the running plan into the new one over it, so a new chunk never starts with a jump.
    interpolation: between waypoints; "cubic" (Catmull-Rom) keeps velocity continuous, which keeps a
        250-500 Hz command stream from hitting the acceleration limit at every waypoint.
    latency_quantile: which measured latency compensates delay when building an RTC prefix.
    inference_timeout: the inference deadline: an inference running longer than this holds the policy (and the
        status says so), and the chunk it finally returns is dropped (planned from an observation that old).
    """

    strategy: Strategy = "rtc"
    execute_steps: int = 8
    ensemble_decay: float = 0.01
    blend_steps: int = 4
    interpolation: Interpolation = "cubic"
    latency_quantile: LatencyQuantile = "p99"
    latency_window: int = 100
    default_horizon: int = 16
    inference_timeout: float = 1.0

    def __post_init__(self) -> None:
        _check(self.execute_steps >= 1, "executor.execute_steps must be >= 1")
        _check(self.ensemble_decay >= 0 and math.isfinite(self.ensemble_decay), "executor.ensemble_decay must be >= 0")
        _check(self.blend_steps >= 0, "executor.blend_steps must be >= 0")
        _check(self.latency_window >= 2, "executor.latency_window must be >= 2")
        _check(self.default_horizon >= 1, "executor.default_horizon must be >= 1")
        _check(self.inference_timeout > 0, "executor.inference_timeout must be positive")


@dataclass(frozen=True)
class LockSpec:
    """A twist_mux-style lock: active while its last value is true or its heartbeat is older than `timeout`.

    It blocks every source whose priority is <= `priority`. A `latching` lock (the e-stop) stays engaged after
    it activates until `reset_estop` is called while it reads false with a fresh heartbeat.
    timeout <= 0 disables the heartbeat (the lock is then active only while true).
    """

    name: str
    priority: int = 255
    timeout: float = 0.0
    latching: bool = False

    def __post_init__(self) -> None:
        _check(self.name != "", "lock name must not be empty")
        _check(math.isfinite(self.timeout), f"lock {self.name}: timeout must be finite")


@dataclass(frozen=True)
class MuxConfig:
    """Priorities and timeouts of the command sources (policy < teleop < locks).

    teleop_timeout: teleop is a candidate while its last message is younger than this.
    require_deadman: teleop also needs a deadman input that reads true and is younger than deadman_timeout.
    handover_speed_fraction: hand-over ramps move the offset between sources at most at this fraction of each
        joint's max velocity (the safety filter after the mux enforces the hard limits).
    twist_ramp_time: for velocity (ee_delta) commands, the time a hand-over from zero to full speed takes.
    handback: after teleop lets go, "resume": the policy waits for an explicit resume (a service or a pedal);
        "auto": it takes over again at once (twist_mux).
    """

    policy_priority: int = 10
    teleop_priority: int = 100
    teleop_timeout: float = 0.5
    require_deadman: bool = False
    deadman_timeout: float = 0.25
    locks: tuple[LockSpec, ...] = (LockSpec("estop", priority=255, latching=True),)
    handover_speed_fraction: float = 0.5
    min_handover_time: float = 0.05
    twist_ramp_time: float = 0.5
    handback: Handback = "resume"

    def __post_init__(self) -> None:
        _check(self.policy_priority < self.teleop_priority, "mux: policy priority must be below teleop priority")
        _check(self.handback in ("resume", "auto"), f"mux.handback must be resume or auto, got {self.handback!r}")
        _check(self.teleop_timeout > 0, "mux.teleop_timeout must be positive")
        _check(self.deadman_timeout > 0, "mux.deadman_timeout must be positive")
        _check(0 < self.handover_speed_fraction <= 1, "mux.handover_speed_fraction must be in (0, 1]")
        _check(self.min_handover_time >= 0, "mux.min_handover_time must be >= 0")
        _check(self.twist_ramp_time > 0, "mux.twist_ramp_time must be positive")
        names = [lock.name for lock in self.locks]
        _check(len(set(names)) == len(names), f"mux: lock names must be unique: {names}")
        _check(not {"policy", "teleop", "hold"} & set(names), "mux: locks cannot be named policy/teleop/hold")


@dataclass(frozen=True)
class SafetyConfig:
    """Switches of the safety filter beyond the robot's own limits.

    enforce_jerk: apply JointSpec.max_jerk where given to how motion starts and speeds up (best effort: it never
        delays a stop, and yields to position/velocity/acceleration when they cannot all be met; counted).
    relative_target_from_measured: LeRobot measures `max_relative_target` from the present (measured) position;
        otherwise it caps the step from the last command.
    """

    enforce_jerk: bool = True
    relative_target_from_measured: bool = True


@dataclass(frozen=True)
class PlausibilityConfig:
    """When a joint reading is a sensor fault rather than a measurement (see plausibility.py).

    position_tolerance: how far beyond a joint's limits a reading may lie (encoder noise, a joint pushed into
        its end stop); gripper_tolerance: the same for the gripper, in its units.
    jump_factor, jump_slack: a reading may differ from the last good one by at most
        jump_factor * max_velocity * elapsed + jump_slack.
    absurd: readings beyond this magnitude are reported as absurd (and are out of range anyway).
    recovery_readings: consecutive plausible readings that end a fault.
    """

    position_tolerance: float = 0.05
    gripper_tolerance: float = 0.01
    jump_factor: float = 2.0
    jump_slack: float = 0.05
    absurd: float = 1e3
    recovery_readings: int = 3

    def __post_init__(self) -> None:
        for name in ("position_tolerance", "gripper_tolerance", "jump_slack"):  # inf: that check is off
            _check(getattr(self, name) >= 0, f"plausibility.{name} must be >= 0")
        _check(self.jump_factor >= 1 and math.isfinite(self.jump_factor), "plausibility.jump_factor must be >= 1")
        _check(self.absurd > 0, "plausibility.absurd must be positive")
        _check(self.recovery_readings >= 1, "plausibility.recovery_readings must be >= 1")


@dataclass(frozen=True)
class InstructionConfig:
    """max_chars: longer instructions are refused (a long prompt stalls inference); log_chars: how much of any
    message text goes into logs and replies."""

    max_chars: int = 1000
    log_chars: int = 120

    def __post_init__(self) -> None:
        _check(self.max_chars >= 1, "instruction.max_chars must be >= 1")
        _check(self.log_chars >= 10, "instruction.log_chars must be >= 10")


@dataclass(frozen=True)
class WatchdogConfig:
    """hold_on_stale: the policy holds while any observation input is older than its max_age."""

    hold_on_stale: bool = True


@dataclass(frozen=True)
class ControlConfig:
    sync: SyncConfig = field(default_factory=SyncConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    mux: MuxConfig = field(default_factory=MuxConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)
    instruction: InstructionConfig = field(default_factory=InstructionConfig)
    control_hz: float | None = None  # None: the embodiment's rates.control_hz
    clock_jump_tolerance: float = 0.5  # the node's clock going back more than this is a clock jump (s)

    def __post_init__(self) -> None:
        if self.control_hz is not None:
            _check(self.control_hz > 0 and math.isfinite(self.control_hz), "control_hz must be positive")
        _check(self.clock_jump_tolerance > 0 and math.isfinite(self.clock_jump_tolerance),
               "clock_jump_tolerance must be positive")


def with_estop_only(config: ControlConfig, latching: bool) -> ControlConfig:
    """`config` with the policy node's one lock: the e-stop, latching only when no command mux runs downstream
    (the mux owns the latch and its reset, so one reset re-arms the system)."""
    mux = dataclasses.replace(config.mux, locks=(LockSpec("estop", priority=255, latching=latching),))
    return dataclasses.replace(config, mux=mux)
