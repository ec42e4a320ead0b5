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
from typing import Any, Protocol

import numpy as np
from rosbags.rosbag2 import StoragePlugin

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
STORAGE_MCAP = StoragePlugin.MCAP
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
        self._goals: dict[tuple[str, float, str], np.ndarray] = {}

    @property
    def embodiment(self) -> Embodiment:
        return self._embodiment

    def goal(self, instruction: str) -> np.ndarray:
        """A goal inside the joint limits, fixed per instruction (and salt: another salt, another policy); computed
        once per (salt, scale, instruction), as the replay benchmark asks for it on every chunk."""
        key = (self.salt, self.goal_scale, instruction)
        goal = self._goals.get(key)
        if goal is None:
            goal = self._goal(instruction)
            goal.setflags(write=False)
            if len(self._goals) >= 64:
                self._goals.clear()
            self._goals[key] = goal
        return goal

    def _goal(self, instruction: str) -> np.ndarray:
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
class RecordingFaults:
    """What real recordings do that a clean synthetic bag does not (times in seconds from the bag's start).

    dropouts: (camera, from, to): the camera publishes nothing in [from, to).
    camera_windows: (camera, from, to): the camera publishes only in [from, to) (starts late / ends early).
    late_every / late_s: every late_every-th frame of every camera arrives late_s late (recorded after newer
      messages; its header stamp is the capture time), so receive order and stamp order differ.
    swap_joint_states_every: every k-th pair of joint states is received in swapped order (stamps go backwards).
    extra_joints: more joints in /joint_states than the robot config has (e.g. Franka's second finger, which
      mirrors the gripper); shuffle_joints: the names come in another order in every message.
    compressed_cameras: these cameras are recorded as JPEG CompressedImage on `<topic>/compressed`, the others
      as raw Image (None: all follow Session.compressed).
    camera_topics: camera -> topic it is recorded on (instead of the robot config's); omit_cameras: not recorded.
    raw_too: compressed cameras also recorded as raw Image on the topic without `/compressed` (a RealSense driver
      publishes both streams).
    split_every_s: the bag is split into files of this duration, as `ros2 bag record --max-bag-duration` does.
    no_instruction_topic: /vla/instruction is not recorded (the marks still carry the instruction).
    """

    dropouts: tuple[tuple[str, float, float], ...] = ()
    camera_windows: tuple[tuple[str, float, float], ...] = ()
    late_every: int = 0
    late_s: float = 0.0
    swap_joint_states_every: int = 0
    extra_joints: tuple[str, ...] = ()
    shuffle_joints: bool = False
    compressed_cameras: tuple[str, ...] | None = None
    camera_topics: tuple[tuple[str, str], ...] = ()
    omit_cameras: tuple[str, ...] = ()
    raw_too: tuple[str, ...] = ()
    split_every_s: float = 0.0
    no_instruction_topic: bool = False


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
    faults: RecordingFaults = field(default_factory=RecordingFaults)


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
        self.shuffle_rng = np.random.default_rng(session.seed + 1)  # faults do not change the images
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
        self.pending: list[tuple[int, str, str, Any]] = []  # late messages, written in receive order at the end
        self.camera_frames = 0
        self.joint_messages = 0
        self.held_joint_state: tuple[int, Any] | None = None

    def write(self) -> None:
        s = self.s
        with BagWriter(self.path, s.storage) as writer:
            self.writer = writer
            for cam in self.emb.cameras:
                if cam.name in s.faults.omit_cameras:
                    continue
                topic, compressed = self._camera_topic(cam.name, cam.topic)
                writer.add_topic(topic, COMPRESSED_IMAGE if compressed else IMAGE, SENSOR_DATA_QOS)
                if compressed and cam.name in s.faults.raw_too:
                    writer.add_topic(topic.removesuffix("/compressed"), IMAGE, SENSOR_DATA_QOS)
            writer.add_topic(self.emb.joint_states.topic, JOINT_STATE, SENSOR_DATA_QOS)
            if not s.faults.no_instruction_topic:
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
            self._flush_pending()
        if s.faults.split_every_s > 0:
            split_bag(self.path, s.faults.split_every_s)

    def _camera_topic(self, name: str, topic: str) -> tuple[str, bool]:
        """(topic, compressed) the camera is recorded on under the session's faults."""
        faults = self.s.faults
        topic = dict(faults.camera_topics).get(name, topic)
        compressed = self.s.compressed if faults.compressed_cameras is None else name in faults.compressed_cameras
        if compressed and not topic.endswith("/compressed") and faults.compressed_cameras is not None:
            topic = f"{topic}/compressed"
        return topic, compressed

    def _publishes(self, name: str, t: float) -> bool:
        faults = self.s.faults
        rel = t - self.s.start_time + _TIME_TOLERANCE  # t0 + i * dt is not exact
        if name in faults.omit_cameras:
            return False
        if any(cam == name and lo <= rel < hi for cam, lo, hi in faults.dropouts):
            return False
        windows = [(lo, hi) for cam, lo, hi in faults.camera_windows if cam == name]
        return not windows or any(lo <= rel < hi for lo, hi in windows)

    def _flush_pending(self) -> None:
        for ns, topic, msgtype, msg in sorted(self.pending, key=lambda item: item[0]):
            self.writer.write(topic, msgtype, msg, ns)
        self.pending = []

    def _ns(self, t: float) -> int:
        return round(t * NS)

    def _episode(self, t0: float, state: np.ndarray, instruction: str, index: int) -> np.ndarray:
        s = self.s
        if not s.faults.no_instruction_topic:
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
        faults = s.faults
        on_time = self._ns(t + s.sensor_latency)
        stamp_ns = on_time
        self.camera_frames += 1
        if faults.late_every and self.camera_frames % faults.late_every == 0:
            stamp_ns += self._ns(faults.late_s)
        out = {}
        for cam in self.emb.cameras:
            height, width = s.image_size or (cam.height, cam.width)
            rgb = render(state, instruction, height, width, self.rng, s.noise)
            out[cam.name] = fit_image(rgb, cam)
            if not self._publishes(cam.name, t):
                continue
            topic, compressed = self._camera_topic(cam.name, cam.topic)
            streams = []
            if compressed:
                streams.append((topic, COMPRESSED_IMAGE, encode_compressed_image(
                    self.new, rgb, "jpeg", quality=95, stamp=t, frame_id=cam.name)))
            if not compressed or cam.name in faults.raw_too:
                streams.append((topic.removesuffix("/compressed"), IMAGE,
                                encode_image(self.new, rgb, "rgb8", stamp=t, frame_id=cam.name)))
            for name, msgtype, msg in streams:
                if stamp_ns != on_time:
                    self.pending.append((stamp_ns, name, msgtype, msg))
                else:
                    self.writer.write(name, msgtype, msg, stamp_ns)
        return out

    def _write_joint_state(self, t: float, state: np.ndarray) -> None:
        faults = self.s.faults
        names = list(self.emb.state_names)
        values = [float(v) for v in state]
        for extra in faults.extra_joints:  # e.g. Franka's second finger mirrors the gripper
            names.append(extra)
            values.append(float(state[-1]) if self.emb.gripper is not None else 0.0)
        if faults.shuffle_joints:
            order = self.shuffle_rng.permutation(len(names))
            names = [names[i] for i in order]
            values = [values[i] for i in order]
        msg = encode_joint_state(self.new, names, values, stamp=t)
        ns = self._ns(t + self.s.sensor_latency)
        self.joint_messages += 1
        every = faults.swap_joint_states_every
        if every and self.held_joint_state is None and self.joint_messages % every == 0:
            self.held_joint_state = (ns, msg)  # received after the next one
            return
        self.writer.write(self.emb.joint_states.topic, JOINT_STATE, msg, ns)
        if self.held_joint_state is not None:
            _, held = self.held_joint_state
            self.held_joint_state = None
            self.writer.write(self.emb.joint_states.topic, JOINT_STATE, held, ns + 1000)

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


def split_bag(path: str | Path, every_s: float) -> Path:
    """Rewrite the mcap bag at `path` as files of `every_s` seconds each in the same directory, with one
    metadata.yaml listing them, as rosbag2's `--max-bag-duration` splitting writes a recording."""
    import shutil

    import yaml
    from rosbags.interfaces import ConnectionExtRosbag2
    from rosbags.rosbag2 import Reader, Writer

    from vla_policy_node.msgs.typestore import default_typestore

    path = Path(path)
    parts = path.with_name(path.name + ".parts")
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir()
    typestore = default_typestore()
    with Reader(path) as reader:
        if not any(path.glob("*.mcap")):
            raise ValueError("split_bag splits mcap bags")
        connections = list(reader.connections)
        qos = {}
        for c in connections:
            assert isinstance(c.ext, ConnectionExtRosbag2)  # a rosbag2 reader's connections
            qos[c.id] = c.ext.offered_qos_profiles
        start = reader.start_time
        writers: dict[int, tuple[Writer, dict[int, Any]]] = {}
        for connection, timestamp, raw in reader.messages():
            k = int((timestamp - start) // round(every_s * NS))
            if k not in writers:
                writer = Writer(parts / f"{path.name}_{k}", version=Writer.VERSION_LATEST,
                                storage_plugin=STORAGE_MCAP)
                writer.open()
                added = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=typestore,
                                                     offered_qos_profiles=qos[c.id])
                         for c in connections}
                writers[k] = (writer, added)
            writer, added = writers[k]
            writer.write(added[connection.id], timestamp, raw)
        for writer, _ in writers.values():
            writer.close()
    meta_path = path / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    for old in info["relative_file_paths"]:
        (path / old).unlink()
    info["relative_file_paths"], info["files"] = [], []
    for k in sorted(writers):
        part = parts / f"{path.name}_{k}"
        part_info = yaml.safe_load((part / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        for entry in part_info["files"]:
            shutil.move(part / entry["path"], path / entry["path"])
            info["relative_file_paths"].append(entry["path"])
            info["files"].append(entry)
    shutil.rmtree(parts)
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return path
