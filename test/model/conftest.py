"""Fixtures shared by the model tests."""

from __future__ import annotations

import pytest

from test.model.helpers import observation
from vla_policy_node.spec import Embodiment, Observation


@pytest.fixture()
def sim_obs(sim_arm: Embodiment) -> Observation:
    return observation(sim_arm)
