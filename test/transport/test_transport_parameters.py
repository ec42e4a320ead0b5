"""Node parameters without ROS: the shared rule (start-up only, choices, stricter limits), the DDS-side table with
rclpy's checks and replies, the rcl_interfaces parameter services and /rosout over the DDS transport.
(test/ros2/test_dds_node.py checks the same against the real `ros2` CLI and an rclpy node.)"""

from __future__ import annotations

import logging
import time

from test.transport.conftest import Inbox
from vla_policy_node.msgs.stamps import make_time
from vla_policy_node.transport.dds_parameters import descriptor_message, value_message, value_of
from vla_policy_node.transport.parameters import (
    Param,
    ParameterTable,
    ParameterType,
    change_problem,
    on_set_rule,
    parameter_type,
)

PARAMS = {
    "checkpoint": Param("/ckpt", "weights"),
    "instruction": Param("reach", "what to do", live=True),
    "strategy": Param("rtc", "execution", live=True, choices=("synchronous", "ensemble", "rtc")),
    "velocity_scale": Param(1.0, "speed fraction", live=True, range=(0.01, 1.0), stricter="lower"),
    "seed": Param(3, "seed", range=(0, 10)),
}


def test_the_shared_rule_refuses_startup_parameters_unknown_choices_and_looser_limits():
    assert "read once at start-up" in change_problem("checkpoint", PARAMS["checkpoint"], "/ckpt", "/other")
    assert change_problem("instruction", PARAMS["instruction"], "reach", "push") == ""
    assert "one of synchronous, ensemble, rtc" in change_problem("strategy", PARAMS["strategy"], "rtc", "fast")
    assert change_problem("velocity_scale", PARAMS["velocity_scale"], 0.8, 0.5) == ""
    looser = change_problem("velocity_scale", PARAMS["velocity_scale"], 0.5, 0.8)
    assert "would loosen a limit" in looser and "relaunch" in looser
    higher = Param(0.1, live=True, stricter="higher")
    assert change_problem("margin", higher, 0.1, 0.05) != "" and change_problem("margin", higher, 0.1, 0.2) == ""


def test_the_rule_checks_every_change_before_the_handler_applies_any():
    applied = []
    values = {"instruction": "reach", "velocity_scale": 0.5}
    rule = on_set_rule(PARAMS, values.__getitem__, lambda name, value: applied.append((name, value)) or "")
    assert "loosen" in rule([("instruction", "push"), ("velocity_scale", 0.9)])
    assert applied == []
    assert rule([("instruction", "push"), ("use_sim_time", True)]) == ""  # not ours: the transport's
    assert applied == [("instruction", "push")]
    refusing = on_set_rule(PARAMS, values.__getitem__, lambda name, value: "no fresh joint states")
    assert refusing([("instruction", "x")]) == "instruction: no fresh joint states"


def test_the_table_answers_as_rclpy_does():
    table = ParameterTable()
    for name, spec in PARAMS.items():
        table.declare(name, spec)
    table.add_on_set(on_set_rule(PARAMS, table.get, lambda name, value: ""))
    assert table.names() == (list(PARAMS), [])
    set1 = table.set_atomically
    assert set1([("seed", ParameterType.INTEGER, 11)]).reason == (
        "Parameter seed out of range. Min: 0, Max: 10, value: 11")
    assert set1([("velocity_scale", ParameterType.DOUBLE, 2.0)]).reason == (
        "Parameter velocity_scale out of range Min: 0.01, Max: 1.0, value: 2.0")
    assert set1([("seed", ParameterType.STRING, "x")]).reason == (
        "Wrong parameter type, expected 'Type.INTEGER' got 'Type.STRING'")
    assert set1([("nope", ParameterType.BOOL, True)]).reason == "Invalid access to undeclared parameter(s): []"
    assert set1([("seed", ParameterType.NOT_SET, None)]).reason == "Static parameter cannot be undeclared"
    assert "read once at start-up" in set1([("checkpoint", ParameterType.STRING, "/x")]).reason
    assert set1([("velocity_scale", ParameterType.DOUBLE, 0.4)]).successful
    assert table.get("velocity_scale") == 0.4
    assert not set1([("velocity_scale", ParameterType.DOUBLE, 0.6)]).successful
    assert table.get("velocity_scale") == 0.4  # a refused set changes nothing
    read_only = ParameterTable()
    read_only.declare("start_type_description_service", Param(False, read_only=True))
    assert read_only.set_atomically([("start_type_description_service", ParameterType.BOOL, True)]).reason == (
        "Trying to set a read-only parameter: start_type_description_service.")


def test_values_and_descriptors_round_trip_through_messages():
    from vla_policy_node.msgs import rosbags_factory

    new = rosbags_factory()
    for value in (True, 3, 2.5, "text", [1, 2], [0.5], ["a", "b"], [True, False]):
        assert value_of(value_message(new, value)) == (parameter_type(value), value)
    described = descriptor_message(new, "velocity_scale", PARAMS["velocity_scale"])
    assert described.type == int(ParameterType.DOUBLE) and described.floating_point_range[0].to_value == 1.0
    assert "stricter" in described.additional_constraints
    assert "read at start-up" in descriptor_message(new, "checkpoint", PARAMS["checkpoint"]).description
    assert descriptor_message(new, "seed", PARAMS["seed"]).integer_range[0].to_value == 10


def test_dds_node_serves_parameters_events_and_rosout(make_dds):
    node = make_dds("params_node")
    peer = make_dds("params_peer", parameter_services=False)
    from vla_policy_node.nodes.node_support import declare_parameters, watch_parameters

    applied = []
    assert declare_parameters(node, PARAMS)["velocity_scale"] == 1.0
    watch_parameters(node, PARAMS, lambda name, value: applied.append((name, value)) or "")
    events = Inbox()
    peer.subscribe("/parameter_events", "rcl_interfaces/msg/ParameterEvent", events, qos=_events_qos())
    logs = Inbox()
    peer.subscribe("/rosout", "rcl_interfaces/msg/Log", logs, qos=_rosout_qos())

    def call(service: str, **fields):
        srvtype = f"rcl_interfaces/srv/{''.join(p.title() for p in service.split('_'))}"
        client = peer.client(f"/params_node/{service}", srvtype)
        try:
            return client.call(peer.new_request(srvtype, **fields), timeout=20.0)
        finally:
            client.close()

    listed = call("list_parameters").result.names
    assert set(listed) == {"use_sim_time", "start_type_description_service", *PARAMS}
    new = peer.new_message
    parameter = new("rcl_interfaces/msg/Parameter", name="velocity_scale", value=value_message(new, 0.5))
    (result,) = call("set_parameters", parameters=[parameter]).results
    assert result.successful and applied == [("velocity_scale", 0.5)]
    got = call("get_parameters", names=["velocity_scale", "strategy"]).values
    assert [value_of(v)[1] for v in got] == [0.5, "rtc"]
    assert list(call("get_parameters", names=["velocity_scale", "nope"]).values) == []  # rclpy: all or nothing
    assert list(call("get_parameter_types", names=["seed"]).types) == [int(ParameterType.INTEGER)]
    (described,) = call("describe_parameters", names=["strategy"]).descriptors
    assert described.additional_constraints == "one of: synchronous, ensemble, rtc"
    events.wait(1)
    assert any(p.name == "velocity_scale" for e in events.items for p in e.changed_parameters)
    node.log_to_rosout()
    logging.getLogger("some.module").warning("hello /rosout")
    logs.wait(1)
    (log,) = [m for m in logs.items if m.msg == "hello /rosout"]
    assert log.name == "params_node" and log.level == 30
    assert log.function == "test_dds_node_serves_parameters_events_and_rosout"


def test_use_sim_time_follows_clock_over_dds(make_dds):
    node = make_dds("clock_node")
    clock = make_dds("clock_source", parameter_services=False)
    publisher = clock.publisher("/clock", "rosgraph_msgs/msg/Clock")
    assert node.now() > 1e9  # wall time
    node.enable_sim_time(True)
    assert node.now() == 0.0  # nothing on /clock yet: not started, as rclpy
    deadline = time.monotonic() + 20.0
    while node.now() != 42.5 and time.monotonic() < deadline:
        publisher.publish(clock.new_message("rosgraph_msgs/msg/Clock", clock=make_time(clock.new_message, 42.5)))
        time.sleep(0.05)
    assert node.now() == 42.5
    node.enable_sim_time(False)
    assert node.now() > 1e9
    refused = node.parameters.set_atomically([("use_sim_time", ParameterType.STRING, "yes")])
    assert refused.reason == "Wrong parameter type, expected 'Type.BOOL' got 'Type.STRING'"


def _events_qos():
    from vla_policy_node.transport.dds_parameters import PARAMETER_EVENTS_QOS

    return PARAMETER_EVENTS_QOS


def _rosout_qos():
    from vla_policy_node.transport.rosout import ROSOUT_QOS

    return ROSOUT_QOS
