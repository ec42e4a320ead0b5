"""Pick-and-place: "put the <color> block on the <color> pad", judged physically.

A layout has `blocks` of the scene's block colors (a random subset) and every pad, far enough apart that the
wide-open gripper fits between them. Success is the state of the world, not of the arm: the named block's
centre is over the named pad, its bottom face rests on the pad's top, it is (nearly) still, and no finger
touches it, i.e. it was put down and let go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vla_policy_node.sim.arm import GRIPPER_WIDE, ArmSim, BlockPose, Layout
from vla_policy_node.sim.scene import SceneConfig
from vla_policy_node.sim.tasks import HOME, Task, TaskKind, TaskSampler

PICK_PLACE_TEMPLATE = "put the {block} block on the {pad} pad"
_PICK_PLACE_RE = re.compile(r"put the (\w+) block on the (\w+) pad")


@dataclass(frozen=True)
class PickPlaceWorkspace:
    x: tuple[float, float] = (0.30, 0.60)
    y: tuple[float, float] = (-0.22, 0.22)
    max_radius: float = 0.60  # from the arm's base axis: the tool reaches the table pointing down within it
    blocks: int = 3  # blocks on the table (the others are parked)
    block_separation: float = 0.14  # between block centres: the open fingers (12 cm) fit beside a neighbour
    pad_separation: float = 0.15  # between a pad's centre and any other object's
    max_yaw: float = np.pi / 9  # blocks lie within +-20 degrees of the closing axis (world x, as the IK grasps)
    rest_tolerance: float = 0.005  # m: the block's bottom face within this of the pad's top counts as resting
    still_speed: float = 0.02  # m/s
    home_noise: float = 0.05  # rad, uniform per joint, on the initial arm pose


def parse_pick_place(instruction: str) -> tuple[str, str] | None:
    """(block color, pad color) named in a pick-and-place instruction, or None."""
    match = _PICK_PLACE_RE.search(instruction.lower())
    return (match.group(1), match.group(2)) if match else None


def _sample_positions(rng: np.random.Generator, kinds: list[str], ws: PickPlaceWorkspace) -> np.ndarray:
    """Centres [N, 2] for objects of `kinds` ("block" | "pad"), pairwise far enough apart (rejection sampling)."""
    pads = np.array([k == "pad" for k in kinds])
    need = np.where(pads[:, None] | pads[None, :], ws.pad_separation, ws.block_separation)
    for _ in range(10_000):
        xy = np.column_stack([rng.uniform(*ws.x, len(kinds)), rng.uniform(*ws.y, len(kinds))])
        if np.any(np.hypot(xy[:, 0], xy[:, 1]) > ws.max_radius):
            continue
        gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(kinds))
        if np.all(gaps >= need):
            return xy
    raise RuntimeError("could not lay out the objects; the workspace is too small for the separations")


class PickPlaceSampler:
    """Pick-and-place tasks from a seed (task i is always the same); also the kind's rules (`TaskKind`)."""

    kind = "pick_place"
    state_names = ("block_x", "block_y", "block_z", "pad_x", "pad_y", "pad_z")

    def __init__(self, scene: SceneConfig | None = None, workspace: PickPlaceWorkspace | None = None) -> None:
        self.scene = scene or SceneConfig()
        self.workspace = workspace or PickPlaceWorkspace()
        if not 1 <= self.workspace.blocks <= len(self.scene.colors) or len(self.scene.pads) < 1:
            raise ValueError(f"pick-and-place needs 1..{len(self.scene.colors)} blocks and a pad")

    def task(self, seed: int) -> Task:
        ws = self.workspace
        rng = np.random.default_rng(seed)
        colors = [str(c) for c in rng.choice(self.scene.colors, ws.blocks, replace=False)]
        pads = list(self.scene.pads)
        xy = _sample_positions(rng, ["block"] * len(colors) + ["pad"] * len(pads), ws)
        yaws = rng.uniform(-ws.max_yaw, ws.max_yaw, len(colors))
        layout = Layout(
            blocks={c: BlockPose(float(x), float(y), float(a)) for c, (x, y), a in zip(colors, xy, yaws, strict=False)},
            pads={c: BlockPose(float(x), float(y)) for c, (x, y) in zip(pads, xy[len(colors):], strict=True)})
        block, pad = str(rng.choice(colors)), str(rng.choice(pads))
        arm = HOME + rng.uniform(-ws.home_noise, ws.home_noise, len(HOME))
        return Task(seed, layout, block, PICK_PLACE_TEMPLATE.format(block=block, pad=pad), arm, place_on=pad,
                    initial_gripper=GRIPPER_WIDE)

    def place_point(self, sim: ArmSim, task: Task) -> np.ndarray:
        """Where the named block's centre is when it rests on the middle of the named pad."""
        return sim.pad_position(task.place_on) + np.array([0.0, 0.0, sim.config.block_half])

    def success(self, sim: ArmSim, task: Task) -> bool:
        ws = self.workspace
        block, pad = sim.block_position(task.target), sim.pad_position(task.place_on)
        over = bool(np.all(np.abs(block[:2] - pad[:2]) <= sim.config.pad_half))
        resting = abs(block[2] - sim.config.block_half - pad[2]) <= ws.rest_tolerance
        return (over and resting and sim.block_speed(task.target) <= ws.still_speed
                and not sim.fingers_touch(task.target))

    def distance(self, sim: ArmSim, task: Task) -> float:
        """How far the block's centre is from where it should rest."""
        return float(np.linalg.norm(sim.block_position(task.target) - self.place_point(sim, task)))

    def target_point(self, sim: ArmSim, task: Task) -> np.ndarray:
        return self.place_point(sim, task)

    def env_state(self, sim: ArmSim, task: Task) -> np.ndarray:
        return np.concatenate([sim.block_position(task.target), sim.pad_position(task.place_on)])


TASK_KINDS: dict[str, type[TaskKind]] = {"reach": TaskSampler, "pick_place": PickPlaceSampler}


def make_task_kind(kind: str) -> TaskKind:
    """The sampler (and rules) of a task kind by name: "reach" or "pick_place"."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}; choose from {sorted(TASK_KINDS)}")
    return TASK_KINDS[kind]()
