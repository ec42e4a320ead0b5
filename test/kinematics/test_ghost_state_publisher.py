"""The rviz ghost: predicted joint states + the live robot description -> prefixed TF frames."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from test.fake_transport import RecordingTransport
from test.kinematics.test_urdf_fk import L1, L2, L3, PLANAR, planar_tip
from vla_policy_node.msgs import encode_joint_state
from vla_policy_node.msgs.stamps import time_to_seconds
from vla_policy_node.nodes.ghost_state_publisher import GhostStatePublisher
from vla_policy_node.transport.qos import LATCHED_QOS


def _tf_by_child(msg) -> dict[str, tuple[str, np.ndarray]]:
    out = {}
    for t in msg.transforms:
        matrix = np.eye(4)
        q = t.transform.rotation
        matrix[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        v = t.transform.translation
        matrix[:3, 3] = [v.x, v.y, v.z]
        out[t.child_frame_id] = (t.header.frame_id, matrix)
    return out


def _compose(tree: dict[str, tuple[str, np.ndarray]], frame: str, base: str) -> np.ndarray:
    matrix = np.eye(4)
    while frame != base:
        parent, step = tree[frame]
        matrix = step @ matrix
        frame = parent
    return matrix


def test_ghost_frames_place_the_tool_where_fk_says() -> None:
    transport = RecordingTransport(clock=7.25)
    ghost = GhostStatePublisher(transport)
    assert ghost.model is None
    assert transport.qos["/robot_description"] == LATCHED_QOS  # latched: works whenever rviz/driver started
    new = transport.new_message
    q = {"j1": 0.4, "j2": -0.9, "j3": 0.3}
    transport.inject("/vla/predicted_joint_states", encode_joint_state(new, list(q), list(q.values())))
    assert transport.sent == []  # no description yet

    transport.inject("/robot_description", new("std_msgs/msg/String", data=PLANAR))
    transport.inject("/vla/predicted_joint_states", encode_joint_state(new, list(q), list(q.values())))
    (topic, msgtype, msg), = transport.sent
    assert ghost.published == 1
    assert (topic, msgtype) == ("/tf", "tf2_msgs/msg/TFMessage")
    tree = _tf_by_child(msg)
    assert tree["predicted/world"] == ("world", pytest.approx(np.eye(4)))  # ghost hangs off the real root
    assert set(tree) == {"predicted/world", *(f"predicted/{link}" for link in ("base_link", "link1", "link2",
                                                                               "link3", "tool", "camera"))}
    tool = _compose(tree, "predicted/tool", "predicted/base_link")
    np.testing.assert_allclose(tool[:3, 3], [*planar_tip(0.4, -0.9, 0.3), 0.0], atol=1e-9)
    assert all(time_to_seconds(t.header.stamp) == 7.25 for t in msg.transforms)


def test_unnamed_joints_sit_at_zero_and_a_bad_description_keeps_the_last_good_one() -> None:
    transport = RecordingTransport()
    ghost = GhostStatePublisher(transport, tf_prefix="/plan/")
    new = transport.new_message
    transport.inject("/robot_description", new("std_msgs/msg/String", data=PLANAR))
    transport.inject("/robot_description", new("std_msgs/msg/String", data="<robot><link"))
    assert ghost.model is not None and ghost.model.name == "planar"
    transport.inject("/vla/predicted_joint_states", encode_joint_state(new, ["j2"], [0.0]))
    tree = _tf_by_child(transport.sent[-1][2])
    tool = _compose(tree, "plan/tool", "plan/base_link")
    np.testing.assert_allclose(tool[:3, 3], [L1 + L2 + L3, 0, 0], atol=1e-12)
    # a malformed joint state is counted by the transport, not raised into the executor
    transport.inject("/vla/predicted_joint_states", new("sensor_msgs/msg/JointState", name=["j1"], position=[]))
    assert transport.message_errors.total == 1
    with pytest.raises(ValueError, match="tf_prefix must not be empty"):
        GhostStatePublisher(RecordingTransport(), tf_prefix="/")
