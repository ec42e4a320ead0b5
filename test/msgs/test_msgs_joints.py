"""Joint-space conversions round-trip through CDR, and reject what drivers get wrong."""

from __future__ import annotations

import numpy as np
import pytest

from vla_policy_node.msgs import (
    MessageError,
    decode_float64_array,
    decode_joint_jog,
    decode_joint_state,
    decode_joint_trajectory,
    encode_float64_array,
    encode_joint_jog,
    encode_joint_state,
    encode_joint_trajectory,
)

NAMES = ["j1", "j2", "j3"]


def test_joint_state_round_trip_and_reorder(new, cdr_round_trip):
    msg = encode_joint_state(new, NAMES, [0.1, -0.2, 0.3], velocities=[1.0, 2.0, 3.0],
                             efforts=[np.nan, 0.5, 0.0], stamp=3.25)
    state = decode_joint_state(cdr_round_trip(msg))
    assert state.names == tuple(NAMES) and state.stamp == pytest.approx(3.25)
    np.testing.assert_array_equal(state.positions, [0.1, -0.2, 0.3])
    np.testing.assert_array_equal(state.velocities, [1.0, 2.0, 3.0])
    assert np.isnan(state.efforts[0])  # NaN effort is tolerated (no torque sensing)
    np.testing.assert_array_equal(state.positions_for(["j3", "j1"]), [0.3, 0.1])
    with pytest.raises(MessageError, match="missing_joint"):
        state.positions_for(["j4"])


def test_joint_state_without_velocities(new, cdr_round_trip):
    state = decode_joint_state(cdr_round_trip(encode_joint_state(new, NAMES, [0.0, 0.0, 0.0])))
    assert state.velocities is None and state.efforts is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": NAMES, "position": [0.0, np.nan, 0.0]}, "non_finite"),
        ({"name": NAMES, "position": [0.0, 0.0]}, "length_mismatch"),
        ({"name": NAMES, "position": [0.0, 0.0, 0.0], "velocity": [1.0]}, "length_mismatch"),
        ({"name": NAMES, "position": [0.0, 0.0, 0.0], "velocity": [1.0, np.inf, 0.0]}, "non_finite"),
        ({"name": ["a", "a"], "position": [0.0, 0.0]}, "duplicate_names"),
    ],
)
def test_bad_joint_states(new, fields, problem):
    with pytest.raises(MessageError) as info:
        decode_joint_state(new("sensor_msgs/msg/JointState", **fields))
    assert info.value.problem == problem


def test_joint_trajectory_round_trip(new, cdr_round_trip):
    positions = np.arange(12, dtype=float).reshape(4, 3) / 10
    velocities = -positions
    times = [0.1, 0.2, 0.35, 1.5]
    msg = cdr_round_trip(encode_joint_trajectory(new, NAMES, positions, times, velocities, stamp=0.0))
    assert msg.points[2].time_from_start.sec == 0 and msg.points[2].time_from_start.nanosec == 350_000_000
    assert msg.points[3].time_from_start.sec == 1 and msg.points[3].time_from_start.nanosec == 500_000_000
    traj = decode_joint_trajectory(msg)
    assert traj.stamp == 0.0 and traj.joint_names == tuple(NAMES)
    np.testing.assert_array_equal(traj.positions, positions)
    np.testing.assert_array_equal(traj.velocities, velocities)
    np.testing.assert_allclose(traj.times_from_start, times)


def test_joint_trajectory_without_velocities(new, cdr_round_trip):
    traj = decode_joint_trajectory(cdr_round_trip(encode_joint_trajectory(new, NAMES, np.zeros((2, 3)), [0.5, 1.0])))
    assert traj.velocities is None


def _point(new, positions, t):
    return new("trajectory_msgs/msg/JointTrajectoryPoint", positions=positions,
               time_from_start=new("builtin_interfaces/msg/Duration", sec=int(t), nanosec=int((t % 1) * 1e9)))


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ([([0.0, 0.0], 0.1)], "length_mismatch"),
        ([([0.0, 0.0, 0.0], 0.2), ([0.0, 0.0, 0.0], 0.2)], "bad_timing"),
        ([([0.0, np.nan, 0.0], 0.1)], "non_finite"),
        ([], "empty_trajectory"),
    ],
)
def test_bad_trajectories(new, points, problem):
    msg = new("trajectory_msgs/msg/JointTrajectory", joint_names=NAMES, points=[_point(new, p, t) for p, t in points])
    with pytest.raises(MessageError) as info:
        decode_joint_trajectory(msg)
    assert info.value.problem == problem


def test_trajectory_encoder_rejects_bad_input(new):
    with pytest.raises(ValueError, match="strictly increasing"):
        encode_joint_trajectory(new, NAMES, np.zeros((2, 3)), [0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        encode_joint_trajectory(new, NAMES, np.zeros((2, 2)), [0.5, 1.0])


def test_float64_array_round_trip_and_offset(new, cdr_round_trip):
    msg = cdr_round_trip(encode_float64_array(new, [1.0, 2.5, -3.0], label="joints"))
    assert msg.layout.dim[0].label == "joints" and msg.layout.dim[0].size == 3
    np.testing.assert_array_equal(decode_float64_array(msg, expected_size=3), [1.0, 2.5, -3.0])
    shifted = new("std_msgs/msg/Float64MultiArray", layout=new("std_msgs/msg/MultiArrayLayout", data_offset=1),
                  data=[9.0, 1.0, 2.0])
    np.testing.assert_array_equal(decode_float64_array(shifted), [1.0, 2.0])


@pytest.mark.parametrize(
    ("data", "expected", "problem"),
    [([1.0, np.nan], None, "non_finite"), ([1.0, 2.0], 3, "length_mismatch")],
)
def test_bad_float64_arrays(new, data, expected, problem):
    with pytest.raises(MessageError) as info:
        decode_float64_array(new("std_msgs/msg/Float64MultiArray", data=data), expected_size=expected)
    assert info.value.problem == problem


def test_joint_jog_round_trip(new, cdr_round_trip):
    jog = decode_joint_jog(cdr_round_trip(encode_joint_jog(new, NAMES, velocities=[0.1, 0.0, -0.1], duration=0.2)))
    assert jog.joint_names == tuple(NAMES) and jog.displacements is None and jog.duration == pytest.approx(0.2)
    np.testing.assert_array_equal(jog.velocities, [0.1, 0.0, -0.1])
