"""Open-loop replay: a bag's observations through a policy at their recorded timing, as the live node runs them.

The node under test is the live policy node's core: the same message -> observation path
(msgs/observation_input.py: decoding, image resizing), ControlLoop (observation sync, chunk executor, mux, safety
filter) and inference step (control/inference.py), with the bag's time as the clock. The replay plays the three
threads of the live node in virtual time:

- subscriptions: every camera / joint-state / instruction / e-stop message is handed over at its recorded
  (receive) time;
- control timer: `loop.tick` every control period;
- inference thread: whenever the loop wants a chunk and a fresh observation is ready (checked after every
  input, every tick and right after a chunk lands), `InferenceStep.request` and `run`, except that the result
  lands (`InferenceStep.land`) when the inference would have finished: observation time + latency, with latency
  the measured wall time of the call (default) or a fixed value. Meanwhile ticks and inputs go on, as live.

What is compared with the recording (the *reference*): the commands the arm controller received (`commands`:
the command in effect at a time is the last one sent, as controllers hold it), or the joint states that
followed (`joint_states`: interpolated). Every predicted chunk, in command space (`CommandSpace.convert_chunk`,
so joint deltas are made absolute as the executor makes them), is compared step by step: action k of a chunk
answering the observation stamped s is compared with the reference at s + k*dt. The node's command stream
(what it would have sent) is compared with the reference at each tick. Only time inside marked episodes counts
(the whole bag when it has no marks); steps past an episode's end are not compared; discarded episodes are
reported but left out of the totals.

Memory stays bounded for any bag length: messages stream from the bag, the reference keeps a few seconds of
samples, errors are accumulated as sums, and plot series are decimated.
"""

from __future__ import annotations

import bisect
import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from vla_policy_node.bagtools.episodes import Episode, EpisodeTracker, EventKind, decode_episode_event
from vla_policy_node.bagtools.metrics import GripperAgreement, HorizonErrors, latency_summary
from vla_policy_node.bagtools.signals import PlotSeries, Signal
from vla_policy_node.bagtools.topics import (
    EPISODE_EVENT,
    EPISODE_EVENT_TOPIC,
    INSTRUCTION_TOPIC,
    STRING,
    BagContentError,
    command_topic,
    fit_embodiment_to_bag,
    gripper_command_topic,
    has_topic,
)
from vla_policy_node.control.command import ChunkError, Command
from vla_policy_node.control.config import ControlConfig, with_estop_only
from vla_policy_node.control.inference import InferencePolicy, InferenceResult, InferenceStep
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.kinematics.robot_kinematics import DESCRIPTION_TOPIC, RobotKinematics
from vla_policy_node.msgs.commands import decode_command, point_command
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.fast_cdr import (
    image_from_cdr,
    joint_state_from_cdr,
    same_definitions,
    trajectory_first_point_from_cdr,
)
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE
from vla_policy_node.msgs.joints import JOINT_STATE, JOINT_TRAJECTORY, JointStateData, decode_float64_array
from vla_policy_node.msgs.observation_input import ObservationInput
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation
from vla_policy_node.transport.bag import BagError, BagMessage, BagReader

Target = Literal["auto", "commands", "joint_states"]
# A reference value at time t is final once the bag has been read this far past t (inputs arrive late by their
# transport latency; header stamps of joint states lag their receive times).
SETTLE = 0.2
TICK_BATCH = 512  # settled control ticks compared at once
CHUNK_BATCH = 32  # settled chunks compared at once
DROP_EVERY = 0.5  # seconds of stream time between trimming the reference signals
ESTOP_TOPIC = "/vla/estop"  # the policy node's e-stop input (PolicyNodeParams.estop_topic)
BOOL = "std_msgs/msg/Bool"


class ReplayError(RuntimeError):
    """The replay could not produce a complete report; the message names the bag and the problem."""


@dataclass(frozen=True)
class ReplayConfig:
    """target: what predictions are compared with (auto: the recorded commands if the bag has them, else the
    joint states). latency: seconds of virtual time an inference takes; None = its measured wall time.
    reference_max_gap: joint-state samples further apart than this are not interpolated across."""

    target: Target = "auto"
    latency: float | None = None
    latency_source: str = ""  # where a fixed latency came from (the report says it)
    instruction: str = ""
    control: ControlConfig = field(default_factory=ControlConfig)
    reference_max_gap: float = 0.25
    plot_dt: float = 0.02
    progress: bool = False

    def __post_init__(self) -> None:
        if self.target not in ("auto", "commands", "joint_states"):
            raise ValueError(f"target must be auto, commands or joint_states, got {self.target!r}")
        if self.latency is not None and not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be >= 0 seconds or None (measured), got {self.latency}")
        if not self.reference_max_gap > 0:
            raise ValueError("reference_max_gap must be positive")


@dataclass
class EpisodeResult:
    """Accumulated comparison within one episode."""

    episode: Episode
    chunk_errors: HorizonErrors
    command_errors: HorizonErrors
    gripper: GripperAgreement | None
    chunks: int = 0
    policy_ticks: int = 0
    held_ticks: int = 0


@dataclass
class PlotData:
    """Decimated series for the report's figures (command-space dims: arm, then gripper)."""

    names: tuple[str, ...]
    reference: PlotSeries
    executed: PlotSeries
    predicted_first: PlotSeries
    episodes: list[Episode]


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    episodes: list[EpisodeResult]
    plots: PlotData
    chunk_errors: HorizonErrors
    command_errors: HorizonErrors
    gripper: GripperAgreement | None


@dataclass
class _InFlight:
    arrival: float
    result: InferenceResult
    latency: float


@dataclass
class _PendingChunk:
    result: EpisodeResult
    times: np.ndarray  # [H]
    values: np.ndarray  # [H, D] command space (arm, then gripper)

    @property
    def last_time(self) -> float:
        return float(self.times[-1])


class OpenLoopReplay:
    """Replays bags through `policy` (anything with `infer(obs, prefix=)`) for `embodiment`."""

    def __init__(self, embodiment: Embodiment, policy: InferencePolicy, config: ReplayConfig | None = None) -> None:
        self.embodiment = embodiment
        self.policy = policy
        self.config = config or ReplayConfig()

    def run(self, bag: str | Path) -> ReplayResult:
        """Replay one bag. ReplayError (naming the bag and the problem) instead of a partial result."""
        path = Path(bag)
        try:
            with BagReader(path) as reader:
                return _Session(self, path, reader).run()
        except BagError as error:
            raise ReplayError(f"{path}: unreadable bag: {error}") from error
        except BagContentError as error:
            raise ReplayError(f"{path}: {error}") from error


class _Session:
    """One replay of one bag (the state of the three virtual threads and of the comparison)."""

    def __init__(self, owner: OpenLoopReplay, path: Path, reader: BagReader) -> None:
        self.config = config = owner.config
        self.path = path
        self.reader = reader
        self.policy = owner.policy
        topics, counts = reader.topics, reader.message_counts
        self.counts = counts
        self.embodiment = emb = fit_embodiment_to_bag(owner.embodiment, topics, counts)
        self.command_spec = command_topic(emb)
        self.gripper_spec = gripper_command_topic(emb)
        has_commands = has_topic(topics, counts, self.command_spec)
        self.target = self._choose_target(config.target, has_commands)
        self.now = 0.0
        self.loop = ControlLoop(emb, with_estop_only(config.control, latching=False))
        self.loop.set_special_tokens(getattr(self.policy, "special_tokens", ()))
        self.loop.set_instruction(config.instruction)
        self.inference = InferenceStep(self.loop, self.policy)
        self.inputs = ObservationInput(self.loop, lambda: self.now)
        aspace = emb.action_space
        self.cartesian = aspace.cartesian
        self.robot = RobotKinematics(emb.joint_names, emb.base_frame,
                                     (aspace.frame, aspace.ee_link) if aspace.cartesian else None)
        self.node_handlers = self._node_handlers()
        self.space = space = self.loop.space
        self.n_arm = space.arm_dim
        gripper_name = space.gripper_name
        self.has_gripper = gripper_name is not None
        self.names: tuple[str, ...] = space.arm_names + ((gripper_name,) if gripper_name is not None else ())
        self.dim = len(self.names)
        self.horizon = 0  # known with the first chunk
        self.action_dt = emb.rates.action_dt
        gripper = emb.gripper
        self.gripper_threshold = (gripper.lower + gripper.upper) / 2 if gripper is not None else math.nan
        state_index = {name: i for i, name in enumerate(emb.state_names)}
        # The gripper's column in the joint state (its reference when its command is not recorded; unused without).
        self.gripper_state_column = state_index[gripper_name] if gripper_name is not None else -1
        # Reference signals (command space). Joint states always feed `state` (the joint_states target and the
        # gripper when its command is not recorded).
        gap = config.reference_max_gap
        self.state = Signal(emb.state_dim, "linear", max_gap=gap)
        self.arm_command = Signal(self.n_arm, "hold") if self.target == "commands" else None
        self.gripper_command = None
        if self.target == "commands" and self.has_gripper and has_topic(topics, counts, self.gripper_spec):
            self.gripper_command = Signal(1, "hold")
        self.topic_roles = self._topic_roles(topics, has_commands)
        self.raw_topics = self._raw_topics(topics)
        self.has_marks = counts.get(EPISODE_EVENT_TOPIC, 0) > 0 and topics.get(EPISODE_EVENT_TOPIC) == EPISODE_EVENT
        self.tracker = EpisodeTracker()
        self.implicit_episode = None if self.has_marks else Episode(0, reader.start_ns * 1e-9, None, implicit=True)
        self.warnings: list[str] = []
        self.instruction_source = self._instruction_source(topics, counts)
        self.episode_results: dict[int, EpisodeResult] = {}
        self.decode_errors = MessageErrorCounter()
        self.stream_time = -math.inf
        self.period = self.loop.period
        self.next_tick = math.nan
        self.in_flight: _InFlight | None = None
        self.pending: list[_PendingChunk] = []
        self._pending_first = math.inf  # the earliest last_time of `pending`
        self.settled: list[tuple[_PendingChunk, float | None]] = []  # (chunk, its episode's end when it settled)
        self.pending_ticks: list[tuple[EpisodeResult, float, Command]] = []
        self._next_drop = -math.inf
        self.latencies: list[float] = []
        self.wall_latencies: list[float] = []
        self.inference_errors: list[str] = []
        self.counters = {"messages": 0, "sensor_messages": 0, "observations": 0, "inferences": 0,
                         "chunks_accepted": 0, "chunks_rejected": 0, "chunks_outside_episodes": 0,
                         "chunks_unconvertible": 0, "ticks": 0, "commands": 0}
        plot_dt = config.plot_dt
        self.plots = PlotData(self.names, PlotSeries(self.dim, plot_dt), PlotSeries(self.dim, plot_dt),
                              PlotSeries(self.dim, 0.0), [])

    # ---------------------------------------------------------------------------------------------- setup
    def _choose_target(self, target: Target, has_commands: bool) -> str:
        spec = self.command_spec
        joint_space = self.embodiment.action_space.type in ("joint_position", "joint_delta")
        if target == "commands" and not has_commands:
            raise BagContentError(f"target 'commands' needs {spec.msgtype} messages on {spec.topic} (the controller "
                                  f"topic of {self.embodiment.name}); the bag has none. Use target 'joint_states'")
        if target == "joint_states" and not joint_space:
            raise BagContentError(f"target 'joint_states' needs a joint action space; {self.embodiment.name} has "
                                  f"{self.embodiment.action_space.type} (its commands are not joint positions)")
        if target == "auto":
            if has_commands:
                return "commands"
            if not joint_space:
                raise BagContentError(f"the bag has no commands on {spec.topic} to compare "
                                      f"{self.embodiment.action_space.type} predictions with")
            return "joint_states"
        return target

    def _node_handlers(self) -> dict[str, tuple[str, Any]]:
        """topic -> (type, handler) of every input the live policy node subscribes to."""
        emb, loop = self.embodiment, self.loop
        handlers: dict[str, tuple[str, Any]] = {}
        for cam in emb.cameras:  # cameras may share a topic (one fed from another's): each gets the frame
            handler = self.inputs.image_handler(cam)
            if cam.topic in handlers:
                handler = _both(handlers[cam.topic][1], handler)
            handlers[cam.topic] = (COMPRESSED_IMAGE if cam.compressed else IMAGE, handler)
        handlers[emb.joint_states.topic] = (JOINT_STATE, self.inputs.on_joint_state)
        handlers[INSTRUCTION_TOPIC] = (STRING, lambda msg: self._set_instruction(str(msg.data)))
        handlers[ESTOP_TOPIC] = (BOOL, lambda msg: loop.on_lock("estop", bool(msg.data), self.now))
        handlers[DESCRIPTION_TOPIC] = (STRING, lambda msg: self.robot.set_description(str(msg.data)))
        return handlers

    def _topic_roles(self, topics: dict[str, str], has_commands: bool) -> dict[str, str]:
        """topic -> role, for every topic this replay reads (the node's subscriptions the bag has, and the
        reference and episode topics)."""
        roles: dict[str, str] = {}
        for topic, (msgtype, _) in self.node_handlers.items():
            if topics.get(topic) == msgtype:
                roles[topic] = "node"
        if self.target == "commands" and has_commands:
            roles[self.command_spec.topic] = "command"
        if self.gripper_command is not None and self.gripper_spec is not None:
            roles[self.gripper_spec.topic] = "gripper_command"
        if topics.get(EPISODE_EVENT_TOPIC) == EPISODE_EVENT:
            roles[EPISODE_EVENT_TOPIC] = "episode_event"
        return roles

    def _raw_topics(self, topics: dict[str, str]) -> set[str]:
        """Topics read as CDR bytes and decoded by `msgs.fast_cdr` (the general path when it defers): the joint
        states, raw camera images, and JointTrajectory commands."""
        store = self.reader.typestore
        raw: set[str] = set()
        if same_definitions(store, IMAGE):
            raw.update(t for t, (msgtype, _) in self.node_handlers.items()
                       if msgtype == IMAGE and self.topic_roles.get(t) == "node")
        joint_topic = self.embodiment.joint_states.topic
        if self.topic_roles.get(joint_topic) == "node" and same_definitions(store, JOINT_STATE):
            raw.add(joint_topic)
        command = self.command_spec.topic
        if (self.topic_roles.get(command) == "command" and topics.get(command) == JOINT_TRAJECTORY
                and self.embodiment.controller.interface == "joint_trajectory"
                and same_definitions(store, JOINT_TRAJECTORY)):
            raw.add(command)
        return raw

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> ReplayResult:
        # The objects that exist before the replay (modules, the typestore's classes, the caller's) are set aside
        # from the garbage collector meanwhile: a full collection would walk them all again (~20 ms each time)
        # though the replay makes no garbage among them. Its own objects are collected as usual. A process that
        # freezes objects itself (e.g. before forking workers) is left as it is.
        if gc.get_freeze_count():
            return self._run()
        gc.freeze()
        try:
            return self._run()
        finally:
            gc.unfreeze()

    def _run(self) -> ReplayResult:
        wall_start = time.perf_counter()
        read_counts: dict[str, int] = dict.fromkeys(self.topic_roles, 0)
        joint_topic = self.embodiment.joint_states.topic
        start_ns = self.reader.start_ns
        self.next_tick = start_ns * 1e-9
        last = start_ns * 1e-9
        total = sum(self.counts.get(topic, 0) for topic in self.topic_roles)
        # no bar object at all without --progress (tqdm's lock imports multiprocessing on first use)
        bar = (tqdm(total=total, unit="msg", desc=f"replay {self.path.name}", mininterval=0.5)
               if self.config.progress else None)
        for item in self.reader.messages(list(self.topic_roles), raw_topics=self.raw_topics):
            t = item.timestamp_ns * 1e-9
            last = max(last, t)
            self._advance(t)
            self.now = t
            self.stream_time = t
            read_counts[item.topic] += 1
            self.counters["messages"] += 1
            role = self.topic_roles[item.topic]
            if role == "node":
                if item.topic == INSTRUCTION_TOPIC and item.msgtype == STRING:
                    self.tracker.set_instruction(str(item.msg.data))
                if item.topic == joint_topic:  # decoded once, for the reference and the node
                    data = self._joint_state(item)
                    self._on_joint_state(data, t)
                    self.inputs.on_joint_state_data(data)
                else:
                    self.node_handlers[item.topic][1](self._message(item))
                self.counters["sensor_messages"] += 1
                self._try_inference(t)
            elif role == "command":
                self._on_command_message(item, t)
            elif role == "gripper_command":
                self._on_gripper_command(item.msg, t)
            elif role == "episode_event":
                self._on_episode_event(item.msg, t)
            self._evaluate(final=False)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self._check_complete(read_counts)
        self._advance(last)
        episodes = self._episodes(start_ns * 1e-9, last)
        self._evaluate(final=True)
        wall = time.perf_counter() - wall_start
        return self._result(episodes, wall)

    def _episodes(self, start: float, end: float) -> list[Episode]:
        if self.implicit_episode is None:
            return self.tracker.finish(start, end)
        episode = self.implicit_episode
        episode.end = end
        episode.instruction = self.tracker.first_instruction or self.config.instruction
        return [episode]

    def _set_instruction(self, text: str) -> None:
        """As the live node: a refused instruction holds the policy; the report says why (a few times)."""
        ok, message = self.loop.set_instruction(text)
        if not ok and len(self.warnings) < 20:
            self.warnings.append(f"t={self.now:.3f}: {message}")

    def _instruction_source(self, topics: dict[str, str], counts: dict[str, int]) -> str:
        """Where the policy's instruction comes from: the bag's /vla/instruction, else the --instruction given,
        else each episode's start mark (a warning in the report); with none of them the replay is refused."""
        if topics.get(INSTRUCTION_TOPIC) == STRING and counts.get(INSTRUCTION_TOPIC, 0) > 0:
            return f"topic {INSTRUCTION_TOPIC}"
        if self.config.instruction:
            self.warnings.append(f"the bag has no {INSTRUCTION_TOPIC} messages: the given instruction "
                                 f"{self.config.instruction!r} is used throughout")
            return "the --instruction given"
        if self.has_marks:
            self.warnings.append(f"the bag has no {INSTRUCTION_TOPIC} messages: each episode's instruction is "
                                 "taken from its start mark (vla_msgs/EpisodeEvent)")
            return "episode start marks"
        raise ReplayError(f"{self.path}: no instruction: the bag has no {INSTRUCTION_TOPIC} messages and no episode "
                          "marks carrying one; pass --instruction TEXT")

    def _check_complete(self, read_counts: dict[str, int]) -> None:
        short = {t: (n, self.counts.get(t, 0)) for t, n in read_counts.items() if n < self.counts.get(t, 0)}
        if short:
            detail = ", ".join(f"{t}: {n} of {want}" for t, (n, want) in sorted(short.items()))
            raise BagError(f"the bag ended before all messages its metadata lists were read ({detail}); "
                           "it is truncated or its index is damaged (`ros2 bag reindex` may repair it)")

    # ------------------------------------------------------------------------------------- virtual threads
    def _advance(self, until: float) -> None:
        """Run ticks and chunk arrivals due up to `until`, in time order (an arrival first on a tie)."""
        while True:
            arrival = self.in_flight.arrival if self.in_flight is not None else math.inf
            due = min(self.next_tick, arrival)
            if due > until:
                return
            self.now = due
            if arrival <= self.next_tick:
                self._land(due)
            else:
                self._tick(due)
                self.next_tick += self.period
            self._try_inference(due)

    def _tick(self, now: float) -> None:
        self.counters["ticks"] += 1
        ee_pose = self.robot.ee_pose(self.loop.measured_state) if self.cartesian else None
        command = self.loop.tick(now, None, ee_pose)
        if command is None:
            return
        self.counters["commands"] += 1
        executed = self.plots.executed
        if executed.wants(now):
            executed.add(now, self._command_values(command))
        result = self._episode_at(now)
        if result is None:
            return
        if command.source != "policy" or command.hold:
            result.held_ticks += 1
            return
        result.policy_ticks += 1
        self.pending_ticks.append((result, now, command))  # its values are built in the batch compared

    def _command_values(self, command: Command) -> np.ndarray:
        if self.has_gripper:
            gripper = command.gripper if command.gripper is not None else math.nan
            return np.concatenate((command.arm, (gripper,)))
        return np.asarray(command.arm, dtype=np.float64)

    def _try_inference(self, now: float) -> None:
        """The live inference step, with the result landing after the (virtual) inference latency."""
        if self.in_flight is not None:
            return
        request = self.inference.request(now)
        if request is None:
            return
        self.counters["observations"] += 1
        result = self.inference.run(request)
        latency = result.latency if self.config.latency is None else self.config.latency
        self.in_flight = _InFlight(now + latency, result, latency)
        self.wall_latencies.append(result.latency)
        if result.chunk is not None:
            self._record_prediction(request.obs, result.chunk)

    def _land(self, now: float) -> None:
        flight, self.in_flight = self.in_flight, None
        assert flight is not None
        result = flight.result
        accepted = self.inference.land(result, now, flight.latency)
        if result.chunk is None:
            if len(self.inference_errors) < 5:
                self.inference_errors.append(f"{type(result.error).__name__}: {result.error}")
            return
        self.counters["inferences"] += 1
        self.latencies.append(flight.latency)
        self.counters["chunks_accepted" if accepted else "chunks_rejected"] += 1

    # ----------------------------------------------------------------------------------------- reference
    def _on_joint_state(self, data: JointStateData | None, t: float) -> None:
        """A joint state (decoded by the node's input, which counts undecodable ones) into the reference."""
        if data is None:
            return
        try:
            positions = data.positions_for(self.embodiment.state_names)  # computed once per embodiment
        except MessageError as error:
            self.decode_errors.record(error, self.embodiment.joint_states.topic)
            return
        stamp = data.stamp if data.stamp > 0 else t
        self.state.append(stamp, positions)
        if self.target == "joint_states" or self.gripper_command is None:
            self._plot_reference(stamp)

    def _message(self, item: BagMessage) -> Any:
        """The message of a node input (raw camera frames: the CDR fast path's image, else rosbags')."""
        if item.raw is None:
            return item.msg
        msg = image_from_cdr(item.raw)
        return msg if msg is not None else self.reader.deserialize(item)

    def _joint_state(self, item: BagMessage) -> JointStateData | None:
        """A joint state message decoded (the CDR fast path, else the node's decoder, which counts failures)."""
        if item.raw is not None:
            data = joint_state_from_cdr(item.raw)
            if data is not None:
                return data
        return self.inputs.decode_joint_state(self.reader.deserialize(item))

    def _on_command_message(self, item: BagMessage, t: float) -> None:
        assert self.arm_command is not None
        spec = self.command_spec
        point = trajectory_first_point_from_cdr(item.raw) if item.raw is not None else None
        if point is not None:
            arm = self.decode_errors.decode(point_command, *point, self.space.arm_names, topic=spec.topic)
        else:
            arm = self.decode_errors.decode(decode_command, self.reader.deserialize(item),
                                            self.embodiment.controller.interface, self.space.arm_names,
                                            topic=spec.topic)
        if arm is not None:
            self.arm_command.append(t, arm)
            self._plot_reference(t)

    def _on_gripper_command(self, msg: Any, t: float) -> None:
        assert self.gripper_command is not None and self.gripper_spec is not None
        value = self.decode_errors.decode(decode_float64_array, msg, 1, topic=self.gripper_spec.topic)
        if value is not None:
            self.gripper_command.append(t, value)

    def _on_episode_event(self, msg: Any, t: float) -> None:
        try:
            event = decode_episode_event(msg)
        except ValueError as error:
            self.tracker.warnings.append(f"t={t:.3f}: bad episode event: {error}")
            return
        self.tracker.apply_event(event)
        if self.instruction_source == "episode start marks" and event.kind == EventKind.START and event.instruction:
            self._set_instruction(event.instruction)

    def _reference(self, times: np.ndarray) -> np.ndarray:
        """The reference at `times` [n] in command space [n, D]; NaN where it is not defined."""
        out = np.full((times.shape[0], self.dim), np.nan)
        state, state_ok = self.state.sample(times)
        state[~state_ok] = np.nan
        if self.arm_command is not None:
            arm, ok = self.arm_command.sample(times)
            arm[~ok] = np.nan
            out[:, : self.n_arm] = arm
        else:
            out[:, : self.n_arm] = state[:, : self.n_arm]
        if self.has_gripper:
            if self.gripper_command is not None:
                grip, ok = self.gripper_command.sample(times)
                grip[~ok] = np.nan
                out[:, self.n_arm] = grip[:, 0]
            else:
                out[:, self.n_arm] = state[:, self.gripper_state_column]
        return out

    def _reference_at(self, t: float) -> np.ndarray:
        """`_reference` at one time [D] (the same values, bit for bit; without the array work)."""
        out = np.full(self.dim, np.nan)
        state = self.state.sample_at(t)
        n_arm = self.n_arm
        if self.arm_command is not None:
            arm = self.arm_command.sample_at(t)
            if arm is not None:
                out[:n_arm] = arm
        elif state is not None:
            out[:n_arm] = state[:n_arm]
        if self.has_gripper:
            if self.gripper_command is not None:
                grip = self.gripper_command.sample_at(t)
                if grip is not None:
                    out[n_arm] = grip[0]
            elif state is not None:
                out[n_arm] = state[self.gripper_state_column]
        return out

    def _plot_reference(self, t: float) -> None:
        if not self.plots.reference.wants(t):
            return
        values = self._reference_at(t)
        if any(map(math.isfinite, values.tolist())):  # np.isfinite(values).any(), without numpy's call cost
            self.plots.reference.add(t, values)

    # ---------------------------------------------------------------------------------------- comparison
    def _episode_at(self, t: float) -> EpisodeResult | None:
        episode = self.tracker.current(t) if self.implicit_episode is None else self.implicit_episode
        if episode is None:
            return None
        result = self.episode_results.get(episode.index)
        if result is None:
            if self.horizon == 0:
                return None  # nothing to compare before the first chunk fixes the horizon
            gripper = GripperAgreement(self.horizon, self.gripper_threshold) if self.has_gripper else None
            result = EpisodeResult(episode, HorizonErrors(self.horizon, self.dim), HorizonErrors(1, self.dim),
                                   gripper)
            self.episode_results[episode.index] = result
        return result

    def _record_prediction(self, obs: Observation, chunk: ActionChunk) -> None:
        try:
            arm, gripper = self.space.convert_chunk(chunk, obs.state)
        except ChunkError:
            self.counters["chunks_unconvertible"] += 1
            return
        if self.horizon == 0:
            self.horizon, self.action_dt = chunk.horizon, chunk.dt
        values = np.column_stack([arm, gripper]) if gripper is not None else arm
        self.plots.predicted_first.add(chunk.stamp, values[0])
        result = self._episode_at(chunk.stamp)
        if result is None or chunk.horizon != self.horizon:
            self.counters["chunks_outside_episodes"] += 1
            return
        result.chunks += 1
        item = _PendingChunk(result, chunk.times, values)
        self.pending.append(item)
        self._pending_first = min(self._pending_first, item.last_time)

    def _evaluate(self, final: bool) -> None:
        """Compare pending predictions and commands whose reference is settled (all of them when `final`).

        Runs after every message, so it does nothing until there is work: settled chunks and ticks are compared
        in batches (the sums are accumulated in the same order either way, a settled reference value does not
        change, and a chunk is cut at its episode's end as known when it settled) and old reference samples are
        dropped every DROP_EVERY seconds of stream time (keeping more samples changes no sampled value)."""
        settled = math.inf if final else self.stream_time - SETTLE
        pending = self.pending
        if pending and self._pending_first <= settled:
            self.settled.extend((p, p.result.episode.end) for p in pending if p.last_time <= settled)
            self.pending = [p for p in pending if p.last_time > settled]
            self._pending_first = min((p.last_time for p in self.pending), default=math.inf)
        if self.settled and (final or len(self.settled) >= CHUNK_BATCH):
            batch, self.settled = self.settled, []
            self._compare_chunks(batch)
        ticks = self.pending_ticks
        if ticks and (final or (len(ticks) >= TICK_BATCH and ticks[TICK_BATCH - 1][1] <= settled)):
            cut = bisect.bisect_right(ticks, settled, key=_tick_time)
            self.pending_ticks = ticks[cut:]
            self._compare_ticks(ticks[:cut])
        if not final and settled >= self._next_drop:
            self._next_drop = settled + DROP_EVERY
            oldest = min(min((p.times[0] for p in self.pending), default=math.inf),
                         min((p.times[0] for p, _ in self.settled), default=math.inf),
                         self.pending_ticks[0][1] if self.pending_ticks else math.inf, settled)
            for signal in (self.state, self.arm_command, self.gripper_command):
                if signal is not None:
                    signal.drop_before(oldest - 1.0)

    def _compare_chunks(self, batch: list[tuple[_PendingChunk, float | None]]) -> None:
        """Settled chunks (each with its episode's end when it settled) against the reference, in one pass: the
        same element-wise arithmetic as one chunk at a time, and each episode's sums added in chunk order."""
        items = [item for item, _ in batch]
        times = np.concatenate([item.times for item in items])
        values = np.concatenate([item.values for item in items])
        steps = np.concatenate([np.arange(item.times.shape[0]) for item in items])
        keep = np.ones(times.shape[0], bool)
        rows: dict[int, list[np.ndarray]] = {}
        start = 0
        for item, episode_end in batch:
            end = start + item.times.shape[0]
            if episode_end is not None:
                keep[start:end] = item.times <= episode_end + 1e-9
            rows.setdefault(id(item.result), []).append(np.arange(start, end))
            start = end
        reference = self._reference(times)
        errors = values - reference
        errors[~keep] = np.nan
        results = {id(item.result): item.result for item in items}
        for key, parts in rows.items():
            result, index = results[key], np.concatenate(parts)
            result.chunk_errors.add(steps[index], errors[index])
            if result.gripper is not None:
                predicted = np.where(keep[index], values[index, self.n_arm], np.nan)
                result.gripper.add(steps[index], predicted, reference[index, self.n_arm])

    def _compare_ticks(self, ticks: list[tuple[EpisodeResult, float, Command]]) -> None:
        if not ticks:
            return
        times = np.array([t for _, t, _ in ticks])
        values = np.empty((len(ticks), self.dim))
        values[:, : self.n_arm] = [command.arm for _, _, command in ticks]
        if self.has_gripper:
            values[:, self.n_arm] = [math.nan if c.gripper is None else c.gripper for _, _, c in ticks]
        errors = values - self._reference(times)
        by_result: dict[int, list[int]] = {}
        for i, (result, _, _) in enumerate(ticks):
            by_result.setdefault(result.episode.index, []).append(i)
        for index, rows in by_result.items():
            result = self.episode_results[index]
            result.command_errors.add(np.zeros(len(rows), np.int64), errors[rows])

    # ------------------------------------------------------------------------------------------- result
    def _result(self, episodes: list[Episode], wall: float) -> ReplayResult:
        sync = self.loop.sync
        if self.counters["observations"] == 0:
            raise ReplayError(f"{self.path}: no observation reached the policy. {self._sync_diagnosis()}")
        if self.counters["inferences"] == 0 and self.inference_errors:
            raise ReplayError(f"{self.path}: every inference failed; first error: {self.inference_errors[0]}")
        horizon = max(self.horizon, 1)
        chunk_total = HorizonErrors(horizon, self.dim)
        command_total = HorizonErrors(1, self.dim)
        gripper_total = GripperAgreement(horizon, self.gripper_threshold) if self.has_gripper else None
        results = [self.episode_results[e.index] for e in episodes if e.index in self.episode_results]
        for result in results:
            if result.episode.outcome == "discarded":
                continue
            chunk_total.merge(result.chunk_errors)
            command_total.merge(result.command_errors)
            if gripper_total is not None and result.gripper is not None:
                gripper_total.merge(result.gripper)
        if chunk_total.samples == 0:
            raise ReplayError(
                f"{self.path}: no prediction could be compared with the recorded {self.target}: "
                f"{self.counters['inferences']} chunk(s) predicted, "
                f"{self.counters['chunks_outside_episodes']} outside episodes; the reference "
                f"({self._reference_description()}) has no samples at the predicted times")
        self.plots.episodes = episodes
        bag_bytes = _bag_bytes(self.path)
        obs_rate = self.counters["observations"] / wall if wall > 0 else math.nan
        summary: dict[str, Any] = {
            "complete": True,
            "bag": {
                "path": str(self.path),
                "start_s": self.reader.start_ns * 1e-9,
                "bytes": bag_bytes,
                "duration_s": (self.reader.end_ns - self.reader.start_ns) * 1e-9,
                "message_count": self.reader.message_count,
                "topics_read": sorted(self.topic_roles),
            },
            "robot": self.embodiment.name,
            "cameras": {c.name: {"topic": c.topic, "compressed": c.compressed} for c in self.embodiment.cameras},
            "target": self.target,
            "reference": self._reference_description(),
            "latency_model": ("measured (wall time of each inference on this machine: results depend on its "
                              "load)" if self.config.latency is None else
                              f"fixed {self.config.latency:.3f} s" + (f" ({self.config.latency_source})"
                                                                       if self.config.latency_source else "")),
            "instruction_source": self.instruction_source,
            "warnings": self.warnings,
            "control_hz": self.loop.control_hz,
            "executor": self.loop.config.executor.strategy,
            "names": list(self.names),
            "horizon": self.horizon,
            "action_dt": self.action_dt,
            "counts": dict(self.counters),
            "chunk_error": chunk_total.summary(self.names),
            "command_error": command_total.summary(self.names),
            "gripper": gripper_total.summary() if gripper_total is not None else None,
            "latency_ms": latency_summary(self.wall_latencies),
            "virtual_latency_ms": latency_summary(self.latencies),
            "inference_errors": self.inference_errors,
            "episodes": [_episode_summary(r, self.names) for r in results],
            "episode_warnings": self.tracker.warnings,
            "sync": {
                "sets_matched": sync.sets_matched,
                "inputs": {name: {"received": s.received, "accepted": s.accepted, "rejected": dict(s.rejected)}
                           for name, s in sync.stats.items()},
            },
            "message_errors": {f"{topic} {problem}": n for (topic, problem), n in
                               {**self.inputs.errors.counts(), **self.decode_errors.counts()}.items()},
            "throughput": {
                "wall_s": wall,
                "messages_per_s": self.counters["messages"] / wall if wall > 0 else None,
                "observations_per_s": obs_rate,
                "bag_mb_per_s": bag_bytes / 1e6 / wall if wall > 0 else None,
            },
        }
        return ReplayResult(summary, results, self.plots, chunk_total, command_total, gripper_total)

    def _reference_description(self) -> str:
        if self.target == "commands":
            gripper = ""
            if self.has_gripper:
                gripper = (f"; gripper: commands on {self.gripper_spec.topic}" if self.gripper_command is not None
                           and self.gripper_spec is not None else "; gripper: its joint state (command not recorded)")
            return f"commands on {self.command_spec.topic} ({self.command_spec.msgtype}){gripper}"
        return f"joint states on {self.embodiment.joint_states.topic} (interpolated)"

    def _sync_diagnosis(self) -> str:
        sync = self.loop.sync
        parts = []
        for name, stats in sync.stats.items():
            if stats.accepted == 0:
                why = f" ({stats.last_error})" if stats.last_error else ""
                parts.append(f"{name}: {stats.received} received, none usable{why}")
            elif stats.rejected:
                parts.append(f"{name}: rejected {dict(stats.rejected)}")
        errors = self.inputs.errors.counts()
        if errors:
            parts.append("undecodable messages: " + ", ".join(f"{t} {p} x{n}" for (t, p), n in errors.items()))
        if sync.sets_matched == 0 and not parts:
            parts.append(f"cameras and joint states never fell within the sync slop ({sync.config.slop} s)")
        elif not parts:
            parts.append("observations were always stale (inputs older than their max_age)")
        return "; ".join(parts)


def _tick_time(item: tuple[EpisodeResult, float, Command]) -> float:
    return item[1]


def _episode_summary(result: EpisodeResult, names: tuple[str, ...]) -> dict[str, Any]:
    chunk = result.chunk_errors.summary(names)
    command = result.command_errors.summary(names)
    return {
        **result.episode.to_dict(),
        "chunks": result.chunks,
        "policy_ticks": result.policy_ticks,
        "held_ticks": result.held_ticks,
        "chunk_mae": chunk["mae"],
        "chunk_mae_per_dim": chunk["mae_per_dim"],
        "command_mae": command["mae"],
        "gripper_agreement": result.gripper.summary()["agreement"] if result.gripper is not None else None,
        "in_totals": result.episode.outcome != "discarded",
    }


def _bag_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _both(first: Any, second: Any) -> Any:
    def handle(msg: Any) -> None:
        first(msg)
        second(msg)

    return handle
