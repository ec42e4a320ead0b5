"""Datasets written by the real `lerobot` library (0.6.1, in a side environment: README "LeRobot
compatibility"). `test/fixtures/lerobot/video_dataset` is lerobot's own output, committed as written
(`make_fixture.py`), with `expected_frames.npz`: every frame as lerobot's LeRobotDataset decoded it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_dataset import LeRobotSamples

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot"


def test_a_lerobot_video_dataset_matches_lerobot_frame_by_frame():
    expected = np.load(FIXTURE / "expected_frames.npz")
    samples = LeRobotSamples(FIXTURE / "video_dataset", split=None, horizon=4)
    assert len(samples) == len(expected["images"]) == 21 and samples.cameras == {"observation.images.top": "top"}
    assert samples.tag == "toy" and samples.episodes == [0, 1]
    for i in range(len(samples)):
        sample = samples[i]
        np.testing.assert_array_equal(sample.images["top"], expected["images"][i])
        np.testing.assert_array_equal(sample.state, expected["states"][i])
    assert samples[11].instruction == "move the bar 0" and samples[12].instruction == "move the bar 1"
    assert samples[10].valid.tolist() == [True, True, False, False]  # episode 0 has 12 frames
    norm = samples.normalization()["toy"]
    assert norm.action.mode == "quantile"


def test_a_camera_the_checkpoint_needs_is_named_with_the_mapping():
    with pytest.raises(fmt.DatasetFormatError, match=r"\['scene'\] are required .*observation.images.top"):
        LeRobotSamples(FIXTURE / "video_dataset", split=None, require_cameras=["scene"])
    mapped = LeRobotSamples(FIXTURE / "video_dataset", split=None, require_cameras=["scene"],
                            cameras={"observation.images.top": "scene"})
    assert mapped[3].images["scene"].shape == (48, 64, 3)
