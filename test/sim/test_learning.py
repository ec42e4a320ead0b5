"""The whole chain learns, in CI: expert demonstrations recorded and converted through our tools train a tiny
VLA that reaches >= 80% closed loop (target position in the state), and the vision-language variant's training
loss falls by >= 30% in the same number of steps. A few minutes on 2 CPU cores; both train on the session's
shared demonstrations (`sim_demos`, test/conftest.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from test.system.processes import REPO, SIM_ARM
from vla_policy_node.experiments.sim_arm.evaluate import evaluate_checkpoint
from vla_policy_node.experiments.sim_arm.train import SimTrainConfig, train
from vla_policy_node.spec.embodiment import load_embodiment

TARGET_STATE = REPO / "config" / "sim" / "sim_arm_target_state.yaml"
# the target-state variant needs no grounding, so no auxiliary target-position loss
CONFIG = SimTrainConfig(steps=1200, batch_size=8, lr=1e-3, threads=1)
TARGET_STATE_CONFIG = dataclasses.replace(CONFIG, aux_weight=0.0)
EVAL_LAYOUTS = range(20)  # task seeds never used for demonstrations


pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_target_state_variant_learns_to_reach_closed_loop(tmp_path, sim_demos) -> None:
    robot = load_embodiment(TARGET_STATE)
    assert sim_demos.stats.successes == sim_demos.episodes == 60
    final, _, _ = train(robot, sim_demos.target_state_dataset, tmp_path / "run", TARGET_STATE_CONFIG)
    report = evaluate_checkpoint(robot, final, EVAL_LAYOUTS)
    assert report.success_rate >= 0.8, report.summary()


def test_vision_language_variant_loss_falls(tmp_path, sim_demos) -> None:
    robot = load_embodiment(SIM_ARM)
    _, losses, _ = train(robot, sim_demos.sim_arm_dataset, tmp_path / "run", CONFIG)
    first, last = float(np.mean(losses[:50])), float(np.mean(losses[-50:]))
    assert last <= 0.7 * first, (first, last)


def test_training_in_two_processes_is_the_recipe_split_over_them(tmp_path, sim_demos, capfd) -> None:
    """`processes=2`: vla_train under torch's launcher, DDP over gloo, each process half the batch; its checkpoint
    is what the node loads."""
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.train.recipe import load_recipe

    robot = load_embodiment(SIM_ARM)
    config = dataclasses.replace(CONFIG, steps=4, batch_size=4, processes=2)
    with pytest.raises(ValueError, match="needs robot_config"):  # never the built-in robot of the same name
        train(robot, sim_demos.sim_arm_dataset, tmp_path / "run", config)
    final, losses, _ = train(robot, sim_demos.sim_arm_dataset, tmp_path / "run", config, robot_config=SIM_ARM)
    assert "ddp over 2 process(es)" in capfd.readouterr().out
    launched = load_recipe(tmp_path / "run/launched_recipe.json")
    assert launched.train.batch_size == 2 and launched.train.steps == 4 and Path(launched.robot) == SIM_ARM.resolve()
    assert losses and all(np.isfinite(losses))
    VLAPolicy.from_checkpoint(final, robot)
    with pytest.raises(ValueError, match="processes must be >= 1 and divide batch_size 4"):
        dataclasses.replace(config, processes=3)
