"""Fixtures for the bag-tool tests: a small demonstration bag per storage, and a tiny VLA checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from test.bagtools.helpers import demo_bag


@pytest.fixture(scope="session")
def mcap_bag(tmp_path_factory, sim_arm) -> Path:
    return demo_bag(tmp_path_factory.mktemp("bags") / "demo_mcap", sim_arm)


@pytest.fixture(scope="session")
def sqlite_bag(tmp_path_factory, sim_arm) -> Path:
    return demo_bag(tmp_path_factory.mktemp("bags") / "demo_sqlite", sim_arm, storage="sqlite3")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, sim_arm) -> Path:
    import torch

    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.spec.normalization import normalization_from_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_tiny_vla([sim_arm])
        return save_checkpoint(model, normalization_from_limits(sim_arm), tmp_path_factory.mktemp("ckpt") / "tiny")
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread than on two contended ones (CI machines are shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
