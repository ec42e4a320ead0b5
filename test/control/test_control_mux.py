"""Command mux: priorities, timeouts, locks (twist_mux semantics), e-stop latch, deadman, pause, hand-over."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_policy_node.control.command import ArmTarget, CommandSpace
from vla_policy_node.control.config import LockSpec, MuxConfig
from vla_policy_node.control.mux import CommandMux

HERE = np.zeros(6)
POLICY = np.full(6, 0.01)


def make(sim_arm, **kw) -> CommandMux:
    """twist_mux semantics (automatic hand-back) unless a test asks otherwise; the default, a policy that waits
    for an explicit resume after a takeover, is tested in test_control_handback.py."""
    space = CommandSpace.from_embodiment(sim_arm)
    kw.setdefault("handback", "auto")
    return CommandMux(MuxConfig(**kw), space, np.full(6, 2.0), 0.2)


def select(mux, now, policy=POLICY, current=HERE, was_held=False):
    return mux.select(now, policy, 0.02 if policy is not None else None, current, 0.02, was_held)


def test_nothing_to_send_is_hold(sim_arm):
    decision = select(make(sim_arm), 0.0, policy=None)
    assert decision.source == "hold" and decision.arm is None and decision.reason == "no command source"


def test_policy_when_alone(sim_arm):
    decision = select(make(sim_arm, min_handover_time=0.0), 0.0, current=POLICY)
    assert decision.source == "policy"
    np.testing.assert_allclose(decision.arm, POLICY)


def test_teleop_overrides_policy_at_once_and_times_out(sim_arm):
    mux = make(sim_arm, teleop_timeout=0.5)
    select(mux, 0.0)
    mux.on_teleop(ArmTarget(np.full(6, 0.02), 0.03), now=1.0)
    assert select(mux, 1.0).source == "teleop"
    assert select(mux, 1.5).source == "teleop"
    assert select(mux, 1.5001).source == "policy"


def test_lock_heartbeat_semantics(sim_arm):
    mux = make(sim_arm, locks=(LockSpec("safety", priority=200, timeout=0.2),))
    assert select(mux, 0.0).source == "hold"  # never heard from: expired, as in twist_mux
    assert mux.active_locks(0.0) == ["safety"]
    mux.on_lock("safety", False, 1.0)
    assert select(mux, 1.1).source == "policy"
    assert select(mux, 1.2).source == "policy"
    decision = select(mux, 1.2001)  # heartbeat lost
    assert decision.source == "hold" and decision.reason == "locked by safety"
    mux.on_lock("safety", True, 1.3)
    assert select(mux, 1.3).source == "hold"
    mux.on_lock("safety", False, 1.4)
    assert select(mux, 1.4).source == "policy"  # not latching: releases by itself


def test_lock_priority_between_policy_and_teleop(sim_arm):
    mux = make(sim_arm, locks=(LockSpec("policy_stop", priority=50),))
    mux.on_lock("policy_stop", True, 0.0)
    assert select(mux, 0.0).source == "hold"
    mux.on_teleop(ArmTarget(np.zeros(6)), 0.0)
    assert select(mux, 0.01).source == "teleop"  # teleop (100) is above the lock (50)


def test_estop_latches_until_reset(sim_arm):
    mux = make(sim_arm)
    assert select(mux, 0.0).source == "policy"
    mux.on_lock("estop", True, 1.0)
    assert mux.estop_latched
    mux.on_teleop(ArmTarget(np.zeros(6)), 1.0)
    assert select(mux, 1.0).source == "hold"  # above teleop too
    mux.on_lock("estop", False, 1.1)
    assert select(mux, 1.2).source == "hold" and mux.estop_latched  # releasing the button is not enough
    ok, message = mux.reset_estop(1.3)
    assert ok and "estop" in message
    assert not mux.estop_latched
    assert select(mux, 1.3).source == "teleop"


def test_estop_reset_refused_while_engaged(sim_arm):
    mux = make(sim_arm)
    mux.on_lock("estop", True, 1.0)
    ok, message = mux.reset_estop(1.1)
    assert not ok and "still engaged" in message and mux.estop_latched
    assert mux.reset_estop(1.2) == (False, message)


def test_estop_heartbeat_loss_latches(sim_arm):
    mux = make(sim_arm, locks=(LockSpec("estop", priority=255, timeout=0.1, latching=True),))
    assert select(mux, 0.0).source == "hold" and not mux.estop_latched  # not heard yet: active, not latched
    mux.on_lock("estop", False, 0.5)
    assert select(mux, 0.55).source == "policy"
    assert select(mux, 0.7).source == "hold"  # heartbeat lost
    mux.on_lock("estop", False, 0.8)
    assert select(mux, 0.8).source == "hold" and mux.estop_latched
    assert mux.reset_estop(0.85)[0]
    assert select(mux, 0.85).source == "policy"


def test_unknown_lock_is_an_error(sim_arm):
    with pytest.raises(KeyError):
        make(sim_arm).on_lock("nope", True, 0.0)


def test_deadman_required_for_teleop(sim_arm):
    mux = make(sim_arm, require_deadman=True, deadman_timeout=0.2)
    mux.on_teleop(ArmTarget(np.zeros(6)), 0.0)
    assert select(mux, 0.0).source == "policy"
    mux.on_deadman(True, 0.05)
    assert select(mux, 0.1).source == "teleop"
    assert select(mux, 0.26).source == "policy"  # deadman message too old
    mux.on_deadman(True, 0.3)
    mux.on_teleop(ArmTarget(np.zeros(6)), 0.3)
    assert select(mux, 0.31).source == "teleop"
    mux.on_deadman(False, 0.32)
    assert select(mux, 0.33).source == "policy"


def test_pause_holds_policy_but_not_teleop(sim_arm):
    mux = make(sim_arm)
    mux.set_paused(True)
    decision = select(mux, 0.0)
    assert decision.source == "hold" and decision.reason == "paused"
    mux.on_teleop(ArmTarget(np.zeros(6)), 0.0)
    assert select(mux, 0.0).source == "teleop"
    mux.set_paused(False)
    assert select(mux, 1.0).source == "policy"


def smootherstep(tau: float) -> float:
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


def test_handover_is_a_smooth_ramp_from_the_current_command(sim_arm):
    space = CommandSpace.from_embodiment(sim_arm)
    # hand-over at half the limits: 1 rad/s, 4 rad/s^2, 200 rad/s^3
    mux = CommandMux(MuxConfig(handover_speed_fraction=0.5, min_handover_time=0.0), space, np.full(6, 2.0), 0.2,
                     np.full(6, 8.0), np.full(6, 400.0))
    current = np.zeros(6)
    target = np.array([0.5, 0.0, 0.0, 0.0, 0.0, -0.25])
    # duration = max(1.875 * 0.5 / 1, sqrt(5.7735 * 0.5 / 4), cbrt(60 * 0.5 / 200)) = 0.9375 s (speed-bound)
    duration = 0.9375
    outs = []
    for k in range(120):
        now = k * 0.01
        mux.on_teleop(ArmTarget(target, 0.02), now)
        d = mux.select(now, POLICY, 0.02, current, 0.02, False)
        assert d.source == "teleop"
        outs.append(d.arm)
        current = d.arm
    outs = np.array(outs)
    np.testing.assert_allclose(outs[0], 0.0)  # starts where the robot is
    speed = np.diff(outs, axis=0) / 0.01
    accel = np.diff(speed, axis=0) / 0.01
    assert np.abs(speed).max() <= 1.0 + 1e-9 and np.abs(speed[:, 0]).max() > 0.98  # uses, never exceeds
    assert np.abs(accel).max() <= 4.0
    np.testing.assert_allclose(outs[94:], np.tile(target, (120 - 94, 1)))
    np.testing.assert_allclose(outs[30, 0], 0.5 * smootherstep(0.3 / duration))


def test_handover_duration_respects_acceleration(sim_arm):
    space = CommandSpace.from_embodiment(sim_arm)
    mux = CommandMux(MuxConfig(handover_speed_fraction=1.0, min_handover_time=0.0), space, np.full(6, 100.0), None,
                     np.full(6, 1.0))
    mux.on_teleop(ArmTarget(np.full(6, 0.1)), 0.0)
    mux.select(0.0, None, None, np.zeros(6), None, False)
    # accel-bound: D = sqrt(5.7735 * 0.1 / 1) = 0.76 s; halfway the offset is half gone
    d = mux.select(0.38, None, None, np.zeros(6), None, False)
    np.testing.assert_allclose(d.arm, 0.05, atol=1e-3)


def test_ramp_restarts_after_a_hold(sim_arm):
    mux = make(sim_arm, min_handover_time=0.0)
    d = select(mux, 0.0, current=POLICY)
    np.testing.assert_allclose(d.arm, POLICY)
    held_at = np.full(6, -0.2)  # the filter held somewhere else meanwhile
    d = select(mux, 0.01, current=held_at, was_held=True)
    np.testing.assert_allclose(d.arm, held_at)  # ramp starts from the held command


def test_non_finite_target_passes_through_and_ramp_waits(sim_arm):
    mux = make(sim_arm, min_handover_time=0.0)
    bad = np.full(6, math.nan)
    d = mux.select(0.0, bad, 0.02, HERE, 0.02, False)
    assert d.source == "policy" and np.isnan(d.arm).all()  # the filter turns it into a hold + fault
    d = mux.select(0.01, np.full(6, 0.3), 0.02, HERE, 0.02, True)
    np.testing.assert_allclose(d.arm, HERE)  # first finite target: ramp from where we are


def test_handover_continues_the_current_velocity(sim_arm):
    space = CommandSpace.from_embodiment(sim_arm)
    mux = CommandMux(MuxConfig(min_handover_time=0.0), space, np.full(6, 2.0), None, np.full(6, 8.0))
    velocity = np.full(6, 1.0)  # the policy was moving the arm at 1 rad/s
    outs = []
    for k in range(120):
        mux.on_teleop(ArmTarget(np.zeros(6)), k * 0.01)  # teleop wants the arm to stay where it is
        outs.append(mux.select(k * 0.01, POLICY, None, np.zeros(6), None, False, velocity).arm)
    q = np.array(outs)[:, 0]
    v = np.diff(np.concatenate([[-0.01], q])) / 0.01  # the command before the switch was at -0.01
    assert q[0] == 0.0
    assert abs(v[1] - 1.0) < 0.05  # carries on at ~1 rad/s instead of stopping dead
    assert np.abs(np.diff(v)).max() / 0.01 < 8.0  # never a jump in velocity: within the acceleration limit
    # the old motion would brake within 1^2 / (2 * 4) = 0.125 rad; D = 4 * stopping time = 1 s
    assert 0.07 < q.max() < 0.125
    np.testing.assert_allclose(q[101:], 0.0, atol=1e-12)  # and settles on the target after the ramp
    assert abs(q[95]) > 1e-9


def test_an_absurd_target_value_cannot_stretch_a_handover(sim_arm):
    """A hand-over's length is measured to the target clamped into the joint limits (the filter clamps it there
    anyway): one garbage value (1e5 rad) used to stretch the ramp, and with it every joint's motion, to days."""
    from vla_policy_node.control.config import ControlConfig
    from vla_policy_node.control.mux import build_command_mux

    mux = build_command_mux(sim_arm, CommandSpace.from_embodiment(sim_arm), ControlConfig(mux=MuxConfig()))
    target = np.array([1e5, 0.2, 0.2, 0.2, 0.2, 0.2])
    mux.select(0.0, target, None, HERE, None, was_held=True)
    decision = mux.select(10.0, target, None, HERE, None, was_held=False)  # joint1's range is 6 rad: < 10 s
    np.testing.assert_allclose(decision.arm, target)
