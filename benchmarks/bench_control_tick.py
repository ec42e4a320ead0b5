"""Cost of one control tick (executor.sample -> mux -> safety filter) on the 7-joint Franka FR3.

Simulated time at the robot's control rate; cameras at 30 Hz and joint states every tick keep the observation
fresh; a chunk (H=16, dt=0.1 s) arrives at 10 Hz, 50 ms after its observation. Only `tick` is timed; chunk
merges are timed separately (they run on the inference thread, not on the timer).

    python benchmarks/bench_control_tick.py [--ticks 20000] [--strategy rtc|ensemble|synchronous] [--node-path]

--node-path: the tick takes the measured state from the accepted joint state, as the nodes do (it was checked
for plausibility on arrival), instead of being handed it (then the tick checks it itself).
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import numpy as np

from vla_policy_node.control import ControlConfig, ControlLoop, ExecutorConfig
from vla_policy_node.control.native import native_status
from vla_policy_node.spec import ActionChunk, load_embodiment

ROOT = Path(__file__).resolve().parent.parent


def run(ticks: int, strategy: str, interpolation: str, node_path: bool = False) -> None:
    emb = load_embodiment(ROOT / "config" / "robots" / "franka_fr3.yaml")
    config = ControlConfig(executor=ExecutorConfig(strategy=strategy, interpolation=interpolation))
    loop = ControlLoop(emb, config)
    rate = loop.control_hz
    period = 1.0 / rate
    names = emb.state_names
    lo = np.array([j.lower for j in emb.joints])
    hi = np.array([j.upper for j in emb.joints])
    mid, amp = (lo + hi) / 2, (hi - lo) * 0.15
    image = np.zeros((8, 8, 3), np.uint8)
    rng = np.random.default_rng(0)

    def pose(t: float) -> np.ndarray:
        return mid + amp * np.sin(0.5 * t + np.arange(len(mid)))

    tick_ns = np.empty(ticks, dtype=np.int64)
    merge_ns = []
    sources: dict[str, int] = {}
    gc.collect()
    for i in range(ticks):
        now = i * period
        state = np.append(pose(now), 0.02)
        loop.sync.add_joint_state(now, names, state, now)
        if i % max(1, round(rate / 30)) == 0:
            for cam in emb.camera_names:
                loop.sync.add_image(cam, now, image, "rgb8", now)
        if i % max(1, round(rate / 10)) == 0 and loop.should_request_inference(now):
            obs = loop.sync.poll(now)
            if obs is not None:
                loop.begin_inference(obs, now)
                times = obs.stamp + 0.1 * np.arange(16)
                arm = np.stack([pose(t) for t in times]) + rng.normal(0, 1e-3, (16, 7))
                actions = np.column_stack([arm, np.full(16, 0.03)])
                chunk = ActionChunk(stamp=obs.stamp, dt=0.1, actions=actions, names=emb.action_names)
                t0 = time.perf_counter_ns()
                loop.on_chunk(chunk, latency=0.05, now=now)
                merge_ns.append(time.perf_counter_ns() - t0)
        t0 = time.perf_counter_ns()
        cmd = loop.tick(now) if node_path else loop.tick(now, state)
        tick_ns[i] = time.perf_counter_ns() - t0
        assert cmd is not None
        sources[cmd.source] = sources.get(cmd.source, 0) + 1
    st = loop.status(ticks * period)
    us = tick_ns[ticks // 10 :] / 1e3  # skip warm-up
    merge_us = np.array(merge_ns) / 1e3
    path = "measured state from the joint-state input" if node_path else "measured state passed to tick"
    print(f"franka_fr3, {strategy}/{interpolation}, {rate:.0f} Hz, {ticks} ticks (first 10% skipped), {path}; "
          f"{native_status()}")
    print(f"tick   p50 {np.percentile(us, 50):7.1f} us   p99 {np.percentile(us, 99):7.1f} us   max {us.max():7.1f} us")
    print(f"merge  p50 {np.percentile(merge_us, 50):7.1f} us   p99 {np.percentile(merge_us, 99):7.1f} us"
          f"   ({len(merge_us)} chunks, inference thread)")
    clamps = ", ".join(f"{n}={c}" for n, c in zip(st.clamp_names, st.clamp_counts, strict=True) if c)
    print(f"ticks by source: {dict(sorted(sources.items()))}; clamps: {clamps or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20000)
    parser.add_argument("--strategy", default="rtc", choices=["rtc", "ensemble", "synchronous"])
    parser.add_argument("--interpolation", default="cubic", choices=["cubic", "linear"])
    parser.add_argument("--node-path", action="store_true", help="measured state from the joint-state input")
    args = parser.parse_args()
    run(args.ticks, args.strategy, args.interpolation, args.node_path)


if __name__ == "__main__":
    main()
