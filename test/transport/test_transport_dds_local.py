"""DdsTransport between two participants of one process (loopback domain): topics, QoS, services, graph."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vla_policy_node.msgs import (
    decode_float64_array,
    decode_image,
    decode_joint_state,
    encode_float64_array,
    encode_image,
    encode_joint_state,
    rosbags_factory,
)
from vla_policy_node.transport import LATCHED_QOS, SENSOR_DATA_QOS, QosProfile, ServiceUnavailable, TransportError


def _publish_until(publish, inbox, n=1, timeout=10.0, period=0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish()
        if inbox.wait(n, period):
            return True
    return False


def test_topics_between_two_nodes(make_dds, inbox):
    a, b = make_dds("talker"), make_dds("listener")
    states, images = inbox(decode_joint_state), inbox(decode_image)
    b.subscribe("/joint_states", "sensor_msgs/msg/JointState", states, SENSOR_DATA_QOS)
    b.subscribe("/camera/image_raw", "sensor_msgs/msg/Image", images, SENSOR_DATA_QOS)
    js_pub = a.publisher("/joint_states", "sensor_msgs/msg/JointState")
    image_pub = a.publisher("/camera/image_raw", "sensor_msgs/msg/Image")
    rgb = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert _publish_until(lambda: js_pub.publish(encode_joint_state(a.new_message, ["j1"], [0.5], stamp=1.0)), states)
    assert _publish_until(lambda: image_pub.publish(encode_image(a.new_message, rgb, "bgr8")), images)
    assert states.items[0].names == ("j1",) and states.items[0].positions.tolist() == [0.5]
    np.testing.assert_array_equal(images.items[0], rgb)


def test_publishing_a_message_from_another_backend(make_dds, inbox):
    """A rosbags message (e.g. replayed from a bag) is converted on publish, not rejected."""
    a, b = make_dds("bridge"), make_dds("consumer")
    got = inbox(decode_joint_state)
    b.subscribe("/replayed", "sensor_msgs/msg/JointState", got)
    pub = a.publisher("/replayed", "sensor_msgs/msg/JointState")
    foreign = encode_joint_state(rosbags_factory(), ["j1", "j2"], [1.0, 2.0], stamp=4.0)
    assert _publish_until(lambda: pub.publish(foreign), got)
    assert got.items[0].positions.tolist() == [1.0, 2.0] and got.items[0].stamp == 4.0


def test_invalid_node_name_is_refused(make_dds):
    with pytest.raises(ValueError, match="node name"):
        make_dds("my-node")


def test_latched_topic_reaches_a_late_subscriber(make_dds, inbox):
    a, b = make_dds("latcher"), make_dds("late")
    pub = a.publisher("/robot_mode", "std_msgs/msg/String", LATCHED_QOS)
    pub.publish(a.new_message("std_msgs/msg/String", data="first"))
    pub.publish(a.new_message("std_msgs/msg/String", data="latest"))
    time.sleep(0.2)
    got = inbox(lambda m: m.data)
    b.subscribe("/robot_mode", "std_msgs/msg/String", got, LATCHED_QOS)
    assert got.wait(1, 10.0)
    time.sleep(0.2)
    assert got.items == ["latest"]


def test_qos_mismatch_delivers_nothing(make_dds, inbox):
    """A best-effort publisher never reaches a reliable subscriber: the QoS really reaches DDS."""
    a, b = make_dds("best_effort_pub"), make_dds("reliable_sub")
    got = inbox()
    b.subscribe("/cmd", "std_msgs/msg/Bool", got, QosProfile(reliability="reliable"))
    pub = a.publisher("/cmd", "std_msgs/msg/Bool", QosProfile(reliability="best_effort"))
    assert not _publish_until(lambda: pub.publish(a.new_message("std_msgs/msg/Bool", data=True)), got, timeout=1.0)
    control = inbox()
    b.subscribe("/cmd", "std_msgs/msg/Bool", control, SENSOR_DATA_QOS)  # best-effort subscriber matches
    assert _publish_until(lambda: pub.publish(a.new_message("std_msgs/msg/Bool", data=True)), control)
    assert got.items == []


def test_service_call_and_missing_service(make_dds):
    a, b = make_dds("server"), make_dds("caller")
    seen = []

    def handle(request):
        seen.append(request.paused)
        return a.new_response("vla_msgs/srv/SetPaused", success=True, message=f"paused={request.paused}")

    a.service("/vla/set_paused", "vla_msgs/srv/SetPaused", handle)
    client = b.client("/vla/set_paused", "vla_msgs/srv/SetPaused")
    assert client.wait_for_service(10.0)
    for paused in (True, False):
        reply = client.call(b.new_request("vla_msgs/srv/SetPaused", paused=paused), timeout=5.0)
        assert reply.success and reply.message == f"paused={paused}"
    assert seen == [True, False]
    missing = b.client("/vla/nothing_here", "vla_msgs/srv/ResetEstop")
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        missing.call(b.new_request("vla_msgs/srv/ResetEstop"), timeout=0.3)
    assert time.monotonic() - start < 2.0


def test_callback_errors_are_counted_and_dispatch_continues(make_dds, inbox):
    a, b = make_dds("pub"), make_dds("sub")
    good = inbox()

    def strict(msg):
        decode_float64_array(msg, expected_size=2)
        good(msg)

    def crashes(msg):
        raise RuntimeError("bug in a callback")

    b.subscribe("/commands", "std_msgs/msg/Float64MultiArray", strict)
    b.subscribe("/commands2", "std_msgs/msg/Float64MultiArray", crashes)
    bad_pub = a.publisher("/commands", "std_msgs/msg/Float64MultiArray")
    crash_pub = a.publisher("/commands2", "std_msgs/msg/Float64MultiArray")
    deadline = time.monotonic() + 10
    while b.message_errors.total == 0 and time.monotonic() < deadline:
        bad_pub.publish(encode_float64_array(a.new_message, [1.0, 2.0, 3.0]))
        crash_pub.publish(encode_float64_array(a.new_message, [1.0]))
        time.sleep(0.02)
    assert b.message_errors.by_problem().get("length_mismatch", 0) >= 1
    assert _publish_until(lambda: bad_pub.publish(encode_float64_array(a.new_message, [1.0, 2.0])), good)
    assert b.callback_failures["/commands2"] >= 1


def test_nodes_announce_their_endpoints(make_dds):
    # without the parameter services' request readers, the node's one subscription is its only reader
    a, b = make_dds("announcer", namespace="/arm", parameter_services=False), make_dds("observer")
    pub = a.publisher("status", "std_msgs/msg/String")
    a.subscribe("~/in", "std_msgs/msg/String", lambda m: None)
    assert pub.topic == "/arm/status"
    deadline = time.monotonic() + 10
    node = None
    while node is None and time.monotonic() < deadline:
        node = next((n for n in b.discovered_nodes() if n.name == "announcer" and n.writer_gids), None)
        time.sleep(0.05)
    assert node is not None and node.namespace == "/arm"
    assert pub.writer.get_guid().bytes in node.writer_gids
    assert len(node.reader_gids) == 1
    assert node.participant_gid == a.participant.get_guid().bytes


def test_closed_transport_refuses_work(make_dds):
    a = make_dds("short_lived")
    pub = a.publisher("/x", "std_msgs/msg/Bool")
    a.close()
    with pytest.raises(TransportError):
        pub.publish(a.new_message("std_msgs/msg/Bool"))
    with pytest.raises(TransportError):
        a.publisher("/y", "std_msgs/msg/Bool")
