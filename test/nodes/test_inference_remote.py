"""The DDS inference boundary (RemotePolicy <-> InferenceServer) on an in-process bus: the server picks the
frames the control node's sync chose by stamp, answers with the chunk, and a server that goes away is the
watchdog's hold with the reason in the status until a server answers again."""

from __future__ import annotations

import time

import numpy as np
import pytest

from test.nodes.fakes import ScriptedPolicy, mid_state
from vla_policy_node.inference.remote import RemoteInferenceError, RemotePolicy
from vla_policy_node.msgs import decode_policy_status, encode_image, encode_joint_state
from vla_policy_node.msgs.inference import decode_inference_request, encode_inference_request
from vla_policy_node.msgs.joints import decode_joint_trajectory
from vla_policy_node.nodes.inference_server import InferenceServer
from vla_policy_node.nodes.policy_runtime import PolicyNodeParams, PolicyRuntime
from vla_policy_node.spec.types import ActionChunk, RtcPrefix
from vla_policy_node.transport.inprocess import InProcessBus

PERIOD = 0.01


class FrameSumPolicy(ScriptedPolicy):
    """Scripted chunk; its first action holds the pixel sum of each native frame the server handed over."""

    def infer(self, observation, *, prefix=None):
        self.prefixes = [*getattr(self, "prefixes", []), prefix]
        chunk = super().infer(observation, prefix=prefix)
        actions = chunk.actions.copy()
        for i, cam in enumerate(self.embodiment.cameras):
            actions[0, i] = observation.images.native(cam.name).sum(dtype=np.int64)
        return ActionChunk(chunk.stamp, chunk.dt, actions, chunk.names)


class Rig:
    """A driver (cameras + joints), a policy node with RemotePolicy and an inference server, on one bus."""

    def __init__(self, emb, timeout: float = 0.5) -> None:
        self.emb = emb
        self.bus = InProcessBus(clock=100.0)
        self.driver = self.bus.transport("driver")
        self.node_t = self.bus.transport("vla_policy")
        self.state = mid_state(emb)
        self.joints = self.driver.publisher(emb.joint_states.topic, "sensor_msgs/msg/JointState")
        self.cams = [self.driver.publisher(c.topic, "sensor_msgs/msg/Image") for c in emb.cameras]
        self.remote = RemotePolicy(self.node_t, emb, timeout=timeout)
        self.runtime = PolicyRuntime(self.node_t, emb, self.remote, PolicyNodeParams(dry_run=False))
        self.server: InferenceServer | None = None
        self.step_count = 0
        self.value = 10

    def start_server(self, policy: ScriptedPolicy | None = None) -> ScriptedPolicy:
        policy = policy or FrameSumPolicy(self.emb)
        self.server = InferenceServer(self.bus.transport(f"vla_inference_{self.step_count}"), self.emb, policy)
        self.server.start()
        return policy

    def stop_server(self) -> None:
        assert self.server is not None
        self.server.close()
        self.server.transport.close()
        self.server = None

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.bus.clock += PERIOD
            now = self.bus.clock
            self.joints.publish(encode_joint_state(self.driver.new_message, self.emb.state_names, self.state,
                                                   stamp=now))
            if self.step_count % 3 == 0:
                self.value = (self.value + 1) % 200
                for pub in self.cams:
                    pub.publish(encode_image(self.driver.new_message, np.full((48, 64, 3), self.value, np.uint8),
                                             "rgb8", stamp=now))
            self.step_count += 1
            self.runtime.inference_step()
            self.runtime.control_step()


def test_request_round_trip_keeps_stamps_state_and_prefix():
    from vla_policy_node.msgs import rosbags_factory

    prefix = RtcPrefix(np.arange(6.0).reshape(3, 2), np.array([1.0, 0.5, 0.0]))
    msg = encode_inference_request(rosbags_factory(), 1_700_000_000.123456, 7, {"scene": 1_700_000_000.1, "w": 2.5},
                                   ["a", "b"], np.array([0.25, -1.0]), "reach", prefix)
    data = decode_inference_request(msg)
    assert data.sequence == 7 and data.state_names == ("a", "b") and data.instruction == "reach"
    assert data.stamp == pytest.approx(1_700_000_000.123456, abs=1e-6)
    assert data.camera_stamps["scene"] == pytest.approx(1_700_000_000.1, abs=1e-6) and data.camera_stamps["w"] == 2.5
    np.testing.assert_array_equal(data.state, [0.25, -1.0])
    np.testing.assert_array_equal(data.prefix.actions, prefix.actions)
    np.testing.assert_array_equal(data.prefix.weights, prefix.weights)


def test_the_server_answers_with_the_frames_the_sync_chose_and_a_lost_server_holds(sim_arm):
    rig = Rig(sim_arm)
    status_msgs: list = []
    rig.node_t.subscribe("/vla/status", "vla_msgs/msg/PolicyStatus", status_msgs.append)
    commands: list = []
    rig.driver.subscribe("/vla/policy_command", "trajectory_msgs/msg/JointTrajectory", commands.append)

    def status() -> dict:
        rig.runtime.status_step()
        return decode_policy_status(status_msgs[-1])

    policy = rig.start_server()
    try:
        rig.step(60)
        assert rig.runtime.inferences >= 3 and status()["active_source"] == "policy"
        assert rig.server is not None and rig.server.served == rig.runtime.inferences == len(policy.calls)
        rig.stop_server()
        start = time.monotonic()
        for _ in range(400):
            rig.step(1)
            if "no chunk from the inference server" in status()["fault"]:
                break
        assert "no chunk from the inference server on /vla/inference/chunk" in status()["fault"]
        assert status()["active_source"] == "hold" and time.monotonic() - start < 30
        rig.state[:6] += 0.2  # the arm is elsewhere when the server comes back
        held_from = len(commands)
        # a plain plan this time: the frame sums in the first action are no motion to follow
        rig.start_server(ScriptedPolicy(sim_arm))
        rig.step(300)
        assert status()["active_source"] == "policy" and status()["fault"] == ""
        q = np.stack([decode_joint_trajectory(m).positions[0] for m in commands])
        max_step = max(j.max_velocity for j in sim_arm.joints) * PERIOD
        assert np.abs(np.diff(q, axis=0)).max() <= max_step + 1e-9  # no jump on the way back
        assert np.all(q[-1] > q[held_from - 1] + 0.05)  # and it moves toward the new plan
    finally:
        if rig.server is not None:
            rig.stop_server()
        rig.runtime.close()


def test_frames_are_picked_by_stamp(sim_arm):
    rig = Rig(sim_arm)
    policy = rig.start_server()
    try:
        rig.step(40)
        assert len(policy.calls) >= 3
        for obs in policy.calls:
            # frames are uniform, value v, published with the joint state of the same stamp: the server must hand
            # over the very frames of the stamps the node's sync chose (not the newest it has)
            values = {c.name: obs.images.native(c.name) for c in sim_arm.cameras}
            assert all(np.ptp(v) == 0 for v in values.values())
            assert values["scene"][0, 0, 0] == values["wrist"][0, 0, 0]
            assert obs.meta["stamps"]["scene"] == pytest.approx(obs.stamp, abs=1e-6)
            k = round((obs.stamp - 100.0) / PERIOD) - 1  # the step that published this frame
            assert values["scene"][0, 0, 0] == (10 + k // 3 + 1) % 200
    finally:
        rig.stop_server()
        rig.runtime.close()


def test_no_server_is_a_clear_error(sim_arm):
    from vla_policy_node.spec.types import Observation

    rig = Rig(sim_arm, timeout=0.05)
    try:
        obs = Observation(1.0, {c.name: np.zeros((4, 4, 3), np.uint8) for c in sim_arm.cameras}, rig.state, "",
                          {"stamps": {c.name: 1.0 for c in sim_arm.cameras}})
        with pytest.raises(RemoteInferenceError, match="no chunk from the inference server"):
            rig.remote.infer(obs)
        with pytest.raises(RemoteInferenceError, match="no stamp for camera 'scene'"):
            rig.remote.infer(Observation(1.0, obs.images, rig.state, ""))
    finally:
        rig.runtime.close()
