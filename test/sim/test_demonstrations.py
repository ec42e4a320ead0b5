"""Scripted expert -> recorder -> bag -> vla_bag_to_dataset -> training samples, on the simulated arm."""

from __future__ import annotations

import numpy as np

from test.ros.processes import REPO
from vla_policy_node.bagtools.episodes import EventKind
from vla_policy_node.policy.embodiment import load_embodiment
from vla_policy_node.simeval.demos import demonstration_dataset
from vla_policy_node.train.lerobot_dataset import LeRobotSamples

TARGET_STATE = REPO / "config" / "sim" / "sim_arm_target_state.yaml"


def test_expert_succeeds_and_demonstrations_round_trip(tmp_path) -> None:
    robot = load_embodiment(TARGET_STATE)
    stats, summary = demonstration_dataset(robot, tmp_path, 12)
    assert stats.successes == stats.episodes == 12  # the expert solves every layout
    assert summary.episodes == 12 and summary.frames > 12 * 10
    samples = LeRobotSamples(tmp_path / "dataset", split=None, horizon=16, tag=robot.tag)
    sample = samples[0]
    assert sample.instruction.startswith("reach the ") and sample.instruction.endswith(" block")
    assert set(sample.images) == {"scene", "wrist"} and sample.images["scene"].shape == (64, 64, 3)
    assert sample.state.shape == (robot.state_dim,) and sample.actions.shape == (16, robot.action_dim)
    # the actions are the streamed commands: they move the arm; the target dims repeat the state (blocks settle)
    assert np.abs(sample.actions[-1, :6] - sample.state[:6]).max() > 0.1
    np.testing.assert_allclose(sample.actions[:, 6:9], np.repeat(sample.state[None, 6:9], 16, 0), atol=1e-3)
    assert EventKind.SUCCESS == 2  # episodes were marked SUCCESS, so the converter kept them all
