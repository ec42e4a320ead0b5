"""Policy starts (DAgger's states, the expert's labels): a rollout of a real checkpoint stops where the finger tips
first come down to the drawn height, and the demonstration then starts from that pose."""

from __future__ import annotations

import numpy as np
import pytest

from test.system.processes import REPO
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM, record_demonstrations
from vla_policy_node.experiments.sim_arm.policy_starts import PolicyStartFinder, PolicyStarts
from vla_policy_node.sim.arm import GRIPPER_WIDE
from vla_policy_node.sim.pick_place import PickPlaceSampler

CHECKPOINT = str(REPO / "checkpoints" / "sim_reach" / "checkpoint")  # a real trained policy of this arm


@pytest.mark.slow
def test_a_rollout_stops_at_the_drawn_height_or_gives_no_start(robot) -> None:
    seed = TRAIN_SEEDS_FROM
    home = PickPlaceSampler().task(seed).initial_arm
    at_once = PolicyStartFinder(robot, PolicyStarts(CHECKPOINT, stop_height=(1.0, 1.0)))  # any height will do
    try:
        start = at_once.start(seed)
        assert start is not None and start[1] == GRIPPER_WIDE
        np.testing.assert_allclose(start[0], home, atol=0.02)  # stopped on the first tick, still at home
        assert (at_once.rollouts, at_once.found) == (1, 1)
    finally:
        at_once.close()
    never = PolicyStartFinder(robot, PolicyStarts(CHECKPOINT, stop_height=(-1.0, -1.0), time_limit=0.3))
    try:
        assert never.start(seed) is None  # never that low within the time limit
        assert PolicyStartFinder.start(never, seed) is None and never.found == 0
    finally:
        never.close()
    with pytest.raises(ValueError, match="fraction"):
        PolicyStarts(CHECKPOINT, fraction=2.0)


@pytest.mark.slow
def test_demonstrations_start_from_the_policy_pose_and_still_succeed(robot, tmp_path) -> None:
    starts = PolicyStarts(CHECKPOINT, stop_height=(0.2, 0.25))  # part way down from home (tips ~0.28 m up)
    stats = record_demonstrations(robot, tmp_path / "bag", range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + 2),
                                  task="pick_place", policy_starts=starts)
    assert stats.successes == stats.episodes == 2
    assert stats.off_home == 2
    none = PolicyStarts(CHECKPOINT, fraction=0.0)
    stats = record_demonstrations(robot, tmp_path / "bag2", range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + 1),
                                  task="pick_place", policy_starts=none)
    assert stats.off_home == 0 and stats.successes == 1
