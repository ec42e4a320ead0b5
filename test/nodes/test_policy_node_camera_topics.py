"""The policy node's `camera_topics` parameter is applied by the node itself (the launch wiring is tested in
test/bringup): the cameras it names are subscribed on their topics, frames from those topics reach the model under
the camera names the checkpoint was trained with, and a camera the checkpoint needs that the mapping leaves out
fails the configure transition with the camera and the mapping that supplies it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from test.nodes.fakes import ServiceTransport, joint_state_msg, mid_state
from vla_policy_node.msgs import encode_image
from vla_policy_node.nodes import policy_node

FRONT = "/front_camera/image_raw"  # a topic the robot YAML does not name


def configured(repo_root: Path, checkpoint: Path, camera_topics: str) -> tuple[policy_node.PolicyNode, str]:
    args = policy_node.parse_args(["--robot-config", str(repo_root / "config/robots/sim_arm.yaml"),
                                   "--checkpoint", str(checkpoint), "--inference", "thread",
                                   "--torch-threads", "1", "--no-dry-run"])
    node = policy_node.PolicyNode(args)
    transport = ServiceTransport(clock=100.0)
    transport.node_name = policy_node.NODE_NAME
    node.attach(transport)
    assert node.settings["camera_topics"] == ""  # the command line's default ...
    node.settings["camera_topics"] = camera_topics  # ... and the parameter's value, as `ros2 launch` sets it
    return node, node.configure()


def test_cameras_are_read_from_the_topics_the_parameter_names(repo_root, sim_arm, tiny_checkpoint):
    node, error = configured(repo_root, tiny_checkpoint, f"scene:{FRONT},wrist:{FRONT}")
    assert error == ""
    try:
        t = node.transport
        assert isinstance(t, ServiceTransport) and node.runtime is not None
        assert [(c.name, c.topic) for c in node.embodiment.cameras] == [("scene", FRONT), ("wrist", FRONT)]
        assert len(t.callbacks[FRONT]) == 2  # one subscription per camera, both on the mapped topic
        assert not {c.topic for c in sim_arm.cameras} & set(t.subscribers)  # the YAML's topics are not read
        seen = []
        infer = node.runtime.policy.infer

        def spy(observation, **kwargs):
            seen.append(observation)
            return infer(observation, **kwargs)

        node.runtime.policy.infer = spy
        frame = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
        state = mid_state(sim_arm)
        node.runtime.loop.resume()  # what activate does, without its threads: the steps run here
        for _ in range(20):
            now = t.advance(0.01)
            t.inject(sim_arm.joint_states.topic, joint_state_msg(t, sim_arm, state, now))
            t.inject(FRONT, encode_image(t.new_message, frame, "rgb8", stamp=now))
            ran = node.runtime.inference_step()
            node.runtime.control_step()
            if ran:
                break
        assert seen, "no inference ran on the frames of the mapped topic"
        assert sorted(seen[-1].images) == ["scene", "wrist"]
        for image in seen[-1].images.values():
            np.testing.assert_array_equal(image, frame)
        assert node.runtime.inferences == 1  # the chunk came back and was published
    finally:
        node.shutdown()


def test_a_camera_the_mapping_leaves_out_fails_configure_with_the_mapping_to_use(repo_root, tiny_checkpoint):
    node, error = configured(repo_root, tiny_checkpoint, f"scene:{FRONT}")
    assert node.runtime is None
    assert "no camera ['wrist']" in error and f"camera_topics:=scene:{FRONT},wrist:{FRONT}" in error, error




def test_a_configure_that_fails_after_the_model_loaded_stops_its_inference_process(repo_root, tiny_checkpoint,
                                                                                   monkeypatch):
    started = []

    class Recorded(policy_node.ProcessPolicy):
        def start(self, timeout=None):
            super().start(timeout)
            started.append(self)

    def refusing_runtime(*args, **kwargs):
        raise ValueError("the runtime refuses this configuration")  # as PolicyRuntime does for a bad setting

    monkeypatch.setattr(policy_node, "ProcessPolicy", Recorded)
    monkeypatch.setattr(policy_node, "PolicyRuntime", refusing_runtime)
    args = policy_node.parse_args(["--robot-config", str(repo_root / "config/robots/sim_arm.yaml"),
                                   "--checkpoint", str(tiny_checkpoint), "--inference", "process",
                                   "--torch-threads", "1"])
    node = policy_node.PolicyNode(args)
    transport = ServiceTransport(clock=100.0)
    transport.node_name = policy_node.NODE_NAME
    node.attach(transport)
    assert node.configure() == "the runtime refuses this configuration" and node.runtime is None
    (policy,) = started  # the model had loaded in its process
    assert policy._closed and not policy.alive  # stopped by the failed configure, not left to the GC
