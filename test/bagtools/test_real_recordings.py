"""Conversion of recordings as real robots make them (Franka-like: finger joints, shuffled joint order, JPEG and
raw cameras, dropouts, late and reordered messages, cameras that start late or end early, split files, no
marks): nothing crashes, nothing is silently wrong, and every failure is one line naming the bag, topic and time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_policy_node.bagtools import dataset as dataset_cli
from vla_policy_node.bagtools.dataset import ConversionConfig, ConversionError, convert_bags
from vla_policy_node.bagtools.synthetic import ReachPolicy, RecordingFaults, Session, write_demonstration_bag
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.transport.bag import BagReader

PNG = ConversionConfig(val_fraction=0, image_format="png")  # lossless: frames compare exactly
FRANKA = Session(episodes=1, episode_s=4.0, gap_s=0.5, image_size=(48, 64), noise=4)
LOSSLESS_FAULTS = RecordingFaults(late_every=3, late_s=0.15, swap_joint_states_every=7,
                                  extra_joints=("fr3_finger_joint2",), shuffle_joints=True, split_every_s=1.5)


def franka_bag(path, franka, faults=None, **session):
    session = dataclasses.replace(FRANKA, faults=faults or RecordingFaults(), **session)
    return write_demonstration_bag(path, franka, ReachPolicy(franka), session)


def frames(dataset):
    """Every frame of a dataset as (bag time, state, action, images)."""
    samples = LeRobotSamples(dataset, split=None, horizon=1)
    episodes = {e["episode_index"]: e for e in pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet")
                .to_pylist()}
    out = {}
    for i in range(len(samples)):
        episode = episodes[int(samples.episode_index[i])]
        out[round(episode["vla/source_start_s"] + samples.frame_in_episode[i] * 0.1, 3)] = samples[i]
    return out


def test_faults_that_lose_nothing_give_the_clean_dataset(tmp_path, franka):
    clean = franka_bag(tmp_path / "clean", franka)
    faulty = franka_bag(tmp_path / "faulty", franka, LOSSLESS_FAULTS)
    with BagReader(faulty) as reader:
        assert len(list(faulty.glob("*.mcap"))) == 4  # 4.5 s split into 1.5 s files, one bag
        joint_stamps = [m.msg.header.stamp.sec + m.msg.header.stamp.nanosec * 1e-9
                        for m in reader.messages(["/joint_states"])]
        assert np.any(np.diff(joint_stamps) < 0)  # received out of stamp order
        names = [tuple(m.msg.name) for m in reader.messages(["/joint_states"])]
        assert len(set(names)) > 1 and all("fr3_finger_joint2" in n for n in names)
    a = convert_bags([clean], franka, tmp_path / "a", PNG)
    b = convert_bags([faulty], franka, tmp_path / "b", PNG)
    assert a.frames == b.frames == 40 and b.warnings == a.warnings
    fa, fb = frames(tmp_path / "a"), frames(tmp_path / "b")
    assert fa.keys() == fb.keys()
    for t in fa:
        np.testing.assert_array_equal(fa[t].state, fb[t].state)
        np.testing.assert_array_equal(fa[t].actions, fb[t].actions)
        for camera in ("scene", "wrist"):
            np.testing.assert_array_equal(fa[t].images[camera], fb[t].images[camera])


@pytest.mark.parametrize("marks", [True, False])
def test_dropout_splits_the_episode_and_keeps_the_rest(tmp_path, franka, marks):
    """A 300 ms scene-camera dropout (longer than its 0.2 s max age), a JPEG scene camera beside a raw wrist
    camera that starts late and ends early: two segments whose frames are the clean recording's frames."""
    cameras = RecordingFaults(compressed_cameras=("scene",), extra_joints=("fr3_finger_joint2",),
                              shuffle_joints=True)
    faults = dataclasses.replace(cameras, dropouts=(("scene", 2.0, 2.3),), camera_windows=(("wrist", 0.3, 3.65),))
    clean = franka_bag(tmp_path / "clean", franka, cameras, marks=marks)
    bag = franka_bag(tmp_path / "bag", franka, faults, marks=marks)
    reference = convert_bags([clean], franka, tmp_path / "ref", PNG)
    summary = convert_bags([bag], franka, tmp_path / "out", PNG)
    assert summary.episodes == 2 and reference.episodes == 1
    assert any("no image of camera 'scene' on /camera/camera/color/image_raw/compressed at t=1700000002.200"
               in w and "segment 1" in w for w in summary.warnings)
    episodes = pq.read_table(tmp_path / "out/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["vla/source_segment"] for e in episodes] == [0, 1]
    assert episodes[0]["tasks"] == episodes[1]["tasks"]
    ref, got = frames(tmp_path / "ref"), frames(tmp_path / "out")
    t0 = 1_700_000_000.0
    assert min(got) == round(t0 + 0.3, 3)  # the wrist camera's first frame
    assert max(got) == round(t0 + 3.8, 3)  # the wrist camera ended early: its last frame (3.6 s) + max age
    assert not [t for t in got if t0 + 2.2 <= t < t0 + 2.3]  # the dropout (scene frames > 0.2 s old)
    assert len(got) > 0.7 * len(ref)
    last_before_dropout = round(t0 + 1.9, 3)
    for t, sample in got.items():
        np.testing.assert_array_equal(sample.state, ref[t].state)
        wrist_ended = t > t0 + 3.65  # frames after the wrist camera's last one (3.6 s) hold it
        np.testing.assert_array_equal(sample.images["wrist"], ref[round(t0 + 3.6, 3) if wrist_ended else t]
                                      .images["wrist"])
        held = t0 + 2.0 <= t < t0 + 2.3  # within max age of the last frame before the dropout: that frame
        np.testing.assert_array_equal(sample.images["scene"], ref[last_before_dropout if held else t].images["scene"])
    if not marks:
        assert any("segment 2" in w for w in summary.warnings)  # the wrist camera ends before the bag


def test_gap_error_is_one_line_naming_bag_topic_and_time(tmp_path, franka, capsys):
    bag = franka_bag(tmp_path / "bag", franka, RecordingFaults(dropouts=(("wrist", 1.0, 1.5),)), marks=False)
    with pytest.raises(ConversionError, match=r"/bag: no image of camera 'wrist' on /wrist_camera/\S+ at t=17000"):
        convert_bags([bag], franka, tmp_path / "out", ConversionConfig(on_gap="error"))
    assert not (tmp_path / "out").exists()
    args = [str(bag), "--robot", "franka_fr3", "-o", str(tmp_path / "cli"), "--no-progress", "--on-gap", "error"]
    assert dataset_cli.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(bag) in err and "/wrist_camera/camera/color/image_raw" in err and "t=1700000001.200" in err
    assert dataset_cli.main([*args, "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    truncated = convert_bags([bag], franka, tmp_path / "trunc", ConversionConfig(on_gap="truncate"))
    assert truncated.episodes == 1 and truncated.frames == 12  # 0.0 .. 1.1 s (0.9 s frame + max age); no more
