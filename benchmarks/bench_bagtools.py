"""Bag tooling figures on a multi-GB bag: replay throughput with the model excluded, conversion speed, peak RSS,
each next to rosbags' raw read throughput of the same bag in the same run.

    python benchmarks/bench_bagtools.py [--gb 3] [--robot franka_fr3] [--storage mcap] [--dir /tmp] [--keep]
                                        [--bag EXISTING_BAG] [--repeat 2] [--skip-convert] [--cold] [--one-process]

Writes a synthetic demonstration bag of about `--gb` GB into a temporary directory (two 640x480 rgb8 cameras at
25 Hz, joint states and commands at 100 Hz, episode marks), then runs each stage in a fresh process so that its
peak resident memory (getrusage ru_maxrss) is its own:

- replay: the open-loop replay with a scripted policy that answers in microseconds (the model excluded), so the
  figure is the replay machinery itself: bag reading, message decoding, sync, executor, comparison (frames are
  fitted to the model's size only when a policy reads them, as in the live node; the scripted policy reads none).
  The comparison with the recording runs in a forked process beside the node side (as by default; two cores):
  the CPU seconds printed are both processes' (--one-process: the comparison in the node side's process).
  Prints observations (chunks requested by the executor) per second, camera frames per second, messages per
  second and bag MB per second;
- convert: bag -> LeRobot v3 dataset (frames at the policy rate, PNG images): frames per second, bag MB per
  second;
- raw: rosbags alone iterating every message's raw bytes (`Reader.messages()`, no deserialization), the
  baseline. Raw and replay run alternately (`--repeat` pairs) because the machine's load moves both; each
  replay is divided by the mean of the raw reads around it, and the median ratio is printed with the wall and
  CPU seconds of each run.
--cold: before every raw read, replay and conversion, the bag's pages are dropped from the page cache (posix_fadvise
DONTNEED on each of its files; no root needed), so each stage reads the block device (on a virtual machine that
may be the host's cache), as with a bag larger than memory or not read since it was copied. Without it the bag
stays cached after the first read and both stages are CPU-bound.
The replay reads the bag through a memory map and touches a camera frame's pixels only when a policy reads
them; the benchmark's scripted policy reads none, so cold, the replay reads little more than the messages' headers
and the small messages, while rosbags reads every byte.
The bag and the dataset are deleted at the end unless --keep (a bag given with --bag is never deleted).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROBOTS = REPO / "config" / "robots"
CAMERA_BYTES_PER_S = 2 * 25 * 480 * 640 * 3  # two cameras at 25 Hz


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def stage_generate(bag: Path, robot: str, gb: float, storage: str) -> dict:
    from vla_policy_node.bagtools.synthetic import ReachPolicy, Session, write_demonstration_bag
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(ROBOTS / f"{robot}.yaml")
    episode_s, gap_s = 10.0, 1.0
    episodes = max(1, round(gb * 1e9 / CAMERA_BYTES_PER_S / (episode_s + gap_s)))
    session = Session(episodes=episodes, episode_s=episode_s, gap_s=gap_s, rate_hz=100.0, camera_every=4,
                      image_size=(480, 640), noise=4, storage=storage, sensor_latency=0.003)
    start = time.perf_counter()
    write_demonstration_bag(bag, emb, ReachPolicy(emb), session)
    wall = time.perf_counter() - start
    size = sum(p.stat().st_size for p in bag.iterdir())
    return {"bag_gb": size / 1e9, "episodes": episodes, "seconds_recorded": episodes * (episode_s + gap_s),
            "write_s": wall, "write_mb_per_s": size / 1e6 / wall, "peak_rss_mb": _peak_rss_mb()}


def _drop_from_page_cache(bag: Path) -> None:
    """Evict the bag's files from the page cache so the next read comes from the disk (clean pages only: the bag
    is closed and written)."""
    for path in bag.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _bag_mb(bag: Path) -> float:
    return sum(p.stat().st_size for p in bag.iterdir() if p.is_file()) / 1e6


def stage_raw(bag: Path) -> dict:
    """rosbags' own read of every message (raw CDR bytes, nothing decoded): the throughput to compare with."""
    from rosbags.rosbag2 import Reader

    start, cpu = time.perf_counter(), time.process_time()
    messages = payload = 0
    with Reader(bag) as reader:
        for _, _, raw in reader.messages():
            messages += 1
            payload += len(raw)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu, "messages": messages, "payload_mb": payload / 1e6,
            "bag_mb_per_s": _bag_mb(bag) / wall, "peak_rss_mb": _peak_rss_mb()}


def stage_replay(bag: Path, robot: str, parallel: bool = True) -> dict:
    from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig
    from vla_policy_node.bagtools.synthetic import ReachPolicy
    from vla_policy_node.control.native import native_status
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(ROBOTS / f"{robot}.yaml")
    start, cpu, child_cpu = time.perf_counter(), time.process_time(), _children_cpu()
    result = OpenLoopReplay(emb, ReachPolicy(emb), ReplayConfig(latency=0.05, parallel=parallel)).run(bag)
    outer_wall, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    comparison_cpu_s = _children_cpu() - child_cpu  # the forked comparison, joined by the end of the run
    summary = result.summary
    wall = summary["throughput"]["wall_s"]
    frames = sum(v["received"] for k, v in summary["sync"]["inputs"].items() if k != "joint_states")
    return {"wall_s": wall, "messages": summary["counts"]["messages"],
            "observations": summary["counts"]["observations"],
            "observations_per_s": summary["counts"]["observations"] / wall,
            "camera_frames_per_s": frames / wall, "messages_per_s": summary["throughput"]["messages_per_s"],
            "bag_mb_per_s": summary["throughput"]["bag_mb_per_s"], "chunk_mae": summary["chunk_error"]["mae"],
            "command_mae": summary["command_error"]["mae"], "counts": summary["counts"],
            "open_and_run_s": outer_wall, "cpu_s": cpu_s + comparison_cpu_s, "node_side_cpu_s": cpu_s,
            "comparison_cpu_s": comparison_cpu_s, "peak_rss_mb": _peak_rss_mb(),
            "comparison_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "build": native_status()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stage_convert(bag: Path, robot: str, out: Path) -> dict:
    from vla_policy_node.bagtools.dataset import ConversionConfig, convert_bags
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(ROBOTS / f"{robot}.yaml")
    cpu = time.process_time()
    summary = convert_bags([bag], emb, out, ConversionConfig())
    cpu_s = time.process_time() - cpu
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"wall_s": summary.wall_s, "episodes": summary.episodes, "frames": summary.frames,
            "frames_per_s": summary.frames_per_s, "bag_mb_per_s": summary.bag_mb_per_s,
            "dataset_mb": size / 1e6, "cpu_s": cpu_s, "peak_rss_mb": _peak_rss_mb()}


def run_stage(*args: str, cold: bool = False) -> dict:
    """One stage in a fresh interpreter; its JSON result is the last line of its output. `cold`: the bag (args[1])
    is dropped from the page cache first."""
    if cold:
        _drop_from_page_cache(Path(args[1]))
    proc = subprocess.run([sys.executable, __file__, "--stage", *args], check=True, stdout=subprocess.PIPE,
                          text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _paired(raws: list[dict], runs: list[dict]) -> list[float]:
    """Each run's MB/s over the mean of the raw reads just before and after it (raws[i], raws[i + 1])."""
    return [run["bag_mb_per_s"] / ((raws[i]["bag_mb_per_s"] + raws[i + 1]["bag_mb_per_s"]) / 2)
            for i, run in enumerate(runs)]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=3.0, help="approximate bag size")
    parser.add_argument("--robot", default="franka_fr3")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--dir", default=None, help="where to put the bag (default: the system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the bag and the dataset")
    parser.add_argument("--bag", default=None, help="use this existing bag (recorded for --robot) instead")
    parser.add_argument("--repeat", type=int, default=2, help="replay runs, each between two raw reads")
    parser.add_argument("--skip-convert", action="store_true", help="replay only")
    parser.add_argument("--cold", action="store_true",
                        help="drop the bag from the page cache before every stage that reads it (reads the disk)")
    parser.add_argument("--one-process", action="store_true",
                        help="the comparison in the node side's process (as `vla_replay_test --one-process`)")
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        name, *rest = args.stage
        if name == "generate":
            result = stage_generate(Path(rest[0]), rest[1], float(rest[2]), rest[3])
        elif name == "raw":
            result = stage_raw(Path(rest[0]))
        elif name == "replay":
            result = stage_replay(Path(rest[0]), rest[1], parallel=rest[2] == "parallel")
        else:
            result = stage_convert(Path(rest[0]), rest[1], Path(rest[2]))
        print(json.dumps(result))
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.bag is not None and not Path(args.bag).is_dir():
        parser.error(f"--bag {args.bag}: not a rosbag2 directory")
    work = Path(tempfile.mkdtemp(prefix="bench_bagtools_", dir=args.dir))
    bag, dataset = (Path(args.bag) if args.bag else work / "bag"), work / "dataset"
    try:
        if args.bag is None:
            generated = run_stage("generate", str(bag), args.robot, str(args.gb), args.storage)
            print(f"bag: {generated['bag_gb']:.2f} GB {args.storage}, {generated['seconds_recorded']:.0f} s recorded "
                  f"({generated['episodes']} episodes, {args.robot}, 2 x 640x480 rgb8 at 25 Hz), written at "
                  f"{generated['write_mb_per_s']:.0f} MB/s")
        else:
            generated = {"bag_gb": _bag_mb(bag) / 1e3, "path": str(bag)}
            print(f"bag: {bag} ({generated['bag_gb']:.2f} GB)")
        cache = "cold: the bag dropped from the page cache before each run" if args.cold else "warm page cache"
        print(f"{_load()}; {cache}")
        raws = [run_stage("raw", str(bag), cold=args.cold)]
        replays = []
        for _ in range(args.repeat):
            mode = "one-process" if args.one_process else "parallel"
            replays.append(run_stage("replay", str(bag), args.robot, mode, cold=args.cold))
            raws.append(run_stage("raw", str(bag), cold=args.cold))
        for raw in raws:
            print(f"raw rosbags read: {raw['wall_s']:.2f} s wall, {raw['cpu_s']:.2f} s CPU, {raw['messages']} "
                  f"messages, {raw['bag_mb_per_s']:.0f} MB/s")
        ratios = _paired(raws, replays)
        for replay, ratio in zip(replays, ratios, strict=True):
            print(f"replay (model excluded): {replay['wall_s']:.2f} s wall ({replay['open_and_run_s']:.2f} s with "
                  f"opening), {replay['cpu_s']:.2f} s CPU ({replay['node_side_cpu_s']:.2f} node side + "
                  f"{replay['comparison_cpu_s']:.2f} comparison), {replay['observations_per_s']:.0f} observations/s, "
                  f"{replay['camera_frames_per_s']:.0f} camera frames/s, {replay['messages_per_s']:.0f} messages/s, "
                  f"{replay['bag_mb_per_s']:.0f} MB/s = {ratio:.2f}x raw; peak RSS {replay['peak_rss_mb']:.0f} MB "
                  f"(comparison process {replay['comparison_peak_rss_mb']:.0f} MB, pages shared since the fork "
                  "counted in both)")
        print(f"replay's {replays[0]['build']}")
        print(f"replay / raw read throughput: median {statistics.median(ratios):.2f}x, range {min(ratios):.2f}-"
              f"{max(ratios):.2f}x over {len(ratios)} alternating runs, {cache} (target >= 0.8x); {_load()}")
        result = {"generate": generated, "cold": args.cold, "raw": raws, "replay": replays, "replay_ratio": ratios}
        if not args.skip_convert:
            convert = run_stage("convert", str(bag), args.robot, str(dataset), cold=args.cold)
            raw_after = run_stage("raw", str(bag), cold=args.cold)
            ratio = convert["bag_mb_per_s"] / ((raws[-1]["bag_mb_per_s"] + raw_after["bag_mb_per_s"]) / 2)
            print(f"convert: {convert['wall_s']:.1f} s, {convert['cpu_s']:.1f} s CPU, {convert['frames']} frames "
                  f"({convert['episodes']} episodes), {convert['frames_per_s']:.0f} frames/s, "
                  f"{convert['bag_mb_per_s']:.0f} MB/s of bag = {ratio:.2f}x raw; dataset {convert['dataset_mb']:.0f} "
                  f"MB; peak RSS {convert['peak_rss_mb']:.0f} MB")
            result.update(convert=convert, convert_ratio=ratio, raw_after_convert=raw_after)
        print(json.dumps(result))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
