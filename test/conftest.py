"""Shared test fixtures: repository paths, the built-in robot configs, and one set of sim demonstrations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
ROBOTS = REPO / "config" / "robots"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sim_arm():
    from vla_policy_node.spec import load_embodiment

    return load_embodiment(ROBOTS / "sim_arm.yaml")


@pytest.fixture(scope="session")
def franka():
    from vla_policy_node.spec import load_embodiment

    return load_embodiment(ROBOTS / "franka_fr3.yaml")


@dataclass(frozen=True)
class SimDemos:
    """Expert reach demonstrations on the simulated arm, recorded and converted once per test run.

    The robot that records is the target-state variant (config/sim/sim_arm_target_state.yaml): its joint
    states are a superset of the plain sim arm's, so the same bag converts for both robot configs."""

    root: Path
    episodes: int
    stats: Any  # experiments.sim_arm.demos.DemoStats
    summary: Any  # bagtools.dataset.ConversionSummary of `target_state_dataset`

    @property
    def bag(self) -> Path:
        return self.root / "bag"

    @property
    def target_state_dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def sim_arm_dataset(self) -> Path:
        return self.root / "dataset_sim_arm"


SIM_DEMO_EPISODES = 60


@pytest.fixture(scope="session")
def sim_demos(tmp_path_factory) -> SimDemos:
    """The learning, demonstration and stage-chain tests share these instead of recording their own."""
    from vla_policy_node.experiments.sim_arm.demos import demonstration_dataset
    from vla_policy_node.spec import load_embodiment

    root = tmp_path_factory.mktemp("sim_demos")
    target_state = load_embodiment(REPO / "config" / "sim" / "sim_arm_target_state.yaml")
    stats, summary = demonstration_dataset(target_state, root, SIM_DEMO_EPISODES,
                                           robots=[(load_embodiment(ROBOTS / "sim_arm.yaml"), "dataset_sim_arm")])
    return SimDemos(root, SIM_DEMO_EPISODES, stats, summary)
