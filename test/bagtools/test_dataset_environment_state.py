"""observation.environment_state: a privileged topic (PointStamped, PoseStamped, Float64MultiArray) sampled into
the dataset like a camera (newest at or before the frame, at most max_gap old), read back by LeRobotSamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test.bagtools.helpers import SMALL, with_topic
from vla_policy_node.bagtools import dataset as dataset_cli
from vla_policy_node.bagtools.dataset import ConversionConfig, ConversionError, convert_bags
from vla_policy_node.msgs import encode_float64_array, encode_point_stamped, encode_pose_stamped, rosbags_factory
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_dataset import LeRobotSamples

TOPIC = "/sim/target_point"
POINT = "geometry_msgs/msg/PointStamped"
START = SMALL.start_time  # the synthetic session's first episode starts here; the second 2.6 s later
EPISODE_STARTS = (START, START + SMALL.episode_s + SMALL.gap_s)
new = rosbags_factory()


def point_value(k: int) -> np.ndarray:
    return np.array([0.3 + 0.01 * k, -0.1 + 0.005 * k, 0.05 + 0.001 * k])


def point_bag(src: Path, dst: Path, stamps: np.ndarray, latency: float = 0.002) -> Path:
    """`src` plus one PointStamped per stamp (value point_value(k) for the k-th), received `latency` later."""
    messages = [(t + latency, encode_point_stamped(new, point_value(k), stamp=t, frame_id="world"))
                for k, t in enumerate(stamps)]
    return with_topic(src, dst, TOPIC, POINT, messages)


def frames(root: Path) -> dict[str, np.ndarray]:
    """Each row's episode, its time in the bag (episode start + frame_index / fps) and environment state."""
    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    starts = np.array([e["vla/source_start_s"] for e in episodes])
    episode = table.column("episode_index").to_numpy()
    out = {"episode": episode, "t": starts[episode] + table.column("frame_index").to_numpy() / 10.0}
    if fmt.ENV_STATE_KEY in table.column_names:
        out["env"] = np.array(table.column(fmt.ENV_STATE_KEY).to_pylist())
    return out


@pytest.fixture(scope="module")
def held(tmp_path_factory, mcap_bag, sim_arm):
    """Points every 0.2 s from 0.15 s before the first episode: frames fall between them, never on one."""
    tmp = tmp_path_factory.mktemp("env")
    stamps = START - 0.15 + 0.2 * np.arange(27)
    bag = point_bag(mcap_bag, tmp / "bag", stamps)
    out = tmp / "dataset"
    summary = convert_bags([bag], sim_arm, out, ConversionConfig(val_fraction=0.5, environment_state_topic=TOPIC))
    return bag, out, stamps, summary


def test_points_are_sampled_and_held_like_a_camera(held):
    _, out, stamps, summary = held
    data = frames(out)
    assert summary.episodes == 2 and len(data["t"]) == 40  # no frame lost: every frame has a point <= 0.25 s old
    newest = np.searchsorted(stamps, data["t"], side="right") - 1  # the newest point stamped at or before
    expected = np.stack([point_value(k) for k in newest]).astype(np.float32)
    np.testing.assert_array_equal(data["env"], expected)
    # episode 0: frames at 0.1 and 0.2 s lie between the points at 0.05 and 0.25 s and get the older one
    np.testing.assert_array_equal(data["env"][0], np.float32(point_value(0)))  # 0.0 s: the point at -0.15 s
    np.testing.assert_array_equal(data["env"][1], np.float32(point_value(1)))
    np.testing.assert_array_equal(data["env"][2], np.float32(point_value(1)))
    np.testing.assert_array_equal(data["env"][3], np.float32(point_value(2)))


def test_feature_schema_and_stats(held, mcap_bag, sim_arm, tmp_path):
    bag, out, _, _ = held
    info = json.loads((out / fmt.INFO_PATH).read_text())
    assert info["features"][fmt.ENV_STATE_KEY] == {"dtype": "float32", "shape": [3], "names": ["x", "y", "z"]}
    assert fmt.read_vla(out)["environment_state"] == {"topic": TOPIC, "msgtype": POINT}
    column = pq.read_schema(out / "data/chunk-000/file-000.parquet").field(fmt.ENV_STATE_KEY).type
    assert pa.types.is_fixed_size_list(column) and (column.list_size, column.value_type) == (3, pa.float32())
    data = frames(out)
    train = data["env"][data["episode"] == 0].astype(np.float64)
    stats = json.loads((out / fmt.STATS_PATH).read_text())[fmt.ENV_STATE_KEY]
    assert stats["count"] == [20]  # train split only
    np.testing.assert_allclose(stats["mean"], train.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["q99"], np.quantile(train, 0.99, axis=0), rtol=1e-6)
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    val = data["env"][data["episode"] == 1].astype(np.float64)
    np.testing.assert_allclose(episodes[1][f"stats/{fmt.ENV_STATE_KEY}/max"], val.max(0), rtol=1e-6)
    # without the option the same bag gives exactly today's dataset schema
    plain = convert_bags([bag], sim_arm, tmp_path / "plain", ConversionConfig(val_fraction=0.5))
    reference = convert_bags([mcap_bag], sim_arm, tmp_path / "reference", ConversionConfig(val_fraction=0.5))
    assert plain.info["features"] == reference.info["features"]
    assert "environment_state" not in plain.info["vla"]
    schema = pq.read_schema(tmp_path / "plain/data/chunk-000/file-000.parquet")
    assert schema == pq.read_schema(tmp_path / "reference/data/chunk-000/file-000.parquet")
    assert fmt.ENV_STATE_KEY not in schema.names
    samples = LeRobotSamples(tmp_path / "plain", split=None)
    assert samples[0].env_state is None and samples.env_state_names is None


def test_samples_carry_the_environment_state(held):
    _, out, _, _ = held
    data = frames(out)
    for split, rows in (("train", np.nonzero(data["episode"] == 0)[0]), ("val", np.nonzero(data["episode"] == 1)[0])):
        samples = LeRobotSamples(out, split=split, horizon=4)
        assert samples.env_state_names == ("x", "y", "z") and len(samples) == len(rows)
        for i in (0, 7, len(samples) - 1):
            env = samples[i].env_state
            assert env is not None and env.dtype == np.float64 and env.shape == (3,)
            np.testing.assert_array_equal(env, data["env"][rows[i]].astype(np.float64))


def test_missing_at_the_start_skips_frames_and_a_gap_ends_the_episode(tmp_path, mcap_bag, sim_arm):
    # points every 0.1 s (0.02 s after each frame time); none before 0.3 s into episode 0, none from 1.0 to
    # 1.6 s into episode 1: the frame at 1.2 s would need a point 0.28 s old (> max_gap 0.25)
    stamps = START - 0.08 + 0.1 * np.arange(53)
    rel0, rel1 = stamps - EPISODE_STARTS[0], stamps - EPISODE_STARTS[1]
    stamps = stamps[(rel0 > 0.3) & ~((rel1 > 1.0) & (rel1 < 1.6))]
    bag = point_bag(mcap_bag, tmp_path / "bag", stamps)
    summary = convert_bags([bag], sim_arm, tmp_path / "ds",
                           ConversionConfig(val_fraction=0, environment_state_topic=TOPIC))
    data = frames(tmp_path / "ds")
    lengths = [int(np.sum(data["episode"] == e)) for e in (0, 1)]
    assert lengths == [16, 12]  # episode 0: frames 0.4..1.9 s; episode 1: 0.0..1.1 s, then cut
    first = np.searchsorted(stamps, EPISODE_STARTS[0] + 0.4, side="right") - 1
    np.testing.assert_array_equal(data["env"][0], np.float32(point_value(first)))
    assert any(f"no environment state on {TOPIC} at t=" in w and "(1.20 s into episode 1)" in w
               for w in summary.warnings)


@pytest.mark.parametrize("kind", ["point", "pose", "array"])
def test_supported_types(tmp_path, mcap_bag, sim_arm, kind):
    """Stamped types are held by header stamp (like cameras), arrays by receive time; here the receive time is
    0.09 s after the stamp, so the two orders differ for the frame at 0.5 s."""
    stamps = START - 0.28 + 0.1 * np.arange(30)
    latency = 0.09
    values = [np.array([k, 2.0 * k, -1.0]) for k in range(len(stamps))]
    if kind == "point":
        msgtype, names = POINT, ["x", "y", "z"]
        msgs = [encode_point_stamped(new, v, stamp=t) for v, t in zip(values, stamps, strict=True)]
        expected = values
    elif kind == "pose":
        msgtype, names = "geometry_msgs/msg/PoseStamped", ["x", "y", "z", "qx", "qy", "qz", "qw"]
        msgs = [encode_pose_stamped(new, v, [0, 0, 1.0, 1.0], stamp=t) for v, t in zip(values, stamps, strict=True)]
        expected = [np.concatenate([v, [0, 0, np.sqrt(0.5), np.sqrt(0.5)]]) for v in values]
    else:
        msgtype, names = "std_msgs/msg/Float64MultiArray", ["0", "1", "2", "3"]
        msgs = [encode_float64_array(new, np.append(v, 7.0)) for v in values]
        expected = [np.append(v, 7.0) for v in values]
    bag = with_topic(mcap_bag, tmp_path / "bag", TOPIC, msgtype,
                     [(t + latency, m) for t, m in zip(stamps, msgs, strict=True)])
    summary = convert_bags([bag], sim_arm, tmp_path / "ds",
                           ConversionConfig(val_fraction=0, environment_state_topic=TOPIC))
    assert summary.info["features"][fmt.ENV_STATE_KEY]["names"] == names
    data = frames(tmp_path / "ds")
    held_by = stamps + (latency if kind == "array" else 0.0)
    newest = np.searchsorted(held_by, data["t"], side="right") - 1
    np.testing.assert_allclose(data["env"], np.stack([expected[k] for k in newest]), atol=1e-6)
    at_half_second = np.searchsorted(held_by, START + 0.5, side="right") - 1
    assert at_half_second == (6 if kind == "array" else 7)
    np.testing.assert_allclose(data["env"][5], expected[at_half_second], atol=1e-6)


def test_array_length_change_is_an_error(tmp_path, mcap_bag, sim_arm):
    stamps = START - 0.05 + 0.1 * np.arange(40)
    msgs = [(t, encode_float64_array(new, np.zeros(2 if k < 20 else 3))) for k, t in enumerate(stamps)]
    bag = with_topic(mcap_bag, tmp_path / "bag", TOPIC, "std_msgs/msg/Float64MultiArray", msgs)
    with pytest.raises(ConversionError, match=f"{TOPIC} changed length from 2 to 3"):
        convert_bags([bag], sim_arm, tmp_path / "ds", ConversionConfig(environment_state_topic=TOPIC))
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_missing_or_unsupported_topic_is_an_error(tmp_path, mcap_bag, sim_arm, held, capsys):
    with pytest.raises(ConversionError, match=f"{mcap_bag}: environment state: topic {TOPIC} is not in the bag"):
        convert_bags([mcap_bag], sim_arm, tmp_path / "ds", ConversionConfig(environment_state_topic=TOPIC))
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
    with pytest.raises(ConversionError, match="/vla/instruction is std_msgs/msg/String; supported types"):
        convert_bags([mcap_bag], sim_arm, tmp_path / "ds",
                     ConversionConfig(environment_state_topic="/vla/instruction"))
    bag = held[0]
    with pytest.raises(ConversionError, match=f"{mcap_bag}: environment state: topic {TOPIC} is not in the bag"):
        convert_bags([bag, mcap_bag], sim_arm, tmp_path / "ds", ConversionConfig(environment_state_topic=TOPIC))
    # the CLI flag
    args = ["--robot", "sim_arm", "--no-progress", "--environment-state-topic", TOPIC]
    assert dataset_cli.main([str(mcap_bag), "-o", str(tmp_path / "cli"), *args]) == 2
    assert f"topic {TOPIC} is not in the bag" in capsys.readouterr().err
    assert dataset_cli.main([str(bag), "-o", str(tmp_path / "cli"), *args]) == 0
    info = json.loads((tmp_path / "cli" / fmt.INFO_PATH).read_text())
    assert info["features"][fmt.ENV_STATE_KEY]["shape"] == [3]
