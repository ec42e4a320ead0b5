"""Camera storage in converted datasets: bytes per frame and PSNR of AV1 / H.264 video against PNG, decode speed
(in order and random access), and the conversion of a 10 s Franka-like bag with recording faults.

    .venv/bin/python benchmarks/bench_video.py [--seconds 10] [--size 224]

Images come from the synthetic tabletop renderer (noise 4: sensor-like, which is what makes PNG large).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
from vla_policy_node.bagtools.synthetic import ReachPolicy, RecordingFaults, Session, write_demonstration_bag
from vla_policy_node.spec import load_embodiment
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.train.lerobot_video import VideoEncoding, VideoReader, psnr

ROOT = Path(__file__).resolve().parents[1]
FRANKA_FAULTS = RecordingFaults(dropouts=(("scene", 4.0, 4.3),), extra_joints=("fr3_finger_joint2",),
                                shuffle_joints=True, compressed_cameras=("scene",), late_every=5, late_s=0.12,
                                swap_joint_states_every=11, camera_windows=(("wrist", 0.4, 9.6),), split_every_s=4.0)


def camera_bytes(root: Path, video: bool) -> int:
    if video:
        return sum(p.stat().st_size for p in root.rglob("*.mp4"))
    return sum(p.stat().st_size for p in (root / "data").rglob("*.parquet"))  # PNG bytes dominate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the Franka-like bag")
    parser.add_argument("--size", type=int, default=224, help="camera resolution (square) of the robot config")
    args = parser.parse_args()
    franka = load_embodiment(ROOT / "config/robots/franka_fr3.yaml")
    franka = dataclasses.replace(franka, cameras=tuple(dataclasses.replace(c, height=args.size, width=args.size)
                                                       for c in franka.cameras))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        session = Session(episodes=1, episode_s=args.seconds, gap_s=0.5, image_size=(480, 640), noise=4,
                          marks=False, faults=FRANKA_FAULTS)
        t = time.perf_counter()
        bag = write_demonstration_bag(work / "franka", franka, ReachPolicy(franka), session)
        print(f"Franka-like bag: {args.seconds:.0f} s, 2 cameras 640x480 (scene JPEG, wrist raw), 300 ms scene "
              f"dropout, late/reordered messages, finger joint, shuffled joints, split files "
              f"({time.perf_counter() - t:.1f} s to write)")
        results = {}
        for name, config in (("png", ConversionConfig(image_format="png", val_fraction=0)),
                             ("av1", ConversionConfig(val_fraction=0)),
                             ("h264", ConversionConfig(video=VideoEncoding(codec="h264"), val_fraction=0))):
            summary = convert_bags([bag], franka, work / name, config)
            results[name] = summary
            size = camera_bytes(summary.output, name != "png")
            per_frame = size / (summary.frames * len(franka.cameras))
            print(f"  convert {name:5s}: {summary.episodes} episodes, {summary.frames} frames, "
                  f"{summary.frames_per_s:6.1f} frames/s, {per_frame / 1000:6.2f} kB per camera frame")
            for warning in summary.warnings:
                print(f"      warning: {warning}")
        truth = LeRobotSamples(results["png"].output, split=None, horizon=1)
        for name in ("av1", "h264"):
            reader = VideoReader()
            samples = LeRobotSamples(results[name].output, split=None, horizon=1, video_reader=reader)
            t = time.perf_counter()
            decoded = [samples[i].images for i in range(len(samples))]
            in_order = (time.perf_counter() - t) / len(samples)
            order = np.random.default_rng(0).permutation(len(samples))
            t = time.perf_counter()
            for i in order:
                samples[int(i)]
            random_access = (time.perf_counter() - t) / len(samples)
            quality = [psnr(d[c], truth[i].images[c]) for i, d in enumerate(decoded) for c in d]
            print(f"  {name:5s}: PSNR vs PNG mean {np.mean(quality):.1f} dB (min {np.min(quality):.1f}); decode "
                  f"{in_order * 1000:.1f} ms per sample in order, {random_access * 1000:.1f} ms random "
                  f"({len(franka.cameras)} cameras {args.size}x{args.size})")


if __name__ == "__main__":
    main()
