"""MuxRuntime in-process: policy stream, teleop, e-stop latch, stale inputs, grippers, on a scripted clock."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from test.nodes.fakes import ServiceTransport, joint_state_msg, mid_state
from vla_policy_node.control.mux_file import load_mux_file
from vla_policy_node.msgs import (
    decode_diagnostics,
    decode_joint_trajectory,
    decode_policy_status,
    encode_float64_array,
    encode_joint_jog,
    encode_joint_state,
    encode_joint_trajectory,
    encode_twist_stamped,
)
from vla_policy_node.nodes.mux_runtime import MuxNodeParams, MuxRuntime, default_mux_config_path
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.qos import LATCHED_QOS, SENSOR_DATA_QOS

PERIOD = 0.01
CONTROLLER = "/arm_controller/joint_trajectory"


class MuxHarness:
    def __init__(self, embodiment: Embodiment, params: MuxNodeParams | None = None) -> None:
        self.embodiment = embodiment
        self.t = ServiceTransport(clock=50.0)
        self.t.node_name = "vla_command_mux"
        self.runtime = MuxRuntime(self.t, embodiment, params)
        self.state = mid_state(embodiment)
        self.joint_states = True

    def step(self, n: int = 1, policy: np.ndarray | None = None, **teleop) -> None:
        for _ in range(n):
            now = self.t.advance(PERIOD)
            if self.joint_states:
                self.t.inject("/joint_states", joint_state_msg(self.t, self.embodiment, self.state, now))
            if policy is not None:
                self.t.inject("/vla/policy_command", encode_joint_trajectory(
                    self.t.new_message, self.embodiment.joint_names, policy[None, :], [PERIOD]))
            for topic, msg in teleop.items():
                self.t.inject(f"/vla/teleop/{topic}", msg)
            if self.runtime.control_step() is not None:  # the arm follows its command exactly
                self.state[: len(self.embodiment.joints)] = self.runtime.last_command.arm

    def commands(self) -> np.ndarray:
        return np.stack([decode_joint_trajectory(m).positions[0] for m in self.t.messages(CONTROLLER)])

    def status(self) -> dict:
        self.runtime.status_step()
        return decode_policy_status(self.t.messages("/vla/mux_status")[-1])

    def estop(self, value: bool) -> None:
        self.t.inject("/vla/estop", self.t.new_message("std_msgs/msg/Bool", data=value))


@pytest.fixture
def mux(sim_arm):
    params = MuxNodeParams.from_mux_file(load_mux_file(default_mux_config_path()))
    return MuxHarness(sim_arm, params)


@pytest.fixture
def auto_mux(sim_arm):
    """config/mux.yaml with twist_mux's automatic hand-back (handback: auto)."""
    params = MuxNodeParams.from_mux_file(load_mux_file(default_mux_config_path()))
    control = dataclasses.replace(params.control, mux=dataclasses.replace(params.control.mux, handback="auto"))
    return MuxHarness(sim_arm, dataclasses.replace(params, control=control))


def test_wiring_follows_mux_yaml(mux, sim_arm):
    assert set(mux.t.subscribers) >= {"/vla/policy_command", "/vla/policy_gripper_command", "/joint_states",
                                      "/vla/teleop/joint_command", "/vla/teleop/twist_cmds",
                                      "/vla/teleop/joint_jog", "/vla/estop", "/vla/teleop/resume"}
    assert mux.t.subscribers["/vla/policy_command"][0] == "trajectory_msgs/msg/JointTrajectory"
    assert mux.t.qos["/joint_states"] == SENSOR_DATA_QOS
    assert mux.t.qos["/vla/policy_gripper_command"] == LATCHED_QOS
    assert set(mux.t.services) == {"/vla_command_mux/reset_estop", "/vla_command_mux/set_paused"}
    assert mux.runtime.params.policy_timeout == 0.5 and mux.runtime.loop.source.timeout == 0.5


def test_nothing_is_published_before_the_robot_state_is_known(mux):
    mux.joint_states = False
    mux.step(10, policy=np.zeros(6))
    assert mux.t.messages(CONTROLLER) == []
    assert mux.runtime.loop.status(mux.t.clock).hold_reasons == ("waiting for joint states",)


def test_policy_commands_are_forwarded_through_the_safety_filter(mux, sim_arm):
    target = mux.state[:6] + np.array([0.5, -0.3, 0.2, 0.0, 0.1, 0.0])
    mux.step(200, policy=target)
    q = mux.commands()
    np.testing.assert_allclose(q[-1], target, atol=1e-6)
    vmax = np.array([j.max_velocity for j in sim_arm.joints])
    assert np.all(np.abs(np.diff(q, axis=0)) <= vmax * PERIOD + 1e-12)
    assert mux.status()["active_source"] == "policy"
    last = mux.t.messages(CONTROLLER)[-1]
    assert list(last.joint_names) == list(sim_arm.joint_names) and len(last.points) == 1


def test_policy_stream_timeout_holds_and_reports(mux):
    mux.step(30, policy=mux.state[:6] + 0.2)
    mux.step(80)  # the policy node stopped publishing
    status = mux.status()
    assert status["active_source"] == "hold" and status["starved"] and "policy_command" in status["stale_inputs"]
    q = mux.commands()
    assert np.max(np.abs(np.diff(q[-20:], axis=0))) < 1e-12


def test_teleop_overrides_the_policy_then_hands_back(auto_mux):
    mux = auto_mux
    start = mux.state[:6].copy()
    policy = start + 0.1
    mux.step(50, policy=policy)
    teleop_target = start - 0.2
    teleop = encode_joint_state(mux.t.new_message, mux.embodiment.joint_names, teleop_target)
    mux.step(150, policy=policy, joint_command=teleop)
    assert mux.status()["active_source"] == "teleop"
    np.testing.assert_allclose(mux.commands()[-1], teleop_target, atol=1e-6)
    mux.step(150, policy=policy)  # teleop silent for longer than its 0.5 s timeout
    assert mux.status()["active_source"] == "policy"
    np.testing.assert_allclose(mux.commands()[-1], policy, atol=1e-6)


def test_after_a_takeover_the_policy_waits_for_the_resume_topic_or_service(mux):
    """config/mux.yaml's default (handback: resume): the operator hands control back explicitly."""
    start = mux.state[:6].copy()
    policy = start + 0.1
    mux.step(50, policy=policy)
    teleop = encode_joint_state(mux.t.new_message, mux.embodiment.joint_names, start - 0.2)
    mux.step(100, policy=policy, joint_command=teleop)
    mux.step(150, policy=policy)  # teleop silent for longer than its 0.5 s timeout
    status = mux.status()
    assert status["active_source"] == "hold" and status["awaiting_resume"]
    assert "resume" in status["control_reason"] and any("resume" in r for r in status["hold_reasons"])
    assert np.max(np.abs(np.diff(mux.commands()[-50:], axis=0))) < 1e-12  # held still
    mux.t.inject("/vla/teleop/resume", mux.t.new_message("std_msgs/msg/Bool", data=True))  # the pedal
    mux.step(150, policy=policy)
    assert mux.status()["active_source"] == "policy" and not mux.status()["awaiting_resume"]
    np.testing.assert_allclose(mux.commands()[-1], policy, atol=1e-6)
    mux.step(100, policy=policy, joint_command=teleop)  # again; this time the service hands back
    mux.step(100, policy=policy)
    assert mux.status()["awaiting_resume"]
    assert mux.t.call("/vla_command_mux/set_paused", paused=False).success
    mux.step(1, policy=policy)
    assert mux.status()["active_source"] == "policy"


def test_estop_latches_until_reset_and_blocks_teleop(auto_mux):
    mux = auto_mux  # the teleop command sent during the e-stop drives briefly after the reset, then hands back
    policy = mux.state[:6] + 0.3
    mux.step(20, policy=policy)
    mux.estop(True)
    mux.step(60, policy=policy)
    held = mux.commands()[-1].copy()
    mux.estop(False)
    teleop = encode_joint_state(mux.t.new_message, mux.embodiment.joint_names, mux.state[:6] - 0.3)
    mux.step(60, policy=policy, joint_command=teleop)
    status = mux.status()
    assert status["estop_latched"] and status["active_source"] == "hold"
    np.testing.assert_allclose(mux.commands()[-40:], np.tile(held, (40, 1)), atol=1e-12)
    _, entries = decode_diagnostics(mux.t.messages("/diagnostics")[-1])
    assert any(e.name == "vla_command_mux: command mux" and e.level == 2 for e in entries)

    mux.estop(True)
    refused = mux.t.call("/vla_command_mux/reset_estop")
    assert not refused.success and "still engaged" in refused.message
    mux.estop(False)
    reply = mux.t.call("/vla_command_mux/reset_estop")
    assert reply.success
    mux.step(250, policy=policy)
    assert mux.status()["active_source"] == "policy" and not mux.status()["estop_latched"]
    np.testing.assert_allclose(mux.commands()[-1], policy, atol=1e-6)


def test_joint_jog_velocities_and_displacements(mux):
    start = mux.state[:6].copy()
    jog = encode_joint_jog(mux.t.new_message, ["joint2"], velocities=[0.5])
    mux.step(100, joint_jog=jog)  # 1 s at 0.5 rad/s (after the hand-over ramp)
    moved = mux.commands()[-1] - start
    assert 0.3 < moved[1] <= 0.5 + 1e-9 and np.allclose(np.delete(moved, 1), 0.0)
    assert mux.status()["active_source"] == "teleop"
    mux.step(60)  # jog stops: held
    before = mux.commands()[-1].copy()
    nudge = encode_joint_jog(mux.t.new_message, ["joint5"], displacements=[-0.1])
    mux.step(1, joint_jog=nudge)
    mux.step(60)
    np.testing.assert_allclose(mux.commands()[-1] - before, [0, 0, 0, 0, -0.1, 0], atol=1e-6)


def test_unusable_inputs_are_counted(mux):
    new = mux.t.new_message
    mux.step(5)
    mux.t.inject("/vla/teleop/twist_cmds", encode_twist_stamped(new, [0.1, 0, 0], [0, 0, 0]))  # joint robot
    mux.t.inject("/vla/policy_command", encode_joint_trajectory(new, ["joint1"], np.zeros((1, 1)), [0.01]))
    mux.t.inject("/vla/teleop/joint_jog", encode_joint_jog(new, ["elbow"], velocities=[1.0]))
    counts = mux.runtime.errors.counts()
    assert counts[("/vla/teleop/twist_cmds", "rejected")] == 1
    assert counts[("/vla/policy_command", "missing_joint")] == 1
    assert counts[("/vla/teleop/joint_jog", "rejected")] == 1
    mux.step(1)
    assert mux.runtime.last_command.source == "hold"


def test_stale_joint_states_hold_the_arm(mux):
    policy = mux.state[:6] + 0.4
    mux.step(30, policy=policy)
    mux.joint_states = False
    mux.step(60, policy=policy)
    status = mux.status()
    assert status["active_source"] == "hold" and "joint_states" in status["stale_inputs"]
    assert mux.runtime.loop.status(mux.t.clock).hold_reasons == ("joint states stale: holding",)
    assert np.max(np.abs(np.diff(mux.commands()[-20:], axis=0))) < 1e-12


def test_forward_command_gripper_follows_the_policy_on_change(sim_arm):
    h = MuxHarness(sim_arm)
    h.t.inject("/vla/policy_gripper_command", encode_float64_array(h.t.new_message, [0.01]))
    h.step(100, policy=h.state[:6])
    values = [float(m.data[0]) for m in h.t.messages("/gripper_controller/commands")]
    assert values[0] == pytest.approx(sim_arm.gripper.upper) and values[-1] == pytest.approx(0.01)
    assert len(set(values)) == len(values)  # on change only
    h.step(20, policy=h.state[:6])
    assert len(h.t.messages("/gripper_controller/commands")) == len(values)


def test_gripper_action_over_dds_is_reported_not_faked(franka):
    h = MuxHarness(franka)
    h.step(3)
    h.runtime.status_step()
    _, entries = decode_diagnostics(h.t.messages("/diagnostics")[-1])
    gripper = next(e for e in entries if e.name == "vla_command_mux: gripper")
    assert gripper.level == 1 and "gripper_action" in gripper.message and "rclpy" in gripper.message
    assert h.t.messages(franka.gripper.topic) == []


def test_forward_command_controller_gets_float_arrays(sim_arm):
    from vla_policy_node.msgs.commands import resolve_controller

    emb = resolve_controller(sim_arm, "forward_command")
    h = MuxHarness(emb)
    assert h.t.subscribers["/vla/policy_command"][0] == "std_msgs/msg/Float64MultiArray"
    h.t.inject("/vla/policy_command", encode_float64_array(h.t.new_message, h.state[:6] + 0.05))
    h.step(1)
    (msg,) = h.t.messages("/arm_controller/commands")
    assert len(msg.data) == 6


def test_mux_params_come_from_the_yaml(repo_root):
    mux_file = load_mux_file(repo_root / "config" / "mux.yaml")
    params = MuxNodeParams.from_mux_file(mux_file, node_name="other")
    assert params.node_name == "other" and params.topics.locks == {"estop": "/vla/estop"}
    assert params.control.mux.locks[0].latching and dataclasses.asdict(params)["policy_timeout"] == 0.5
