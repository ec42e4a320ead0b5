"""The rclpy-only glue against the real rclpy: parameters with descriptors and live handlers, node timers in
their own callback groups, the transport's messages, and the GripperCommand action client against a real
rclpy action server."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from vla_policy_node.msgs.joints import decode_joint_state, encode_joint_state
from vla_policy_node.nodes.gripper_output import GripperActionOutput, make_gripper_output
from vla_policy_node.nodes.node_support import Param, declare_parameters, watch_parameters
from vla_policy_node.nodes.timing import ControlTimers, RclpyTicker, ThreadTicker, make_ticker
from vla_policy_node.transport.rclpy_backend import RclpyTransport


@pytest.fixture
def spun_node(rclpy_context):
    """A node on a MultiThreadedExecutor in a background thread (as RclpyTransport.create spins its node)."""
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.node import Node

    node = Node("glue_test", context=rclpy_context)
    executor = MultiThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_parameters_declared_with_descriptors_and_live_handlers(spun_node) -> None:
    from rcl_interfaces.msg import ParameterType
    from rclpy.parameter import Parameter

    transport = RclpyTransport(spun_node)
    params = {"instruction": Param("reach", "what to do", live=True),
              "checkpoint": Param("/ckpt", "weights"),
              "seed": Param(3, "seed", range=(0, 10))}
    assert declare_parameters(transport, params) == {"instruction": "reach", "checkpoint": "/ckpt", "seed": 3}
    applied = []
    watch_parameters(transport, params, lambda name, value: applied.append((name, value)) or "")
    (descriptor,) = spun_node.describe_parameters(["seed"])
    assert descriptor.type == ParameterType.PARAMETER_INTEGER and descriptor.integer_range[0].to_value == 10
    (ok,) = spun_node.set_parameters([Parameter("instruction", value="push")])
    assert ok.successful and applied == [("instruction", "push")]
    (refused,) = spun_node.set_parameters([Parameter("checkpoint", value="/other")])
    assert not refused.successful and "read once at start-up" in refused.reason
    assert spun_node.get_parameter("checkpoint").value == "/ckpt"
    (out_of_range,) = spun_node.set_parameters([Parameter("seed", value=11)])
    assert not out_of_range.successful


def test_timers_are_node_timers_in_their_own_callback_groups(spun_node) -> None:
    transport = RclpyTransport(spun_node)
    calls: list[str] = []
    control = make_ticker(transport, 0.01, lambda: calls.append(threading.current_thread().name), "control")
    failing = make_ticker(transport, 0.02, lambda: 1 / 0, "status")
    own = make_ticker(transport, 0.01, lambda: None, "render", own_thread=True)
    assert isinstance(control, RclpyTicker) and isinstance(own, ThreadTicker)
    control.start()
    failing.start()
    assert wait_until(lambda: len(calls) >= 10 and failing.job.failures >= 3)  # an exception never ends spin
    assert control._timer.callback_group is not failing._timer.callback_group
    control.stop()
    failing.stop()
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count  # stopped means stopped


@contextlib.contextmanager
def on_sim_time(node) -> Iterator[None]:
    """The node on simulated time (use_sim_time) for the block, back on wall time after it."""
    from rclpy.parameter import Parameter

    node.set_parameters([Parameter("use_sim_time", value=True)])
    try:
        yield
    finally:
        node.set_parameters([Parameter("use_sim_time", value=False)])


def test_control_timers_are_threads_on_wall_time_and_node_timers_on_sim_time(spun_node) -> None:
    """A node's control and status timers: threads of their own on wall time (the executor's Python delayed a
    250 Hz tick by milliseconds), node timers that /clock drives with use_sim_time."""
    transport = RclpyTransport(spun_node)
    ticks: list[str] = []
    statuses: list[str] = []
    timers = ControlTimers(transport, "glue", 0.004, lambda: ticks.append(threading.current_thread().name), 20.0,
                           lambda: statuses.append(threading.current_thread().name))
    timers.start()
    try:
        assert all(isinstance(t, ThreadTicker) for t in timers._tickers)
        assert wait_until(lambda: len(ticks) >= 50 and len(statuses) >= 3)
        assert set(ticks) == {"glue-control"} and set(statuses) == {"glue-status"}
        assert timers.wait_for_room(0.004) <= 0.004 + 1e-3  # a thread says when it ticks next
    finally:
        timers.stop()
    with on_sim_time(spun_node):
        try:
            timers.start()  # no /clock published: sim time stands still, and so do the node timers
            assert all(isinstance(t, RclpyTicker) for t in timers._tickers)
            assert timers.wait_for_room(0.004) == 0.0
            count = len(ticks)
            time.sleep(0.2)
            assert len(ticks) == count
        finally:
            timers.stop()


def test_fake_arm_streams_from_threads_on_wall_time_and_follows_clock_on_sim_time(spun_node) -> None:
    """The fake arm driver's joint and camera timers: threads of their own on wall time, like the nodes' control
    timers; node timers that /clock drives with use_sim_time (no /clock: nothing published)."""
    from vla_policy_node.nodes.fake_arm_driver import FakeArm
    from vla_policy_node.spec.robot_configs import load_robot

    transport = RclpyTransport(spun_node)
    published: list[str] = []
    transport.subscribe("/joint_states", "sensor_msgs/msg/JointState",
                        lambda _: published.append("joint_states"))
    arm = FakeArm(transport, load_robot("sim_arm"))
    arm.start()
    try:
        assert all(isinstance(t, ThreadTicker) for t in arm._tickers)
        assert wait_until(lambda: len(published) >= 20)
    finally:
        arm.close()
    with on_sim_time(spun_node):
        arm = FakeArm(transport, load_robot("sim_arm"))
        try:
            arm.start()
            assert all(isinstance(t, RclpyTicker) for t in arm._tickers)
            time.sleep(0.2)
            count = len(published)
            time.sleep(0.3)
            assert len(published) == count
        finally:
            arm.close()


def test_transport_round_trip_through_real_rclpy(spun_node) -> None:
    transport = RclpyTransport(spun_node)
    received = []
    transport.subscribe("/glue/joints", "sensor_msgs/msg/JointState", received.append)
    publisher = transport.publisher("/glue/joints", "sensor_msgs/msg/JointState")
    assert wait_until(lambda: spun_node.count_subscribers("/glue/joints") >= 1)
    for _ in range(50):
        publisher.publish(encode_joint_state(transport.new_message, ["a", "b"], np.array([0.5, -0.25]), stamp=2.5))
        if wait_until(lambda: received, 0.1):
            break
    data = decode_joint_state(received[0])
    assert data.names == ("a", "b") and data.positions.tolist() == [0.5, -0.25] and data.stamp == 2.5


def test_gripper_action_client_against_a_real_action_server(spun_node, franka) -> None:
    from control_msgs.action import GripperCommand
    from rclpy.action import ActionServer

    goals = []

    def execute(handle):
        goals.append((handle.request.command.position, handle.request.command.max_effort))
        handle.succeed()
        result = GripperCommand.Result()
        result.position, result.reached_goal = handle.request.command.position, True
        return result

    transport = RclpyTransport(spun_node)
    output = make_gripper_output(transport, franka.gripper)
    assert isinstance(output, GripperActionOutput)
    output.send(0.01, 1.0)  # no server yet: nothing sent, and the problem says why
    assert output.sent == 0 and "not available" in output.problem
    server = ActionServer(spun_node, GripperCommand, franka.gripper.topic, execute)
    try:
        assert wait_until(lambda: output._client.server_is_ready())
        output.send(0.02, 2.0)
        assert wait_until(lambda: goals == [(0.02, franka.gripper.max_effort)])
        assert output.sent == 1 and output.problem == ""
    finally:
        output.close()
        server.destroy()


def test_subscription_loop_stops_quietly_after_a_start_cut_by_sigint(rclpy_context, cut_thread_start) -> None:
    """A SIGINT inside the loop's Thread.start() (the replay launch's mux in CI: 'cannot join thread before it is
    started', exit 2 instead of a clean stop): stop() returns quietly and the thread, should it get going after
    the stop, ends without waiting on anything."""
    from vla_policy_node.transport.rclpy_executor import SubscriptionLoop

    cut, real_start = cut_thread_start
    loop = SubscriptionLoop(rclpy_context, name="cut-loop")
    with pytest.raises(KeyboardInterrupt):
        loop.start()
    loop.stop()
    real_start(cut[0])
    cut[0].join(5.0)
    assert not cut[0].is_alive() and loop.wakeups == 0


def test_created_node_waits_on_its_subscriptions_apart_and_services_still_answer(rclpy_context) -> None:
    """`RclpyTransport.create`'s node: the transport's subscriptions are waited on by a loop of their own, whose
    wait set holds them alone (rclpy's executor rebuilt a wait set of every service in Python per message);
    services stay on the MultiThreadedExecutor and answer; a blocking service handler (the node's default callback
    group holds the services mutually exclusive, as before) no longer holds messages back. /clock (rclpy's own
    subscription) still drives sim time."""
    from rclpy.parameter import Parameter

    transport = RclpyTransport.create("split_test", args=["split_test"])
    try:
        executor, node = transport._executor, transport.node
        loop = executor.subscriptions
        received: list[str] = []
        subscription = transport.subscribe("/split/joints", "sensor_msgs/msg/JointState",
                                           lambda _: received.append(threading.current_thread().name))
        release = threading.Event()
        transport.service("/split/slow", "std_srvs/srv/Trigger",
                          lambda _: {"success": release.wait(10.0), "message": "slow"})
        transport.service("/split/fast", "std_srvs/srv/Trigger", lambda _: {"success": True, "message": "fast"})
        publisher = transport.publisher("/split/joints", "sensor_msgs/msg/JointState")
        assert wait_until(lambda: loop.waited_on == (subscription.handle,))
        assert not executor.can_execute(subscription.handle)
        assert len(list(node.services)) >= 9  # rclpy's 7 parameter services and our 2: none in the loop's wait set

        slow_reply: list[object] = []
        slow_call = threading.Thread(
            target=lambda: slow_reply.append(transport.client("/split/slow", "std_srvs/srv/Trigger").call({}, 15.0)))
        slow_call.start()
        time.sleep(0.3)  # the slow handler now blocks on a pool thread
        message = encode_joint_state(transport.new_message, ["a"], np.array([0.5]), stamp=1.0)
        for _ in range(100):
            publisher.publish(message)
            if wait_until(lambda: len(received) >= 20, 0.01):
                break
        assert len(received) >= 20 and set(received) == {loop.name}
        assert not slow_reply
        release.set()
        slow_call.join(15.0)
        assert slow_reply and slow_reply[0].success
        fast = transport.client("/split/fast", "std_srvs/srv/Trigger").call({}, 10.0)
        assert fast.success and fast.message == "fast"

        subscription.close()
        assert wait_until(lambda: loop.waited_on == ())
        count = len(received)
        publisher.publish(message)
        time.sleep(0.2)
        assert len(received) == count

        node.set_parameters([Parameter("use_sim_time", value=True)])
        clock = transport.publisher("/clock", "rosgraph_msgs/msg/Clock")
        for _ in range(100):
            clock.publish(transport.new_message("rosgraph_msgs/msg/Clock", clock={"sec": 42, "nanosec": 0}))
            if wait_until(lambda: transport.now() == 42.0, 0.05):
                break
        assert transport.now() == 42.0
    finally:
        release.set()
        transport.close()
