"""The policy node as a managed node (autostart off), driven through the standard lifecycle services that
`ros2 lifecycle set` calls: configure loads, activate commands, deactivate holds and stops, cleanup frees."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from test.ros2.conftest import REPO, Workspace

SIM_ARM = REPO / "config" / "robots" / "sim_arm.yaml"
SHIPPED = REPO / "checkpoints" / "sim_reach" / "checkpoint"


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def nodes(workspace: Workspace, ros_env: dict[str, str], tmp_path):
    bin_dir = workspace.root / "install" / "vla_policy_node" / "lib" / "vla_policy_node"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("policy", "driver")}
    driver = subprocess.Popen([str(bin_dir / "fake_arm_driver"), "--robot-config", str(SIM_ARM)], env=ros_env,
                              stdout=logs["driver"], stderr=subprocess.STDOUT)
    policy = subprocess.Popen([str(bin_dir / "policy_node"), "--ros-args", "-p", f"robot_config:={SIM_ARM}",
                               "-p", f"checkpoint:={SHIPPED}", "-p", "autostart:=false"], env=ros_env,
                              stdout=logs["policy"], stderr=subprocess.STDOUT)
    yield policy
    for process in (policy, driver):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    for log in logs.values():
        log.close()


def test_lifecycle_transitions_drive_the_policy(nodes, rclpy_context, tmp_path) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from trajectory_msgs.msg import JointTrajectory

    node = Node("lifecycle_test", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    preview: list[float] = []
    node.create_subscription(JointTrajectory, "/vla/preview_command", lambda _: preview.append(time.monotonic()), 50)
    get_state = node.create_client(GetState, "/vla_policy/get_state")
    change = node.create_client(ChangeState, "/vla_policy/change_state")

    def call(client, request, timeout=120.0):
        future = client.call_async(request)
        assert wait_until(future.done, timeout), "no reply"
        return future.result()

    def state() -> str:
        return call(get_state, GetState.Request()).current_state.label

    def transition(transition_id: int) -> bool:
        return call(change, ChangeState.Request(transition=Transition(id=transition_id))).success

    try:
        assert get_state.wait_for_service(timeout_sec=120.0), (tmp_path / "policy.log").read_text()
        assert state() == "unconfigured"
        assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
        time.sleep(1.0)
        assert not preview, "an inactive node commands nothing"
        assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
        assert wait_until(lambda: len(preview) >= 20, 30.0), "activate starts the control loop"
        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
        stopped = time.monotonic()
        time.sleep(1.0)
        assert not [t for t in preview if t > stopped + 0.2], "deactivate stops commanding"
        assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
        assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"  # the model loads again
    finally:
        executor.shutdown()
        node.destroy_node()
    policy = nodes
    policy.send_signal(signal.SIGINT)
    assert policy.wait(15) == 0
    text = (tmp_path / "policy.log").read_text()
    assert "Traceback" not in text and "Destroyable" not in text
