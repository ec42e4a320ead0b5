"""Start poses from a trained policy's own approach to the block: DAgger's states with the expert's labels.

A policy trained on expert demonstrations drifts during its descent to a grasp (a centimetre or two sideways at
the grasp height on the pick-and-place task), into states the expert never visits, and a grasp off the block's
centre slips. `PolicyStartFinder` runs the policy closed loop (policy node and mux, as in evaluation) on a
training layout until its finger tips first come down to a drawn height above the block's top with the gripper
still open, and returns the arm's pose there; the demonstration then starts from it and the expert's plan corrects
sideways and goes on down (`PickPlaceExpert.keyframes`). Every recorded command is still the expert's. A
rollout that touches any block first, closes the gripper (half way), or does not get that low in `time_limit`
gives no start (the demonstration starts at home): a start is taken with the blocks where the layout puts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_policy_node.experiments.sim_arm.closed_loop import ClosedLoopSystem
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.sim.arm import GRIPPER_WIDE
from vla_policy_node.spec.embodiment import Embodiment


@dataclass(frozen=True)
class PolicyStarts:
    checkpoint: str
    fraction: float = 1.0  # of the demonstrations (a seeded draw per task seed)
    stop_height: tuple[float, float] = (0.005, 0.08)  # finger tips above the block's top where the rollout stops
    time_limit: float = 5.0  # simulated seconds
    moved: float = 0.003  # m: a block displaced this far was touched
    salt: int = 0xDA66

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"policy start fraction must be in [0, 1], got {self.fraction}")


class PolicyStartFinder:
    """The policy's rollouts, one per asked seed, on a closed-loop system of its own (its own simulation)."""

    def __init__(self, robot: Embodiment, config: PolicyStarts) -> None:
        self.config = config
        policy = VLAPolicy.from_checkpoint(config.checkpoint, robot, device="cpu")
        self.system = ClosedLoopSystem(robot, policy, task="pick_place")
        self.rollouts = 0
        self.found = 0

    def start(self, seed: int) -> tuple[np.ndarray, float] | None:
        """(arm joint positions, gripper opening) where the policy's descent on layout `seed` reached the drawn
        height, or None (not drawn for this seed, or the rollout gave no clean start)."""
        c = self.config
        rng = np.random.default_rng([seed, c.salt])
        if rng.uniform() >= c.fraction:
            return None
        stop = float(rng.uniform(*c.stop_height))
        system = self.system
        system.begin_episode(seed)
        sim, task = system.driver.sim, system.driver.task
        assert task is not None
        laid = {color: np.array([pose.x, pose.y]) for color, pose in task.layout.blocks.items()}
        top = 2.0 * sim.config.block_half
        t0 = system.bus.clock
        found = None
        self.rollouts += 1
        try:
            while system.bus.clock - t0 < c.time_limit:
                system.tick()
                if sim.gripper_position() < 0.5 * GRIPPER_WIDE:  # a grasp began: too late for a start
                    break
                if any(np.hypot(*(sim.block_position(color)[:2] - xy)) > c.moved for color, xy in laid.items()):
                    break
                if sim.tool_position()[2] <= top + stop:
                    found = (sim.arm_positions().copy(), GRIPPER_WIDE)
                    break
        finally:
            system.stop_nodes()
        self.found += found is not None
        return found

    def close(self) -> None:
        self.system.close()
