"""The CDR fast path for joint states, trajectories and images gives what rosbags (+ the decoders) give, or defers.

For thousands of generated messages (names and frame ids of every length, so every alignment; empty and full
velocities/efforts; several points) and damaged variants of them (NaN, duplicate names, length mismatches,
non-increasing times, truncated and padded bytes, flipped bytes, big-endian): whenever the general path
(rosbags' deserializer, then `decode_joint_state` / `decode_joint_trajectory`) gives data, the fast path gives
the same data bit for bit or None; whenever it raises, the fast path gives None. Plain messages must take the
fast path (else it would be dead code).
"""

from __future__ import annotations

import numpy as np
import pytest

from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fast_cdr import (
    STRING,
    image_from_cdr,
    joint_state_from_cdr,
    joint_trajectory_from_cdr,
    same_definitions,
    string_from_cdr,
    trajectory_first_point_from_cdr,
)
from vla_policy_node.msgs.fields import rosbags_factory
from vla_policy_node.msgs.images import IMAGE, decode_image, encode_image
from vla_policy_node.msgs.joints import (
    JOINT_STATE,
    JOINT_TRAJECTORY,
    decode_joint_state,
    decode_joint_trajectory,
    encode_joint_state,
)
from vla_policy_node.msgs.stamps import make_duration, make_header
from vla_policy_node.msgs.typestore import build_typestore, default_typestore


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _general(raw: bytes, msgtype: str, decode):
    try:
        return decode(default_typestore().deserialize_cdr(raw, msgtype))
    except (MessageError, Exception):  # a rosbags SerdeError or a decoder's MessageError: the general path refuses
        return None


def _random_state(rng, new):
    n = int(rng.integers(0, 9))
    names = [("j" * int(rng.integers(1, 6))) + str(i) for i in range(n)]
    velocity = rng.normal(size=n) if rng.random() < 0.6 else None
    effort = rng.normal(size=n) if rng.random() < 0.5 else None
    if effort is not None and n and rng.random() < 0.3:
        effort[int(rng.integers(n))] = np.nan  # drivers without torque sensing: allowed
    frame = "f" * int(rng.integers(0, 7))
    return encode_joint_state(new, names, rng.normal(size=n), velocity, effort, stamp=float(rng.uniform(0, 2e9)),
                              frame_id=frame)


def _random_trajectory(rng, new):
    n = int(rng.integers(1, 9))
    names = [("q" * int(rng.integers(1, 6))) + str(i) for i in range(n)]
    points = []
    t = 0.0
    for _ in range(int(rng.integers(1, 4))):
        t += float(rng.uniform(0.001, 0.5))
        velocities = rng.normal(size=n) if rng.random() < 0.7 else np.zeros(0)
        accelerations = rng.normal(size=n) if rng.random() < 0.3 else np.zeros(0)
        points.append(new("trajectory_msgs/msg/JointTrajectoryPoint", positions=rng.normal(size=n),
                          velocities=velocities, accelerations=accelerations,
                          time_from_start=make_duration(new, t)))
    header = make_header(new, float(rng.uniform(0, 2e9)), "b" * int(rng.integers(0, 7)))
    return new(JOINT_TRAJECTORY, header=header, joint_names=names, points=points)


def _damaged(rng, msg, msgtype: str):
    """A few message-level faults the decoders reject."""
    kind = int(rng.integers(4))
    if msgtype == JOINT_STATE:
        if kind == 0 and len(msg.position):
            msg.position[int(rng.integers(len(msg.position)))] = np.inf
        elif kind == 1 and len(msg.name) > 1:
            msg.name[1] = msg.name[0]
        elif kind == 2:
            msg.position = np.append(msg.position, 1.0)
        elif kind == 3 and len(msg.velocity):
            msg.velocity[0] = np.nan
        return msg
    point = msg.points[int(rng.integers(len(msg.points)))]
    if kind == 0:
        point.positions[0] = np.nan
    elif kind == 1 and len(msg.points) > 1:
        msg.points[1].time_from_start = msg.points[0].time_from_start
    elif kind == 2:
        point.velocities = np.ones(len(msg.joint_names) + 1)
    else:
        msg.points = []
    return msg


@pytest.mark.parametrize("msgtype", [JOINT_STATE, JOINT_TRAJECTORY])
def test_fast_path_equals_the_general_path_or_defers(msgtype):
    store = default_typestore()
    new = rosbags_factory(store)
    rng = np.random.default_rng(1)
    make = _random_state if msgtype == JOINT_STATE else _random_trajectory
    fast = joint_state_from_cdr if msgtype == JOINT_STATE else joint_trajectory_from_cdr
    decode = decode_joint_state if msgtype == JOINT_STATE else decode_joint_trajectory
    taken = compared = 0
    previous = None
    for trial in range(1500):
        msg = make(rng, new)
        variant = trial % 5
        if variant == 0:
            previous = msg
        elif variant == 1:
            msg = _damaged(rng, msg, msgtype)
        elif variant == 4:  # the names of an earlier message again (the fast path keeps recent name lists)
            msg = previous
            if msgtype == JOINT_STATE:
                msg.position = msg.position * 2.0
            else:
                msg.points[0].positions = msg.points[0].positions * 2.0
        raw = bytes(store.serialize_cdr(msg, msgtype, little_endian=variant != 2))
        if variant == 3:  # bytes cut off, padded, or flipped
            cut = int(rng.integers(0, len(raw)))
            raw = [raw[:cut], raw + bytes(int(rng.integers(1, 12))),
                   raw[:cut] + bytes([raw[cut] ^ 0xFF]) + raw[cut + 1:]][trial % 3]
        expected = _general(raw, msgtype, decode)
        got = fast(memoryview(raw) if trial % 2 else raw)
        if variant in (0, 4):
            assert expected is not None and got is not None, "a plain message must take the fast path"
        if got is None:
            continue
        assert expected is not None, f"fast path accepted what the general path refuses: {raw!r}"
        taken += 1
        assert type(got) is type(expected) and got.stamp == expected.stamp
        if msgtype == JOINT_STATE:
            assert got.names == expected.names
            assert _same(got.positions, expected.positions) and _same(got.velocities, expected.velocities)
            assert _same(got.efforts, expected.efforts)
        else:
            assert got.joint_names == expected.joint_names
            assert _same(got.positions, expected.positions) and _same(got.velocities, expected.velocities)
            assert _same(got.times_from_start, expected.times_from_start)
        assert got.positions.flags.writeable  # a copy, not a view into the bag's (read-only) buffer
        compared += 1
    assert taken >= 300 and compared == taken



def test_first_point_is_the_decoded_trajectorys_or_defers_with_it():
    """The replay reads a command's first point alone: exactly when the whole decode takes the fast path, and
    then its names and positions to the bit (plain, damaged, big-endian and cut messages alike)."""
    store = default_typestore()
    new = rosbags_factory(store)
    rng = np.random.default_rng(5)
    taken = 0
    for trial in range(1500):
        msg = _random_trajectory(rng, new)
        if trial % 4 == 1:
            msg = _damaged(rng, msg, JOINT_TRAJECTORY)
        raw = bytes(store.serialize_cdr(msg, JOINT_TRAJECTORY, little_endian=trial % 4 != 2))
        if trial % 4 == 3:
            cut = int(rng.integers(0, len(raw)))
            raw = [raw[:cut], raw + bytes(int(rng.integers(1, 12))),
                   raw[:cut] + bytes([raw[cut] ^ 0xFF]) + raw[cut + 1:]][trial % 3]
        whole = joint_trajectory_from_cdr(raw)
        point = trajectory_first_point_from_cdr(memoryview(raw) if trial % 2 else raw)
        assert (point is None) == (whole is None)
        if point is not None:
            taken += 1
            assert point[0] == whole.joint_names
            assert point[1].tobytes() == whole.positions[0].tobytes()
    assert taken >= 300

def _decoded(msg):
    """What the node's decoder makes of an image: the frame's bytes, or its error."""
    try:
        return decode_image(msg, copy=False).tobytes()
    except MessageError as error:
        return str(error)


def test_image_fields_are_rosbags_own_or_the_fast_path_defers():
    """Every field the node's decoder reads is what rosbags gives (pixels a read-only view, as there), for
    every encoding, padded rows, odd sizes and frame ids, and damaged bytes; the decoded frames are equal."""
    store = default_typestore()
    new = rosbags_factory(store)
    rng = np.random.default_rng(2)
    taken = 0
    for trial in range(600):
        encoding = ["rgb8", "bgr8", "mono8", "rgba8", "16UC1"][trial % 5]
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        shape = {"rgb8": (h, w, 3), "bgr8": (h, w, 3), "rgba8": (h, w, 4)}.get(encoding, (h, w))
        dtype = np.uint16 if encoding == "16UC1" else np.uint8
        pixels = rng.integers(0, 255, shape).astype(dtype)
        msg = encode_image(new, pixels, encoding, stamp=float(rng.uniform(0, 2e9)), frame_id="c" * (trial % 7))
        if trial % 3 == 1:  # padded rows
            pad = int(rng.integers(1, 5))
            rows = np.asarray(msg.data).reshape(h, msg.step)
            msg.data = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1).reshape(-1)
            msg.step += pad
        if trial % 13 == 4:  # an encoding the node refuses, of a length that leaves `step` 4-aligned
            msg.encoding = ["yuv", "bayer_rggb8"][trial % 2]
        raw = bytes(store.serialize_cdr(msg, IMAGE, little_endian=trial % 11 != 5))
        if trial % 7 == 3:  # damaged bytes
            cut = int(rng.integers(0, len(raw)))
            raw = [raw[:cut], raw + bytes(int(rng.integers(1, 12))),
                   raw[:cut] + bytes([raw[cut] ^ 0xFF]) + raw[cut + 1:]][trial % 3]
        try:
            expected = store.deserialize_cdr(raw, IMAGE)
        except Exception:
            expected = None
        got = image_from_cdr(memoryview(raw) if trial % 2 else raw)
        if trial % 7 != 3 and trial % 11 != 5:
            assert got is not None, "a plain image must take the fast path"
        if got is None:
            continue
        assert expected is not None, f"fast path accepted what rosbags refuses: {raw!r}"
        taken += 1
        assert (got.header.stamp.sec, got.header.stamp.nanosec, got.header.frame_id) == (
            expected.header.stamp.sec, expected.header.stamp.nanosec, expected.header.frame_id)
        for name in ("height", "width", "encoding", "is_bigendian", "step"):
            assert getattr(got, name) == getattr(expected, name), name
        assert got.data.dtype == expected.data.dtype and got.data.tobytes() == expected.data.tobytes()
        assert not got.data.flags.writeable
        assert _decoded(got) == _decoded(expected)
    assert taken >= 400


def test_string_is_rosbags_own_or_the_fast_path_defers():
    """An instruction's text is what rosbags decodes, for empty, long and non-ASCII texts; damaged bytes (cut,
    trailing bytes, a flipped byte, big-endian data) are refused by both or the fast path defers."""
    store = default_typestore()
    new = rosbags_factory(store)
    rng = np.random.default_rng(3)
    taken = 0
    for trial in range(400):
        text = "".join(rng.choice(list("pick the red block ÄÖü→🙂")) for _ in range(int(rng.integers(0, 40))))
        raw = bytes(store.serialize_cdr(new(STRING, data=text), STRING, little_endian=trial % 11 != 5))
        if trial % 5 == 3:
            cut = int(rng.integers(0, len(raw)))
            raw = [raw[:cut], raw + bytes(int(rng.integers(1, 12))),
                   raw[:cut] + bytes([raw[cut] ^ 0xFF]) + raw[cut + 1:]][trial % 3]
        try:
            expected = store.deserialize_cdr(raw, STRING).data
        except Exception:
            expected = None
        got = string_from_cdr(memoryview(raw) if trial % 2 else raw)
        if trial % 5 != 3 and trial % 11 != 5:
            assert got is not None and got.data == text, "a plain string must take the fast path"
        if got is None:
            continue
        taken += 1
        assert got.data == expected, raw
    assert taken >= 250


def test_fast_path_only_for_the_definitions_it_reads():
    assert same_definitions(default_typestore(), STRING)
    assert same_definitions(default_typestore(), JOINT_STATE)
    assert same_definitions(build_typestore(), JOINT_TRAJECTORY)
    assert same_definitions(default_typestore(), IMAGE)
    assert not same_definitions(default_typestore(), "sensor_msgs/msg/CompressedImage")
