"""Ground truth for the simulated-arm tests, computed apart from the driver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vla_policy_node.sim.arm import ArmSim
from vla_policy_node.sim.tasks import TaskSampler, reach_point


def laid_out_reach_point(seed: int) -> np.ndarray:
    """The reach point of task `seed` in a fresh simulation (blocks as laid out, before any physics step)."""
    task = TaskSampler().task(seed)
    with ArmSim({}) as sim:
        sim.reset(task.layout, task.initial_arm)
        return reach_point(sim, task.target)


def shipped_embodiment_slot(checkpoint: Path) -> dict:
    """A shipped checkpoint's one embodiment slot (its state and action names), after checking that the
    checkpoint folder stays small enough for the repository (< 8 MB)."""
    size = sum(p.stat().st_size for p in checkpoint.iterdir())
    assert size < 8e6, f"{size / 1e6:.1f} MB"
    config = json.loads((checkpoint / "vla_config.json").read_text())
    (slot,) = config["embodiments"]
    return slot
