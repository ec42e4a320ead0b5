"""Scripted expert -> recorder -> bag -> vla_bag_to_dataset -> training samples, on the simulated arm (the
session's shared demonstrations, `sim_demos` in test/conftest.py: recorded by the target-state variant and
converted for it and for the plain sim arm)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test.sim.helpers import laid_out_reach_point
from test.system.processes import REPO, SIM_ARM
from vla_policy_node.bagtools.episodes import EventKind
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM
from vla_policy_node.msgs.geometry import decode_point_stamped
from vla_policy_node.nodes.sim_arm_driver import TARGET_POINT_TOPIC
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.transport.bag import read_bag

pytestmark = pytest.mark.slow  # the session's shared demonstrations (sim_demos)

TARGET_STATE = REPO / "config" / "sim" / "sim_arm_target_state.yaml"


def test_expert_succeeds_and_demonstrations_round_trip(sim_demos) -> None:
    robot = load_embodiment(TARGET_STATE)
    stats, summary, n = sim_demos.stats, sim_demos.summary, sim_demos.episodes
    assert stats.successes == stats.episodes == n  # the expert solves every layout
    assert summary.episodes == n and summary.frames > n * 10
    samples = LeRobotSamples(sim_demos.target_state_dataset, split=None, horizon=16, tag=robot.tag)
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
    assert len(starts) == n and starts[0] == 0
    for begin, end in zip(starts, [*starts[1:], len(samples)], strict=True):
        np.testing.assert_array_equal(frames[begin:end], np.arange(end - begin))


def test_demonstrations_carry_the_target_as_environment_state(sim_demos) -> None:
    robot = load_embodiment(SIM_ARM)  # images + joints only: the target is nowhere in the state
    n = sim_demos.episodes
    assert sim_demos.stats.successes == n  # all kept: dataset episode i is task TRAIN_SEEDS_FROM + i
    points = [decode_point_stamped(m.msg) for m in read_bag(sim_demos.bag, [TARGET_POINT_TOPIC])]
    cameras = list(read_bag(sim_demos.bag, [robot.cameras[0].topic]))
    assert len(points) == len(cameras) and {p.frame_id for p in points} == {robot.base_frame}
    dataset = sim_demos.sim_arm_dataset
    info = fmt.DatasetInfo.load(dataset).raw
    assert info["total_episodes"] == n
    assert info["features"][fmt.ENV_STATE_KEY] == {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}
    samples = LeRobotSamples(dataset, split=None, horizon=1)
    assert samples.env_state_names == ("x", "y", "z")
    assert samples[0].state.shape == (robot.state_dim,)  # the plain arm's state: no target dims
    table = pa.concat_tables([pq.read_table(path, columns=["index", "episode_index"])
                              for path in sorted((dataset / fmt.DATA_DIR).glob("*/*.parquet"))])
    episode = table.column("episode_index").to_numpy()[np.argsort(table.column("index").to_numpy())]
    targets = [laid_out_reach_point(TRAIN_SEEDS_FROM + i) for i in range(n)]
    # consecutive tasks' targets lie farther apart than the tolerance below: each episode must have its own
    assert min(np.linalg.norm(targets[i] - targets[i - 1]) for i in range(1, n)) > 0.005
    for i, target in enumerate(targets):
        rows = np.nonzero(episode == i)[0]
        assert len(rows) > 10
        for row in rows:
            np.testing.assert_allclose(samples[int(row)].env_state, target, atol=2e-3)
