"""Bags -> LeRobot v3 dataset: layout and schema, episodes at the marks, resampled values, split and stats, the
reader the trainer uses, and refusals (missing topics, corrupt bags) that leave no dataset behind."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test.bagtools.helpers import demo_bag, drop_topic, humble_layout
from vla_policy_node.bagtools import dataset as dataset_cli
from vla_policy_node.bagtools.dataset import ConversionConfig, ConversionError, convert_bags
from vla_policy_node.msgs import decode_image
from vla_policy_node.spec.images import fit_image
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.transport.bag import read_bag


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sim_arm, mcap_bag):
    out = tmp_path_factory.mktemp("ds") / "demos"
    convert_bags([mcap_bag], sim_arm, out, ConversionConfig(val_fraction=0.5, image_format="png"))
    return out


def test_layout_and_info_follow_lerobot_v3(dataset, sim_arm):
    files = sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet",
                     "meta/info.json", "meta/stats.json", "meta/tasks.parquet", "meta/vla.json"]
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["robot_type"] == "sim_arm"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["splits"] == {"train": "0:1", "val": "1:2"} and info["total_episodes"] == 2
    assert info["total_tasks"] == 2 and info["video_path"] is None
    features = info["features"]
    assert features["observation.images.scene"] == {"dtype": "image", "shape": [128, 128, 3],
                                                    "names": ["height", "width", "channels"]}
    assert features["observation.state"]["names"] == list(sim_arm.state_names)
    assert features["action"] == {"dtype": "float32", "shape": [7], "names": list(sim_arm.action_names)}
    assert set(fmt.DEFAULT_FEATURES) <= set(features)
    schema = pq.read_schema(dataset / "data/chunk-000/file-000.parquet")
    state_type = schema.field("observation.state").type
    assert pa.types.is_fixed_size_list(state_type)
    assert (state_type.list_size, state_type.value_type) == (7, pa.float32())
    assert str(schema.field("observation.images.wrist").type) == "struct<bytes: binary, path: string>"
    assert schema.field("index").type == "int64" and schema.field("timestamp").type == "float"
    assert fmt.read_tasks(dataset) == ["reach the red block", "reach the blue block"]


def test_episodes_table_and_stats(dataset):
    episodes = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == [20, 20]  # 2 s episodes at 10 fps
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == [(0, 20), (20, 40)]
    assert episodes[1]["tasks"] == ["reach the blue block"] and episodes[1]["vla/split"] == "val"
    assert episodes[0]["stats/observation.images.scene/mean"][0] == [pytest.approx(
        episodes[0]["stats/observation.images.scene/mean"][0][0])]  # [3][1][1]
    assert len(episodes[0]["stats/action/q99"]) == 7 and episodes[0]["stats/action/count"] == [20]
    stats = json.loads((dataset / "meta/stats.json").read_text())
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert stats["action"]["count"] == [20]  # train split only
    assert np.array(stats["observation.images.scene"]["std"]).shape == (3, 1, 1)
    assert stats["action"]["mean"] == pytest.approx(episodes[0]["stats/action/mean"])


def test_frames_hold_the_recorded_values(dataset, sim_arm, mcap_bag):
    samples = LeRobotSamples(dataset, split=None, horizon=16)
    first = samples[0]
    assert first.instruction == "reach the red block" and first.tag == "sim_arm"
    # the arm tracks its commands exactly, and a ReachPolicy plan starts where the arm is: command == state;
    # the next frames' actions are the plan's next steps
    np.testing.assert_allclose(samples[5].actions[0], samples[5].state, atol=1e-6)
    np.testing.assert_allclose(samples[5].actions[1:6], [samples[i].state for i in range(6, 11)], atol=1e-6)
    # frame 7's image is the camera frame stamped at its time, resized as the node resizes it
    messages = [m for m in read_bag(mcap_bag, ["/scene_camera/image_raw"])]
    t0 = messages[0].msg.header.stamp.sec + messages[0].msg.header.stamp.nanosec * 1e-9
    seventh = next(m for m in messages if abs(m.msg.header.stamp.sec + m.msg.header.stamp.nanosec * 1e-9
                                              - t0 - 0.7) < 1e-3)
    np.testing.assert_array_equal(samples[7].images["scene"], fit_image(decode_image(seventh.msg),
                                                                         sim_arm.camera("scene")))
    last = samples[19]  # an episode's last frame: one real action, the rest padding
    assert last.valid.tolist() == [True] + [False] * 15 and np.all(last.actions == last.actions[0])


def test_splits_and_normalization(dataset, sim_arm):
    train, val = LeRobotSamples(dataset, split="train"), LeRobotSamples(dataset, split="val")
    assert (len(train), len(val), train.episodes, val.episodes) == (20, 20, [0], [1])
    norm = train.normalization()[sim_arm.tag]
    stats = json.loads((dataset / "meta/stats.json").read_text())
    np.testing.assert_allclose(norm.action.stats.q99, stats["action"]["q99"])
    assert norm.action.mode == "quantile" and norm.state.mode == "mean_std"
    with pytest.raises(fmt.DatasetFormatError, match="no split 'test'"):
        LeRobotSamples(dataset, split="test")


def test_trainer_trains_from_the_dataset(tmp_path, dataset, sim_arm, one_torch_thread):
    import torch

    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.train.trainer import TrainConfig, Trainer

    samples = LeRobotSamples(dataset, split="train")
    torch.manual_seed(0)
    model = build_tiny_vla([sim_arm])
    config = TrainConfig(output_dir=str(tmp_path / "run"), steps=40, batch_size=4, lr=3e-3, warmup_steps=5,
                         save_every=1000, progress=False)
    losses = Trainer(model, samples.normalization(), samples, config).train()
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_outcomes_select_episodes_and_multiple_bags_append(tmp_path, sim_arm, mcap_bag):
    mixed = demo_bag(tmp_path / "mixed", sim_arm, episodes=3, episode_s=1.0, gap_s=0.4,
                     outcomes=("success", "failure", "discard"))
    kept = convert_bags([mixed], sim_arm, tmp_path / "kept")
    assert kept.episodes == 1 and [d["reason"] for d in kept.dropped] == ["outcome failure", "outcome discarded"]
    both = convert_bags([mcap_bag, mixed], sim_arm, tmp_path / "both",
                        ConversionConfig(keep_outcomes=("success", "failure")))
    episodes = pq.read_table(tmp_path / "both/meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["vla/outcome"] for e in episodes] == ["success", "success", "success", "failure"]
    assert [e["vla/source_bag"] for e in episodes] == [str(mcap_bag)] * 2 + [str(mixed)] * 2
    index = pq.read_table(tmp_path / "both/data/chunk-000/file-000.parquet", columns=["index"]).column(0)
    assert index.to_pylist() == list(range(both.frames))


def test_other_layouts_and_next_state_actions(tmp_path, sim_arm, sqlite_bag):
    jpeg = demo_bag(tmp_path / "jpeg", sim_arm, compressed=True, episodes=1, episode_s=1.0)
    assert convert_bags([jpeg], sim_arm, tmp_path / "from_jpeg").frames == 10
    humble = humble_layout(sqlite_bag, tmp_path / "humble")
    assert convert_bags([humble], sim_arm, tmp_path / "from_humble").frames == 40
    no_commands = drop_topic(sqlite_bag, tmp_path / "nocmd", "/arm_controller/joint_trajectory")
    summary = convert_bags([no_commands], sim_arm, tmp_path / "next_state", ConversionConfig(val_fraction=0))
    assert summary.info["vla"]["action_source"] == {str(no_commands): "next_state"}
    samples = LeRobotSamples(tmp_path / "next_state", split="train")
    np.testing.assert_allclose(samples[3].actions[0], samples[4].state, atol=1e-6)


def test_refusals_name_the_problem_and_leave_nothing(tmp_path, sim_arm, sqlite_bag, capsys):
    broken = drop_topic(sqlite_bag, tmp_path / "broken", "/wrist_camera/image_raw")
    with pytest.raises(ConversionError, match=f"{broken}: camera 'wrist'"):
        convert_bags([sqlite_bag, broken], sim_arm, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    code = dataset_cli.main([str(broken), "--robot", "sim_arm", "-o", str(tmp_path / "cli"), "--no-progress"])
    assert code == 2 and "camera 'wrist'" in capsys.readouterr().err and not (tmp_path / "cli").exists()
    assert dataset_cli.main([str(sqlite_bag), "--robot", "sim_arm", "-o", str(tmp_path / "cli"),
                             "--no-progress"]) == 0
    assert dataset_cli.main([str(sqlite_bag), "--robot", "sim_arm", "-o", str(tmp_path / "cli")]) == 2  # exists
    assert "exists" in capsys.readouterr().err


def test_a_missing_bag_is_refused_before_the_output_is_touched(tmp_path, sim_arm, sqlite_bag):
    """A mistyped bag path (the second of two) is named before anything is written: another conversion writing
    to the same output meanwhile keeps its `.partial` (two such runs raced on it before)."""
    other_run = tmp_path / "out.partial" / "spool"
    other_run.mkdir(parents=True)
    missing = tmp_path / "no_such_bag"
    with pytest.raises(ConversionError, match=f"{missing}: bag {missing} does not exist"):
        convert_bags([sqlite_bag, missing], sim_arm, tmp_path / "out")
    assert other_run.is_dir() and not (tmp_path / "out").exists()
