"""Closed-loop evaluation on the simulated arm: sim driver, policy node and command mux, episode by episode.

    system = ClosedLoopSystem(robot, policy)          # the three nodes' runtimes on one InProcessBus
    result = system.run_episode(seed)                  # EpisodeResult: success, time, latencies, frames
    report = evaluate(system, seeds)                   # EvaluationReport: success rate, times, latency figures

The nodes are the real ones (SimArmDriver, PolicyRuntime, MuxRuntime: the code `policy_node` and
`command_mux_node` run), wired by topics exactly as over DDS, but on a simulated clock: each 10 ms tick steps
the physics and publishes what is due, runs one inference when the policy loop asks for one (the clock waits
for it, so results do not depend on the machine's speed; the wall-clock latency is measured and reported), then
the policy's and the mux's control steps. The operator's part is played here: the instruction goes to
/vla/instruction, the layout to /sim_arm/reset. The policy and mux runtimes are created afresh per episode (a
node restart), since the arm is teleported between episodes; a stopped node's transport is closed, so its
latched messages go with it, and each new node gets the driver's latched /robot_description as over DDS.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from vla_policy_node.control.config import ControlConfig, ExecutorConfig
from vla_policy_node.control.mux_file import load_mux_file
from vla_policy_node.nodes.mux_runtime import MuxNodeParams, MuxRuntime, default_mux_config_path
from vla_policy_node.nodes.node_support import STRING
from vla_policy_node.nodes.policy_runtime import InferencePolicy, PolicyNodeParams, PolicyRuntime
from vla_policy_node.nodes.sim_arm_driver import SimArmDriver, SimArmParams
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.inprocess import InProcessBus
from vla_policy_node.transport.qos import LATCHED_QOS

log = logging.getLogger(__name__)
# simulated seconds an episode may take: about 3x the expert's (reach ~1.5 s, pick-and-place ~5.5 s)
TIME_LIMITS = {"reach": 6.0, "pick_place": 15.0}
# the policy node's chunk execution strategy per task (its `strategy` parameter). Pick-and-place runs temporal
# ensembling: averaging the overlapping chunks' predictions of each step damps the flow head's sample-to-sample
# scatter, which otherwise drifts the descent a centimetre or two off the block and the grasp slips. Chosen on
# layouts 100-139 (not the reported 0-49): the shipped checkpoint 90% with ensemble, 65% with rtc, 68% synchronous.
STRATEGIES = {"reach": "rtc", "pick_place": "ensemble"}


@dataclass(frozen=True)
class FrameNote:
    """What a recorded frame shows: its time in the episode and where the task's objects are in it (pixels of
    the recorded camera: "block", the named block; "goal", where it must go, for pick-and-place)."""

    time: float
    marks: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    instruction: str
    success: bool
    time: float  # simulated seconds until success (or the time limit)
    final_distance: float
    latencies_ms: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # scene camera, when recorded
    notes: list[FrameNote] = field(default_factory=list)  # one per recorded frame


@dataclass(frozen=True)
class EvaluationReport:
    episodes: list[EpisodeResult]
    wall_seconds: float

    @property
    def success_rate(self) -> float:
        return float(np.mean([e.success for e in self.episodes])) if self.episodes else math.nan

    def summary(self) -> dict[str, float]:
        latencies = np.concatenate([e.latencies_ms for e in self.episodes if e.latencies_ms] or [np.zeros(0)])
        successful = [e.time for e in self.episodes if e.success]
        pct = (lambda q: float(np.percentile(latencies, q))) if latencies.size else (lambda q: math.nan)
        return {
            "episodes": len(self.episodes), "successes": int(sum(e.success for e in self.episodes)),
            "success_rate": self.success_rate,
            "episode_time_mean_s": float(np.mean(successful)) if successful else math.nan,
            "latency_p50_ms": pct(50), "latency_p90_ms": pct(90), "latency_max_ms": pct(100),
            "inferences": int(latencies.size), "wall_seconds": self.wall_seconds,
        }


class ClosedLoopSystem:
    """The sim arm, a policy node and a command mux on one in-process bus (see the module docstring)."""

    def __init__(self, robot: Embodiment, policy: InferencePolicy, *, time_limit: float | None = None,
                 mux: bool = True, task: str = "reach", strategy: str | None = None) -> None:
        """time_limit: simulated seconds per episode (default: the task kind's, TIME_LIMITS); strategy: the
        policy node's chunk execution strategy (default: the task kind's, STRATEGIES)."""
        self.robot = robot
        self.policy = policy
        self.time_limit = TIME_LIMITS[task] if time_limit is None else time_limit
        self.control = ControlConfig(executor=replace(ExecutorConfig(), strategy=strategy or STRATEGIES[task]))
        self.bus = InProcessBus(clock=1.0)
        self.driver = SimArmDriver(self.bus.transport("sim_arm_driver"), robot, SimArmParams(task=task))
        self.operator = self.bus.transport("operator")
        self._instruction_pub = self.operator.publisher("/vla/instruction", STRING, LATCHED_QOS)
        self.use_mux = mux
        self.policy_node: PolicyRuntime | None = None
        self.mux_node: MuxRuntime | None = None
        self.period = 1.0 / robot.rates.control_hz

    def start_nodes(self, instruction: str) -> None:
        """(Re)start the policy node (actuating) and the mux, as after `ros2 launch`."""
        self.stop_nodes()
        # without the mux the policy commands the controller directly and owns the e-stop latch
        command_topic = "/vla/policy_command" if self.use_mux else self.robot.controller.topic
        gripper_topic = "/vla/policy_gripper_command" if self.use_mux else (
            self.robot.gripper.topic if self.robot.gripper else "/vla/policy_gripper_command")
        params = PolicyNodeParams(instruction=instruction, dry_run=False, command_topic=command_topic,
                                  gripper_command_topic=gripper_topic, latch_estop=not self.use_mux,
                                  control=self.control)
        self.policy_node = PolicyRuntime(self.bus.transport("vla_policy"), self.robot, self.policy, params)
        if self.use_mux:
            path = default_mux_config_path()
            mux_params = (MuxNodeParams.from_mux_file(load_mux_file(path)) if path is not None else MuxNodeParams())
            self.mux_node = MuxRuntime(self.bus.transport("vla_command_mux"), self.robot, mux_params)

    def stop_nodes(self) -> None:
        self.kill_policy()
        if self.mux_node is not None:
            self.mux_node.close()
            self.mux_node.transport.close()
            self.mux_node = None

    def kill_policy(self) -> None:
        """The policy node dies: no more commands from it (the mux must hold the arm), its latched ones gone."""
        if self.policy_node is not None:
            self.policy_node.close()
            self.policy_node.transport.close()
            self.policy_node = None

    def tick(self) -> float | None:
        """One control period of the whole system; the wall-clock inference latency (s) if the model ran."""
        self.bus.clock += self.period
        self.driver.step()
        latency = None
        if self.policy_node is not None:
            if self.policy_node.inference_step():
                latency = self.policy_node.last_latency
            self.policy_node.control_step()
        if self.mux_node is not None:
            self.mux_node.control_step()
        return latency

    def begin_episode(self, seed: int) -> str:
        self.bus.clock += 1.0
        task = self.driver.reset(seed)
        self.driver.step()
        self.start_nodes(task.instruction)
        self._instruction_pub.publish(self.operator.new_message(STRING, data=task.instruction))
        return task.instruction

    def run_episode(self, seed: int, *, record_frames: bool = False,
                    on_tick: Callable[[ClosedLoopSystem, float], None] | None = None) -> EpisodeResult:
        instruction = self.begin_episode(seed)
        t0 = self.bus.clock
        latencies: list[float] = []
        frames: list[np.ndarray] = []
        notes: list[FrameNote] = []
        frame_every = max(1, round(0.1 / self.period))
        ticks = 0
        while self.bus.clock - t0 < self.time_limit and not self.driver.succeeded:
            latency = self.tick()
            if latency is not None:
                latencies.append(1000.0 * latency)
            if record_frames and ticks % frame_every == 0:
                frames.append(self.driver.sim.render(self.robot.cameras[0].name))
                notes.append(self.frame_note(self.bus.clock - t0))
            if on_tick is not None:
                on_tick(self, self.bus.clock - t0)
            ticks += 1
        status = self.driver.task_status(self.bus.clock)
        if record_frames:
            frames.append(self.driver.sim.render(self.robot.cameras[0].name))
            notes.append(self.frame_note(self.bus.clock - t0))
        self.stop_nodes()
        return EpisodeResult(seed, instruction, self.driver.succeeded, self.bus.clock - t0, status["distance"],
                             latencies, frames, notes)

    def frame_note(self, t: float) -> FrameNote:
        """Time and the task's objects in the recorded camera's pixels, for annotated image strips."""
        sim, task, camera = self.driver.sim, self.driver.task, self.robot.cameras[0].name
        if task is None:
            return FrameNote(t, {})
        marks = {"block": sim.block_position(task.target)}
        if task.place_on:
            marks["goal"] = self.driver.target_point()
        return FrameNote(t, {name: tuple(float(v) for v in sim.project(camera, point))  # type: ignore[misc]
                             for name, point in marks.items() if point is not None})

    def close(self) -> None:
        self.stop_nodes()
        self.driver.close()


def evaluate(system: ClosedLoopSystem, seeds: Sequence[int], *, record_first: bool = False,
             progress: Callable[[EpisodeResult], None] | None = None) -> EvaluationReport:
    start = time.perf_counter()
    episodes = []
    for i, seed in enumerate(seeds):
        result = system.run_episode(int(seed), record_frames=record_first and i == 0)
        episodes.append(result)
        if progress is not None:
            progress(result)
    return EvaluationReport(episodes, time.perf_counter() - start)
