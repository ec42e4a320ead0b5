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

The comparison (`replay_compare.py`) runs in a forked process beside the node side by default
(`replay_fork.py`; `ReplayConfig.parallel`): the node side is sequential, the comparison only consumes it, so the
two use two cores. Either way the report is the same, bit for bit.

Memory stays bounded for any bag length: messages stream from the bag, the reference keeps a few seconds of
samples, errors are accumulated as sums, and plot series are decimated.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from vla_policy_node.bagtools.episodes import Episode, EventKind, decode_episode_event
from vla_policy_node.bagtools.metrics import GripperAgreement, HorizonErrors, latency_summary
from vla_policy_node.bagtools.replay_compare import ComparisonOutcome, EpisodeResult, PlotData, ReplayComparison
from vla_policy_node.bagtools.replay_fork import ComparisonProcessError, ForkedComparison, can_fork
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
from vla_policy_node.control.config import ControlConfig, with_estop_only
from vla_policy_node.control.inference import InferencePolicy, InferenceResult, InferenceStep
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.kinematics.robot_kinematics import DESCRIPTION_TOPIC, RobotKinematics
from vla_policy_node.msgs.fast_cdr import image_from_cdr, joint_state_from_cdr, same_definitions, string_from_cdr
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE
from vla_policy_node.msgs.joints import JOINT_STATE, JOINT_TRAJECTORY, JointStateData
from vla_policy_node.msgs.observation_input import ObservationInput
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.bag import BagError, BagMessage, BagReader

Target = Literal["auto", "commands", "joint_states"]
ESTOP_TOPIC = "/vla/estop"  # the policy node's e-stop input (PolicyNodeParams.estop_topic)
BOOL = "std_msgs/msg/Bool"


class ReplayError(RuntimeError):
    """The replay could not produce a complete report; the message names the bag and the problem."""


@dataclass(frozen=True)
class ReplayConfig:
    """target: what predictions are compared with (auto: the recorded commands if the bag has them, else the
    joint states). latency: seconds of virtual time an inference takes; None = its measured wall time.
    reference_max_gap: joint-state samples further apart than this are not interpolated across.
    parallel: compare with the recording in a forked process beside the node side (where fork exists); False:
    in this process, one after the other (the same report, slower)."""

    target: Target = "auto"
    latency: float | None = None
    latency_source: str = ""  # where a fixed latency came from (the report says it)
    instruction: str = ""
    control: ControlConfig = field(default_factory=ControlConfig)
    reference_max_gap: float = 0.25
    plot_dt: float = 0.02
    progress: bool = False
    parallel: bool = True

    def __post_init__(self) -> None:
        if self.target not in ("auto", "commands", "joint_states"):
            raise ValueError(f"target must be auto, commands or joint_states, got {self.target!r}")
        if self.latency is not None and not (math.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be >= 0 seconds or None (measured), got {self.latency}")
        if not self.reference_max_gap > 0:
            raise ValueError("reference_max_gap must be positive")


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
        except ComparisonProcessError as error:
            raise ReplayError(f"{path}: {error}") from error


class _Session:
    """One replay of one bag: the node side (the state of the three virtual threads), which calls the comparison
    (`ReplayComparison`, here or in a forked process) with what it read and did."""

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
        record_gripper_command = (self.target == "commands" and self.loop.space.gripper_name is not None
                                  and has_topic(topics, counts, self.gripper_spec))
        self.topic_roles = self._topic_roles(topics, has_commands, record_gripper_command)
        self.raw_topics = self._raw_topics(topics)
        self.has_marks = counts.get(EPISODE_EVENT_TOPIC, 0) > 0 and topics.get(EPISODE_EVENT_TOPIC) == EPISODE_EVENT
        self.warnings: list[str] = []
        self.instruction_source = self._instruction_source(topics, counts)
        self.comparison = ReplayComparison(
            emb, self.loop.space, reader, target=self.target, command_spec=self.command_spec,
            gripper_spec=self.gripper_spec, record_gripper_command=record_gripper_command,
            fast_commands=self.command_spec.topic in self.raw_topics,
            implicit_episode=None if self.has_marks else Episode(0, reader.start_ns * 1e-9, None, implicit=True),
            instruction=config.instruction, reference_max_gap=config.reference_max_gap, plot_dt=config.plot_dt)
        # what the node side calls: the comparison itself, or its stand-in forwarding to a forked process
        self.compare: ReplayComparison | ForkedComparison = self.comparison
        self.period = self.loop.period
        self.next_tick = math.nan
        self.in_flight: _InFlight | None = None
        self.latencies: list[float] = []
        self.wall_latencies: list[float] = []
        self.inference_errors: list[str] = []
        self.counters = {"messages": 0, "sensor_messages": 0, "observations": 0, "inferences": 0,
                         "chunks_accepted": 0, "chunks_rejected": 0, "chunks_outside_episodes": 0,
                         "chunks_unconvertible": 0, "ticks": 0, "commands": 0}

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

    def _topic_roles(self, topics: dict[str, str], has_commands: bool, gripper_command: bool) -> dict[str, str]:
        """topic -> role, for every topic this replay reads (the node's subscriptions the bag has, and the
        reference and episode topics)."""
        roles: dict[str, str] = {}
        for topic, (msgtype, _) in self.node_handlers.items():
            if topics.get(topic) == msgtype:
                roles[topic] = "node"
        if self.target == "commands" and has_commands:
            roles[self.command_spec.topic] = "command"
        if gripper_command and self.gripper_spec is not None:
            roles[self.gripper_spec.topic] = "gripper_command"
        if topics.get(EPISODE_EVENT_TOPIC) == EPISODE_EVENT:
            roles[EPISODE_EVENT_TOPIC] = "episode_event"
        return roles

    def _raw_topics(self, topics: dict[str, str]) -> set[str]:
        """Topics read as CDR bytes and decoded by `msgs.fast_cdr` (the general path when it defers): the joint
        states, raw camera images, instructions, and JointTrajectory commands."""
        store = self.reader.typestore
        raw: set[str] = set()
        for msgtype in (IMAGE, STRING):
            if same_definitions(store, msgtype):
                raw.update(t for t, (handled, _) in self.node_handlers.items()
                           if handled == msgtype and self.topic_roles.get(t) == "node")
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
        frozen = gc.get_freeze_count() == 0
        if frozen:
            gc.freeze()
        try:
            return self._run()
        finally:
            if frozen:
                gc.unfreeze()

    def _run(self) -> ReplayResult:
        wall_start = time.perf_counter()
        forked = ForkedComparison(self.comparison) if self.config.parallel and can_fork() else None
        if forked is not None:
            self.compare = forked
        try:
            last = self._stream()
            outcome = self.compare.finish(self.reader.start_ns * 1e-9, last)
        finally:
            if forked is not None:
                forked.close()
        wall = time.perf_counter() - wall_start
        return self._result(outcome, wall)

    def _stream(self) -> float:
        """The node side through the whole bag; the time of its last message."""
        compare = self.compare
        read_counts: dict[str, int] = dict.fromkeys(self.topic_roles, 0)
        joint_topic = self.embodiment.joint_states.topic
        start_ns = self.reader.start_ns
        self.next_tick = start_ns * 1e-9
        last = start_ns * 1e-9
        total = sum(self.counts.get(topic, 0) for topic in self.topic_roles)
        # no bar object at all without --progress (tqdm's lock imports multiprocessing on first use)
        bar = (tqdm(total=total, unit="msg", desc=f"replay {self.path.name}", mininterval=0.5)
               if self.config.progress else None)
        # The recorded commands and the episode marks are read as CDR bytes and decoded by the comparison.
        raw_topics = self.raw_topics | {t for t, role in self.topic_roles.items() if role != "node"}
        for item in self.reader.messages(list(self.topic_roles), raw_topics=raw_topics):
            t = item.timestamp_ns * 1e-9
            last = max(last, t)
            self._advance(t)
            self.now = t
            read_counts[item.topic] += 1
            self.counters["messages"] += 1
            role = self.topic_roles[item.topic]
            if role == "node":
                if item.topic == joint_topic:  # decoded once, for the reference and the node
                    data = self._joint_state(item)
                    if data is not None:
                        compare.joint_state(data.stamp, data.names, data.positions.tolist(), t)
                    self.inputs.on_joint_state_data(data)
                else:
                    msg = self._message(item)
                    if item.topic == INSTRUCTION_TOPIC and item.msgtype == STRING:
                        compare.instruction(str(msg.data))
                    self.node_handlers[item.topic][1](msg)
                self.counters["sensor_messages"] += 1
                self._try_inference(t)
            elif role == "command":
                compare.command(bytes(item.raw), item.timestamp_ns)
            elif role == "gripper_command":
                compare.gripper_command(bytes(item.raw), item.timestamp_ns)
            elif role == "episode_event":
                compare.episode_event(bytes(item.raw), item.timestamp_ns)
                if self.instruction_source == "episode start marks":
                    self._instruct_from_mark(item)
            compare.after_message(t)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self._check_complete(read_counts)
        self._advance(last)
        return last

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
        self.compare.tick(now, command.arm.tolist(), command.gripper, command.source == "policy" and not command.hold)

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
            self.compare.prediction(request.obs.state, result.chunk)

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

    # ------------------------------------------------------------------------------------------- inputs
    def _message(self, item: BagMessage) -> Any:
        """The message of a node input (raw camera frames and instructions: the CDR fast path's, else rosbags')."""
        if item.raw is None:
            return item.msg
        msg = image_from_cdr(item.raw) if item.msgtype == IMAGE else string_from_cdr(item.raw)
        return msg if msg is not None else self.reader.deserialize(item)

    def _joint_state(self, item: BagMessage) -> JointStateData | None:
        """A joint state message decoded (the CDR fast path, else the node's decoder, which counts failures)."""
        if item.raw is not None:
            data = joint_state_from_cdr(item.raw)
            if data is not None:
                return data
        return self.inputs.decode_joint_state(self.reader.deserialize(item))

    def _instruct_from_mark(self, item: BagMessage) -> None:
        """An episode's start mark that names an instruction sets it (the bag has no /vla/instruction); a mark
        that cannot be decoded is the comparison's to report."""
        try:
            event = decode_episode_event(self.reader.deserialize(item))
        except ValueError:
            return
        if event.kind == EventKind.START and event.instruction:
            self._set_instruction(event.instruction)

    # ------------------------------------------------------------------------------------------- result
    def _result(self, outcome: ComparisonOutcome, wall: float) -> ReplayResult:
        sync = self.loop.sync
        self.counters.update(outcome.counts)
        if self.counters["observations"] == 0:
            raise ReplayError(f"{self.path}: no observation reached the policy. {self._sync_diagnosis()}")
        if self.counters["inferences"] == 0 and self.inference_errors:
            raise ReplayError(f"{self.path}: every inference failed; first error: {self.inference_errors[0]}")
        names, plots = outcome.plots.names, outcome.plots
        dim = len(names)
        horizon = max(outcome.horizon, 1)
        chunk_total = HorizonErrors(horizon, dim)
        command_total = HorizonErrors(1, dim)
        gripper_total = (GripperAgreement(horizon, self.comparison.gripper_threshold)
                         if self.comparison.has_gripper else None)
        results = [outcome.results[e.index] for e in outcome.episodes if e.index in outcome.results]
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
                f"({outcome.reference}) has no samples at the predicted times")
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
            "reference": outcome.reference,
            "latency_model": ("measured (wall time of each inference on this machine: results depend on its "
                              "load)" if self.config.latency is None else
                              f"fixed {self.config.latency:.3f} s" + (f" ({self.config.latency_source})"
                                                                       if self.config.latency_source else "")),
            "instruction_source": self.instruction_source,
            "warnings": self.warnings,
            "control_hz": self.loop.control_hz,
            "executor": self.loop.config.executor.strategy,
            "names": list(names),
            "horizon": outcome.horizon,
            "action_dt": outcome.action_dt,
            "counts": dict(self.counters),
            "chunk_error": chunk_total.summary(names),
            "command_error": command_total.summary(names),
            "gripper": gripper_total.summary() if gripper_total is not None else None,
            "latency_ms": latency_summary(self.wall_latencies),
            "virtual_latency_ms": latency_summary(self.latencies),
            "inference_errors": self.inference_errors,
            "episodes": [_episode_summary(r, names) for r in results],
            "episode_warnings": outcome.episode_warnings,
            "sync": {
                "sets_matched": sync.sets_matched,
                "inputs": {name: {"received": s.received, "accepted": s.accepted, "rejected": dict(s.rejected)}
                           for name, s in sync.stats.items()},
            },
            "message_errors": {f"{topic} {problem}": n for (topic, problem), n in
                               {**self.inputs.errors.counts(), **outcome.message_errors}.items()},
            "throughput": {
                "wall_s": wall,
                "messages_per_s": self.counters["messages"] / wall if wall > 0 else None,
                "observations_per_s": obs_rate,
                "bag_mb_per_s": bag_bytes / 1e6 / wall if wall > 0 else None,
            },
        }
        return ReplayResult(summary, results, plots, chunk_total, command_total, gripper_total)

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
