"""Issue 13's fault-injection suite: the real policy node, command mux and fake arm driver as separate processes
over DDS on loopback, faults injected while a monitor checks every command that reaches the controller.

Each test reports one scenario of the campaign (campaign.py: which set, in which order; scenarios.py: what
each one injects and asserts; checks.py: the assertions every scenario shares).
"""

from __future__ import annotations

import pytest

from test.faults.campaign import scenario_keys

pytestmark = [pytest.mark.faults, pytest.mark.slow]  # about 2 min as a whole (one campaign)


@pytest.mark.parametrize("scenario", [key for key, _ in scenario_keys()])
def test_fault_scenario(campaign, scenario):
    campaign.outcome(scenario)
