"""The monitor: a DDS participant in the test process that hears every command that reaches the arm's
controller (and gripper), both status topics, /diagnostics and the sensor streams, each with its arrival
time on time.monotonic() (system-wide, so it compares with the fault policy's event times), and the checks
that every scenario makes on what it heard.

Limits are the robot YAML's, checked on consecutive commands with the nominal control period, as the safety
filter defines them: position inside [lower + margin, upper - margin], |dq| <= v_max T, |d2q| <= a_max T^2,
the velocity each trajectory point carries <= v_max, and every gripper command inside the gripper's range,
moving at most its max velocity per control period.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from test.system.processes import Recorder
from vla_policy_node.msgs import decode_joint_trajectory, decode_policy_status
from vla_policy_node.msgs.diagnostics import decode_diagnostics
from vla_policy_node.msgs.joints import decode_float64_array
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.qos import SENSOR_DATA_QOS, QosProfile

EVERY_MESSAGE = QosProfile(depth=1000)  # reliable and deep: no command may go unchecked
REL, ABS = 1e-6, 1e-9  # float tolerance of the limit checks (the filter computes in float64 too)
REST_TRAVEL = 1e-3  # rad: "standing still" = less than a milliradian of further travel until the fault ends


@dataclass(frozen=True)
class Limits:
    """What every command to the controller must satisfy, from the robot YAML."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray
    max_jerk: np.ndarray
    period: float
    gripper_lower: float | None
    gripper_upper: float | None
    gripper_step: float | None

    @classmethod
    def of(cls, robot: Embodiment) -> Limits:
        margin = robot.safety.position_margin
        g = robot.gripper
        period = 1.0 / robot.rates.control_hz
        return cls(robot.joint_names, np.array([j.lower + margin for j in robot.joints]),
                   np.array([j.upper - margin for j in robot.joints]),
                   np.array([j.max_velocity for j in robot.joints]),
                   np.array([j.max_acceleration for j in robot.joints]),
                   np.array([j.max_jerk or math.inf for j in robot.joints]), period,
                   g.lower if g else None, g.upper if g else None, g.max_velocity * period if g else None)

    def violations(self, q: np.ndarray, v: np.ndarray | None) -> list[str]:
        """Every way the command sequence q [N, D] (and its trajectory velocities v) breaks the limits."""
        out = []
        if len(q) == 0:
            return out
        tol = ABS + REL * np.abs(q)
        below, above = q < self.lower - tol, q > self.upper + tol
        for kind, mask, bound in (("below", below, self.lower), ("above", above, self.upper)):
            for i, j in zip(*np.nonzero(mask), strict=True):
                out.append(f"command {i}: {self.names[j]} = {q[i, j]:.6f} {kind} its limit {bound[j]:.6f}")
        steps = np.diff(q, axis=0)
        vmax_t = self.max_velocity * self.period
        for i, j in zip(*np.nonzero(np.abs(steps) > vmax_t * (1 + REL) + ABS), strict=True):
            out.append(f"command {i + 1}: {self.names[j]} moved {steps[i, j]:+.6f} in one period "
                       f"({abs(steps[i, j]) / self.period:.3f} rad/s > {self.max_velocity[j]})")
        accel = np.diff(steps, axis=0)
        amax_t2 = self.max_acceleration * self.period ** 2
        for i, j in zip(*np.nonzero(np.abs(accel) > amax_t2 * (1 + REL) + ABS), strict=True):
            out.append(f"command {i + 2}: {self.names[j]} accelerated {accel[i, j] / self.period ** 2:+.3f} rad/s^2 "
                       f"(limit {self.max_acceleration[j]})")
        if v is not None and len(v):
            for i, j in zip(*np.nonzero(np.abs(v) > self.max_velocity * (1 + REL) + ABS), strict=True):
                out.append(f"command {i}: {self.names[j]} trajectory velocity {v[i, j]:+.4f} > {self.max_velocity[j]}")
        return out[:20] + ([f"... {len(out) - 20} more"] if len(out) > 20 else [])

    def gripper_violations(self, values: np.ndarray) -> list[str]:
        if self.gripper_lower is None or len(values) == 0:
            return []
        assert self.gripper_upper is not None and self.gripper_step is not None
        out = [f"gripper command {i}: {g:.4f} outside [{self.gripper_lower}, {self.gripper_upper}]"
               for i, g in enumerate(values)
               if not (self.gripper_lower - ABS <= g <= self.gripper_upper + ABS)]
        steps = np.abs(np.diff(values))
        out += [f"gripper command {i + 1}: moved {steps[i]:.5f} in one period (> {self.gripper_step:.5f})"
                for i in np.nonzero(steps > self.gripper_step * (1 + REL) + ABS)[0]]
        return out[:20]

    def braking_time(self, velocity: np.ndarray) -> float:
        """How long the joints take to stop from `velocity`: at max deceleration, plus the time to build it up at
        the max jerk (the filters brake at max deceleration from the first step since jerk never delays a stop:
        that term is margin)."""
        return float(np.max(np.abs(velocity) / self.max_acceleration + self.max_acceleration / self.max_jerk))


def beyond_path(reached: np.ndarray, start: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Per joint, how far `reached` lies outside the range spanned by `start` and every position of `path`
    [N, D] (0 inside it): where a controller came to rest, against where it was and where it was asked to go."""
    points = np.vstack([start[None, :], path.reshape(-1, len(start))])
    low, high = points.min(axis=0), points.max(axis=0)
    return np.maximum(np.maximum(reached - high, low - reached), 0.0)


def rest_start(q: np.ndarray) -> int | None:
    """Index of the first command after which no joint travels more than REST_TRAVEL in total to the end of q:
    standing still (a filter converging on a held target creeps its last micro-radians). None: still moving."""
    if len(q) < 2:
        return None
    travel = np.abs(np.diff(q, axis=0))
    remaining = np.max(np.cumsum(travel[::-1], axis=0)[::-1], axis=1)  # [i]: the travel after command i
    if remaining[-1] > REST_TRAVEL:
        return None
    return int(np.nonzero(remaining <= REST_TRAVEL)[0][0])


def _trajectory_point(msg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    data = decode_joint_trajectory(msg)
    return data.positions[0], None if data.velocities is None else data.velocities[0]


def _diagnostics(msg: Any) -> dict[str, tuple[int, str, dict[str, str]]]:
    _, entries = decode_diagnostics(msg)
    return {e.name: (e.level, e.message, dict(e.values)) for e in entries}


class Monitor:
    """Subscriptions on `transport` for `robot`'s topics; every log holds (arrival time, value)."""

    def __init__(self, transport: Any, robot: Embodiment) -> None:
        self.t = transport
        self.robot = robot
        self.limits = Limits.of(robot)
        sub = transport.subscribe
        self.commands = Recorder(_trajectory_point)
        self.policy_commands = Recorder(_trajectory_point)  # what the policy node asks the mux for
        self.gripper = Recorder(lambda m: float(decode_float64_array(m)[0]))
        self.status = Recorder(decode_policy_status)
        self.mux_status = Recorder(decode_policy_status)
        self.diagnostics = Recorder(_diagnostics)
        # (stamp, positions, wall time at arrival): a stamp's age on arrival is the last minus the first
        self.joint_states = Recorder(lambda m: (header_stamp(m), np.array(m.position, dtype=np.float64),
                                                time.time()))
        self.frames = Recorder(header_stamp)
        self.node_time = time.time  # the nodes' clock (a sim-time set sets its /clock here)
        # (stamp of the observation an action chunk answers, the nodes' time when it arrived)
        self.chunks = Recorder(lambda m: (header_stamp(m), self.node_time()))
        self.subscriptions = [
            sub(robot.controller.topic, "trajectory_msgs/msg/JointTrajectory", self.commands, EVERY_MESSAGE),
            sub("/vla/status", "vla_msgs/msg/PolicyStatus", self.status),
            sub("/vla/mux_status", "vla_msgs/msg/PolicyStatus", self.mux_status),
            sub("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", self.diagnostics, EVERY_MESSAGE),
            sub(robot.joint_states.topic, "sensor_msgs/msg/JointState", self.joint_states, SENSOR_DATA_QOS),
            sub("/vla/action_chunk", "vla_msgs/msg/ActionChunk", self.chunks),
            sub("/vla/policy_command", "trajectory_msgs/msg/JointTrajectory", self.policy_commands, EVERY_MESSAGE),
        ]
        if robot.gripper is not None and robot.gripper.interface == "forward_command":
            self.subscriptions.append(sub(robot.gripper.topic, "std_msgs/msg/Float64MultiArray", self.gripper,
                                          EVERY_MESSAGE))
        cam = robot.cameras[0]  # the first camera's frames (a dropout stops them all): arrival and stamp only
        msgtype = "sensor_msgs/msg/CompressedImage" if cam.compressed else "sensor_msgs/msg/Image"
        self.subscriptions.append(sub(cam.topic, msgtype, self.frames, SENSOR_DATA_QOS))

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.close()

    # ------------------------------------------------------------------------------------------- views
    def command_arrays(self, t0: float, t1: float = math.inf, log: Recorder | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(arrival times [N], positions [N, D], trajectory velocities [N, D] or None) of the commands that
        arrived in [t0, t1]: on the controller topic, or in `log` (e.g. policy_commands)."""
        items = (log or self.commands).window(t0, t1)
        times = np.array([t for t, _ in items])
        q = np.array([p for _, (p, _) in items]).reshape(len(items), len(self.limits.names))
        vs = [v for _, (_, v) in items]
        v = None if not vs or any(x is None for x in vs) else np.array(vs)
        return times, q, v

    def violations(self, t0: float = 0.0, t1: float = math.inf) -> list[str]:
        """Limit violations of the arm and gripper commands that arrived in [t0, t1]."""
        _, q, v = self.command_arrays(t0, t1)
        gripper = np.array([g for _, g in self.gripper.window(t0, t1)])
        return self.limits.violations(q, v) + self.limits.gripper_violations(gripper)

    def rest_time(self, t0: float, t1: float, log: Recorder | None = None) -> float | None:
        """When, in [t0, t1], the arm was last commanded to move (see `rest_start`): from then to t1 it stands
        still. Silence counts as standing still: the controllers hold their last setpoint, and the mux stops
        publishing once a hold has settled. None if the commands are still moving at t1. `log`: another command
        stream than the controller's (policy_commands)."""
        log = log or self.commands
        before = log.window(-math.inf, t0)
        times, q, _ = self.command_arrays(t0, t1, log)
        if before:
            times = np.concatenate([[t0], times])
            q = np.concatenate([np.asarray(before[-1][1][0])[None, :], q])
        if len(q) < 2:
            return t0
        first = rest_start(q)
        return None if first is None else float(times[first])

    @staticmethod
    def wall(t: float) -> float:
        """time.monotonic() t on the wall clock (the DDS nodes' clock)."""
        return time.time() - (time.monotonic() - t)

    def position_at(self, t: float, log: Recorder | None = None) -> np.ndarray | None:
        """The last command that arrived by t (None if none did)."""
        items = (log or self.commands).window(-math.inf, t)
        return np.asarray(items[-1][1][0]) if items else None

    def largest_gap(self, t0: float, t1: float, log: Recorder | None = None) -> float:
        """The longest silence between commands in [t0, t1] (a stalled machine, or the mux's settled hold)."""
        times, _, _ = self.command_arrays(t0, t1, log)
        return float(np.max(np.diff(np.concatenate([[t0], times, [t1]]))))

    def motion(self, t0: float, t1: float = math.inf, log: Recorder | None = None) -> float:
        """Largest change of any joint command over [t0, t1]."""
        _, q, _ = self.command_arrays(t0, t1, log)
        return float(np.max(np.ptp(q, axis=0))) if len(q) > 1 else 0.0

    def velocity_at(self, t: float, log: Recorder | None = None) -> np.ndarray:
        """The trajectory velocity of the last command that arrived before t (zeros if none)."""
        items = (log or self.commands).window(0.0, t)
        if not items or items[-1][1][1] is None:
            return np.zeros(len(self.limits.names))
        return np.asarray(items[-1][1][1])

    def texts(self, t0: float, t1: float = math.inf) -> str:
        """What both nodes said about themselves in [t0, t1]: every text field of both status topics (source,
        fault, stale inputs, hold reasons...) and every /diagnostics message, one line each. Diagnostics entry
        names and values are left out: they name every part, input and counter ever counted, so any word would
        be found there whatever happened (see `counted` for counters)."""
        parts = []
        for who, recorder in (("policy", self.status), ("mux", self.mux_status)):
            for _, s in recorder.window(t0, t1):
                parts.append(f"{who}: " + status_text(s))
        for _, entries in self.diagnostics.window(t0, t1):
            for name, (_, message, _) in entries.items():  # the entry's name ("vla_policy: inference") is not news
                parts.append(f"{name.split(':')[0]}: {message}")
        return "\n".join(parts)

    def counters(self, t: float) -> dict[str, int]:
        """Every counter the nodes reported by time t (the newest report of each): integer diagnostics values
        ("<entry>/<key>") and the status's rejection counts ("<node status>/<name>")."""
        out: dict[str, int] = {}
        for _, entries in self.diagnostics.window(-math.inf, t):
            for name, (_, _, values) in entries.items():
                for key, value in values.items():
                    if value.isdigit():
                        out[f"{name}/{key}"] = int(value)
        for who, recorder in (("policy", self.status), ("mux", self.mux_status)):
            latest = recorder.window(-math.inf, t)
            if latest and "rejection_names" in latest[-1][1]:
                status = latest[-1][1]
                out.update({f"{who}/{n}": int(c) for n, c in zip(status["rejection_names"],
                                                                   status["rejection_counts"], strict=True)})
        return out

    def counted(self, t0: float, t1: float, *words: str) -> list[str]:
        """The counters whose name contains every word that grew between t0 and t1."""
        before, after = self.counters(t0), self.counters(t1)
        return [key for key, n in after.items()
                if all(w.lower() in key.lower() for w in words) and n > before.get(key, 0)]


def status_text(status: dict[str, Any]) -> str:
    """The text fields of a decoded PolicyStatus (whatever fields the message has), on one line."""
    skip = {"instruction", "clamp_names"}
    fields = []
    for key, value in status.items():
        if key in skip:
            continue
        texts = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        if texts and value:
            fields.append(f"{key}={value}")
    return " ".join(fields)
