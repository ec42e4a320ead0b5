"""The rclpy backend's value conversions, against stand-in classes that enforce rclpy's setter rules.

rclpy is not installable here. Generated rclpy message setters accept `array.array` of the right typecode for
`sequence<numeric>`, numpy arrays for fixed-size numeric arrays, `bytes` of length one for `octet`, and
instances of the nested classes; the stand-ins below reject anything else the same way, so these tests
check that numpy-based encoders produce values rclpy would accept and that decoders read them back.
"""

from __future__ import annotations

import array

import numpy as np
import pytest

from vla_policy_node.msgs import (
    decode_diagnostics,
    decode_image,
    decode_joint_state,
    encode_diagnostics,
    encode_image,
    encode_joint_state,
    rosbags_factory,
)
from vla_policy_node.transport import rclpy_backend
from vla_policy_node.transport.rclpy_backend import RclpyTransport, to_rclpy

FIELDS = {
    "builtin_interfaces/msg/Time": {"sec": "int32", "nanosec": "uint32"},
    "std_msgs/msg/Header": {"stamp": "builtin_interfaces/Time", "frame_id": "string"},
    "sensor_msgs/msg/Image": {"header": "std_msgs/Header", "height": "uint32", "width": "uint32",
                              "encoding": "string", "is_bigendian": "uint8", "step": "uint32",
                              "data": "sequence<uint8>"},
    "sensor_msgs/msg/JointState": {"header": "std_msgs/Header", "name": "sequence<string>",
                                   "position": "sequence<double>", "velocity": "sequence<double>",
                                   "effort": "sequence<double>"},
    "diagnostic_msgs/msg/KeyValue": {"key": "string", "value": "string"},
    "diagnostic_msgs/msg/DiagnosticStatus": {"level": "octet", "name": "string", "message": "string",
                                             "hardware_id": "string",
                                             "values": "sequence<diagnostic_msgs/KeyValue>"},
    "diagnostic_msgs/msg/DiagnosticArray": {"header": "std_msgs/Header",
                                            "status": "sequence<diagnostic_msgs/DiagnosticStatus>"},
    "test_msgs/msg/Fixed": {"covariance": "double[9]"},
}
TYPECODES = {"uint8": "B", "double": "d"}
CLASSES: dict[str, type] = {}


def _check(field_type: str, value):
    if field_type.startswith("sequence<"):
        inner = field_type[9:-1]
        if inner in TYPECODES:
            assert isinstance(value, array.array) and value.typecode == TYPECODES[inner], (field_type, type(value))
        elif "/" in inner:
            pkg, name = inner.split("/")
            assert all(isinstance(v, CLASSES[f"{pkg}/msg/{name}"]) for v in value), field_type
        else:
            assert isinstance(value, list), field_type
    elif field_type.endswith("]"):
        assert isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == (9,), field_type
    elif field_type == "octet":
        assert isinstance(value, bytes) and len(value) == 1, field_type
    elif "/" in field_type:
        pkg, name = field_type.split("/")
        assert isinstance(value, CLASSES[f"{pkg}/msg/{name}"]), field_type


def _make_class(msgtype: str) -> type:
    fields = FIELDS[msgtype]

    class Message:
        def __init__(self, **kwargs):
            unknown = set(kwargs) - set(fields)
            assert not unknown, f"Invalid arguments passed to constructor: {unknown}"
            for name, value in kwargs.items():
                _check(fields[name], value)
                setattr(self, name, value)
            for name, field_type in fields.items():
                if name not in kwargs:
                    setattr(self, name, _default(field_type))

        @classmethod
        def get_fields_and_field_types(cls):
            return dict(fields)

    Message.__name__ = msgtype.rsplit("/", 1)[1]
    return Message


def _default(field_type: str):
    if field_type.startswith("sequence<"):
        inner = field_type[9:-1]
        return array.array(TYPECODES[inner]) if inner in TYPECODES else []
    if field_type.endswith("]"):
        return np.zeros(9)
    if "/" in field_type:
        pkg, name = field_type.split("/")
        return CLASSES[f"{pkg}/msg/{name}"]()
    return {"string": "", "octet": b"\x00"}.get(field_type, 0)


for _msgtype in FIELDS:
    CLASSES[_msgtype] = _make_class(_msgtype)


@pytest.fixture
def transport(monkeypatch):
    monkeypatch.setattr(rclpy_backend, "message_class", lambda msgtype: CLASSES[msgtype])
    return RclpyTransport(node=None)


def test_numpy_encoders_produce_values_rclpy_accepts(transport):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = encode_image(transport.new_message, rgb, "bgr8", stamp=1.5)
    assert isinstance(image, CLASSES["sensor_msgs/msg/Image"]) and image.header.stamp.nanosec == 500_000_000
    np.testing.assert_array_equal(decode_image(image), rgb)
    state = encode_joint_state(transport.new_message, ["a", "b"], np.array([0.5, -0.5]))
    assert decode_joint_state(state).positions.tolist() == [0.5, -0.5]


def test_byte_fields_become_bytes_and_decode_back(transport):
    msg = encode_diagnostics(transport.new_message, [(2, "vla/camera", "stale", {"age": 1})], stamp=0.0)
    assert msg.status[0].level == b"\x02"
    assert decode_diagnostics(msg)[1][0].level == 2


def test_foreign_messages_are_copied_into_rclpy_classes(transport):
    rosbags_msg = encode_joint_state(rosbags_factory(), ["a"], [1.25], stamp=2.0)
    copied = to_rclpy("sensor_msgs/msg/JointState", rosbags_msg)
    assert isinstance(copied.header, CLASSES["std_msgs/msg/Header"]) and copied.header.stamp.sec == 2
    assert copied.position == array.array("d", [1.25])
    fixed = to_rclpy("test_msgs/msg/Fixed", {"covariance": [0.0] * 9})
    assert isinstance(fixed.covariance, np.ndarray)
    with pytest.raises(TypeError, match="no field"):
        transport.new_message("sensor_msgs/msg/JointState", positions=[1.0])
