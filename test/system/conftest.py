"""Fixtures for the multi-process node tests: a private DDS domain and a tiny checkpoint for the sim arm."""

from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="module")
def dds_domain() -> int:
    return random.SystemRandom().randint(1, 230)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sim_arm):
    """A randomly initialised tiny VLA for sim_arm, saved the way a real checkpoint is."""
    torch = pytest.importorskip("torch")
    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.spec.normalization import normalization_from_limits

    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    return save_checkpoint(model, normalization_from_limits(sim_arm), tmp_path_factory.mktemp("ckpt") / "tiny_vla")
