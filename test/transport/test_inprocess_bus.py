"""The in-process bus keeps latched topics as DDS does: late TRANSIENT_LOCAL subscribers get the last `depth`
messages of every live latched publisher; volatile subscribers and closed publishers give nothing."""

from __future__ import annotations

from vla_policy_node.nodes.node_support import STRING
from vla_policy_node.transport.inprocess import InProcessBus
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, Durability, QosProfile


def texts(bus: InProcessBus, topic: str, qos: QosProfile, node: str = "late") -> list[str]:
    heard: list[str] = []
    bus.transport(node).subscribe(topic, STRING, lambda msg: heard.append(str(msg.data)), qos)
    return heard


def test_late_latched_subscriber_gets_the_kept_messages_of_live_latched_publishers() -> None:
    bus = InProcessBus()
    a, b = bus.transport("a"), bus.transport("b")
    keep_two = QosProfile(durability=Durability.TRANSIENT_LOCAL, depth=2)
    pub_a = a.publisher("/t", STRING, keep_two)
    pub_b = b.publisher("/t", STRING, LATCHED_QOS)
    plain = a.publisher("/t", STRING, DEFAULT_QOS)
    for i in range(3):
        pub_a.publish(a.new_message(STRING, data=f"a{i}"))
    pub_b.publish(b.new_message(STRING, data="b0"))
    pub_b.publish(b.new_message(STRING, data="b1"))
    plain.publish(a.new_message(STRING, data="volatile"))
    assert texts(bus, "/t", LATCHED_QOS) == ["a1", "a2", "b1"]  # each writer's history, writers in order
    assert texts(bus, "/t", DEFAULT_QOS) == []  # a volatile reader gets only what comes after it
    assert texts(bus, "/other", LATCHED_QOS) == []
    assert bus.published["/t"] == 6  # replaying history to a late joiner is no new publication


def test_latched_messages_go_with_their_publisher_or_node() -> None:
    bus = InProcessBus()
    driver, policy = bus.transport("driver"), bus.transport("policy")
    description = driver.publisher("/robot_description", STRING, LATCHED_QOS)
    gripper = policy.publisher("/gripper", STRING, LATCHED_QOS)
    description.publish(driver.new_message(STRING, data="urdf"))
    gripper.publish(policy.new_message(STRING, data="0.04"))
    policy.close()  # the node is gone; the other node's latched topic stays
    assert texts(bus, "/gripper", LATCHED_QOS) == []
    assert texts(bus, "/robot_description", LATCHED_QOS) == ["urdf"]
    description.close()
    assert texts(bus, "/robot_description", LATCHED_QOS) == []


def test_private_names_resolve_before_the_replay() -> None:
    bus = InProcessBus()
    node = bus.transport("fake_arm")
    node.publisher("~/cameras_enabled", STRING, LATCHED_QOS).publish(node.new_message(STRING, data="off"))
    heard: list[str] = []
    bus.transport("tool").subscribe("/fake_arm/cameras_enabled", STRING, lambda m: heard.append(m.data), LATCHED_QOS)
    assert heard == ["off"]
