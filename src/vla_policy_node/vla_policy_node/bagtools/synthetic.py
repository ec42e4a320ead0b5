"""Synthetic demonstration bags and a scripted policy with a known answer, for tests, benchmarks and demos.

`write_demonstration_bag` writes what `vla_record` would record from a teleoperated session (cameras, joint
states, the controller's commands, the gripper command, the instruction and episode marks) where the
"operator" is any policy: at every re-planning frame it predicts a chunk from the observation, the commands
follow that chunk, and the arm tracks its commands exactly. A bag whose commands came from a known policy is
what the open-loop replay is checked against.

`ReachPolicy` is such a known policy: every joint approaches its goal exponentially with time constant `tau`
and the gripper closes near the goal. Its plans are consistent over time (re-planning from any point of a plan
continues the same plan), so a replay against it has zero error at every horizon step, whichever observations
the replay's executor picks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from vla_policy_node.bagtools.episodes import EventKind, encode_episode_event
from vla_policy_node.bagtools.topics import (
    EPISODE_EVENT,
    EPISODE_EVENT_TOPIC,
    INSTRUCTION_TOPIC,
    STRING,
    command_topic,
    gripper_command_topic,
)
from vla_policy_node.control.command import CommandSpace
from vla_policy_node.msgs.fields import rosbags_factory
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE, encode_compressed_image, encode_image
from vla_policy_node.msgs.joints import JOINT_STATE, encode_float64_array, encode_joint_state, encode_joint_trajectory
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.images import fit_image
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix
from vla_policy_node.transport.bag import BagWriter
from vla_policy_node.transport.qos import LATCHED_QOS, SENSOR_DATA_QOS

NS = 1_000_000_000
_TIME_TOLERANCE = 1e-6  # the same instant computed two ways at ~1.7e9 s differs by ~1e-7
COLORS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200), "yellow": (210, 190, 40)}


class Commander(Protocol):
    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk: ...


class ReachPolicy:
    """Scripted policy: joints approach `goal(instruction)` as g - (g - q) * exp(-t / tau); the gripper closes
    (lower limit) while the planned arm is within `close_within` rad of the goal in every joint, else opens."""

    def __init__(self, embodiment: Embodiment, *, tau: float = 0.6, horizon: int = 16, goal_scale: float = 0.5,
                 close_within: float = 0.15, salt: str = "") -> None:
        if embodiment.action_space.type != "joint_position":
            raise ValueError("ReachPolicy produces joint positions")
        self._embodiment = embodiment
        self.tau = tau
        self.horizon = horizon
        self.goal_scale = goal_scale
        self.close_within = close_within
        self.salt = salt
        self.calls = 0

    @property
    def embodiment(self) -> Embodiment:
        return self._embodiment

    def goal(self, instruction: str) -> np.ndarray:
        """A goal inside the joint limits, fixed per instruction (and salt: another salt, another policy)."""
        digest = hashlib.sha256((self.salt + instruction).encode()).digest()
        u = np.frombuffer(digest[: len(self._embodiment.joints)], np.uint8) / 255.0 * 2 - 1
        lo = np.array([j.lower for j in self._embodiment.joints])
        hi = np.array([j.upper for j in self._embodiment.joints])
        return (lo + hi) / 2 + u * self.goal_scale * (hi - lo) / 2

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk:
        self.calls += 1
        emb = self._embodiment
        n = len(emb.joints)
        q = np.asarray(observation.state, dtype=np.float64)[:n]
        goal = self.goal(observation.instruction)
        dt = emb.rates.action_dt
        decay = np.exp(-np.arange(self.horizon) * dt / self.tau)[:, None]
        arm = goal - (goal - q) * decay
        columns = [arm]
        if emb.gripper is not None:
            near = np.all(np.abs(goal - arm) < self.close_within, axis=1)
            columns.append(np.where(near, emb.gripper.lower, emb.gripper.upper)[:, None])
        return ActionChunk(observation.stamp, dt, np.hstack(columns), emb.action_names)

    def infer_batch(self, observations: Sequence[Observation], *, prefixes: Sequence[RtcPrefix | None] | None = None
                    ) -> list[ActionChunk]:
        return [self.infer(o) for o in observations]


@dataclass(frozen=True)
class Session:
    """A synthetic recording. Times in seconds; `rate_hz` is the joint-state and command rate, cameras publish
    every `camera_every`-th of those ticks and the commander re-plans every `replan_every`-th camera frame."""

    episodes: int = 2
    episode_s: float = 3.0
    gap_s: float = 1.0
    rate_hz: float = 50.0
    camera_every: int = 5
    replan_every: int = 1
    image_size: tuple[int, int] | None = None  # raw (height, width); None: each camera's model resolution
    compressed: bool = False
    storage: str = "mcap"
    instructions: tuple[str, ...] = ("reach the red block", "reach the blue block")
    outcomes: tuple[str, ...] = ("success",)
    marks: bool = True
    start_time: float = 1_700_000_000.0
    sensor_latency: float = 0.002  # receive time - header stamp of cameras and joint states
    noise: int = 8  # image noise amplitude (makes images compress like camera images)
    seed: int = 0
    home: tuple[float, ...] = field(default_factory=tuple)  # start pose; default: middle of every joint


def render(state: np.ndarray, instruction: str, height: int, width: int, rng: np.random.Generator,
           noise: int) -> np.ndarray:
    """A tabletop: the target block (color from the instruction) and a gripper square moved by the joints."""
    image = np.full((height, width, 3), (110, 105, 100), np.int16)
    color = next((rgb for name, rgb in COLORS.items() if name in instruction), (180, 180, 180))
    size = max(2, width // 8)
    image[height // 2: height // 2 + size, width // 3: width // 3 + size] = color
    x = int((0.5 + 0.4 * np.tanh(state[0])) * (width - size))
    y = int((0.5 + 0.4 * np.tanh(state[1] if state.size > 1 else 0.0)) * (height - size))
    image[y: y + size, x: x + size] = (30, 30, 30)
    if noise:
        image += rng.integers(-noise, noise + 1, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_demonstration_bag(path: str | Path, embodiment: Embodiment, commander: Commander,
                            session: Session | None = None) -> Path:
    """Write a demonstration bag for `embodiment` whose commands come from `commander` (see module docstring)."""
    session = session or Session()
    writer = _DemoWriter(Path(path), embodiment, commander, session)
    writer.write()
    return Path(path)


class _DemoWriter:
    def __init__(self, path: Path, embodiment: Embodiment, commander: Commander, session: Session) -> None:
        if embodiment.controller.interface not in ("joint_trajectory", "forward_command"):
            raise ValueError("synthetic demonstrations drive joint controllers (joint_trajectory/forward_command)")
        self.path = path
        self.emb = embodiment
        self.commander = commander
        self.s = session
        self.new = rosbags_factory()
        self.space = CommandSpace.from_embodiment(embodiment)
        self.rng = np.random.default_rng(session.seed)
        self.dt = 1.0 / session.rate_hz
        n = len(embodiment.joints)
        middle = [(j.lower + j.upper) / 2 for j in embodiment.joints]
        home = np.array(session.home or middle, dtype=np.float64)
        gripper = embodiment.gripper
        self.home = np.append(home, gripper.upper) if gripper else home
        self.n = n
        self.command_spec = command_topic(embodiment)
        self.gripper_spec = gripper_command_topic(embodiment)
        self.last_gripper: float | None = None

    def write(self) -> None:
        s = self.s
        with BagWriter(self.path, s.storage) as writer:
            self.writer = writer
            for cam in self.emb.cameras:
                writer.add_topic(cam.topic, COMPRESSED_IMAGE if s.compressed else IMAGE, SENSOR_DATA_QOS)
            writer.add_topic(self.emb.joint_states.topic, JOINT_STATE, SENSOR_DATA_QOS)
            writer.add_topic(INSTRUCTION_TOPIC, STRING, LATCHED_QOS)
            if s.marks:
                writer.add_topic(EPISODE_EVENT_TOPIC, EPISODE_EVENT)
            state = self.home.copy()
            t = s.start_time
            for e in range(s.episodes):
                instruction = s.instructions[e % len(s.instructions)]
                state = self._episode(t, state, instruction, e)
                t += s.episode_s
                state = self._reset(t, state)
                t += s.gap_s

    def _ns(self, t: float) -> int:
        return round(t * NS)

    def _episode(self, t0: float, state: np.ndarray, instruction: str, index: int) -> np.ndarray:
        s = self.s
        self.writer.write(INSTRUCTION_TOPIC, STRING, self.new(STRING, data=instruction), self._ns(t0))
        if s.marks:
            self._mark(EventKind.START, t0, index, instruction)
        ticks = round(s.episode_s * s.rate_hz)
        plan: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        frame = 0
        for i in range(ticks):
            t = t0 + i * self.dt
            self._write_joint_state(t, state)  # before the images: the sync then pairs them with this state
            if i % s.camera_every == 0:
                images = self._write_images(t, state, instruction)
                if frame % s.replan_every == 0:
                    obs = Observation(t, images, state.copy(), instruction)
                    chunk = self.commander.infer(obs)
                    arm, gripper = self.space.convert_chunk(chunk, obs.state)
                    plan = (chunk.times, arm, gripper)
                frame += 1
            assert plan is not None
            self._write_command(t, self._plan_at(plan, t))
            state = self._plan_at(plan, t + self.dt)  # the arm tracks its commands exactly
        end = t0 + s.episode_s
        if s.marks:
            outcome = s.outcomes[index % len(s.outcomes)] if s.outcomes else "stop"
            kind = {"success": EventKind.SUCCESS, "failure": EventKind.FAILURE, "discard": EventKind.DISCARD,
                    "stop": EventKind.STOP}[outcome]
            self._mark(kind, end - self.dt / 2, index)
        return state

    def _reset(self, t0: float, state: np.ndarray) -> np.ndarray:
        """Between episodes the operator drives the arm back home (cameras and joint states keep running)."""
        s = self.s
        ticks = round(s.gap_s * s.rate_hz)
        start = state.copy()
        for i in range(ticks):
            t = t0 + i * self.dt
            state = start + (self.home - start) * min(1.0, (i + 1) / max(1, ticks // 2))
            self._write_joint_state(t, state)
            if i % s.camera_every == 0:
                self._write_images(t, state, "")
            self._write_command(t, state)
        return state

    def _plan_at(self, plan: tuple[np.ndarray, np.ndarray, np.ndarray | None], t: float) -> np.ndarray:
        """The plan at t: its action where t is an action time (to float precision), else interpolated."""
        times, arm, gripper = plan
        k = int(np.clip(np.searchsorted(times, t + _TIME_TOLERANCE, side="right") - 1, 0, len(times) - 1))
        if abs(t - times[k]) <= _TIME_TOLERANCE:
            values = arm[k].copy()
        else:
            values = np.array([np.interp(t, times, arm[:, d]) for d in range(arm.shape[1])])
        if gripper is not None:
            values = np.append(values, gripper[k])
        return values

    def _mark(self, kind: EventKind, t: float, index: int, instruction: str = "") -> None:
        msg = encode_episode_event(self.new, kind, t, index, instruction)
        self.writer.write(EPISODE_EVENT_TOPIC, EPISODE_EVENT, msg, self._ns(t))

    def _write_images(self, t: float, state: np.ndarray, instruction: str) -> dict[str, np.ndarray]:
        s = self.s
        stamp_ns = self._ns(t + s.sensor_latency)
        out = {}
        for cam in self.emb.cameras:
            height, width = s.image_size or (cam.height, cam.width)
            rgb = render(state, instruction, height, width, self.rng, s.noise)
            if s.compressed:
                msg = encode_compressed_image(self.new, rgb, "jpeg", quality=95, stamp=t, frame_id=cam.name)
                self.writer.write(cam.topic, COMPRESSED_IMAGE, msg, stamp_ns)
            else:
                msg = encode_image(self.new, rgb, "rgb8", stamp=t, frame_id=cam.name)
                self.writer.write(cam.topic, IMAGE, msg, stamp_ns)
            out[cam.name] = fit_image(rgb, cam)
        return out

    def _write_joint_state(self, t: float, state: np.ndarray) -> None:
        msg = encode_joint_state(self.new, self.emb.state_names, state, stamp=t)
        self.writer.write(self.emb.joint_states.topic, JOINT_STATE, msg, self._ns(t + self.s.sensor_latency))

    def _write_command(self, t: float, values: np.ndarray) -> None:
        arm = values[: self.n]
        spec = self.command_spec
        if spec.msgtype.endswith("JointTrajectory"):
            msg = encode_joint_trajectory(self.new, self.emb.joint_names, arm[None, :], [self.dt])
        else:
            msg = encode_float64_array(self.new, arm)
        self.writer.write(spec.topic, spec.msgtype, msg, self._ns(t))
        if self.gripper_spec is not None and values.shape[0] > self.n:
            gripper = float(values[self.n])
            if gripper != self.last_gripper:
                self.last_gripper = gripper
                self.writer.write(self.gripper_spec.topic, self.gripper_spec.msgtype,
                                  encode_float64_array(self.new, [gripper]), self._ns(t))
