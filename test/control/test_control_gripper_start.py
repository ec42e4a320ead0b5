"""Issue 13, finding 5: every gripper command lies inside the gripper's range, from the first one (the command
used to start from the measured opening unclamped). The range and the plausibility tolerance come from the robot
YAML and the control config, so the readings stay just past a limit (plausible) or far past it (a fault)."""

from __future__ import annotations

import pytest

from test.control.faults import MuxDriver, mux_loop
from test.control.helpers import mid_state
from vla_policy_node.control.config import ControlConfig

TOLERANCE = ControlConfig().plausibility.gripper_tolerance  # what mux_loop checks readings with


# How far past a limit the reading lies, as a fraction of the plausibility tolerance: inside it, so the reading
# is a measurement the command must not start from unclamped (0.045 and -0.004 when the range was [0, 0.04]).
@pytest.mark.parametrize("past", [("upper", 0.5), ("lower", 0.4)], ids=["above_upper", "below_lower"])
def test_the_first_gripper_command_is_inside_the_range(sim_arm, past):
    limit, fraction = past
    lo, hi = sim_arm.gripper.lower, sim_arm.gripper.upper
    opening = hi + fraction * TOLERANCE if limit == "upper" else lo - fraction * TOLERANCE
    reading = mid_state(sim_arm)
    reading[-1] = opening
    drive = MuxDriver(mux_loop(sim_arm), reading)
    drive.step(20)
    grippers = [c.gripper for c in drive.commands if c is not None]
    assert grippers and all(lo <= g <= hi for g in grippers), (opening, grippers[:3])


def test_an_implausible_gripper_reading_starts_nothing(sim_arm):
    reading = mid_state(sim_arm)
    reading[-1] = sim_arm.gripper.upper + 0.076  # 0.076 past the gripper's upper limit, far beyond the tolerance
    drive = MuxDriver(mux_loop(sim_arm), reading)
    drive.step(20)
    assert all(c is None for c in drive.commands)
    assert any("gripper" in r for r in drive.status().hold_reasons)
