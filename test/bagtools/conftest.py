"""Fixtures for the bag-tool tests: a small demonstration bag per storage (the tiny checkpoint: test/conftest.py)."""

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


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread than on two contended ones (CI machines are shared)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
