"""The scripted expert: IK waypoints (above the target block, then down to the reach point) joined by
minimum-jerk segments in joint space. It sees the true block positions (it is the demonstrator, not the
policy), and its plan is a function of time that a driver streams to the arm's command topic."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from vla_policy_node.sim.arm import GRIPPER_OPEN, ArmSim
from vla_policy_node.sim.ik import ToolIK
from vla_policy_node.sim.tasks import HOME, Task, Workspace, reach_point


@dataclass(frozen=True)
class ExpertConfig:
    approach_height: float = 0.12  # first waypoint: this far above the reach point
    joint_speed: float = 1.0  # rad/s of the fastest joint, on average over a segment
    min_segment: float = 0.6  # s
    settle: float = 0.4  # s held at the goal at the end of a demonstration


def min_jerk(s: np.ndarray | float) -> np.ndarray | float:
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


@dataclass(frozen=True)
class JointPlan:
    """Waypoints [K, 6] reached at `times` [K] (times[0] = 0 is the start pose); constant after the last."""

    waypoints: np.ndarray
    times: np.ndarray
    gripper: float = GRIPPER_OPEN  # held throughout

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    def gripper_at(self, t: float) -> float:
        return self.gripper

    def at(self, t: float) -> np.ndarray:
        if t >= self.times[-1]:
            return self.waypoints[-1].copy()
        k = int(np.searchsorted(self.times, t, side="right")) - 1
        k = max(0, k)
        s = (t - self.times[k]) / (self.times[k + 1] - self.times[k])
        return self.waypoints[k] + min_jerk(s) * (self.waypoints[k + 1] - self.waypoints[k])


class ReachExpert:
    def __init__(self, sim: ArmSim, config: ExpertConfig | None = None,
                 workspace: Workspace | None = None) -> None:
        self.sim = sim
        self.config = config or ExpertConfig()
        self.workspace = workspace or Workspace()
        self.ik = ToolIK(sim.model)

    def plan(self, task: Task, start: np.ndarray) -> JointPlan:
        """From the arm's `start` pose to above the target block, then down to its reach point."""
        goal = reach_point(self.sim, task.target, self.workspace)
        above = goal + np.array([0.0, 0.0, self.config.approach_height])
        q_above, err_above = self.ik.solve(above, start, HOME)
        q_goal, err_goal = self.ik.solve(goal, q_above, q_above)
        if max(err_above, err_goal) > 5e-3:
            raise RuntimeError(f"task {task.seed}: IK cannot reach {goal} (error {max(err_above, err_goal):.3f} m)")
        waypoints = np.stack([start, q_above, q_goal])
        times = [0.0]
        for a, b in itertools.pairwise(waypoints):
            seconds = float(np.abs(b - a).max()) / self.config.joint_speed
            times.append(times[-1] + max(self.config.min_segment, seconds))
        return JointPlan(waypoints, np.array(times))
