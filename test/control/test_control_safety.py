"""Safety filter: hand-computed clamps, braking-aware limits, faults, Cartesian limits, counting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test.control.helpers import cartesian_robot, small_robot
from vla_policy_node.control.command import CommandSpace
from vla_policy_node.control.config import SafetyConfig
from vla_policy_node.control.safety import SafetyFilter
from vla_policy_node.kinematics.rotation import quat_from_rpy, rotation_angle


def make_filter(emb, start=None, gripper=0.04, config=None):
    space = CommandSpace.from_embodiment(emb)
    filt = SafetyFilter(emb, space, 1.0 / emb.rates.control_hz, config or SafetyConfig())
    filt.reset(np.zeros(space.arm_dim) if start is None else np.asarray(start, float), gripper)
    return filt


def run(filt, targets, gripper=0.04, **kw):
    return np.array([filt.apply(np.atleast_1d(np.asarray(t, float)), gripper, **kw).arm for t in targets])


def test_velocity_clamp_hand_computed():
    filt = make_filter(small_robot(vmax=1.0, amax=1000.0))  # T = 0.01, acceleration not binding
    out = filt.apply(np.array([1.0]), 0.04)
    assert out.arm[0] == pytest.approx(0.01)  # 1 rad/s for 10 ms
    assert not out.held and filt.counts["velocity"] == 1 and filt.counts["acceleration"] == 0


def test_acceleration_clamp_hand_computed():
    filt = make_filter(small_robot(vmax=1.0, amax=10.0))
    q = run(filt, [[1.0]] * 3)[:, 0]
    # from rest: v = 0.1, 0.2, 0.3 rad/s -> q = 0.001, 0.003, 0.006
    np.testing.assert_allclose(q, [0.001, 0.003, 0.006])
    assert filt.counts["acceleration"] == 3


def test_jerk_clamp_hand_computed():
    filt = make_filter(small_robot(vmax=1.0, amax=10.0, jerk=100.0))
    q = run(filt, [[1.0]] * 3)[:, 0]
    # acceleration may change by 100 * 0.01 = 1 rad/s^2 per step: a = 1, 2, 3 -> v = 0.01, 0.03, 0.06
    np.testing.assert_allclose(q, [1e-4, 4e-4, 1e-3])
    assert filt.counts["jerk"] == 3


def test_jerk_never_delays_a_stop_past_the_target():
    """A target that moves, then brakes at max deceleration: the jerk clamp would let the deceleration build up
    over several steps and carry the command past the stop. It yields there (acceleration still binds), so the
    command stops on the target; it still limits how the motion started."""
    filt = make_filter(small_robot(vmax=1.0, amax=10.0, jerk=100.0))
    speeds = [0.5] * 40 + [0.5 - 0.1 * k for k in range(1, 6)] + [0.0] * 60  # rad/s, braking at 10 rad/s^2
    stream = np.cumsum(np.array(speeds) * 0.01)
    q = run(filt, [[x] for x in stream])[:, 0]
    assert q.max() <= stream[-1] + 1e-12 and q[-1] == pytest.approx(stream[-1])
    v = np.diff(np.concatenate([[0.0], q])) / 0.01
    a = np.diff(np.concatenate([[0.0], v])) / 0.01
    assert np.all(np.abs(np.diff(np.concatenate([[0.0], a]))[:5]) <= 100.0 * (1 + 1e-6))  # the start: jerk held
    assert np.all(np.abs(a) <= 10.0 * (1 + 1e-9))
    assert filt.counts["jerk_yielded"] > 0  # the stop: jerk yielded, and counted


def test_a_late_message_does_not_speed_the_filter_past_the_stream():
    """A stream of a braking arm, heard with one message late (the same command twice, then a double step):
    the filter, behind the stream since jerk slowed its start, must not take the double step for the stream's
    speed and pass the stop (2 mrad past it if it did)."""
    filt = make_filter(small_robot(vmax=2.0, amax=10.0, jerk=400.0))
    steps = [0.1 * min(k, 10) for k in range(1, 30)] + [1.0 - 0.1 * k for k in range(1, 11)]  # v in rad/s
    stream = np.cumsum(np.array(steps) * 0.01)
    heard = stream.copy()
    heard[33] = heard[32]  # message 33 comes a tick late: the filter hears 32 twice, then 34
    q = run(filt, [[x] for x in heard] + [[stream[-1]]] * 30)[:, 0]
    assert q.max() <= stream[-1] + 1e-12
    assert q[-1] == pytest.approx(stream[-1])


def test_jerk_can_be_disabled():
    filt = make_filter(small_robot(jerk=100.0), config=SafetyConfig(enforce_jerk=False))
    assert run(filt, [[1.0]])[0, 0] == pytest.approx(0.001)


def test_feasible_trajectory_passes_unchanged():
    filt = make_filter(small_robot(joints=2, margin=0.05), start=[0.0, 0.2])
    t = np.arange(1, 200) * 0.01
    targets = np.column_stack([0.3 * np.sin(t) * np.sin(t), 0.2 + 0.1 * np.sin(2 * t) * np.sin(t)])
    out = run(filt, targets)
    np.testing.assert_allclose(out, targets, atol=1e-12)
    assert sum(filt.counts.values()) == 0


def test_step_target_is_reached_without_overshoot():
    filt = make_filter(small_robot(vmax=1.0, amax=10.0))
    q = run(filt, [[0.5]] * 150)[:, 0]
    assert q.max() <= 0.5 + 1e-12
    assert q[-1] == pytest.approx(0.5)
    v = np.diff(np.concatenate([[0.0], q])) / 0.01
    assert np.all(np.abs(np.diff(np.concatenate([[0.0], v]))) <= 0.1 + 1e-9)  # |dv| <= a*T


def naive_clamp(q0, target, vmax, amax, lo, hi, period, steps):
    q, v, out = q0, 0.0, []
    for _ in range(steps):
        x = min(max((target - q) / period, v - amax * period, -vmax), v + amax * period, vmax)
        qn = min(max(q + x * period, lo), hi)
        v, q = (qn - q) / period, qn
        out.append(q)
    return np.array(out)


def test_braking_aware_position_limit_where_a_naive_clamp_fails():
    lo, hi, vmax, amax, period = -1.0, 1.0, 2.0, 4.0, 0.01
    # The naive clamp reaches the limit at speed and stops dead: an acceleration it is not allowed.
    naive = naive_clamp(0.0, 5.0, vmax, amax, lo, hi, period, 200)
    v_naive = np.diff(np.concatenate([[0.0], naive])) / period
    assert np.abs(np.diff(np.concatenate([[0.0], v_naive]))).max() > amax * period * 10
    filt = make_filter(small_robot(vmax=vmax, amax=amax, lower=lo, upper=hi))
    q = run(filt, [[5.0]] * 200)[:, 0]
    v = np.diff(np.concatenate([[0.0], q])) / period
    a = np.diff(np.concatenate([[0.0], v])) / period
    assert q.max() <= hi + 1e-12
    assert np.abs(v).max() <= vmax + 1e-9
    assert np.abs(a).max() <= amax + 1e-6
    assert q[-1] == pytest.approx(hi, abs=1e-9)  # and it does use the range
    assert filt.counts["position"] > 0


def test_margin_shrinks_the_limits():
    filt = make_filter(small_robot(lower=-1.0, upper=1.0, margin=0.1, vmax=5.0, amax=1000.0))
    q = run(filt, [[3.0]] * 100)[:, 0]
    assert q.max() <= 0.9 + 1e-12 and q[-1] == pytest.approx(0.9)
    assert filt.counts["position"] == 100


def test_hold_decelerates_to_a_stop_within_limits():
    filt = make_filter(small_robot(vmax=1.0, amax=10.0))
    run(filt, [[10.0]] * 20)  # moving at 1 rad/s towards the limit
    v0, q0 = filt.last_velocity[0], filt.last_arm[0]
    assert v0 == pytest.approx(1.0)
    q = [filt.apply(None, None, hold=True).arm[0] for _ in range(30)]
    speeds = np.diff(np.concatenate([[q0], q])) / 0.01
    # 0.9, 0.8, ..., 0.1, 0: maximal deceleration, never reversing, then at rest
    np.testing.assert_allclose(speeds[:10], np.linspace(0.9, 0.0, 10), atol=1e-9)
    assert np.all(speeds[10:] == 0.0)
    assert q[-1] == pytest.approx(q0 + 0.01 * sum(np.linspace(0.9, 0.1, 9)))
    # only the ramp-up was counted (9 steps at max acceleration, then 11 at max velocity), not the hold
    assert filt.counts["acceleration"] == 9 and filt.counts["velocity"] == 11


def test_max_relative_target_from_measured_position():
    emb = small_robot(vmax=1.0, amax=1000.0, max_relative_target=0.05)
    filt = make_filter(emb)
    stuck = np.array([0.0, 0.04])  # the robot does not follow
    q = [filt.apply(np.array([1.0]), 0.04, measured_state=stuck).arm[0] for _ in range(20)]
    assert max(q) <= 0.05 + 1e-12 and q[-1] == pytest.approx(0.05)
    assert filt.counts["relative_target"] > 0


def test_max_relative_target_from_last_command():
    emb = small_robot(vmax=100.0, amax=1e6, max_relative_target=0.05)
    filt = make_filter(emb, config=SafetyConfig(relative_target_from_measured=False))
    q = run(filt, [[1.0]] * 3)[:, 0]
    np.testing.assert_allclose(q, [0.05, 0.10, 0.15])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_gives_hold_and_fault(bad):
    filt = make_filter(small_robot(joints=2), start=[0.1, 0.2])
    out = filt.apply(np.array([0.1, bad]), 0.04, source="policy")
    assert out.held and "non-finite" in out.fault and "policy" in out.fault
    np.testing.assert_allclose(out.arm, [0.1, 0.2])
    assert filt.counts["nonfinite"] == 1 and filt.faults == 1
    out = filt.apply(np.array([0.1, 0.2]), bad, source="teleop")  # in the gripper too
    assert out.held and filt.counts["nonfinite"] == 2
    out = filt.apply(np.array([0.1, 0.2]), 0.04)
    assert not out.held and out.fault == ""


def test_gripper_range_and_speed():
    filt = make_filter(small_robot(), gripper=0.04)  # gripper [0, 0.08], 0.1 m/s -> 0.001 per tick
    out = filt.apply(np.array([0.0]), 0.5)
    assert out.gripper == pytest.approx(0.041)
    assert filt.counts["gripper_range"] == 1 and filt.counts["gripper_speed"] == 1
    for _ in range(100):
        out = filt.apply(np.array([0.0]), 0.5)
    assert out.gripper == pytest.approx(0.08)
    out = filt.apply(np.array([0.0]), 0.0795)
    assert out.gripper == pytest.approx(0.0795)


def test_each_clamp_counts_once_per_tick_whatever_the_number_of_joints():
    filt = make_filter(small_robot(joints=3, vmax=1.0, amax=10.0))
    filt.apply(np.array([1.0, 1.0, -1.0]), 0.04)
    assert filt.counts["acceleration"] == 1


def test_starting_outside_the_limits_recovers_inwards_without_overshoot():
    filt = make_filter(small_robot(lower=-1.0, upper=1.0, margin=0.1, vmax=1.0, amax=10.0), start=[0.95])
    q = run(filt, [[2.0]] * 100)[:, 0]
    steps = np.diff(np.concatenate([[0.95], q]))
    assert np.all(steps <= 1e-12)  # never further out
    assert q.min() >= 0.9 - 1e-12 and q[-1] == pytest.approx(0.9)  # back to the limit, not past it
    v = steps / 0.01
    assert np.abs(np.diff(np.concatenate([[0.0], v]))).max() <= 0.1 + 1e-9


def test_apply_before_reset_is_an_error():
    emb = small_robot()
    filt = SafetyFilter(emb, CommandSpace.from_embodiment(emb), 0.01, SafetyConfig())
    with pytest.raises(RuntimeError):
        filt.apply(np.zeros(1), 0.0)


# ------------------------------------------------------------------------------------------------ Cartesian
def test_ee_pose_workspace_and_linear_speed():
    filt = make_filter(cartesian_robot("ee_pose"), start=[0.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    out = filt.apply(np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0]), 0.04)
    np.testing.assert_allclose(out.arm[:3], [0.0, 0.0, 0.502])  # 0.2 m/s for 10 ms
    assert filt.counts["workspace"] == 1 and filt.counts["linear_speed"] == 1
    for _ in range(400):
        out = filt.apply(np.array([3.0, 0.0, 5.0, 0.0, 0.0, 0.0]), 0.04)
    np.testing.assert_allclose(out.arm[:3], [0.5, 0.0, 1.0])  # the box corner, not the target


def test_ee_pose_angular_speed():
    filt = make_filter(cartesian_robot("ee_pose"), start=[0.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    out = filt.apply(np.array([0.0, 0.0, 0.5, 0.0, 0.0, 1.0]), 0.04)  # yaw 1 rad in one tick
    np.testing.assert_allclose(out.arm[3:], [0.0, 0.0, 0.01], atol=1e-12)  # 1 rad/s * 10 ms
    out = filt.apply(np.array([0.0, 0.0, 0.5, 0.3, -0.2, 0.5]), 0.04)
    step = rotation_angle(quat_from_rpy(0.0, 0.0, 0.01), quat_from_rpy(*out.arm[3:]))
    assert step == pytest.approx(0.01)
    assert filt.counts["angular_speed"] == 2
    small = out.arm + np.array([0, 0, 0, 0.001, 0, 0])
    out = filt.apply(small, 0.04)
    np.testing.assert_allclose(out.arm, small)  # within limits: passed through exactly


def test_ee_twist_norms_and_workspace():
    emb = cartesian_robot("ee_delta")
    filt = make_filter(emb)
    out = filt.apply(np.array([0.3, 0.4, 0.0, 0.0, 0.0, 2.0]), 0.04, ee_position=np.array([0.0, 0.0, 0.5]))
    np.testing.assert_allclose(out.arm, [0.12, 0.16, 0.0, 0.0, 0.0, 1.0])  # |v| 0.5 -> 0.2, |w| 2 -> 1
    assert filt.counts["linear_speed"] == 1 and filt.counts["angular_speed"] == 1
    # 1 mm from the +x wall: at most 0.1 m/s outwards this tick; inwards is free
    out = filt.apply(np.array([0.2, 0.0, 0.0, 0, 0, 0]), 0.04, ee_position=np.array([0.499, 0.0, 0.5]))
    np.testing.assert_allclose(out.arm[:3], [0.1, 0.0, 0.0])
    out = filt.apply(np.array([0.0, 0.0, -0.2, 0, 0, 0]), 0.04, ee_position=np.array([0.0, 0.0, -0.01]))
    np.testing.assert_allclose(out.arm[:3], [0.0, 0.0, 0.0])  # below the floor: no further down
    assert filt.counts["workspace"] == 2
    filt.apply(np.array([0.0, 0.0, 0.1, 0, 0, 0]), 0.04)
    assert filt.counts["workspace_unverified"] == 1
    out = filt.apply(None, None, hold=True)
    np.testing.assert_allclose(out.arm, 0.0)  # holding a twist is standing still


def test_tightening_the_velocity_limit_brakes_at_max_acceleration_and_never_loosens():
    emb = small_robot(vmax=1.0, amax=10.0)  # T = 0.01: speed changes at most 0.1 rad/s per step
    filt = make_filter(emb)
    run(filt, [[5.0]] * 20)  # accelerate to full speed towards a far target
    assert filt.last_velocity[0] == pytest.approx(1.0)
    filt.set_velocity_scale(0.5)
    speeds = []
    for _ in range(10):
        filt.apply(np.array([5.0]), 0.04)
        speeds.append(filt.last_velocity[0])
    np.testing.assert_allclose(speeds[:5], [0.9, 0.8, 0.7, 0.6, 0.5])  # braked at 10 rad/s^2, not a jump
    assert max(speeds[5:]) == pytest.approx(0.5)  # then held at the new limit
    with pytest.raises(ValueError, match="only decrease"):
        filt.set_velocity_scale(0.8)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            filt.set_velocity_scale(bad)
    assert filt.velocity_scale == 0.5


def test_velocity_scale_also_scales_cartesian_speeds():
    filt = make_filter(cartesian_robot("ee_delta"), start=np.zeros(6))
    filt.set_velocity_scale(0.25)
    out = filt.apply(np.array([10.0, 0.0, 0.0, 0.0, 0.0, 10.0]), None, ee_position=np.array([0.4, 0.0, 0.4]))
    space = cartesian_robot("ee_delta").action_space
    assert out.arm[0] == pytest.approx(0.25 * space.max_linear_speed)
    assert out.arm[5] == pytest.approx(0.25 * space.max_angular_speed)
