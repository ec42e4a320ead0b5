"""The one-command reproduction: parallel demonstration workers (only the policy's camera recorded), one dataset
per worker, training on all of them, the phases' wall times in reproduce.json."""

from __future__ import annotations

import json

import pytest

from vla_policy_node.experiments.sim_arm import reproduce
from vla_policy_node.train.lerobot_dataset import LeRobotSamples

pytestmark = pytest.mark.slow  # worker processes, two conversions, a (short) training


def test_reproduce_records_in_parallel_and_trains_on_every_workers_dataset(tmp_path) -> None:
    out = tmp_path / "out"
    assert reproduce.main(["--recipe", "reach_fast", "-o", str(out), "--episodes", "4", "--workers", "2",
                           "--steps", "2", "--threads", "1"]) == 0
    summary = json.loads((out / "reproduce.json").read_text())
    assert summary["episodes"] == 4 and summary["workers"] == 2
    assert summary["reproduction_s"] >= summary["demonstrations_s"] + summary["training_s"] > 0
    parts = [LeRobotSamples(out / f"dataset_{i}", split=None, horizon=1) for i in range(2)]
    assert [len(p.episodes) for p in parts] == [2, 2]  # consecutive seed ranges, one bag each
    assert set(parts[0].cameras.values()) == {"scene"}  # only the camera the recipe's policy reads
    recipe = json.loads((out / "run" / "recipe.json").read_text())
    assert len(recipe["datasets"]) == 2 and recipe["train"]["steps"] == 2
    assert (out / "run" / "final" / "model.safetensors").is_file()
