"""Observation-to-command latency of the running nodes over DDS on loopback, with the tiny VLA on the CPU.

    python benchmarks/bench_node_latency.py [--seconds 20] [--camera-rate 30] [--torch-threads 1] [--no-mux]

This process plays the arm driver: every camera period it publishes sim_arm's two 64x64 camera frames and
a joint state, all with the same stamp s (the wall time of publication), so the observation the policy node
builds from them is stamped s and so is the ActionChunk that answers it. Child processes: policy_node
(--no-dry-run) and, unless --no-mux, command_mux_node. Measured per chunk, in this process's arrival times:

- obs -> chunk:   /vla/action_chunk with stamp s arrives          (the frame's wait for the next inference
                  slot (the policy re-plans at rates.inference_hz from the newest frame) + inference + hops)
- inference:      the chunk's own inference_latency field        (the model alone)
- obs -> policy:  first /vla/policy_command after that chunk      (+ the policy node's next control tick)
- obs -> robot:   first controller command after that command     (+ the mux's next control tick and a hop)

The policy node merges a chunk into its plan before publishing it, so every command published after the
chunk reflects it; "first command after the chunk arrived here" is that command, give or take one period.
"""

from __future__ import annotations

import argparse
import bisect
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROBOT = REPO / "config" / "robots" / "sim_arm.yaml"


def build_checkpoint(directory: Path) -> Path:
    import torch

    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.spec import load_embodiment
    from vla_policy_node.spec.normalization import normalization_from_limits

    robot = load_embodiment(ROBOT)
    torch.manual_seed(0)
    return save_checkpoint(build_tiny_vla([robot]), normalization_from_limits(robot), directory / "tiny_vla")


def start(module: str, args: list[str], domain: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, VLA_DDS_LOOPBACK="1", ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", module, *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=env, cwd=REPO)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Arrivals:
    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, _msg) -> None:
        with self._lock:
            self.times.append(time.time())

    def first_after(self, t: float) -> float | None:
        with self._lock:
            i = bisect.bisect_right(self.times, t)
            return self.times[i] if i < len(self.times) else None


def figures(name: str, seconds: list[float]) -> str:
    if not seconds:
        return f"  {name:<16} no samples"
    ms = np.asarray(seconds) * 1e3
    return (f"  {name:<16} p50 {np.percentile(ms, 50):7.2f} ms   p99 {np.percentile(ms, 99):7.2f} ms   "
            f"max {ms.max():7.2f} ms   n={ms.size}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time after warm-up")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--camera-rate", type=float, default=30.0)
    parser.add_argument("--domain", type=int, default=None)
    parser.add_argument("--no-mux", dest="mux", action="store_false")
    parser.add_argument("--torch-threads", dest="torch_threads", type=int, default=1,
                        help="the policy node's torch CPU threads (0: torch's default, all cores)")
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    args = parser.parse_args()
    domain = args.domain if args.domain is not None else random.SystemRandom().randint(1, 230)

    from vla_policy_node.msgs import encode_image, encode_joint_state, header_stamp
    from vla_policy_node.spec import load_embodiment
    from vla_policy_node.transport import DdsConfig, DdsTransport

    robot = load_embodiment(ROBOT)
    with tempfile.TemporaryDirectory(prefix="bench_node_latency_") as tmp:
        tmp_path = Path(tmp)
        checkpoint = build_checkpoint(tmp_path)
        common = ["--transport", "dds", "--robot-config", str(ROBOT)]
        children = [start("vla_policy_node.nodes.policy_node", [*common, "--checkpoint", str(checkpoint),
                                                               "--no-dry-run", "--instruction", "reach",
                                                               "--torch-threads", str(args.torch_threads)],
                          domain, tmp_path / "policy.log")]
        if args.mux:
            children.append(start("vla_policy_node.nodes.command_mux_node", common, domain, tmp_path / "mux.log"))
        t = DdsTransport(DdsConfig(node_name="bench_driver", loopback=True, domain_id=domain))
        try:
            published: dict[int, float] = {}
            chunks: list[tuple[float, float, float]] = []  # (stamp, arrival, inference_latency)
            lock = threading.Lock()

            def on_chunk(msg) -> None:
                arrival = time.time()
                with lock:
                    chunks.append((header_stamp(msg), arrival, float(msg.inference_latency)))

            policy_commands, robot_commands = Arrivals(), Arrivals()
            t.subscribe("/vla/action_chunk", "vla_msgs/msg/ActionChunk", on_chunk)
            t.subscribe("/vla/policy_command", "trajectory_msgs/msg/JointTrajectory", policy_commands)
            t.subscribe(robot.controller.topic, "trajectory_msgs/msg/JointTrajectory", robot_commands)
            joints = t.publisher(robot.joint_states.topic, "sensor_msgs/msg/JointState")
            cameras = [(cam, t.publisher(cam.topic, "sensor_msgs/msg/Image")) for cam in robot.cameras]
            rng = np.random.default_rng(0)
            frames = {cam.name: rng.integers(0, 255, (cam.height, cam.width, 3), dtype=np.uint8)
                      for cam in robot.cameras}
            state = np.array([(j.lower + j.upper) / 2 for j in robot.joints] + [robot.gripper.upper])
            period = 1.0 / args.camera_rate
            print(f"policy node{' + mux' if args.mux else ''} on DDS domain {domain} (loopback), tiny VLA on CPU, "
                  f"sim_arm cameras {len(cameras)} x 64x64 at {args.camera_rate:.0f} Hz, torch threads "
                  f"{args.torch_threads or 'default'}")
            begin = time.monotonic()
            measure_from = None
            deadline = None
            next_t = time.monotonic()
            while deadline is None or time.monotonic() < deadline:
                if any(c.poll() is not None for c in children):
                    raise RuntimeError("a node exited:\n" + "\n".join(
                        (tmp_path / n).read_text()[-2000:] for n in ("policy.log", "mux.log")
                        if (tmp_path / n).exists()))
                if measure_from is None:
                    with lock:
                        started = bool(chunks)
                    if started:
                        measure_from = time.time() + args.warmup
                        deadline = time.monotonic() + args.warmup + args.seconds
                        print(f"first chunk after {time.monotonic() - begin:.1f} s (node start-up); measuring")
                    elif time.monotonic() - begin > args.startup_timeout:
                        raise RuntimeError("no ActionChunk from the policy node")
                stamp = time.time()
                new = t.new_message
                for cam, publisher in cameras:
                    publisher.publish(encode_image(new, frames[cam.name], "rgb8", stamp=stamp))
                joints.publish(encode_joint_state(new, robot.state_names, state, stamp=stamp))
                published[round(stamp * 1e9)] = stamp
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
            time.sleep(0.3)
            obs_chunk, inference, obs_policy, obs_robot = [], [], [], []
            with lock:
                measured = [c for c in chunks if measure_from is not None and c[0] >= measure_from]
            for stamp, arrival, latency in measured:
                sent = published.get(round(stamp * 1e9))
                if sent is None:
                    continue
                obs_chunk.append(arrival - sent)
                inference.append(latency)
                command = policy_commands.first_after(arrival)
                if command is not None:
                    obs_policy.append(command - sent)
                    if args.mux:
                        forwarded = robot_commands.first_after(command)
                        if forwarded is not None:
                            obs_robot.append(forwarded - sent)
            print(f"{len(measured)} chunks in {args.seconds:.0f} s ({len(measured) / args.seconds:.1f} Hz), "
                  f"{len(obs_chunk)} matched to their camera frames")
            print(figures("inference", inference))
            print(figures("obs -> chunk", obs_chunk))
            print(figures("obs -> policy cmd", obs_policy))
            if args.mux:
                print(figures("obs -> controller", obs_robot))
        finally:
            for child in reversed(children):
                stop(child)
            t.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
