"""Issue 13, finding 3: after a teleop takeover the policy stays paused until an explicit resume (a service, or
a pedal/button on a std_msgs/Bool topic); twist_mux's automatic return is a configuration choice. The status
says who is in control and why."""

from __future__ import annotations

import numpy as np

from test.control.faults import MuxDriver, mux_loop
from test.control.helpers import mid_state
from vla_policy_node.control import ArmTarget


def takeover(loop_kw=None, sim_arm=None):
    start = mid_state(sim_arm)
    drive = MuxDriver(mux_loop(sim_arm, **(loop_kw or {})), start)
    drive.policy = start[:6] + 0.1
    drive.step(100)
    assert drive.commands[-1].source == "policy"
    for _ in range(50):  # the operator takes over for 0.5 s, then lets go
        drive.loop.on_teleop(ArmTarget(start[:6] - 0.1), drive.now)
        drive.step(1)
    assert drive.commands[-1].source == "teleop"
    drive.step(100)  # 1 s after the last teleop message (timeout 0.5 s)
    return drive, start


def test_the_policy_waits_for_an_explicit_resume_by_default(sim_arm):
    drive, start = takeover(sim_arm=sim_arm)
    status = drive.status()
    assert drive.commands[-1].source == "hold" and status.awaiting_resume
    assert any("resume" in r for r in status.hold_reasons), status.hold_reasons
    assert "resume" in status.control_reason
    held = drive.commands[-1].arm.copy()
    np.testing.assert_allclose(drive.arms()[-30:], np.tile(held, (30, 1)), atol=1e-12)
    assert drive.loop.resume() == "policy resumed"
    drive.step(1)
    assert drive.commands[-1].source == "policy" and not drive.status().awaiting_resume
    drive.step(200)
    np.testing.assert_allclose(drive.commands[-1].arm, start[:6] + 0.1, atol=1e-6)
    assert "policy" in drive.status().control_reason


def test_a_pedal_press_resumes_and_a_held_pedal_does_not_hand_back_by_itself(sim_arm):
    drive, _ = takeover(sim_arm=sim_arm)
    drive.loop.on_resume_signal(True, drive.now)  # pressed
    drive.step(1)
    assert drive.commands[-1].source == "policy"
    for _ in range(50):  # pedal held down (true repeated) while the operator takes over again
        drive.loop.on_resume_signal(True, drive.now)
        drive.loop.on_teleop(ArmTarget(mid_state(sim_arm)[:6]), drive.now)
        drive.step(1)
    for _ in range(100):
        drive.loop.on_resume_signal(True, drive.now)
        drive.step(1)
    assert drive.commands[-1].source == "hold" and drive.status().awaiting_resume
    drive.loop.on_resume_signal(False, drive.now)  # released, pressed again
    drive.loop.on_resume_signal(True, drive.now + 0.001)
    drive.step(1)
    assert drive.commands[-1].source == "policy"


def test_a_resume_while_teleop_still_drives_does_not_hand_back_when_teleop_lets_go(sim_arm):
    """A gap in the teleop stream shows awaiting_resume while teleop drives again; a resume then clears it, but
    the release that follows is a new hand-back, and the reply says so instead of "policy resumed"."""
    drive, start = takeover(sim_arm=sim_arm)
    for _ in range(20):  # the operator takes over again
        drive.loop.on_teleop(ArmTarget(start[:6] - 0.1), drive.now)
        drive.step(1)
    assert drive.commands[-1].source == "teleop" and drive.status().awaiting_resume
    reply = drive.loop.resume()
    assert "teleop drives" in reply and reply != "policy resumed"
    assert not drive.status().awaiting_resume
    drive.step(100)  # teleop lets go
    assert drive.commands[-1].source == "hold" and drive.status().awaiting_resume
    assert drive.loop.resume() == "policy resumed"
    drive.step(1)
    assert drive.commands[-1].source == "policy"


def test_automatic_hand_back_by_configuration(sim_arm):
    drive, _ = takeover({"handback": "auto"}, sim_arm=sim_arm)
    assert drive.commands[-1].source == "policy" and not drive.status().awaiting_resume
