"""PolicyRuntime in-process: a recording transport, a scripted clock and scripted policies drive each step."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from test.nodes.fakes import FailingPolicy, ScriptedPolicy, ServiceTransport, image_msg, joint_state_msg, mid_state
from vla_policy_node.msgs import (
    decode_action_chunk,
    decode_diagnostics,
    decode_joint_state,
    decode_joint_trajectory,
    decode_marker_points,
    decode_policy_status,
    encode_compressed_image,
)
from vla_policy_node.msgs.commands import resolve_controller
from vla_policy_node.msgs.stamps import time_to_seconds
from vla_policy_node.nodes.fake_arm_driver import chain_urdf
from vla_policy_node.nodes.policy_runtime import PolicyNodeParams, PolicyRuntime
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.qos import LATCHED_QOS, SENSOR_DATA_QOS

PERIOD = 0.01  # sim_arm: 100 Hz


class Harness:
    """Drives a PolicyRuntime like its threads would, 10 ms per step, on a scripted clock."""

    def __init__(self, embodiment: Embodiment, policy, **params) -> None:
        self.embodiment = embodiment
        self.t = ServiceTransport(clock=100.0)
        self.t.node_name = "vla_policy"
        self.policy = policy
        self.runtime = PolicyRuntime(self.t, embodiment, policy, PolicyNodeParams(**params))
        self.state = mid_state(embodiment)
        self.cameras_on = True
        self.image_size = (64, 64)
        self.steps = 0

    def step(self, n: int = 1, *, joints: bool = True) -> None:
        for _ in range(n):
            now = self.t.advance(PERIOD)
            if joints:
                self.t.inject(self.embodiment.joint_states.topic, joint_state_msg(self.t, self.embodiment,
                                                                                  self.state, now))
            if self.cameras_on and self.steps % 3 == 0:
                for cam in self.embodiment.cameras:
                    self.t.inject(cam.topic, image_msg(self.t, *self.image_size, now))
            self.steps += 1
            self.runtime.inference_step()
            self.runtime.control_step()

    def status(self) -> dict:
        self.runtime.status_step()
        return decode_policy_status(self.t.messages("/vla/status")[-1])


@pytest.fixture
def live(sim_arm):
    return Harness(sim_arm, ScriptedPolicy(sim_arm), dry_run=False, instruction="stack the cups")


def test_live_commands_are_joint_trajectories_streamed_like_moveit_servo(live, sim_arm):
    live.step(60)
    commands = live.t.messages("/vla/policy_command")
    assert len(commands) >= 55 and live.t.messages("/vla/preview_command") == []
    last = commands[-1]
    assert time_to_seconds(last.header.stamp) == 0.0  # joint_trajectory_controller: start now
    assert list(last.joint_names) == list(sim_arm.joint_names)
    (point,) = last.points
    assert time_to_seconds(point.time_from_start) == pytest.approx(PERIOD)
    decoded = [decode_joint_trajectory(m) for m in commands]
    q = np.stack([d.positions[0] for d in decoded])
    np.testing.assert_allclose(q[-1], live.runtime.last_command.arm)
    # the policy ramps every joint up; the point's velocity is the command's own finite difference
    assert np.all(q[-1] > live.state[:6] + 0.02)
    np.testing.assert_allclose(decoded[-1].velocities[0], (q[-1] - q[-2]) / PERIOD, atol=1e-9)
    assert np.all(np.abs(np.diff(q, axis=0)) <= 2.0 * PERIOD + 1e-9)  # sim_arm max_velocity 2 rad/s


def test_subscriptions_use_sensor_qos_and_the_instruction_is_latched(live, sim_arm):
    for cam in sim_arm.cameras:
        assert live.t.qos[cam.topic] == SENSOR_DATA_QOS
    assert live.t.qos["/joint_states"] == SENSOR_DATA_QOS
    assert live.t.qos["/vla/instruction"] == LATCHED_QOS
    assert live.t.qos["/vla/policy_gripper_command"] == LATCHED_QOS
    assert set(live.t.services) == {"/vla_policy/set_instruction", "/vla_policy/set_paused",
                                    "/vla_policy/reset_estop", "/vla_policy/set_actuation"}


def test_side_outputs_chunk_ghost_status_and_diagnostics(live, sim_arm):
    live.step(40)
    chunk = decode_action_chunk(live.t.messages("/vla/action_chunk")[-1])
    assert chunk.names == sim_arm.action_names and chunk.horizon == 16
    assert chunk.stamp == pytest.approx(live.policy.calls[-1].stamp)
    ghost = decode_joint_state(live.t.messages("/vla/predicted_joint_states")[-1])
    assert ghost.names == sim_arm.state_names
    np.testing.assert_allclose(ghost.positions, chunk.actions[-1])  # the chunk's final waypoint
    status = live.status()
    assert status["active_source"] == "policy" and status["instruction"] == "stack the cups"
    assert status["stale_inputs"] == [] and status["fault"] == "" and not status["estop_latched"]
    assert status["inference_latency_p50"] >= 0 and status["control_rate"] == pytest.approx(100, rel=0.05)
    assert live.policy.calls[-1].instruction == "stack the cups"
    _, entries = decode_diagnostics(live.t.messages("/diagnostics")[-1])
    names = {e.name for e in entries}
    assert {"vla_policy: control loop", "vla_policy: inference", "vla_policy: message errors",
            "vla_policy: predicted path", "vla_policy: output"} <= names
    path = next(e for e in entries if e.name == "vla_policy: predicted path")
    assert path.level == 1 and "robot_description" in path.message  # no URDF: said so, markers off
    assert live.t.messages("/vla/predicted_path") == []


def test_predicted_path_is_the_fk_of_the_chunk(sim_arm):
    h = Harness(sim_arm, ScriptedPolicy(sim_arm, step=0.0), dry_run=False)
    h.state = np.zeros(7)
    h.t.inject("/robot_description", h.t.new_message("std_msgs/msg/String", data=chain_urdf(sim_arm)))
    h.step(10)
    markers = decode_marker_points(h.t.messages("/vla/predicted_path")[-1])
    (kind_a, line), (kind_b, spheres) = markers[("vla_path", 0)], markers[("vla_path", 1)]
    assert (kind_a, kind_b) == (4, 7)  # LINE_STRIP, SPHERE_LIST
    # every action is the zero configuration: the chain's tool sits 7 links of 0.1 m above the base
    np.testing.assert_allclose(line, np.tile([0.0, 0.0, 0.7], (16, 1)), atol=1e-12)
    np.testing.assert_allclose(spheres, line)
    assert h.t.messages("/vla/predicted_path")[-1].markers[0].header.frame_id == "world"  # sim_arm base_frame


def test_dry_run_previews_until_actuation_is_enabled(sim_arm):
    h = Harness(sim_arm, ScriptedPolicy(sim_arm))
    h.step(40)
    assert len(h.t.messages("/vla/preview_command")) >= 35
    assert h.t.messages("/vla/policy_command") == [] and h.t.messages("/vla/policy_gripper_command") == []
    assert len(h.t.messages("/vla/preview_gripper_command")) == 1
    preview = decode_joint_trajectory(h.t.messages("/vla/preview_command")[-1]).positions[0]
    assert np.max(np.abs(preview - h.state[:6])) > 0.02  # the preview shows where the policy would go

    reply = h.t.call("/vla_policy/set_actuation", enable=True)
    assert reply.success and reply.actuating
    n_preview = len(h.t.messages("/vla/preview_command"))
    h.step(1)
    assert len(h.t.messages("/vla/preview_command")) == n_preview
    first = decode_joint_trajectory(h.t.messages("/vla/policy_command")[0]).positions[0]
    # re-anchored: the live stream starts at the measured joints, not where the preview had drifted to
    assert np.max(np.abs(first - h.state[:6])) <= 2.0 * PERIOD + 1e-9
    assert len(h.t.messages("/vla/policy_gripper_command")) == 1  # the gripper's value, on the new topic

    reply = h.t.call("/vla_policy/set_actuation", enable=False)
    assert reply.success and not reply.actuating
    n_live = len(h.t.messages("/vla/policy_command"))
    h.step(5)
    assert len(h.t.messages("/vla/policy_command")) == n_live


def test_actuation_needs_a_fresh_joint_state(sim_arm):
    h = Harness(sim_arm, ScriptedPolicy(sim_arm))
    reply = h.t.call("/vla_policy/set_actuation", enable=True)
    assert not reply.success and not reply.actuating and "joint state" in reply.message


def test_failing_policy_holds_and_reports_the_fault(sim_arm):
    h = Harness(sim_arm, FailingPolicy(), dry_run=False)
    h.step(60)
    assert h.policy.calls >= 2  # it keeps trying at the inference rate, and keeps failing
    status = h.status()
    assert status["active_source"] == "hold"
    assert "model exception: RuntimeError: CUDA error" in status["fault"]
    held = np.stack([decode_joint_trajectory(m).positions[0] for m in h.t.messages("/vla/policy_command")])
    assert len(held) >= 55 and np.allclose(held, h.state[:6])  # holding where the robot is
    _, entries = decode_diagnostics(h.t.messages("/diagnostics")[-1])
    inference = next(e for e in entries if e.name == "vla_policy: inference")
    assert inference.level == 2 and "CUDA error" in inference.message


def test_hung_inference_is_reported_as_a_timeout_while_the_timer_keeps_ticking(sim_arm):
    entered, release = threading.Event(), threading.Event()

    class HungPolicy(ScriptedPolicy):
        def infer(self, observation, *, prefix=None):
            entered.set()
            assert release.wait(10.0)
            return super().infer(observation, prefix=prefix)

    h = Harness(sim_arm, ScriptedPolicy(sim_arm), dry_run=False)
    h.step(30)  # a plan is running
    h.runtime.policy = HungPolicy(sim_arm)

    def inference_thread() -> None:  # the runtime's inference loop, until the model hangs
        while not entered.is_set() and not release.is_set():
            if not h.runtime.inference_step():
                release.wait(0.001)

    worker = threading.Thread(target=inference_thread)
    worker.start()
    try:
        for _ in range(150):  # 1.5 s: the control timer never waits for the model
            now = h.t.advance(PERIOD)
            h.t.inject("/joint_states", joint_state_msg(h.t, sim_arm, h.state, now))
            for cam in sim_arm.cameras:
                h.t.inject(cam.topic, image_msg(h.t, 64, 64, now))
            assert h.runtime.control_step() is not None
            if not entered.is_set():
                entered.wait(0.1)  # let the worker reach the model before the clock runs on
        assert entered.is_set()
        status = h.status()
        assert status["fault"] == "inference timeout" and status["active_source"] == "hold"
    finally:
        release.set()
        worker.join(5.0)
    assert not worker.is_alive()
    h.step(30)
    assert h.status()["active_source"] == "policy"  # the next good chunk clears the fault


def test_bad_images_are_counted_not_fatal(sim_arm):
    h = Harness(sim_arm, ScriptedPolicy(sim_arm), dry_run=False)
    new = h.t.new_message
    scene = sim_arm.cameras[0].topic
    depth = image_msg(h.t, 64, 64, 100.0)
    depth.encoding = "16UC1"
    h.t.inject(scene, depth)
    short = image_msg(h.t, 64, 64, 100.0)
    short.data = short.data[:-7]
    h.t.inject(scene, short)
    h.t.inject(scene, new("sensor_msgs/msg/Image", encoding="yuv422", height=2, width=2, step=4,
                          data=np.zeros(8, np.uint8)))
    assert h.runtime.errors.counts() == {(scene, "not_color"): 1, (scene, "size_mismatch"): 1,
                                         (scene, "unknown_encoding"): 1}
    h.step(40)
    assert h.status()["active_source"] == "policy"  # good frames still make observations
    _, entries = decode_diagnostics(h.t.messages("/diagnostics")[-1])
    errors = next(e for e in entries if e.name == "vla_policy: message errors")
    assert errors.level == 1 and "3 input message(s) rejected" in errors.message
    assert (f"{scene} size_mismatch", "1") in errors.values


def test_stale_camera_holds_and_is_reported(live):
    live.step(40)
    live.cameras_on = False
    live.step(30)
    status = live.status()
    assert {"scene", "wrist"} <= set(status["stale_inputs"]) and status["active_source"] == "hold"
    ages = dict(zip(status["stale_inputs"], status["input_ages"], strict=True))
    assert ages["scene"] > 0.2  # sim_arm camera max_age


def test_gripper_is_sent_on_change_only(sim_arm):
    class Gripping(ScriptedPolicy):
        def infer(self, observation, *, prefix=None):
            chunk = super().infer(observation, prefix=prefix)
            chunk.actions[:, -1] = closed  # 3 cm less than fully open
            return chunk

    closed = sim_arm.gripper.upper - 0.03
    h = Harness(sim_arm, Gripping(sim_arm, step=0.0), dry_run=False)
    h.step(100)
    values = [float(m.data[0]) for m in h.t.messages("/vla/policy_gripper_command")]
    assert values[0] == pytest.approx(sim_arm.gripper.upper) and values[-1] == pytest.approx(closed)
    assert all(a != b for a, b in itertools.pairwise(values))
    assert len(values) < 80  # one per change while the command ramps, none while it stands still
    h.step(30)
    assert len(h.t.messages("/vla/policy_gripper_command")) == len(values)


def test_estop_holds_the_policy_without_latching_by_default(live):
    live.step(30)
    live.t.inject("/vla/estop", live.t.new_message("std_msgs/msg/Bool", data=True))
    live.step(5)
    assert live.status()["active_source"] == "hold"
    live.t.inject("/vla/estop", live.t.new_message("std_msgs/msg/Bool", data=False))
    live.step(20)
    assert live.status()["active_source"] == "policy"  # the mux owns the latch


def test_latched_estop_needs_the_reset_service(sim_arm):
    h = Harness(sim_arm, ScriptedPolicy(sim_arm), dry_run=False, latch_estop=True)
    h.step(30)
    h.t.inject("/vla/estop", h.t.new_message("std_msgs/msg/Bool", data=True))
    h.step(2)
    h.t.inject("/vla/estop", h.t.new_message("std_msgs/msg/Bool", data=False))
    h.step(20)
    status = h.status()
    assert status["estop_latched"] and status["active_source"] == "hold"
    reply = h.t.call("/vla_policy/reset_estop")
    assert reply.success
    h.step(30)
    assert h.status()["active_source"] == "policy"


def test_instruction_from_topic_and_service_and_pause(live):
    live.t.inject("/vla/instruction", live.t.new_message("std_msgs/msg/String", data="open the drawer"))
    live.step(20)
    assert live.policy.calls[-1].instruction == "open the drawer"
    reply = live.t.call("/vla_policy/set_instruction", instruction="close the drawer")
    assert reply.success
    live.step(20)
    assert live.policy.calls[-1].instruction == "close the drawer"
    assert live.t.call("/vla_policy/set_paused", paused=True).success
    calls = len(live.policy.calls)
    live.step(20)
    status = live.status()
    assert status["paused"] and status["active_source"] == "hold" and len(live.policy.calls) == calls
    assert live.t.call("/vla_policy/set_paused", paused=False).success
    live.step(20)
    assert live.status()["active_source"] == "policy" and len(live.policy.calls) > calls


def test_compressed_cameras_are_decoded_and_resized_for_the_model(sim_arm):
    import dataclasses

    cams = tuple(dataclasses.replace(c, compressed=True) for c in sim_arm.cameras)
    emb = dataclasses.replace(sim_arm, cameras=cams)
    h = Harness(emb, ScriptedPolicy(emb), dry_run=False)
    assert h.t.subscribers[cams[0].topic][0] == "sensor_msgs/msg/CompressedImage"
    for _ in range(20):
        now = h.t.advance(PERIOD)
        h.t.inject("/joint_states", joint_state_msg(h.t, emb, h.state, now))
        for cam in cams:  # 120x160 frames for a 128x128 model input
            h.t.inject(cam.topic, encode_compressed_image(h.t.new_message, np.full((120, 160, 3), 90, np.uint8),
                                                          stamp=now))
        h.runtime.inference_step()
    obs = h.policy.calls[-1]
    assert {name: img.shape for name, img in obs.images.items()} == {"scene": (128, 128, 3), "wrist": (128, 128, 3)}


def test_twist_robot_streams_twists_in_the_action_frame(repo_root):
    from vla_policy_node.spec import load_embodiment

    ur5e = resolve_controller(load_embodiment(repo_root / "config" / "robots" / "ur5e.yaml"))

    class Forward(ScriptedPolicy):
        def infer(self, observation, *, prefix=None):
            actions = np.zeros((16, 7))
            actions[:, 0] = 0.005  # 5 mm per 0.1 s step: 5 cm/s along x
            return type(super().infer(observation, prefix=prefix))(observation.stamp, 0.1, actions,
                                                                   self.embodiment.action_names)

    h = Harness(ur5e, Forward(ur5e), dry_run=False)
    h.image_size = (32, 32)
    h.step(320)  # the hand-over from hold ramps the twist up (mux.twist_ramp_time and the executor's blend)
    twists = h.t.messages("/vla/policy_command")
    assert twists and twists[-1].__msgtype__ == "geometry_msgs/msg/TwistStamped"
    assert twists[-1].header.frame_id == "base_link"
    assert twists[-1].twist.linear.x == pytest.approx(0.05, rel=1e-6)
    assert h.policy.calls[-1].images["scene"].shape == (224, 224, 3)  # fit_image to the model's size


def test_the_models_special_tokens_are_refused_in_instructions(sim_arm):
    """Issue 13, finding 4, end to end: a tiny VLA exposes its tokenizer's special tokens; the node refuses an
    instruction carrying one (service reply and status), holds, and takes a clean one."""
    import torch

    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.spec.normalization import normalization_from_limits

    torch.manual_seed(0)
    policy = VLAPolicy(build_tiny_vla([sim_arm]), normalization_from_limits(sim_arm), sim_arm)
    assert "<|image_pad|>" in policy.special_tokens
    h = Harness(sim_arm, ScriptedPolicy(sim_arm), dry_run=False, instruction="stack the cups")
    h.runtime.loop.set_special_tokens(policy.special_tokens)
    h.step(30)
    reply = h.t.call("/vla_policy/set_instruction", instruction="stack the <|image_pad|> cups")
    assert not reply.success and "<|image_pad|>" in reply.message
    h.step(5)
    status = h.status()
    assert status["active_source"] == "hold" and status["instruction"] == ""
    assert any("instruction refused" in r for r in status["hold_reasons"])
    calls = len(h.policy.calls)
    h.step(20)
    assert len(h.policy.calls) == calls  # no inference on a refused instruction
    assert h.t.call("/vla_policy/set_instruction", instruction="stack the cups").success
    h.step(30)
    assert h.status()["active_source"] == "policy" and h.policy.calls[-1].instruction == "stack the cups"


def test_long_instructions_are_refused_and_never_logged_whole(live, caplog):
    import logging

    huge = "word " * 20000
    with caplog.at_level(logging.DEBUG):
        live.t.inject("/vla/instruction", live.t.new_message("std_msgs/msg/String", data=huge))
        live.step(5)
    assert caplog.records and max(len(r.getMessage()) for r in caplog.records) < 400
    assert any("too long" in r.getMessage() for r in caplog.records)
    status = live.status()
    assert status["instruction"] == "" and status["active_source"] == "hold"
