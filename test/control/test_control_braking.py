"""Discrete braking math: hand values, inverse property, and a simulated stop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_policy_node.control.braking import braking_velocity, stopping_distance


def test_hand_computed_values():
    # a = 10, T = 0.01: one braking unit c = a*T^2 = 0.001
    assert braking_velocity(0.0005, 10.0, 0.01) == pytest.approx(0.05)  # one step, then already stopped
    assert braking_velocity(0.001, 10.0, 0.01) == pytest.approx(0.1)  # 0.1 then 0.0: 0.001 + 0
    assert braking_velocity(0.003, 10.0, 0.01) == pytest.approx(0.2)  # 0.2, 0.1 -> 0.002 + 0.001
    assert stopping_distance(0.2, 10.0, 0.01) == pytest.approx(0.003)
    assert braking_velocity(0.0, 10.0, 0.01) == 0.0
    assert braking_velocity(-0.003, 10.0, 0.01) == pytest.approx(-0.2)  # beyond the limit: head back, no overshoot


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1e-6, 10.0),
    st.floats(0.1, 100.0),
    st.sampled_from([0.002, 0.004, 0.01, 0.02]),
)
def test_braking_velocity_inverts_stopping_distance(distance, accel, period):
    v = braking_velocity(distance, accel, period)
    assert v >= 0
    assert stopping_distance(v, accel, period) == pytest.approx(distance, rel=1e-9, abs=1e-12)
    # and any faster step would overshoot
    assert stopping_distance(v * (1 + 1e-6) + 1e-9, accel, period) > distance


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-4, 3.0), st.floats(0.5, 50.0), st.sampled_from([0.004, 0.01]))
def test_braking_at_max_deceleration_stops_within_distance(distance, accel, period):
    q, v = 0.0, braking_velocity(distance, accel, period)
    q += v * period
    while v > 0:
        v = max(v - accel * period, 0.0)
        q += v * period
    assert q <= distance * (1 + 1e-9) + 1e-12
