"""Node outputs: ActionChunk, PolicyStatus, diagnostics, twist/pose commands, points, rviz markers; error
counting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from vla_policy_node.msgs import (
    DiagnosticEntry,
    MessageError,
    MessageErrorCounter,
    decode_action_chunk,
    decode_diagnostics,
    decode_image,
    decode_marker_points,
    decode_point_stamped,
    decode_policy_status,
    decode_pose_stamped,
    decode_twist_stamped,
    encode_action_chunk,
    encode_diagnostics,
    encode_path_markers,
    encode_point_stamped,
    encode_policy_status,
    encode_pose_stamped,
    encode_twist_stamped,
)
from vla_policy_node.spec.types import ActionChunk


def _chunk() -> ActionChunk:
    return ActionChunk(stamp=100.25, dt=0.02, actions=np.arange(16 * 7, dtype=float).reshape(16, 7) / 100,
                       names=tuple(f"joint{i}" for i in range(7)))


def test_action_chunk_round_trip(new, cdr_round_trip):
    chunk = _chunk()
    msg = cdr_round_trip(encode_action_chunk(new, chunk, frame_id="base", inference_latency=0.031))
    assert msg.horizon == 16 and msg.inference_latency == pytest.approx(0.031)
    out = decode_action_chunk(msg)
    assert out.stamp == pytest.approx(chunk.stamp) and out.dt == chunk.dt and out.names == chunk.names
    np.testing.assert_array_equal(out.actions, chunk.actions)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"actions": np.zeros(5)}, "size_mismatch"),
        ({"actions": np.full(4, np.nan)}, "non_finite"),
        ({"dt": 0.0}, "bad_dt"),
        ({"horizon": 0, "actions": np.zeros(0)}, "empty_chunk"),
        ({"names": ["a", "a"]}, "duplicate_names"),
    ],
)
def test_bad_action_chunks(new, change, problem):
    fields = {"names": ["a", "b"], "dt": 0.1, "horizon": 2, "actions": np.zeros(4)} | change
    with pytest.raises(MessageError) as info:
        decode_action_chunk(new("vla_msgs/msg/ActionChunk", **fields))
    assert info.value.problem == problem


@dataclass
class Status:
    active_source: str = "policy"
    paused: bool = False
    estop_latched: bool = True
    instruction: str = "pick the red cube"
    control_rate: float = 250.0
    stale_inputs: list[str] = field(default_factory=lambda: ["wrist_cam"])
    input_ages: list[float] = field(default_factory=lambda: [0.4])
    clamp_names: list[str] = field(default_factory=lambda: ["velocity", "workspace"])
    clamp_counts: list[int] = field(default_factory=lambda: [3, 12])


def test_policy_status_from_dataclass_and_dict(new, cdr_round_trip):
    out = decode_policy_status(cdr_round_trip(encode_policy_status(new, Status(), stamp=7.5)))
    assert out["stamp"] == 7.5 and out["active_source"] == "policy" and out["estop_latched"] is True
    assert out["instruction"] == "pick the red cube" and out["control_rate"] == 250.0
    assert out["stale_inputs"] == ["wrist_cam"] and out["input_ages"] == [0.4]
    assert out["clamp_names"] == ["velocity", "workspace"] and out["clamp_counts"] == [3, 12]
    assert out["fault"] == "" and out["starved"] is False  # defaults for fields not given
    partial = decode_policy_status(cdr_round_trip(encode_policy_status(new, {"paused": True}, stamp=1.0)))
    assert partial["paused"] is True


def test_policy_status_rejects_unknown_and_unpaired_fields(new):
    with pytest.raises(ValueError, match="no field"):
        encode_policy_status(new, {"pause": True}, stamp=0.0)
    with pytest.raises(ValueError, match="same length"):
        encode_policy_status(new, {"clamp_names": ["a"], "clamp_counts": []}, stamp=0.0)
    with pytest.raises(MessageError, match="length_mismatch"):
        decode_policy_status(new("vla_msgs/msg/PolicyStatus", stale_inputs=["a"], input_ages=[]))


def test_diagnostics_round_trip(new, cdr_round_trip):
    entries = [
        (0, "vla/inference", "ok", {"latency_ms": 31.5}),
        DiagnosticEntry(2, "vla/camera", "stale", [("age_s", "0.7")], hardware_id="d435"),
    ]
    stamp, out = decode_diagnostics(cdr_round_trip(encode_diagnostics(new, entries, stamp=5.0, hardware_id="gpu0")))
    assert stamp == 5.0
    assert out[0] == DiagnosticEntry(0, "vla/inference", "ok", (("latency_ms", "31.5"),), "gpu0")
    assert out[1] == DiagnosticEntry(2, "vla/camera", "stale", (("age_s", "0.7"),), "d435")


def test_diagnostics_level_as_rclpy_bytes_and_bad_level(new):
    class Status:  # rclpy represents `byte` fields as bytes of length one
        level, name, message, hardware_id, values = b"\x01", "x", "warn", "", []

    class Array:
        def __init__(self):
            self.header = new("std_msgs/msg/Header")
            self.status = [Status()]

    assert decode_diagnostics(Array())[1][0].level == 1
    Status.level = b"\x07"
    with pytest.raises(MessageError, match="bad_level"):
        decode_diagnostics(Array())


def test_twist_and_pose_round_trip(new, cdr_round_trip):
    twist = decode_twist_stamped(cdr_round_trip(encode_twist_stamped(new, [0.1, 0, -0.2], [0, 0.5, 0], stamp=2.0,
                                                                     frame_id="tool0")))
    assert twist.frame_id == "tool0" and twist.stamp == 2.0
    np.testing.assert_array_equal(twist.linear, [0.1, 0, -0.2])
    np.testing.assert_array_equal(twist.angular, [0, 0.5, 0])
    pose = decode_pose_stamped(cdr_round_trip(encode_pose_stamped(new, [0.4, 0, 0.3], [0, 0, 0, 2.0])))
    np.testing.assert_array_equal(pose.position, [0.4, 0, 0.3])
    np.testing.assert_allclose(pose.orientation, [0, 0, 0, 1.0])


def test_point_round_trip(new, store, cdr_round_trip):
    msg = encode_point_stamped(new, [0.42, -0.1, 0.035], stamp=1_700_000_000.25, frame_id="world")
    assert msg.__msgtype__ == "geometry_msgs/msg/PointStamped"
    assert store.hash_rihs01(msg.__msgtype__).startswith("RIHS01_")  # a bag can declare it
    point = decode_point_stamped(cdr_round_trip(msg))
    assert point.frame_id == "world" and point.stamp == pytest.approx(1_700_000_000.25, abs=1e-6)
    np.testing.assert_array_equal(point.point, [0.42, -0.1, 0.035])


def test_bad_point(new):
    with pytest.raises(ValueError, match="3 finite values"):
        encode_point_stamped(new, [0.0, 1.0])
    msg = encode_point_stamped(new, [0.0, 0.0, 0.0])
    msg.point.z = float("inf")
    with pytest.raises(MessageError, match="non_finite"):
        decode_point_stamped(msg)


def test_bad_twist_and_pose(new):
    twist = encode_twist_stamped(new, [0, 0, 0], [0, 0, 0])
    twist.twist.linear.x = float("nan")
    with pytest.raises(MessageError, match="non_finite"):
        decode_twist_stamped(twist)
    with pytest.raises(MessageError, match="bad_quaternion"):
        decode_pose_stamped(new("geometry_msgs/msg/PoseStamped"))  # all-zero quaternion
    with pytest.raises(ValueError, match="quaternion"):
        encode_pose_stamped(new, [0, 0, 0], [0, 0, 0, 0])


def test_path_markers_round_trip(new, cdr_round_trip):
    path = np.column_stack([np.linspace(0.3, 0.5, 16), np.zeros(16), np.linspace(0.2, 0.1, 16)])
    msg = cdr_round_trip(encode_path_markers(new, path, stamp=1.0, frame_id="base_link", ns="chunk", marker_id=10))
    markers = decode_marker_points(msg)
    assert set(markers) == {("chunk", 10), ("chunk", 11)}
    assert markers[("chunk", 10)][0] == 4 and markers[("chunk", 11)][0] == 7  # LINE_STRIP, SPHERE_LIST
    for _, points in markers.values():
        np.testing.assert_array_equal(points, path)
    assert msg.markers[0].scale.x == pytest.approx(0.005) and msg.markers[0].pose.orientation.w == 1.0


def test_error_counter_counts_instead_of_raising(new):
    counter = MessageErrorCounter()
    bad = new("sensor_msgs/msg/Image", encoding="rgb8", width=2, height=2, step=6, data=np.zeros(3, np.uint8))
    assert counter.decode(decode_image, bad, topic="/cam") is None
    assert counter.decode(decode_image, bad, topic="/cam") is None
    good = new("sensor_msgs/msg/Image", encoding="mono8", width=1, height=1, step=1, data=np.ones(1, np.uint8))
    assert counter.decode(decode_image, good, topic="/cam").shape == (1, 1, 3)
    assert counter.counts() == {("/cam", "size_mismatch"): 2}
    assert counter.total == 2 and counter.by_problem() == {"size_mismatch": 2}
    assert counter.last_error("/cam").problem == "size_mismatch"
