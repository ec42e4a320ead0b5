"""The scripted pick-and-place expert: a tool path through keyframes (above the block, down, grasp, lift, over
the pad, down, release, up), minimum-jerk in Cartesian space so that the fingers go straight down around the
block, turned into joint positions by IK every `sample_dt` and followed linearly in between. The gripper
command steps at the keyframes: wide open, closed (0: the fingers squeeze the block with the servo's force),
wide open again. Like the reach expert it sees the true positions (it is the demonstrator, not the policy), and
its plan is a function of time that a driver streams to the arm's and the gripper's command topics.

`RecoveryStarts` puts the arm somewhere a policy drifts to (above and beside the named block, lower than the
expert ever starts) before some demonstrations: the expert's plan from there is the correction a policy needs
and never sees when every demonstration starts at home (DART / DAgger's covariate shift, without relabelling:
every recorded command is still the expert's own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_policy_node.sim.arm import GRIPPER_WIDE, ArmSim
from vla_policy_node.sim.expert import min_jerk
from vla_policy_node.sim.ik import ToolIK
from vla_policy_node.sim.pick_place import PickPlaceSampler
from vla_policy_node.sim.tasks import HOME, Task

GRIPPER_CLOSED = 0.0


@dataclass(frozen=True)
class PickPlaceExpertConfig:
    grasp_height: float = 0.015  # finger tips above the table when closing
    clearance: float = 0.12  # approach / lift height above the grasp and place heights
    release_drop: float = 0.003  # the block's bottom this far above the pad when let go
    travel_speed: float = 0.3  # m/s, average over a segment
    vertical_speed: float = 0.15
    min_segment: float = 0.5  # s
    close_time: float = 0.5  # s with the arm still while the fingers close
    open_time: float = 0.4
    settle: float = 0.3  # s held at the end (the demonstration goes on this long after the plan)
    sample_dt: float = 0.05  # IK samples along the path
    descent_catch: float = 0.1  # m: a start this close to the block (horizontally), below the approach height,
    # corrects sideways and descends from where it is instead of rising to the approach height first


@dataclass(frozen=True)
class DensePlan:
    """Joint positions [N, 6] every `dt` (followed linearly) and the gripper command of each sample [N]."""

    arm: np.ndarray
    gripper: np.ndarray
    dt: float

    @property
    def duration(self) -> float:
        return (len(self.arm) - 1) * self.dt

    def at(self, t: float) -> np.ndarray:
        s = float(np.clip(t / self.dt, 0.0, len(self.arm) - 1))
        k = min(int(s), len(self.arm) - 2)
        return self.arm[k] + (s - k) * (self.arm[k + 1] - self.arm[k])

    def gripper_at(self, t: float) -> float:
        return float(self.gripper[int(np.clip(round(t / self.dt), 0, len(self.gripper) - 1))])


@dataclass(frozen=True)
class RecoveryStarts:
    """Which demonstrations start off the expert's path, and where: the finger tips within `radius` of the named
    block's centre horizontally, `height` above the block's top, the gripper wide open (a drifting approach); or,
    for `empty_fraction` of them, the gripper closed on nothing at `carry_height` anywhere over the workspace (a
    block that slipped out on the way, or a grasp that closed beside the block: the expert goes back for it, a
    retry no home start ever shows), half of those anywhere over the workspace, half around the block."""

    fraction: float = 0.5
    radius: float = 0.06
    height: tuple[float, float] = (0.01, 0.12)
    empty_fraction: float = 0.0
    carry_height: tuple[float, float] = (0.01, 0.12)
    salt: int = 0x5EED  # the draw is a function of the task seed, independent of the layout's own draw

    def __post_init__(self) -> None:
        for name in ("fraction", "empty_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"recovery start {name} must be in [0, 1], got {getattr(self, name)}")


class PickPlaceExpert:
    def __init__(self, sim: ArmSim, config: PickPlaceExpertConfig | None = None,
                 sampler: PickPlaceSampler | None = None) -> None:
        self.sim = sim
        self.config = config or PickPlaceExpertConfig()
        self.sampler = sampler or PickPlaceSampler()
        self.ik = ToolIK(sim.model)

    def keyframes(self, task: Task, start_tool: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
        """(tool position, gripper command, seconds to get there) from the start, in order."""
        c = self.config
        block = self.sim.block_position(task.target)
        grasp = np.array([block[0], block[1], c.grasp_height])
        # the block rides in the fingers as grasped: its centre sits (block z - grasp height) above the tool
        offset = block[2] - c.grasp_height
        place_centre = self.sampler.place_point(self.sim, task) + np.array([0.0, 0.0, c.release_drop])
        place = place_centre - np.array([0.0, 0.0, offset])
        up = np.array([0.0, 0.0, c.clearance])

        def travel(a: np.ndarray, b: np.ndarray, speed: float) -> float:
            return max(c.min_segment, float(np.linalg.norm(b - a)) / speed)

        # from above the block and lower than the approach height (a recovery start: where a policy's descent
        # drifts to), correct sideways at that height and go on down, as the plan from home would descend there
        above = grasp + up
        if start_tool[2] < above[2] - 0.01 and np.hypot(*(start_tool[:2] - grasp[:2])) <= c.descent_catch:
            above = np.array([grasp[0], grasp[1], start_tool[2]])
        return [
            (above, GRIPPER_WIDE, travel(start_tool, above, c.travel_speed)),
            (grasp, GRIPPER_WIDE, travel(above, grasp, c.vertical_speed)),
            (grasp, GRIPPER_CLOSED, c.close_time),
            (grasp + up, GRIPPER_CLOSED, travel(grasp, grasp + up, c.vertical_speed)),
            (place + up, GRIPPER_CLOSED, travel(grasp + up, place + up, c.travel_speed)),
            (place, GRIPPER_CLOSED, travel(place + up, place, c.vertical_speed)),
            (place, GRIPPER_WIDE, c.open_time),
            (place + up, GRIPPER_WIDE, travel(place, place + up, c.vertical_speed)),
        ]

    def recovery_start(self, task: Task, starts: RecoveryStarts) -> tuple[np.ndarray, float] | None:
        """(joint positions, gripper opening) to start task `task` from instead of its home pose, or None (start
        at home): a deterministic function of the task's seed, drawn for `starts.fraction` of the seeds."""
        rng = np.random.default_rng([task.seed, starts.salt])
        if rng.uniform() >= starts.fraction:
            return None
        top = 2.0 * self.sim.config.block_half
        block = task.layout.blocks[task.target]  # where the layout puts it: resting on the table
        angle, distance = rng.uniform(0.0, 2.0 * np.pi), starts.radius * np.sqrt(rng.uniform())
        around = np.array([block.x + distance * np.cos(angle), block.y + distance * np.sin(angle)])
        # the coin is drawn only when empty starts are asked: without them, the draws (and so the recorded
        # demonstrations of a seed) are those of the recipe's recovery data
        if starts.empty_fraction > 0.0 and rng.uniform() < starts.empty_fraction:
            ws = self.sampler.workspace
            anywhere = np.array([rng.uniform(*ws.x), rng.uniform(*ws.y)])
            xy = anywhere if rng.uniform() < 0.5 else around
            tool = np.array([*xy, top + rng.uniform(*starts.carry_height)])
            gripper = GRIPPER_CLOSED
        else:
            tool = np.array([*around, top + rng.uniform(*starts.height)])
            gripper = GRIPPER_WIDE
        q, error = self.ik.solve(tool, task.initial_arm, HOME)
        return (q, gripper) if error <= 1e-3 else None

    def plan(self, task: Task, start: np.ndarray) -> DensePlan:
        """Joint positions along the keyframes' tool path from the arm's `start` pose; the gripper command of
        a hold segment (the arm still) applies from its beginning, so the fingers close where the arm stopped."""
        c = self.config
        tool, _ = self.ik.forward(start)
        points, grippers = [tool], [task.initial_gripper]
        for goal, gripper, seconds in self.keyframes(task, tool):
            n = max(1, round(seconds / c.sample_dt))
            origin = points[-1]
            hold = bool(np.allclose(goal, origin))
            for i in range(1, n + 1):
                points.append(origin + float(min_jerk(i / n)) * (goal - origin))
                grippers.append(gripper if hold or i == n else grippers[-1])
        arm = [np.asarray(start, dtype=np.float64)]
        worst = 0.0
        for point in points[1:]:
            q, error = self.ik.solve(point, arm[-1], HOME)
            arm.append(q)
            worst = max(worst, error)
        if worst > 5e-3:
            raise RuntimeError(f"task {task.seed}: IK cannot follow the tool path (error {worst:.3f} m)")
        return DensePlan(np.stack(arm), np.array(grippers), c.sample_dt)
