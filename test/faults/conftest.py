"""The fault campaign runs once per session, in background lanes, for the scenarios this run selected."""

from __future__ import annotations

import pytest

from test.faults.campaign import Campaign
from test.system.processes import build_tiny_checkpoint


@pytest.fixture(scope="session")
def campaign(request, tmp_path_factory, sim_arm, franka):
    pytest.importorskip("torch")
    pytest.importorskip("cyclonedds")
    selected = {item.callspec.params["scenario"] for item in request.session.items
                if item.get_closest_marker("faults") is not None and hasattr(item, "callspec")}
    checkpoint = build_tiny_checkpoint([sim_arm, franka], tmp_path_factory.mktemp("faults_ckpt") / "tiny_vla")
    running = Campaign(tmp_path_factory.mktemp("faults"), checkpoint, selected)
    yield running
    running.close()
    print("\n" + running.report())
