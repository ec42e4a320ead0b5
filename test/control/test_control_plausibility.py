"""Issue 13, finding 1: a wrong joint reading must never move the arm.

A reading outside a joint's limits by more than the tolerance, a jump faster than the joint could move, NaN/Inf
or an absurd value is a sensor fault: the command holds where it is, the status names the joint and why, and
once readings are healthy again control resumes without a jump. Neither the step clamp (max_relative_target,
measured from the reading) nor the position clamp may create motion of their own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from test.control.faults import MuxDriver, mux_loop
from test.control.helpers import IMAGE, make_chunk, mid_state, small_robot
from vla_policy_node.control import CommandSpace, ControlLoop, SafetyConfig, SafetyFilter


def holding_mux(emb):
    """A mux whose policy holds still where the arm is (mid-range), readings following the command."""
    start = mid_state(emb)
    drive = MuxDriver(mux_loop(emb), start)
    drive.policy = start[: len(emb.joints)].copy()
    drive.step(20)
    assert drive.commands[-1].source == "policy"
    return drive, start


@pytest.mark.parametrize("wrong", [2.5, 1e9, -1e9], ids=["0.5 rad past the upper limit", "1e9", "-1e9"])
def test_an_implausible_reading_holds_and_never_moves_the_command(sim_arm, wrong):
    drive, start = holding_mux(sim_arm)  # joint2: [-2, 2], max_relative_target 0.1
    bad = start.copy()
    bad[1] = wrong
    drive.reading = bad
    drive.step(150)  # 1.5 s of the wrong reading
    status = drive.status()
    assert status.hold and status.active_source == "hold"
    reason = " ".join(status.hold_reasons)
    assert "sensor fault" in reason and "joint2" in reason, status.hold_reasons
    assert dict(status.input_rejections).get("joint_states.implausible", 0) >= 100
    drive.reading = start
    drive.step(100)  # healthy again: the policy drives again, from where the command was held
    assert drive.commands[-1].source == "policy"
    arms = drive.arms()
    assert np.max(np.abs(arms - start[:6])) < 1e-12, "the command moved"


def test_a_jump_faster_than_the_joint_can_move_is_a_sensor_fault(sim_arm):
    drive, start = holding_mux(sim_arm)
    jumped = start.copy()
    jumped[0] += 0.8  # within joint1's limits, but 80 rad/s for one 10 ms sample
    drive.reading = jumped
    drive.step(10)
    status = drive.status()
    assert status.hold and any("joint1" in r and "jump" in r for r in status.hold_reasons), status.hold_reasons
    drive.reading = start
    drive.step(60)
    assert drive.commands[-1].source == "policy"
    assert np.max(np.abs(drive.arms() - start[:6])) < 1e-12


def test_the_policy_node_does_not_observe_an_implausible_reading(sim_arm):
    loop = ControlLoop(sim_arm)
    start = mid_state(sim_arm)
    now = 10.0
    loop.on_joint_state(now, sim_arm.state_names, start, now)
    for cam in sim_arm.camera_names:
        loop.on_image(cam, now, IMAGE, "rgb8", now)
    assert loop.tick(now) is not None
    loop.on_chunk(make_chunk(sim_arm, now, np.tile(start[:6], (30, 1)), start[6]), 0.0, now)
    bad = start.copy()
    bad[2] = 3.1  # joint3: [-2.5, 2.5]
    for k in range(1, 30):
        now = 10.0 + 0.01 * k
        assert not loop.on_joint_state(now, sim_arm.state_names, bad, now)
        for cam in sim_arm.camera_names:
            loop.on_image(cam, now, IMAGE, "rgb8", now)
        cmd = loop.tick(now)
        assert cmd.hold and np.max(np.abs(cmd.arm - start[:6])) < 1e-12
        obs = loop.sync.poll(now)
        assert obs is None or np.allclose(obs.state, start)
    status = loop.status(now)
    assert any("sensor fault" in r and "joint3" in r for r in status.hold_reasons), status.hold_reasons
    assert dict(status.input_rejections)["joint_states.implausible"] == 29


def test_no_command_starts_from_an_implausible_reading(sim_arm):
    start = mid_state(sim_arm)
    bad = start.copy()
    bad[1] = 2.5
    drive = MuxDriver(mux_loop(sim_arm), bad)
    drive.step(20)
    assert all(c is None for c in drive.commands)
    assert any("joint2" in r for r in drive.status().hold_reasons)
    drive.reading = start
    drive.step(10)
    assert drive.commands[-1] is not None
    np.testing.assert_allclose(drive.commands[-1].arm, start[:6])


def test_the_relative_target_clamp_never_creates_motion():
    """A reading 0.5 away (step 0.1) with the target where the command is: today's LeRobot-style clamp would
    pull the command towards the reading at full speed; it must only restrict motion towards a target."""
    emb = small_robot(vmax=1.0, amax=1000.0, max_relative_target=0.1)
    filt = SafetyFilter(emb, CommandSpace.from_embodiment(emb), 0.01, SafetyConfig())
    filt.reset(np.array([0.0]), 0.04)
    far = np.array([0.5, 0.04])
    for _ in range(50):
        assert filt.apply(np.array([0.0]), 0.04, measured_state=far).arm[0] == 0.0
    # towards the reading is allowed (it shrinks the gap); away from it is not (already more than one step)
    assert filt.apply(np.array([0.01]), 0.04, measured_state=far).arm[0] == pytest.approx(0.01)
    assert filt.apply(np.array([-0.2]), 0.04, measured_state=far).arm[0] == pytest.approx(0.01)


def test_holding_outside_the_limits_stays_put():
    """A command anchored just outside the (margin-shrunk) limits holds there; it does not move by itself."""
    emb = small_robot(lower=-1.0, upper=1.0, margin=0.1, vmax=1.0, amax=10.0)
    filt = SafetyFilter(emb, CommandSpace.from_embodiment(emb), 0.01, SafetyConfig())
    filt.reset(np.array([0.95]), 0.04)
    q = [filt.apply(None, None, hold=True).arm[0] for _ in range(50)]
    assert q == [0.95] * 50


def test_nonfinite_readings_are_rejected_not_used(sim_arm):
    drive, start = holding_mux(sim_arm)
    bad = start.copy()
    bad[3] = math.nan
    drive.reading = bad
    drive.step(30)
    assert drive.status().hold
    assert np.max(np.abs(drive.arms() - start[:6])) < 1e-12
