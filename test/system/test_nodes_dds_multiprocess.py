"""The whole command path in separate processes over DDS on loopback, as it runs on a robot:

    fake_arm_driver (joints 100 Hz, two 64x64 cameras 30 Hz, URDF)  --sensors-->  policy_node (tiny VLA, live)
    policy_node --/vla/policy_command-->  command_mux_node  --/arm_controller/joint_trajectory-->  fake_arm_driver

This process watches the controller topic and both status topics, plays teleop and e-stop, and calls the
services. The three nodes start once for the module; each test leaves the system as it found it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from test.system.processes import SIM_ARM, NodeGroup, NodeProcess, Recorder, wait_for
from vla_policy_node.msgs import decode_action_chunk, decode_joint_trajectory, decode_policy_status
from vla_policy_node.msgs.joints import encode_joint_state
from vla_policy_node.msgs.markers import decode_marker_points
from vla_policy_node.transport.qos import LATCHED_QOS, QosProfile

pytestmark = pytest.mark.slow  # node processes over DDS

STARTUP_TIMEOUT = 60.0
INSTRUCTION = "put the red block in the bowl"


def max_change(commands: list[np.ndarray]) -> float:
    return float(np.max(np.abs(np.diff(np.stack(commands), axis=0)))) if len(commands) > 1 else 0.0


class System(NodeGroup):
    def __init__(self, tmp_path, domain: int, checkpoint) -> None:
        from vla_policy_node.transport import DdsConfig, DdsTransport

        robot = ["--transport", "dds", "--robot-config", str(SIM_ARM)]
        self.nodes = [
            NodeProcess("vla_policy_node.nodes.fake_arm_driver", robot, domain, tmp_path / "driver.log"),
            NodeProcess("vla_policy_node.nodes.command_mux_node", robot, domain, tmp_path / "mux.log"),
            NodeProcess("vla_policy_node.nodes.policy_node",
                        [*robot, "--checkpoint", str(checkpoint), "--instruction", INSTRUCTION, "--no-dry-run",
                         "--torch-threads", "1"],
                        domain, tmp_path / "policy.log"),
        ]
        self.t = DdsTransport(DdsConfig(node_name="e2e_observer", loopback=True, domain_id=domain))
        qos = QosProfile(depth=100)  # reliable and deep: every command is checked against the limits
        self.commands = Recorder(lambda m: decode_joint_trajectory(m).positions[0])
        self.velocities = Recorder(lambda m: decode_joint_trajectory(m).velocities[0])
        self.status = Recorder(decode_policy_status)
        self.mux_status = Recorder(decode_policy_status)
        self.chunks = Recorder(decode_action_chunk)
        self.paths = Recorder(decode_marker_points)
        sub = self.t.subscribe
        sub("/arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", self.commands, qos)
        sub("/arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", self.velocities, qos)
        sub("/vla/status", "vla_msgs/msg/PolicyStatus", self.status)
        sub("/vla/mux_status", "vla_msgs/msg/PolicyStatus", self.mux_status)
        sub("/vla/action_chunk", "vla_msgs/msg/ActionChunk", self.chunks)
        sub("/vla/predicted_path", "visualization_msgs/msg/MarkerArray", self.paths)

    def close(self) -> list[int]:
        codes = [node.stop() for node in reversed(self.nodes)]
        self.t.close()
        return codes

    # -- helpers
    def commands_over(self, seconds: float) -> list[np.ndarray]:
        t0 = time.monotonic()
        time.sleep(seconds)
        return self.commands.since(t0)

    def wait_for_still(self, timeout: float, what: str, window: float = 0.3) -> None:
        """Until the commands of the last `window` seconds are all equal."""

        def still() -> bool:
            recent = self.commands.since(time.monotonic() - window)
            return len(recent) > 10 and max_change(recent) < 1e-9

        wait_for(still, timeout, what, self)

    def wait_status(self, recorder: Recorder, predicate: Callable[[dict], bool], timeout: float, what: str) -> dict:
        wait_for(lambda: recorder.latest() is not None and predicate(recorder.latest()), timeout, what, self)
        return recorder.latest()


@pytest.fixture(scope="module")
def system(tmp_path_factory, dds_domain, tiny_checkpoint):
    running = System(tmp_path_factory.mktemp("nodes"), dds_domain, tiny_checkpoint)
    try:
        running.wait_status(running.mux_status, lambda s: s["active_source"] == "policy", STARTUP_TIMEOUT,
                            "the mux to forward policy commands")
        yield running
    finally:
        codes = running.close()
    assert codes == [0, 0, 0], f"node exit codes {codes} (policy, mux, driver)\n{running.logs()}"


def test_policy_commands_reach_the_controller_within_limits(system, sim_arm):
    commands = system.commands_over(1.5)
    assert len(commands) > 60, f"{len(commands)} commands in 1.5 s at a 100 Hz control rate"
    q = np.stack(commands)
    margin = sim_arm.safety.position_margin
    lower = np.array([j.lower for j in sim_arm.joints]) + margin
    upper = np.array([j.upper for j in sim_arm.joints]) - margin
    assert np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9), "a command left the joint limits"
    vmax = np.array([j.max_velocity for j in sim_arm.joints])
    steps = np.abs(np.diff(q, axis=0))
    assert np.all(steps <= vmax * 0.01 * (1 + 1e-6) + 1e-12), f"velocity limit broken: {steps.max(axis=0) / 0.01}"
    assert steps.max() > 1e-4, "the policy did not move the arm"
    velocities = np.stack(system.velocities.since(0.0)[-50:])
    assert np.all(np.abs(velocities) <= vmax * (1 + 1e-6)), "trajectory point velocities above the limits"

    status = system.status.latest()
    assert status["active_source"] == "policy" and status["fault"] == "" and status["stale_inputs"] == []
    assert status["instruction"] == INSTRUCTION and not status["estop_latched"] and not status["paused"]
    assert 80 < status["control_rate"] < 120, status["control_rate"]
    assert status["inference_rate"] > 2 and 0 < status["inference_latency_p50"] < 1.0
    assert status["inference_latency_p50"] <= status["inference_latency_p99"]

    chunk = system.chunks.latest()
    assert chunk.names == sim_arm.action_names and chunk.horizon > 1 and chunk.dt == sim_arm.rates.action_dt
    path = system.paths.latest()  # the driver's URDF arrived: FK of the chunk as a line strip + spheres
    assert path is not None, "no predicted path markers"
    assert {kind for kind, _ in path.values()} == {4, 7}
    assert all(points.shape == (chunk.horizon, 3) for _, points in path.values())


def test_camera_loss_holds_the_arm_and_reports_stale_inputs(system):
    cameras = system.t.publisher("/fake_arm_driver/cameras_enabled", "std_msgs/msg/Bool", LATCHED_QOS)
    try:
        cameras.publish(system.t.new_message("std_msgs/msg/Bool", data=False))
        t_off = time.monotonic()
        status = system.wait_status(system.status, lambda s: {"scene", "wrist"} <= set(s["stale_inputs"]), 2.0,
                                    "the policy to report stale cameras")
        assert time.monotonic() - t_off < 1.0  # camera max_age 0.2 s + status period
        system.wait_status(system.status, lambda s: s["active_source"] == "hold", 1.0, "the policy to hold")
        t_hold = time.monotonic()
        # Both filters (policy node, then mux) brake to the held position; the command then stays put.
        system.wait_for_still(2.5, "the controller commands to stop changing")
        assert time.monotonic() - t_hold < 2.5
        held = system.commands_over(0.5)
        assert len(held) > 30 and max_change(held) < 1e-9, f"commands kept changing by {max_change(held)}"
        assert status["input_ages"][status["stale_inputs"].index("scene")] > 0.2
    finally:
        cameras.publish(system.t.new_message("std_msgs/msg/Bool", data=True))
    system.wait_status(system.status, lambda s: s["active_source"] == "policy" and not s["stale_inputs"], 5.0,
                       "the policy to resume after the cameras came back")


def test_teleop_takes_over_and_hands_back(system, sim_arm):
    q0 = system.commands.latest()
    target = q0.copy()
    target[0] += -0.3 if q0[0] > 0 else 0.3  # towards the middle of joint1's range
    teleop = system.t.publisher("/vla/teleop/joint_command", "sensor_msgs/msg/JointState")
    names = list(sim_arm.joint_names)
    deadline = time.monotonic() + 1.5
    saw_teleop = False
    while time.monotonic() < deadline:
        teleop.publish(encode_joint_state(system.t.new_message, names, target, stamp=time.time()))
        saw_teleop |= system.mux_status.latest()["active_source"] == "teleop"
        time.sleep(0.02)
    final = system.commands.latest()
    assert saw_teleop, "mux status never showed teleop as the active source"
    assert abs(final[0] - target[0]) < 0.02, f"joint1 at {final[0]:.3f}, teleop target {target[0]:.3f}"
    assert np.max(np.abs(final - target)) < 0.05
    # config/mux.yaml: after a takeover the policy waits for an explicit resume (handback: resume)
    status = system.wait_status(system.mux_status, lambda s: s["awaiting_resume"] and s["active_source"] == "hold",
                                2.0, "the mux to hold after the teleop timeout, waiting for resume")
    assert "resume" in status["control_reason"]
    time.sleep(0.5)
    assert system.mux_status.latest()["active_source"] == "hold", "the policy took over without a resume"
    client = system.t.client("/vla_command_mux/set_paused", "vla_msgs/srv/SetPaused")
    try:
        assert client.wait_for_service(5.0)
        reply = client.call(system.t.new_request("vla_msgs/srv/SetPaused", paused=False), timeout=5.0)
    finally:
        client.close()
    assert reply.success, reply.message
    system.wait_status(system.mux_status, lambda s: s["active_source"] == "policy", 2.0,
                       "the mux to hand back to the policy after the resume")


def test_estop_holds_until_reset(system):
    assert max_change(system.commands_over(0.5)) > 1e-4, "precondition: the policy moves the arm"
    estop = system.t.publisher("/vla/estop", "std_msgs/msg/Bool")

    def press(value: bool) -> None:
        for _ in range(3):
            estop.publish(system.t.new_message("std_msgs/msg/Bool", data=value))
            time.sleep(0.02)

    press(True)
    system.wait_status(system.mux_status, lambda s: s["estop_latched"] and s["active_source"] == "hold", 2.0,
                       "the mux to latch the e-stop")
    system.wait_for_still(2.0, "the arm to stop on the e-stop")
    assert max_change(system.commands_over(0.5)) < 1e-9, "commands changed during the e-stop"
    press(False)
    time.sleep(0.3)
    assert max_change(system.commands_over(0.7)) < 1e-9, "commands changed after the e-stop released, before reset"
    assert system.mux_status.latest()["estop_latched"]

    client = system.t.client("/vla_command_mux/reset_estop", "vla_msgs/srv/ResetEstop")
    try:
        assert client.wait_for_service(5.0)
        reply = client.call(system.t.new_request("vla_msgs/srv/ResetEstop"), timeout=5.0)
    finally:
        client.close()
    assert reply.success, reply.message
    system.wait_status(system.mux_status, lambda s: not s["estop_latched"] and s["active_source"] == "policy", 2.0,
                       "the policy to drive again after the reset")
    assert max_change(system.commands_over(0.7)) > 1e-4, "the arm did not move again after the reset"


def test_policy_services_pause_and_resume(system):
    client = system.t.client("/vla_policy/set_paused", "vla_msgs/srv/SetPaused")
    try:
        assert client.wait_for_service(5.0)
        reply = client.call(system.t.new_request("vla_msgs/srv/SetPaused", paused=True), timeout=5.0)
        assert reply.success
        system.wait_status(system.status, lambda s: s["paused"] and s["active_source"] == "hold", 2.0,
                           "the policy to pause")
        reply = client.call(system.t.new_request("vla_msgs/srv/SetPaused", paused=False), timeout=5.0)
        assert reply.success
    finally:
        client.close()
    system.wait_status(system.status, lambda s: not s["paused"] and s["active_source"] == "policy", 3.0,
                       "the policy to resume")
