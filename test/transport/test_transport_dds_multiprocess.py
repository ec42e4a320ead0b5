"""Two processes over DDS on loopback: sensors one way, a command the other, and ROS graph metadata.

The child (dds_peer.py) is what a camera/arm driver looks like on the wire; this process plays the policy.
Also checked from the DDS discovery data: `typehash=RIHS01_...` in the USER_DATA of the child's writers and
readers, and its ParticipantEntitiesInfo on ros_discovery_info naming those endpoints.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication, BuiltinTopicDcpsSubscription
from cyclonedds.qos import Policy

from vla_policy_node.msgs import decode_image, decode_joint_state, encode_float64_array
from vla_policy_node.transport import SENSOR_DATA_QOS

pytestmark = pytest.mark.slow  # processes over DDS

PEER = Path(__file__).with_name("dds_peer.py")
_spec = importlib.util.spec_from_file_location("dds_peer", PEER)
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)

TIMEOUT = 20.0


def _collect(reader, into: dict) -> None:
    for sample in reader.take(N=256):
        if hasattr(sample, "topic_name"):
            into[sample.key] = sample


def test_two_processes_exchange_sensors_and_commands(make_dds, dds_domain, inbox):
    policy = make_dds("vla_test_main")
    publications: dict = {}
    subscriptions: dict = {}
    pub_reader = BuiltinDataReader(policy.participant, BuiltinTopicDcpsPublication)
    sub_reader = BuiltinDataReader(policy.participant, BuiltinTopicDcpsSubscription)
    states, images = inbox(), inbox()
    policy.subscribe("/peer/joint_states", "sensor_msgs/msg/JointState", states, SENSOR_DATA_QOS)
    policy.subscribe("/peer/image", "sensor_msgs/msg/Image", images, SENSOR_DATA_QOS)

    child = subprocess.Popen(
        [sys.executable, str(PEER), "--domain", str(dds_domain), "--timeout", str(TIMEOUT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # sensors: child -> this process
        assert states.wait(1, TIMEOUT), "no JointState from the child"
        assert images.wait(1, TIMEOUT), "no Image from the child"
        state = decode_joint_state(states.items[-1])
        assert list(state.names) == peer.JOINT_NAMES and state.positions.tolist() == peer.JOINT_POSITIONS
        image_msg = images.items[-1]
        assert (image_msg.width, image_msg.height, image_msg.header.frame_id) == (640, 480, "peer_camera")
        np.testing.assert_array_equal(decode_image(image_msg), peer.image_pattern())

        # discovery metadata of the child's endpoints
        child_node = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            _collect(pub_reader, publications)
            _collect(sub_reader, subscriptions)
            child_node = next((n for n in policy.discovered_nodes() if n.name == "vla_test_peer"), None)
            child_topics = {e.topic_name for e in (*publications.values(), *subscriptions.values())}
            if child_node and {"rt/peer/image", "rt/peer/joint_states", "rt/peer/command"} <= child_topics:
                break
            time.sleep(0.05)
        assert child_node is not None, "child node not announced on ros_discovery_info"
        expected = {
            "rt/peer/image": ("sensor_msgs::msg::dds_::Image_", "sensor_msgs/msg/Image", publications),
            "rt/peer/joint_states": ("sensor_msgs::msg::dds_::JointState_", "sensor_msgs/msg/JointState", publications),
            "rt/peer/command": (
                "std_msgs::msg::dds_::Float64MultiArray_", "std_msgs/msg/Float64MultiArray", subscriptions),
        }
        for topic, (dds_type, rostype, endpoints) in expected.items():
            endpoint = next(e for e in endpoints.values()
                            if e.topic_name == topic and e.participant_key.bytes == child_node.participant_gid)
            assert endpoint.type_name == dds_type
            user_data = endpoint.qos[Policy.Userdata].data.decode()
            assert re.fullmatch(r"typehash=RIHS01_[0-9a-f]{64};", user_data), user_data
            assert user_data == f"typehash={policy.type_hash(rostype)};"
            gids = child_node.writer_gids if endpoints is publications else child_node.reader_gids
            assert endpoint.key.bytes in gids, f"{topic} endpoint not listed in ParticipantEntitiesInfo"

        # command: this process -> child
        command = [0.1, -0.2, 0.3, 0.4]
        pub = policy.publisher("/peer/command", "std_msgs/msg/Float64MultiArray")
        deadline = time.monotonic() + TIMEOUT
        while child.poll() is None and time.monotonic() < deadline:
            pub.publish(encode_float64_array(policy.new_message, command))
            time.sleep(0.05)
        out, err = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, f"child exited {child.returncode}: {err[-2000:]}"
        assert json.loads(out.strip().splitlines()[-1]) == {"command": command}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


@pytest.mark.parametrize("flag", ["1", "true"])
def test_loopback_selected_by_environment(monkeypatch, flag):
    from vla_policy_node.transport import DdsConfig

    monkeypatch.setenv("VLA_DDS_LOOPBACK", flag)
    assert "127.0.0.1" in DdsConfig().resolved_config_xml()
    monkeypatch.setenv("VLA_DDS_LOOPBACK", "0")
    assert DdsConfig().resolved_config_xml() is None
    assert "127.0.0.1" in DdsConfig(loopback=True).resolved_config_xml()
