"""Ground truth for the simulated-arm tests, computed apart from the driver."""

from __future__ import annotations

import numpy as np

from vla_policy_node.sim.arm import ArmSim
from vla_policy_node.sim.tasks import TaskSampler, reach_point


def laid_out_reach_point(seed: int) -> np.ndarray:
    """The reach point of task `seed` in a fresh simulation (blocks as laid out, before any physics step)."""
    task = TaskSampler().task(seed)
    with ArmSim({}) as sim:
        sim.reset(task.layout, task.initial_arm)
        return reach_point(sim, task.target)
