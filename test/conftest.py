"""Shared test fixtures: repository paths and the built-in robot configs."""

from __future__ import annotations

from pathlib import Path

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
