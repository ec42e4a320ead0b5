"""Fixtures for the multi-process node tests: a private DDS domain and a tiny checkpoint for the sim arm."""

from __future__ import annotations

import pytest

from test.system.processes import build_tiny_checkpoint, claim_domain


@pytest.fixture(scope="module")
def dds_domain() -> int:
    """A random domain no ROS node on this machine uses right now (others' test runs pick random ones too)."""
    transport, domain = claim_domain()
    transport.close()
    return domain


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sim_arm):
    """A randomly initialised tiny VLA for sim_arm, saved the way a real checkpoint is."""
    pytest.importorskip("torch")
    return build_tiny_checkpoint(sim_arm, tmp_path_factory.mktemp("ckpt") / "tiny_vla")
