"""Property: whatever the target sequence (wild, NaN, Inf, huge jumps, holds, a lagging robot), no command the
safety filter sends leaves the position / velocity / acceleration limits, derived from consecutive sent
commands and the control period."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from test.control.helpers import cartesian_robot, small_robot
from vla_policy_node.control.command import CommandSpace
from vla_policy_node.control.config import SafetyConfig
from vla_policy_node.control.safety import SafetyFilter
from vla_policy_node.kinematics.rotation import quat_from_rpy, rotation_angle

wild = st.one_of(
    st.floats(-2.0, 2.0),
    st.floats(-1e6, 1e6),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 0.0]),
)
# Each step is repeated `count` ticks, so sequences contain sustained pushes towards (or past) a limit as well
# as tick-by-tick noise.
step = st.tuples(
    st.one_of(
        st.tuples(st.just("target"), st.lists(wild, min_size=3, max_size=3), wild),
        st.tuples(st.just("target"), st.lists(st.sampled_from([-10.0, 10.0, -1e6, 1e6]), min_size=3, max_size=3),
                  st.floats(-1.0, 1.0)),  # a push past the limits
        st.tuples(st.just("smooth"), st.floats(-1.0, 1.0), st.floats(0.0, 0.08)),
        st.tuples(st.just("hold"), st.none(), st.none()),
    ),
    st.integers(1, 80),
)
robots = st.builds(
    lambda vmax, amax, jerk, margin, hz, mrt: small_robot(
        joints=3, lower=-1.0, upper=1.5, vmax=vmax, amax=amax, jerk=jerk, margin=margin, control_hz=hz,
        max_relative_target=mrt,
    ),
    st.floats(0.1, 5.0),
    st.floats(0.5, 50.0),
    st.one_of(st.none(), st.floats(10.0, 5000.0)),
    st.floats(0.0, 0.2),
    st.sampled_from([100.0, 250.0, 500.0]),
    st.one_of(st.none(), st.floats(0.01, 0.5)),
)


def check_limits(filt, history, tol=1e-9):
    q = np.array(history)
    period = filt.period
    assert np.all(q >= filt.lower - tol) and np.all(q <= filt.upper + tol), "position limit"
    v = np.diff(q, axis=0) / period
    assert np.all(np.abs(v) <= filt.max_velocity * (1 + tol) + tol), "velocity limit"
    a = np.diff(v, axis=0) / period
    assert np.all(np.abs(a) <= filt.max_acceleration * (1 + 1e-7) + 1e-6), "acceleration limit"


@settings(max_examples=150, deadline=None)
@given(
    robots,
    st.lists(st.floats(-0.5, 1.0), min_size=3, max_size=3),
    st.lists(step, min_size=1, max_size=12),
    st.booleans(),
    st.booleans(),
)
def test_joint_commands_never_leave_limits(emb, start, steps, lagging_robot, from_measured):
    space = CommandSpace.from_embodiment(emb)
    config = SafetyConfig(relative_target_from_measured=from_measured)
    filt = SafetyFilter(emb, space, 1.0 / emb.rates.control_hz, config)
    start = np.clip(start, filt.lower, filt.upper)
    filt.reset(start, 0.04)
    history = [start, start]  # at rest before the first command
    grippers = [0.04]
    measured = np.append(start, 0.04)
    ticks = [(kind, a, b) for (kind, a, b), count in steps for _ in range(count)]
    for i, (kind, a, b) in enumerate(ticks):
        if kind == "target":
            out = filt.apply(np.array(a), b, measured_state=measured)
            assert out.held == (not all(math.isfinite(x) for x in [*a, b]))
        elif kind == "smooth":
            out = filt.apply(np.full(3, a * math.sin(0.05 * i)), b, measured_state=measured)
            assert not out.held
        else:
            out = filt.apply(None, None, hold=True)
            assert out.held
        assert np.all(np.isfinite(out.arm)) and math.isfinite(out.gripper)
        history.append(out.arm)
        grippers.append(out.gripper)
        if not lagging_robot:
            measured = np.append(out.arm, out.gripper)
    check_limits(filt, history)
    g = np.array(grippers)
    assert np.all((g >= 0.0) & (g <= 0.08))
    assert np.all(np.abs(np.diff(g)) <= 0.1 * filt.period * (1 + 1e-9) + 1e-12)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.one_of(st.floats(-3, 3), st.sampled_from([math.nan, 1e9])), min_size=6, max_size=6),
                  st.booleans()),
        min_size=1, max_size=60,
    )
)
def test_ee_pose_commands_stay_in_workspace_and_speed(targets):
    emb = cartesian_robot("ee_pose")
    filt = SafetyFilter(emb, CommandSpace.from_embodiment(emb), 0.01, SafetyConfig())
    last = np.array([0.0, 0.0, 0.5, 0.0, 0.0, 0.0])
    filt.reset(last, 0.0)
    for values, hold in targets:
        out = filt.apply(np.array(values), 0.0, hold=hold)
        p = out.arm[:3]
        assert np.all(p >= np.array([-0.5, -0.5, 0.0]) - 1e-12) and np.all(p <= np.array([0.5, 0.5, 1.0]) + 1e-12)
        assert np.linalg.norm(p - last[:3]) <= 0.2 * 0.01 * (1 + 1e-9) + 1e-12
        turn = rotation_angle(quat_from_rpy(*last[3:]), quat_from_rpy(*out.arm[3:]))
        assert turn <= 1.0 * 0.01 * (1 + 1e-6) + 1e-9
        last = out.arm


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.one_of(st.floats(-5, 5), st.sampled_from([math.nan, -math.inf])), min_size=6, max_size=6),
            st.lists(st.floats(-1, 1.5), min_size=3, max_size=3),
        ),
        min_size=1, max_size=60,
    )
)
def test_twist_commands_respect_speeds_and_do_not_leave_the_box(steps):
    emb = cartesian_robot("ee_delta")
    filt = SafetyFilter(emb, CommandSpace.from_embodiment(emb), 0.01, SafetyConfig())
    filt.reset(np.zeros(6), 0.0)
    lo, hi = np.array([-0.5, -0.5, 0.0]), np.array([0.5, 0.5, 1.0])
    for values, pos in steps:
        pos = np.array(pos)
        out = filt.apply(np.array(values), 0.0, ee_position=pos)
        v, w = out.arm[:3], out.arm[3:]
        assert np.linalg.norm(v) <= 0.2 * (1 + 1e-9) and np.linalg.norm(w) <= 1.0 * (1 + 1e-9)
        nxt = pos + v * 0.01
        inside = (pos >= lo) & (pos <= hi)
        assert np.all(~inside | ((nxt >= lo - 1e-12) & (nxt <= hi + 1e-12)))  # inside stays inside
        assert np.all(inside | (np.abs(nxt - np.clip(nxt, lo, hi)) <= np.abs(pos - np.clip(pos, lo, hi)) + 1e-12))


@settings(max_examples=150, deadline=None)
@given(robots, st.lists(st.floats(-0.5, 1.0), min_size=3, max_size=3), st.lists(step, min_size=1, max_size=12))
def test_a_filter_following_another_s_stream_reproduces_it(emb, start, steps):
    """The command mux runs a second filter, with the same limits, on the policy node's filtered stream. Whatever
    the policy's targets (wild, NaN, pushes past the limits, holds), the stream it sends is one the second filter
    follows exactly: a second filter must never add motion of its own (before 2026-12-06 it enforced jerk on
    the first one's stops and passed them)."""
    space = CommandSpace.from_embodiment(emb)
    config = SafetyConfig(relative_target_from_measured=False)
    first, second = (SafetyFilter(emb, space, 1.0 / emb.rates.control_hz, config) for _ in range(2))
    start = np.clip(start, first.lower, first.upper)
    first.reset(start, 0.04)
    second.reset(start, 0.04)
    ticks = [(kind, a, b) for (kind, a, b), count in steps for _ in range(count)]
    for i, (kind, a, b) in enumerate(ticks):
        if kind == "target":
            out = first.apply(np.array(a), b)
        elif kind == "smooth":
            out = first.apply(np.full(3, a * math.sin(0.05 * i)), b)
        else:
            out = first.apply(None, None, hold=True)
        followed = second.apply(out.arm, out.gripper)
        np.testing.assert_allclose(followed.arm, out.arm, rtol=0, atol=1e-9, err_msg=f"tick {i}")
