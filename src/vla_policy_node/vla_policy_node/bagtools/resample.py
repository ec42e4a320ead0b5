"""A bag's episodes as frames at the policy rate: what a training sample is made of, streamed.

For every episode (split at the recorded marks; the whole bag when it has none) frames are taken at
t_i = start + i / fps up to the episode's end:

- state: the joint states (embodiment state order) interpolated at t_i;
- images: per camera the newest frame stamped at or before t_i (no peeking ahead, as the live node sees it),
  at most the camera's max_age old, decoded and resized with `fit_image` exactly as the policy node resizes;
- action, in the embodiment's action space (`CommandSpace.to_actions`): the command in effect at t_i
  (`commands`; a controller holds its last command), or the state reached at t_(i+1) (`next_state`). A gripper
  without a recorded command topic takes its next state;
- environment state (optional, `EnvironmentState`): privileged scene values for training only (e.g. the
  simulated task's target position), sampled like a camera: the newest message stamped at or before t_i (header
  stamp; receive time for Float64MultiArray, which has none), at most max_gap old.

A frame is emitted once the bag has been read SETTLE seconds past it (late sensor messages are in by then).
Frames missing data at an episode's start are skipped. A gap in the middle (a camera dropout, a camera that
ends early) is handled by `on_gap`: "split" (default) ends the segment before the gap and continues the
episode as a new segment once every input is back (each segment becomes a dataset episode, with a warning
naming the topic and time), "truncate" drops the rest of the episode, "error" stops with a BagContentError
naming them. Camera frames and joint states are ordered by stamp, not arrival. An episode's outcome is final
when the next one starts or the bag ends (a SUCCESS mark may follow its STOP), so episodes are handed over
only then. Memory holds a few seconds of messages at any time.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from vla_policy_node.bagtools.episodes import Episode, EpisodeTracker, decode_episode_event
from vla_policy_node.bagtools.signals import Signal
from vla_policy_node.bagtools.topics import (
    EPISODE_EVENT,
    EPISODE_EVENT_TOPIC,
    INSTRUCTION_TOPIC,
    STRING,
    BagContentError,
    command_topic,
    gripper_command_topic,
    has_topic,
)
from vla_policy_node.control.command import CommandSpace
from vla_policy_node.msgs.commands import decode_command
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.geometry import POINT_STAMPED, POSE_STAMPED, decode_point_stamped, decode_pose_stamped
from vla_policy_node.msgs.images import decode_compressed_image, decode_image
from vla_policy_node.msgs.joints import FLOAT64_ARRAY, decode_float64_array, decode_joint_state
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.spec.embodiment import CameraSpec, Embodiment
from vla_policy_node.spec.images import fit_image
from vla_policy_node.transport.bag import BagReader

ActionSource = Literal["auto", "commands", "next_state"]
GapPolicy = Literal["split", "truncate", "error"]
GAP_POLICIES: tuple[str, ...] = ("split", "truncate", "error")
SETTLE = 0.2
_TOLERANCE = 1e-6


@dataclass
class Frame:
    t: float
    state: np.ndarray  # [S] float
    action: np.ndarray  # [A] float, action space
    images: dict[str, np.ndarray]  # camera -> HxWx3 uint8 at the camera's model resolution
    environment_state: np.ndarray | None = None  # [E] float, when an EnvironmentState is read


ENVIRONMENT_STATE_TYPES = (POINT_STAMPED, POSE_STAMPED, FLOAT64_ARRAY)
_FIXED_NAMES = {POINT_STAMPED: ("x", "y", "z"), POSE_STAMPED: ("x", "y", "z", "qx", "qy", "qz", "qw")}


@dataclass(frozen=True)
class EnvironmentState:
    """Which topic holds the environment state and its values' names (their number is fixed per dataset)."""

    topic: str
    msgtype: str
    names: tuple[str, ...]

    @property
    def dim(self) -> int:
        return len(self.names)


def environment_state_spec(reader: BagReader, topic: str) -> EnvironmentState:
    """The environment state of `topic` in this bag; BagContentError naming the topic when it cannot be read.

    A Float64MultiArray's length is that of its first valid message (names "0", "1", ...)."""
    topics = reader.topics
    msgtype = topics.get(topic)
    if msgtype is None:
        raise BagContentError(f"environment state: topic {topic} is not in the bag (topics: {sorted(topics)})")
    if msgtype not in ENVIRONMENT_STATE_TYPES:
        raise BagContentError(f"environment state: {topic} is {msgtype}; supported types are "
                              + ", ".join(ENVIRONMENT_STATE_TYPES))
    if reader.message_counts.get(topic, 0) == 0:
        raise BagContentError(f"environment state: topic {topic} has no messages")
    if msgtype in _FIXED_NAMES:
        return EnvironmentState(topic, msgtype, _FIXED_NAMES[msgtype])
    for item in reader.messages([topic]):
        try:
            size = decode_float64_array(item.msg).size
        except MessageError:
            continue
        if size == 0:
            raise BagContentError(f"environment state: {topic} holds empty arrays")
        return EnvironmentState(topic, msgtype, tuple(str(i) for i in range(size)))
    raise BagContentError(f"environment state: no valid {msgtype} message on {topic}")


def _decode_environment_state(msg: Any, msgtype: str) -> tuple[float, np.ndarray]:
    """(stamp, values); stamp 0 when the message has no header."""
    if msgtype == POINT_STAMPED:
        point = decode_point_stamped(msg)
        return point.stamp, point.point
    if msgtype == POSE_STAMPED:
        pose = decode_pose_stamped(msg)
        return pose.stamp, np.concatenate([pose.position, pose.orientation])
    return 0.0, decode_float64_array(msg)


@dataclass
class EpisodeFrames:
    """One episode's frames, handed over as they are made (`frames` is emptied by the consumer)."""

    episode: Episode
    source: str
    frames: list[Frame] = field(default_factory=list)
    count: int = 0
    began: bool = False
    skipped_start: int = 0
    cut: str = ""  # why the episode (segment) ended before its mark, if it did
    segment: int = 0  # 0, then 1, 2, ... for the parts after gaps
    next_index: int = 0  # next frame (of the episode, counted from its start) to make
    first_t: float = math.nan  # bag time of the segment's first frame


class EpisodeSink(Protocol):
    """What receives the frames: `begin` an episode, `frames` in batches, `end` once its outcome is final."""

    def begin(self, episode: EpisodeFrames) -> None: ...

    def frames(self, episode: EpisodeFrames, frames: list[Frame]) -> None: ...

    def end(self, episode: EpisodeFrames) -> None: ...


def choose_action_source(embodiment: Embodiment, topics: dict[str, str], counts: dict[str, int],
                         wanted: ActionSource) -> str:
    spec = command_topic(embodiment)
    recorded = has_topic(topics, counts, spec)
    joint_space = embodiment.action_space.type in ("joint_position", "joint_delta")
    if wanted == "commands" and not recorded:
        raise BagContentError(f"actions from commands need {spec.msgtype} messages on {spec.topic} (the "
                              f"controller topic of {embodiment.name}); the bag has none")
    if wanted == "next_state" and not joint_space:
        raise BagContentError(f"actions from next states need a joint action space, {embodiment.name} has "
                              f"{embodiment.action_space.type}")
    if wanted == "auto":
        if recorded:
            return "commands"
        if joint_space:
            return "next_state"
        raise BagContentError(f"the bag has no commands on {spec.topic} and {embodiment.action_space.type} "
                              "actions cannot be derived from joint states")
    return wanted


class BagResampler:
    """Streams one bag into a sink (see the module docstring)."""

    def __init__(self, reader: BagReader, embodiment: Embodiment, fps: float, action_source: str, sink: EpisodeSink,
                 *, max_gap: float = 0.25, batch: int = 32, source: str = "",
                 on_message: Callable[[], None] | None = None,
                 environment_state: EnvironmentState | None = None, on_gap: GapPolicy = "split") -> None:
        if on_gap not in GAP_POLICIES:
            raise ValueError(f"on_gap must be one of {GAP_POLICIES}, not {on_gap!r}")
        self.on_gap = on_gap
        self.reader = reader
        self.emb = embodiment
        self.period = 1.0 / fps
        self.action_source = action_source
        self.sink = sink
        self.batch = batch
        self.source = source or str(reader.path)
        self.on_message = on_message
        self.space = CommandSpace.from_embodiment(embodiment)
        self.n_arm = self.space.arm_dim
        self.has_gripper = self.space.gripper_name is not None
        topics, counts = reader.topics, reader.message_counts
        self.state = Signal(embodiment.state_dim, "linear", max_gap=max_gap, reorder=True)
        self.arm_command = Signal(self.n_arm, "hold") if action_source == "commands" else None
        gripper_spec = gripper_command_topic(embodiment)
        self.gripper_command = None
        if action_source == "commands" and self.has_gripper and has_topic(topics, counts, gripper_spec):
            self.gripper_command = Signal(1, "hold")
        self.images: dict[str, deque[tuple[float, Any]]] = {c.name: deque() for c in embodiment.cameras}
        self.roles: dict[str, tuple[str, Any]] = {}
        for cam in embodiment.cameras:  # several cameras may read one topic (a camera fed from another's)
            self.roles.setdefault(cam.topic, ("camera", []))[1].append(cam)
        self.roles[embodiment.joint_states.topic] = ("joint_states", None)
        if self.arm_command is not None:
            self.roles[command_topic(embodiment).topic] = ("command", None)
        if self.gripper_command is not None and gripper_spec is not None:
            self.roles[gripper_spec.topic] = ("gripper_command", None)
        if topics.get(INSTRUCTION_TOPIC) == STRING:
            self.roles[INSTRUCTION_TOPIC] = ("instruction", None)
        self.has_marks = topics.get(EPISODE_EVENT_TOPIC) == EPISODE_EVENT and counts.get(EPISODE_EVENT_TOPIC, 0) > 0
        if self.has_marks:
            self.roles[EPISODE_EVENT_TOPIC] = ("episode_event", None)
        self.environment_state = environment_state
        self.env_signal: Signal | None = None
        if environment_state is not None:
            taken = self.roles.get(environment_state.topic)
            if taken is not None:
                raise BagContentError(f"environment state: {environment_state.topic} is already read as the "
                                      f"{taken[0].replace('_', ' ')}")
            self.env_signal = Signal(environment_state.dim, "hold", max_age=max_gap)
            self.roles[environment_state.topic] = ("environment_state", None)
        self.tracker = EpisodeTracker()
        self.errors = MessageErrorCounter()
        self.queue: list[EpisodeFrames] = []  # episodes being made (head) or waiting to be made
        self.done: list[EpisodeFrames] = []  # made, waiting for their outcome to be final
        self.stream_time = -math.inf
        self.seen_episodes = 0
        self.reordered_images = 0
        self.read_counts: dict[str, int] = dict.fromkeys(self.roles, 0)

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> None:
        start = self.reader.start_ns * 1e-9
        implicit = Episode(0, start, None, implicit=True)
        if not self.has_marks:
            self.queue.append(EpisodeFrames(implicit, self.source))
        last = start
        for item in self.reader.messages(list(self.roles)):
            t = item.timestamp_ns * 1e-9
            last = max(last, t)
            self.stream_time = t
            self.read_counts[item.topic] += 1
            self._take(item.topic, item.msg, t)
            self._new_episodes()
            self._emit(t - SETTLE)
            if self.on_message is not None:
                self.on_message()
        self._check_complete()
        if self.has_marks:
            self.tracker.finish(start, last)
        else:  # the whole bag is one episode (its head segment may be done already)
            implicit.end = last
            implicit.instruction = self.tracker.first_instruction
        self._new_episodes()
        self._emit(math.inf)
        self._release(final=True)

    def _check_complete(self) -> None:
        counts = self.reader.message_counts
        short = {t: n for t, n in self.read_counts.items() if n < counts.get(t, 0)}
        if short:
            detail = ", ".join(f"{t}: {n} of {counts[t]}" for t, n in sorted(short.items()))
            raise BagContentError(f"the bag ended before all messages its metadata lists were read ({detail}); it "
                                  "is truncated or its index is damaged (`ros2 bag reindex` may repair it)")

    # ------------------------------------------------------------------------------------------- inputs
    def _take(self, topic: str, msg: Any, t: float) -> None:
        role, camera = self.roles[topic]
        if role == "camera":
            stamp = header_stamp(msg)
            for cam in camera:
                self._add_image(self.images[cam.name], stamp if stamp > 0 else t, msg)
        elif role == "joint_states":
            data = self.errors.decode(decode_joint_state, msg, topic=topic)
            if data is not None:
                try:
                    self.state.append(data.stamp if data.stamp > 0 else t, data.positions_for(self.emb.state_names))
                except MessageError as error:
                    self.errors.record(error, topic)
        elif role == "command":
            arm = self.errors.decode(decode_command, msg, self.emb.controller.interface, self.space.arm_names,
                                     topic=topic)
            if arm is not None and self.arm_command is not None:
                self.arm_command.append(t, arm)
        elif role == "gripper_command":
            value = self.errors.decode(decode_float64_array, msg, 1, topic=topic)
            if value is not None and self.gripper_command is not None:
                self.gripper_command.append(t, value)
        elif role == "environment_state":
            self._take_environment_state(topic, msg, t)
        elif role == "instruction":
            self.tracker.set_instruction(str(msg.data))
        elif role == "episode_event":
            try:
                self.tracker.apply_event(decode_episode_event(msg))
            except ValueError as error:
                self.tracker.warnings.append(f"t={t:.3f}: bad episode event: {error}")

    def _add_image(self, buffer: deque[tuple[float, Any]], stamp: float, msg: Any) -> None:
        """Keep a camera's frames in stamp order: a frame received late goes where its stamp belongs."""
        if not buffer or stamp >= buffer[-1][0]:
            buffer.append((stamp, msg))
            return
        self.reordered_images += 1
        k = bisect.bisect_right([s for s, _ in buffer], stamp)
        buffer.insert(k, (stamp, msg))

    def _take_environment_state(self, topic: str, msg: Any, t: float) -> None:
        assert self.environment_state is not None and self.env_signal is not None
        decoded = self.errors.decode(_decode_environment_state, msg, self.environment_state.msgtype, topic=topic)
        if decoded is None:
            return
        stamp, values = decoded
        if values.size != self.environment_state.dim:  # the dataset feature has one shape
            raise BagContentError(f"environment state: {topic} changed length from {self.environment_state.dim} to "
                                  f"{values.size} values at t={t:.3f}; it must be fixed")
        self.env_signal.append(stamp if stamp > 0 else t, values)

    def _new_episodes(self) -> None:
        """Queue episodes the marks have started; a START also makes earlier outcomes final."""
        episodes = self.tracker.episodes
        if len(episodes) > self.seen_episodes:
            for episode in episodes[self.seen_episodes:]:
                self.queue.append(EpisodeFrames(episode, self.source))
            self.seen_episodes = len(episodes)
            self._release(final=False, before=episodes[-1].start)

    # ------------------------------------------------------------------------------------------- frames
    def _emit(self, settled: float) -> None:
        while self.queue:
            head = self.queue[0]
            episode = head.episode
            if not head.began:
                head.began = True
                self.sink.begin(head)
            end = episode.end if episode.end is not None else math.inf
            batch: list[Frame] = []
            follow: EpisodeFrames | None = None
            while not head.cut:
                t = episode.start + head.next_index * self.period
                # frame t needs data up to its next frame (the next state); at the end, all data is in
                if t > end + _TOLERANCE or (t + self.period > settled + _TOLERANCE and settled < end):
                    break
                frame, missing = self._frame(t)
                head.next_index += 1
                if frame is not None:
                    if head.count == 0:
                        head.first_t = t
                    batch.append(frame)
                    head.count += 1
                elif head.count == 0:
                    head.skipped_start += 1
                elif t + self.period > end:  # the last frame has no next state to act towards: not a gap
                    break
                else:
                    follow = self._gap(head, t, missing)
                if len(batch) >= self.batch:
                    self.sink.frames(head, batch)
                    batch = []
            if batch:
                self.sink.frames(head, batch)
            finished = head.cut or (episode.end is not None and settled >= episode.end)
            if not finished:
                break
            self.queue.pop(0)
            self.done.append(head)
            if follow is not None:
                self.queue.insert(0, follow)
        self._forget(settled)

    def _gap(self, head: EpisodeFrames, t: float, missing: str) -> EpisodeFrames | None:
        """Handle a frame without data in the middle of an episode (see `on_gap`); the next segment, if any."""
        where = f"t={t:.3f} ({t - head.episode.start:.2f} s into episode {head.episode.index})"
        if self.on_gap == "error":
            raise BagContentError(f"no {missing} at {where} (a dropout longer than the input's max age); "
                                  "--on-gap split (or truncate) keeps the rest")
        if self.on_gap == "truncate":
            head.cut = f"no {missing} at {where}; later frames dropped"
            return None
        head.cut = f"no {missing} at {where}; the episode continues as segment {head.segment + 1} once it is back"
        return EpisodeFrames(head.episode, head.source, segment=head.segment + 1, next_index=head.next_index)

    def _frame(self, t: float) -> tuple[Frame | None, str]:
        state, ok = self.state.sample(np.array([t]))
        if not ok[0]:
            return None, f"joint state on {self.emb.joint_states.topic}"
        images = {}
        for cam in self.emb.cameras:
            image = self._image(cam, t)
            if image is None:
                return None, f"image of camera {cam.name!r} on {cam.topic}"
            images[cam.name] = image
        environment_state = None
        if self.env_signal is not None and self.environment_state is not None:
            values, ok = self.env_signal.sample(np.array([t]))
            if not ok[0]:
                return None, f"environment state on {self.environment_state.topic}"
            environment_state = values[0]
        action = self._action(t, state[0])
        if action is None:
            if self.action_source == "commands":
                return None, f"command on {command_topic(self.emb).topic}"
            return None, f"next joint state on {self.emb.joint_states.topic}"
        return Frame(t, state[0], action, images, environment_state), ""

    def _image(self, cam: CameraSpec, t: float) -> np.ndarray | None:
        chosen = None
        for stamp, msg in self.images[cam.name]:
            if stamp > t + _TOLERANCE:
                break
            chosen = (stamp, msg)
        if chosen is None or t - chosen[0] > cam.max_age + _TOLERANCE:
            return None
        decoder = decode_compressed_image if cam.compressed else decode_image
        rgb = self.errors.decode(decoder, chosen[1], topic=cam.topic)
        return None if rgb is None else fit_image(rgb, cam)

    def _action(self, t: float, state: np.ndarray) -> np.ndarray | None:
        times = np.array([t, t + self.period])
        nxt, nxt_ok = self.state.sample(times[1:])
        if self.action_source == "next_state":
            if not nxt_ok[0]:
                return None
            values = nxt[0]
        else:
            assert self.arm_command is not None
            arm, ok = self.arm_command.sample(times[:1])
            if not ok[0]:
                return None
            values = arm[0]
            if self.has_gripper:
                if self.gripper_command is not None:
                    grip, grip_ok = self.gripper_command.sample(times[:1])
                    if not grip_ok[0]:
                        return None
                    gripper = grip[0, 0]
                else:
                    if not nxt_ok[0]:
                        return None
                    gripper = nxt[0][len(self.emb.joints)]
                values = np.append(values, gripper)
        if not self.has_gripper:
            values = values[: self.n_arm]
        return self.space.to_actions(values[None, :], self.emb.rates.action_dt, reference_state=state)[0]

    def _forget(self, settled: float) -> None:
        """Drop messages no frame still needs: images older than the newest one at or before the next frame
        (the bulk of the data: only ~SETTLE seconds of camera frames are held), signal samples a second older."""
        if self.queue:
            head = self.queue[0]
            needed = head.episode.start + head.next_index * self.period
        else:
            needed = settled
        needed = min(needed, self.stream_time)
        for cam in self.emb.cameras:
            buffer = self.images[cam.name]
            while len(buffer) > 1 and buffer[1][0] <= needed:
                buffer.popleft()
        for signal in (self.state, self.arm_command, self.gripper_command, self.env_signal):
            if signal is not None:
                signal.drop_before(needed - 1.0)

    def _release(self, final: bool, before: float = math.inf) -> None:
        """Hand finished episodes to the sink once their outcome can no longer change."""
        keep = []
        for item in self.done:
            if final or (item.episode.end is not None and item.episode.end <= before):
                self.sink.end(item)
            else:
                keep.append(item)
        self.done = keep
