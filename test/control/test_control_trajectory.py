"""Interpolation between waypoints: hand-computed values, continuity, end holding."""

from __future__ import annotations

import numpy as np
import pytest

from vla_policy_node.control.trajectory import Trajectory


def test_linear_interpolation_hand_computed():
    traj = Trajectory(1.0, 0.5, [[0.0, 10.0], [1.0, 20.0], [3.0, 20.0]], "linear")
    assert traj.t_end == pytest.approx(2.0)
    np.testing.assert_allclose(traj.sample(1.0), [0.0, 10.0])
    np.testing.assert_allclose(traj.sample(1.25), [0.5, 15.0])
    np.testing.assert_allclose(traj.sample(1.5), [1.0, 20.0])
    np.testing.assert_allclose(traj.sample(1.875), [2.5, 20.0])


def test_ends_are_held():
    traj = Trajectory(0.0, 0.1, [[1.0], [2.0], [4.0]], "cubic")
    np.testing.assert_allclose(traj.sample(-5.0), [1.0])
    np.testing.assert_allclose(traj.sample(0.2), [4.0])
    np.testing.assert_allclose(traj.sample(9.0), [4.0])


def test_single_waypoint_is_constant():
    traj = Trajectory(0.0, 0.1, [[3.0, -1.0]], "cubic")
    assert traj.t_end == 0.0
    np.testing.assert_allclose(traj.sample(0.05), [3.0, -1.0])
    np.testing.assert_allclose(traj.evaluate(np.array([-1.0, 0.0, 2.0])), [[3.0, -1.0]] * 3)


def test_cubic_passes_through_waypoints_and_is_velocity_continuous():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(6, 3))
    traj = Trajectory(0.0, 0.1, points, "cubic")
    for k, p in enumerate(points):
        np.testing.assert_allclose(traj.sample(0.1 * k), p, atol=1e-12)
    h = 1e-6
    for k in range(1, 5):  # interior waypoints: left and right derivative agree (C1)
        t = 0.1 * k
        left = (traj.sample(t) - traj.sample(t - h)) / h
        right = (traj.sample(t + h) - traj.sample(t)) / h
        np.testing.assert_allclose(left, right, rtol=1e-3, atol=1e-3)
        # Catmull-Rom tangent: (p[k+1] - p[k-1]) / (2 dt)
        np.testing.assert_allclose(right, (points[k + 1] - points[k - 1]) / 0.2, rtol=1e-3, atol=1e-3)


def test_linear_interpolation_has_velocity_kinks_that_cubic_removes():
    points = np.array([[0.0], [0.0], [1.0], [1.0]])
    lin = Trajectory(0.0, 0.1, points, "linear")
    cub = Trajectory(0.0, 0.1, points, "cubic")
    h = 1e-6
    kink_lin = (lin.sample(0.1 + h) - lin.sample(0.1)) / h - (lin.sample(0.1) - lin.sample(0.1 - h)) / h
    kink_cub = (cub.sample(0.1 + h) - cub.sample(0.1)) / h - (cub.sample(0.1) - cub.sample(0.1 - h)) / h
    assert abs(kink_lin[0]) == pytest.approx(10.0, rel=1e-3)
    assert abs(kink_cub[0]) < 1e-3


def test_linear_columns_stay_linear_in_cubic_mode():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    traj = Trajectory(0.0, 0.1, points, "cubic", linear_columns=(1,))
    mid = traj.sample(0.15)
    assert mid[1] == pytest.approx(0.5)  # linear gripper column
    assert mid[0] == pytest.approx(0.5)  # Catmull-Rom is symmetric here too
    quarter = traj.sample(0.125)
    assert quarter[1] == pytest.approx(0.25)
    assert quarter[0] != pytest.approx(0.25)  # the cubic column is not linear


def test_evaluate_matches_sample():
    rng = np.random.default_rng(2)
    traj = Trajectory(0.3, 0.05, rng.normal(size=(9, 4)), "cubic", linear_columns=(3,))
    times = np.linspace(0.2, 0.8, 37)
    batch = traj.evaluate(times)
    for t, row in zip(times, batch, strict=True):
        np.testing.assert_allclose(traj.sample(t), row, atol=1e-12)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        Trajectory(0.0, 0.0, [[1.0]])
    with pytest.raises(ValueError):
        Trajectory(0.0, 0.1, np.zeros((0, 2)))


def test_tick_sampling_is_numpys_horner_bit_for_bit():
    """`sample_into` evaluates in plain Python floats for speed; it must give numpy's Horner evaluation
    (c3*s + c2, *s + c1, *s + c0, element-wise) to the last bit, at any time, for any shape and scale."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        k, d = int(rng.integers(1, 30)), int(rng.integers(1, 12))
        values = rng.normal(size=(k, d)) * 10 ** rng.uniform(-4, 4, size=d)
        traj = Trajectory(float(rng.normal()), float(rng.uniform(0.001, 0.5)), values,
                          str(rng.choice(["linear", "cubic"])), tuple(range(0, d, 3)))
        for t in rng.uniform(traj.t0 - 0.2, traj.t_end + 0.2, 40):
            seg, s = traj._locate(t)
            expected = np.multiply(traj._c3[seg], s)
            expected += traj._c2[seg]
            expected *= s
            expected += traj._c1[seg]
            expected *= s
            expected += traj._c0[seg]
            assert traj.sample_into(t, np.empty(d)).tobytes() == expected.tobytes()
            assert traj.sample(t).tobytes() == expected.tobytes()
