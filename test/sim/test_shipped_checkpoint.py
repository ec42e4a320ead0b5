"""The shipped demo checkpoint, closed loop through the policy node and the command mux on the simulated arm:
"reach the <color> block" from the camera images and the instruction alone, on layouts never seen in training
(task seeds below TRAIN_SEEDS_FROM), succeeds at least 80% of the time; the same architecture with random
weights, on the same layouts, does far worse. Only what a real robot gives reaches the policy (no target state)."""

from __future__ import annotations

import pytest

from test.sim.helpers import shipped_embodiment_slot
from test.system.processes import REPO
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM
from vla_policy_node.experiments.sim_arm.evaluate import evaluate_checkpoint
from vla_policy_node.experiments.sim_arm.grounding import probe_grounding
from vla_policy_node.model.checkpoint import load_checkpoint

CHECKPOINT = REPO / "checkpoints" / "sim_reach" / "checkpoint"
UNSEEN_LAYOUTS = range(20)


def test_checkpoint_is_small_and_sees_only_robot_inputs(robot) -> None:
    slot = shipped_embodiment_slot(CHECKPOINT)
    assert slot["state_names"] == list(robot.state_names)  # joints and gripper: no target position
    assert not any(name.startswith("target") for name in slot["state_names"])
    assert max(UNSEEN_LAYOUTS) < TRAIN_SEEDS_FROM


def test_shipped_checkpoint_locates_the_named_block_on_unseen_layouts(robot) -> None:
    """The auxiliary probe's estimate from the first frame is nearest the named block (chance: 1 in 4)."""
    model, normalization = load_checkpoint(CHECKPOINT)
    report = probe_grounding(model, normalization, robot, UNSEEN_LAYOUTS)
    assert report.nearest_is_target >= 0.8 and report.median_error_m < 0.04, report


@pytest.mark.slow
def test_shipped_checkpoint_reaches_the_named_block_on_unseen_layouts(robot) -> None:
    trained = evaluate_checkpoint(robot, CHECKPOINT, UNSEEN_LAYOUTS)
    instructions = {e.instruction for e in trained.episodes}
    assert len(instructions) >= 3, instructions  # the layouts ask for different colors
    assert trained.success_rate >= 0.8, trained.summary()
    random_init = evaluate_checkpoint(robot, CHECKPOINT, UNSEEN_LAYOUTS, random_init=True)
    assert random_init.success_rate <= trained.success_rate - 0.5, (trained.summary(), random_init.summary())
