"""The replay's comparison side: what the node under test did, against what the recording says.

`ReplayComparison` keeps the reference signals (recorded commands, joint states), the episode marks, the
predictions and control ticks waiting for their reference to settle, the error sums and the plot series. The
node side (`replay.py`) calls it in stream order (the calls listed in `CALLS`), so the same calls give the same
report whether it runs in the node's own process or in a forked one beside it (`replay_fork.py`): every argument
is a plain value (floats, lists, bytes, numpy arrays), never a live object of the node side.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_policy_node.bagtools.episodes import Episode, EpisodeTracker, decode_episode_event
from vla_policy_node.bagtools.metrics import GripperAgreement, HorizonErrors
from vla_policy_node.bagtools.signals import PlotSeries, Signal
from vla_policy_node.bagtools.topics import EPISODE_EVENT, EPISODE_EVENT_TOPIC, TopicSpec
from vla_policy_node.control.command import ChunkError, CommandSpace
from vla_policy_node.msgs.commands import decode_command, point_command
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.fast_cdr import trajectory_first_point_from_cdr
from vla_policy_node.msgs.joints import JointStateData, decode_float64_array
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.types import ActionChunk
from vla_policy_node.transport.bag import BagMessage, BagReader

# A reference value at time t is final once the bag has been read this far past t (inputs arrive late by their
# transport latency; header stamps of joint states lag their receive times).
SETTLE = 0.2
TICK_BATCH = 512  # settled control ticks compared at once
CHUNK_BATCH = 32  # settled chunks compared at once
DROP_EVERY = 0.5  # seconds of stream time between trimming the reference signals

# The calls the node side makes, in stream order (the forked comparison forwards exactly these).
CALLS = ("joint_state", "command", "gripper_command", "instruction", "episode_event", "tick", "prediction",
         "after_message")


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
class ComparisonOutcome:
    """What the comparison hands back at the end of the bag."""

    episodes: list[Episode]  # in time order, discarded ones included
    results: dict[int, EpisodeResult]  # episode index -> its sums (episodes with something compared)
    horizon: int
    action_dt: float
    plots: PlotData
    counts: dict[str, int]
    message_errors: dict[tuple[str, str], int]
    episode_warnings: list[str]
    reference: str  # what the predictions were compared with, in words


@dataclass
class _PendingChunk:
    result: EpisodeResult
    times: np.ndarray  # [H]
    values: np.ndarray  # [H, D] command space (arm, then gripper)

    @property
    def last_time(self) -> float:
        return float(self.times[-1])


class ReplayComparison:
    """Compares one replay's predictions and commands with one bag's recording.

    target: "commands" (what the arm controller received; the gripper's command if recorded, else its joint
    state) or "joint_states" (interpolated). command_spec / gripper_spec: the recorded command topics.
    fast_commands: JointTrajectory commands decoded straight from CDR (`msgs.fast_cdr`), else by rosbags."""

    def __init__(self, embodiment: Embodiment, space: CommandSpace, reader: BagReader, *, target: str,
                 command_spec: TopicSpec, gripper_spec: TopicSpec | None, record_gripper_command: bool,
                 fast_commands: bool, implicit_episode: Episode | None, instruction: str,
                 reference_max_gap: float, plot_dt: float) -> None:
        self.embodiment = emb = embodiment
        self.space = space
        self.reader = reader
        self.target = target
        self.command_spec = command_spec
        self.gripper_spec = gripper_spec
        self.fast_commands = fast_commands
        self.implicit_episode = implicit_episode
        self.default_instruction = instruction
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
        self.state = Signal(emb.state_dim, "linear", max_gap=reference_max_gap)
        self.recorded_arm = Signal(self.n_arm, "hold") if target == "commands" else None
        self.recorded_gripper = Signal(1, "hold") if record_gripper_command else None
        self.tracker = EpisodeTracker()
        self.episode_results: dict[int, EpisodeResult] = {}
        self.decode_errors = MessageErrorCounter()
        self.stream_time = -math.inf
        self.pending: list[_PendingChunk] = []
        self._pending_first = math.inf  # the earliest last_time of `pending`
        self.settled: list[tuple[_PendingChunk, float | None]] = []  # (chunk, its episode's end when it settled)
        self.pending_ticks: list[tuple[EpisodeResult, float, list[float], float | None]] = []
        self._next_drop = -math.inf
        self.counts = {"chunks_outside_episodes": 0, "chunks_unconvertible": 0}
        self.plots = PlotData(self.names, PlotSeries(self.dim, plot_dt), PlotSeries(self.dim, plot_dt),
                              PlotSeries(self.dim, 0.0), [])

    # --------------------------------------------------------------------------- the node side's calls
    def joint_state(self, stamp: float, names: tuple[str, ...], positions: list[float], t: float) -> None:
        """A joint state the node decoded (received at t) into the reference."""
        data = JointStateData(stamp, names, np.array(positions), None, None)
        try:
            state = data.positions_for(self.embodiment.state_names)  # computed once per embodiment
        except MessageError as error:
            self.decode_errors.record(error, self.embodiment.joint_states.topic)
            return
        stamp = stamp if stamp > 0 else t
        self.state.append(stamp, state)
        if self.target == "joint_states" or self.recorded_gripper is None:
            self._plot_reference(stamp)

    def command(self, raw: bytes, timestamp_ns: int) -> None:
        """A recorded arm command (CDR bytes) into the reference."""
        assert self.recorded_arm is not None
        spec, t = self.command_spec, timestamp_ns * 1e-9
        point = trajectory_first_point_from_cdr(raw) if self.fast_commands else None
        if point is not None:
            arm = self.decode_errors.decode(point_command, *point, self.space.arm_names, topic=spec.topic)
        else:
            msg = self._deserialize(spec.topic, spec.msgtype, raw, timestamp_ns)
            arm = self.decode_errors.decode(decode_command, msg, self.embodiment.controller.interface,
                                            self.space.arm_names, topic=spec.topic)
        if arm is not None:
            self.recorded_arm.append(t, arm)
            self._plot_reference(t)

    def gripper_command(self, raw: bytes, timestamp_ns: int) -> None:
        """A recorded gripper command (CDR bytes) into the reference."""
        assert self.recorded_gripper is not None and self.gripper_spec is not None
        spec, t = self.gripper_spec, timestamp_ns * 1e-9
        msg = self._deserialize(spec.topic, spec.msgtype, raw, timestamp_ns)
        value = self.decode_errors.decode(decode_float64_array, msg, 1, topic=spec.topic)
        if value is not None:
            self.recorded_gripper.append(t, value)

    def instruction(self, text: str) -> None:
        self.tracker.set_instruction(text)

    def episode_event(self, raw: bytes, timestamp_ns: int) -> None:
        """An episode mark (CDR bytes) applied; one that cannot be decoded is reported."""
        msg = self._deserialize(EPISODE_EVENT_TOPIC, EPISODE_EVENT, raw, timestamp_ns)
        try:
            event = decode_episode_event(msg)
        except ValueError as error:
            self.tracker.warnings.append(f"t={timestamp_ns * 1e-9:.3f}: bad episode event: {error}")
            return
        self.tracker.apply_event(event)

    def tick(self, now: float, arm: list[float], gripper: float | None, by_policy: bool) -> None:
        """A command the node sent at `now` (by_policy: the policy's, not a hold nor the teleoperator's)."""
        executed = self.plots.executed
        if executed.wants(now):
            executed.add(now, self._command_values(arm, gripper))
        result = self._episode_at(now)
        if result is None:
            return
        if not by_policy:
            result.held_ticks += 1
            return
        result.policy_ticks += 1
        self.pending_ticks.append((result, now, arm, gripper))  # its values are built in the batch compared

    def prediction(self, state: np.ndarray, chunk: ActionChunk) -> None:
        """A chunk the policy predicted for an observation with joint state `state`."""
        try:
            arm, gripper = self.space.convert_chunk(chunk, state)
        except ChunkError:
            self.counts["chunks_unconvertible"] += 1
            return
        if self.horizon == 0:
            self.horizon, self.action_dt = chunk.horizon, chunk.dt
        values = np.column_stack([arm, gripper]) if gripper is not None else arm
        self.plots.predicted_first.add(chunk.stamp, values[0])
        result = self._episode_at(chunk.stamp)
        if result is None or chunk.horizon != self.horizon:
            self.counts["chunks_outside_episodes"] += 1
            return
        result.chunks += 1
        item = _PendingChunk(result, chunk.times, values)
        self.pending.append(item)
        self._pending_first = min(self._pending_first, item.last_time)

    def after_message(self, t: float) -> None:
        """The stream has been read up to t: compare what has settled."""
        self.stream_time = t
        self._evaluate(final=False)

    def finish(self, start: float, end: float) -> ComparisonOutcome:
        """The bag [start, end] is read: compare everything left."""
        episodes = self._episodes(start, end)
        self._evaluate(final=True)
        self.plots.episodes = episodes
        return ComparisonOutcome(episodes, self.episode_results, self.horizon, self.action_dt, self.plots,
                                 dict(self.counts), self.decode_errors.counts(), self.tracker.warnings,
                                 self._reference_description())

    # ----------------------------------------------------------------------------------------- reference
    def _deserialize(self, topic: str, msgtype: str, raw: bytes, timestamp_ns: int) -> Any:
        """A message read as CDR bytes, deserialized by rosbags (BagError naming it, as when reading)."""
        return self.reader.deserialize(BagMessage(topic, msgtype, timestamp_ns, None, raw))

    def _episodes(self, start: float, end: float) -> list[Episode]:
        if self.implicit_episode is None:
            return self.tracker.finish(start, end)
        episode = self.implicit_episode
        episode.end = end
        episode.instruction = self.tracker.first_instruction or self.default_instruction
        return [episode]

    def _command_values(self, arm: list[float], gripper: float | None) -> np.ndarray:
        if self.has_gripper:
            return np.concatenate((arm, (math.nan if gripper is None else gripper,)))
        return np.asarray(arm, dtype=np.float64)

    def _reference(self, times: np.ndarray) -> np.ndarray:
        """The reference at `times` [n] in command space [n, D]; NaN where it is not defined."""
        out = np.full((times.shape[0], self.dim), np.nan)
        state, state_ok = self.state.sample(times)
        state[~state_ok] = np.nan
        if self.recorded_arm is not None:
            arm, ok = self.recorded_arm.sample(times)
            arm[~ok] = np.nan
            out[:, : self.n_arm] = arm
        else:
            out[:, : self.n_arm] = state[:, : self.n_arm]
        if self.has_gripper:
            if self.recorded_gripper is not None:
                grip, ok = self.recorded_gripper.sample(times)
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
        if self.recorded_arm is not None:
            arm = self.recorded_arm.sample_at(t)
            if arm is not None:
                out[:n_arm] = arm
        elif state is not None:
            out[:n_arm] = state[:n_arm]
        if self.has_gripper:
            if self.recorded_gripper is not None:
                grip = self.recorded_gripper.sample_at(t)
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

    def _reference_description(self) -> str:
        if self.target == "commands":
            gripper = ""
            if self.has_gripper:
                gripper = (f"; gripper: commands on {self.gripper_spec.topic}" if self.recorded_gripper is not None
                           and self.gripper_spec is not None else "; gripper: its joint state (command not recorded)")
            return f"commands on {self.command_spec.topic} ({self.command_spec.msgtype}){gripper}"
        return f"joint states on {self.embodiment.joint_states.topic} (interpolated)"

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
            for signal in (self.state, self.recorded_arm, self.recorded_gripper):
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

    def _compare_ticks(self, ticks: list[tuple[EpisodeResult, float, list[float], float | None]]) -> None:
        if not ticks:
            return
        times = np.array([t for _, t, _, _ in ticks])
        values = np.empty((len(ticks), self.dim))
        values[:, : self.n_arm] = [arm for _, _, arm, _ in ticks]
        if self.has_gripper:
            values[:, self.n_arm] = [math.nan if gripper is None else gripper for _, _, _, gripper in ticks]
        errors = values - self._reference(times)
        by_result: dict[int, list[int]] = {}
        for i, (result, _, _, _) in enumerate(ticks):
            by_result.setdefault(result.episode.index, []).append(i)
        for index, rows in by_result.items():
            result = self.episode_results[index]
            result.command_errors.add(np.zeros(len(rows), np.int64), errors[rows])


def _tick_time(item: tuple[EpisodeResult, float, list[float], float | None]) -> float:
    return item[1]

