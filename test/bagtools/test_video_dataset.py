"""LeRobot v3 video datasets from the converter: MP4 per camera (AV1 by default, H.264 as an option), frames
read back by timestamp in any order, and cameras a checkpoint needs that a dataset lacks refused by name."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
from vla_policy_node.train import lerobot_format as fmt
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.train.lerobot_video import VideoEncoding, VideoError, VideoFileWriter, VideoReader, psnr


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, sim_arm, mcap_bag):
    root = tmp_path_factory.mktemp("video")
    video = convert_bags([mcap_bag], sim_arm, root / "video", ConversionConfig(val_fraction=0.5))
    png = convert_bags([mcap_bag], sim_arm, root / "png", ConversionConfig(val_fraction=0.5, image_format="png"))
    return video, png


def test_layout_features_and_episode_columns_follow_lerobot(datasets):
    video, _ = datasets
    root = video.output
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.mp4"))
    assert files == ["videos/observation.images.scene/chunk-000/file-000.mp4",
                     "videos/observation.images.wrist/chunk-000/file-000.mp4"]
    info = json.loads((root / fmt.INFO_PATH).read_text())
    assert info["video_path"] == fmt.VIDEO_PATH
    scene = info["features"]["observation.images.scene"]
    assert scene["dtype"] == "video" and scene["shape"] == [128, 128, 3]
    assert scene["info"]["video.codec"] == "av1" and scene["info"]["video.fps"] == 10
    schema = pq.read_schema(root / "data/chunk-000/file-000.parquet")
    assert not [name for name in schema.names if name.startswith(fmt.IMAGE_PREFIX)]  # frames live in the videos
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    starts = [e["videos/observation.images.scene/from_timestamp"] for e in episodes]
    ends = [e["videos/observation.images.scene/to_timestamp"] for e in episodes]
    assert starts == [0.0, 2.0] and ends == [2.0, 4.0]  # two 20-frame episodes, one after the other in one file
    assert len(episodes[0]["stats/observation.images.scene/q99"]) == 3  # image quantiles, as LeRobot writes


def test_frames_decode_to_their_own_images(datasets):
    video, png = datasets
    a = LeRobotSamples(video.output, split=None, horizon=1)
    b = LeRobotSamples(png.output, split=None, horizon=1)
    assert len(a) == len(b) == 40 and a.cameras == b.cameras
    quality = []
    for i in range(len(a)):
        decoded, truth = a[i].images, b[i].images
        assert set(decoded) == {"scene", "wrist"}
        for camera in decoded:
            quality.append(psnr(decoded[camera], truth[camera]))
    assert min(quality) > 30.0  # AV1 at CRF 30: visually lossless on these images (LeRobot reports ~35 dB)
    np.testing.assert_array_equal(a[0].state, b[0].state)


def test_seeking_by_timestamp_finds_each_frame(tmp_path):
    """Frames that differ (a bar at a frame-specific place), two files, read in random order: each read is the
    frame written at that time, never a neighbour (the nearest of all written frames)."""
    truth = []
    for k in range(30):
        image = np.full((64, 96, 3), 90, np.uint8)
        image[:, 3 * k: 3 * k + 6] = (250, 240, 30)
        truth.append(image)
    paths = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    for codec, path in zip(("av1", "h264"), paths, strict=True):
        writer = VideoFileWriter(path, 10, 64, 96, VideoEncoding(codec=codec))
        for image in truth:
            writer.add(image)
        writer.close()
        assert writer.frames == 30 and writer.duration_s == 3.0
    reader = VideoReader(cache_files=1)  # alternating files: every switch reopens
    rng = np.random.default_rng(1)
    for k in rng.permutation(60):
        frame = reader.frame(paths[k % 2], (k // 2) / 10)
        nearest = min(range(30), key=lambda j: float(np.mean((frame.astype(float) - truth[j]) ** 2)))
        assert nearest == k // 2
    with pytest.raises(VideoError, match="no frame within"):
        reader.frame(paths[0], 0.05)  # between two frames


def test_random_access_equals_in_order_access_and_decoders_are_cached(datasets):
    video, _ = datasets
    reader = VideoReader()
    samples = LeRobotSamples(video.output, split=None, horizon=1, video_reader=reader)
    in_order = [samples[i].images["scene"] for i in range(len(samples))]
    assert reader.opened == 2  # one decoder per file, kept open
    rng = np.random.default_rng(0)
    for i in rng.permutation(len(samples)):
        np.testing.assert_array_equal(samples[int(i)].images["scene"], in_order[i])
    assert reader.opened == 2


def test_video_is_smaller_than_png_and_h264_works(tmp_path, datasets, sim_arm, mcap_bag):
    video, png = datasets

    def image_bytes(root, pattern):
        return sum(p.stat().st_size for p in root.rglob(pattern))

    assert image_bytes(video.output, "*.mp4") < image_bytes(png.output, "data/*/*.parquet") / 2
    h264 = convert_bags([mcap_bag], sim_arm, tmp_path / "h264",
                        ConversionConfig(video=VideoEncoding(codec="h264"), val_fraction=0))
    info = json.loads((h264.output / fmt.INFO_PATH).read_text())
    assert info["features"]["observation.images.wrist"]["info"]["video.codec"] == "h264"
    sample = LeRobotSamples(h264.output, split=None, horizon=1)[25]
    truth = LeRobotSamples(png.output, split=None, horizon=1)[25]
    assert psnr(sample.images["wrist"], truth.images["wrist"]) > 30.0


def test_missing_cameras_are_errors_not_empty_images(datasets):
    video, _ = datasets
    with pytest.raises(fmt.DatasetFormatError, match=r"camera\(s\) \['front'\] are required .* map one onto each"):
        LeRobotSamples(video.output, split=None, require_cameras=["front"])
    mapped = LeRobotSamples(video.output, split=None, horizon=1, require_cameras=["front"],
                            cameras={"observation.images.scene": "front"})
    assert set(mapped[0].images) == {"front"}
    with pytest.raises(fmt.DatasetFormatError, match="no camera feature"):
        LeRobotSamples(video.output, split=None, cameras={"observation.images.top": "scene"})
