"""Language-conditioned tabletop tasks: random block layouts, "reach the <color> block" instructions, success.

A task is (layout, target color, instruction); `TaskSampler(seed)` draws them reproducibly. Success for reach:
the tool tip comes within `success_radius` of the point just above the target block's top face.

A sampler is also the task kind's rules, as the driver needs them (`TaskKind`): success, progress (a distance),
the target point and the environment state published for training. `sim.pick_place` is the other kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vla_policy_node.sim.arm import GRIPPER_OPEN, ArmSim, BlockPose, Layout
from vla_policy_node.sim.scene import SceneConfig

REACH_TEMPLATE = "reach the {color} block"
_REACH_RE = re.compile(r"reach the (\w+) block")
# the arm's rest pose: tool 0.35 m above the table at x = 0.25, pointing down, out of the scene camera's way
HOME = np.array([0.0, -0.289, 1.904, 0.0, 1.526, 0.0])


@dataclass(frozen=True)
class Workspace:
    x: tuple[float, float] = (0.34, 0.58)
    y: tuple[float, float] = (-0.2, 0.2)
    min_separation: float = 0.12  # between block centres: each block is unambiguous in every image
    reach_height: float = 0.04  # the reach point: this far above a block's top face
    success_radius: float = 0.05
    home_noise: float = 0.05  # rad, uniform per joint, on the initial arm pose


@dataclass(frozen=True)
class Task:
    seed: int
    layout: Layout
    target: str  # color of the target block
    instruction: str
    initial_arm: np.ndarray
    place_on: str = ""  # color of the pad the block goes on (pick-and-place), "" for reach
    initial_gripper: float = GRIPPER_OPEN


class TaskKind(Protocol):
    """What a driver needs of a kind of task: draw one, and judge it in the running simulation."""

    kind: str
    state_names: tuple[str, ...]  # what `env_state` holds

    def task(self, seed: int) -> Task: ...

    def success(self, sim: ArmSim, task: Task) -> bool: ...

    def distance(self, sim: ArmSim, task: Task) -> float: ...

    def target_point(self, sim: ArmSim, task: Task) -> np.ndarray: ...

    def env_state(self, sim: ArmSim, task: Task) -> np.ndarray: ...


def parse_reach(instruction: str) -> str | None:
    """The color named in a reach instruction, or None."""
    match = _REACH_RE.search(instruction.lower())
    return match.group(1) if match else None


def sample_layout(rng: np.random.Generator, colors: tuple[str, ...], workspace: Workspace) -> Layout:
    """All `colors` placed uniformly in the workspace, at least `min_separation` apart (rejection sampling)."""
    for _ in range(1000):
        xy = np.column_stack([rng.uniform(*workspace.x, len(colors)), rng.uniform(*workspace.y, len(colors))])
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(colors))
        if gaps.min() >= workspace.min_separation:
            yaws = rng.uniform(-np.pi / 4, np.pi / 4, len(colors))
            return Layout({c: BlockPose(float(x), float(y), float(a)) for c, (x, y), a in zip(colors, xy, yaws,
                                                                                              strict=True)})
    raise RuntimeError("could not place the blocks; the workspace is too small for min_separation")


class TaskSampler:
    """Reach tasks from a seed: task i of sampler(seed) is always the same."""

    kind = "reach"
    state_names = ("x", "y", "z")

    def __init__(self, scene: SceneConfig | None = None, workspace: Workspace | None = None) -> None:
        self.scene = scene or SceneConfig()
        self.workspace = workspace or Workspace()

    def task(self, seed: int) -> Task:
        rng = np.random.default_rng(seed)
        layout = sample_layout(rng, self.scene.colors, self.workspace)
        target = str(rng.choice(self.scene.colors))
        arm = HOME + rng.uniform(-self.workspace.home_noise, self.workspace.home_noise, len(HOME))
        return Task(seed, layout, target, REACH_TEMPLATE.format(color=target), arm)

    def success(self, sim: ArmSim, task: Task) -> bool:
        return reach_success(sim, task.target, self.workspace)

    def distance(self, sim: ArmSim, task: Task) -> float:
        return reach_distance(sim, task.target, self.workspace)

    def target_point(self, sim: ArmSim, task: Task) -> np.ndarray:
        return reach_point(sim, task.target, self.workspace)

    def env_state(self, sim: ArmSim, task: Task) -> np.ndarray:
        return self.target_point(sim, task)


def reach_point(sim: ArmSim, color: str, workspace: Workspace = Workspace()) -> np.ndarray:
    return sim.block_position(color) + np.array([0.0, 0.0, sim.config.block_half + workspace.reach_height])


def reach_distance(sim: ArmSim, color: str, workspace: Workspace = Workspace()) -> float:
    return float(np.linalg.norm(sim.tool_position() - reach_point(sim, color, workspace)))


def reach_success(sim: ArmSim, color: str, workspace: Workspace = Workspace()) -> bool:
    return reach_distance(sim, color, workspace) < workspace.success_radius
