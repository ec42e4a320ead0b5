"""Generated DDS types: wire bytes identical to rosbags' CDR, the raw-bytes fast path, service framing."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from vla_policy_node.msgs import (
    decode_action_chunk,
    decode_image,
    decode_joint_state,
    default_typestore,
    encode_action_chunk,
    encode_diagnostics,
    encode_image,
    encode_joint_state,
    encode_joint_trajectory,
    encode_path_markers,
    encode_point_stamped,
    encode_policy_status,
    rosbags_factory,
)
from vla_policy_node.msgs.inference import encode_inference_request
from vla_policy_node.spec.types import ActionChunk, RtcPrefix
from vla_policy_node.transport.dds_types import DdsTypeRegistry


@pytest.fixture(scope="module")
def store():
    return default_typestore()


@pytest.fixture(scope="module")
def registry(store):
    return DdsTypeRegistry(store)


def _rgb(h=480, w=640):
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


CASES = {
    "JointState": lambda new: encode_joint_state(new, ["a", "b", "c"], [0.1, 0.2, 0.3], [1.0, 2.0, 3.0],
                                                  stamp=1.5, frame_id="base"),
    "Image": lambda new: encode_image(new, _rgb(), "bgr8", stamp=2.25, frame_id="camera"),
    "JointTrajectory": lambda new: encode_joint_trajectory(new, ["a", "b"], np.arange(10.0).reshape(5, 2),
                                                           [0.1, 0.2, 0.3, 0.4, 0.5], -np.arange(10.0).reshape(5, 2)),
    "ActionChunk": lambda new: encode_action_chunk(
        new, ActionChunk(stamp=9.5, dt=0.05, actions=np.linspace(-1, 1, 48).reshape(8, 6),
                         names=("x", "y", "z", "roll", "pitch", "yaw")), inference_latency=0.04),
    "PolicyStatus": lambda new: encode_policy_status(
        new, {"active_source": "teleop", "paused": True, "input_ages": [0.1, 0.2], "stale_inputs": ["a", "b"],
              "clamp_names": ["v"], "clamp_counts": [7], "inference_latency_p99": 0.08}, stamp=3.0),
    "MarkerArray": lambda new: encode_path_markers(new, np.random.default_rng(1).normal(size=(16, 3)), stamp=4.0),
    "DiagnosticArray": lambda new: encode_diagnostics(new, [(1, "vla/x", "slow", {"k": 1})], stamp=5.0),
    "PointStamped": lambda new: encode_point_stamped(new, [0.4, -0.1, 0.05], stamp=6.5, frame_id="world"),
    "InferenceRequest": lambda new: encode_inference_request(
        new, 7.25, 3, {"scene": 7.2, "wrist": 7.21}, ["a", "b"], np.array([0.1, 0.2]), "stack the cups",
        RtcPrefix(np.arange(8.0).reshape(4, 2), np.array([1.0, 0.5, 0.0, 0.0]))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dds_bytes_equal_rosbags_cdr(store, registry, case):
    """The same encoder through both factories: the DDS struct serializes to exactly rosbags' CDR."""
    rosbags_msg = CASES[case](rosbags_factory(store))
    dds_msg = CASES[case](registry.new)
    expected = bytes(store.serialize_cdr(rosbags_msg, rosbags_msg.__msgtype__))
    assert dds_msg.serialize() == expected
    assert registry.coerce(rosbags_msg.__msgtype__, rosbags_msg).serialize() == expected
    back = type(dds_msg).deserialize(expected)  # and rosbags bytes decode into the DDS struct
    assert back.serialize() == expected


def test_type_names_are_ros_dds_names(registry):
    assert registry.idl_type("sensor_msgs/msg/Image").__idl_typename__ == "sensor_msgs::msg::dds_::Image_"
    assert registry.idl_type("vla_msgs/ActionChunk").__idl_typename__ == "vla_msgs::msg::dds_::ActionChunk_"


def test_decoders_read_dds_structs(registry):
    rgb = _rgb(32, 48)
    wire = encode_image(registry.new, rgb, "bgr8").serialize()
    np.testing.assert_array_equal(decode_image(registry.idl_type("sensor_msgs/msg/Image").deserialize(wire)), rgb)
    chunk = CASES["ActionChunk"](registry.new)
    out = decode_action_chunk(type(chunk).deserialize(chunk.serialize()))
    assert out.names == ("x", "y", "z", "roll", "pitch", "yaw") and out.actions.shape == (8, 6)
    js = CASES["JointState"](registry.new)
    np.testing.assert_array_equal(decode_joint_state(type(js).deserialize(js.serialize())).velocities, [1, 2, 3])


def test_big_endian_payloads_decode(store, registry):
    msg = CASES["JointState"](rosbags_factory(store))
    big = bytes(store.serialize_cdr(msg, msg.__msgtype__, little_endian=False))
    assert big[1] == 0x00  # CDR_BE encapsulation
    out = registry.idl_type("sensor_msgs/msg/JointState").deserialize(big)
    np.testing.assert_array_equal(out.position, [0.1, 0.2, 0.3])
    assert out.header.frame_id == "base"


def test_image_round_trip_takes_the_raw_bytes_path(registry):
    """640x480 rgb8 serialize + deserialize: ~70 ms element by element, well under 10 ms as one buffer."""
    msg = encode_image(registry.new, _rgb(), "rgb8")
    cls = type(msg)
    cls.deserialize(msg.serialize())  # warm up
    start = time.perf_counter()
    for _ in range(5):
        back = cls.deserialize(msg.serialize())
    per_round_trip = (time.perf_counter() - start) / 5
    assert per_round_trip < 0.010, f"{per_round_trip * 1e3:.1f} ms per round trip"
    assert isinstance(back.data, np.ndarray) and back.data.size == 640 * 480 * 3


def test_received_image_pixels_are_a_read_only_view_of_the_sample_not_a_copy(registry):
    """The pixels of a deserialized frame view the sample's buffer (no per-frame copy while the GIL is held),
    read-only, so decode_image(copy=False) hands them on as they are; the values are the sent ones."""
    pixels = _rgb()
    back = type(msg := encode_image(registry.new, pixels, "rgb8")).deserialize(msg.serialize())
    data = back.data
    assert not data.flags.writeable
    base = data.base
    assert isinstance(base, memoryview) and base.readonly
    assert base.obj is not None and len(base.obj) > data.nbytes  # the whole sample (header, fields) behind it
    rgb = decode_image(back, copy=False)
    assert np.shares_memory(rgb, data)
    np.testing.assert_array_equal(rgb, pixels)
    js = registry.idl_type("sensor_msgs/msg/JointState").deserialize(
        CASES["JointState"](registry.new).serialize())
    np.testing.assert_array_equal(js.position, [0.1, 0.2, 0.3])  # 8-byte elements through the same view


def test_service_wire_layout_is_rmw_request_header_then_body(store, registry):
    request_cls, reply_cls = registry.service_wire_types("vla_msgs/srv/SetInstruction")
    assert request_cls.__idl_typename__ == "vla_msgs::srv::dds_::SetInstruction_Request_"
    assert reply_cls.__idl_typename__ == "vla_msgs::srv::dds_::SetInstruction_Response_"
    plain = registry.new("vla_msgs/srv/SetInstruction_Request", instruction="stack the cups")
    wire = registry.to_wire(request_cls, plain, client_guid=0x1122334455667788, sequence=42)
    body = bytes(store.serialize_cdr(
        rosbags_factory(store)("vla_msgs/srv/SetInstruction_Request", instruction="stack the cups"),
        "vla_msgs/srv/SetInstruction_Request"))
    assert wire.serialize() == body[:4] + struct.pack("<Qq", 0x1122334455667788, 42) + body[4:]
    back, guid, seq = registry.from_wire(request_cls.deserialize(wire.serialize()))
    assert (back.instruction, guid, seq) == ("stack the cups", 0x1122334455667788, 42)
