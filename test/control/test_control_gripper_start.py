"""Issue 13, finding 5: every gripper command lies inside the gripper's range, from the first one (the command
used to start from the measured opening unclamped)."""

from __future__ import annotations

import pytest

from test.control.faults import MuxDriver, mux_loop
from test.control.helpers import mid_state


@pytest.mark.parametrize("opening", [0.045, -0.004])  # within the 0.01 plausibility tolerance of [0, 0.04]
def test_the_first_gripper_command_is_inside_the_range(sim_arm, opening):
    reading = mid_state(sim_arm)
    reading[-1] = opening
    drive = MuxDriver(mux_loop(sim_arm), reading)
    drive.step(20)
    grippers = [c.gripper for c in drive.commands if c is not None]
    assert grippers and all(0.0 <= g <= 0.04 for g in grippers), grippers[:3]


def test_an_implausible_gripper_reading_starts_nothing(sim_arm):
    reading = mid_state(sim_arm)
    reading[-1] = 0.116  # 0.076 past a 0.04 m gripper
    drive = MuxDriver(mux_loop(sim_arm), reading)
    drive.step(20)
    assert all(c is None for c in drive.commands)
    assert any("gripper" in r for r in drive.status().hold_reasons)
