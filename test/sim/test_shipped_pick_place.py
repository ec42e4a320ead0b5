"""The shipped pick-and-place checkpoint, closed loop through the policy node and the command mux on the simulated
arm: "put the <color> block on the <color> pad" from the scene and wrist cameras, the joint states and the
instruction alone, grasping and releasing through the gripper command path (policy -> mux -> gripper controller),
on layouts never seen in training, with the task's chunk strategy (ensemble). Success is physical (the block rests
on the named pad, let go). At least 80% of 20 layouts; the same architecture with random weights, on the same
layouts, does far worse."""

from __future__ import annotations

import pytest

from test.sim.helpers import shipped_embodiment_slot
from test.system.processes import REPO
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM
from vla_policy_node.experiments.sim_arm.evaluate import evaluate_checkpoint

CHECKPOINT = REPO / "checkpoints" / "sim_pick_place" / "checkpoint"
UNSEEN_LAYOUTS = range(20)


def test_checkpoint_is_small_and_sees_only_robot_inputs(robot) -> None:
    slot = shipped_embodiment_slot(CHECKPOINT)
    assert slot["state_names"] == list(robot.state_names)  # joints and gripper: nothing of the task
    assert slot["action_names"][-1] == robot.gripper.name  # it commands the gripper
    assert max(UNSEEN_LAYOUTS) < TRAIN_SEEDS_FROM


@pytest.mark.slow
def test_shipped_checkpoint_puts_the_named_block_on_the_named_pad(robot) -> None:
    trained = evaluate_checkpoint(robot, CHECKPOINT, UNSEEN_LAYOUTS, task="pick_place")
    instructions = {e.instruction for e in trained.episodes}
    assert len(instructions) >= 4, instructions  # the layouts ask for different blocks and pads
    assert trained.success_rate >= 0.8, trained.summary()
    random_init = evaluate_checkpoint(robot, CHECKPOINT, UNSEEN_LAYOUTS, random_init=True, task="pick_place")
    assert random_init.success_rate <= trained.success_rate - 0.5, (trained.summary(), random_init.summary())
