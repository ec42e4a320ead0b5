"""Topic remaps and camera subsets (`--camera-topics NAME:TOPIC,...`, `--remap FROM:=TO`) for convert, replay,
record and the node; a checkpoint or a bag lacking a camera names it and the mapping that supplies it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test.bagtools.test_real_recordings import franka_bag
from vla_policy_node.bagtools import dataset as dataset_cli
from vla_policy_node.bagtools import replay_cli
from vla_policy_node.bagtools.synthetic import RecordingFaults
from vla_policy_node.spec.embodiment import ConfigError
from vla_policy_node.spec.remap import parse_camera_topics, remap_embodiment
from vla_policy_node.train.lerobot_dataset import LeRobotSamples

SCENE = "/camera/camera/color/image_raw"


def test_camera_topics_pick_order_and_share_topics(franka):
    robot = remap_embodiment(franka, f"wrist:{SCENE}/compressed,scene:{SCENE}",
                             ["/joint_states:=/franka/joint_states"])
    assert [(c.name, c.topic, c.compressed) for c in robot.cameras] == [
        ("wrist", f"{SCENE}/compressed", True), ("scene", SCENE, False)]
    assert robot.joint_states.topic == "/franka/joint_states" and robot.camera("wrist").height == 224
    only_scene = remap_embodiment(franka, f"scene:{SCENE}")
    assert only_scene.camera_names == ("scene",)
    front = remap_embodiment(franka, "front:/front/image_raw")  # a camera the YAML lacks: the first one's size
    assert front.camera("front").width == franka.cameras[0].width
    with pytest.raises(ConfigError, match="expected NAME:TOPIC"):
        parse_camera_topics("scene=/x")
    with pytest.raises(ConfigError, match=r"remap \['/nope'\]: franka_fr3 uses no such topic"):
        remap_embodiment(franka, remaps=["/nope:=/x"])
    with pytest.raises(ConfigError, match="not a valid ROS topic"):
        remap_embodiment(franka, "scene:not a topic")


@pytest.fixture(scope="module")
def no_wrist_bag(tmp_path_factory, franka):
    """A Franka without a wrist camera: JPEG scene camera with a 300 ms dropout, finger joints, shuffled order."""
    faults = RecordingFaults(omit_cameras=("wrist",), compressed_cameras=("scene",), dropouts=(("scene", 2.0, 2.3),),
                             extra_joints=("fr3_finger_joint2",), shuffle_joints=True)
    return franka_bag(tmp_path_factory.mktemp("nowrist") / "bag", franka, faults)


def test_a_missing_wrist_camera_fed_from_the_scene_camera_converts(tmp_path, no_wrist_bag, capsys):
    args = [str(no_wrist_bag), "--robot", "franka_fr3", "--no-progress", "--image-format", "png"]
    assert dataset_cli.main([*args, "-o", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "camera 'wrist'" in err and f"--camera-topics scene:{SCENE}/compressed,wrist:{SCENE}/compressed" in err
    mapping = f"scene:{SCENE}/compressed,wrist:{SCENE}/compressed"
    assert dataset_cli.main([*args, "-o", str(tmp_path / "ds"), "--camera-topics", mapping]) == 0
    samples = LeRobotSamples(tmp_path / "ds", split=None, horizon=1)
    assert len(samples) > 30 and set(samples.cameras.values()) == {"scene", "wrist"}
    for i in (0, len(samples) // 2, len(samples) - 1):
        np.testing.assert_array_equal(samples[i].images["wrist"], samples[i].images["scene"])


def test_replay_and_checkpoint_name_the_missing_camera_and_its_mapping(tmp_path, franka, no_wrist_bag, capsys):
    import torch

    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.spec.normalization import normalization_from_limits

    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_tiny_vla([franka]), normalization_from_limits(franka), tmp_path / "ckpt")
    with pytest.raises(ValueError, match=rf"no camera \['wrist'\].*--camera-topics scene:{SCENE},wrist:{SCENE} "
                                         rf"\(launch: camera_topics:=scene:{SCENE},wrist:{SCENE}\)"):
        VLAPolicy.from_checkpoint(checkpoint, remap_embodiment(franka, f"scene:{SCENE}"))
    args = [str(no_wrist_bag), "--robot", "franka_fr3", "--checkpoint", str(checkpoint), "--no-progress",
            "--latency", "0.05"]
    assert replay_cli.main([*args, "-o", str(tmp_path / "refused")]) == 2
    assert "--camera-topics" in capsys.readouterr().err
    mapping = f"scene:{SCENE}/compressed,wrist:{SCENE}/compressed"
    assert replay_cli.main([*args, "-o", str(tmp_path / "report"), "--camera-topics", mapping]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["complete"] and report["counts"]["inferences"] >= 10 and np.isfinite(report["chunk_error"]["mae"])


def test_the_franka_like_case_converts_and_replays(tmp_path, franka, capsys):
    """Issue 15's Franka: no wrist camera, the scene RealSense recorded as JPEG and raw streams with a 300 ms
    dropout on both, a second finger joint, joint order shuffled per message. The wrist camera is fed from the
    scene camera's raw stream, the scene from its JPEG stream: the bag converts (episode split at the dropout) and
    a two-camera checkpoint replays it with that mapping."""
    import torch

    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.spec.normalization import normalization_from_limits

    faults = RecordingFaults(omit_cameras=("wrist",), compressed_cameras=("scene",), raw_too=("scene",),
                             dropouts=(("scene", 2.0, 2.3),), extra_joints=("fr3_finger_joint2",),
                             shuffle_joints=True)
    bag = franka_bag(tmp_path / "bag", franka, faults)
    mapping = f"scene:{SCENE}/compressed,wrist:{SCENE}"
    args = [str(bag), "--robot", "franka_fr3", "--no-progress", "--image-format", "png", "--camera-topics", mapping]
    assert dataset_cli.main([*args, "-o", str(tmp_path / "ds")]) == 0
    samples = LeRobotSamples(tmp_path / "ds", split=None, horizon=1)
    assert len(samples) > 30 and len(set(samples.episode_index.tolist())) == 2  # split at the dropout
    for i in (0, len(samples) // 2, len(samples) - 1):
        raw, jpeg = samples[i].images["wrist"].astype(float), samples[i].images["scene"].astype(float)
        assert raw.shape == jpeg.shape and not np.array_equal(raw, jpeg)  # two streams, one lossy ...
        assert 10 * np.log10(255.0 ** 2 / np.mean((raw - jpeg) ** 2)) > 30  # ... of the same frame (PSNR dB)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_tiny_vla([franka]), normalization_from_limits(franka), tmp_path / "ckpt")
    replay = [str(bag), "--robot", "franka_fr3", "--checkpoint", str(checkpoint), "--no-progress", "--latency",
              "0.05", "--camera-topics", mapping, "-o", str(tmp_path / "report")]
    assert replay_cli.main(replay) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["complete"] and report["counts"]["inferences"] >= 10 and np.isfinite(report["chunk_error"]["mae"])
