"""ROS name resolution, DDS topic names and the QoS mapping rmw_cyclonedds uses."""

from __future__ import annotations

import pytest
from cyclonedds.qos import Policy

from vla_policy_node.transport import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS, QosProfile
from vla_policy_node.transport.dds_participant import dds_qos
from vla_policy_node.transport.dds_types import dds_type_name
from vla_policy_node.transport.names import resolve_name, service_to_dds, topic_to_dds


@pytest.mark.parametrize(
    ("name", "namespace", "expected"),
    [
        ("/joint_states", "/robot", "/joint_states"),
        ("joint_states", "/robot", "/robot/joint_states"),
        ("joint_states", "/", "/joint_states"),
        ("~/chunk", "/robot", "/robot/policy/chunk"),
        ("camera/color/image_raw", "robot", "/robot/camera/color/image_raw"),
    ],
)
def test_resolve_name(name, namespace, expected):
    assert resolve_name(name, namespace, "policy") == expected


@pytest.mark.parametrize("bad", ["/a//b", "/a/", "/1abc", "/a b"])
def test_invalid_names(bad):
    with pytest.raises(ValueError, match="invalid ROS"):
        resolve_name(bad)


def test_dds_names():
    assert topic_to_dds("/joint_states") == "rt/joint_states"
    assert service_to_dds("/vla/set_paused") == ("rq/vla/set_pausedRequest", "rr/vla/set_pausedReply")
    assert dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert dds_type_name("vla_msgs/srv/SetPaused_Request") == "vla_msgs::srv::dds_::SetPaused_Request_"


def test_presets_match_rclpy_profiles():
    assert (DEFAULT_QOS.reliable, DEFAULT_QOS.transient_local, DEFAULT_QOS.depth) == (True, False, 10)
    assert (SENSOR_DATA_QOS.reliable, SENSOR_DATA_QOS.depth) == (False, 5)
    assert LATCHED_QOS.transient_local and LATCHED_QOS.reliable
    with pytest.raises(ValueError):
        QosProfile(depth=0)


def test_dds_qos_mapping():
    latched = dds_qos(QosProfile(depth=3, durability="transient_local"), writer=True, user_data="typehash=X;")
    assert latched[Policy.Durability] == Policy.Durability.TransientLocal
    assert latched[Policy.DurabilityService].history == Policy.History.KeepLast(depth=3)
    assert latched[Policy.History] == Policy.History.KeepLast(depth=3)
    assert latched[Policy.Userdata].data == b"typehash=X;"
    assert latched[Policy.WriterDataLifecycle].autodispose is False
    sensor = dds_qos(SENSOR_DATA_QOS, writer=False, user_data="")
    assert sensor[Policy.Reliability] == Policy.Reliability.BestEffort
    assert sensor[Policy.Durability] == Policy.Durability.Volatile and sensor[Policy.DurabilityService] is None
    assert sensor[Policy.Lifespan] is None  # infinite, as rmw_cyclonedds leaves it by default


def test_rosout_qos_is_rcls():
    """rcl_qos_profile_rosout_default: reliable, transient local, keep last 1000, lifespan 10 s."""
    from vla_policy_node.transport.rosout import ROSOUT_QOS

    rosout = dds_qos(ROSOUT_QOS, writer=True, user_data="")
    assert rosout[Policy.Reliability] == Policy.Reliability.Reliable(max_blocking_time=2**63 - 1)
    assert rosout[Policy.Durability] == Policy.Durability.TransientLocal
    assert rosout[Policy.History] == Policy.History.KeepLast(depth=1000)
    assert rosout[Policy.Lifespan] == Policy.Lifespan(lifespan=10 * 10**9)
    with pytest.raises(ValueError):
        QosProfile(lifespan=0.0)
