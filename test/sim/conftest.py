"""MuJoCo picks its GL backend at import: offscreen EGL, before anything imports mujoco."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")


import pytest
import torch

from test.system.processes import SIM_ARM
from vla_policy_node.spec.embodiment import load_embodiment


@pytest.fixture(scope="module")
def robot():
    """The simulated arm, with torch on one thread for the module (closed-loop evaluations of shipped checkpoints:
    one thread is what their latency figures were measured with, and it leaves the other core to the suite)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_embodiment(SIM_ARM)
    torch.set_num_threads(threads)
