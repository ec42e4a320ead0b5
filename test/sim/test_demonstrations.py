"""Scripted expert -> recorder -> bag -> vla_bag_to_dataset -> training samples, on the simulated arm."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from test.sim.helpers import laid_out_reach_point
from test.system.processes import REPO, SIM_ARM
from vla_policy_node.bagtools.episodes import EventKind
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM, demonstration_dataset
from vla_policy_node.msgs.geometry import decode_point_stamped
from vla_policy_node.nodes.sim_arm_driver import TARGET_POINT_TOPIC
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.transport.bag import read_bag

TARGET_STATE = REPO / "config" / "sim" / "sim_arm_target_state.yaml"


def test_expert_succeeds_and_demonstrations_round_trip(tmp_path) -> None:
    robot = load_embodiment(TARGET_STATE)
    stats, summary = demonstration_dataset(robot, tmp_path, 12)
    assert stats.successes == stats.episodes == 12  # the expert solves every layout
    assert summary.episodes == 12 and summary.frames > 12 * 10
    samples = LeRobotSamples(tmp_path / "dataset", split=None, horizon=16, tag=robot.tag)
    sample = samples[0]
    assert sample.instruction.startswith("reach the ") and sample.instruction.endswith(" block")
    assert set(sample.images) == {"scene", "wrist"} and sample.images["scene"].shape == (128, 128, 3)
    assert sample.state.shape == (robot.state_dim,) and sample.actions.shape == (16, robot.action_dim)
    # the actions are the streamed commands: they move the arm; the target dims repeat the state (blocks settle)
    assert np.abs(sample.actions[-1, :6] - sample.state[:6]).max() > 0.1
    np.testing.assert_allclose(sample.actions[:, 6:9], np.repeat(sample.state[None, 6:9], 16, 0), atol=1e-3)
    assert EventKind.SUCCESS == 2  # episodes were marked SUCCESS, so the converter kept them all
    # each episode's frames are numbered from 0 (the trainer's start-frame weighting relies on it)
    frames = samples.frame_in_episode
    starts = np.nonzero(frames == 0)[0]
    assert len(starts) == 12 and starts[0] == 0
    for begin, end in zip(starts, [*starts[1:], len(samples)], strict=True):
        np.testing.assert_array_equal(frames[begin:end], np.arange(end - begin))


def test_demonstrations_carry_the_target_as_environment_state(tmp_path) -> None:
    robot = load_embodiment(SIM_ARM)  # images + joints only: the target is nowhere in the state
    stats, summary = demonstration_dataset(robot, tmp_path, 3)
    assert stats.successes == summary.episodes == 3  # all kept: dataset episode i is task TRAIN_SEEDS_FROM + i
    points = [decode_point_stamped(m.msg) for m in read_bag(tmp_path / "bag", [TARGET_POINT_TOPIC])]
    cameras = list(read_bag(tmp_path / "bag", [robot.cameras[0].topic]))
    assert len(points) == len(cameras) and {p.frame_id for p in points} == {robot.base_frame}
    assert summary.info["features"][fmt.ENV_STATE_KEY] == {"dtype": "float32", "shape": [3],
                                                           "names": ["x", "y", "z"]}
    samples = LeRobotSamples(tmp_path / "dataset", split=None, horizon=1)
    assert samples.env_state_names == ("x", "y", "z")
    episode = pq.read_table(tmp_path / "dataset" / fmt.data_path(0, 0), columns=["episode_index"]).column(0)
    episode = episode.to_numpy()
    targets = [laid_out_reach_point(TRAIN_SEEDS_FROM + i) for i in range(3)]
    # the tasks' targets lie farther apart than the tolerance below: each episode must have its own
    assert min(np.linalg.norm(targets[i] - targets[j]) for i in range(3) for j in range(i)) > 0.005
    for i, target in enumerate(targets):
        rows = np.nonzero(episode == i)[0]
        assert len(rows) > 10
        for row in rows:
            np.testing.assert_allclose(samples[int(row)].env_state, target, atol=2e-3)
